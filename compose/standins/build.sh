#!/usr/bin/env bash
# Build the stand-in images that replace, in tickml's own tests, the upstream images
# no registry here can serve. Needs a running Docker engine, the base root filesystem
# from scripts/install-docker.sh and influxd and kapacitord from scripts/install-tick.sh.
# Prints the image variables for docker compose on stdout (progress on stderr):
#   INFLUXDB_IMAGE=tickml-standin/influxdb:1.12.4 ...
set -euo pipefail

LOG_TAG=standins
HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${TICKML_CACHE:-$HOME/.cache/tickml}"
LOG_DIR="$CACHE/logs"
ROOTFS="$CACHE/docker/bookworm-minbase.tar"
TICK_BIN="$CACHE/bin"
CA_BUNDLE="${TICKML_STANDIN_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

BASE_IMAGE=tickml-standin/debian:bookworm
PYTHON_IMAGE=tickml-standin/python:3.11-bookworm
# The tags name the versions scripts/install-tick.sh builds; the binaries are checked.
INFLUXDB_VERSION=1.12.4
KAPACITOR_VERSION=1.8.6
INFLUXDB_IMAGE=tickml-standin/influxdb:$INFLUXDB_VERSION
KAPACITOR_IMAGE=tickml-standin/kapacitor:$KAPACITOR_VERSION

# shellcheck source=scripts/lib.sh
. "$HERE/../../scripts/lib.sh"
log() { printf '[%s] %s\n' "$LOG_TAG" "$*" >&2; }

build_base() {
    if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        return 0
    fi
    [ -s "$ROOTFS" ] || die "no base root filesystem at $ROOTFS: run scripts/install-docker.sh"
    log "importing $BASE_IMAGE from $ROOTFS"
    docker import --change 'CMD ["bash"]' "$ROOTFS" "$BASE_IMAGE" >/dev/null
}

# build_image TAG CONTEXT: docker build with the base as a build argument.
build_image() {
    log "building $1"
    run_logged "build-${1//[\/:]/-}" docker build --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$1" "$2"
}

# staged_context SRC FILE...: a temporary copy of SRC plus the given files.
staged_context() {
    local src="$1" dir
    shift
    dir="$(mktemp -d)"
    cp -r "$src"/. "$dir"/
    cp "$@" "$dir"/
    printf '%s\n' "$dir"
}

build_python() {
    [ -s "$CA_BUNDLE" ] || die "no CA bundle at $CA_BUNDLE (set TICKML_STANDIN_CA_BUNDLE)"
    local ctx
    ctx="$(staged_context "$HERE/python" "$CA_BUNDLE")"
    build_image "$PYTHON_IMAGE" "$ctx"
    rm -rf "$ctx"
}

# check_binaries DAEMON VERSION_OUTPUT BIN...: the binaries are in $TICK_BIN and
# `DAEMON version` names the version the image's tag does.
check_binaries() {
    local daemon="$1" says="$2" bin
    shift 2
    for bin in "$daemon" "$@"; do
        [ -x "$TICK_BIN/$bin" ] || die "no $bin in $TICK_BIN: run make tick"
    done
    "$TICK_BIN/$daemon" version 2>/dev/null | grep -qF "$says" \
        || die "$TICK_BIN/$daemon is not '$says': run make tick"
}

build_influxdb() {
    check_binaries influxd "InfluxDB $INFLUXDB_VERSION " influx
    local ctx
    ctx="$(staged_context "$HERE/influxdb" "$TICK_BIN/influxd" "$TICK_BIN/influx")"
    build_image "$INFLUXDB_IMAGE" "$ctx"
    rm -rf "$ctx"
}

build_kapacitor() {
    check_binaries kapacitord "version $KAPACITOR_VERSION " kapacitor
    local ctx
    ctx="$(staged_context "$HERE/kapacitor" "$TICK_BIN/kapacitord" "$TICK_BIN/kapacitor")"
    build_image "$KAPACITOR_IMAGE" "$ctx"
    rm -rf "$ctx"
}

main() {
    case "${1:-}" in
        -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        "") ;;
        *) die "unknown argument: $1" ;;
    esac
    docker info >/dev/null 2>&1 || die "no Docker engine answers"
    build_base
    build_python
    build_influxdb
    build_kapacitor
    printf 'PYTHON_IMAGE=%s\nINFLUXDB_IMAGE=%s\nKAPACITOR_IMAGE=%s\n' \
        "$PYTHON_IMAGE" "$INFLUXDB_IMAGE" "$KAPACITOR_IMAGE"
}

main "$@"
