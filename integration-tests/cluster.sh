# shellcheck shell=bash
# Sourced by the seed's scripts in this folder: finds or starts a `vigil up` cluster, talks
# to its members over HTTP, and prints the PASS/FAIL summary table. Not run on its own.
#
# Every script accepts:
#   --addr URL   use a running cluster (any member's URL, e.g. http://127.0.0.1:8081)
#   --own        always start a private `vigil up` on free random ports (what scripts/test.sh does)
#   (neither)    use the cluster on localhost:8081 if one answers, else start `vigil up` there
# Environment: VIGIL_BIN (the vigil binary; default target/debug/vigil, built if missing).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ADDR=""
OWN=0
UP_PID=""
UP_DIR=""
HTTP_OFFSET=0
GOSSIP_BASE=7946
ROLES=(gateway coordinator producer consumer)
declare -A MEMBER_URL=()
RESULTS=()
FAILED=0

now() { date +%s.%N; }
# Seconds since $1 (a `now` value), with millisecond precision.
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
# Whether $1 <= $2 as numbers.
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }
log() { printf '[%s] %s\n' "$(date +%T)" "$*"; }

# check NAME OK(0|1) DETAIL: records one row of the summary.
check() {
    local name="$1" ok="$2" detail="$3"
    if [ "$ok" = 0 ]; then
        RESULTS+=("PASS|$name|$detail")
    else
        RESULTS+=("FAIL|$name|$detail")
        FAILED=1
    fi
}

summary() {
    local title="$1" row
    printf '\n%s\n' "$title"
    printf '%-6s %-50s %s\n' RESULT CHECK DETAIL
    printf '%-6s %-50s %s\n' ------ -------------------------------------------------- ------------------------------
    for row in "${RESULTS[@]}"; do
        IFS='|' read -r r n d <<<"$row"
        printf '%-6s %-50s %s\n' "$r" "$n" "$d"
    done
    if [ "$FAILED" = 0 ]; then echo "SUMMARY: PASS (${#RESULTS[@]} checks)"; else echo "SUMMARY: FAIL"; fi
}

parse_common_args() {
    while [ $# -gt 0 ]; do
        case "$1" in
            --addr) ADDR="${2:?--addr needs a URL}"; shift 2 ;;
            --own) OWN=1; shift ;;
            *) EXTRA_ARGS+=("$1"); shift ;;
        esac
    done
}

vigil_bin() {
    if [ -n "${VIGIL_BIN:-}" ]; then echo "$VIGIL_BIN"; return; fi
    if [ ! -x "$ROOT/target/debug/vigil" ]; then
        (cd "$ROOT" && cargo build -q -p vigil-cli) >&2
    fi
    echo "$ROOT/target/debug/vigil"
}

# GET a URL quietly; prints the body; fails on an HTTP error.
get() { curl -fsS --max-time 3 "$1"; }
# The HTTP status code of a GET (000 when nothing answers).
code() { curl -s -o /dev/null --max-time 3 -w '%{http_code}' "$1" || true; }

port_busy() {
    if command -v ss >/dev/null; then
        [ -n "$(ss -Htanu "( sport = :$1 )" 2>/dev/null)" ]
    else
        (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null
    fi
}

pick_free_layout() {
    local i p busy
    for i in $(seq 1 100); do
        HTTP_OFFSET=$((10000 + RANDOM % 40000))
        GOSSIP_BASE=$((20000 + RANDOM % 40000))
        busy=0
        for p in 8080 8081 8082 8083; do port_busy $((p + HTTP_OFFSET)) && busy=1; done
        for p in 0 1 2 3; do port_busy $((GOSSIP_BASE + p)) && busy=1; done
        [ "$busy" = 0 ] && return 0
        [ "$i" = 100 ] && break
    done
    echo "no free port layout" >&2
    return 1
}

stop_cluster() {
    if [ -n "$UP_PID" ] && kill -0 "$UP_PID" 2>/dev/null; then
        log "stopping vigil up (pid $UP_PID; members leave gracefully)"
        kill -TERM "$UP_PID" 2>/dev/null || true
        local i
        for i in $(seq 1 100); do
            kill -0 "$UP_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$UP_PID" 2>/dev/null && kill -KILL "$UP_PID" 2>/dev/null
        wait "$UP_PID" 2>/dev/null || true
    fi
    UP_PID=""
}

# start_cluster [ENV=VALUE...]: starts `vigil up` with extra environment for its members.
start_cluster() {
    local bin
    bin="$(vigil_bin)"
    UP_DIR="$(mktemp -d "${TMPDIR:-/tmp}/vigil-it.XXXXXX")"
    log "starting vigil up (http 808x+$HTTP_OFFSET, gossip $GOSSIP_BASE-$((GOSSIP_BASE + 3)), logs in $UP_DIR)"
    (cd "$UP_DIR" && exec env "$@" "$bin" up --http-offset "$HTTP_OFFSET" --gossip-base "$GOSSIP_BASE" \
        --log-dir "$UP_DIR/logs" >"$UP_DIR/up.out" 2>&1) &
    UP_PID=$!
    trap stop_cluster EXIT
    local t0 i
    t0="$(now)"
    for i in $(seq 1 300); do
        grep -q "cluster ready: 4 HEALTHY" "$UP_DIR/up.out" 2>/dev/null && break
        if ! kill -0 "$UP_PID" 2>/dev/null || [ "$i" = 300 ]; then
            echo "vigil up did not become ready:" >&2
            tail -20 "$UP_DIR/up.out" >&2
            return 1
        fi
        sleep 0.1
    done
    log "cluster ready after $(since "$t0") s"
}

# Sets MEMBER_URL[role] for every member, starting a cluster when needed.
# Extra arguments (ENV=VALUE) go to the members of a cluster this script starts.
ensure_cluster() {
    if [ -z "$ADDR" ] && [ "$OWN" = 0 ] && [ "$(code http://127.0.0.1:8081/cluster/status)" = 200 ]; then
        ADDR="http://127.0.0.1:8081"
        log "using the running cluster at $ADDR"
    fi
    if [ -n "$ADDR" ]; then
        local status id http
        status="$(get "$ADDR/cluster/status")" || { echo "nothing answers at $ADDR" >&2; return 1; }
        while read -r id http; do
            MEMBER_URL[$id]="http://$http"
        done < <(jq -r '.membership[] | "\(.nodeId) \(.httpAddress)"' <<<"$status")
        ROLES=()
        for id in "${!MEMBER_URL[@]}"; do ROLES+=("$id"); done
        return 0
    fi
    if [ "$OWN" = 1 ]; then pick_free_layout; fi
    start_cluster "$@"
    MEMBER_URL[gateway]="http://127.0.0.1:$((8080 + HTTP_OFFSET))"
    MEMBER_URL[coordinator]="http://127.0.0.1:$((8081 + HTTP_OFFSET))"
    MEMBER_URL[producer]="http://127.0.0.1:$((8082 + HTTP_OFFSET))"
    MEMBER_URL[consumer]="http://127.0.0.1:$((8083 + HTTP_OFFSET))"
}

# status_of OBSERVER MEMBER: the member's status as the observer sees it (ABSENT, or DOWN
# when the observer does not answer).
status_of() {
    local body
    body="$(get "${MEMBER_URL[$1]}/cluster/status" 2>/dev/null)" || { echo DOWN; return; }
    jq -r --arg m "$2" '.membership[$m].status // "ABSENT"' <<<"$body"
}

# generation_of OBSERVER MEMBER
generation_of() {
    get "${MEMBER_URL[$1]}/cluster/status" 2>/dev/null \
        | jq -r --arg m "$2" '.membership[$m].generation // 0' || echo 0
}

# A value of one unlabelled sample from a member's /metrics.
metric() {
    get "${MEMBER_URL[$1]}/metrics" 2>/dev/null | awk -v n="$2" '$1 == n { print $2; found=1 } END { if (!found) print 0 }'
}

# A failure to inject: the member that fails, and the members that watch it.
VICTIM=""
OBSERVERS=()
declare -A WAIT_TIMES=()
# set_victim ROLE: sets VICTIM and OBSERVERS (every other member).
set_victim() {
    VICTIM="$1"
    [ -n "${MEMBER_URL[$VICTIM]:-}" ] || { echo "no member $VICTIM (members: ${ROLES[*]})" >&2; return 2; }
    OBSERVERS=()
    local r
    for r in "${ROLES[@]}"; do [ "$r" = "$VICTIM" ] || OBSERVERS+=("$r"); done
}
# The pid of member $VICTIM: from vigil up's log when this script started it, else the
# owner of its HTTP port (needs `ss` and the same user).
victim_pid() {
    if [ -n "$UP_DIR" ]; then
        sed -n "s/.*member started member=\"$VICTIM\" pid=\([0-9]*\).*/\1/p" "$UP_DIR/up.out" | tail -1
    else
        local port="${MEMBER_URL[$VICTIM]##*:}"
        ss -Hltnp "( sport = :$port )" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -1
    fi
}

# wait_all SECONDS FUNCTION: polls FUNCTION OBSERVER for every observer until it succeeds
# for all (0) or SECONDS pass (1); WAIT_TIMES[observer] is when it first succeeded.
wait_all() {
    local limit="$1" fn="$2" t0 o pending
    t0="$(now)"
    WAIT_TIMES=()
    while :; do
        pending=0
        for o in "${OBSERVERS[@]}"; do
            [ -n "${WAIT_TIMES[$o]:-}" ] && continue
            if "$fn" "$o"; then WAIT_TIMES[$o]="$(since "$t0")"; else pending=1; fi
        done
        [ "$pending" = 0 ] && return 0
        le "$(since "$t0")" "$limit" || return 1
        sleep 0.1
    done
}
max_time() { printf '%s\n' "${WAIT_TIMES[@]}" | sort -g | tail -1; }
times_by_observer() {
    local o out=""
    for o in "${OBSERVERS[@]}"; do out+="$o ${WAIT_TIMES[$o]:-never}s, "; done
    echo "${out%, }"
}


# Conditions for wait_all.
# shellcheck disable=SC2317  # called through wait_all
sees_failed() { [ "$(status_of "$1" "$VICTIM")" = FAILED ]; }
# shellcheck disable=SC2317
sees_absent() { [ "$(status_of "$1" "$VICTIM")" = ABSENT ]; }
# shellcheck disable=SC2317
has_quorum() { [ "$(get "${MEMBER_URL[$1]}/cluster/status" 2>/dev/null | jq -r .hasQuorum)" = true ]; }
# sees_rejoined OBSERVER: VICTIM is HEALTHY with a generation above OLD_GEN.
OLD_GEN=0
# shellcheck disable=SC2317
sees_rejoined() {
    local s
    s="$(get "${MEMBER_URL[$1]}/cluster/status" 2>/dev/null)" || return 1
    [ "$(jq -r --arg m "$VICTIM" '.membership[$m].status // ""' <<<"$s")" = HEALTHY ] \
        && [ "$(jq -r --arg m "$VICTIM" '.membership[$m].generation // 0' <<<"$s")" -gt "$OLD_GEN" ]
}
