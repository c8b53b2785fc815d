#!/usr/bin/env bash
# Stop what ./up.sh started. Data is kept; --wipe deletes the stack's state too.
set -euo pipefail
cd "$(dirname "$0")"

usage() {
    cat <<'TXT'
Usage: ./down.sh [--wipe] [--help]

  --wipe   also delete the stack's state: InfluxDB, Kapacitor, Grafana and Chronograf
           data (Docker volumes, or run/ for the native stack). The dataset in data/
           and the models in models/ are kept.
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

stop_native() {
    [ -x .venv/bin/tickml ] && [ -S run/supervisor.sock ] || return 0
    step "stopping the native stack"
    if [ "$wipe" = 1 ]; then .venv/bin/tickml down --wipe; else .venv/bin/tickml down; fi
}

stop_docker() {
    command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 || return 0
    docker compose version >/dev/null 2>&1 || return 0
    local args=(down --remove-orphans)
    [ "$wipe" = 1 ] && args+=(--volumes)
    step "stopping the Docker Compose stack"
    [ "$wipe" = 1 ] && step "deleting its volumes: InfluxDB, Kapacitor, Grafana, Chronograf"
    # down needs no secrets, but compose checks every required variable of the file
    # (.env, when it exists, sets them all).
    local name
    for name in JUPYTER_TOKEN GRAFANA_ADMIN_PASSWORD INFLUXDB_ADMIN_USER INFLUXDB_ADMIN_PASSWORD \
                INFLUXDB_TICKML_USER INFLUXDB_TICKML_PASSWORD INFLUXDB_GENERATOR_USER \
                INFLUXDB_GENERATOR_PASSWORD INFLUXDB_READER_USER INFLUXDB_READER_PASSWORD \
                KAPACITOR_ADMIN_USER KAPACITOR_ADMIN_PASSWORD KAPACITOR_TICKML_USER \
                KAPACITOR_TICKML_PASSWORD KAPACITOR_WRITER_USER KAPACITOR_WRITER_PASSWORD; do
        [ -n "${!name:-}" ] || export "$name=unused"
    done
    # Every profile, so the dashboards, MLServer and any extra Kapacitor shard go too.
    docker compose --profile dashboards --profile mlserver --profile shard-2 --profile shard-3 \
        --profile shard-4 "${args[@]}"
}

stop_native
stop_docker
step "done"
