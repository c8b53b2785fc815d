#!/bin/bash
# As the upstream image: flags alone mean influxd; initialise on the first start.
set -euo pipefail

if [ "${1:0:1}" = '-' ]; then
    set -- influxd "$@"
fi
if [ "$1" = influxd ]; then
    init-influxdb.sh "${@:2}"
fi
exec "$@"
