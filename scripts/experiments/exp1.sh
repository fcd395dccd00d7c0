#!/usr/bin/env bash
# Experiment 1 (the seed's "failure detection timing"): failure timeout 10 s vs 30 s, and
# phi threshold 6 / 8 / 10 / 12, on the simulator.
#
#   scripts/experiments/exp1.sh            # the full sweep (about 20 minutes on 2 busy cores)
#   QUICK=1 scripts/experiments/exp1.sh    # one seed, shorter noise runs
#
# Detection: `vigil-sim --scenario crash` at 100 nodes, 5 crashes per run, on a quiet
# network (1 ms, no loss) and a noisy one (100 ms sigma jitter, 5 % loss).
# False positives: `vigil-sim --scenario jitter` at 100 nodes on three noise levels.
# Also a 2 s hard timeout (the smallest the configuration allows at 1 s heartbeats), to
# show where the hard timeout starts to matter. A phi/status timeline of one crash
# (quiet and noisy) feeds the plot.
#
# Writes $RESULTS_DIR/exp1/*.json, detection.csv, false_positives.csv and
# $IMG_DIR/exp1-timeline.png, exp1-detection.png; prints both tables.

# shellcheck source=scripts/experiments/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

OUT="$RESULTS_DIR/exp1"
mkdir -p "$OUT" "$IMG_DIR"
NODES="${NODES:-100}"
if [ "$QUICK" = 1 ]; then
    SEEDS=(1)
    FP_DURATION=120
else
    SEEDS=(1 2 3)
    FP_DURATION=300
fi

# name|flags: the settings compared (phi and hard timeout in ms).
SETTINGS=(
    "phi6|--phi 6"
    "phi8|--phi 8"
    "phi10|--phi 10"
    "phi12|--phi 12"
    "timeout10s|--phi 8 --failure-timeout 10000"
    "timeout30s|--phi 8 --failure-timeout 30000"
    "timeout2s|--phi 8 --failure-timeout 2000"
)
# name|flags: networks for the detection runs.
NETS=(
    "quiet|--jitter-ms 0 --loss 0"
    "noisy|--jitter-ms 100 --loss 0.05"
)
# name|flags: noise levels for the false-positive runs.
NOISE=(
    "j100-l5|--jitter-ms 100 --loss 0.05"
    "j250-l10|--jitter-ms 250 --loss 0.10"
    "j500-l20|--jitter-ms 500 --loss 0.20"
)

write_meta "$OUT" "scripts/experiments/exp1.sh"

for net in "${NETS[@]}"; do
    IFS='|' read -r nname nflags <<<"$net"
    for setting in "${SETTINGS[@]}"; do
        IFS='|' read -r sname sflags <<<"$setting"
        for seed in "${SEEDS[@]}"; do
            # shellcheck disable=SC2086 # the flags are word lists on purpose
            run_sim "$OUT/detect-$nname-$sname-s$seed.json" --scenario crash --nodes "$NODES" \
                --seed "$seed" --crashes 5 --duration 60 $sflags $nflags
        done
    done
done

for noise in "${NOISE[@]}"; do
    IFS='|' read -r nname nflags <<<"$noise"
    for setting in "${SETTINGS[@]}"; do
        IFS='|' read -r sname sflags <<<"$setting"
        # shellcheck disable=SC2086
        run_sim "$OUT/fp-$nname-$sname-s1.json" --scenario jitter --nodes "$NODES" --seed 1 \
            --duration "$FP_DURATION" $sflags $nflags
    done
done

# One crash, sampled every 100 ms, for the timeline plot.
for net in "${NETS[@]}"; do
    IFS='|' read -r nname nflags <<<"$net"
    # shellcheck disable=SC2086
    run_sim "$OUT/timeline-$nname.json" --scenario crash --nodes "$NODES" --seed 1 --crashes 1 \
        --duration 30 --timeline $nflags
done

python3 "$EXP_DIR/analyze.py" exp1 "$OUT"
ensure_matplotlib
python3 "$EXP_DIR/plot.py" exp1 "$OUT" "$IMG_DIR"
