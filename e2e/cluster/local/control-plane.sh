#!/usr/bin/env bash
# Control plane only: etcd + kube-apiserver on loopback, for the operator's
# integration tests (no kubelet, no nodes, no pods ever run).
#
# Usage: control-plane.sh up [--with-controllers]|down|status|env
#   up      build (if needed) etcd/kube-apiserver/kubectl, start both, write
#           the kubeconfig; idempotent. --with-controllers (or env
#           CP_WITH_CONTROLLERS=1) also runs kube-controller-manager, so
#           namespace deletion, ownerReference garbage collection,
#           Deployment->ReplicaSet->Pod creation work (pods never run: no
#           scheduler, no kubelet)
#   down    stop both and delete the state dir (etcd data, certs)
#   status  exit 0 when the API server answers /readyz
#   env     print `export KUBECONFIG=...`
# Env: CP_APISERVER_PORT (default 16443), CP_ETCD_PORT (default 12379; the
# peer port is CP_ETCD_PORT+1). Different from up.sh's ports, so both can run.
# CP_DIR moves the state dir (so a second control plane can run beside).
# For the scale benchmark: CP_AUDIT_POLICY (a policy file: the API server
# writes $CP_DIR/audit.log), CP_WITH_SCHEDULER=1 (kube-scheduler too),
# CP_CLIENT_QPS (QPS of the controller manager and scheduler; default theirs),
# CP_CONTROLLERS (the controller manager's --controllers), CP_APISERVER_FLAGS
# (more kube-apiserver flags, e.g. --profiling=true for a CPU profile of it).
# Kubeconfig: ~/.cache/mcp-operator/control-plane/kubeconfig
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/versions.sh
source "$HERE/versions.sh"
# shellcheck source=SCRIPTDIR/lib.sh
source "$HERE/lib.sh"

PORT="${CP_APISERVER_PORT:-16443}"
ETCD_PORT="${CP_ETCD_PORT:-12379}"
ETCD_PEER_PORT=$(( ETCD_PORT + 1 ))

ready() {
  curl -fsS --max-time 2 --cacert "$CP_DIR/pki/ca.crt" --cert "$CP_DIR/pki/admin.crt" \
    --key "$CP_DIR/pki/admin.key" "https://127.0.0.1:$PORT/readyz" >/dev/null 2>&1
}

up() {
  local t0; t0=$(date +%s)
  if [ "${1:-}" = --with-controllers ]; then CP_WITH_CONTROLLERS=1; fi
  if [ "${CP_WITH_CONTROLLERS:-0}" = 1 ]; then
    "$HERE/build.sh" --no-apt
  else
    "$HERE/build.sh" --no-apt --only-control-plane
  fi
  command -v openssl >/dev/null || die "openssl missing (apt-get install openssl)"
  command -v curl >/dev/null || die "curl missing (apt-get install curl)"
  mkdir -p "$CP_DIR/pki"
  log "pki: $CP_DIR/pki"
  gen_ca "$CP_DIR/pki" ca mcp-e2e-control-plane-ca
  gen_cert "$CP_DIR/pki" apiserver "/CN=kube-apiserver" server \
    "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:127.0.0.1,IP:10.96.0.1"
  gen_cert "$CP_DIR/pki" admin "/O=system:masters/CN=kubernetes-admin" client
  gen_sa_keys "$CP_DIR/pki"
  start_etcd "$CP_DIR" "$ETCD_PORT" "$ETCD_PEER_PORT"
  local audit=()
  if [ -n "${CP_AUDIT_POLICY:-}" ]; then
    audit=(--audit-policy-file "$CP_AUDIT_POLICY" --audit-log-path "$CP_DIR/audit.log"
      --audit-log-format json --audit-log-maxsize 0)
  fi
  local qps=()
  if [ -n "${CP_CLIENT_QPS:-}" ]; then
    qps=(--kube-api-qps "$CP_CLIENT_QPS" --kube-api-burst "$(( CP_CLIENT_QPS * 2 ))")
  fi
  start_apiserver "$CP_DIR" "$ETCD_PORT" "$PORT" 127.0.0.1 127.0.0.1 \
    --endpoint-reconciler-type none "${audit[@]}" ${CP_APISERVER_FLAGS:-}
  write_kubeconfig "$CP_KUBECONFIG_PATH" "https://127.0.0.1:$PORT" "$CP_DIR/pki" admin kubernetes-admin
  wait_for "default namespace" 60 "$K8S_BIN/kubectl" --kubeconfig "$CP_KUBECONFIG_PATH" get ns default
  if [ "${CP_WITH_CONTROLLERS:-0}" = 1 ]; then
    start_daemon kube-controller-manager "$CP_DIR" "$K8S_BIN/kube-controller-manager" \
      --kubeconfig "$CP_KUBECONFIG_PATH" \
      --authentication-kubeconfig "$CP_KUBECONFIG_PATH" \
      --authorization-kubeconfig "$CP_KUBECONFIG_PATH" \
      --bind-address 127.0.0.1 --secure-port "${CP_CONTROLLER_MANAGER_PORT:-20257}" \
      --leader-elect=false \
      --service-account-private-key-file "$CP_DIR/pki/sa.key" \
      --root-ca-file "$CP_DIR/pki/ca.crt" \
      --service-cluster-ip-range 10.96.0.0/16 --allocate-node-cidrs=false \
      --controllers "${CP_CONTROLLERS:-*,-nodelifecycle,-nodeipam,-cloud-node-lifecycle}" \
      --profiling=false "${qps[@]}" ${CP_CONTROLLER_MANAGER_FLAGS:-}
  fi
  if [ "${CP_WITH_SCHEDULER:-0}" = 1 ]; then
    start_daemon kube-scheduler "$CP_DIR" "$K8S_BIN/kube-scheduler" \
      --kubeconfig "$CP_KUBECONFIG_PATH" \
      --authentication-kubeconfig "$CP_KUBECONFIG_PATH" \
      --authorization-kubeconfig "$CP_KUBECONFIG_PATH" \
      --bind-address 127.0.0.1 --secure-port "${CP_SCHEDULER_PORT:-20259}" \
      --leader-elect=false --profiling=false "${qps[@]}"
  fi
  log "control plane ready in $(( $(date +%s) - t0 ))s"
  echo "export KUBECONFIG=$CP_KUBECONFIG_PATH"
  echo "export PATH=$K8S_BIN:\$PATH"
}

down() {
  stop_daemon kube-scheduler "$CP_DIR"
  stop_daemon kube-controller-manager "$CP_DIR"
  stop_daemon kube-apiserver "$CP_DIR"
  stop_daemon etcd "$CP_DIR"
  rm -rf "$CP_DIR"
  log "control plane down; removed $CP_DIR"
}

case "${1:-}" in
  up) up "${2:-}" ;;
  down) down ;;
  status) ready ;;
  env) echo "export KUBECONFIG=$CP_KUBECONFIG_PATH" ;;
  *) sed -n '2,20p' "$0"; exit 2 ;;
esac
