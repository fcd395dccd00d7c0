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

if [ "$FAST" = 0 ]; then
    step "simulator reports (release), invariants checked on every step"
    cargo build --release -p sim --bin vigil-sim
    for s in join crash partition; do
        ./target/release/vigil-sim --scenario "$s" --nodes 100 --seed 1
    done
fi
echo; echo "ALL TESTS PASSED"
