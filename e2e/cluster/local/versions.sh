# shellcheck shell=bash
# shellcheck disable=SC2034
# Versions and paths shared by the local-cluster scripts. Sourced, not run.

K8S_VERSION="${K8S_VERSION:-1.34.4}"
K8S_STAGING_VERSION="${K8S_STAGING_VERSION:-0.34.4}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.14.7}"
HELM_VERSION="${HELM_VERSION:-v3.21.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.8}"

# CI may run with a thin environment.
if [ -z "${HOME:-}" ]; then HOME="$(getent passwd "$(id -u)" | cut -d: -f6)"; export HOME; fi
MCP_CACHE="${MCP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mcp-operator}"
K8S_BIN="$MCP_CACHE/k8s/$K8S_VERSION/bin"
# Runtime state of the local cluster (certs, etcd data, containerd, logs, PVs).
CLUSTER_DIR="${CLUSTER_DIR:-$MCP_CACHE/cluster}"
KUBECONFIG_PATH="$CLUSTER_DIR/kubeconfig"
# The registry hack/registry.sh serves; the local cluster's containerd pulls
# from it over plain HTTP (up.sh writes its hosts.toml).
LOCAL_REGISTRY="${LOCAL_REGISTRY:-127.0.0.1:5000}"
# Control-plane-only (etcd + kube-apiserver) for integration tests.
CP_DIR="${CP_DIR:-$MCP_CACHE/control-plane}"
CP_KUBECONFIG_PATH="$CP_DIR/kubeconfig"

# KUBECONFIG is the local cluster's (the suite then imports images into its
# containerd and may stop its daemons).
kubeconfig_is_local() {
  [[ -n "${KUBECONFIG:-}" && -e "$KUBECONFIG_PATH" && "$(realpath "$KUBECONFIG")" == "$(realpath "$KUBECONFIG_PATH")" ]]
}

# The containerd socket of every node of the local cluster (node 1's first).
cluster_containerd_sockets() {
  local s
  for s in "$CLUSTER_DIR/run/containerd.sock" "$CLUSTER_DIR"/nodes/*/run/containerd.sock; do
    [ -S "$s" ] && echo "$s"
  done
  return 0
}

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
