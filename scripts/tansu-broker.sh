#!/usr/bin/env bash
# A private tansu broker (Kafka protocol) for the pipeline tests, with storage that survives a
# restart, so the broker-restart test can stop it in the middle of a run and start it again.
#   scripts/tansu-broker.sh find                 print a tansu binary that has a durable engine, or fail
#   scripts/tansu-broker.sh install              build one into the cache when none exists (~11 min)
#   scripts/tansu-broker.sh start   DIR PORT     start on 127.0.0.1:PORT, data and log in DIR; waits for the port
#   scripts/tansu-broker.sh stop    DIR          stop the broker started in DIR and wait until it is gone
#   scripts/tansu-broker.sh restart DIR PORT     stop, then start again on the same data
# Storage: tansu's `sqlite://` engine (cargo feature `libsql`), a file in DIR that creates its
# own tables. `memory://` loses everything on restart; tansu 0.6's `postgres://` engine
# expects a schema the crate does not ship.
# VIGIL_TANSU_ROOT: where `install` puts the binary (default ~/.cache/vigil/tansu).
set -euo pipefail
ROOT=${VIGIL_TANSU_ROOT:-$HOME/.cache/vigil/tansu}

# Whether the cargo install root $1 holds a tansu built with the `libsql` feature
# (cargo records the features of every install in <root>/.crates2.json).
has_libsql() {
    [ -x "$1/bin/tansu" ] && [ -f "$1/.crates2.json" ] && python3 - "$1/.crates2.json" <<'EOF'
import json, sys
installs = json.load(open(sys.argv[1]))["installs"]
sys.exit(0 if any(k.startswith("tansu ") and "libsql" in v["features"] for k, v in installs.items()) else 1)
EOF
}

find_tansu() {
    for root in "$ROOT" "${CARGO_HOME:-$HOME/.cargo}"; do
        if has_libsql "$root"; then echo "$root/bin/tansu"; return 0; fi
    done
    return 1
}

start() {
    local dir=$1 port=$2 bin
    bin=$(find_tansu) || { echo "no tansu with the libsql feature: run $0 install" >&2; exit 1; }
    mkdir -p "$dir"
    # The sqlite engine puts its file relative to the working directory.
    (cd "$dir" && exec "$bin" broker --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine sqlite://tansu.db >>"$dir/tansu.log" 2>&1) &
    echo $! >"$dir/tansu.pid"
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        kill -0 "$(cat "$dir/tansu.pid")" 2>/dev/null || break
        sleep 0.1
    done
    echo "tansu did not start on :$port; its log:" >&2; tail -20 "$dir/tansu.log" >&2; exit 1
}

stop() {
    local dir=$1 pid
    [ -f "$dir/tansu.pid" ] || return 0
    pid=$(cat "$dir/tansu.pid")
    kill "$pid" 2>/dev/null || { rm -f "$dir/tansu.pid"; return 0; }
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$dir/tansu.pid"; return 0; }
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/tansu.pid"
}

case "${1:-}" in
    find) find_tansu ;;
    install)
        find_tansu >/dev/null || cargo install tansu --version 0.6.0 --locked \
            --features dynostore,libsql --root "$ROOT"
        ;;
    start) start "$2" "$3" ;;
    stop) stop "$2" ;;
    restart) stop "$2"; start "$2" "$3" ;;
    *) sed -n '2,12p' "$0"; exit 2 ;;
esac
