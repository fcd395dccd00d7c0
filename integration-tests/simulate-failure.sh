#!/usr/bin/env bash
# The seed's failure simulation, against `vigil up` on this machine:
#   a node fails -> failure detected (the seed promises 15 s; the measured time is printed)
#   -> automatic eviction -> recovery and rejoin (vigil up restarts it) -> stabilization.
#
#   integration-tests/simulate-failure.sh [--addr URL | --own] [--victim ROLE] [--grace DURATION]
#
# How the node fails: it is frozen with SIGSTOP (to its peers exactly a crash: it goes
# silent), because `vigil up` restarts a killed member within 0.5 s, and a restarted member
# simply replaces its old generation, before anyone could detect anything. Once the frozen
# member is FAILED and evicted everywhere, it is killed (SIGKILL) and `vigil up` restarts it:
# that is the recovery and rejoin the seed describes.
#
# A cluster this script starts gets a short eviction grace period (--grace, default 5s; env
# VIGIL_CLUSTER_EVICTION_GRACE_PERIOD). With --addr the cluster's own grace applies (30 s by
# default) and the victim's process is found by its HTTP port (needs `ss` and the same user).
set -euo pipefail
# shellcheck source=integration-tests/cluster.sh
source "$(dirname "$0")/cluster.sh"
EXTRA_ARGS=()
parse_common_args "$@"
VICTIM=producer
GRACE=5s
set -- "${EXTRA_ARGS[@]+"${EXTRA_ARGS[@]}"}"
while [ $# -gt 0 ]; do
    case "$1" in
        --victim) VICTIM="$2"; shift 2 ;;
        --grace) GRACE="$2"; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
SEED_PROMISE=15
ensure_cluster "VIGIL_CLUSTER_EVICTION_GRACE_PERIOD=$GRACE"
set_victim "$VICTIM"
n=${#ROLES[@]}

# Before: a healthy cluster.
for r in "${ROLES[@]}"; do
    [ "$(status_of "$r" "$VICTIM")" = HEALTHY ] || { echo "$r does not see $VICTIM HEALTHY before the test" >&2; exit 1; }
done
OLD_GEN="$(generation_of "${OBSERVERS[0]}" "$VICTIM")"
pid="$(victim_pid)"
[ -n "$pid" ] || { echo "cannot find the process of $VICTIM" >&2; exit 1; }
det_count0="$(metric "${OBSERVERS[0]}" cluster_failure_detection_seconds_count)"
det_sum0="$(metric "${OBSERVERS[0]}" cluster_failure_detection_seconds_sum)"

# 1. Failure and detection.
log "freezing $VICTIM (pid $pid, generation $OLD_GEN): to its peers, a crash"
kill -STOP "$pid"
trap 'kill -CONT "$pid" 2>/dev/null || true; stop_cluster' EXIT
if wait_all 60 sees_failed; then
    detect="$(max_time)"
    ok=0; le "$detect" "$SEED_PROMISE" || ok=1
    check "failure detected (seed: within ${SEED_PROMISE} s)" "$ok" \
        "FAILED on all ${#OBSERVERS[@]} others after ${detect} s ($(times_by_observer))"
else
    detect=never
    check "failure detected (seed: within ${SEED_PROMISE} s)" 1 "not FAILED everywhere within 60 s ($(times_by_observer))"
fi
det_count1="$(metric "${OBSERVERS[0]}" cluster_failure_detection_seconds_count)"
det_sum1="$(metric "${OBSERVERS[0]}" cluster_failure_detection_seconds_sum)"
if awk -v a="$det_count0" -v b="$det_count1" 'BEGIN { exit !(b > a) }'; then
    silence="$(awk -v c0="$det_count0" -v c1="$det_count1" -v s0="$det_sum0" -v s1="$det_sum1" 'BEGIN { printf "%.2f", (s1 - s0) / (c1 - c0) }')"
    check "detection recorded in /metrics" 0 "${OBSERVERS[0]}: cluster_failure_detection_seconds +1, silence ${silence} s"
else
    check "detection recorded in /metrics" 1 "${OBSERVERS[0]}: cluster_failure_detection_seconds_count did not grow"
fi
quorum_ok=0
for o in "${OBSERVERS[@]}"; do has_quorum "$o" || quorum_ok=1; done
check "quorum kept by the $((n - 1)) survivors" "$quorum_ok" "keep-majority: $((n - 1)) of $n voters"

# 2. Automatic eviction.
if wait_all 90 sees_absent; then
    check "automatic eviction (grace ${GRACE})" 0 "gone from every table $(max_time) s after all saw FAILED"
else
    check "automatic eviction (grace ${GRACE})" 1 "still listed ($(times_by_observer))"
fi

# 3. Recovery and rejoin: the frozen process is killed; vigil up restarts it.
if [ -n "$UP_PID" ]; then
    log "killing $VICTIM (SIGKILL); vigil up restarts it"
    kill -KILL "$pid"
    kill -CONT "$pid" 2>/dev/null || true
    t_kill="$(now)"
    if wait_all 30 sees_rejoined; then
        check "recovery and rejoin (new generation)" 0 "HEALTHY again on all others $(since "$t_kill") s after the kill (restart backoff 0.5 s included)"
    else
        check "recovery and rejoin (new generation)" 1 "not back within 30 s ($(times_by_observer))"
    fi
else
    log "resuming $VICTIM (SIGCONT): this cluster is not ours to restart members in"
    kill -CONT "$pid"
    t_kill="$(now)"
    if wait_all 30 sees_rejoined; then
        check "recovery and rejoin (new generation)" 0 "HEALTHY again on all others $(since "$t_kill") s after it resumed"
    else
        check "recovery and rejoin (new generation)" 1 "not back within 30 s ($(times_by_observer))"
    fi
fi
trap stop_cluster EXIT

# 4. Stabilization: every member sees n HEALTHY, quorum and the same leader, for 3 s running.
t0="$(now)"
stable_since=""
stable=1
while le "$(since "$t0")" 30; do
    views=()
    for r in "${ROLES[@]}"; do
        views+=("$(get "${MEMBER_URL[$r]}/cluster/status" 2>/dev/null | jq -c '[.healthyNodes, .hasQuorum, .leader]' || echo down)")
    done
    same=1
    [ "$(printf '%s\n' "${views[@]}" | sort -u | wc -l)" = 1 ] && [ "$(jq -r '.[0]' <<<"${views[0]}" 2>/dev/null)" = "$n" ] \
        && [ "$(jq -r '.[1]' <<<"${views[0]}")" = true ] && same=0
    if [ "$same" = 0 ]; then
        [ -n "$stable_since" ] || stable_since="$(since "$t0")"
        if ! le "$(awk -v a="$(since "$t0")" -v b="$stable_since" 'BEGIN { print a - b }')" 3; then stable=0; break; fi
    else
        stable_since=""
    fi
    sleep 0.3
done
check "cluster stabilized ($n HEALTHY, quorum, one leader)" "$stable" \
    "$([ "$stable" = 0 ] && echo "agreed ${stable_since} s after rejoin, held 3 s; view ${views[0]}" || echo "no stable agreement within 30 s: ${views[*]}")"

summary "simulate-failure: $VICTIM of $n members (measured detection ${detect} s vs the seed's ${SEED_PROMISE} s)"
exit "$FAILED"
