#!/usr/bin/env bash
# The e2e suite on a real cluster. With E2E_USE_KUBECONFIG=1 it uses the cluster
# in KUBECONFIG as is (kind users: e2e/kind/run.sh); otherwise it builds and starts
# the local cluster from upstream binaries (e2e/cluster/local), NODES=2 nodes.
# E2E_DOWN=1 tears the local cluster down afterwards, whatever happened (CI); by
# default it stays up so a second run is warm. E2E_USER_PATHS=1 (make test)
# first runs the demo's other paths on the local cluster: e2e/own-cluster-test.sh
# (as if it were your own cluster, images through a registry) and
# e2e/kind/test.sh (kind and docker stood in for). Arguments go to
# e2e/run-suite.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=cluster/local/versions.sh
. e2e/cluster/local/versions.sh
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
  # Two nodes unless told otherwise: drains, spreading and node loss need a
  # second node (S5, S13, S17).
  log "bringing up the local cluster (${NODES:-2} nodes)"
  local_cluster=1
  up_env=$(NODES="${NODES:-2}" e2e/cluster/local/up.sh)
  eval "$up_env"
fi
: "${KUBECONFIG:?KUBECONFIG must point at a cluster}"
export KUBECONFIG

paths_rc=0
if [[ "${E2E_USER_PATHS:-0}" == "1" ]]; then
  if [[ $local_cluster != 1 ]]; then
    log "E2E_USER_PATHS=1 needs the local cluster (it plays the other clusters)"
    exit 2
  fi
  log "your own cluster: make demo through a registry (e2e/own-cluster-test.sh)"
  e2e/own-cluster-test.sh --out "${CARGO_TARGET_DIR:-$MCP_CACHE/target}/e2e-own-cluster" || paths_rc=$?
  log "kind: make demo with kind and docker stood in for (e2e/kind/test.sh)"
  e2e/kind/test.sh || paths_rc=$?
fi

rc=0
e2e/run-suite.sh "$@" || rc=$?
if ((paths_rc != 0)); then
  log "a demo path failed (exit $paths_rc)"
  ((rc != 0)) || rc=$paths_rc
fi
exit "$rc"
