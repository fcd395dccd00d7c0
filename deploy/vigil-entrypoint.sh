#!/bin/sh
# Entry point of the vigil image. For `vigil node` it fills in what a container cannot know
# in advance, unless already set:
#   VIGIL_NODE_ID         <role>-<container hostname>: unique per container, stable across
#                         restarts of that container (peers then see a rejoin with a new
#                         generation), so `docker compose up --scale producer=3` needs no ids.
#   VIGIL_NODE_ADVERTISE  <container IP>:<gossip port>: peers must not be told 0.0.0.0 or
#                         127.0.0.1, and a scaled service's name resolves to many containers.
#   VIGIL_SECURITY_GOSSIP_KEYS, VIGIL_HTTP_ADMIN_TOKEN
#                         from $SECRETS/gossip-key and $SECRETS/admin-token when those exist
#                         (a member refuses to start without them; see `init-secrets`).
#
# `init-secrets` (the compose file's one-shot `secrets` service) makes the cluster's gossip
# key and admin token in $SECRETS from the OS's random source (`vigil keys generate`,
# `vigil keys token`) unless they are already there, so every later start reuses them.
set -eu
SECRETS=/var/lib/vigil/secrets
if [ "${1:-}" = "init-secrets" ]; then
    umask 077
    for pair in "gossip-key:generate" "admin-token:token"; do
        file="$SECRETS/${pair%%:*}"
        if [ ! -s "$file" ]; then
            vigil keys "${pair#*:}" >"$file.tmp"
            mv "$file.tmp" "$file"
            echo "made $file"
        else
            echo "kept $file"
        fi
    done
    exit 0
fi
if [ "${1:-}" = "node" ]; then
    if [ -z "${VIGIL_SECURITY_GOSSIP_KEYS:-}" ] && [ -z "${VIGIL_SECURITY_KEYRING_FILE:-}" ] \
        && [ -s "$SECRETS/gossip-key" ]; then
        VIGIL_SECURITY_GOSSIP_KEYS="$(cat "$SECRETS/gossip-key")"
        export VIGIL_SECURITY_GOSSIP_KEYS
    fi
    if [ -z "${VIGIL_HTTP_ADMIN_TOKEN:-}" ] && [ -s "$SECRETS/admin-token" ]; then
        VIGIL_HTTP_ADMIN_TOKEN="$(cat "$SECRETS/admin-token")"
        export VIGIL_HTTP_ADMIN_TOKEN
    fi
    if [ -z "${VIGIL_NODE_ID:-}" ]; then
        VIGIL_NODE_ID="${VIGIL_NODE_ROLE:-member}-$(hostname)"
        export VIGIL_NODE_ID
    fi
    if [ -z "${VIGIL_NODE_ADVERTISE:-}" ]; then
        ip="$(hostname -i)"
        ip="${ip%% *}"
        gossip="${VIGIL_NODE_GOSSIP:-0.0.0.0:7946}"
        VIGIL_NODE_ADVERTISE="${ip}:${gossip##*:}"
        export VIGIL_NODE_ADVERTISE
    fi
fi
exec vigil "$@"
