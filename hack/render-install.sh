#!/usr/bin/env bash
# Renders the plain-kubectl install bundle deploy/install.yaml from the Helm
# chart (default values, cluster-wide mode), so `kubectl apply` users and Helm
# users get the same objects. CRDs are NOT in the bundle: apply crds/ first
# (server-side, the CRD is large):
#
#   kubectl apply --server-side -f crds/
#   kubectl apply -f deploy/install.yaml
#
# Usage: hack/render-install.sh [output-file]   (default: deploy/install.yaml)
# Env:   HELM=/path/to/helm to skip hack/install-helm.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NAMESPACE="mcp-operator-system"
RELEASE="mcp-operator"
OUT="${1:-${ROOT}/deploy/install.yaml}"
HELM="${HELM:-$("${ROOT}/hack/install-helm.sh")}"

tmp="$(mktemp)"
trap 'rm -f "${tmp}"' EXIT

{
  cat <<YAML
# mcp-operator install bundle for plain kubectl (generated; do not edit).
# Source: charts/mcp-operator with default values, rendered by
# hack/render-install.sh; hack/check-install.sh fails when it is stale.
#
#   kubectl apply --server-side -f crds/
#   kubectl apply -f deploy/install.yaml
#
# Watches all namespaces. For other settings (single-namespace mode, image,
# replicas) install the Helm chart instead.
---
apiVersion: v1
kind: Namespace
metadata:
  name: ${NAMESPACE}
  labels:
    app.kubernetes.io/name: mcp-operator
    app.kubernetes.io/part-of: mcp-operator
    pod-security.kubernetes.io/enforce: restricted
    pod-security.kubernetes.io/enforce-version: latest
    pod-security.kubernetes.io/warn: restricted
    pod-security.kubernetes.io/audit: restricted
YAML
  # NOTES.txt is not part of `helm template` output. The objects are not
  # Helm-managed here, so say so in their managed-by label.
  "${HELM}" template "${RELEASE}" "${ROOT}/charts/mcp-operator" \
    --namespace "${NAMESPACE}" \
    | sed -e 's|app.kubernetes.io/managed-by: Helm|app.kubernetes.io/managed-by: kubectl|'
} >"${tmp}"

mkdir -p "$(dirname "${OUT}")"
mv "${tmp}" "${OUT}"
trap - EXIT
echo "rendered ${OUT#"${ROOT}"/}" >&2
