#!/usr/bin/env bash
# netns-lab.sh -- Vigil's multi-host fault lab: N fake "hosts" (Linux network namespaces) on a
# private L2 switch, each able to run a `vigil node`, with partitions, one-way partitions,
# unplugged cables, loss, delay and process faults (kill, freeze, thaw).
#
# Topology (nothing is created in the root namespace; the root cannot reach the lab):
#
#   ${LAB}n1 [eth0 10.77.0.1/24] --veth-- p1 -+
#   ${LAB}n2 [eth0 10.77.0.2/24] --veth-- p2 -+- br0   (all inside namespace ${LAB}sw)
#   ...                                       |
#   ${LAB}nN [eth0 10.77.0.N/24] --veth-- pN -+
#
# Network faults are applied centrally in the switch namespace with an nftables bridge table,
# so hosts' own firewalls stay untouched. This kernel kind has no `tc netem`: loss is an
# nftables `numgen random` rule, delay an NFQUEUE helper (python3) in the switch namespace.
#
# Usage (root, or CAP_NET_ADMIN + CAP_SYS_ADMIN; needs iproute2, nftables, iptables, python3):
#   ./netns-lab.sh setup N                     create hosts 1..N (N <= 254)
#   ./netns-lab.sh start I [ARGS...]           start `vigil node` nI on host I (nI's address,
#                                              HTTP :8080, gossip :7946); host 1 bootstraps,
#                                              the others join through hosts 1 and 2
#   ./netns-lab.sh start_all                   start hosts 1..N in order
#   ./netns-lab.sh status I                    GET /cluster/status of host I's node (JSON)
#   ./netns-lab.sh members I                   `vigil members` as host I sees the cluster
#   ./netns-lab.sh exec I CMD [ARGS...]        run CMD inside host I (foreground)
#   ./netns-lab.sh spawn I LOG CMD [ARGS...]   start CMD in host I in background, print its PID
#   ./netns-lab.sh partition "1 2" "3 4 5" ... groups cannot reach each other
#   ./netns-lab.sh oneway "FROM..." "TO..."    drop IPv4 FROM->TO only (TO->FROM still works)
#   ./netns-lab.sh isolate I                   host I reaches nobody (silent drop)
#   ./netns-lab.sh unplug I | plug I           pull/re-insert host I's "cable" (carrier loss)
#   ./netns-lab.sh heal                        remove all partitions / replug all
#   ./netns-lab.sh loss I PCT                  drop PCT % of host I's outgoing frames
#   ./netns-lab.sh netem I DELAY_MS [LOSS_PCT] [JITTER_MS]   egress delay/loss on host I
#   ./netns-lab.sh clear_netem I               remove loss/delay of host I
#   ./netns-lab.sh freeze_host I | thaw_host I  SIGSTOP/SIGCONT every process in host I
#   ./netns-lab.sh kill_host I                  SIGKILL every process in host I
#   ./netns-lab.sh matrix                       ICMP reachability matrix (debug)
#   ./netns-lab.sh teardown                     kill everything in the lab, delete namespaces
# Or `source netns-lab.sh` and call the lab_* functions directly.
#
# Environment:
#   LAB=lab-        name prefix (namespaces ${LAB}sw, ${LAB}n1..); use a distinct
#                   prefix per concurrently running lab so labs do not collide
#   SUBNET=10.77.0  /24 prefix used inside the lab (private per lab, may repeat across labs)
#   STATIC_ARP=1    pre-fill permanent neighbour entries (0 = real ARP; then a healed
#                   link can need ~1 s of ARP retries before traffic flows again)
#   STATE_DIR=...   pid files, logs, delay helper (default: ${TMPDIR:-/tmp}/netns-lab-${LAB%-})
#   VIGIL=...       the vigil binary for `start` (default: target/debug/vigil of this repo)

LAB=${LAB:-lab-}
SUBNET=${SUBNET:-10.77.0}
STATIC_ARP=${STATIC_ARP:-1}
_LAB_SELF_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE_DIR=${STATE_DIR:-${TMPDIR:-/tmp}/netns-lab-${LAB%-}}
VIGIL=${VIGIL:-$_LAB_SELF_DIR/../../target/debug/vigil}
HTTP_PORT=${HTTP_PORT:-8080}
GOSSIP_PORT=${GOSSIP_PORT:-7946}

_sw()   { echo "${LAB}sw"; }
_mac()  { printf '02:77:00:00:00:%02x' "$1"; }
_host() { echo "${LAB}n$1"; }
_die()  { echo "netns-lab: $*" >&2; return 1; }
_hosts() { cat "$STATE_DIR/hosts" 2>/dev/null; }   # list of host indices

lab_setup() {
    local n=${1:?usage: setup N} i sw; sw=$(_sw)
    if [ "$n" -lt 1 ] || [ "$n" -gt 254 ]; then _die "N must be 1..254"; return 1; fi
    ip netns list | grep -qx -- "$sw\( .*\)\?" && { _die "lab '$LAB' exists; teardown first"; return 1; }
    mkdir -p "$STATE_DIR" || return 1
    ip netns add "$sw" || return 1
    {
        echo "link set lo up"
        echo "link add br0 type bridge"          # STP off (default): ports forward at once
        echo "link set br0 up"
    } | ip -n "$sw" -batch - || return 1
    ip netns exec "$sw" nft -f - <<'EOF' || return 1
table bridge lab {
    chain partition { type filter hook forward priority 0;  policy accept; }
    chain netem     { type filter hook forward priority 10; policy accept; }
}
EOF
    : > "$STATE_DIR/hosts"
    for i in $(seq 1 "$n"); do
        ip netns add "$(_host "$i")" || return 1
        # create the pair directly in the two namespaces: nothing appears in the root ns.
        # Deterministic MAC 02:77:00:00:00:<i> so static ARP entries can be precomputed.
        ip link add eth0 address "$(_mac "$i")" netns "$(_host "$i")" \
            type veth peer name "p$i" netns "$sw" || return 1
        {
            echo "link set lo up"                # lo starts DOWN in a new netns
            echo "addr add $SUBNET.$i/24 dev eth0"
            echo "link set eth0 up"
            if [ "$STATIC_ARP" = 1 ]; then       # no ARP => partitions/heal act instantly
                for j in $(seq 1 "$n"); do
                    [ "$j" != "$i" ] && printf 'neigh replace %s.%d lladdr 02:77:00:00:00:%02x nud permanent dev eth0\n' "$SUBNET" "$j" "$j"
                done
            fi
        } | ip -n "$(_host "$i")" -batch - || return 1
        echo "$i" >> "$STATE_DIR/hosts"
    done
    for i in $(seq 1 "$n"); do echo "link set p$i master br0 up"; done | ip -n "$sw" -batch - || return 1
}

lab_exec() {  # lab_exec I CMD...   run in the foreground inside host I
    local i=${1:?host index}; shift
    ip netns exec "$(_host "$i")" "$@"
}

lab_spawn() {  # lab_spawn I LOGFILE CMD...   start CMD in background in host I, print its PID
    # `ip netns exec` execs CMD in place, and the subshell execs `ip`, so the PID printed
    # is CMD's own PID. (`lab_exec ... &` would give the PID of a bash subshell instead.)
    local i=${1:?host index} log=${2:?logfile}; shift 2
    ( exec ip netns exec "$(_host "$i")" "$@" ) >"$log" 2>&1 </dev/null &
    echo $!
    disown $! 2>/dev/null   # no "Killed" job notices when a test kills it
}

_ports() { local s="" i; for i in "$@"; do s+="${s:+, }\"p$i\""; done; echo "{ $s }"; }
_nft_sw() { ip netns exec "$(_sw)" nft "$@"; }

lab_partition() {  # lab_partition "1 2" "3 4 5" [...more groups]
    local groups=("$@") a b
    [ ${#groups[@]} -ge 2 ] || { _die "need >= 2 groups"; return 1; }
    for ((a = 0; a < ${#groups[@]}; a++)); do
        for ((b = 0; b < ${#groups[@]}; b++)); do
            [ $a -eq $b ] && continue
            # shellcheck disable=SC2086
            _nft_sw add rule bridge lab partition \
                iifname "$(_ports ${groups[a]})" oifname "$(_ports ${groups[b]})" drop || return 1
        done
    done
}

lab_oneway() {  # lab_oneway "FROM..." "TO..."  packets FROM -> TO dropped; TO -> FROM delivered.
    local from=${1:?from hosts} to=${2:?to hosts}
    # only IPv4 is dropped: ARP must still pass, otherwise FROM cannot even resolve
    # TO's MAC for the direction that is supposed to keep working.
    # shellcheck disable=SC2086
    _nft_sw add rule bridge lab partition \
        iifname "$(_ports $from)" oifname "$(_ports $to)" ether type ip drop
}

lab_isolate() {
    local i=${1:?host} others=() h
    for h in $(_hosts); do [ "$h" != "$i" ] && others+=("$h"); done
    lab_partition "$i" "${others[*]}"
}

lab_unplug() { ip -n "$(_sw)" link set "p${1:?host}" down; }   # host sees NO-CARRIER
lab_plug()   { ip -n "$(_sw)" link set "p${1:?host}" up; }

lab_heal() {
    local h
    _nft_sw flush chain bridge lab partition
    for h in $(_hosts); do echo "link set p$h up"; done | ip -n "$(_sw)" -batch -
}

# ---------------------------------------------------------------- delay / loss
_have_netem() {  # probe once per lab: does this kernel have sch_netem?
    if [ ! -f "$STATE_DIR/netem_probe" ]; then
        if ip netns exec "$(_sw)" tc qdisc add dev lo root netem delay 1ms 2>/dev/null; then
            ip netns exec "$(_sw)" tc qdisc del dev lo root 2>/dev/null; echo yes
        else echo no; fi > "$STATE_DIR/netem_probe"
    fi
    [ "$(cat "$STATE_DIR/netem_probe")" = yes ]
}

lab_netem() {  # lab_netem I DELAY_MS [LOSS_PCT] [JITTER_MS]  -- egress of host I
    local i=${1:?host} d=${2:?delay ms} l=${3:-0} j=${4:-0} sw _
    sw=$(_sw)
    lab_clear_netem "$i"
    if _have_netem; then
        ip netns exec "$(_host "$i")" tc qdisc add dev eth0 root netem \
            delay "${d}ms" "${j}ms" loss "${l}%"
    elif [ "$d" = 0 ] && [ "$j" = 0 ]; then
        # loss only: pure kernel, random drop of frames coming out of host I
        _nft_sw add rule bridge lab netem iifname "p$i" numgen random mod 10000 \
            '<' "$(awk "BEGIN{printf \"%d\", $l*100}")" drop
    else
        # No sch_netem in this kernel: hold host I's IPv4 packets in NFQUEUE number I *in the
        # switch namespace* (via br_netfilter + physdev) and release them after the delay from
        # a small userspace helper. Doing this in the switch, not in the host's OUTPUT chain,
        # matters: packets held inside the sending host are still charged to the TCP socket
        # and TCP Small Queues throttles the flow (measured: 0.28 MB/s instead of ~20 MB/s).
        # --queue-bypass: if the helper dies, packets flow normally instead of blackholing.
        _write_nfq_helper
        ip netns exec "$sw" sysctl -qw net.bridge.bridge-nf-call-iptables=1 || return 1
        ip netns exec "$sw" iptables -A FORWARD -m physdev --physdev-in "p$i" \
            -m comment --comment "netns-lab-netem-$i" \
            -j NFQUEUE --queue-num "$i" --queue-bypass || return 1
        ( exec ip netns exec "$sw" python3 "$STATE_DIR/nfq_delay.py" "$i" "$d" "$l" "$j" ) \
            > "$STATE_DIR/netem-$i.log" 2>&1 </dev/null &
        echo $! > "$STATE_DIR/netem-$i.pid"; disown $! 2>/dev/null
        for _ in $(seq 100); do   # wait until the helper has bound its queue
            grep -q '^nfq_delay' "$STATE_DIR/netem-$i.log" 2>/dev/null && return 0
            kill -0 "$(cat "$STATE_DIR/netem-$i.pid")" 2>/dev/null || break
            sleep 0.05
        done
        cat "$STATE_DIR/netem-$i.log" >&2; _die "netem helper failed for host $i"; return 1
    fi
}

lab_clear_netem() {
    local i=${1:?host} sw pid h
    sw=$(_sw)
    ip netns exec "$(_host "$i")" tc qdisc del dev eth0 root 2>/dev/null
    if [ -f "$STATE_DIR/netem-$i.pid" ]; then
        # delete the rule first (queued packets are released by the helper on SIGTERM)
        while ip netns exec "$sw" iptables -D FORWARD -m physdev --physdev-in "p$i" \
              -m comment --comment "netns-lab-netem-$i" \
              -j NFQUEUE --queue-num "$i" --queue-bypass 2>/dev/null; do :; done
        pid=$(cat "$STATE_DIR/netem-$i.pid")
        kill "$pid" 2>/dev/null && while kill -0 "$pid" 2>/dev/null; do sleep 0.02; done
        rm -f "$STATE_DIR/netem-$i.pid" "$STATE_DIR/netem-$i.log"
    fi
    h=$(_nft_sw -a list chain bridge lab netem 2>/dev/null |
        awk -v p="\"p$i\"" '$0 ~ "iifname " p " " {print $NF}')
    for pid in $h; do _nft_sw delete rule bridge lab netem handle "$pid"; done
    return 0
}

# ---------------------------------------------------------------- process faults
_host_pids() { ip netns pids "$(_host "$1")"; }   # every process inside host I
lab_freeze_host() {  # returns once every process is really in stopped state (T)
    local p _ st pids; pids=$(_host_pids "${1:?host}")
    for p in $pids; do kill -STOP "$p"; done
    for p in $pids; do
        for _ in $(seq 100); do
            st=$(awk '/^State:/{print $2}' "/proc/$p/status" 2>/dev/null)
            [ -z "$st" ] || [ "$st" = T ] && break
            sleep 0.01
        done
    done
}
lab_thaw_host()   { local p; for p in $(_host_pids "${1:?host}"); do kill -CONT "$p"; done; }
lab_kill_host()   { local p; for p in $(_host_pids "${1:?host}"); do kill -KILL "$p"; done; }

# ---------------------------------------------------------------- vigil nodes
lab_addr() { echo "$SUBNET.${1:?host}"; }

# One gossip key and admin token per lab, from the OS's random source (vigil keys), kept
# in STATE_DIR (mode 0600) so restarted members rejoin; VIGIL_SECURITY_GOSSIP_KEYS or
# VIGIL_HTTP_ADMIN_TOKEN in the environment win. `lab_start I --insecure` is still possible.
_lab_secrets() {
    (umask 077
     [ -s "$STATE_DIR/gossip-key" ] || "$VIGIL" keys generate >"$STATE_DIR/gossip-key" || exit 1
     [ -s "$STATE_DIR/admin-token" ] || "$VIGIL" keys token >"$STATE_DIR/admin-token" || exit 1
    ) || { _die "cannot make the lab's gossip key and admin token with $VIGIL keys"; return 1; }
}

lab_start() {  # lab_start I [EXTRA vigil node ARGS...]   start member nI on host I
    local i=${1:?host} seeds="" s pid; shift
    [ -x "$VIGIL" ] || { _die "no vigil binary at $VIGIL (cargo build -p vigil-cli, or set VIGIL=)"; return 1; }
    mkdir -p "$STATE_DIR"
    # host 1 bootstraps on its first start; every later start joins through hosts 1 and 2
    for s in 1 2; do
        [ "$s" != "$i" ] && _hosts | grep -qx "$s" && seeds+="${seeds:+,}$SUBNET.$s:$GOSSIP_PORT"
    done
    if [ "$i" = 1 ] && [ ! -f "$STATE_DIR/started-1" ]; then seeds=""; fi
    _lab_secrets || return 1
    pid=$(lab_spawn "$i" "$STATE_DIR/n$i.log" env \
        VIGIL_SECURITY_GOSSIP_KEYS="${VIGIL_SECURITY_GOSSIP_KEYS:-$(cat "$STATE_DIR/gossip-key")}" \
        VIGIL_HTTP_ADMIN_TOKEN="${VIGIL_HTTP_ADMIN_TOKEN:-$(cat "$STATE_DIR/admin-token")}" \
        "$VIGIL" node --id "n$i" \
        --http "$SUBNET.$i:$HTTP_PORT" --gossip "$SUBNET.$i:$GOSSIP_PORT" \
        ${seeds:+--seeds "$seeds"} "$@")
    echo "$pid" > "$STATE_DIR/n$i.pid"; touch "$STATE_DIR/started-$i"
    echo "n$i pid $pid on $SUBNET.$i (log $STATE_DIR/n$i.log)"
}

lab_start_all() {
    local h _
    for h in $(_hosts); do
        lab_start "$h" || return 1
        if [ "$h" = 1 ]; then   # the bootstrap node must be up before anyone joins
            for _ in $(seq 100); do lab_status 1 >/dev/null 2>&1 && break; sleep 0.1; done
        fi
    done
}

lab_status() {
    local out
    out=$(lab_exec "${1:?host}" curl -sf -m 2 "http://$SUBNET.$1:$HTTP_PORT/cluster/status") || return 1
    echo "$out"
}
lab_members() { lab_exec "${1:?host}" "$VIGIL" members --addr "http://$SUBNET.$1:$HTTP_PORT"; }

lab_loss() { lab_netem "${1:?host}" 0 "${2:?loss pct}"; }

# ---------------------------------------------------------------- debug
lab_matrix() {
    local i j hs; hs=$(_hosts)
    command -v ping >/dev/null || { _die "matrix needs ping (apt-get install iputils-ping)"; return 1; }
    printf '%6s' ""; for j in $hs; do printf '%4s' "n$j"; done; echo
    for i in $hs; do
        printf '%6s' "n$i:"
        for j in $hs; do
            if [ "$i" = "$j" ]; then printf '%4s' "-"
            elif ip netns exec "$(_host "$i")" ping -c1 -W0.3 -q "$SUBNET.$j" >/dev/null 2>&1
            then printf '%4s' "Y"; else printf '%4s' "."; fi
        done; echo
    done
}

# ---------------------------------------------------------------- teardown
lab_teardown() {
    local ns p f
    for f in "$STATE_DIR"/netem-*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; rm -f "$f"; done
    # A namespace whose name is deleted stays alive (with its veth!) while any process is
    # still inside it, so kill the processes first.
    for ns in $(ip netns list | awk '{print $1}' | grep -E "^${LAB}(sw|n[0-9]+)$"); do
        for p in $(ip netns pids "$ns"); do kill -KILL "$p" 2>/dev/null; done
    done
    for ns in $(ip netns list | awk '{print $1}' | grep -E "^${LAB}(sw|n[0-9]+)$"); do
        ip netns del "$ns"
    done
    rm -f "$STATE_DIR/hosts" "$STATE_DIR/netem_probe" "$STATE_DIR"/netem-*.log "$STATE_DIR/nfq_delay.py" \
        "$STATE_DIR"/started-* "$STATE_DIR"/n*.pid "$STATE_DIR/gossip-key" "$STATE_DIR/admin-token"
    [ "${KEEP_LOGS:-0}" = 1 ] || rm -f "$STATE_DIR"/n*.log
    rmdir "$STATE_DIR" 2>/dev/null
    return 0
}

# ---------------------------------------------------------------- NFQUEUE delay helper
_write_nfq_helper() {
    mkdir -p "$STATE_DIR"
    cat > "$STATE_DIR/nfq_delay.py" <<'PYEOF'
#!/usr/bin/env python3
# usage: nfq_delay.py QUEUE DELAY_MS [LOSS_PCT] [JITTER_MS]   (run inside the switch netns)
import socket, struct, sys, time, random, select, heapq, signal, os
NFNL_SUBSYS_QUEUE, MSG_PACKET, MSG_VERDICT, MSG_CONFIG = 3, 0, 1, 2
CFG_CMD, CFG_PARAMS, CFG_QUEUE_MAXLEN = 1, 2, 3
CMD_BIND, CMD_UNBIND, COPY_META = 1, 2, 1
PACKET_HDR, VERDICT_HDR = 1, 2
F_REQUEST, F_ACK, NLMSG_ERROR = 1, 4, 2
NF_DROP, NF_ACCEPT = 0, 1
q = int(sys.argv[1]); delay = float(sys.argv[2]) / 1e3
loss = float(sys.argv[3]) / 100 if len(sys.argv) > 3 else 0.0
jit = float(sys.argv[4]) / 1e3 if len(sys.argv) > 4 else 0.0
seq = 0
def attr(t, p):
    l = 4 + len(p); return struct.pack('=HH', l, t) + p + b'\0' * ((4 - l % 4) % 4)
def send(mtype, attrs, flags=F_REQUEST):
    global seq; seq += 1
    body = struct.pack('=BBH', 0, 0, socket.htons(q)) + b''.join(attrs)
    s.send(struct.pack('=IHHII', 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | mtype, flags, seq, 0) + body)
def ack():
    d = s.recv(65536)
    if struct.unpack_from('=H', d, 4)[0] == NLMSG_ERROR:
        e = struct.unpack_from('=i', d, 16)[0]
        if e: raise OSError(-e, os.strerror(-e))
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)  # NETLINK_NETFILTER
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20); s.bind((0, 0))
send(MSG_CONFIG, [attr(CFG_CMD, struct.pack('=BBH', CMD_BIND, 0, 0))], F_REQUEST | F_ACK); ack()
send(MSG_CONFIG, [attr(CFG_PARAMS, struct.pack('>IB', 0, COPY_META)),
                  attr(CFG_QUEUE_MAXLEN, struct.pack('>I', 65536))], F_REQUEST | F_ACK); ack()
print(f'nfq_delay pid={os.getpid()} queue={q} delay={delay*1e3:g}ms loss={loss*100:g}% jitter={jit*1e3:g}ms', flush=True)
def verdict(pid, v): send(MSG_VERDICT, [attr(VERDICT_HDR, struct.pack('>II', v, pid))])
run = True
def stop(*_):
    global run; run = False
signal.signal(signal.SIGTERM, stop); signal.signal(signal.SIGINT, stop)
held = []
while run:
    to = max(0.0, held[0][0] - time.monotonic()) if held else 0.5
    try: r, _, _ = select.select([s], [], [], to)
    except InterruptedError: continue
    if r:
        d = s.recv(1 << 20); o = 0
        while o + 16 <= len(d):
            l, t = struct.unpack_from('=IH', d, o)
            if l < 16: break
            if t == (NFNL_SUBSYS_QUEUE << 8) | MSG_PACKET:
                a = o + 20
                while a + 4 <= o + l:
                    al, at = struct.unpack_from('=HH', d, a)
                    if al < 4: break
                    if at & 0x7fff == PACKET_HDR:
                        pid = struct.unpack_from('>I', d, a + 4)[0]
                        if loss and random.random() < loss: verdict(pid, NF_DROP)
                        else: heapq.heappush(held, (time.monotonic() + max(0.0, delay + random.uniform(-jit, jit)), pid))
                    a += (al + 3) & ~3
            o += (l + 3) & ~3
    now = time.monotonic()
    while held and held[0][0] <= now: verdict(heapq.heappop(held)[1], NF_ACCEPT)
for _, pid in held: verdict(pid, NF_ACCEPT)
send(MSG_CONFIG, [attr(CFG_CMD, struct.pack('=BBH', CMD_UNBIND, 0, 0))])
PYEOF
}

# ---------------------------------------------------------------- CLI
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    cmd=${1:-}; shift || true
    case "$cmd" in
        setup|exec|spawn|partition|oneway|isolate|unplug|plug|heal|loss|netem|clear_netem|\
        freeze_host|thaw_host|kill_host|matrix|teardown|start|start_all|status|members|addr) "lab_$cmd" "$@" ;;
        *) sed -n '2,48p' "$0"; exit 2 ;;
    esac
fi
