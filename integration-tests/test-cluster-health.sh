#!/usr/bin/env bash
# The seed's cluster health test, against `vigil up` on this machine:
#   all services are healthy, membership is maintained, quorum is established, health
#   checks are responding. Prints a PASS/FAIL table; exits 1 on any failure.
#
#   integration-tests/test-cluster-health.sh [--addr URL | --own] [--watch SECONDS]
#
# --watch: how long membership must stay unchanged (default 5 s).
set -euo pipefail
# shellcheck source=integration-tests/cluster.sh
source "$(dirname "$0")/cluster.sh"
EXTRA_ARGS=()
parse_common_args "$@"
WATCH=5
set -- "${EXTRA_ARGS[@]+"${EXTRA_ARGS[@]}"}"
while [ $# -gt 0 ]; do
    case "$1" in
        --watch) WATCH="$2"; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
# shellcheck disable=SC2119  # no member environment for an existing cluster
ensure_cluster
work_times="$(mktemp "${TMPDIR:-/tmp}/vigil-health.XXXXXX")"
trap 'rm -f "$work_times"; stop_cluster' EXIT
n=${#ROLES[@]}
log "checking ${n} members: ${ROLES[*]}"

# 1. All services healthy: /actuator/health UP, /livez and /readyz 200 on every member.
bad=()
for r in "${ROLES[@]}"; do
    u="${MEMBER_URL[$r]}"
    h="$(get "$u/actuator/health" 2>/dev/null | jq -r .status 2>/dev/null || echo DOWN)"
    l="$(code "$u/livez")"
    y="$(code "$u/readyz")"
    [ "$h" = UP ] && [ "$l" = 200 ] && [ "$y" = 200 ] || bad+=("$r(health=$h livez=$l readyz=$y)")
done
check "all services healthy" "$([ ${#bad[@]} = 0 ] && echo 0 || echo 1)" \
    "$((n - ${#bad[@]}))/$n UP, live and ready ${bad[*]:-}"

# 2. Membership maintained: every member lists the same members, all HEALTHY, and the
#    same generations for WATCH seconds (no flapping, no restarts).
views=()
for r in "${ROLES[@]}"; do
    views+=("$(get "${MEMBER_URL[$r]}/cluster/status" | jq -c '[.membership[] | [.nodeId, .status, .generation]] | sort')")
done
same=0
for v in "${views[@]}"; do [ "$v" = "${views[0]}" ] || same=1; done
healthy_everywhere="$(jq -r '[.[] | select(.[1] == "HEALTHY")] | length' <<<"${views[0]}")"
[ "$healthy_everywhere" = "$n" ] || same=1
check "every member sees the same $n HEALTHY members" "$same" \
    "$healthy_everywhere HEALTHY in the first view; views identical: $([ $same = 0 ] && echo yes || echo no)"

t0="$(now)"
changes=0
samples=0
while le "$(since "$t0")" "$WATCH"; do
    for r in "${ROLES[@]}"; do
        v="$(get "${MEMBER_URL[$r]}/cluster/status" 2>/dev/null | jq -c '[.membership[] | [.nodeId, .status, .generation]] | sort' || echo down)"
        samples=$((samples + 1))
        [ "$v" = "${views[0]}" ] || changes=$((changes + 1))
    done
    sleep 0.5
done
check "membership maintained for ${WATCH} s" "$([ $changes = 0 ] && echo 0 || echo 1)" \
    "$samples views sampled, $changes differed"

# 3. Quorum established: hasQuorum everywhere, one leader everyone agrees on, n voters.
leaders=()
quorum=0
voters=()
for r in "${ROLES[@]}"; do
    s="$(get "${MEMBER_URL[$r]}/cluster/status")"
    [ "$(jq -r .hasQuorum <<<"$s")" = true ] && quorum=$((quorum + 1))
    leaders+=("$(jq -r '.leader // "none"' <<<"$s")")
    voters+=("$(jq -r '.voters' <<<"$s")")
done
distinct_leaders="$(printf '%s\n' "${leaders[@]}" | sort -u | tr '\n' ' ')"
ok=1
[ "$quorum" = "$n" ] && [ "$(printf '%s\n' "${leaders[@]}" | sort -u | wc -l)" = 1 ] \
    && [ "${leaders[0]}" != none ] && ok=0
check "quorum established, one leader" "$ok" \
    "hasQuorum on $quorum/$n; leader(s): ${distinct_leaders% }; voters: ${voters[*]}"

# 4. Health checks responding: latency of /actuator/health, health scores, live metrics.
times="$work_times"
for i in 1 2 3 4 5; do
    for r in "${ROLES[@]}"; do
        curl -s -o /dev/null --max-time 3 -w '%{time_total}\n' "${MEMBER_URL[$r]}/actuator/health" >>"$times" || echo 3 >>"$times"
    done
    [ "$i" = 5 ] || sleep 0.1
done
read -r probes mean_ms max_ms <<<"$(awk '{ n++; s += $1; if ($1 > m) m = $1 } END { printf "%d %.1f %.1f", n, 1000 * s / n, 1000 * m }' "$times")"
check "health checks respond under 500 ms" "$(le "$max_ms" 500 && echo 0 || echo 1)" \
    "$probes probes of /actuator/health, mean $mean_ms ms, max $max_ms ms"

coordinator="${ROLES[0]}"
[ -n "${MEMBER_URL[coordinator]:-}" ] && coordinator=coordinator
scores="$(get "${MEMBER_URL[$coordinator]}/cluster/status" | jq -r '[.membership[] | "\(.nodeId)=\(.healthScore)"] | join(" ")')"
low="$(get "${MEMBER_URL[$coordinator]}/cluster/status" | jq '[.membership[].healthScore] | min')"
check "health scores reported (0-100, >= 50)" "$([ "$low" -ge 50 ] && echo 0 || echo 1)" "$scores"

before="$(metric "$coordinator" cluster_heartbeats_sent_total)"
recv_before="$(metric "$coordinator" cluster_heartbeats_received_total)"
sleep 1.5
after="$(metric "$coordinator" cluster_heartbeats_sent_total)"
recv_after="$(metric "$coordinator" cluster_heartbeats_received_total)"
healthy_metric="$(metric "$coordinator" cluster_healthy_nodes)"
failures="$(metric "$coordinator" cluster_failures_detected_total)"
ok=1
[ "$after" -gt "$before" ] && [ "$recv_after" -gt "$recv_before" ] && [ "$healthy_metric" = "$n" ] && ok=0
check "heartbeats flowing (/metrics)" "$ok" \
    "sent +$((after - before)), received +$((recv_after - recv_before)) in 1.5 s; cluster_healthy_nodes=$healthy_metric; cluster_failures_detected_total=$failures"

summary "test-cluster-health: $n members"
exit "$FAILED"
