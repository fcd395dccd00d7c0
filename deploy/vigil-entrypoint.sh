#!/bin/sh
# Entry point of the vigil image. For `vigil node` it fills in what a container cannot know
# in advance, unless already set:
#   VIGIL_NODE_ID         <role>-<container hostname>: unique per container, stable across
#                         restarts of that container (peers then see a rejoin with a new
#                         generation), so `docker compose up --scale producer=3` needs no ids.
#   VIGIL_NODE_ADVERTISE  <container IP>:<gossip port>: peers must not be told 0.0.0.0 or
#                         127.0.0.1, and a scaled service's name resolves to many containers.
set -eu
if [ "${1:-}" = "node" ]; then
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
