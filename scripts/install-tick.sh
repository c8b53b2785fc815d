#!/usr/bin/env bash
# Install the TICK pieces tickml's integration tests need:
#   * InfluxDB 1.x from Debian's `influxdb` package (the daemon is NOT left running);
#   * kapacitord + kapacitor CLI built from source at a pinned version into a cache
#     outside the repository (no prebuilt downloads are reachable from our machines),
#     with tickml's fixes from scripts/patches/kapacitor/ applied (each says why).
# Safe to run repeatedly: a version stamp makes a second run a fast no-op.
set -euo pipefail

KAPACITOR_VERSION="${TICKML_KAPACITOR_VERSION:-1.8.3}"
CACHE="${TICKML_CACHE:-$HOME/.cache/tickml}"
BIN_DIR="$CACHE/bin"
SRC_DIR="$CACHE/src"
PKGCONFIG_DIR="$CACHE/pkgconfig"
LOG_DIR="$CACHE/logs"
# Bump when the build recipe below changes, so cached binaries are rebuilt.
RECIPE_REVISION=1
PATCH_DIR="$(cd "$(dirname "$0")" && pwd)/patches/kapacitor"

FORCE=0
KAPACITOR_SRC=""
KAPACITOR_COMMIT=""
FLUX_SRC=""

usage() {
    cat <<EOF
Usage: $(basename "$0") [--force] [--help]

Installs influxd (Debian package 'influxdb') if missing and builds kapacitord and
the kapacitor CLI v${KAPACITOR_VERSION} from source, with the fixes in
scripts/patches/kapacitor/ applied, into:
  \${TICKML_CACHE:-\$HOME/.cache/tickml}/bin      (now: $BIN_DIR)

Options:
  --force   rebuild kapacitord even if a binary of the pinned version exists
  --help    show this help

Environment:
  TICKML_CACHE               cache root (binaries, sources, Go and cargo caches)
  TICKML_KAPACITOR_VERSION   kapacitor version to build (default 1.8.3; 1.6+ only)

Needs: root (or sudo for apt-get), Go (>= the go line of kapacitor's go.mod, or
GOTOOLCHAIN=auto with access to the Go module proxy), cargo, and network access
to Debian, the Go module proxy and crates.io. A cold build takes ~11 min on 2 cores.
EOF
}

LOG_TAG=install-tick
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

parse_args() {
    while [ $# -gt 0 ]; do
        case "$1" in
            --force) FORCE=1 ;;
            -h|--help) usage; exit 0 ;;
            *) usage >&2; die "unknown argument: $1" ;;
        esac
        shift
    done
}

install_influxdb() {
    if command -v influxd >/dev/null 2>&1; then
        log "influxd already installed: $(command -v influxd)"
        return 0
    fi
    # policy-rc.d exit 101 tells invoke-rc.d/deb-systemd-invoke not to start the
    # daemon from the package's postinst: tests start influxd on their own ports.
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [ ! -e "$policy" ]; then
        run_as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
        created_policy=1
    fi
    local rc=0
    apt_install influxdb || rc=$?
    if [ "$created_policy" -eq 1 ]; then run_as_root rm -f "$policy"; fi
    [ "$rc" -eq 0 ] || die "apt-get install influxdb failed"
    stop_influxdb_service
}

stop_influxdb_service() {
    # Belt and braces in case the postinst started or enabled the service anyway.
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        log "disabling the influxdb systemd service"
        run_as_root systemctl disable --now influxdb >/dev/null 2>&1 || true
    elif [ -x /etc/init.d/influxdb ] && run_as_root /etc/init.d/influxdb status >/dev/null 2>&1; then
        log "stopping the influxdb init service"
        run_as_root /etc/init.d/influxdb stop >/dev/null 2>&1 || true
    fi
}

check_influxd() {
    local v
    v="$(influxd version 2>&1)" || die "influxd version failed: $v"
    log "influxd OK: $v"
}

install_build_deps() {
    apt_install ca-certificates gcc libc6-dev pkg-config
    command -v go >/dev/null 2>&1 || die "go not found (expected on PATH or in /usr/local/go/bin)"
    if ! command -v cargo >/dev/null 2>&1; then
        # Fallback only (untested here): Debian 12's rustc is 1.63, which is the
        # toolchain flux pins anyway. Our machines normally have rustup's cargo.
        apt_install cargo
    fi
    log "toolchains: $(go version | cut -d' ' -f3-), $(cargo --version)"
}

setup_build_env() {
    # Everything lives under $CACHE so CI can cache/reuse one directory.
    export GOPATH="$CACHE/go"
    export GOMODCACHE="$CACHE/go/mod"
    export GOCACHE="$CACHE/go/build"
    export CARGO_HOME="$CACHE/cargo"
    # -modcacherw: a read-only module cache would make `rm -rf $CACHE` fail.
    export GOFLAGS="-modcacherw"
    # auto: use the local go if it satisfies go.mod, else fetch one from the module proxy.
    export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
    export CGO_ENABLED=1
    # Newer rustc turns new lints into errors under flux's deny(warnings).
    export RUSTFLAGS="--cap-lints=warn"
    # Use the system pkg-config with our own flux.pc (written by build_libflux)
    # instead of influxdata's pkg-config wrapper, which would build libflux inside
    # the module cache, where flux's rust-toolchain.toml still pins a Rust we lack.
    export PKG_CONFIG=pkg-config
    export PKG_CONFIG_PATH="$PKGCONFIG_DIR"
    mkdir -p "$BIN_DIR" "$SRC_DIR" "$PKGCONFIG_DIR" "$CARGO_HOME"
}

# One hash for the patch set: a changed or added patch means a rebuild.
patches_hash() {
    cat "$PATCH_DIR"/*.patch 2>/dev/null | sha256sum | cut -c1-12
}

stamp() {
    printf 'kapacitor v%s recipe %s patches %s\n' "$KAPACITOR_VERSION" "$RECIPE_REVISION" \
        "$(patches_hash)"
}

kapacitord_is_current() {
    [ "$FORCE" -eq 0 ] || return 1
    [ -x "$BIN_DIR/kapacitord" ] && [ -x "$BIN_DIR/kapacitor" ] || return 1
    [ "$(cat "$BIN_DIR/kapacitord.version" 2>/dev/null)" = "$(stamp)" ] || return 1
    "$BIN_DIR/kapacitord" version 2>/dev/null | grep -q "version $KAPACITOR_VERSION "
}

fetch_kapacitor_source() {
    log "fetching github.com/influxdata/kapacitor@v$KAPACITOR_VERSION (Go module proxy)"
    local json dir
    json="$(module_json "github.com/influxdata/kapacitor@v$KAPACITOR_VERSION")"
    dir="$(json_field Dir <<<"$json")"
    KAPACITOR_COMMIT="$(json_field Hash <<<"$json")"
    [ -n "$dir" ] || die "go mod download gave no Dir for kapacitor v$KAPACITOR_VERSION"
    # go install refuses kapacitor (replace directives): build it as the main module.
    KAPACITOR_SRC="$SRC_DIR/kapacitor-v$KAPACITOR_VERSION-patches-$(patches_hash)"
    copy_tree "$dir" "$KAPACITOR_SRC" apply_patches
}

# Apply every patch to the source tree DIR.
apply_patches() {
    local dir="$1" patch
    for patch in "$PATCH_DIR"/*.patch; do
        [ -e "$patch" ] || continue
        log "applying $(basename "$patch")"
        patch --quiet --forward -p1 -d "$dir" <"$patch" \
            || die "$(basename "$patch") does not apply to kapacitor v$KAPACITOR_VERSION"
    done
}

fetch_flux_source() {
    local ver json dir
    ver="$(awk '$1 == "github.com/influxdata/flux" { print $2; exit }' "$KAPACITOR_SRC/go.mod")"
    [ -n "$ver" ] || die "kapacitor v$KAPACITOR_VERSION does not require flux (pre-1.6 is not supported here)"
    log "fetching github.com/influxdata/flux@$ver (libflux Rust sources)"
    json="$(module_json "github.com/influxdata/flux@$ver")"
    dir="$(json_field Dir <<<"$json")"
    FLUX_SRC="$SRC_DIR/flux-$ver"
    copy_tree "$dir" "$FLUX_SRC"
    # flux pins Rust 1.63 here; rustup cannot download it, so use the installed toolchain.
    rm -f "$FLUX_SRC/rust-toolchain.toml" "$FLUX_SRC/rust-toolchain"
}

build_libflux() {
    local libflux="$FLUX_SRC/libflux" libdir="$FLUX_SRC/libflux/lib"
    log "building libflux with cargo (release, several minutes when cold)"
    (cd "$libflux" && run_logged cargo-libflux cargo build --release --locked)
    # Keep only the static archive in libdir so -lflux cannot pick libflux.so.
    mkdir -p "$libdir"
    cp "$libflux/target/release/libflux.a" "$libdir/libflux.a"
    cat >"$PKGCONFIG_DIR/flux.pc" <<EOF
prefix=$libflux
libdir=$libdir
includedir=\${prefix}/include

Name: Flux
Version: ${FLUX_SRC##*/flux-v}
Description: Library for the InfluxData Flux engine
Libs: -L\${libdir} -lflux -ldl -lm
Cflags: -I\${includedir}
EOF
}

build_kapacitor() {
    local out="$CACHE/build-out"
    log "building kapacitord and kapacitor with go (several minutes when cold)"
    rm -rf "$out"
    mkdir -p "$out"
    (cd "$KAPACITOR_SRC" && run_logged go-build-kapacitor go build -o "$out/" \
        -ldflags "-X main.version=$KAPACITOR_VERSION -X main.branch=v$KAPACITOR_VERSION -X main.commit=${KAPACITOR_COMMIT:-unknown}" \
        ./cmd/kapacitord ./cmd/kapacitor)
    # A stale Go build cache can keep linking against libflux.so (Go does not hash
    # pkg-config output into its cache keys); insist on the static libflux.
    if ldd "$out/kapacitord" | grep -q libflux; then
        die "kapacitord links libflux dynamically; remove $GOCACHE and retry"
    fi
    "$out/kapacitord" version >/dev/null || die "built kapacitord does not run"
    mv -f "$out/kapacitord" "$out/kapacitor" "$BIN_DIR/"
    rmdir "$out"
    stamp >"$BIN_DIR/kapacitord.version"
}

install_kapacitor() {
    setup_build_env
    if kapacitord_is_current; then
        log "kapacitord v$KAPACITOR_VERSION already built: $BIN_DIR/kapacitord"
        return 0
    fi
    install_build_deps
    fetch_kapacitor_source
    fetch_flux_source
    build_libflux
    build_kapacitor
    log "kapacitord OK: $("$BIN_DIR/kapacitord" version)"
}

print_paths() {
    log "done"
    printf 'influxd=%s\n' "$(command -v influxd)"
    printf 'kapacitord=%s\n' "$BIN_DIR/kapacitord"
    printf 'kapacitor=%s\n' "$BIN_DIR/kapacitor"
    printf 'cache=%s\n' "$CACHE"
}

main() {
    parse_args "$@"
    setup_path
    mkdir -p "$LOG_DIR"
    install_influxdb
    check_influxd
    install_kapacitor
    print_paths
}

main "$@"
