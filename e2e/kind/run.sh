#!/usr/bin/env bash
# The e2e suite, or the demo, on kind (needs docker and kind; cannot run on the
# project's own machines, which have no privileged containers).
#
# Usage: e2e/kind/run.sh [--demo] [--keep] [SUITE ARGS...]
#   1. creates the kind cluster $KIND_CLUSTER (default mcp-e2e; `make demo`:
#      mcp-demo) unless it exists;
#   2. builds the images once with docker: the operator and the workload are
#      the root Dockerfile's two targets and share one Rust build; Postgres is
#      e2e/images/postgres;
#   3. `kind load docker-image`s them;
#   4. runs the same path as every other cluster, e2e/run-e2e.sh with
#      E2E_USE_KUBECONFIG=1: Helm install, the operator rolled onto the images
#      just loaded, Postgres, the McpServer, the scenarios. The MCP client runs
#      in a pod in the cluster (the host cannot reach kind's ClusterIPs).
#   --demo  S1 only (what `make demo` runs)
#   --keep  keep a cluster this run created (default: delete it; --demo keeps it)
# Env: KIND_CLUSTER, KIND_NODE_IMAGE (optional node image), DOCKER (default docker).
# e2e/kind/test.sh runs all of this on the local cluster with kind and docker
# stood in for; only `kind create cluster` and the docker builds are not real there.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
DOCKER="${DOCKER:-docker}"
# shellcheck source=../cluster/local/versions.sh
. "$REPO/e2e/cluster/local/versions.sh"
log() { printf '[%s] kind: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

DEMO=0
KEEP=0
args=()
for a in "$@"; do
  case "$a" in
    --demo) DEMO=1; KEEP=1 ;;
    --keep) KEEP=1 ;;
    *) args+=("$a") ;;
  esac
done
if [ "$DEMO" -eq 1 ]; then CLUSTER="${KIND_CLUSTER:-mcp-demo}"; else CLUSTER="${KIND_CLUSTER:-mcp-e2e}"; fi
KUBECONFIG_FILE="$MCP_CACHE/kind/$CLUSTER.kubeconfig"

for tool in kind "$DOCKER"; do
  command -v "$tool" >/dev/null || die "$tool not found in PATH"
done
"$DOCKER" info >/dev/null 2>&1 || die "$DOCKER cannot reach its daemon"

# The tags the chart and the manifests use (the same as the local cluster's).
IMAGES=(mcp-operator:dev mcp-workload:dev mcp-e2e/postgres:15)

CREATED=0
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  log "cluster $CLUSTER exists, reusing it"
else
  log "creating cluster $CLUSTER (1 control plane + 2 workers)"
  create=(create cluster --name "$CLUSTER" --config "$HERE/kind-config.yaml" --wait 180s)
  if [ -n "${KIND_NODE_IMAGE:-}" ]; then create+=(--image "$KIND_NODE_IMAGE"); fi
  kind "${create[@]}"
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
kind get kubeconfig --name "$CLUSTER" >"$KUBECONFIG_FILE"
export KUBECONFIG="$KUBECONFIG_FILE"

log "building the images with $DOCKER (one Rust build for the operator and the workload)"
"$DOCKER" build -t mcp-operator:dev "$REPO"
"$DOCKER" build --target workload -t mcp-workload:dev "$REPO"
"$DOCKER" build -t mcp-e2e/postgres:15 "$REPO/e2e/images/postgres"
log "kind load docker-image ${IMAGES[*]}"
kind load docker-image --name "$CLUSTER" "${IMAGES[@]}"

# The suite itself runs on this machine.
log "building the suite (mcp-e2e)"
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$MCP_CACHE/target}" \
  cargo build --release -j2 --locked -p mcp-e2e

# S13 drops the Postgres pod's packets with iptables on the host, which only
# works where the host routes pod IPs itself (the local cluster); S10, S11, S12
# and S18 stop control-plane daemons, freeze a process and read the API
# server's audit log on the host; S17 cuts a local-cluster node's link. Leave
# them out on kind unless scenarios are named.
if [ "$DEMO" -eq 1 ]; then
  args=(--demo "${args[@]}")
elif [[ " ${args[*]} " != *" --scenarios "* ]]; then
  args+=(--scenarios "S1,S2,S3,S4,S5,S6,S7,S8,S9,S14,S15,S16,S19,S20,S21")
  log "S10-S13, S17 and S18 (host faults, audit log) need the local cluster: not run on kind"
fi
log "running e2e/run-e2e.sh (KUBECONFIG=$KUBECONFIG)"
E2E_USE_KUBECONFIG=1 E2E_SKIP_BUILD=1 E2E_LOAD_FROM=cluster \
  "$REPO/e2e/run-e2e.sh" --restart-operator "${args[@]}"
