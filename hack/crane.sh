#!/usr/bin/env bash
# Prints the path of `crane` (go-containerregistry's registry client, which also
# serves a small OCI registry: `crane registry serve`), building it from its Go
# module on first use; build output goes to stderr.
#
# $CRANE or a crane on PATH is used as is. Otherwise the binary is cached per version under
#   ${MCP_TOOLS_DIR:-$MCP_CACHE/tools}/crane-<version>/crane   (MCP_CACHE: ~/.cache/mcp-operator)
# and a second run only prints the path.
#
# Usage: crane=$(hack/crane.sh)
#        CRANE_VERSION=v0.21.9 hack/crane.sh
set -euo pipefail

CRANE_VERSION="${CRANE_VERSION:-v0.22.1}"
MODULE="github.com/google/go-containerregistry"
if [[ -n "${CRANE:-}" ]]; then
  echo "$CRANE"
  exit 0
fi
if command -v crane >/dev/null 2>&1; then
  command -v crane
  exit 0
fi
MCP_CACHE="${MCP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mcp-operator}"
BIN_DIR="${MCP_TOOLS_DIR:-$MCP_CACHE/tools}/crane-${CRANE_VERSION}"
BIN="${BIN_DIR}/crane"

if [[ ! -x "$BIN" ]]; then
  if ! command -v go >/dev/null 2>&1; then
    echo "crane: neither crane nor go (to build it) found" >&2
    exit 1
  fi
  mkdir -p "$BIN_DIR"
  cd "$BIN_DIR"
  echo "crane: building ${MODULE}/cmd/crane@${CRANE_VERSION} (first run only)" >&2
  t0=$SECONDS
  CGO_ENABLED=0 GOBIN="${BIN_DIR}.tmp" \
    go install -trimpath -ldflags "-s -w" "${MODULE}/cmd/crane@${CRANE_VERSION}" >&2
  mv -f "${BIN_DIR}.tmp/crane" "$BIN"
  rmdir "${BIN_DIR}.tmp"
  echo "crane: built in $((SECONDS - t0)) s" >&2
fi
echo "$BIN"
