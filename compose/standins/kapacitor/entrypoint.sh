#!/bin/bash
# As the upstream image: flags alone mean kapacitord; the subscription hostname
# defaults to the container's; run as the `kapacitor` user unless
# KAPACITOR_AS_ROOT=true or the container already runs as another user.
set -euo pipefail

if [ "${1:0:1}" = '-' ]; then
    set -- kapacitord "$@"
fi
export KAPACITOR_HOSTNAME="${KAPACITOR_HOSTNAME:-$HOSTNAME}"

if [ "$(id -u)" -ne 0 ] || [ "${KAPACITOR_AS_ROOT:-}" = true ]; then
    exec "$@"
fi
exec setpriv --reuid kapacitor --regid kapacitor --init-groups "$@"
