#!/usr/bin/env bash
# `make demo`: install the operator with Helm, deploy Postgres and a 3-replica
# McpServer, kill Postgres once (S1) while a client writes, print the report.
#
# Which cluster:
#   - KUBECONFIG unset or unreachable, with docker and kind on PATH: the kind
#     cluster mcp-demo, created or reused (e2e/kind/run.sh --demo);
#   - KUBECONFIG unset or unreachable otherwise (or DEMO_CLUSTER=local): the
#     local cluster (e2e/cluster/local), images imported into its containerd.
#   - KUBECONFIG is the local cluster's: the same.
#   - any other cluster ("your own"): IMAGE_REPOSITORY is required, a registry
#     prefix the cluster pulls from and you can push to (credentials from
#     ~/.docker/config.json). The images are built, pushed there with crane
#     (hack/crane.sh) and pulled by the cluster. Without it the demo changes
#     nothing: it names the cluster, lists what it would install, and exits 2.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=cluster/local/versions.sh
. e2e/cluster/local/versions.sh
kubectl_bin=${KUBECTL:-$(command -v kubectl || echo "$K8S_BIN/kubectl")}
helm_bin=${HELM:-$(command -v helm || echo "$K8S_BIN/helm")}
say() { echo "demo: $*" >&2; }

reachable() {
  [[ -n "${KUBECONFIG:-}" ]] && "$kubectl_bin" --request-timeout=5s get --raw /readyz >/dev/null 2>&1
}

# What the demo would create, from the same chart and manifests it applies
# (client-side dry run: discovery reads only).
would_install() {
  {
    echo "customresourcedefinition.apiextensions.k8s.io/mcpservers.mcp.operator.dev"
    echo "namespace/mcp-system, with the Helm release mcp-operator:"
    "$helm_bin" template mcp-operator charts/mcp-operator -n mcp-system |
      "$kubectl_bin" create --dry-run=client -o name -f - 2>/dev/null | sed 's|^|  |' || true
    "$kubectl_bin" create --dry-run=client -o name -f e2e/manifests/namespaces.yaml \
      -f e2e/manifests/postgres.yaml -f e2e/manifests/db-secret.yaml 2>/dev/null || true
    # kubectl cannot map the McpServer kind before its CRD exists
    echo "mcpserver.mcp.operator.dev/notes (3 replicas, namespace mcp-e2e)"
  } | sed 's/^/  /'
}

if ! reachable; then
  unset KUBECONFIG
  if [[ "${DEMO_CLUSTER:-}" != local ]] && command -v kind >/dev/null && command -v "${DOCKER:-docker}" >/dev/null &&
    "${DOCKER:-docker}" info >/dev/null 2>&1; then
    say "no reachable cluster in KUBECONFIG; docker and kind found: the kind cluster mcp-demo"
    exec e2e/kind/run.sh --demo "$@"
  fi
  say "no reachable cluster in KUBECONFIG; using the local cluster (e2e/cluster/local)"
  exec e2e/run-e2e.sh --demo "$@"
fi
export E2E_USE_KUBECONFIG=1
if kubeconfig_is_local; then
  say "using the local cluster (KUBECONFIG=$KUBECONFIG)"
  exec e2e/run-e2e.sh --demo "$@"
fi

context=$("$kubectl_bin" config current-context 2>/dev/null || echo "?")
cluster=$("$kubectl_bin" config view --minify -o jsonpath='{.clusters[0].name}' 2>/dev/null || echo "?")
server=$("$kubectl_bin" config view --minify -o jsonpath='{.clusters[0].cluster.server}' 2>/dev/null || echo "?")
if [[ -z "${IMAGE_REPOSITORY:-}" ]]; then
  say "KUBECONFIG points at cluster \"$cluster\" ($server, context \"$context\"), not the local e2e cluster."
  say "Nothing was changed. On that cluster the demo would install:"
  would_install >&2
  say "and then delete the Postgres pod once (S1) while a client writes."
  say "It also needs images that cluster can pull. Set IMAGE_REPOSITORY to a registry prefix"
  say "you can push to and the cluster pulls from, for example:"
  say "  IMAGE_REPOSITORY=registry.example.com/mcp make demo"
  exit 2
fi

repo=${IMAGE_REPOSITORY%/}
say "cluster \"$cluster\" ($server, context \"$context\"); images from $repo"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$MCP_CACHE/target}
cargo build --release -j2 --locked -p mcp-operator -p mcp-workload -p mcp-e2e
e2e/images/build.sh --push="$repo" operator workload postgres
E2E_SKIP_BUILD=1 E2E_IMAGE_REPOSITORY=$repo exec e2e/run-e2e.sh --demo "$@"
