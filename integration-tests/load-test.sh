#!/usr/bin/env bash
# The seed's load test, against `vigil up` on this machine: sustained HTTP load on the
# members' status and membership endpoints while sampling health scores, node availability
# and failure detection response times (one member fails mid-run and is detected under load).
#
#   integration-tests/load-test.sh [--addr URL | --own] [--duration SECONDS] [--workers N]
#                                  [--victim ROLE | --no-failure]
#
# For now the load is the membership API (GET /cluster/status and /cluster/members on every
# member, keep-alive, N curl workers). Log ingest through the services (producer -> Kafka ->
# consumer) comes with the services; the script says so in its output.
# The victim is frozen (SIGSTOP) a third of the way in, then killed once detected so that
# `vigil up` restarts it (see simulate-failure.sh for why); with --addr or --no-failure no
# member is failed and detection is only watched (any FAILED is then a false positive).
set -euo pipefail
# shellcheck source=integration-tests/cluster.sh
source "$(dirname "$0")/cluster.sh"
EXTRA_ARGS=()
parse_common_args "$@"
DURATION=30
WORKERS=2
VICTIM_ROLE=producer
INJECT=1
set -- "${EXTRA_ARGS[@]+"${EXTRA_ARGS[@]}"}"
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION="$2"; shift 2 ;;
        --workers) WORKERS="$2"; shift 2 ;;
        --victim) VICTIM_ROLE="$2"; shift 2 ;;
        --no-failure) INJECT=0; shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
ensure_cluster "VIGIL_CLUSTER_EVICTION_GRACE_PERIOD=5s"
[ -n "$UP_PID" ] || INJECT=0
n=${#ROLES[@]}
work="$(mktemp -d "${TMPDIR:-/tmp}/vigil-load.XXXXXX")"
pids=()
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
    local p
    for p in "${pids[@]+"${pids[@]}"}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]+"${pids[@]}"}"; do wait "$p" 2>/dev/null || true; done
    if [ -n "${VICTIM_PID:-}" ]; then kill -CONT "$VICTIM_PID" 2>/dev/null || true; fi
    stop_cluster
    rm -rf "$work"
}
trap cleanup EXIT

echo "NOTE: load = the membership HTTP API only; log ingest through the services (producer -> Kafka -> consumer) comes later."
if [ "$INJECT" = 1 ]; then
    set_victim "$VICTIM_ROLE"
    targets=("${OBSERVERS[@]}")
    log "load on ${targets[*]} for ${DURATION} s with $WORKERS workers; $VICTIM fails at $((DURATION / 3)) s"
else
    targets=("${ROLES[@]}")
    log "load on ${targets[*]} for ${DURATION} s with $WORKERS workers; no failure injected"
fi

# The load: each worker runs curl over a batch of URLs (one connection per member, kept
# alive), printing "code seconds" per request, until the end time.
batch="$work/urls.curlrc"
for i in 1 2 3 4 5 6 7 8 9 10; do
    for r in "${targets[@]}"; do
        printf 'url = "%s/cluster/status"\noutput = "/dev/null"\nurl = "%s/cluster/members"\noutput = "/dev/null"\n' \
            "${MEMBER_URL[$r]}" "${MEMBER_URL[$r]}"
    done
done >"$batch"
end=$(($(date +%s) + DURATION))
for w in $(seq 1 "$WORKERS"); do
    (
        while [ "$(date +%s)" -lt "$end" ]; do
            curl -s --max-time 2 -K "$batch" -w '%{http_code} %{time_total}\n' || true
        done >"$work/worker.$w"
    ) &
    pids+=($!)
done

# The sampler: once a second, every member's readiness and the coordinator's view.
sampler_view="coordinator"
[ -n "${MEMBER_URL[coordinator]:-}" ] && [ "$VICTIM" != coordinator ] || sampler_view="${targets[0]}"
(
    while [ "$(date +%s)" -lt "$end" ]; do
        t="$(date +%s.%N)"
        for r in "${ROLES[@]}"; do printf '%s ready %s %s\n' "$t" "$r" "$(code "${MEMBER_URL[$r]}/readyz")"; done
        get "${MEMBER_URL[$sampler_view]}/cluster/status" 2>/dev/null \
            | jq -r --arg t "$t" '"\($t) view \(.hasQuorum) \(.healthyNodes)", (.membership[] | "\($t) member \(.nodeId) \(.status) \(.healthScore)")' \
            || printf '%s view down 0\n' "$t"
        sleep 1
    done >"$work/samples"
) &
pids+=($!)

fc0=()
for r in "${ROLES[@]}"; do fc0+=("$(metric "$r" cluster_failures_detected_total)"); done
detect="" rejoin="" silence=""
if [ "$INJECT" = 1 ]; then
    sleep $((DURATION / 3))
    OLD_GEN="$(generation_of "${OBSERVERS[0]}" "$VICTIM")"
    VICTIM_PID="$(victim_pid)"
    c0="$(metric "${OBSERVERS[0]}" cluster_failure_detection_seconds_count)"
    s0="$(metric "${OBSERVERS[0]}" cluster_failure_detection_seconds_sum)"
    log "freezing $VICTIM (pid $VICTIM_PID) under load"
    kill -STOP "$VICTIM_PID"
    if wait_all 40 sees_failed; then detect="$(max_time)"; else detect="never"; fi
    log "detected: $(times_by_observer); killing it, vigil up restarts it"
    kill -KILL "$VICTIM_PID"
    kill -CONT "$VICTIM_PID" 2>/dev/null || true
    t_kill="$(now)"
    if wait_all 30 sees_rejoined; then rejoin="$(since "$t_kill")"; else rejoin="never"; fi
    c1="$(metric "${OBSERVERS[0]}" cluster_failure_detection_seconds_count)"
    s1="$(metric "${OBSERVERS[0]}" cluster_failure_detection_seconds_sum)"
    silence="$(awk -v c0="$c0" -v c1="$c1" -v s0="$s0" -v s1="$s1" 'BEGIN { if (c1 > c0) printf "%.2f", (s1 - s0) / (c1 - c0); else print "none" }')"
fi
for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
pids=()

# Throughput and latency.
cat "$work"/worker.* >"$work/requests"
total="$(wc -l <"$work/requests")"
errors="$(awk '$1 != 200' "$work/requests" | wc -l)"
read -r p50 p99 <<<"$(awk '{ print $2 }' "$work/requests" | sort -g | awk '{ a[NR] = $1 } END {
    if (NR == 0) { print "0 0"; exit }
    i50 = int(NR * 0.50); if (i50 < 1) i50 = 1; i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
    printf "%.1f %.1f\n", a[i50] * 1000, a[i99] * 1000 }')"
rps="$(awk -v n="$total" -v d="$DURATION" 'BEGIN { printf "%.0f", n / d }')"
ok=1
[ "$total" -gt 0 ] && [ $((errors * 100)) -le "$total" ] && le "$p99" 1000 && ok=0
check "sustained load on ${#targets[@]} members" "$ok" \
    "$total requests in ${DURATION} s ($rps/s, $WORKERS workers), $errors errors, p50 ${p50} ms, p99 ${p99} ms"

# Availability: share of samples in which each member answered /readyz with 200.
avail="" ok=0
for r in "${ROLES[@]}"; do
    read -r up all <<<"$(awk -v r="$r" '$2 == "ready" && $3 == r { all++; if ($4 == 200) up++ } END { print up + 0, all + 0 }' "$work/samples")"
    pct="$(awk -v u="$up" -v a="$all" 'BEGIN { printf "%.0f", a ? 100 * u / a : 0 }')"
    avail+="$r ${pct}% "
    if [ "$r" != "$VICTIM" ] && [ "$up" != "$all" ]; then ok=1; fi
done
check "node availability (/readyz per 1 s sample)" "$ok" "${avail% }$([ "$INJECT" = 1 ] && echo " ($VICTIM failed on purpose)")"

# Health scores as the sampler's observer saw them.
scores="$(awk '$2 == "member" { s[$3] = s[$3] " " $5 } END { for (m in s) print m s[m] }' "$work/samples" | sort \
    | awk '{ min = 101; max = -1; sum = 0; for (i = 2; i <= NF; i++) { sum += $i; if ($i < min) min = $i; if ($i > max) max = $i }
             printf "%s %d/%.0f/%d  ", $1, min, sum / (NF - 1), max }')"
check "health scores sampled (min/avg/max)" "$([ -n "$scores" ] && echo 0 || echo 1)" "${scores% }"

quorum_lost="$(awk '$2 == "view" && $3 != "true"' "$work/samples" | wc -l)"
samples="$(awk '$2 == "view"' "$work/samples" | wc -l)"
check "quorum held throughout" "$([ "$quorum_lost" = 0 ] && echo 0 || echo 1)" "$samples samples, $quorum_lost without quorum ($sampler_view's view)"

false_pos=0
i=0
for r in "${ROLES[@]}"; do
    now_count="$(metric "$r" cluster_failures_detected_total)"
    expected=0
    [ "$INJECT" = 1 ] && [ "$r" != "$VICTIM" ] && expected=1
    extra=$(( now_count - fc0[i] - expected ))
    [ "$extra" -gt 0 ] && false_pos=$((false_pos + extra))
    i=$((i + 1))
done
check "no false failure detections under load" "$([ "$false_pos" = 0 ] && echo 0 || echo 1)" \
    "$false_pos unexpected (cluster_failures_detected_total on every member)"

if [ "$INJECT" = 1 ]; then
    ok=1
    [ "$detect" != never ] && le "$detect" 15 && ok=0
    check "failure detection under load (seed: 15 s)" "$ok" \
        "$VICTIM FAILED on all others after ${detect} s (polled); its silence as measured by ${OBSERVERS[0]}: ${silence} s"
    check "rejoin under load" "$([ "$rejoin" != never ] && echo 0 || echo 1)" "HEALTHY again everywhere ${rejoin} s after the kill"
fi

summary "load-test: ${DURATION} s, $WORKERS workers, $n members (membership API load; services-based ingest comes later)"
exit "$FAILED"
