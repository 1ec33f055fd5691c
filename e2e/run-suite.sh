#!/usr/bin/env bash
# Run the e2e suite (the Rust crate e2e/suite, binary mcp-e2e) against the
# cluster in KUBECONFIG.
#
#   KUBECONFIG=... e2e/run-suite.sh [--demo] [suite args, e.g. --scenarios S1,S4]
#
# Builds the operator, the workload and the suite (release, -j2), re-imports the
# images when KUBECONFIG is the local cluster's (kind users: e2e/kind/run.sh
# loads them), then runs mcp-e2e, which prints the report table and the report
# paths. --demo runs S1 only. E2E_SKIP_BUILD=1 uses the binaries/images as they are.
# Exit code: the suite's (0 all checks and thresholds passed, 1 one failed, 2 setup failed).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=cluster/local/versions.sh
. e2e/cluster/local/versions.sh
log() { printf '[%(%H:%M:%S)T] run-suite: %s\n' -1 "$*" >&2; }

: "${KUBECONFIG:?set KUBECONFIG to the cluster to test (local: $KUBECONFIG_PATH)}"
export KUBECONFIG
KUBECTL=${KUBECTL:-$(command -v kubectl || echo "$K8S_BIN/kubectl")}
HELM=${HELM:-$(command -v helm || echo "$K8S_BIN/helm")}
export KUBECTL HELM
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$MCP_CACHE/target}

args=()
for a in "$@"; do
  if [[ "$a" == "--demo" ]]; then
    args+=(--scenarios S1)
  else
    args+=("$a")
  fi
done

is_local=0
if kubeconfig_is_local; then
  is_local=1
  # the HA scenarios read its audit log and stop its daemons
  export E2E_CLUSTER_DIR="$CLUSTER_DIR"
fi

if [[ "${E2E_SKIP_BUILD:-0}" != "1" ]]; then
  log "building mcp-operator, mcp-workload and mcp-e2e (release)"
  cargo build --release -j2 --locked -p mcp-operator -p mcp-workload -p mcp-e2e
  if [[ $is_local == 1 ]]; then
    log "importing the operator and workload images into every node of the local cluster"
    for sock in $(cluster_containerd_sockets); do
      CONTAINERD_ADDRESS="$sock" e2e/images/build.sh --import operator workload
    done
    # same :dev tag, possibly a new image: roll the operator
    args=(--restart-operator "${args[@]}")
  fi
fi

# S20 evaluates live McpServers with kstatus and Argo CD's Lua (a Go tool,
# cached); runs that name their scenarios without S20 (the demo) need no Go.
needs_gitops=1
if [[ " ${args[*]} " == *" --scenarios "* && ! " ${args[*]} " =~ [\ ,]S20([\ ,]|$) ]]; then
  needs_gitops=0
fi
if [[ -z "${GITOPS_HEALTH:-}" && $needs_gitops == 1 ]]; then
  log "building hack/gitops-health (kstatus + gopher-lua; cached)"
  GITOPS_HEALTH=$(hack/gitops-health/build.sh)
fi
export GITOPS_HEALTH=${GITOPS_HEALTH:-}

log "running the suite: ${args[*]}"
rc=0
"$CARGO_TARGET_DIR/release/mcp-e2e" "${args[@]}" || rc=$?
log "done (exit $rc)"
exit "$rc"
