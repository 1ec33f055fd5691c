#!/usr/bin/env bash
# Every test of the project, in the order a failure is cheapest to find:
#   1. unit + request-sequence tests (no cluster)
#   2. integration: a real etcd + kube-apiserver, a real throwaway Postgres
#   3. the official MCP conformance suite against the bundled workload server,
#      the chart's alert rules (promtool), the GitOps health tool (go test), the
#      scale benchmark at N = 50 (control plane + kwok)
#   4. the e2e suite on a real single-node cluster (KUBECONFIG if it points at
#      one and E2E_USE_KUBECONFIG=1, otherwise the local cluster from upstream binaries)
# Set SKIP_E2E=1 to stop after step 3.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=../e2e/cluster/local/versions.sh
. e2e/cluster/local/versions.sh
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$MCP_CACHE/target}
log() { printf '[%(%H:%M:%S)T] test-all: %s\n' -1 "$*" >&2; }
start=$SECONDS

log "building Kubernetes binaries (cached under $MCP_CACHE)"
e2e/cluster/local/build.sh

log "starting etcd + kube-apiserver for integration tests"
cp_env=$(e2e/cluster/local/control-plane.sh up)
eval "$cp_env"
export MCP_TEST_KUBECONFIG=$KUBECONFIG
unset KUBECONFIG
export MCP_REQUIRE_APISERVER=1 MCP_REQUIRE_PG=1
cargo_log=$(mktemp)
suite_log=$(mktemp)
# Whatever fails, the throwaway control plane and the logs go.
cleanup() {
  rm -f "$cargo_log" "$suite_log"
  e2e/cluster/local/control-plane.sh down >&2 || true
}
trap cleanup EXIT

log "cargo test (workspace: operator + workload, with real API server and real Postgres)"
cargo_rc=0
cargo test --workspace --locked -j 2 2>&1 | tee "$cargo_log" || cargo_rc=$?
passed=$(grep -Eo '^test result: .* ([0-9]+) passed' "$cargo_log" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed;' "$cargo_log" | awk '{s+=$1} END {print s+0}')
e2e/cluster/local/control-plane.sh down >&2 || true
if ((cargo_rc != 0)); then
  echo "cargo: ${passed} passed, ${failed} failed"
  exit "$cargo_rc"
fi

# The official MCP conformance suite against the bundled workload server
# (both eras; per-scenario table under target/conformance); a scenario that
# should pass and fails stops the run here.
conformance_out=${CONFORMANCE_OUT:-$PWD/target/conformance}
log "MCP conformance: hack/conformance.sh (bundled workload server, operator's prober)"
CONFORMANCE_OUT=$conformance_out hack/conformance.sh

# The chart's alerts (promtool check/test rules, promtool built from its Go
# module and cached) and the GitOps health tool's own tests (kstatus, Lua).
log "alerts and dashboard: hack/check-alerts.sh"
hack/check-alerts.sh
log "GitOps health tool: go test (hack/gitops-health)"
hack/gitops-health/build.sh --test
# The scale benchmark at a small N, ours only (make bench-scale runs N = 100,
# 1,000 and 3,000 beside ToolHive): the same thresholds, on a control plane
# with kwok nodes of its own.
log "scale benchmark smoke: N=50 (bench/scale/run.sh)"
bench_out=$(mktemp -d)
BENCH_N=50 BENCH_OPERATORS=mcp-operator BENCH_IDLE_S=30 BENCH_OUT="$bench_out" bench/scale/run.sh
rm -rf "$bench_out"

if [[ "${SKIP_E2E:-0}" == "1" ]]; then
  log "SKIP_E2E=1: not running the e2e suite"
  echo "cargo: ${passed} passed, ${failed} failed"
  exit 0
fi

log "e2e suite on a real cluster"
e2e_rc=0
# stderr too: a setup failure says why there, and the end of this script
# repeats it where a CI log's tail shows it.
# The e2e report carries the conformance results (its "MCP conformance" section).
E2E_CONFORMANCE_JSON=${E2E_CONFORMANCE_JSON:-$conformance_out/conformance.json} \
  E2E_USER_PATHS=${E2E_USER_PATHS:-1} e2e/run-e2e.sh "$@" 2>&1 | tee "$suite_log" || e2e_rc=${PIPESTATUS[0]}
# The suite's own verdicts: each run of it (the own-cluster demo's S1, then
# the suite) prints "e2e checks: N passed, M failed" (every check and
# threshold of every run) once its report is written.
read -r e2e_passed e2e_failed < <(
  sed -nE 's/^e2e checks: ([0-9]+) passed, ([0-9]+) failed.*/\1 \2/p' "$suite_log" |
    awk '{p += $1; f += $2} END {print p + 0, f + 0}'
)
setup_failed=0
if ((e2e_rc != 0 && e2e_failed == 0)); then
  e2e_failed=1  # the suite failed before or outside its checks (setup)
  setup_failed=1
fi
log "tests finished in $((SECONDS - start)) s"
echo "cargo: ${passed} passed, ${failed} failed"
echo "e2e checks: ${e2e_passed} passed, ${e2e_failed} failed"
echo "total: $((passed + e2e_passed)) passed, $((failed + e2e_failed)) failed"
# What failed, last, where a CI log's tail shows it.
grep -E '^e2e S[0-9A-Z]+: (failed|breached): ' "$suite_log" | head -20 || true
if ((setup_failed)); then
  echo "e2e stopped outside its checks (exit $e2e_rc); its last lines before the teardown:"
  grep -vE 'stopping pid|removed|unmounted|iptables|ip6tables|down in|control plane down' "$suite_log" | tail -25 || true
fi
exit "$e2e_rc"
