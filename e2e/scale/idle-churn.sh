#!/usr/bin/env bash
# Idle cost of the operator: N McpServers whose pods stay Pending (a control
# plane with controllers but no scheduler or kubelet), nothing else changing.
# Measures, over one resync period (300 s) after everything converged, per minute: reconciles, CPU
# seconds of the operator process, child and status writes, reconcile errors.
#
#   e2e/scale/idle-churn.sh [N] [remediation: true|false]     (defaults 300 true)
#
# Prints one JSON line. Uses the operator's release binary (built if missing) and
# a throwaway control plane from e2e/cluster/local/control-plane.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-300}
REMEDIATION=${2:-true}
IDLE_S=${IDLE_S:-300}
# Env: IDLE_S (300: one resync period) measured seconds, SETTLE_S (240) wait after convergence,
# IDLE_HTTP_PORT (18089) the operator's metrics port.
PORT=${IDLE_HTTP_PORT:-18089}
NS=idle-churn
log() { printf '[%(%H:%M:%S)T] idle-churn: %s\n' -1 "$*" >&2; }

# A control plane of its own (state dir and ports), so the integration tests'
# one can come and go meanwhile; torn down at the end unless IDLE_KEEP=1.
MCP_CACHE=${MCP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mcp-operator}
export CP_DIR=${CP_DIR:-$MCP_CACHE/idle-control-plane}
export CP_APISERVER_PORT=${CP_APISERVER_PORT:-17443} CP_ETCD_PORT=${CP_ETCD_PORT:-13379}
export CP_CONTROLLER_MANAGER_PORT=${CP_CONTROLLER_MANAGER_PORT:-20258}
eval "$(e2e/cluster/local/control-plane.sh up --with-controllers)"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$MCP_CACHE/target}
bin="$CARGO_TARGET_DIR/release/mcp-operator"
[[ -x "$bin" ]] || cargo build --release --locked -p mcp-operator
kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
kubectl wait --for=condition=Established crd/mcpservers.mcp.operator.dev --timeout=60s >/dev/null

kubectl delete ns "$NS" --wait=true --ignore-not-found >/dev/null
kubectl create ns "$NS" >/dev/null
# A database Service without a selector and a hand-made ready EndpointSlice:
# the dependency is up and nothing touches it during the measurement.
kubectl apply -n "$NS" -f - >/dev/null <<YAML
apiVersion: v1
kind: Secret
metadata: {name: notes-db}
stringData: {url: "postgres://app:secret@postgres:5432/notes"}
---
apiVersion: v1
kind: Service
metadata: {name: postgres}
spec: {ports: [{port: 5432}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: postgres-1, labels: {kubernetes.io/service-name: postgres}}
addressType: IPv4
endpoints: [{addresses: ["10.244.0.9"], conditions: {ready: true}}]
ports: [{port: 5432, protocol: TCP}]
YAML

log "starting the operator"
HTTP_ADDR=127.0.0.1:$PORT LOG_LEVEL=warn WATCH_NAMESPACES=$NS "$bin" >"/tmp/idle-churn-operator.log" 2>&1 &
op=$!
cleanup() {
  kill "$op" 2>/dev/null || true
  [[ "${IDLE_KEEP:-0}" == 1 ]] || e2e/cluster/local/control-plane.sh down >/dev/null 2>&1 || true
}
trap cleanup EXIT
for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.2; done

log "creating $N McpServers (remediation.enabled=$REMEDIATION)"
for i in $(seq 1 "$N"); do
  cat <<YAML
---
apiVersion: mcp.operator.dev/v1alpha1
kind: McpServer
metadata: {name: s$i}
spec:
  image: mcp-workload:dev
  replicas: {min: 2, max: 2}
  remediation: {enabled: $REMEDIATION}
  database:
    urlSecretRef: {name: notes-db, key: url}
    service: {name: postgres, port: 5432}
YAML
done | kubectl apply -n "$NS" --server-side -f - >/dev/null

converged() {
  kubectl get mcps -n "$NS" -o json | python3 -c '
import json, sys
items = json.load(sys.stdin)["items"]
ok = sum(1 for m in items if (m.get("status") or {}).get("observedGeneration") == m["metadata"]["generation"])
print(ok)'
}
for _ in $(seq 600); do
  [[ "$(converged)" == "$N" ]] && break
  sleep 1
done
# Settle well past the Deployments' progress deadline (120 s, and the
# controller-manager works through 300 of them): a real event, not idle churn.
SETTLE_S=${SETTLE_S:-240}
log "$(converged)/$N converged; settling $SETTLE_S s"
sleep "$SETTLE_S"

sample() {
  local m cpu
  m=$(curl -fsS "http://127.0.0.1:$PORT/metrics")
  cpu=$(awk '{print $14 + $15}' "/proc/$op/stat")
  python3 - "$cpu" <<PY
import re, sys
text = """$m"""
def total(name):
    return sum(float(v) for v in re.findall(r"^" + name + r"(?:\{[^}]*\})? ([0-9.e+]+)$", text, re.M))
print(total("mcp_operator_reconciles_total"), total("mcp_operator_child_writes_total"),
      total("mcp_operator_status_writes_total"), total("mcp_operator_reconcile_errors_total"), float(sys.argv[1]))
PY
}
read -r r0 c0 s0 e0 t0 < <(sample)
log "measuring $IDLE_S s of idle"
sleep "$IDLE_S"
read -r r1 c1 s1 e1 t1 < <(sample)
ticks=$(getconf CLK_TCK)
python3 -c "
import json
scale = 60.0 / $IDLE_S
print(json.dumps({'n': $N, 'remediation': '$REMEDIATION' == 'true', 'idle_seconds': $IDLE_S,
  'reconciles_per_min': round(($r1 - $r0) * scale, 1),
  'cpu_s_per_min': round(($t1 - $t0) / $ticks * scale, 2),
  'child_writes_per_min': round(($c1 - $c0) * scale, 1),
  'status_writes_per_min': round(($s1 - $s0) * scale, 1),
  'reconcile_errors_per_min': round(($e1 - $e0) * scale, 1)}))"
