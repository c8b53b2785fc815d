#!/usr/bin/env bash
# Build the stand-in images that replace, in tickml's own tests, the upstream images
# no registry here can serve. Needs a running Docker engine, the base root filesystem
# from scripts/install-docker.sh and kapacitord from scripts/install-tick.sh.
# Prints the image variables for docker compose on stdout (progress on stderr):
#   INFLUXDB_IMAGE=tickml-standin/influxdb:1.6.7 ...
set -euo pipefail

LOG_TAG=standins
HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${TICKML_CACHE:-$HOME/.cache/tickml}"
LOG_DIR="$CACHE/logs"
ROOTFS="$CACHE/docker/bookworm-minbase.tar"
KAPACITOR_BIN="$CACHE/bin"
CA_BUNDLE="${TICKML_STANDIN_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

BASE_IMAGE=tickml-standin/debian:bookworm
PYTHON_IMAGE=tickml-standin/python:3.11-bookworm
INFLUXDB_IMAGE=tickml-standin/influxdb:1.6.7
KAPACITOR_IMAGE=tickml-standin/kapacitor:1.8.3

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

build_kapacitor() {
    [ -x "$KAPACITOR_BIN/kapacitord" ] || die "no kapacitord in $KAPACITOR_BIN: run make tick"
    local ctx
    ctx="$(staged_context "$HERE/kapacitor" "$KAPACITOR_BIN/kapacitord" "$KAPACITOR_BIN/kapacitor")"
    build_image "$KAPACITOR_IMAGE" "$ctx"
    rm -rf "$ctx"
}

main() {
    case "${1:-}" in
        -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        "") ;;
        *) die "unknown argument: $1" ;;
    esac
    docker info >/dev/null 2>&1 || die "no Docker engine answers"
    build_base
    build_python
    build_image "$INFLUXDB_IMAGE" "$HERE/influxdb"
    build_kapacitor
    printf 'PYTHON_IMAGE=%s\nINFLUXDB_IMAGE=%s\nKAPACITOR_IMAGE=%s\n' \
        "$PYTHON_IMAGE" "$INFLUXDB_IMAGE" "$KAPACITOR_IMAGE"
}

main "$@"
