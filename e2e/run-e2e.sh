#!/usr/bin/env bash
# The e2e suite on a real cluster. With E2E_USE_KUBECONFIG=1 it uses the cluster
# in KUBECONFIG as is (kind users: e2e/kind/run.sh); otherwise it builds and starts
# the local single-node cluster from upstream binaries (e2e/cluster/local).
# E2E_DOWN=1 tears the local cluster down afterwards, whatever happened (CI); by
# default it stays up so a second run is warm. Arguments go to e2e/run-suite.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[%(%H:%M:%S)T] run-e2e: %s\n' -1 "$*" >&2; }

local_cluster=0
teardown() {
  if [[ $local_cluster == 1 && "${E2E_DOWN:-0}" == "1" ]]; then
    log "tearing the local cluster down"
    e2e/cluster/local/down.sh >&2 || true
  fi
}
trap teardown EXIT

if [[ "${E2E_USE_KUBECONFIG:-0}" != "1" ]]; then
  log "bringing up the local cluster"
  local_cluster=1
  up_env=$(e2e/cluster/local/up.sh)
  eval "$up_env"
fi
: "${KUBECONFIG:?KUBECONFIG must point at a cluster}"
export KUBECONFIG

e2e/run-suite.sh "$@"
