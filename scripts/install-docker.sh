#!/usr/bin/env bash
# Install what tickml's Docker end-to-end tests need, on a Debian machine:
#   * Docker Engine from Debian's `docker.io` package (the daemon is NOT started here:
#     the tests start dockerd when none answers and stop it afterwards);
#   * the Compose v2 plugin, built from its Go module into a cache outside the
#     repository (Debian 12 packages only the old Python docker-compose 1.x, which is
#     installed too, for the test of ./up.sh's message about it);
#   * a minimal Debian root filesystem (mmdebstrap), the base of the stand-in images
#     that replace the upstream images no registry here can serve (compose/standins/).
# Safe to run repeatedly: everything cached is reused.
set -euo pipefail

LOG_TAG=install-docker
COMPOSE_VERSION="${TICKML_COMPOSE_VERSION:-2.40.3}"
CACHE="${TICKML_CACHE:-$HOME/.cache/tickml}"
BIN_DIR="$CACHE/bin"
SRC_DIR="$CACHE/src"
LOG_DIR="$CACHE/logs"
ROOTFS="$CACHE/docker/bookworm-minbase.tar"
PLUGIN_DIR="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"

# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

usage() {
    cat <<TXT
Usage: $(basename "$0") [--help]

Installs Docker Engine (Debian's docker.io) if dockerd is missing, builds the
docker compose v${COMPOSE_VERSION} plugin into $BIN_DIR (linked from $PLUGIN_DIR)
unless a Compose v2 plugin already answers, and writes the stand-in images' base
root filesystem to $ROOTFS.

Environment:
  TICKML_CACHE              cache root (default ~/.cache/tickml)
  TICKML_COMPOSE_VERSION    Compose version to build (default $COMPOSE_VERSION)
TXT
}

install_engine() {
    if command -v dockerd >/dev/null 2>&1; then
        log "dockerd already installed: $(command -v dockerd)"
        return 0
    fi
    # policy-rc.d exit 101: the package must not start the daemon; tests do that.
    local policy=/usr/sbin/policy-rc.d created_policy=0 rc=0
    if [ ! -e "$policy" ]; then
        run_as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
        created_policy=1
    fi
    apt_install docker.io || rc=$?
    if [ "$created_policy" -eq 1 ]; then run_as_root rm -f "$policy"; fi
    [ "$rc" -eq 0 ] || die "apt-get install docker.io failed"
}

compose_v2_answers() {
    docker compose version --short 2>/dev/null | grep -Eq '^v?2\.'
}

build_compose() {
    local bin="$BIN_DIR/docker-compose-v$COMPOSE_VERSION"
    if [ ! -x "$bin" ]; then
        command -v go >/dev/null 2>&1 || die "go not found (needed to build docker compose)"
        export GOPATH="$CACHE/go" GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build"
        export GOFLAGS="-modcacherw" GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" CGO_ENABLED=0
        log "fetching github.com/docker/compose/v2@v$COMPOSE_VERSION (Go module proxy)"
        local json dir src="$SRC_DIR/compose-v$COMPOSE_VERSION"
        json="$(module_json "github.com/docker/compose/v2@v$COMPOSE_VERSION")"
        dir="$(json_field Dir <<<"$json")"
        [ -n "$dir" ] || die "go mod download gave no Dir for compose v$COMPOSE_VERSION"
        # go install refuses the module (exclude directives): build it as the main module.
        copy_tree "$dir" "$src"
        log "building docker compose v$COMPOSE_VERSION (a few minutes when cold)"
        mkdir -p "$BIN_DIR"
        (cd "$src" && run_logged go-build-compose go build -trimpath -o "$bin.tmp" \
            -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=v$COMPOSE_VERSION" ./cmd)
        mv -f "$bin.tmp" "$bin"
    fi
    mkdir -p "$PLUGIN_DIR"
    ln -sf "$bin" "$PLUGIN_DIR/docker-compose"
}

install_compose() {
    if compose_v2_answers; then
        log "docker compose already installed: $(docker compose version --short)"
        return 0
    fi
    build_compose
    compose_v2_answers || die "docker compose does not answer after installing $PLUGIN_DIR/docker-compose"
    log "docker compose OK: $(docker compose version --short)"
}

# The old Python Compose v1, so the tests can check that ./up.sh names it and asks for v2.
install_compose_v1() {
    command -v docker-compose >/dev/null 2>&1 || apt_install docker-compose
}

build_rootfs() {
    if [ -f "$ROOTFS" ] && [ -s "$ROOTFS" ]; then
        log "stand-in base root filesystem already built: $ROOTFS"
        return 0
    fi
    apt_install mmdebstrap
    log "building a minimal Debian bookworm root filesystem for the stand-in images"
    mkdir -p "$(dirname "$ROOTFS")"
    run_logged mmdebstrap mmdebstrap --variant=minbase --format=tar bookworm "$ROOTFS.tmp"
    mv -f "$ROOTFS.tmp" "$ROOTFS"
}

main() {
    case "${1:-}" in -h|--help) usage; exit 0 ;; "") ;; *) usage >&2; die "unknown argument: $1" ;; esac
    setup_path
    install_engine
    install_compose
    install_compose_v1
    build_rootfs
    log "done"
}

main "$@"
