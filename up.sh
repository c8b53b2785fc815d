#!/usr/bin/env bash
# Start tickml: Docker Compose when a Docker engine answers, otherwise (or with
# --local) the native stack of real local processes. Safe to run twice.
set -euo pipefail
cd "$(dirname "$0")"

usage() {
    cat <<'TXT'
Usage: ./up.sh [--local] [--with-jupyter] [--help]

  --local          run natively (influxd, kapacitord, tickml services) even if Docker works
  --with-jupyter   native only: also start JupyterLab on port 10000 (Docker always does)

First run: creates .env from .env.example with fresh secrets, prepares the dataset
and trains the default model. Stop with ./down.sh (data is kept).
TXT
}

step() { printf '==> %s\n' "$*"; }
die() { printf 'up.sh: error: %s\n' "$*" >&2; exit 1; }

local_mode=0
jupyter_flag=""
for arg in "$@"; do
    case "$arg" in
        --local) local_mode=1 ;;
        --with-jupyter) jupyter_flag="--with-jupyter" ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $arg" ;;
    esac
done

new_secret() { python3 -c 'import secrets; print(secrets.token_urlsafe(18))'; }

create_env() {
    [ -f .env ] && return 0
    step "creating .env with fresh secrets"
    sed -e "s/^GRAFANA_ADMIN_PASSWORD=change-me$/GRAFANA_ADMIN_PASSWORD=$(new_secret)/" \
        -e "s/^JUPYTER_TOKEN=change-me$/JUPYTER_TOKEN=$(new_secret)/" .env.example > .env
    chmod 600 .env
}

load_env() {
    set -a
    # shellcheck disable=SC1091
    . ./.env
    set +a
}

docker_available() {
    command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 \
        && docker compose version >/dev/null 2>&1
}

up_docker() {
    step "starting the stack with Docker Compose (images build on the first run)"
    docker compose up --detach --build --wait \
        || die "a service did not become healthy; read: docker compose logs"
    print_urls
}

up_local() {
    command -v make >/dev/null 2>&1 || die "make is missing (apt-get install make)"
    command -v python3 >/dev/null 2>&1 || die "python3 is missing"
    step "installing tickml into .venv (skipped when up to date)"
    make --silent install
    step "installing influxd and building kapacitord (once, cached in ~/.cache/tickml)"
    make --silent tick >/dev/null
    export TICKML_INFLUX_URL="http://127.0.0.1:${INFLUXDB_PORT}"
    export TICKML_KAPACITOR_URL="http://127.0.0.1:${KAPACITOR_PORT}"
    export TICKML_API_BIND="127.0.0.1:${API_PORT}"
    export TICKML_API_URL="http://127.0.0.1:${API_PORT}"
    export TICKML_LAB_TOKEN="${JUPYTER_TOKEN}"
    step "starting the native stack (logs in run/logs/)"
    # shellcheck disable=SC2086
    .venv/bin/tickml up --rate "${GENERATOR_RATE}" --fraud-share "${GENERATOR_FRAUD_SHARE}" \
        ${TICKML_DEMO_ROWS:+--rows "$TICKML_DEMO_ROWS"} $jupyter_flag \
        || die "the native stack did not come up; read the log named above"
    echo "Grafana and Chronograf run only with Docker; the native stack has none."
    [ -n "$jupyter_flag" ] && echo "Jupyter token: ${JUPYTER_TOKEN}"
    return 0
}

print_urls() {
    cat <<TXT
Grafana     http://${BIND_ADDRESS}:${GRAFANA_PORT}   (user ${GRAFANA_ADMIN_USER}, password in .env)
Chronograf  http://${BIND_ADDRESS}:${CHRONOGRAF_PORT}
model API   http://${BIND_ADDRESS}:${API_PORT}/docs
JupyterLab  http://${BIND_ADDRESS}:${JUPYTER_PORT}/lab?token=${JUPYTER_TOKEN}
InfluxDB    http://${BIND_ADDRESS}:${INFLUXDB_PORT}   Kapacitor http://${BIND_ADDRESS}:${KAPACITOR_PORT}
TXT
}

create_env
load_env
if [ "$local_mode" = 0 ] && docker_available; then
    up_docker
else
    [ "$local_mode" = 1 ] || step "no Docker engine answers: using the native stack"
    up_local
fi
