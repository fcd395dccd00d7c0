#!/usr/bin/env bash
# Bounded fuzz run of every cargo-fuzz target in fuzz/ (docs/security.md), one at a time.
#   scripts/fuzz.sh                 each target for 60 s
#   scripts/fuzz.sh 600             each target for 600 s
#   scripts/fuzz.sh 30 codec node   only these targets
#   FUZZ_SECONDS=120 scripts/fuzz.sh
# Works on stable Rust: cargo-fuzz's unstable flags are allowed with RUSTC_BOOTSTRAP=1 and
# no sanitizer is used (libFuzzer's coverage guidance only; panics are the crashes we look
# for). Installs cargo-fuzz if it is missing. Exits 1 if any target crashed, timed out or
# failed to build, after printing the input that did it; the seeds in fuzz/corpus/<target>
# are never modified (new inputs go to a scratch corpus under fuzz/target/).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

SECONDS_EACH="${FUZZ_SECONDS:-60}"
if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then SECONDS_EACH="$1"; shift; fi
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(codec node config)

export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/fuzz/target}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked || { echo "fuzz: cannot install cargo-fuzz"; exit 1; }
fi

failed=()
for target in "${TARGETS[@]}"; do
    features=()
    max_len=4096
    case "$target" in
        codec) max_len=4096 ;;
        node) max_len=16384 ;;
        config) max_len=8192; features=(--features config) ;;
        *) echo "fuzz: unknown target $target (codec, node, config)"; exit 2 ;;
    esac
    corpora=("$CARGO_TARGET_DIR/corpus/$target")
    [ -d "fuzz/corpus/$target" ] && corpora+=("fuzz/corpus/$target")
    artifacts="fuzz/artifacts/$target"
    mkdir -p "${corpora[0]}" "$artifacts"
    log="$CARGO_TARGET_DIR/fuzz-$target.log"
    printf '\n=== fuzz %s for %s s\n' "$target" "$SECONDS_EACH"
    if ! cargo fuzz build --sanitizer none -O -a "${features[@]}" "$target"; then
        echo "fuzz: $target does not build"
        failed+=("$target (build)")
        continue
    fi
    before=$(find "$artifacts" -maxdepth 1 -type f -printf "%f\n" | sort)
    start=$(date +%s)
    cargo fuzz run --sanitizer none -O -a "${features[@]}" "$target" "${corpora[@]}" -- \
        -max_total_time="$SECONDS_EACH" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1
    rc=$?
    took=$(( $(date +%s) - start ))
    runs=$(grep -oE 'Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' | tail -1)
    echo "$target: ${runs:-?} executions in ${took} s, exit code $rc ($log)"
    if [ "$rc" != 0 ]; then
        grep -E 'panicked at|ERROR: libFuzzer|SUMMARY' "$log" | head -5
        new=$(comm -13 <(echo "$before") <(find "$artifacts" -maxdepth 1 -type f -printf "%f\n" | sort))
        for f in $new; do
            echo "fuzz: $target crashed; input: $artifacts/$f"
            echo "  reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none -O -a ${features[*]} $target $artifacts/$f"
        done
        [ -z "$new" ] && tail -20 "$log"
        failed+=("$target")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]}"
    exit 1
fi
echo "fuzz: no crash in ${TARGETS[*]} (${SECONDS_EACH} s each)"
