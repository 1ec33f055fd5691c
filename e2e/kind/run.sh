#!/usr/bin/env bash
# The e2e suite on kind (needs docker and kind; cannot run on the project's
# own machines, which have no privileged containers).
#
# Usage: e2e/kind/run.sh [--keep] [SUITE ARGS...]
#   Creates the kind cluster `mcp-e2e` (unless it exists), builds the images
#   with docker, loads them with `kind load docker-image`, then runs
#   e2e/run-suite.sh with KUBECONFIG pointing at the kind cluster.
#   --keep  keep the cluster afterwards (default: delete it if we created it)
# Env: KIND_CLUSTER (default mcp-e2e), KIND_NODE_IMAGE (optional node image),
#      DOCKER (default docker).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CLUSTER="${KIND_CLUSTER:-mcp-e2e}"
DOCKER="${DOCKER:-docker}"
MCP_CACHE="${MCP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mcp-operator}"
KUBECONFIG_FILE="$MCP_CACHE/kind/$CLUSTER.kubeconfig"

log() { printf '[%s] kind: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

KEEP=0
if [ "${1:-}" = --keep ]; then KEEP=1; shift; fi

for tool in kind "$DOCKER" kubectl helm; do
  command -v "$tool" >/dev/null || die "$tool not found in PATH"
done

# The tags the chart and the suite use (same as the local cluster's).
IMAGES=(mcp-operator:dev mcp-workload:dev mcp-e2e/postgres:15)

CREATED=0
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  log "cluster $CLUSTER exists, reusing it"
else
  log "creating cluster $CLUSTER (1 control plane + 2 workers)"
  args=(create cluster --name "$CLUSTER" --config "$HERE/kind-config.yaml" --wait 180s)
  if [ -n "${KIND_NODE_IMAGE:-}" ]; then args+=(--image "$KIND_NODE_IMAGE"); fi
  kind "${args[@]}"
  CREATED=1
fi
cleanup() {
  if [ "$CREATED" -eq 1 ] && [ "$KEEP" -eq 0 ]; then
    log "deleting cluster $CLUSTER (use --keep to keep it)"
    kind delete cluster --name "$CLUSTER" || true
  fi
}
trap cleanup EXIT

mkdir -p "$(dirname "$KUBECONFIG_FILE")"
kind get kubeconfig --name "$CLUSTER" > "$KUBECONFIG_FILE"
export KUBECONFIG="$KUBECONFIG_FILE"

log "building images with $DOCKER"
"$DOCKER" build -t mcp-operator:dev -f "$REPO/Dockerfile" "$REPO"
"$DOCKER" build -t mcp-workload:dev -f "$REPO/e2e/workload/Dockerfile" "$REPO"
"$DOCKER" build -t mcp-e2e/postgres:15 "$REPO/e2e/images/postgres"

for img in "${IMAGES[@]}"; do
  log "kind load docker-image $img"
  kind load docker-image --name "$CLUSTER" "$img"
done

# kind's default StorageClass is "standard" (local-path), like the local
# cluster's, so the suite's Postgres PVC binds on both.
# S13 drops the Postgres pod's packets with iptables on the host, which only
# works where the host routes pod IPs itself (the local cluster); S10, S11, S12
# and S18 stop control-plane daemons, freeze a process and read the API
# server's audit log on the host. Leave them out on kind unless scenarios are named.
args=("$@")
if [[ " ${args[*]} " != *" --scenarios "* ]]; then
  args+=(--scenarios "S1,S2,S3,S4,S5,S6,S7,S8,S9,S14,S15")
  log "S10-S13 and S18 (host faults, audit log) need the local cluster: not run on kind"
fi
log "running the suite (KUBECONFIG=$KUBECONFIG)"
"$REPO/e2e/run-suite.sh" "${args[@]}"
