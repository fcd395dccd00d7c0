#!/usr/bin/env bash
# Experiment 2 (the seed's "gossip fanout impact"): fanout 2 vs 3 vs 5 at 10, 100 and 1000
# nodes, on the simulator: cold-join convergence, how fast one change (5 late joins, 5
# graceful leaves) reaches every member (seconds and gossip rounds), and bytes per node.
#
#   scripts/experiments/exp2.sh            # about 5 minutes (the 1000-node runs take ~1 min each)
#   QUICK=1 scripts/experiments/exp2.sh    # one seed, no 1000-node runs
#
# `vigil-sim --scenario join --nodes N --fanout F --seed S --duration 40` per cell; seeds
# 1-3 at 10 and 100 nodes, seed 1 at 1000 nodes (wall time). Writes
# $RESULTS_DIR/exp2/join-*.json, fanout.csv and $IMG_DIR/exp2-fanout.png; prints the table.

# shellcheck source=scripts/experiments/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

OUT="$RESULTS_DIR/exp2"
mkdir -p "$OUT" "$IMG_DIR"
if [ "$QUICK" = 1 ]; then
    SIZES=(10 100)
    SMALL_SEEDS=(1)
else
    SIZES=(10 100 1000)
    SMALL_SEEDS=(1 2 3)
fi

write_meta "$OUT" "scripts/experiments/exp2.sh"

for n in "${SIZES[@]}"; do
    seeds=("${SMALL_SEEDS[@]}")
    if [ "$n" -ge 1000 ]; then seeds=(1); fi
    for f in 2 3 5; do
        for seed in "${seeds[@]}"; do
            run_sim "$OUT/join-n$n-f$f-s$seed.json" --scenario join --nodes "$n" --fanout "$f" \
                --seed "$seed" --duration 40
        done
    done
done

python3 "$EXP_DIR/analyze.py" exp2 "$OUT"
ensure_matplotlib
python3 "$EXP_DIR/plot.py" exp2 "$OUT" "$IMG_DIR"
