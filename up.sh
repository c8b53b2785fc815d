#!/usr/bin/env bash
# Start tickml: Docker Compose when a Docker engine answers, otherwise (or with
# --local) the native stack of real local processes. Safe to run twice.
set -euo pipefail
cd "$(dirname "$0")"

# The oldest Docker Engine and Compose tickml is tested with (raise them to see the message).
MIN_ENGINE="${TICKML_MIN_DOCKER_ENGINE:-20.10}"
MIN_COMPOSE="${TICKML_MIN_DOCKER_COMPOSE:-2.20}"

usage() {
    cat <<'TXT'
Usage: ./up.sh [--local] [--with-jupyter] [--without-dashboards] [--help]

  --local               run natively (influxd, kapacitord, tickml services) even if
                        Docker works
  --with-jupyter        native only: also start JupyterLab on port 10000 (Docker always does)
  --without-dashboards  Docker only: start everything but Grafana and Chronograf

First run: creates .env from .env.example with fresh secrets, prepares the dataset
and trains the default model. Variables set in your environment win over .env
(for example INFLUXDB_IMAGE, API_PORT). Stop with ./down.sh (data is kept).
TXT
}

step() { printf '==> %s\n' "$*"; }
die() { printf 'up.sh: error: %s\n' "$*" >&2; exit 1; }

local_mode=0
jupyter_flag=""
dashboards=1
for arg in "$@"; do
    case "$arg" in
        --local) local_mode=1 ;;
        --with-jupyter) jupyter_flag="--with-jupyter" ;;
        --without-dashboards) dashboards=0 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $arg" ;;
    esac
done

# new_secret: 24 random characters from the kernel, with no python3 needed.
new_secret() {
    local secret
    secret="$(LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 24 || true)"
    [ "${#secret}" -eq 24 ] || die "could not read random bytes from /dev/urandom for a secret"
    printf '%s\n' "$secret"
}

create_env() {
    [ -f .env ] && return 0
    step "creating .env with fresh secrets"
    local tmp grafana jupyter
    grafana="$(new_secret)"
    jupyter="$(new_secret)"
    tmp="$(umask 077 && mktemp .env.XXXXXX)"  # private from its first byte
    sed -e "s/^GRAFANA_ADMIN_PASSWORD=change-me$/GRAFANA_ADMIN_PASSWORD=$grafana/" \
        -e "s/^JUPYTER_TOKEN=change-me$/JUPYTER_TOKEN=$jupyter/" .env.example > "$tmp"
    mv "$tmp" .env
}

# load_env: export .env's KEY=VALUE lines, except keys already set by the caller.
load_env() {
    local line key value
    while IFS= read -r line || [ -n "$line" ]; do
        [[ "$line" =~ ^[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
        key="${BASH_REMATCH[1]}"
        value="${BASH_REMATCH[2]}"
        value="${value%\"}"; value="${value#\"}"
        [ -n "${!key+set}" ] || export "$key=$value"
    done < .env
}

check_secrets() {
    local name
    for name in GRAFANA_ADMIN_PASSWORD JUPYTER_TOKEN; do
        case "${!name:-}" in
            ""|change-me) die "$name in .env is '${!name:-}': set a secret there, or delete .env and run ./up.sh again to generate one" ;;
        esac
    done
}

# version_at_least HAVE WANT: true when HAVE (e.g. 2.40.3, v2.24.1-desktop.1) >= WANT.
version_at_least() {
    local have="${1#v}"
    have="${have%%[-+]*}"
    [ "$(printf '%s\n%s\n' "$2" "$have" | sort -V | head -n1)" = "$2" ]
}

docker_engine_answers() {
    command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1
}

# check_docker_versions: stop with what to install when Compose or the engine is too old.
check_docker_versions() {
    local engine compose
    engine="$(docker version --format '{{.Server.Version}}' 2>/dev/null || echo unknown)"
    version_at_least "$engine" "$MIN_ENGINE" \
        || die "Docker Engine $engine is too old: install Docker Engine $MIN_ENGINE or newer (or run ./up.sh --local)"
    if ! compose="$(docker compose version --short 2>/dev/null)"; then
        if command -v docker-compose >/dev/null 2>&1; then
            die "only Compose v1 ($(docker-compose version --short 2>/dev/null || echo docker-compose)) is installed; tickml needs the Compose v2 plugin ($MIN_COMPOSE or newer, 'docker compose'): install docker-compose-plugin (Docker's apt repository), docker-compose-v2 (Ubuntu) or Docker Desktop, or run ./up.sh --local"
        fi
        die "'docker compose' (the Compose v2 plugin) is missing: install docker-compose-plugin or Docker Desktop, or run ./up.sh --local"
    fi
    version_at_least "$compose" "$MIN_COMPOSE" \
        || die "Docker Compose $compose is too old: install Compose $MIN_COMPOSE or newer, or run ./up.sh --local"
}

up_docker() {
    check_docker_versions
    # Containers run as you, so data/, models/ and notebooks/ stay yours.
    export HOST_UID="${HOST_UID:-$(id -u)}" HOST_GID="${HOST_GID:-$(id -g)}"
    local profiles=()
    [ "$dashboards" = 1 ] && profiles=(--profile dashboards)
    step "starting the stack with Docker Compose (images build on the first run)"
    docker compose "${profiles[@]}" up --detach --build --wait --remove-orphans \
        || die "a service did not become healthy; read: docker compose logs"
    print_urls
}

up_local() {
    command -v make >/dev/null 2>&1 || die "make is missing (apt-get install make)"
    command -v python3 >/dev/null 2>&1 || die "python3 is missing (apt-get install python3 python3-venv)"
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
    if [ "$dashboards" = 1 ]; then
        echo "Grafana     http://${BIND_ADDRESS}:${GRAFANA_PORT}   (user ${GRAFANA_ADMIN_USER}, password in .env)"
        echo "Chronograf  http://${BIND_ADDRESS}:${CHRONOGRAF_PORT}"
    fi
    cat <<TXT
model API   http://${BIND_ADDRESS}:${API_PORT}/docs
JupyterLab  http://${BIND_ADDRESS}:${JUPYTER_PORT}/lab   (token: JUPYTER_TOKEN in .env)
InfluxDB    http://${BIND_ADDRESS}:${INFLUXDB_PORT}   Kapacitor http://${BIND_ADDRESS}:${KAPACITOR_PORT}
TXT
}

create_env
load_env
check_secrets
if [ "$local_mode" = 0 ] && docker_engine_answers; then
    up_docker
else
    [ "$local_mode" = 1 ] || step "no Docker engine answers: using the native stack"
    up_local
fi
