#!/usr/bin/env bash
# Build the TICK servers tickml's native stack and integration tests run, from their
# Go modules at pinned versions, into a cache outside the repository (no prebuilt
# downloads are reachable from our machines):
#   * influxd + the influx CLI (InfluxDB 1.x);
#   * kapacitord + the kapacitor CLI, with tickml's fixes from scripts/patches/kapacitor/
#     applied (each says why).
# Both link a static libflux, built from the flux version each one's go.mod requires.
# Safe to run repeatedly: version stamps make a second run a fast no-op.
set -euo pipefail

INFLUXDB_VERSION="${TICKML_INFLUXDB_VERSION:-1.12.4}"
KAPACITOR_VERSION="${TICKML_KAPACITOR_VERSION:-1.8.6}"
CACHE="${TICKML_CACHE:-$HOME/.cache/tickml}"
BIN_DIR="$CACHE/bin"
SRC_DIR="$CACHE/src"
PKGCONFIG_DIR="$CACHE/pkgconfig"
BUILD_DIR="$CACHE/build-out"
LOG_DIR="$CACHE/logs"
# Bump when the build recipe below changes, so cached binaries are rebuilt.
RECIPE_REVISION=2
PATCH_DIR="$(cd "$(dirname "$0")" && pwd)/patches/kapacitor"

FORCE=0
BUILD_DEPS_READY=0
MODULE_COMMIT=""

usage() {
    cat <<EOF
Usage: $(basename "$0") [--force] [--help]

Builds influxd and the influx CLI v${INFLUXDB_VERSION}, and kapacitord and the
kapacitor CLI v${KAPACITOR_VERSION} with the fixes in scripts/patches/kapacitor/
applied, from their Go modules into:
  \${TICKML_CACHE:-\$HOME/.cache/tickml}/bin      (now: $BIN_DIR)
Each links a static libflux, built with cargo from the flux version its go.mod
requires and kept per version under $SRC_DIR.

Options:
  --force   rebuild even what a version stamp says is current
  --help    show this help

Environment:
  TICKML_CACHE               cache root (binaries, sources, Go and cargo caches)
  TICKML_INFLUXDB_VERSION    InfluxDB version to build (default 1.12.4; one whose
                             go.mod requires flux)
  TICKML_KAPACITOR_VERSION   kapacitor version to build (default 1.8.6; 1.6+ only)

Needs: root (or sudo) to apt-get gcc and pkg-config, Go (>= the go line of each
go.mod, or GOTOOLCHAIN=auto with access to the Go module proxy), cargo, and network
access to Debian, the Go module proxy and crates.io. A cold build took 11 minutes
on 2 cores with the Go modules and crates already downloaded: libflux 1 to 2 minutes
for each flux version, influxd about 3, kapacitord about 6.
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
    # Use the system pkg-config with our own flux.pc (written by build_libflux, one
    # folder per flux version, chosen by go_build) instead of influxdata's pkg-config
    # wrapper, which would build libflux inside the module cache, where flux's
    # rust-toolchain.toml still pins a Rust we lack.
    export PKG_CONFIG=pkg-config
    # make setup runs the install scripts side by side on a fresh machine: create
    # every folder this script writes into rather than expect one.
    mkdir -p "$BIN_DIR" "$SRC_DIR" "$PKGCONFIG_DIR" "$BUILD_DIR" "$LOG_DIR" \
        "$GOMODCACHE" "$GOCACHE" "$CARGO_HOME"
}

install_build_deps() {
    [ "$BUILD_DEPS_READY" -eq 0 ] || return 0
    apt_install ca-certificates gcc libc6-dev pkg-config
    command -v go >/dev/null 2>&1 || die "go not found (expected on PATH or in /usr/local/go/bin)"
    if ! command -v cargo >/dev/null 2>&1; then
        # Fallback only (untested here): Debian 12's rustc is 1.63, which is the
        # toolchain flux pins anyway. Our machines normally have rustup's cargo.
        apt_install cargo
    fi
    log "toolchains: $(go version | cut -d' ' -f3-), $(cargo --version)"
    BUILD_DEPS_READY=1
}

# fetch_module MODULE@VERSION DST [CMD...]: a writable copy of the module's source at
# DST (CMD run on it before it is kept, see copy_tree); sets MODULE_COMMIT when the
# module proxy knows the commit.
fetch_module() {
    local module="$1" dst="$2" json dir
    shift 2
    log "fetching $module (Go module proxy)"
    json="$(module_json "$module")"
    dir="$(json_field Dir <<<"$json")"
    [ -n "$dir" ] || die "go mod download gave no Dir for $module"
    MODULE_COMMIT="$(json_field Hash <<<"$json")"
    copy_tree "$dir" "$dst" "$@"
}

# flux_version SRC: the flux version the main module in SRC requires.
flux_version() {
    awk '$1 == "github.com/influxdata/flux" { print $2; exit }' "$1/go.mod"
}

# drop_rust_toolchain DIR: flux pins an old Rust (1.63 or so) that rustup cannot
# download here, so build with the installed toolchain.
drop_rust_toolchain() {
    rm -f "$1/rust-toolchain.toml" "$1/rust-toolchain"
}

# build_libflux VERSION: flux VERSION's static libflux and a flux.pc for it in
# $PKGCONFIG_DIR/flux-VERSION, once per version: influxd and kapacitord may each
# require another flux, and a version built for one serves the other.
build_libflux() {
    local ver="$1" src="$SRC_DIR/flux-$1" pcdir="$PKGCONFIG_DIR/flux-$1" start=$SECONDS
    local libdir="$SRC_DIR/flux-$1/libflux/lib"
    if [ "$FORCE" -eq 0 ] && [ -s "$libdir/libflux.a" ] && [ -s "$pcdir/flux.pc" ]; then
        log "libflux $ver already built: $libdir/libflux.a"
        return 0
    fi
    install_build_deps
    fetch_module "github.com/influxdata/flux@$ver" "$src" drop_rust_toolchain
    drop_rust_toolchain "$src"  # a copy made by an earlier recipe may still have it
    log "building libflux $ver with cargo (release, several minutes when cold)"
    (cd "$src/libflux" && run_logged "cargo-libflux-$ver" cargo build --release --locked)
    # Keep only the static archive in libdir so -lflux cannot pick libflux.so.
    mkdir -p "$libdir" "$pcdir"
    cp "$src/libflux/target/release/libflux.a" "$libdir/libflux.a.tmp"
    mv -f "$libdir/libflux.a.tmp" "$libdir/libflux.a"
    cat >"$pcdir/flux.pc.tmp" <<EOF
prefix=$src/libflux
libdir=$libdir
includedir=\${prefix}/include

Name: Flux
Version: ${ver#v}
Description: Library for the InfluxData Flux engine
Libs: -L\${libdir} -lflux -ldl -lm
Cflags: -I\${includedir}
EOF
    mv -f "$pcdir/flux.pc.tmp" "$pcdir/flux.pc"
    log "libflux $ver built in $((SECONDS - start)) s"
}

# go_build NAME SRC VERSION COMMIT PKG...: build PKG... of the main module in SRC with
# cgo against the static libflux its go.mod requires (built first if missing), the
# version stamped as the release builds stamp it, into $BUILD_DIR/NAME.
go_build() {
    local name="$1" src="$2" version="$3" commit="$4" flux bin
    local out="$BUILD_DIR/$1"
    shift 4
    flux="$(flux_version "$src")"
    [ -n "$flux" ] || die "$name v$version does not require flux: this recipe cannot build it"
    build_libflux "$flux"
    log "building $name v$version with go (several minutes when cold)"
    rm -rf "$out"
    mkdir -p "$out"
    (cd "$src" && export PKG_CONFIG_PATH="$PKGCONFIG_DIR/flux-$flux" \
        && run_logged "go-build-$name" go build -o "$out/" \
            -ldflags "-X main.version=$version -X main.branch=v$version -X main.commit=${commit:-unknown}" \
            "$@")
    # A stale Go build cache can keep linking against libflux.so (Go does not hash
    # pkg-config output into its cache keys); insist on the static libflux.
    for bin in "$out"/*; do
        if ldd "$bin" | grep -q libflux; then
            die "$(basename "$bin") links libflux dynamically; remove $GOCACHE and retry"
        fi
    done
}

# install_built NAME STAMP BIN...: move the binaries go_build made to $BIN_DIR, then
# write the stamp that makes the next run a no-op.
install_built() {
    local name="$1" stamp="$2" out="$BUILD_DIR/$1" bin
    shift 2
    for bin in "$@"; do
        mv -f "$out/$bin" "$BIN_DIR/$bin"
    done
    rmdir "$out"
    printf '%s\n' "$stamp" >"$BIN_DIR/$name.version"
}

# is_current NAME STAMP VERSION_OUTPUT BIN...: the binaries exist, were built by this
# recipe (the stamp) and `NAME version` says VERSION_OUTPUT.
is_current() {
    local name="$1" stamp="$2" says="$3" bin
    shift 3
    [ "$FORCE" -eq 0 ] || return 1
    for bin in "$@"; do
        [ -x "$BIN_DIR/$bin" ] || return 1
    done
    [ "$(cat "$BIN_DIR/$name.version" 2>/dev/null)" = "$stamp" ] || return 1
    "$BIN_DIR/$name" version 2>/dev/null | grep -qF "$says"
}

influxd_stamp() {
    printf 'influxdb v%s recipe %s\n' "$INFLUXDB_VERSION" "$RECIPE_REVISION"
}

install_influxdb() {
    local start=$SECONDS src="$SRC_DIR/influxdb-v$INFLUXDB_VERSION"
    if is_current influxd "$(influxd_stamp)" "InfluxDB $INFLUXDB_VERSION " influxd influx; then
        log "influxd v$INFLUXDB_VERSION already built: $BIN_DIR/influxd"
        return 0
    fi
    install_build_deps
    # Built as the main module, so the versions of its go.sum are the ones linked.
    fetch_module "github.com/influxdata/influxdb@v$INFLUXDB_VERSION" "$src"
    go_build influxd "$src" "$INFLUXDB_VERSION" "$MODULE_COMMIT" ./cmd/influxd ./cmd/influx
    "$BUILD_DIR/influxd/influxd" version >/dev/null || die "built influxd does not run"
    install_built influxd "$(influxd_stamp)" influxd influx
    log "influxd OK after $((SECONDS - start)) s: $("$BIN_DIR/influxd" version)"
}

# One hash for the patch set: a changed or added patch means a rebuild.
patches_hash() {
    cat "$PATCH_DIR"/*.patch 2>/dev/null | sha256sum | cut -c1-12
}

kapacitord_stamp() {
    printf 'kapacitor v%s recipe %s patches %s\n' "$KAPACITOR_VERSION" "$RECIPE_REVISION" \
        "$(patches_hash)"
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

install_kapacitor() {
    local start=$SECONDS src="$SRC_DIR/kapacitor-v$KAPACITOR_VERSION-patches-$(patches_hash)"
    if is_current kapacitord "$(kapacitord_stamp)" "version $KAPACITOR_VERSION " kapacitord kapacitor; then
        log "kapacitord v$KAPACITOR_VERSION already built: $BIN_DIR/kapacitord"
        return 0
    fi
    install_build_deps
    # go install refuses kapacitor (replace directives): build it as the main module.
    fetch_module "github.com/influxdata/kapacitor@v$KAPACITOR_VERSION" "$src" apply_patches
    go_build kapacitord "$src" "$KAPACITOR_VERSION" "$MODULE_COMMIT" ./cmd/kapacitord ./cmd/kapacitor
    "$BUILD_DIR/kapacitord/kapacitord" version >/dev/null || die "built kapacitord does not run"
    install_built kapacitord "$(kapacitord_stamp)" kapacitord kapacitor
    log "kapacitord OK after $((SECONDS - start)) s: $("$BIN_DIR/kapacitord" version)"
}

print_paths() {
    log "done"
    local bin
    for bin in influxd influx kapacitord kapacitor; do
        printf '%s=%s\n' "$bin" "$BIN_DIR/$bin"
    done
    printf 'cache=%s\n' "$CACHE"
}

main() {
    parse_args "$@"
    setup_path
    setup_build_env
    install_influxdb
    install_kapacitor
    print_paths
}

main "$@"
