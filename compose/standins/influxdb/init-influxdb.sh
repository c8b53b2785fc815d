#!/bin/bash
# First-start initialisation with the upstream image's variables: INFLUXDB_DB,
# INFLUXDB_HTTP_AUTH_ENABLED with INFLUXDB_ADMIN_USER/_PASSWORD, INFLUXDB_USER,
# INFLUXDB_READ_USER and INFLUXDB_WRITE_USER (each with _PASSWORD, granted on
# INFLUXDB_DB), then *.iql and *.sh files in /docker-entrypoint-initdb.d.
# It runs only while the meta folder does not exist yet, on a private port.
set -euo pipefail

meta_dir="${INFLUXDB_META_DIR:-/var/lib/influxdb/meta}"
init_dir=/docker-entrypoint-initdb.d
init_port=8086

auth_enabled() {
    local value="${INFLUXDB_HTTP_AUTH_ENABLED:-}"
    if [ -z "$value" ]; then
        value="$(grep -ioE '^\s*auth-enabled\s*=\s*true' /etc/influxdb/influxdb.conf || true)"
    fi
    [[ "${value,,}" == *true* ]]
}

random_password() { tr -dc 'A-Za-z0-9_-' </dev/urandom | head -c 32; }

has_init_scripts() { [ -n "$(ls -A "$init_dir" 2>/dev/null)" ]; }

needs_init() {
    [ ! -d "$meta_dir" ] || return 1
    [ -n "${INFLUXDB_DB:-}" ] || { auth_enabled && [ -n "${INFLUXDB_ADMIN_USER:-}" ]; } || has_init_scripts
}

influx_exec() {  # influx_exec QUERY: run InfluxQL against the init server
    local login=()
    if auth_enabled && [ -n "${INFLUXDB_ADMIN_USER:-}" ]; then
        login=(-username "$INFLUXDB_ADMIN_USER" -password "$INFLUXDB_ADMIN_PASSWORD")
    fi
    influx -host 127.0.0.1 -port "$init_port" "${login[@]}" -execute "$1"
}

wait_for_server() {
    local first_query="$1" _
    for _ in $(seq 30); do
        if influx -host 127.0.0.1 -port "$init_port" -execute "$first_query" >/dev/null 2>&1; then
            return 0
        fi
        echo "influxdb init process in progress..."
        sleep 1
    done
    echo "influxdb init process failed: the server did not answer" >&2
    exit 1
}

create_user() {  # create_user NAME PASSWORD PRIVILEGE(ALL|READ|WRITE)
    influx_exec "CREATE USER \"$1\" WITH PASSWORD '$2'"
    influx_exec "REVOKE ALL PRIVILEGES FROM \"$1\""
    if [ -n "${INFLUXDB_DB:-}" ]; then
        influx_exec "GRANT $3 ON \"$INFLUXDB_DB\" TO \"$1\""
    fi
}

create_users() {
    local kind user password privilege
    for kind in USER:ALL READ_USER:READ WRITE_USER:WRITE; do
        user="INFLUXDB_${kind%%:*}"
        password="${user}_PASSWORD"
        privilege="${kind##*:}"
        [ -n "${!user:-}" ] || continue
        if [ -z "${!password:-}" ]; then
            printf -v "$password" '%s' "$(random_password)"
            echo "$password:${!password}"
        fi
        create_user "${!user}" "${!password}" "$privilege"
    done
}

run_init_scripts() {
    local f
    for f in "$init_dir"/*; do
        [ -e "$f" ] || continue  # an empty folder leaves the pattern itself
        case "$f" in
            *.sh) echo "init: running $f"; . "$f" ;;
            *.iql) echo "init: running $f"; influx_exec "$(cat "$f")" ;;
            *) echo "init: ignoring $f" ;;
        esac
    done
}

main() {
    needs_init || return 0
    local first_query="SHOW DATABASES"
    if auth_enabled && [ -n "${INFLUXDB_ADMIN_USER:-}" ]; then
        if [ -z "${INFLUXDB_ADMIN_PASSWORD:-}" ]; then
            INFLUXDB_ADMIN_PASSWORD="$(random_password)"
            echo "INFLUXDB_ADMIN_PASSWORD:$INFLUXDB_ADMIN_PASSWORD"
        fi
        first_query="CREATE USER \"$INFLUXDB_ADMIN_USER\" WITH PASSWORD '$INFLUXDB_ADMIN_PASSWORD' WITH ALL PRIVILEGES"
    fi
    INFLUXDB_HTTP_BIND_ADDRESS="127.0.0.1:$init_port" INFLUXDB_HTTP_HTTPS_ENABLED=false influxd "$@" &
    local pid=$!
    wait_for_server "$first_query"
    if [ -n "${INFLUXDB_DB:-}" ]; then
        influx_exec "CREATE DATABASE \"$INFLUXDB_DB\""
    fi
    if auth_enabled && [ -n "${INFLUXDB_ADMIN_USER:-}" ]; then
        create_users
    fi
    run_init_scripts
    kill -TERM "$pid"
    wait "$pid" || { echo "influxdb init process failed: could not stop influxd" >&2; exit 1; }
}

main "$@"
