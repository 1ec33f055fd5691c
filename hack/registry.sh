#!/usr/bin/env bash
# A container registry on this machine for the "your own cluster" path:
# `crane registry serve` (go-containerregistry, built by hack/crane.sh), plain
# HTTP on 127.0.0.1:5000, blobs on disk under ~/.cache/mcp-operator/registry.
# The local cluster's containerd pulls from it (e2e/cluster/local/up.sh writes
# its hosts.toml). crane keeps manifests in memory: after a restart, push again.
#
# Usage: hack/registry.sh start|stop|status
# Env:   LOCAL_REGISTRY (default 127.0.0.1:5000)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../e2e/cluster/local/versions.sh
. "$ROOT/e2e/cluster/local/versions.sh"
ADDR="$LOCAL_REGISTRY"
DIR="$MCP_CACHE/registry"
PIDF="$DIR/registry.pid"
LOG="$DIR/registry.log"
log() { printf '[%(%H:%M:%S)T] registry: %s\n' -1 "$*" >&2; }

running() { [[ -s "$PIDF" ]] && kill -0 "$(cat "$PIDF")" 2>/dev/null; }
answers() { curl -fsS -o /dev/null --max-time 2 "http://$ADDR/v2/"; }

case "${1:-}" in
  start)
    if running && answers; then
      log "already serving on $ADDR (pid $(cat "$PIDF"))"
      exit 0
    fi
    crane=$("$ROOT/hack/crane.sh")
    mkdir -p "$DIR/blobs"
    setsid "$crane" registry serve --address "$ADDR" --disk "$DIR/blobs" >>"$LOG" 2>&1 </dev/null &
    echo $! >"$PIDF"
    for _ in $(seq 1 50); do
      if answers; then
        log "serving on http://$ADDR (pid $(cat "$PIDF"), log $LOG)"
        exit 0
      fi
      running || break
      sleep 0.2
    done
    log "ERROR: the registry did not answer on $ADDR; last log lines:"
    tail -5 "$LOG" >&2 || true
    exit 1
    ;;
  stop)
    if running; then
      kill "$(cat "$PIDF")" 2>/dev/null || true
      log "stopped"
    fi
    rm -f "$PIDF"
    ;;
  status)
    running && answers
    ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
