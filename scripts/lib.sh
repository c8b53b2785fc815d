# Shell helpers shared by tickml's install scripts (sourced, not run).
# The sourcing script sets LOG_TAG (e.g. install-tick) and LOG_DIR first.

log() { printf '[%s] %s\n' "$LOG_TAG" "$*"; }
die() { printf '[%s] ERROR: %s\n' "$LOG_TAG" "$*" >&2; exit 1; }

setup_path() {
    # Go and rustup live outside the default PATH on our machines (and under CI).
    local d
    for d in /usr/local/go/bin "$HOME/.cargo/bin"; do
        if [ -d "$d" ] && [[ ":$PATH:" != *":$d:"* ]]; then
            PATH="$d:$PATH"
        fi
    done
    export PATH
}

# run_logged NAME CMD...: keep noisy build output in $LOG_DIR/NAME.log, show its tail on failure.
run_logged() {
    local name="$1" logfile="$LOG_DIR/$1.log"
    shift
    mkdir -p "$LOG_DIR"
    if ! "$@" >"$logfile" 2>&1; then
        tail -n 40 "$logfile" >&2
        die "$name failed, full log: $logfile"
    fi
}

run_as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# apt_install PKG...: install the packages that are not installed yet; runs
# `apt-get update` only when apt does not know one of them. `make setup` runs the
# install scripts side by side, so apt waits for another's lock instead of failing.
apt_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    for p in "${missing[@]}"; do
        if ! apt-cache show "$p" >/dev/null 2>&1; then
            log "apt-get update"
            run_logged apt-get-update run_as_root apt-get -o DPkg::Lock::Timeout=600 update
            break
        fi
    done
    log "apt-get install ${missing[*]}"
    run_logged apt-get-install run_as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}"
}

# module_json MODULE@VERSION: download into the module cache, print go's JSON about it.
module_json() {
    (cd / && go mod download -json "$1")
}

json_field() {  # json_field FIELD < json  (flat string fields of `go mod download -json`)
    sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}$/\1/p" | head -n1
}

# copy_tree SRC DST: writable copy of a (read-only) module dir, done atomically.
copy_tree() {
    local src="$1" dst="$2"
    shift 2
    [ -d "$dst" ] && return 0
    # make setup runs the install scripts side by side: the parent may not exist yet.
    mkdir -p "$(dirname "$dst")"
    rm -rf "$dst.tmp"
    cp -r "$src" "$dst.tmp"
    chmod -R u+w "$dst.tmp"
    # Further arguments: a command run on the copy (its path appended) before it is kept.
    if [ $# -gt 0 ]; then "$@" "$dst.tmp"; fi
    mv "$dst.tmp" "$dst"
}
