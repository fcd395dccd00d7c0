#!/usr/bin/env bash
# Experiment 3 (the seed's "split-brain scenario"): quorum on both sides of a partition,
# time to fence the minority, time for the majority to convict it, time to heal.
#
#   scripts/experiments/exp3.sh            # simulator sweep, then the netns lab 3 times (root)
#   LAB_RUNS=0 scripts/experiments/exp3.sh # simulator only
#
# Simulator: `vigil-sim --scenario partition` at 5 nodes ({2}|{3}, as in the lab), 100
# ({49}|{51}) and 1000 ({499}|{501}), seeds 1-3 (1000: seed 1, 15 s partition, to keep the
# wall time near a minute), plus one sampled timeline at 5 and at 100 nodes for the plot.
# Real processes: `cargo test -p vigil-cli --test lab split_brain -- --nocapture` (five
# `vigil node` processes in network namespaces, the cut made in the switch) LAB_RUNS times;
# needs root, nftables and iproute2 (the test prints SKIPPED otherwise).
#
# Writes $RESULTS_DIR/exp3/partition-*.json, partition.csv, lab.log, lab.csv and
# $IMG_DIR/exp3-partition.png; prints the tables.

# shellcheck source=scripts/experiments/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

OUT="$RESULTS_DIR/exp3"
mkdir -p "$OUT" "$IMG_DIR"
LAB_RUNS="${LAB_RUNS:-3}"
if [ "$QUICK" = 1 ]; then SEEDS=(1); SIZES=(5 100); else SEEDS=(1 2 3); SIZES=(5 100 1000); fi

write_meta "$OUT" "scripts/experiments/exp3.sh"

for n in "${SIZES[@]}"; do
    if [ "$n" -ge 1000 ]; then
        run_sim "$OUT/partition-n$n-s1.json" --scenario partition --nodes "$n" --seed 1 \
            --partition-s 15 --duration 0
        continue
    fi
    for seed in "${SEEDS[@]}"; do
        run_sim "$OUT/partition-n$n-s$seed.json" --scenario partition --nodes "$n" --seed "$seed" \
            --partition-s 30 --duration 0
    done
done
for n in 5 100; do
    run_sim "$OUT/partition-n$n-s1-timeline.json" --scenario partition --nodes "$n" --seed 1 \
        --partition-s 30 --duration 0 --timeline
done

if [ "$LAB_RUNS" -gt 0 ] && [ ! -s "$OUT/lab.log" ]; then
    : >"$OUT/lab.log.tmp"
    for k in $(seq 1 "$LAB_RUNS"); do
        log "netns lab split brain, run $k of $LAB_RUNS"
        (cd "$ROOT" && cargo test -q -p vigil-cli --test lab split_brain -- --nocapture --test-threads 1) \
            >>"$OUT/lab.log.tmp" 2>&1 || log "lab run $k failed (see $OUT/lab.log)"
    done
    mv "$OUT/lab.log.tmp" "$OUT/lab.log"
fi

python3 "$EXP_DIR/analyze.py" exp3 "$OUT"
ensure_matplotlib
python3 "$EXP_DIR/plot.py" exp3 "$OUT" "$IMG_DIR"
