#!/usr/bin/env bash
# make bench-scale: N servers on a simulated cluster, one operator at a time,
# side by side with ToolHive's; writes report.json and report.md.
#
# The cluster is the local cluster's binaries as a control plane (etcd,
# kube-apiserver with an audit log, kube-controller-manager, kube-scheduler)
# plus kwok simulating BENCH_NODES nodes, so every pod is scheduled and turns
# Ready without a container. Each operator runs on this machine as a process
# with exactly its chart's RBAC (a ServiceAccount token), like in a cluster;
# ours inside a memory cgroup at the chart's default limit. A fresh control
# plane per run: no operator sees the other's leftovers.
#
# Env: BENCH_N (default "100 1000 3000"), BENCH_OPERATORS (default
#      "mcp-operator toolhive"), BENCH_NODES (50), BENCH_IDLE_S (60),
#      BENCH_TIMEOUT_S (longest wait of any one phase; default 900 s, or
#      0.6 s per server above that: ToolHive wrote ~92 requests a second at
#      N = 1,000 and needed 294 s, so N = 3,000 would end near 900),
#      BENCH_OUT (default bench/scale: report.json, report.md, runs/, logs/),
#      BENCH_KWOK_POD_PARALLELISM (16: pods kwok moves through a stage at once;
#      kwok's default, 4, makes the simulated kubelet the slowest part),
#      BENCH_GOALS=1 (fail when a goal at N=1000 is missed, not only a threshold),
#      BENCH_PROFILER (a command our operator runs under, e.g. "heaptrack -o
#      /tmp/op" or "perf record -F 199 -g -o /tmp/op.perf": for profiles only,
#      the figures of such a run are the profiler's too)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=../../e2e/cluster/local/versions.sh
source "$ROOT/e2e/cluster/local/versions.sh"

BENCH_N="${BENCH_N:-100 1000 3000}"
BENCH_OPERATORS="${BENCH_OPERATORS:-mcp-operator toolhive}"
BENCH_NODES="${BENCH_NODES:-50}"
BENCH_IDLE_S="${BENCH_IDLE_S:-60}"
BENCH_KWOK_POD_PARALLELISM="${BENCH_KWOK_POD_PARALLELISM:-16}"
OUT="${BENCH_OUT:-$ROOT/bench/scale}"
TOOLHIVE_VERSION="${TOOLHIVE_VERSION:-v0.47.0}"
WORK="$MCP_CACHE/bench-scale"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$MCP_CACHE/target}"

export CP_DIR="$WORK/cp" CP_APISERVER_PORT=27443 CP_ETCD_PORT=23379
export CP_CONTROLLER_MANAGER_PORT=20457 CP_SCHEDULER_PORT=20459
CP_KUBECONFIG_PATH="$CP_DIR/kubeconfig"
export CP_WITH_CONTROLLERS=1 CP_WITH_SCHEDULER=1 CP_AUDIT_POLICY="$HERE/audit-policy.yaml"
# The controller manager's and scheduler's defaults (20 QPS, 5 workers) would
# make pod creation, not the operator, the bottleneck at N = 1,000+.
export CP_CLIENT_QPS="${BENCH_CP_QPS:-300}"
# Node lifecycle on: it lifts the not-ready taint once kwok reports a node Ready.
export CP_CONTROLLERS='*,-nodeipam,-cloud-node-lifecycle'
export CP_CONTROLLER_MANAGER_FLAGS="--concurrent-deployment-syncs=25 --concurrent-replicaset-syncs=25"
KCTL="$K8S_BIN/kubectl"
OPERATOR_METRICS_PORT=18480

# The chart's default memory limit, which ours runs under.
chart_memory_limit() {
  local v
  v=$(sed -n '/^resources:/,/^[a-z]/{/limits:/,/memory:/{s/^ *memory: *//p}}' "$ROOT/charts/mcp-operator/values.yaml")
  case "$v" in
    *Mi) echo $(( ${v%Mi} * 1024 * 1024 )) ;;
    *Gi) echo $(( ${v%Gi} * 1024 * 1024 * 1024 )) ;;
    *) die "cannot read the chart's memory limit ($v)" ;;
  esac
}

build() {
  "$ROOT/e2e/cluster/local/build.sh" --no-apt >&2
  KWOK=$("$ROOT/hack/kwok.sh")
  HELM=$("$ROOT/hack/install-helm.sh")
  (cd "$ROOT" && cargo build --release --locked -p mcp-operator -p mcp-e2e >&2)
  TARGET="$CARGO_TARGET_DIR/release"
  if [[ " $BENCH_OPERATORS " == *" toolhive "* ]]; then
    THV=$("$ROOT/hack/go-tool.sh" toolhive github.com/stacklok/toolhive cmd/thv-operator "$TOOLHIVE_VERSION")
    THV_SRC=$(cat "$(dirname "$THV")/.module-dir")
  fi
}

cluster_down() {
  if [[ -f "$CP_DIR/run/kwok.pid" ]]; then
    # shellcheck source=../../e2e/cluster/local/lib.sh
    source "$ROOT/e2e/cluster/local/lib.sh"
    stop_daemon kwok "$CP_DIR"
  fi
  "$ROOT/e2e/cluster/local/control-plane.sh" down >&2 || true
}

cluster_up() {
  cluster_down
  "$ROOT/e2e/cluster/local/control-plane.sh" up >&2
  export KUBECONFIG="$CP_KUBECONFIG_PATH"
  # shellcheck source=../../e2e/cluster/local/lib.sh
  source "$ROOT/e2e/cluster/local/lib.sh"
  cat >"$CP_DIR/kwok-options.yaml" <<YAML
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
# A configuration file is not defaulted: kwok's other defaults, spelled out.
options:
  podPlayStageParallelism: $BENCH_KWOK_POD_PARALLELISM
  nodePlayStageParallelism: 4
  nodeLeaseParallelism: 4
  podsOnNodeSyncParallelism: 1
  enablePodsOnNodeSyncListPager: true
  enablePodsOnNodeSyncStreamWatch: false
YAML
  start_daemon kwok "$CP_DIR" "$KWOK" --kubeconfig "$KUBECONFIG" \
    --config "$(dirname "$KWOK")/stages.yaml" --config "$CP_DIR/kwok-options.yaml" \
    --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --node-lease-duration-seconds 40 --cidr 10.64.0.1/12 --node-ip 10.63.0.1
  local i
  for ((i = 0; i < BENCH_NODES; i++)); do
    cat <<YAML
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels: {kubernetes.io/hostname: kwok-node-$i, kubernetes.io/os: linux, kubernetes.io/arch: amd64, type: kwok}
status:
  allocatable: {cpu: "64", memory: 256Gi, pods: "300"}
  capacity: {cpu: "64", memory: 256Gi, pods: "300"}
YAML
  done | "$KCTL" apply -f - >/dev/null
  "$KCTL" wait --for=condition=Ready node --all --timeout=120s >/dev/null
  wait_for "the nodes' not-ready taints lifted" 120 \
    bash -c '[[ -z "$("$0" get nodes -o jsonpath="{.items[*].spec.taints}")" ]]' "$KCTL"
  log "cluster: control plane + kwok, $BENCH_NODES nodes Ready"
}

# A kubeconfig for ServiceAccount NS/NAME: the operator sees the API server as
# a pod would, with its token and nothing else.
sa_kubeconfig() {
  local ns=$1 sa=$2 file=$3 token
  token=$("$KCTL" create token "$sa" -n "$ns" --duration 4h)
  cat >"$file" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: bench
  cluster: {server: "https://127.0.0.1:$CP_APISERVER_PORT", certificate-authority: "$CP_DIR/pki/ca.crt"}
users:
- name: $sa
  user: {token: "$token"}
contexts:
- name: bench
  context: {cluster: bench, user: $sa, namespace: $ns}
current-context: bench
YAML
}

# Sets OP_CMD, OP_USER, OP_VERSION for the run.
install_mcp_operator() {
  "$KCTL" apply --server-side -f "$ROOT/crds/" >/dev/null
  "$KCTL" create namespace mcp-operator-system >/dev/null
  "$HELM" template mcp-operator "$ROOT/charts/mcp-operator" --namespace mcp-operator-system \
    --show-only templates/serviceaccount.yaml --show-only templates/rbac.yaml |
    "$KCTL" apply -n mcp-operator-system -f - >/dev/null
  sa_kubeconfig mcp-operator-system mcp-operator "$WORK/operator.kubeconfig"
  OP_USER=system:serviceaccount:mcp-operator-system:mcp-operator
  OP_VERSION="$(sed -n 's/^version: *//p' "$ROOT/charts/mcp-operator/Chart.yaml") ($(git -C "$ROOT" rev-parse --short HEAD))"
  OP_METRICS="http://127.0.0.1:$OPERATOR_METRICS_PORT/metrics"
  # The chart's arguments (leader election on), its environment, its memory limit.
  local profiler=()
  read -r -a profiler <<<"${BENCH_PROFILER:-}"
  OP_EXE="$TARGET/mcp-operator"
  OP_CMD=(env POD_NAMESPACE=mcp-operator-system POD_NAME=mcp-operator-bench
    "$HERE/in-cgroup.sh" mcp-operator "$(chart_memory_limit)"
    "${profiler[@]}" "$TARGET/mcp-operator" --log-level=info --log-format=json
    "--http-addr=127.0.0.1:$OPERATOR_METRICS_PORT" --leader-election=true
    --lease-name=mcp-operator-leader)
}

# ToolHive as its chart runs it: every CRD (all its controllers start and
# watch them), the chart's ServiceAccount, ClusterRole and leader-election
# Role with their bindings, its leader election and its Go memory settings.
install_toolhive() {
  local chart="$THV_SRC/deploy/charts/operator" rendered="$WORK/toolhive-chart.yaml"
  "$KCTL" apply --server-side -f "$THV_SRC/deploy/charts/operator-crds/files/crds/" >/dev/null
  "$KCTL" create namespace toolhive-system >/dev/null
  "$HELM" template toolhive-operator "$chart" --namespace toolhive-system >"$rendered"
  python3 - "$rendered" <<'PY' | "$KCTL" apply -n toolhive-system -f - >/dev/null
import sys, yaml
keep = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d.get("kind") in keep]
print(yaml.safe_dump_all(docs))
PY
  sa_kubeconfig toolhive-system toolhive-operator "$WORK/operator.kubeconfig"
  OP_USER=system:serviceaccount:toolhive-system:toolhive-operator
  OP_VERSION="$TOOLHIVE_VERSION"
  OP_METRICS="http://127.0.0.1:$OPERATOR_METRICS_PORT/metrics"
  # The chart's environment for the operator container, less what only
  # matters in a pod; the update check is off (it calls out every 30 min).
  local chart_env
  chart_env=$(python3 - "$rendered" <<'PY'
import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d.get("kind") == "Deployment":
        for c in d["spec"]["template"]["spec"]["containers"]:
            for e in c.get("env", []):
                if "value" in e and e["name"] not in ("TOOLHIVE_ENABLE_STORAGE_VERSION_MIGRATOR",):
                    print(f'{e["name"]}={e["value"]}')
PY
)
  mapfile -t THV_ENV <<<"$chart_env"
  OP_EXE="$THV"
  OP_CMD=(env "${THV_ENV[@]}" POD_NAMESPACE=toolhive-system TOOLHIVE_SKIP_UPDATE_CHECK=true "$THV"
    "--metrics-bind-address=127.0.0.1:$OPERATOR_METRICS_PORT"
    --health-probe-bind-address=127.0.0.1:18481 --leader-elect)
}

main() {
  build
  # A run replaces its own file (operator, N); the report renders every run in
  # runs/, so BENCH_N and BENCH_OPERATORS can add rows one at a time.
  mkdir -p "$OUT/runs" "$OUT/logs" "$WORK"
  trap cluster_down EXIT
  local n op failed=0
  for n in $BENCH_N; do
    for op in $BENCH_OPERATORS; do
      local timeout_s=${BENCH_TIMEOUT_S:-$(( n * 6 / 10 > 900 ? n * 6 / 10 : 900 ))}
      log "== $op, N=$n (a phase times out after $timeout_s s)"
      cluster_up
      "install_${op//-/_}"
      "$TARGET/mcp-bench-scale" run --peer "$op" --n "$n" --idle-s "$BENCH_IDLE_S" --timeout-s "$timeout_s" \
        --out "$OUT/runs/$op-$n.json" --audit-log "$CP_DIR/audit.log" --user "$OP_USER" \
        --metrics-url "$OP_METRICS" --operator-log "$OUT/logs/$op-$n.log" \
        --operator-kubeconfig "$WORK/operator.kubeconfig" --version "$OP_VERSION" --exe "$OP_EXE" \
        --cluster-pids "$CP_DIR/run" \
        -- "${OP_CMD[@]}" || failed=1
    done
  done
  local cpu
  cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
  "$TARGET/mcp-bench-scale" report --runs "$OUT/runs" --out "$OUT" \
    --note "machine: $(nproc) cores ($cpu), $(free -g | awk '/^Mem:/ {print $2}') GiB; everything (etcd, API server, controller manager, scheduler, kwok, the operator, the benchmark's client) shares it" \
    --note "cluster: Kubernetes $K8S_VERSION control plane + $("$KWOK" --version 2>/dev/null | head -1), $BENCH_NODES simulated nodes; controller manager and scheduler at $CP_CLIENT_QPS QPS, 25 Deployment and ReplicaSet workers; kwok moves $BENCH_KWOK_POD_PARALLELISM pods through a stage at once (its default: 4)" \
    --note "workload: N servers, 2 replicas each, over 10 namespaces, one database Service with a hand-made EndpointSlice; created 16 at a time" \
    --note "ours runs under the chart's memory limit ($(( $(chart_memory_limit) / 1048576 )) MiB, a cgroup), leader election on; ToolHive without a limit" \
    --note "idle: ${BENCH_IDLE_S} s, starting 10 s after convergence; requests from the API server's audit log (one event per request)" \
    --note "command: make bench-scale (BENCH_N and BENCH_OPERATORS choose the runs; this report renders every run in runs/ beside it)" \
    ${BENCH_GOALS:+--goals} || failed=1
  return "$failed"
}

main "$@"
