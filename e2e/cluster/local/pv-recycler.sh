#!/usr/bin/env bash
# Host-side recycler for up.sh's hostPath PersistentVolumes (label
# mcp-e2e/local-pv=true): a PV whose claim was deleted (phase Released) has
# its directory emptied and its claimRef removed, so it is Available again.
# Started as a daemon by up.sh, stopped by down.sh.
# Usage: pv-recycler.sh KUBECONFIG PV_ROOT [INTERVAL_S]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/versions.sh
source "$HERE/versions.sh"

KCFG="$1"
ROOT="$2"
INTERVAL="${3:-3}"
kc() { "$K8S_BIN/kubectl" --kubeconfig "$KCFG" "$@"; }

log "pv-recycler: watching Released PVs under $ROOT every ${INTERVAL}s"
while :; do
  list="$(kc get pv -l mcp-e2e/local-pv=true \
    -o jsonpath='{range .items[?(@.status.phase=="Released")]}{.metadata.name} {.spec.hostPath.path}{"\n"}{end}' 2>/dev/null || true)"
  while read -r name path; do
    [ -n "$name" ] || continue
    case "$path" in
      "$ROOT"/*) ;;
      *) log "pv-recycler: $name: path $path is not under $ROOT, leaving it"; continue ;;
    esac
    find "$path" -mindepth 1 -delete 2>/dev/null || true
    chmod 0777 "$path"
    if kc patch pv "$name" --type=json -p '[{"op":"remove","path":"/spec/claimRef"}]' >/dev/null 2>&1; then
      log "pv-recycler: $name wiped and Available again"
    fi
  done <<<"$list"
  sleep "$INTERVAL"
done
