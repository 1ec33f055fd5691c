#!/usr/bin/env bash
# Builds one command of a Go module at a pinned version (`go install`, CGO off,
# stripped) and prints the binary's path on stdout; build output on stderr.
# Cached per version under ${MCP_TOOLS_DIR:-$MCP_CACHE/tools}/<name>-<version>/;
# a binary is used only after a complete build (a stamp is written last).
# The module's source dir is in <dir>/.module-dir afterwards, for tools that
# need files shipped beside the command (kwok's stages, ToolHive's CRDs).
#
# Usage: hack/go-tool.sh NAME MODULE CMD_PATH VERSION
#   e.g. hack/go-tool.sh kwok sigs.k8s.io/kwok cmd/kwok v0.8.0
set -euo pipefail
[[ $# -eq 4 ]] || { sed -n 2,10p "$0" >&2; exit 2; }
name=$1 module=$2 cmd=$3 version=$4
MCP_CACHE="${MCP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mcp-operator}"
dir="${MCP_TOOLS_DIR:-$MCP_CACHE/tools}/${name}-${version}"
bin="$dir/$(basename "$cmd")"
if [[ ! -x "$bin" || ! -f "$dir/.stamped" ]]; then
  command -v go >/dev/null 2>&1 || { echo "$name: 'go' is required to build it" >&2; exit 1; }
  mkdir -p "$dir"
  # Outside any Go module: nothing here may touch a go.mod.
  cd "$dir"
  echo "$name: building $module/$cmd@$version (first run only)" >&2
  t0=$SECONDS
  CGO_ENABLED=0 GOBIN="$dir" GOFLAGS=-mod=mod \
    go install -trimpath -ldflags "-s -w" "$module/$cmd@$version" >&2
  go mod download -json "$module@$version" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' >"$dir/.module-dir"
  echo "built $version" >"$dir/.stamped"
  echo "$name: built in $((SECONDS - t0)) s" >&2
fi
echo "$bin"
