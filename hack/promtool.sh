#!/usr/bin/env bash
# Builds promtool (Prometheus' rule checker and rule unit-test runner) from its
# Go module (no prebuilt binaries, no internet beyond the Go module proxy) and
# prints the path of the binary on stdout; build output goes to stderr.
#
# Idempotent: the binary is cached per version under
#   ${MCP_TOOLS_DIR:-$MCP_CACHE/tools}/promtool-<version>/promtool (MCP_CACHE: ~/.cache/mcp-operator)
# and a second run is a no-op that only prints the path.
#
# Built with Prometheus' `remove_all_sd` tag: no cloud service-discovery
# plugins (AWS, Azure, GCE, ...; only what promtool imports itself stays),
# which `check rules` and `test rules` never use and which would otherwise
# dominate a cold build. `promtool check config` of a config using one of them
# fails with this binary.
#
# Usage: hack/promtool.sh                              # prints /path/to/promtool
#        PROMTOOL_VERSION=v0.315.1 hack/promtool.sh    # another Prometheus module version
# Prometheus 3.x is tagged v0.3MM.P as a Go module (v0.316.0 is Prometheus 3.16.0).
set -euo pipefail

PROMTOOL_VERSION="${PROMTOOL_VERSION:-v0.316.0}"
MODULE="github.com/prometheus/prometheus"
MCP_CACHE="${MCP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mcp-operator}"
TOOLS_DIR="${MCP_TOOLS_DIR:-$MCP_CACHE/tools}"
BIN_DIR="${TOOLS_DIR}/promtool-${PROMTOOL_VERSION}"
PROMTOOL_BIN="${BIN_DIR}/promtool"
# Written after a complete build, with its build tags; a binary without it or
# with other tags (an interrupted build, a plain `go install` into the same
# place) is rebuilt.
STAMP="${BIN_DIR}/.stamped"
TAGS="netgo,remove_all_sd"

if [[ ! -x "${PROMTOOL_BIN}" || "$(cat "${STAMP}" 2>/dev/null)" != "tags=${TAGS}" ]]; then
  if ! command -v go >/dev/null 2>&1; then
    echo "promtool: 'go' is required to build promtool ${PROMTOOL_VERSION}" >&2
    exit 1
  fi
  mkdir -p "${BIN_DIR}"
  # Outside any Go module: nothing here may touch a go.mod or go.sum.
  cd "${BIN_DIR}"
  echo "promtool: building ${MODULE}/cmd/promtool@${PROMTOOL_VERSION} into ${BIN_DIR} (first run only)" >&2

  # Stamp the Prometheus release (its VERSION file, e.g. 3.16.0) the way its
  # .promu.yml does, so `promtool --version` says what it is.
  dir="$(go mod download -json "${MODULE}@${PROMTOOL_VERSION}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  release="$(cat "${dir}/VERSION" 2>/dev/null || echo "${PROMTOOL_VERSION}")"
  pkg="github.com/prometheus/common/version"
  ldflags="-s -w -X ${pkg}.Version=${release} -X ${pkg}.Revision=${PROMTOOL_VERSION}"
  ldflags+=" -X ${pkg}.Branch=go-module -X ${pkg}.BuildUser=hack/promtool.sh"

  CGO_ENABLED=0 GOBIN="${BIN_DIR}" \
    go install -trimpath -tags "${TAGS}" -ldflags "${ldflags}" "${MODULE}/cmd/promtool@${PROMTOOL_VERSION}" >&2
  echo "tags=${TAGS}" >"${STAMP}"
fi

echo "${PROMTOOL_BIN}"
