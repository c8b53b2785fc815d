#!/usr/bin/env bash
# Start tickml: Docker Compose when a Docker engine answers, otherwise (or with
# --local) the native stack of real local processes. Safe to run twice.
set -euo pipefail
cd "$(dirname "$0")"

# The oldest Docker Engine and Compose tickml is tested with (raise them to see the message).
MIN_ENGINE="${TICKML_MIN_DOCKER_ENGINE:-20.10}"
MIN_COMPOSE="${TICKML_MIN_DOCKER_COMPOSE:-2.20}"
# Free space Docker needs for the first build and the images (the tickml image is 1.5 GB).
MIN_FREE_GB="${TICKML_MIN_FREE_GB:-5}"
# The upstream images, by the variable that names each (see .env.example).
IMAGE_VARIABLES=(INFLUXDB_IMAGE KAPACITOR_IMAGE PYTHON_IMAGE GRAFANA_IMAGE CHRONOGRAF_IMAGE)

usage() {
    cat <<'TXT'
Usage: ./up.sh [--local] [--shards N] [--with-jupyter] [--without-dashboards] [--help]

  --local               run natively (influxd, kapacitord, tickml services) even if
                        Docker works
  --shards N            spread the stream over N Kapacitor + agent pairs through one
                        InfluxDB subscription in ANY mode (default: SHARDS in .env, 1;
                        up to 4 with Docker); a changed count takes effect on this start
  --backend NAME        Docker: the model server the agents score against, tickml (its
                        API, the default: BACKEND in .env) or mlserver (MLServer's V2
                        endpoint, serving the same production model)
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
shards_flag=""
backend_flag=""
while [ $# -gt 0 ]; do
    case "$1" in
        --local) local_mode=1 ;;
        --with-jupyter) jupyter_flag="--with-jupyter" ;;
        --without-dashboards) dashboards=0 ;;
        --shards) [ $# -ge 2 ] || die "--shards needs a number"; shards_flag="$2"; shift ;;
        --shards=*) shards_flag="${1#--shards=}" ;;
        --backend) [ $# -ge 2 ] || die "--backend needs tickml or mlserver"; backend_flag="$2"; shift ;;
        --backend=*) backend_flag="${1#--backend=}" ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
    shift
done

# new_secret: 24 random characters from the kernel, with no python3 needed.
new_secret() {
    local secret
    secret="$(LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 24 || true)"
    [ "${#secret}" -eq 24 ] || die "could not read random bytes from /dev/urandom for a secret"
    printf '%s\n' "$secret"
}

# The secrets .env must hold: each is change-me in .env.example, generated here.
SECRETS=(GRAFANA_ADMIN_PASSWORD JUPYTER_TOKEN
         INFLUXDB_ADMIN_PASSWORD INFLUXDB_TICKML_PASSWORD INFLUXDB_GENERATOR_PASSWORD
         INFLUXDB_READER_PASSWORD KAPACITOR_ADMIN_PASSWORD KAPACITOR_TICKML_PASSWORD
         KAPACITOR_WRITER_PASSWORD
         CHRONOGRAF_PASSWORD)

# with_secrets: .env.example's lines on stdin, each change-me secret freshly generated.
with_secrets() {
    local name line
    while IFS= read -r line || [ -n "$line" ]; do
        for name in "${SECRETS[@]}"; do
            [ "$line" = "$name=change-me" ] && line="$name=$(new_secret)"
        done
        printf '%s\n' "$line"
    done
}

create_env() {
    if [ -f .env ]; then
        add_missing_variables
        return 0
    fi
    step "creating .env with fresh secrets"
    local tmp
    tmp="$(umask 077 && mktemp .env.XXXXXX)"  # private from its first byte
    with_secrets < .env.example > "$tmp"
    mv "$tmp" .env
}

# add_missing_variables: an older .env gains the variables (logins) added since.
add_missing_variables() {
    local line key missing=()
    local -A present=()
    while IFS= read -r line || [ -n "$line" ]; do
        [[ "$line" =~ ^([A-Za-z_][A-Za-z0-9_]*)= ]] && present["${BASH_REMATCH[1]}"]=1
    done < .env
    while IFS= read -r line || [ -n "$line" ]; do
        [[ "$line" =~ ^([A-Za-z_][A-Za-z0-9_]*)= ]] || continue
        key="${BASH_REMATCH[1]}"
        [ -n "${present[$key]:-}" ] || missing+=("$line")
    done < .env.example
    [ "${#missing[@]}" -eq 0 ] && return 0
    step "adding to .env: ${missing[*]%%=*}"
    printf '%s\n' "${missing[@]}" | with_secrets >> .env
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
    for name in "${SECRETS[@]}"; do
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

# write_htpasswd: Chronograf's login (HTTP basic) from CHRONOGRAF_USER/_PASSWORD, as an
# Apache MD5 hash; the password goes to openssl on stdin, never in an argument.
write_htpasswd() {
    command -v openssl >/dev/null 2>&1 \
        || die "openssl is missing (apt-get install openssl): it hashes Chronograf's password"
    local hash tmp
    hash="$(printf '%s\n' "$CHRONOGRAF_PASSWORD" | openssl passwd -apr1 -stdin)" \
        || die "openssl could not hash CHRONOGRAF_PASSWORD"
    tmp="$(mktemp .chronograf.htpasswd.XXXXXX)"
    printf '%s:%s\n' "$CHRONOGRAF_USER" "$hash" > "$tmp"
    chmod 644 "$tmp"  # a hash only; Chronograf's own user must read it
    mv "$tmp" .chronograf.htpasswd
}

# published_ports: the host ports this project's running containers publish.
published_ports() {
    docker compose ps --format '{{.Ports}}' 2>/dev/null | grep -oE ':[0-9]+->' | tr -dc '0-9\n' \
        || true
}

# port_listens HOST PORT: true when something accepts connections there.
port_listens() {
    local host="$1"
    [ "$host" = 0.0.0.0 ] && host=127.0.0.1
    timeout 1 bash -c "exec 3<>/dev/tcp/$host/$2" 2>/dev/null
}

# check_ports_free NAME...: each *_PORT variable's port is free, or this stack's own.
check_ports_free() {
    local name ours
    ours=" $(published_ports | tr '\n' ' ') "
    for name in "$@"; do
        [[ "$ours" == *" ${!name} "* ]] && continue
        port_listens "$BIND_ADDRESS" "${!name}" \
            && die "port ${!name} ($name) is already in use by another program: stop it, or set $name in .env to a free port"
    done
    return 0
}

# check_disk_space: Docker's data folder has room for the images and the first build.
check_disk_space() {
    local root free_kb
    root="$(docker info --format '{{.DockerRootDir}}' 2>/dev/null)" || return 0
    free_kb="$(df -Pk "$root" 2>/dev/null | awk 'NR == 2 { print $4 }')" || return 0
    [ -n "$free_kb" ] || return 0  # the folder lives in a VM (Docker Desktop): not ours to see
    [ "$free_kb" -ge $((MIN_FREE_GB * 1024 * 1024)) ] \
        || die "only $((free_kb / 1024 / 1024)) GB free for Docker in $root; tickml's images and first build need about $MIN_FREE_GB GB: free some space (docker system prune removes unused images), or run ./up.sh --local"
}

# missing_images: the upstream images (by variable) that are not on this machine.
missing_images() {
    local name
    for name in "${IMAGE_VARIABLES[@]}"; do
        [ -n "${!name:-}" ] || continue
        docker image inspect "${!name}" >/dev/null 2>&1 || printf '%s (%s)\n' "${!name}" "$name"
    done
}

# explain_failure LOG: the cause of a failed `docker compose up`, named, with the way out.
explain_failure() {
    local log="$1" missing
    if grep -qiE 'no space left on device' "$log"; then
        die "the disk is full (no space left on device): free some space (docker system prune removes unused images) and run ./up.sh again"
    fi
    if grep -qiE 'address already in use|port is already allocated' "$log"; then
        die "a port the stack publishes is taken by another program (see above): stop it, or set its *_PORT variable in .env to a free port"
    fi
    missing="$(missing_images | paste -sd, - | sed 's/,/, /g')"
    if [ -n "$missing" ] && grep -qiE 'pull|registry|resolve|manifest|TLS handshake|lookup' "$log"; then
        die "images could not be pulled: $missing (the image registry is out of reach from here). Two ways out: point INFLUXDB_IMAGE, KAPACITOR_IMAGE, PYTHON_IMAGE, GRAFANA_IMAGE or CHRONOGRAF_IMAGE at a mirror or a local build (see .env.example), or run ./up.sh --local"
    fi
    if docker compose logs --no-log-prefix users 2>/dev/null \
            | grep -qE 'authorization failed|unable to parse authentication credentials|refused tickml.s request'; then
        die "InfluxDB refused the admin login in .env (INFLUXDB_ADMIN_USER/_PASSWORD): its data was set up with another .env's passwords. Put that .env back, or start afresh with ./down.sh --wipe (which deletes the stack's data)"
    fi
    die "a service did not become healthy: $(unhealthy_services); read: docker compose logs SERVICE"
}

# unhealthy_services: the services that exited with an error or are not healthy.
unhealthy_services() {
    local found
    found="$(docker compose ps --all --format '{{.Service}}|{{.State}}|{{.Health}}|{{.ExitCode}}' 2>/dev/null \
        | awk -F'|' '($2 == "exited" && $4 != 0) || $3 == "unhealthy" || $2 == "restarting" { print $1 }' \
        | paste -sd, - | sed 's/,/, /g')"
    printf '%s\n' "${found:-none reported}"
}

# MAX_DOCKER_SHARDS: the shards docker-compose.yml defines (kapacitor, kapacitor-2, ...).
MAX_DOCKER_SHARDS=4

# choose_shards: SHARDS from --shards, else .env; a whole number from 1 on.
choose_shards() {
    SHARDS="${shards_flag:-${SHARDS:-1}}"
    [[ "$SHARDS" =~ ^[1-9][0-9]*$ ]] || die "SHARDS (or --shards) must be a whole number from 1, not '$SHARDS'"
    export SHARDS
}

# choose_backend: the agents' model server, and the URL they score at (MLServer's V2
# endpoint names the production model, read from models/production.json).
choose_backend() {
    BACKEND="${backend_flag:-${BACKEND:-tickml}}"
    case "$BACKEND" in
        tickml) export SCORING_URL="" ;;
        mlserver)
            local model
            model="$(sed -n 's/.*"name": *"\([^"]*\)".*/\1/p' models/production.json 2>/dev/null | head -n1)"
            export SCORING_URL="http://mlserver:8080/v2/models/${model:-fraud-lgbm}/infer" ;;
        *) die "BACKEND (or --backend) is tickml or mlserver, not '$BACKEND'" ;;
    esac
}

# shard_environment: what Compose needs to run SHARDS shards.
shard_environment() {
    local n urls="http://kapacitor:9092"
    for n in $(seq 2 "$SHARDS"); do urls+=",http://kapacitor-$n:9092"; done
    export KAPACITOR_SHARD_URLS="$urls"
    if [ "$SHARDS" -gt 1 ]; then export KAPACITOR_SHARDED=true; else export KAPACITOR_SHARDED=false; fi
}

# remove_extra_shards: the shards above SHARDS, left from a start with more.
remove_extra_shards() {
    local n
    for n in $(seq $((SHARDS + 1)) "$MAX_DOCKER_SHARDS"); do
        if [ -n "$(docker compose --profile "shard-$n" ps --all --quiet "kapacitor-$n" "udf-$n" 2>/dev/null)" ]; then
            step "removing Kapacitor shard $n (SHARDS is $SHARDS)"
            docker compose --profile "shard-$n" rm --stop --force "kapacitor-$n" "udf-$n" >/dev/null
        fi
    done
}

up_docker() {
    check_docker_versions
    # The API's replicas publish the ports from API_PORT on.
    export API_PORT_LAST="${API_PORT_LAST:-$((API_PORT + 9))}"
    [ "$SHARDS" -le "$MAX_DOCKER_SHARDS" ] \
        || die "SHARDS is $SHARDS; docker-compose.yml defines $MAX_DOCKER_SHARDS shards (copy the kapacitor-4 and udf-4 services for more), or run ./up.sh --local"
    shard_environment
    # Containers run as you, so data/, models/ and notebooks/ stay yours.
    export HOST_UID="${HOST_UID:-$(id -u)}" HOST_GID="${HOST_GID:-$(id -g)}"
    local profiles=() ports=(INFLUXDB_PORT KAPACITOR_PORT API_PORT JUPYTER_PORT) status
    if [ "$dashboards" = 1 ]; then
        profiles=(--profile dashboards)
        ports+=(GRAFANA_PORT CHRONOGRAF_PORT)
        write_htpasswd
    fi
    local n
    for n in $(seq 2 "$SHARDS"); do profiles+=(--profile "shard-$n"); done
    choose_backend
    [ "$BACKEND" = mlserver ] && profiles+=(--profile mlserver)
    check_ports_free "${ports[@]}"
    check_disk_space
    remove_extra_shards
    step "starting the stack with Docker Compose (images build on the first run)"
    COMPOSE_LOG="$(mktemp)"  # global: the EXIT trap runs after this function returned
    trap 'rm -f "$COMPOSE_LOG"' EXIT
    status=0
    docker compose "${profiles[@]}" up --detach --build --wait --remove-orphans 2>&1 \
        | tee "$COMPOSE_LOG" || status=$?
    if [ "$status" -ne 0 ]; then
        explain_failure "$COMPOSE_LOG"
    fi
    # A rebuild leaves the previous tickml image untagged (1.5 GB): remove it unless in use.
    docker image prune --force --filter "label=org.opencontainers.image.title=tickml" >/dev/null
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
    # Every native tickml service logs in as tickml (read/write `fraud`, the task API).
    export TICKML_INFLUX_USER="${INFLUXDB_TICKML_USER}" TICKML_INFLUX_PASSWORD="${INFLUXDB_TICKML_PASSWORD}"
    export TICKML_KAPACITOR_USER="${KAPACITOR_TICKML_USER}" TICKML_KAPACITOR_PASSWORD="${KAPACITOR_TICKML_PASSWORD}"
    step "starting the native stack (logs in run/logs/)"
    # shellcheck disable=SC2086
    .venv/bin/tickml up --rate "${GENERATOR_RATE}" --fraud-share "${GENERATOR_FRAUD_SHARE}" \
        --shards "$SHARDS" \
        ${TICKML_DEMO_ROWS:+--rows "$TICKML_DEMO_ROWS"} $jupyter_flag \
        || die "the native stack did not come up; read the log named above"
    echo "Grafana and Chronograf run only with Docker; the native stack has none."
    echo "InfluxDB and Kapacitor logins: INFLUXDB_ADMIN_* and KAPACITOR_ADMIN_* in .env"
    [ -n "$jupyter_flag" ] && echo "Jupyter token: ${JUPYTER_TOKEN}"
    return 0
}

print_urls() {
    if [ "$dashboards" = 1 ]; then
        echo "Grafana     http://${BIND_ADDRESS}:${GRAFANA_PORT}   (user ${GRAFANA_ADMIN_USER}, password in .env)"
        echo "Chronograf  http://${BIND_ADDRESS}:${CHRONOGRAF_PORT}   (user ${CHRONOGRAF_USER}, password in .env)"
    fi
    cat <<TXT
model API   http://${BIND_ADDRESS}:${API_PORT}/docs
JupyterLab  http://${BIND_ADDRESS}:${JUPYTER_PORT}/lab   (token: JUPYTER_TOKEN in .env)
InfluxDB    http://${BIND_ADDRESS}:${INFLUXDB_PORT}   (user ${INFLUXDB_ADMIN_USER}, password in .env)
Kapacitor   http://${BIND_ADDRESS}:${KAPACITOR_PORT}   (user ${KAPACITOR_ADMIN_USER}, password in .env)
TXT
}

create_env
load_env
check_secrets
choose_shards
if [ "$local_mode" = 0 ] && docker_engine_answers; then
    up_docker
else
    [ "$local_mode" = 1 ] || step "no Docker engine answers: using the native stack"
    up_local
fi
