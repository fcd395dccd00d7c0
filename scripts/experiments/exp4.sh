#!/usr/bin/env bash
# Experiment 4 (the seed's "health score impact"): CPU stress aimed at one of two producers
# while writes flow through the gateway; the producers' health scores over time as the
# gateway sees them, and which producer each write was routed to (X-Routed-To).
#
#   scripts/experiments/exp4.sh                # all four modes, about 7 minutes
#   MODES=host scripts/experiments/exp4.sh     # one mode
#
# Five `vigil node` processes on loopback (coordinator, gateway, producer-a, producer-b,
# consumer; default detection settings), 20 writes/s through the gateway, 20 s baseline,
# 40 s stress, 30 s recovery. Modes:
#   host     `stress-ng --cpu 2`: both cores busy, as the seed's `stress --cpu 4` in one
#            container of a single Docker host.
#   starved  a real-time (SCHED_FIFO) `stress-ng --cpu 1` on CPU 1, where producer-b runs
#            pinned (every other member pinned to CPU 0): the kernel leaves ordinary tasks on
#            that CPU only its real-time throttling remainder, 50 ms of every second
#            (kernel.sched_rt_runtime_us = 950000), so the stressed member really is the one
#            short of CPU. (At SCHED_IDLE among four ordinary hogs, as measured before, it
#            still got the CPU it needed within milliseconds.)
#   throttled producer-b frozen (SIGSTOP) 1.7 s out of every 2 s and let run 0.3 s
#            (SIGCONT), its own `stress-ng --cpu 1` beside it: a member whose container's CPU
#            quota its hog uses up (the seed's `stress` inside the producer's container), or a
#            VM losing its CPU to a noisy neighbour. This machine has no cgroup CPU
#            controller, so the throttling is emulated with signals (real CFS throttling
#            stalls a process for at most one period, 100 ms by default), and the confinement
#            a quota gives by pinning: the hog and producer-b to CPU 1, every other member to
#            CPU 0. (Until 2026-12-07 the hog was `stress-ng --cpu 2` for everyone, the `host`
#            mode's load on top of the freezing; docs/experiments.md has both.)
#   throttled-hard  the same with 2.8 s frozen out of every 3 s.
# In the pinned modes the writer and sampler run on the unstressed members' CPU in every
# phase, and the whole stress command on the stressed member's: the client's own scheduling
# must not change between the phases it compares.
# Installs stress-ng with apt-get if missing (root). Writes $RESULTS_DIR/exp4/<mode>/
# samples.csv, routes.csv, run.json, phases.csv, $RESULTS_DIR/exp4/summary.json (every mode run
# so far: {"modes": {mode: {phase: {share_b, share_b_after_5s, score_b_min, ...}}}}) and
# $IMG_DIR/exp4-<mode>.png; prints a
# table per mode.

# shellcheck source=scripts/experiments/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

read -r -a MODES <<<"${MODES:-host starved throttled throttled-hard}"

if ! command -v stress-ng >/dev/null; then
    log "installing stress-ng"
    if [ "$(id -u)" = 0 ]; then
        apt-get install -y -q stress-ng >&2 || { apt-get update -q >&2 && apt-get install -y -q stress-ng >&2; }
    else
        sudo apt-get install -y -q stress-ng >&2
    fi
fi
VIGIL="$(vigil_bin)"
ensure_matplotlib

for mode in "${MODES[@]}"; do
    OUT="$RESULTS_DIR/exp4/$mode"
    mkdir -p "$OUT" "$IMG_DIR"
    case "$mode" in
        host)
            args=(--stress-cmd "stress-ng --cpu 2 --timeout 40s")
            ;;
        starved)
            args=(--stress-cmd "chrt --fifo 10 stress-ng --cpu 1 --taskset 1 --timeout 40s"
                --pin-stressed 1 --pin-others 0)
            ;;
        throttled)
            args=(--stress-cmd "stress-ng --cpu 1 --taskset 1 --timeout 40s" --throttle 300:1700
                --pin-stressed 1 --pin-others 0)
            ;;
        throttled-hard)
            args=(--stress-cmd "stress-ng --cpu 1 --taskset 1 --timeout 40s" --throttle 200:2800
                --pin-stressed 1 --pin-others 0)
            ;;
        *)
            log "unknown mode $mode (host, starved, throttled or throttled-hard)"
            exit 2
            ;;
    esac
    if [ ! -s "$OUT/run.json" ]; then
        write_meta "$OUT" "MODES=$mode scripts/experiments/exp4.sh"
        log "experiment 4, mode $mode"
        python3 "$EXP_DIR/exp4_driver.py" --vigil "$VIGIL" --out "$OUT" "${args[@]}"
    fi
    python3 "$EXP_DIR/analyze.py" exp4 "$OUT"
    python3 "$EXP_DIR/plot.py" exp4 "$OUT" "$IMG_DIR" "exp4-$mode.png"
done
