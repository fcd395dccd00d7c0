# shellcheck shell=bash
# Sourced by exp1.sh .. exp4.sh: paths, the vigil-sim and vigil binaries, python with
# matplotlib, and a runner that stores one vigil-sim JSON report per run.
#
# Environment:
#   RESULTS_DIR  where JSON/CSV go (default target/experiments; one subdirectory per experiment)
#   IMG_DIR      where PNG plots go (default docs/img)
#   VIGIL_SIM    a vigil-sim binary to use instead of building one (cargo build --release -p sim)
#   VIGIL_BIN    a vigil binary to use instead of building one (cargo build -p vigil-cli)
#   SOURCE_COMMIT, SOURCE_DIRTY  recorded in meta.json instead of this checkout's HEAD and
#                its count of uncommitted files (when the binaries were built elsewhere)
#   QUICK=1      smaller sweeps (fewer seeds, shorter simulated durations), for a smoke run

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck disable=SC2034 # used by the scripts that source this file
EXP_DIR="$ROOT/scripts/experiments"
RESULTS_DIR="${RESULTS_DIR:-$ROOT/target/experiments}"
# shellcheck disable=SC2034
IMG_DIR="${IMG_DIR:-$ROOT/docs/img}"
# shellcheck disable=SC2034
QUICK="${QUICK:-0}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"

log() { printf '[%s] %s\n' "$(date -u +%T)" "$*" >&2; }

# The vigil-sim binary (release build; built once if missing or VIGIL_SIM is unset).
sim_bin() {
    if [ -n "${VIGIL_SIM:-}" ]; then echo "$VIGIL_SIM"; return; fi
    (cd "$ROOT" && cargo build -q --release -p sim --bin vigil-sim) >&2
    echo "$TARGET/release/vigil-sim"
}

# The vigil binary (debug build, as the lab and the seed's scripts use).
vigil_bin() {
    if [ -n "${VIGIL_BIN:-}" ]; then echo "$VIGIL_BIN"; return; fi
    (cd "$ROOT" && cargo build -q -p vigil-cli) >&2
    echo "$TARGET/debug/vigil"
}

# python3 with matplotlib (installed with pip for this user if missing).
ensure_matplotlib() {
    if ! python3 -c 'import matplotlib' 2>/dev/null; then
        log "installing matplotlib with pip"
        python3 -m pip install -q matplotlib >&2
    fi
}

# run_sim OUT.json ARGS...: one vigil-sim run; keeps its JSON report. A run whose report
# already exists is not repeated (delete the results directory to start over). A violated
# invariant is reported and the sweep goes on (the JSON says which).
run_sim() {
    local out="$1"
    shift
    if [ -s "$out" ]; then
        return 0
    fi
    local bin rc=0
    bin="$(sim_bin)"
    log "vigil-sim $*"
    "$bin" "$@" >"$out.tmp" || rc=$?
    if [ "$rc" -gt 1 ]; then
        log "vigil-sim failed (exit $rc): $*"
        rm -f "$out.tmp"
        return "$rc"
    fi
    if [ "$rc" = 1 ]; then log "invariant violated in: vigil-sim $*"; fi
    mv "$out.tmp" "$out"
}

# Writes META.json in $1: date, commit, host, so every table can say where it came from.
write_meta() {
    local dir="$1" cmd="$2"
    local commit dirty
    commit="${SOURCE_COMMIT:-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)}"
    dirty="${SOURCE_DIRTY:-$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | wc -l)}"
    python3 - "$dir/meta.json" "$cmd" "$commit" "$dirty" <<'EOF'
import json, os, sys, datetime
path, cmd, commit, dirty = sys.argv[1:5]
json.dump({
    "command": cmd,
    "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
    "commit": commit,
    "uncommitted_files": int(dirty),
    "cpus": os.cpu_count(),
    "loadavg": os.getloadavg(),
}, open(path, "w"), indent=1)
EOF
}
