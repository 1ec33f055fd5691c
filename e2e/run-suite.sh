#!/usr/bin/env bash
# Run the e2e suite against the cluster in KUBECONFIG.
#
#   KUBECONFIG=... e2e/run-suite.sh [--demo] [suite args, e.g. --scenarios S1,S4]
#
# Builds the operator and the workload (release, -j2), re-imports the images when
# KUBECONFIG is the local cluster's (kind users: e2e/kind/run.sh loads them), then
# runs e2e/suite/run.py and prints the report table and the report paths.
# --demo runs S1 only. Set E2E_SKIP_BUILD=1 to use the binaries/images as they are.
# Exit code: the suite's (0 all checks passed, 1 a check failed, 2 setup failed).
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[%(%H:%M:%S)T] run-suite: %s\n' -1 "$*" >&2; }

: "${KUBECONFIG:?set KUBECONFIG to the cluster to test (local: ~/.cache/mcp-operator/cluster/kubeconfig)}"
export KUBECONFIG

k8s_bin="$HOME/.cache/mcp-operator/k8s/1.34.4/bin"
if [[ -z "${KUBECTL:-}" ]]; then
  KUBECTL=$(command -v kubectl || echo "$k8s_bin/kubectl")
fi
if [[ -z "${HELM:-}" ]]; then
  HELM=$(command -v helm || echo "$k8s_bin/helm")
fi
export KUBECTL HELM

args=()
for a in "$@"; do
  if [[ "$a" == "--demo" ]]; then
    args+=(--scenarios S1)
  else
    args+=("$a")
  fi
done

local_kubeconfig="$HOME/.cache/mcp-operator/cluster/kubeconfig"
is_local=0
if [[ -e "$local_kubeconfig" && "$(realpath "$KUBECONFIG")" == "$(realpath "$local_kubeconfig")" ]]; then
  is_local=1
fi

if [[ "${E2E_SKIP_BUILD:-0}" != "1" ]]; then
  log "building mcp-operator and mcp-workload (release)"
  cargo build --release -j2 --locked -p mcp-operator -p mcp-workload
  if [[ $is_local == 1 ]]; then
    log "importing the operator and workload images into the local cluster"
    e2e/images/build.sh --import operator workload
    # same :dev tag, possibly a new image: roll the operator, recreate the workloads
    args=(--restart-operator "${args[@]}")
  fi
fi

target_dir=${CARGO_TARGET_DIR:-target}
if [[ -z "${MCP_LOADCLIENT:-}" && -x "$target_dir/release/mcp-loadclient" ]]; then
  MCP_LOADCLIENT=$(realpath "$target_dir/release/mcp-loadclient")
  export MCP_LOADCLIENT
fi

out="$target_dir/e2e"
for ((i = 0; i < ${#args[@]}; i++)); do
  if [[ "${args[i]}" == "--out" && $((i + 1)) -lt ${#args[@]} ]]; then out=${args[i + 1]}; fi
done
has_out=0
for a in "${args[@]}"; do [[ "$a" == "--out" ]] && has_out=1; done
[[ $has_out == 1 ]] || args+=(--out "$out")

log "running the suite: ${args[*]}"
rc=0
python3 e2e/suite/run.py "${args[@]}" || rc=$?
log "done (exit $rc); report: $out/report.md, $out/report.json, $out/timeline.svg"
exit "$rc"
