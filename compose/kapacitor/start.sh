#!/bin/bash
# Start kapacitord with its users. Kapacitor has no first-user rule: a user can only
# be created through its API, which (with [http] auth-enabled) needs a user. So a
# kapacitord with HTTP authentication off first runs on 127.0.0.1 inside this
# container, where no other container reaches it, creates or updates the users from
# KAPACITOR_ADMIN_USER/_PASSWORD (admin), KAPACITOR_TICKML_USER/_PASSWORD (the task
# API) and KAPACITOR_WRITER_USER/_PASSWORD (writing points only: InfluxDB's sharded
# subscription), and stops; then the real one starts with authentication on.
#
# The first one keeps its InfluxDB configured, with subscriptions left alone: a
# kapacitord started without it revokes the token InfluxDB's subscription sends,
# and the real one keeps that subscription (it still names this host), so every
# write InfluxDB forwards is refused and the stream tasks receive nothing.
set -euo pipefail

PRIVATE=127.0.0.1:9093
API="http://$PRIVATE/kapacitor/v1"
HANDLERS=/etc/kapacitor/disabled-handlers

die() { echo "start.sh: $*" >&2; exit 1; }

disabled_handlers() {  # the handlers file's names, comma-separated (comments left out)
    [ -r "$HANDLERS" ] || die "$HANDLERS is missing: mount compose/kapacitor/disabled-handlers"
    sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$HANDLERS" | paste -sd, -
}

check_login() {  # check_login PREFIX: the pair is set and safe inside a JSON string
    local user="${1}_USER" password="${1}_PASSWORD"
    [ -n "${!user:-}" ] && [ -n "${!password:-}" ] || die "$user and $password must be set"
    [[ "${!user}${!password}" != *[\"\\]* ]] || die "$user and $password cannot hold \" or \\"
    [ "${!password}" != change-me ] || die "$password is change-me: run ./up.sh to generate it"
}

put_user() {  # put_user NAME PASSWORD TYPE PERMISSIONS_JSON: create, or update if present
    local body="{\"password\":\"$2\",\"type\":\"$3\",\"permissions\":$4}"
    if curl -fsS -o /dev/null "$API/users/$1" 2>/dev/null; then
        curl -fsS -o /dev/null -X PATCH "$API/users/$1" -d "$body"
    else
        curl -fsS -o /dev/null -X POST "$API/users" -d "{\"name\":\"$1\",${body#\{}"
    fi
}

create_users() {
    KAPACITOR_HTTP_AUTH_ENABLED=false KAPACITOR_HTTP_BIND_ADDRESS="$PRIVATE" \
        KAPACITOR_INFLUXDB_0_DISABLE_SUBSCRIPTIONS=true KAPACITOR_STATS_ENABLED=false \
        kapacitord -disable-handlers "$DISABLED" "$@" &
    local pid=$! _
    for _ in $(seq 120); do
        curl -fsS -o /dev/null "$API/ping" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || die "kapacitord exited while creating users"
        sleep 0.5
    done
    put_user "$KAPACITOR_ADMIN_USER" "$KAPACITOR_ADMIN_PASSWORD" admin '[]'
    put_user "$KAPACITOR_TICKML_USER" "$KAPACITOR_TICKML_PASSWORD" normal '["api"]'
    put_user "$KAPACITOR_WRITER_USER" "$KAPACITOR_WRITER_PASSWORD" normal '["write_points"]'
    kill -TERM "$pid"
    wait "$pid" || true
    echo "start.sh: Kapacitor users $KAPACITOR_ADMIN_USER and $KAPACITOR_TICKML_USER in place"
}

check_login KAPACITOR_ADMIN
check_login KAPACITOR_TICKML
check_login KAPACITOR_WRITER
DISABLED="$(disabled_handlers)"
create_users "$@"
exec kapacitord -disable-handlers "$DISABLED" "$@"
