#!/usr/bin/env bash
# Stop what ./up.sh started. Data is kept; --wipe deletes it too.
set -euo pipefail
cd "$(dirname "$0")"

usage() {
    cat <<'TXT'
Usage: ./down.sh [--wipe] [--help]

  --wipe   also delete the data: InfluxDB and Kapacitor state (Docker volumes, or
           run/ for the native stack). The dataset and models/ are kept.
TXT
}

step() { printf '==> %s\n' "$*"; }

wipe=0
for arg in "$@"; do
    case "$arg" in
        --wipe) wipe=1 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; echo "down.sh: error: unknown option: $arg" >&2; exit 1 ;;
    esac
done

if [ -x .venv/bin/tickml ] && [ -S run/supervisor.sock ]; then
    step "stopping the native stack"
    if [ "$wipe" = 1 ]; then .venv/bin/tickml down --wipe; else .venv/bin/tickml down; fi
fi
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 \
        && docker compose ps --quiet 2>/dev/null | grep -q .; then
    step "stopping the Docker Compose stack"
    docker compose down
    if [ "$wipe" = 1 ]; then
        step "deleting InfluxDB's and Kapacitor's volumes"
        docker volume rm tickml_influxdb-data tickml_kapacitor-data
    fi
fi
step "done"
