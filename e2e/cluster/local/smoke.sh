#!/usr/bin/env bash
# Smoke test of a running cluster (up.sh first, or any KUBECONFIG):
#   1. Postgres StatefulSet (mcp-e2e/postgres:15) on a PVC of the default class
#   2. force-delete the pod (grace 0): data survives, time to Ready again
#   3. kill -9 the postmaster inside the container: container restarts in the
#      same pod, data survives
#   4. service DNS + kube-proxy: another pod reaches
#      postgres.mcp-smoke.svc.cluster.local:5432 with the password
#   5. eviction/drain: with a PDB (maxUnavailable 1) over 2 replicas, one
#      eviction succeeds and the next is refused while the first is not back
# Leaves nothing behind (deletes its namespace) unless --keep.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/versions.sh
source "$HERE/versions.sh"
export KUBECONFIG="${KUBECONFIG:-$KUBECONFIG_PATH}"
NS=mcp-smoke
KEEP=0
[ "${1:-}" = --keep ] && KEEP=1

k() { "$K8S_BIN/kubectl" "$@"; }
kn() { "$K8S_BIN/kubectl" -n "$NS" "$@"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }
psql_q() { kn exec postgres-0 -c postgres -- psql -U postgres -tAc "$1"; }
ok() { log "OK: $*"; }

T0=$(now)
k delete ns "$NS" --ignore-not-found --wait=true >/dev/null
k create ns "$NS" >/dev/null
kn apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Secret
metadata: {name: pg}
stringData: {password: smoke-secret}
---
apiVersion: v1
kind: Service
metadata: {name: postgres}
spec:
  selector: {app: postgres}
  ports: [{name: pg, port: 5432, targetPort: 5432}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: postgres}
spec:
  serviceName: postgres
  replicas: 1
  selector: {matchLabels: {app: postgres}}
  template:
    metadata: {labels: {app: postgres}}
    spec:
      terminationGracePeriodSeconds: 10
      containers:
      - name: postgres
        image: mcp-e2e/postgres:15
        imagePullPolicy: IfNotPresent
        env:
        - name: POSTGRES_PASSWORD
          valueFrom: {secretKeyRef: {name: pg, key: password}}
        ports: [{containerPort: 5432, name: pg}]
        readinessProbe:
          exec: {command: [pg_isready, -h, 127.0.0.1, -U, postgres]}
          periodSeconds: 1
          failureThreshold: 1
        volumeMounts: [{name: data, mountPath: /var/lib/postgresql/data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
EOF
kn wait --for=condition=Ready pod/postgres-0 --timeout=180s >/dev/null 2>&1 ||
  { kn describe pod postgres-0 | tail -20; die "postgres-0 not Ready"; }
ok "postgres StatefulSet Ready in $(since "$T0")s; PVC $(kn get pvc data-postgres-0 -o jsonpath='{.status.phase} -> {.spec.volumeName}')"
psql_q "CREATE TABLE IF NOT EXISTS t (id int primary key, v text); INSERT INTO t VALUES (1, 'before-kill') ON CONFLICT DO NOTHING;" >/dev/null

# 2. force delete
uid1=$(kn get pod postgres-0 -o jsonpath='{.metadata.uid}')
T1=$(now)
kn delete pod postgres-0 --grace-period=0 --force >/dev/null 2>&1
until [ "$(kn get pod postgres-0 -o jsonpath='{.metadata.uid}' 2>/dev/null)" != "$uid1" ]; do sleep 0.2; done
kn wait --for=condition=Ready pod/postgres-0 --timeout=180s >/dev/null
ready_s=$(since "$T1")
[ "$(psql_q 'SELECT v FROM t WHERE id = 1')" = before-kill ] || die "row lost after force delete"
ok "force-deleted pod back Ready in ${ready_s}s, row still there"

# 3. kill -9 of the postmaster
r0=$(kn get pod postgres-0 -o jsonpath='{.status.containerStatuses[0].restartCount}')
T2=$(now)
kn exec postgres-0 -- pkill -KILL -o -x postgres
until [ "$(kn get pod postgres-0 -o jsonpath='{.status.containerStatuses[0].restartCount}')" -gt "$r0" ]; do sleep 0.2; done
kn wait --for=condition=Ready pod/postgres-0 --timeout=180s >/dev/null
[ "$(psql_q 'SELECT v FROM t WHERE id = 1')" = before-kill ] || die "row lost after kill -9"
ok "kill -9 postmaster: container restarted (restarts $r0 -> $((r0 + 1))), Ready in $(since "$T2")s, row still there"

# 4. DNS + service from another pod, password auth over TCP
T3=$(now)
kn run dns-client --image=mcp-e2e/postgres:15 --image-pull-policy=IfNotPresent --restart=Never \
  --env=PGPASSWORD=smoke-secret --command -- \
  psql -h postgres.$NS.svc.cluster.local -U postgres -tAc 'SELECT v FROM t WHERE id = 1' >/dev/null
kn wait --for=jsonpath='{.status.phase}'=Succeeded pod/dns-client --timeout=120s >/dev/null ||
  { kn logs dns-client || true; die "dns-client failed"; }
[ "$(kn logs dns-client)" = before-kill ] || die "dns-client got: $(kn logs dns-client)"
ok "postgres.$NS.svc.cluster.local reached from another pod (DNS + kube-proxy + scram auth) in $(since "$T3")s"

# 5. eviction / drain with a PDB
kn apply -f - >/dev/null <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: drain-me}
spec:
  replicas: 2
  selector: {matchLabels: {app: drain-me}}
  template:
    metadata: {labels: {app: drain-me}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: c, image: registry.k8s.io/pause:3.10, imagePullPolicy: IfNotPresent}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: drain-me}
spec:
  maxUnavailable: 1
  selector: {matchLabels: {app: drain-me}}
EOF
kn rollout status deploy/drain-me --timeout=120s >/dev/null
until [ "$(kn get pdb drain-me -o jsonpath='{.status.disruptionsAllowed}')" = 1 ]; do sleep 0.2; done
NODE=$(k get nodes -o jsonpath='{.items[0].metadata.name}')
T4=$(now)
out=$(k drain "$NODE" --pod-selector=app=drain-me --timeout=15s --ignore-daemonsets 2>&1 || true)
k uncordon "$NODE" >/dev/null
grep -q "evicted" <<<"$out" || { echo "$out"; die "drain evicted nothing"; }
grep -q "disruption budget" <<<"$out" || { echo "$out"; die "PDB did not hold during drain"; }
kn rollout status deploy/drain-me --timeout=120s >/dev/null
ok "drain: one pod evicted, the second refused by the PDB while the first was away; back to 2/2 after uncordon ($(since "$T4")s)"

if [ "$KEEP" -eq 0 ]; then
  k delete ns "$NS" --wait=true >/dev/null
fi
ok "smoke test passed in $(since "$T0")s"
