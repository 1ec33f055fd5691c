#!/usr/bin/env bash
# Brings up a real single-node Kubernetes cluster from upstream binaries on
# this machine (no kind, no docker): etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, containerd+runc, kubelet,
# kube-proxy (iptables), CNI bridge, CoreDNS (host process behind the
# kube-dns Service), a default StorageClass "standard" backed by pre-made
# hostPath PersistentVolumes, and the local images (pause, postgres, and the
# operator/workload images when their binaries exist).
#
# Idempotent: running it again checks each piece and starts only what is
# missing. Needs root.
#
# Usage: up.sh [--control-plane-only] [--no-images]
#   --control-plane-only  same as `control-plane.sh up` (etcd + apiserver)
#   --no-images           do not build/import images (pause is always needed)
# Env: CLUSTER_DIR (default ~/.cache/mcp-operator/cluster), PV_COUNT (12),
#   NODES (default: as many as the cluster has, else 1): node 1 is this host,
#   nodes 2..N each run in a network namespace of their own (nodes.sh).
# Prints `export KUBECONFIG=...` and `export PATH=<bin dir>:$PATH` on stdout
# at the end (eval-able); progress goes to stderr.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
# shellcheck source=SCRIPTDIR/versions.sh
source "$HERE/versions.sh"
# shellcheck source=SCRIPTDIR/lib.sh
source "$HERE/lib.sh"
# shellcheck source=SCRIPTDIR/nodes.sh
source "$HERE/nodes.sh"

IMAGES=1
for arg in "$@"; do
  case "$arg" in
    --control-plane-only) exec "$HERE/control-plane.sh" up ;;
    --no-images) IMAGES=0 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) die "unknown argument: $arg" ;;
  esac
done

[ "$(id -u)" -eq 0 ] || die "up.sh needs root (containerd, kubelet, iptables)"

D="$CLUSTER_DIR"
PKI="$D/pki"
NODE=mcp-e2e-node
NODE_IP=10.244.0.1          # gateway address of our CNI bridge, owned by us
BRIDGE=mcp-cni0
POD_SUBNET=10.244.0.0/24
CLUSTER_CIDR=10.244.0.0/16
DNS_IP=10.96.0.10
APISERVER_PORT=6443
ETCD_PORT=2379
PV_COUNT="${PV_COUNT:-12}"
NODES="${NODES:-$(cat "$CLUSTER_DIR/run/nodes" 2>/dev/null || echo 1)}"
[[ "$NODES" =~ ^[1-9]$ ]] || die "NODES must be 1-9, not '$NODES'"
SOCK="$D/run/containerd.sock"
kc() { "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_PATH" "$@"; }
T0=$(date +%s)

step() { log "==> $* (+$(( $(date +%s) - T0 ))s)"; }

step "build/check binaries"
"$HERE/build.sh"

mkdir -p "$D"/{pki,run,logs,etc,cni/net.d,cni/ipam,containerd,kubelet,pv}
echo "$NODES" > "$D/run/nodes"
# One up.sh at a time.
exec 9>"$D/run/up.lock"
flock -w 600 9 || die "another up.sh holds $D/run/up.lock"

# -------------------------------------------------------------- host setup
step "host networking"
# Record what we change so down.sh can put it back.
[ -f "$D/run/ip_forward.orig" ] || cat /proc/sys/net/ipv4/ip_forward > "$D/run/ip_forward.orig"
echo 1 > /proc/sys/net/ipv4/ip_forward
if [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
  [ -f "$D/run/bridge-nf.orig" ] || cat /proc/sys/net/bridge/bridge-nf-call-iptables > "$D/run/bridge-nf.orig"
  echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables
else
  log "WARNING: /proc/sys/net/bridge missing (br_netfilter); same-node service hairpin may fail"
fi
# The CNI bridge is created up front so the node IP (its gateway address)
# exists before the API server and kubelet start; the bridge plugin adopts it.
if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
  ip link add "$BRIDGE" type bridge
fi
case "$(ip -4 -o addr show dev "$BRIDGE")" in
  *"inet $NODE_IP/24"*) ;;
  *) ip addr add "$NODE_IP/24" dev "$BRIDGE" ;;
esac
ip link set "$BRIDGE" up

# --------------------------------------------------------------------- PKI
step "pki ($PKI)"
gen_ca "$PKI" ca mcp-e2e-ca
gen_cert "$PKI" apiserver "/CN=kube-apiserver" server \
  "DNS:localhost,DNS:$NODE,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:$NODE_IP,IP:10.96.0.1"
gen_cert "$PKI" admin "/O=system:masters/CN=kubernetes-admin" client
gen_cert "$PKI" apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" client
gen_cert "$PKI" controller-manager "/CN=system:kube-controller-manager" client
gen_cert "$PKI" scheduler "/CN=system:kube-scheduler" client
gen_cert "$PKI" kube-proxy "/CN=system:kube-proxy" client
gen_cert "$PKI" kubelet "/O=system:nodes/CN=system:node:$NODE" client
gen_cert "$PKI" kubelet-serving "/CN=$NODE" server "DNS:$NODE,DNS:localhost,IP:$NODE_IP,IP:127.0.0.1"
gen_sa_keys "$PKI"
SERVER="https://127.0.0.1:$APISERVER_PORT"
write_kubeconfig "$KUBECONFIG_PATH" "$SERVER" "$PKI" admin kubernetes-admin
write_kubeconfig "$D/etc/controller-manager.kubeconfig" "$SERVER" "$PKI" controller-manager system:kube-controller-manager
write_kubeconfig "$D/etc/scheduler.kubeconfig" "$SERVER" "$PKI" scheduler system:kube-scheduler
write_kubeconfig "$D/etc/kube-proxy.kubeconfig" "$SERVER" "$PKI" kube-proxy system:kube-proxy
write_kubeconfig "$D/etc/kubelet.kubeconfig" "$SERVER" "$PKI" kubelet "system:node:$NODE"

# ---------------------------------------------------------- control plane
step "etcd"
start_etcd "$D" "$ETCD_PORT" $(( ETCD_PORT + 1 ))
step "kube-apiserver"
# Audit every write except the control plane's own and the nodes' (their status
# traffic dwarfs the rest), with its user agent: the HA scenarios count the
# operator replicas' writes from it (logs/audit.log, one JSON event per line).
write_file "$D/etc/audit-policy.yaml" <<EOF
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  users: [system:kube-controller-manager, system:kube-scheduler, system:kube-proxy, system:apiserver]
- level: None
  userGroups: [system:nodes, "system:serviceaccounts:kube-system"]
- level: Metadata
  verbs: [create, update, patch, delete, deletecollection]
- level: None
EOF
start_apiserver "$D" "$ETCD_PORT" "$APISERVER_PORT" 0.0.0.0 "$NODE_IP" \
  --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
  --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
  --kubelet-preferred-address-types InternalIP,Hostname \
  --audit-policy-file "$D/etc/audit-policy.yaml" \
  --audit-log-path "$D/logs/audit.log" \
  --audit-log-format json --audit-log-maxsize 200 --audit-log-maxbackup 2

step "kube-controller-manager"
start_daemon kube-controller-manager "$D" "$K8S_BIN/kube-controller-manager" \
  --kubeconfig "$D/etc/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$D/etc/controller-manager.kubeconfig" \
  --authorization-kubeconfig "$D/etc/controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port 10257 \
  --leader-elect=false \
  --use-service-account-credentials=true \
  --service-account-private-key-file "$PKI/sa.key" \
  --root-ca-file "$PKI/ca.crt" \
  --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
  --service-cluster-ip-range 10.96.0.0/16 \
  --cluster-cidr "$CLUSTER_CIDR" --allocate-node-cidrs=false \
  --cluster-name mcp-e2e \
  --profiling=false

step "kube-scheduler"
start_daemon kube-scheduler "$D" "$K8S_BIN/kube-scheduler" \
  --kubeconfig "$D/etc/scheduler.kubeconfig" \
  --authentication-kubeconfig "$D/etc/scheduler.kubeconfig" \
  --authorization-kubeconfig "$D/etc/scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port 10259 \
  --leader-elect=false --profiling=false

# ------------------------------------------------------------- containerd
step "containerd"
write_cni_config "$D/cni/net.d/10-mcp-e2e.conflist" "$POD_SUBNET" "$NODE_IP" "$D/cni/ipam"
# A registry on this machine (hack/registry.sh) speaks plain HTTP.
write_registry_hosts "$D" "$LOCAL_REGISTRY"
write_containerd_config "$D/etc/containerd.toml" "$D" "$SOCK"
start_daemon containerd "$D" containerd --config "$D/etc/containerd.toml"
wait_for "containerd socket" 60 ctr --address "$SOCK" version

# ------------------------------------------------------------------ images
step "images"
import_images() {
  if [ "$IMAGES" -eq 1 ]; then
    CONTAINERD_ADDRESS="$1" "$REPO/e2e/images/build.sh" --import all
  else
    CONTAINERD_ADDRESS="$1" "$REPO/e2e/images/build.sh" --import pause
  fi
}
import_images "$SOCK"

# ----------------------------------------------------------------- kubelet
step "kubelet"
# The Node authorizer learns that a pod is bound to this node from its own
# informer; on two busy cores the kubelet can see a new pod first, and its GET of
# the pod's PVC is refused ("no relationship found between node ... and this
# object"). The kubelet then skips the pod for ~15 s (a CI run saw Postgres
# ready 13.6 and 16.3 s after a kill instead of 1-2 s). With one node every pod is
# this node's, so the Node authorizer would grant exactly these reads once its
# graph caught up; RBAC grants them for the gap. Every node gets the same grant:
# with several nodes this lets a node read pods and claims of the others, a
# weakening this test cluster accepts.
kc apply -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "mcp-e2e:node-authorizer-lag"}
rules:
- apiGroups: [""]
  resources: [pods, persistentvolumeclaims, persistentvolumes]
  verbs: [get]
- apiGroups: [""]
  resources: [secrets, configmaps]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "mcp-e2e:node-authorizer-lag"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "mcp-e2e:node-authorizer-lag"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:node:$NODE"}
$(for k in $(seq 2 "$NODES"); do node_vars "$k"; echo "- {apiGroup: rbac.authorization.k8s.io, kind: User, name: \"system:node:$NK_NAME\"}"; done)
EOF
write_kubelet_config "$D/etc/kubelet.yaml" "$SOCK" "$PKI" kubelet-serving "$NODE_IP" "$POD_SUBNET" \
  "$D/etc/resolv.conf" "" ""
# Pods with dnsPolicy Default get this (no upstream DNS exists here).
echo "nameserver $NODE_IP" | write_file "$D/etc/resolv.conf"
start_daemon kubelet "$D" "$K8S_BIN/kubelet" \
  --config "$D/etc/kubelet.yaml" \
  --kubeconfig "$D/etc/kubelet.kubeconfig" \
  --root-dir "$D/kubelet" \
  --hostname-override "$NODE" \
  --node-ip "$NODE_IP" \
  --v 1

# -------------------------------------------------------------- kube-proxy
step "kube-proxy"
write_kube_proxy_config "$D/etc/kube-proxy.yaml" "$D/etc/kube-proxy.kubeconfig" "$NODE" "$NODE_IP"
start_daemon kube-proxy "$D" "$K8S_BIN/kube-proxy" --config "$D/etc/kube-proxy.yaml"

# ------------------------------------------------------------ nodes 2..N
if [ "$NODES" -gt 1 ]; then
  step "nodes 2..$NODES (network namespaces)"
  # Their containerds pull $LOCAL_REGISTRY through the host's end of their link.
  reg_port="${LOCAL_REGISTRY##*:}"
  for k in $(seq 2 "$NODES"); do
    node_up "$k" "$PKI"
    write_registry_hosts "$NK_DIR" "$NODE_LINK_GW:$reg_port"
    import_images "$NK_SOCK"
  done
  sysctl -qw "net.ipv4.conf.$NODE_LINK_BRIDGE.route_localnet=1"
  reg_rule=(PREROUTING -i "$NODE_LINK_BRIDGE" -d "$NODE_LINK_GW" -p tcp --dport "$reg_port"
    -m comment --comment mcp-e2e-registry -j DNAT --to-destination "$LOCAL_REGISTRY")
  iptables -w -t nat -C "${reg_rule[@]}" 2>/dev/null || iptables -w -t nat -A "${reg_rule[@]}"
fi
for k in $(existing_nodes); do
  [ "$k" -gt "$NODES" ] && log "node $k exists but NODES=$NODES: left as it is (down.sh removes it)"
done

# ----------------------------------------------------------------- CoreDNS
step "coredns"
write_file "$D/etc/Corefile" <<EOF
.:53 {
    bind $NODE_IP
    errors
    ready 127.0.0.1:19181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $KUBECONFIG_PATH mcp-e2e
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }
    cache 5
}
EOF
start_daemon coredns "$D" "$K8S_BIN/coredns" -conf "$D/etc/Corefile"
kc apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns, kubernetes.io/name: CoreDNS}
spec:
  clusterIP: $DNS_IP
  ports:
  - {name: dns, port: 53, protocol: UDP, targetPort: 53}
  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-host
  namespace: kube-system
  labels:
    kubernetes.io/service-name: kube-dns
    endpointslice.kubernetes.io/managed-by: mcp-e2e-up.sh
addressType: IPv4
ports:
- {name: dns, port: 53, protocol: UDP}
- {name: dns-tcp, port: 53, protocol: TCP}
endpoints:
- addresses: ["$NODE_IP"]
  conditions: {ready: true}
EOF

# ------------------------------------------------------------------ storage
step "storage (StorageClass standard, $PV_COUNT hostPath PVs under $D/pv)"
kc apply -f - >/dev/null <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
EOF
# A released PV (its claim was deleted) is wiped and made available again
# (here at start, and while up by the pv-recycler daemon).
for pv in $(kc get pv -o jsonpath='{range .items[?(@.status.phase=="Released")]}{.metadata.name}{"\n"}{end}' 2>/dev/null | grep '^mcp-e2e-pv-' || true); do
  log "recycling released $pv"
  kc delete pv "$pv" --wait=true >/dev/null
  rm -rf "${D:?}/pv/$pv"
done
for i in $(seq -w 1 "$PV_COUNT"); do
  name="mcp-e2e-pv-$i"
  mkdir -p "$D/pv/$name"
  chmod 0777 "$D/pv/$name"
  cat <<EOF
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: $name
  labels: {mcp-e2e/local-pv: "true"}
spec:
  capacity: {storage: 10Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: standard
  hostPath: {path: "$D/pv/$name", type: Directory}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: [$NODE]}
EOF
done | kc apply -f - >/dev/null

start_daemon pv-recycler "$D" "$HERE/pv-recycler.sh" "$KUBECONFIG_PATH" "$D/pv"

# ------------------------------------------------------------------- ready
step "waiting for the nodes to be Ready"
node_ready() {
  [ "$(kc get node "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}
wait_for "node $NODE Ready" 180 node_ready "$NODE"
for k in $(seq 2 "$NODES"); do
  node_vars "$k"
  wait_for "node $NK_NAME Ready" 180 node_ready "$NK_NAME"
  for d in containerd kubelet kube-proxy; do
    daemon_alive "$d" "$NK_DIR" || { tail -5 "$NK_DIR/logs/$d.log" >&2; die "node $k: $d is not running (log: $NK_DIR/logs/$d.log)"; }
  done
done
wait_for "coredns ready" 60 curl -fsS http://127.0.0.1:19181/ready
wait_for "default service account" 60 kc get serviceaccount default -n default

for d in etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy coredns pv-recycler; do
  daemon_alive "$d" "$D" || { tail -5 "$D/logs/$d.log" >&2; die "$d is not running (log: $D/logs/$d.log)"; }
done
step "cluster up in $(( $(date +%s) - T0 ))s; kubeconfig: $KUBECONFIG_PATH"
# stdout: eval-able (eval "$(e2e/cluster/local/up.sh)")
echo "export KUBECONFIG=$KUBECONFIG_PATH"
echo "export PATH=$K8S_BIN:\$PATH"
