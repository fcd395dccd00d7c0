#!/usr/bin/env bash
# The full test command: installs what the tests need, then runs every gate and test tier.
#   scripts/test.sh            everything (what CI runs)
#   scripts/test.sh --fast     skip the installs and the release-mode simulator runs
set -euo pipefail
cd "$(dirname "$0")/.."
FAST=0; [ "${1:-}" = "--fast" ] && FAST=1
step() { printf '\n=== [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

# Build outputs live outside the checkout and are kept between runs: from a clean clone, the
# dependencies (rdkafka's C build, the fuzz and release profiles) otherwise cost most of a CI
# run on a 2-core machine. Cargo fingerprints everything, so a stale entry is rebuilt, never
# reused; set CARGO_TARGET_DIR / FUZZ_TARGET_DIR to choose other places.
BUILD_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/vigil-build"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$BUILD_CACHE/target}"
export FUZZ_TARGET_DIR="${FUZZ_TARGET_DIR:-$BUILD_CACHE/fuzz-target}"
mkdir -p target

if [ "$FAST" = 0 ]; then
    step "installing test tools (promtool from Debian's prometheus package, chromium and its driver)"
    need=()
    command -v promtool >/dev/null || need+=(prometheus)
    # the web console's browser tests (crates/vigil-cli/tests/console.rs)
    command -v chromium >/dev/null || need+=(chromium)
    command -v chromedriver >/dev/null || need+=(chromium-driver)
    if [ ${#need[@]} -gt 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
fi

# ---- multi-host fault lab (docs/lab.md): tools for the netns lab tests ------------------
# The lab tests (`cargo test -p vigil-cli --test lab`) run inside `cargo test --workspace` below,
# one lab at a time; without root or these tools they print SKIPPED and pass.
if [ "$FAST" = 0 ]; then
    step "installing lab tools (iproute2 nftables iptables curl python3)"
    lab_need=()
    command -v ip >/dev/null || lab_need+=(iproute2)
    command -v nft >/dev/null || lab_need+=(nftables)
    command -v iptables >/dev/null || lab_need+=(iptables)
    command -v curl >/dev/null || lab_need+=(curl)
    command -v python3 >/dev/null || lab_need+=(python3)
    if [ ${#lab_need[@]} -gt 0 ] && [ "$(id -u)" = 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${lab_need[@]}" >/dev/null
    fi
fi
# ---- end of the lab block ------------------------------------------------------------------

step "format"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo doc: the libraries' documentation builds without a warning"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps -q

step "the membership core stays sans-IO (no tokio among its dependencies)"
if cargo tree -p membership -e normal --prefix none | grep -qE '^(tokio|mio|socket2) '; then
    echo "membership depends on an I/O runtime:"; cargo tree -p membership -e normal -i tokio; exit 1
fi

step "unit, simulator and loopback tests"
# the console's browser tests run when a chromedriver is there (installed above)
if command -v chromedriver >/dev/null; then
    export VIGIL_TEST_CHROMEDRIVER="${VIGIL_TEST_CHROMEDRIVER:-$(command -v chromedriver)}"
fi
cargo test --workspace --no-fail-fast

# ---- BEGIN monitoring, deployment and the seed's scripts (issue 5) ----------------------
# Installs docker-compose (Debian's v1: only `config` is used, no Docker engine is needed),
# jq, curl and shellcheck; checks deploy/ offline (promtool check config/rules, promtool
# test rules, docker-compose config), then runs the seed's three scripts against a private
# `vigil up` on random free ports (each well under 2 minutes). The live Prometheus and
# dashboard tests are cargo tests (crates/vigil-cli/tests/prometheus.rs, dashboards.rs) above.
if [ "$FAST" = 0 ]; then
    step "installing monitoring and deployment tools (docker-compose jq curl shellcheck)"
    ops_need=()
    command -v promtool >/dev/null || ops_need+=(prometheus)
    command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || ops_need+=(docker-compose)
    command -v jq >/dev/null || ops_need+=(jq)
    command -v curl >/dev/null || ops_need+=(curl)
    command -v shellcheck >/dev/null || ops_need+=(shellcheck)
    if [ ${#ops_need[@]} -gt 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get -o DPkg::Lock::Timeout=300 update -qq
        apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${ops_need[@]}" >/dev/null
    fi
fi
# kubernetes-validate (PyPI) bundles the Kubernetes schemas and validates offline; one venv,
# made once and reused (deploy/check.sh finds it there).
KV_VENV="${XDG_CACHE_HOME:-$HOME/.cache}/vigil-kubernetes-validate"
if [ "$FAST" = 0 ] && [ ! -x "$KV_VENV/bin/kubernetes-validate" ]; then
    step "installing kubernetes-validate into $KV_VENV (once)"
    command -v python3 >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends python3 >/dev/null; }
    if ! python3 -m venv "$KV_VENV" >/dev/null 2>&1; then
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
        python3 -m venv "$KV_VENV"
    fi
    "$KV_VENV/bin/pip" install -q kubernetes-validate
fi
step "deploy/: promtool check config and rules, promtool test rules, kubernetes-validate, docker-compose config"
if [ "$FAST" = 1 ] && { { ! command -v docker-compose >/dev/null && ! docker compose version >/dev/null 2>&1; } \
        || [ ! -x "$KV_VENV/bin/kubernetes-validate" ]; }; then
    echo "skipped: no docker-compose or kubernetes-validate (run without --fast to install them)"
else
    deploy/check.sh
fi
if command -v shellcheck >/dev/null; then
    step "shellcheck: deploy and the seed's scripts"
    shellcheck -x deploy/*.sh integration-tests/*.sh
fi
# The binary `cargo test --workspace` built for the integration tests above is this commit's;
# `cargo build` would build the workspace again without the tests' unified features (5 min).
[ -x "$CARGO_TARGET_DIR/debug/vigil" ] || cargo build -q -p vigil-cli
for script in test-cluster-health simulate-failure load-test; do
    step "the seed's scripts: integration-tests/$script.sh (private vigil up)"
    VIGIL_BIN="$CARGO_TARGET_DIR/debug/vigil" timeout 120 "integration-tests/$script.sh" --own
done
# ---- END monitoring, deployment and the seed's scripts ----------------------------------

# --- BEGIN real backends (issue 4: the pipeline against PostgreSQL, Redis and Kafka) ---
# Full mode only. Installs what is missing (apt: postgresql redis-server cmake
# libcurl4-openssl-dev; tansu with its durable `sqlite://` engine through
# scripts/tansu-broker.sh install, only when no such binary exists: ~11 min from clean),
# starts private servers on loopback (free ports picked at start, nothing shared with the
# machine), runs the pipeline tests against them with the `kafka` feature (the broker is
# restarted once in the middle of one of them), and stops them.
if [ "$FAST" = 0 ]; then
    step "real backends: installing PostgreSQL, Redis, cmake, libcurl (apt) and tansu (cargo) if missing"
    need=()
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
    command -v redis-server >/dev/null || need+=(redis-server)
    command -v cmake >/dev/null || need+=(cmake)
    [ -f /usr/include/x86_64-linux-gnu/curl/curl.h ] || [ -f /usr/include/curl/curl.h ] || need+=(libcurl4-openssl-dev)
    if [ ${#need[@]} -gt 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
    scripts/tansu-broker.sh install

    RB=$(mktemp -d /tmp/vigil-backends.XXXXXX)
    PG_BIN=$(dirname "$(printf '%s\n' /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")
    # Ports the kernel hands out now (not fixed ones): a fixed port once collided in CI with a
    # server another run on this machine had left listening.
    read -r PG_PORT REDIS_PORT KAFKA_PORT < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')
    stop_backends() {
        if [ -f "$RB/pg/postmaster.pid" ]; then
            su postgres -s /bin/sh -c "$PG_BIN/pg_ctl -D $RB/pg -m immediate stop" >/dev/null 2>&1 || true
        fi
        redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
        scripts/tansu-broker.sh stop "$RB/tansu" || true
        rm -rf "$RB"
    }
    trap stop_backends EXIT

    step "real backends: starting PostgreSQL :$PG_PORT, Redis :$REDIS_PORT, tansu :$KAFKA_PORT on 127.0.0.1"
    chown postgres "$RB" 2>/dev/null || true
    pg_ctl_as() { su postgres -s /bin/sh -c "$PG_BIN/pg_ctl -D $RB/pg -l $RB/pg.log -w -o '-p $PG_PORT -k $RB -c listen_addresses=127.0.0.1' $*"; }
    su postgres -s /bin/sh -c "$PG_BIN/initdb -D $RB/pg --auth=trust -U postgres" >/dev/null
    # One retry: a start failed once in CI for a reason its (then deleted) log did not keep.
    if ! pg_ctl_as start >/dev/null && { sleep 2; ! pg_ctl_as start >/dev/null; }; then
        echo "PostgreSQL did not start; its log:"; cat "$RB/pg.log" 2>/dev/null || true
        ss -ltnp 2>/dev/null | grep -E ":($PG_PORT|$REDIS_PORT|$KAFKA_PORT) " || true
        exit 1
    fi
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes --save '' --appendonly no \
        --pidfile "$RB/redis.pid" --logfile "$RB/redis.log"
    scripts/tansu-broker.sh start "$RB/tansu" "$KAFKA_PORT"

    export VIGIL_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
    export VIGIL_TEST_POSTGRES_RESTART="su postgres -s /bin/sh -c \"$PG_BIN/pg_ctl -D $RB/pg -l $RB/pg.log -w -m fast -o '-p $PG_PORT -k $RB -c listen_addresses=127.0.0.1' restart\" >/dev/null"
    export VIGIL_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
    export VIGIL_TEST_KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
    export VIGIL_TEST_KAFKA_RESTART="$PWD/scripts/tansu-broker.sh restart $RB/tansu $KAFKA_PORT"
    step "real backends: pipeline tests (kill -9 the consumer, restart PostgreSQL and the broker; Kafka feature)"
    cargo test -p vigil-cli --features kafka --test pipeline -- --nocapture --test-threads 1
    stop_backends; trap - EXIT
fi
# --- END real backends ---

if [ "$FAST" = 0 ]; then
    # The config target links the binary's whole dependency tree in the fuzz profile (a long
    # first build): it runs by hand (scripts/fuzz.sh 60 config), not in every CI run.
    step "fuzzing: the wire decoder and the core's message handler (30 s each)"
    scripts/fuzz.sh 30 codec node
fi

if [ "$FAST" = 0 ]; then
    step "simulator reports (release), invariants checked on every step"
    cargo build --release -p sim --bin vigil-sim
    for s in join crash partition; do
        "$CARGO_TARGET_DIR/release/vigil-sim" --scenario "$s" --nodes 100 --seed 1
    done
    step "randomized fault trials (release, 3 minutes of trials, seed 1): no safety violation"
    # Splits (even ones too), one-way and partial cuts, flapping, pauses, crashes, loss bursts,
    # clock skew; every invariant every step. Missed liveness bounds are printed, not failed
    # (issue 13). The long run: docs/simulator.md.
    "$CARGO_TARGET_DIR/release/vigil-sim" --scenario trials --trials 1000 --seed 1 --time-budget 180s \
        --gate safety > target/trials.json
fi
echo; echo "ALL TESTS PASSED in $((SECONDS / 60))m$((SECONDS % 60))s"
