#!/usr/bin/env bash
# `make demo`: use KUBECONFIG if it reaches a cluster, else bring up the local one;
# install the operator with Helm, deploy Postgres and a 3-replica McpServer, kill
# Postgres once (S1) while a client writes, and print the report.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=cluster/local/versions.sh
. e2e/cluster/local/versions.sh
kubectl_bin=${KUBECTL:-$(command -v kubectl || echo "$K8S_BIN/kubectl")}
if [[ -n "${KUBECONFIG:-}" ]] && "$kubectl_bin" --request-timeout=5s get --raw /readyz >/dev/null 2>&1; then
  echo "demo: using the cluster in KUBECONFIG=$KUBECONFIG" >&2
  export E2E_USE_KUBECONFIG=1
else
  echo "demo: no reachable cluster in KUBECONFIG; using the local cluster (e2e/cluster/local)" >&2
  unset KUBECONFIG
fi
exec e2e/run-e2e.sh --demo
