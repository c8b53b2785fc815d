#!/usr/bin/env bash
# Build the small environment the KServe manifests are checked in: the KServe Python
# SDK (kserve 0.21.0) with only what `import kserve` needs, from scripts/kserve-sdk.lock,
# in its own venv, since kserve cannot share tickml's (see scripts/kserve-sdk.in).
# tests/stack/test_kserve_manifests.py runs scripts/check_kserve_manifests.py with it.
# Safe to run repeatedly: a venv built from the same lock is only checked.
set -euo pipefail

LOG_TAG=install-kserve-sdk
CACHE="${TICKML_CACHE:-$HOME/.cache/tickml}"
LOG_DIR="$CACHE/logs"
VENV="$CACHE/kserve-sdk"
KSERVE=kserve==0.21.0
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
LOCK="$ROOT/scripts/kserve-sdk.lock"

# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

usage() {
    cat <<TXT
Usage: $(basename "$0") [--help]

Creates $VENV with $KSERVE (without its dependencies) and the packages of
scripts/kserve-sdk.lock, installed with uv. Logs go to $LOG_DIR.

Environment:
  TICKML_CACHE    cache root (default ~/.cache/tickml)
  PYTHON          the Python the venv is made from (default python3)
  UV              the uv to install with (default: tickml's .venv/bin/uv, else uv on PATH)
TXT
}

imports() {
    "$VENV/bin/python" -W error -c \
        'import kserve; kserve.V1alpha1ServingRuntime; kserve.V1beta1InferenceService'
}

main() {
    case "${1:-}" in
        -h|--help) usage; exit 0 ;;
        "") ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    local uv="${UV:-$ROOT/.venv/bin/uv}" stamp
    [ -x "$uv" ] || uv="$(command -v uv)" || die "uv not found: run make install first"
    stamp="$KSERVE $(sha256sum "$LOCK" | cut -d' ' -f1)"
    if [ "$(cat "$VENV/.installed" 2>/dev/null)" = "$stamp" ] && imports 2>/dev/null; then
        log "OK: $KSERVE in $VENV"
        return 0
    fi
    log "building $VENV ($KSERVE and scripts/kserve-sdk.lock)"
    rm -rf "$VENV"
    mkdir -p "$CACHE"
    run_logged kserve-sdk-venv "${PYTHON:-python3}" -m venv "$VENV"
    run_logged kserve-sdk-sync "$uv" pip sync --python "$VENV/bin/python" "$LOCK"
    run_logged kserve-sdk-kserve "$uv" pip install --python "$VENV/bin/python" --no-deps "$KSERVE"
    imports || die "kserve does not import in $VENV"
    printf '%s\n' "$stamp" > "$VENV/.installed"
    log "OK: $KSERVE in $VENV ($(du -sh "$VENV" | cut -f1))"
}

main "$@"
