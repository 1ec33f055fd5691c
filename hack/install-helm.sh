#!/usr/bin/env bash
# Builds the helm CLI from its Go module (no prebuilt binaries, no internet
# beyond the Go module proxy) and prints the path of the binary on stdout.
#
# Idempotent: the binary is cached per version under
#   ${MCP_TOOLS_DIR:-$MCP_CACHE/tools}/helm-<version>/helm (MCP_CACHE: ~/.cache/mcp-operator)
#
# Usage: hack/install-helm.sh            # prints /path/to/helm
#        HELM_VERSION=v3.x.y hack/install-helm.sh
set -euo pipefail

# The version and MCP_CACHE the local cluster uses (one helm for everything).
# shellcheck source=../e2e/cluster/local/versions.sh
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/cluster/local/versions.sh"
TOOLS_DIR="${MCP_TOOLS_DIR:-$MCP_CACHE/tools}"
BIN_DIR="${TOOLS_DIR}/helm-${HELM_VERSION}"
HELM_BIN="${BIN_DIR}/helm"
# Written after a build with the version stamps below; a helm binary without it
# (e.g. a plain `go install` into the same place) is rebuilt.
STAMP="${BIN_DIR}/.stamped"

if [[ ! -x "${HELM_BIN}" || ! -f "${STAMP}" ]]; then
  if ! command -v go >/dev/null 2>&1; then
    echo "install-helm: 'go' is required to build helm ${HELM_VERSION}" >&2
    exit 1
  fi
  mkdir -p "${BIN_DIR}"
  echo "install-helm: building helm ${HELM_VERSION} into ${BIN_DIR} (first run only)" >&2

  # Helm's Makefile stamps the Kubernetes version it was built against (that of
  # its k8s.io/client-go, 0.N -> 1.N); without it `helm template` and
  # `helm lint` assume Kubernetes v1.20. Do the same here.
  gomod="$(go mod download -json "helm.sh/helm/v3@${HELM_VERSION}" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
  clientgo="$(sed -n 's#^[[:space:]]*k8s.io/client-go v0\.\([0-9][0-9]*\)\..*#\1#p' "${gomod}" | head -n1)"
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
  if [[ -n "${clientgo}" ]]; then
    for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
      ldflags+=" -X ${pkg}.k8sVersionMajor=1 -X ${pkg}.k8sVersionMinor=${clientgo}"
    done
  fi

  CGO_ENABLED=0 GOBIN="${BIN_DIR}" \
    go install -trimpath -ldflags "${ldflags}" "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}" >&2
  touch "${STAMP}"
fi

echo "${HELM_BIN}"
