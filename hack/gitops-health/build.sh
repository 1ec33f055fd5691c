#!/usr/bin/env bash
# Builds hack/gitops-health into ${MCP_CACHE:-~/.cache/mcp-operator}/bin/gitops-health
# and prints the binary's path on stdout (logs go to stderr).
#
# Idempotent: rebuilds only when go.mod, go.sum or a *.go file is newer than the
# binary, or the binary was built from another checkout (it finds
# charts/mcp-operator/argocd/health.lua relative to its source when -lua is not given).
# Go caches live under ~/.cache: GOCACHE is Go's default there (~/.cache/go-build),
# GOMODCACHE defaults to ~/.cache/go-mod (Go's own default is ~/go/pkg/mod).
#
# Usage: bin=$(hack/gitops-health/build.sh) && "$bin" -expect-argocd Healthy obj.json
#        hack/gitops-health/build.sh --test     # go test, same Go environment
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ -z "${HOME:-}" ]; then HOME="$(getent passwd "$(id -u)" | cut -d: -f6)"; export HOME; fi
CACHE_HOME="${XDG_CACHE_HOME:-$HOME/.cache}"
MCP_CACHE="${MCP_CACHE:-$CACHE_HOME/mcp-operator}"
BIN="$MCP_CACHE/bin/gitops-health"
STAMP="$BIN.src" # the source directory the binary was built from

stale() {
  [ -x "$BIN" ] || return 0
  [ "$(cat "$STAMP" 2>/dev/null)" = "$SRC" ] || return 0
  [ -n "$(find "$SRC" -maxdepth 1 -type f \( -name go.mod -o -name go.sum -o -name '*.go' \) -newer "$BIN" -print -quit)" ]
}

go_env() {
  if ! command -v go >/dev/null; then
    for d in /usr/local/go/bin /usr/lib/go/bin "$HOME/go/bin" "$HOME/sdk/go/bin"; do
      if [ -x "$d/go" ]; then PATH="$d:$PATH"; break; fi
    done
  fi
  command -v go >/dev/null || { echo "gitops-health: 'go' not found (need Go >= 1.26)" >&2; exit 1; }
  export GOFLAGS=-mod=mod
  export GOCACHE="${GOCACHE:-$(go env GOCACHE)}"
  export GOMODCACHE="${GOMODCACHE:-$CACHE_HOME/go-mod}"
}

# --test: the tool's own tests, with the same Go environment as the build.
if [ "${1:-}" = "--test" ]; then
  go_env
  cd "$SRC" && exec go test -count=1 ./...
fi

if stale; then
  go_env
  mkdir -p "$(dirname "$BIN")"
  t0=$SECONDS
  echo "gitops-health: building $BIN" >&2
  # No -trimpath: the default -lua path comes from the source file's path.
  (cd "$SRC" && CGO_ENABLED=0 go build -buildvcs=false -ldflags "-s -w" -o "$BIN.tmp" .)
  mv -f "$BIN.tmp" "$BIN"
  echo "$SRC" >"$STAMP"
  echo "gitops-health: built in $((SECONDS - t0))s" >&2
fi

echo "$BIN"
