#!/usr/bin/env bash
# Install the headless browser the API docs page is tested in: Debian's `chromium` and
# its matching `chromium-driver` (Selenium drives the system browser; nothing is
# downloaded outside Debian's packages), and `curl`, which runs the README's API
# examples in their test. Safe to run repeatedly: a second run only checks that the
# browser and its driver answer.
set -euo pipefail

LOG_TAG=install-browser
CACHE="${TICKML_CACHE:-$HOME/.cache/tickml}"
LOG_DIR="$CACHE/logs"

# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

usage() {
    cat <<TXT
Usage: $(basename "$0") [--help]

Installs Debian's chromium, chromium-driver and curl where missing, then checks
that the browser and its driver start. Logs of the apt steps go to $LOG_DIR.

Environment:
  TICKML_CACHE    cache root for logs (default ~/.cache/tickml)
TXT
}

main() {
    case "${1:-}" in
        -h|--help) usage; exit 0 ;;
        "") ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    apt_install chromium chromium-driver curl
    local browser driver
    browser="$(chromium --version 2>/dev/null)" || die "chromium --version failed: $browser"
    driver="$(chromedriver --version 2>&1)" || die "chromedriver --version failed: $driver"
    log "OK: $browser; $driver"
}

main "$@"
