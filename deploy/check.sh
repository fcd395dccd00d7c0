#!/usr/bin/env bash
# Offline checks of the deployment files (no Prometheus, Grafana, Docker engine or Kubernetes
# cluster needed): promtool check config / check rules / test rules, `docker compose config`,
# and the Kubernetes manifests against the Kubernetes schemas (kubernetes-validate --strict,
# which bundles them; from $KUBERNETES_VALIDATE, PATH, or the venv scripts/test.sh makes in
# ~/.cache/vigil-kubernetes-validate).
# The live checks (a real Prometheus scraping `vigil up`; dashboard metrics exported by a
# running node) are cargo tests: crates/vigil-cli/tests/prometheus.rs and dashboards.rs.
set -euo pipefail
cd "$(dirname "$0")"

echo "--- promtool check config (compose and local variants; both load alerts.yml)"
promtool check config prometheus/prometheus.yml prometheus/prometheus-local.yml
echo "--- promtool check rules"
promtool check rules prometheus/alerts.yml
echo "--- promtool test rules (each alert fires when it should, and not on a healthy cluster)"
promtool test rules prometheus/alerts-test.yml

echo "--- kubernetes-validate --strict kubernetes/*.yaml (offline: the schemas are bundled)"
kv="${KUBERNETES_VALIDATE:-}"
[ -n "$kv" ] || kv="$(command -v kubernetes-validate || true)"
[ -n "$kv" ] || kv="${XDG_CACHE_HOME:-$HOME/.cache}/vigil-kubernetes-validate/bin/kubernetes-validate"
if [ ! -x "$kv" ]; then
    echo "kubernetes-validate not found: python3 -m venv ~/.cache/vigil-kubernetes-validate && ~/.cache/vigil-kubernetes-validate/bin/pip install kubernetes-validate (scripts/test.sh does this)" >&2
    exit 1
fi
"$kv" --strict --quiet kubernetes/*.yaml
manifests=(kubernetes/*.yaml)
echo "kubernetes: ${#manifests[@]} files valid"

echo "--- docker compose config (no Docker engine here: the file is checked, no image is built)"
if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
elif command -v docker-compose >/dev/null; then
    compose=(docker-compose)
else
    echo "neither 'docker compose' nor 'docker-compose' is installed (apt-get install docker-compose)" >&2
    exit 1
fi
"${compose[@]}" -f docker-compose.yml config -q
services=$("${compose[@]}" -f docker-compose.yml config --services | sort | tr '\n' ' ')
expected="consumer coordinator gateway grafana kafka postgres producer prometheus redis secrets "
if [ "$services" != "$expected" ]; then
    echo "compose services are [$services], expected [$expected]" >&2
    exit 1
fi
# The scalable service must not pin a container name or a host port.
config=$("${compose[@]}" -f docker-compose.yml config)
producer=$(printf '%s\n' "$config" | awk '/^  producer:/{p=1;next} /^  [a-z]/{p=0} p')
if printf '%s\n' "$producer" | grep -qE 'container_name|published:'; then
    echo "the producer service pins a container name or host port; --scale producer=3 would fail" >&2
    exit 1
fi
echo "compose: ${compose[*]} config OK ($services)"
