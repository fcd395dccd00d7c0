#!/usr/bin/env bash
# The full test command: installs what the tests need, then runs every gate and test tier.
#   scripts/test.sh            everything (what CI runs)
#   scripts/test.sh --fast     skip the installs and the release-mode simulator runs
set -euo pipefail
cd "$(dirname "$0")/.."
FAST=0; [ "${1:-}" = "--fast" ] && FAST=1
step() { printf '\n=== %s\n' "$*"; }

if [ "$FAST" = 0 ]; then
    step "installing test tools (promtool from Debian's prometheus package)"
    need=()
    command -v promtool >/dev/null || need+=(prometheus)
    if [ ${#need[@]} -gt 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
fi

# ---- multi-host fault lab (docs/lab.md): tools for the netns lab tests ------------------
# The lab tests (`cargo test -p vigil --test lab`) run inside `cargo test --workspace` below,
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

step "the membership core stays sans-IO (no tokio among its dependencies)"
if cargo tree -p membership -e normal --prefix none | grep -qE '^(tokio|mio|socket2) '; then
    echo "membership depends on an I/O runtime:"; cargo tree -p membership -e normal -i tokio; exit 1
fi

step "unit, simulator and loopback tests"
cargo test --workspace

# ---- BEGIN monitoring, deployment and the seed's scripts (issue 5) ----------------------
# Installs docker-compose (Debian's v1: only `config` is used, no Docker engine is needed),
# jq, curl and shellcheck; checks deploy/ offline (promtool check config/rules, promtool
# test rules, docker-compose config), then runs the seed's three scripts against a private
# `vigil up` on random free ports (each well under 2 minutes). The live Prometheus and
# dashboard tests are cargo tests (crates/vigil/tests/prometheus.rs, dashboards.rs) above.
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
step "deploy/: promtool check config and rules, promtool test rules, docker-compose config"
if [ "$FAST" = 1 ] && ! command -v docker-compose >/dev/null && ! docker compose version >/dev/null 2>&1; then
    echo "skipped: no docker-compose (run without --fast to install it)"
else
    deploy/check.sh
fi
if command -v shellcheck >/dev/null; then
    step "shellcheck: deploy and the seed's scripts"
    shellcheck -x deploy/*.sh integration-tests/*.sh
fi
cargo build -q -p vigil
for script in test-cluster-health simulate-failure load-test; do
    step "the seed's scripts: integration-tests/$script.sh (private vigil up)"
    timeout 120 "integration-tests/$script.sh" --own
done
# ---- END monitoring, deployment and the seed's scripts ----------------------------------

if [ "$FAST" = 0 ]; then
    step "simulator reports (release), invariants checked on every step"
    cargo build --release -p sim --bin vigil-sim
    for s in join crash partition; do
        ./target/release/vigil-sim --scenario "$s" --nodes 100 --seed 1
    done
fi
echo; echo "ALL TESTS PASSED"
