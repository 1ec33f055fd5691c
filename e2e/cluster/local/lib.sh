# shellcheck shell=bash
# Helpers shared by up.sh, down.sh and control-plane.sh. Sourced, not run.
# Needs versions.sh sourced first.

# ---------------------------------------------------------------- processes
# start_daemon NAME RUNDIR CMD...: start CMD in the background (own session),
# stdout+stderr to RUNDIR/logs/NAME.log, pid in RUNDIR/run/NAME.pid.
# No-op when the pidfile names a live process. With NETNS set, CMD runs in
# that network namespace (/run/netns/NETNS), everything else shared.
start_daemon() {
  local name="$1" dir="$2"; shift 2
  mkdir -p "$dir/logs" "$dir/run"
  if daemon_alive "$name" "$dir"; then
    log "$name: already running (pid $(cat "$dir/run/$name.pid"))"
    return 0
  fi
  log "$name: starting (log: $dir/logs/$name.log)"
  # fd 9 is up.sh's lock: daemons must not inherit it.
  local enter=()
  [ -n "${NETNS:-}" ] && enter=(nsenter "--net=/run/netns/$NETNS")
  setsid "${enter[@]}" "$@" >>"$dir/logs/$name.log" 2>&1 < /dev/null 9>&- &
  echo $! > "$dir/run/$name.pid"
  # What the process must look like, so a pid reused after a reboot or a
  # killed session is never taken for (or signalled as) ours.
  printf '%s' "$1" > "$dir/run/$name.cmd"
}

# daemon_alive NAME RUNDIR: the recorded pid is alive and still runs the
# recorded command.
daemon_alive() {
  local pidf="$2/run/$1.pid" cmdf="$2/run/$1.cmd" pid cmdline
  [ -f "$pidf" ] || return 1
  pid="$(cat "$pidf")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  [ -f "$cmdf" ] || return 0
  cmdline="$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null || true)"
  [[ "$cmdline" == *"$(cat "$cmdf")"* ]]
}

# stop_daemon NAME RUNDIR: TERM, wait up to 15s, then KILL. Only the pid we
# recorded (and its process group, which setsid made ours).
stop_daemon() {
  local name="$1" dir="$2" pid i
  local pidf="$dir/run/$name.pid"
  [ -f "$pidf" ] || return 0
  pid="$(cat "$pidf")"
  if daemon_alive "$name" "$dir"; then
    log "$name: stopping pid $pid"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 30); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name: still alive after ${i}x0.5s, SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidf" "$dir/run/$name.cmd"
}

# wait_for DESC TIMEOUT_S CMD...: poll CMD every 0.5s.
wait_for() {
  local desc="$1" timeout="$2"; shift 2
  local deadline=$(( $(date +%s) + timeout ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "timed out after ${timeout}s waiting for $desc"
      return 1
    fi
    sleep 0.5
  done
}

# write_file PATH: stdin to PATH, but only when the content differs, so a
# re-run of up.sh does not touch files daemons watch (kube-proxy exits when
# its config file changes).
write_file() {
  local f="$1" tmp="$1.tmp.$$"
  cat > "$tmp"
  if [ -f "$f" ] && cmp -s "$tmp" "$f"; then
    rm -f "$tmp"
  else
    mv -f "$tmp" "$f"
  fi
}

# ---------------------------------------------------------------------- PKI
# gen_ca DIR NAME CN
gen_ca() {
  local d="$1" n="$2" cn="$3"
  [ -s "$d/$n.crt" ] && [ -s "$d/$n.key" ] && return 0
  openssl genrsa -out "$d/$n.key" 2048 2>/dev/null
  openssl req -x509 -new -nodes -key "$d/$n.key" -days 3650 -subj "/CN=$cn" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign" \
    -out "$d/$n.crt" 2>/dev/null
}

# gen_cert DIR NAME SUBJ KIND [SAN] : KIND is client|server|both, signed by DIR/ca
gen_cert() {
  local d="$1" n="$2" subj="$3" kind="$4" san="${5:-}"
  [ -s "$d/$n.crt" ] && [ -s "$d/$n.key" ] && return 0
  local eku ext="$d/$n.ext"
  case "$kind" in
    client) eku=clientAuth ;;
    server) eku=serverAuth ;;
    both) eku=serverAuth,clientAuth ;;
  esac
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [ -n "$san" ] && echo "subjectAltName=$san"
  } > "$ext"
  openssl genrsa -out "$d/$n.key" 2048 2>/dev/null
  openssl req -new -key "$d/$n.key" -subj "$subj" -out "$d/$n.csr" 2>/dev/null
  openssl x509 -req -in "$d/$n.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
    -CAcreateserial -days 3650 -extfile "$ext" -out "$d/$n.crt" 2>/dev/null
  rm -f "$d/$n.csr" "$ext"
}

gen_sa_keys() {
  local d="$1"
  [ -s "$d/sa.key" ] && [ -s "$d/sa.pub" ] && return 0
  openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
}

# write_kubeconfig FILE SERVER PKIDIR CERTNAME USER
write_kubeconfig() {
  local f="$1" server="$2" pki="$3" cert="$4" user="$5"
  write_file "$f" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: mcp-e2e
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 < "$pki/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 < "$pki/$cert.crt")
    client-key-data: $(base64 -w0 < "$pki/$cert.key")
contexts:
- name: mcp-e2e
  context: {cluster: mcp-e2e, user: $user}
current-context: mcp-e2e
EOF
  chmod 600 "$f"
}

# --------------------------------------------------------- etcd + apiserver
# start_etcd RUNDIR CLIENT_PORT PEER_PORT
start_etcd() {
  local dir="$1" cport="$2" pport="$3"
  mkdir -p "$dir/etcd"
  chmod 700 "$dir/etcd"
  start_daemon etcd "$dir" "$K8S_BIN/etcd" \
    --name mcp-e2e --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$cport" \
    --advertise-client-urls "http://127.0.0.1:$cport" \
    --listen-peer-urls "http://127.0.0.1:$pport" \
    --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
    --initial-cluster "mcp-e2e=http://127.0.0.1:$pport" \
    --quota-backend-bytes 4294967296 \
    --snapshot-count 10000 \
    --unsafe-no-fsync
  wait_for "etcd on :$cport" 60 curl -fsS "http://127.0.0.1:$cport/health"
}

# start_apiserver RUNDIR ETCD_PORT SECURE_PORT BIND_ADDR ADVERTISE_ADDR [extra flags]
start_apiserver() {
  local dir="$1" eport="$2" port="$3" bind="$4" adv="$5"; shift 5
  local pki="$dir/pki"
  start_daemon kube-apiserver "$dir" "$K8S_BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$eport" \
    --bind-address "$bind" --secure-port "$port" --advertise-address "$adv" \
    --client-ca-file "$pki/ca.crt" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" \
    --service-account-signing-key-file "$pki/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --authorization-mode Node,RBAC \
    --enable-admission-plugins NodeRestriction \
    --allow-privileged=true \
    --profiling=false \
    --cert-dir "$pki" \
    "$@"
  wait_for "kube-apiserver /readyz on :$port" 120 \
    curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
    "https://127.0.0.1:$port/readyz"
}

# ------------------------------------------------------- node configuration
# The files each node's daemons read (node 1 on the host, nodes 2..N in their
# network namespaces, see nodes.sh). Pod CIDR 10.244.0.0/16, one /24 per node,
# Services 10.96.0.0/16, cluster DNS 10.96.0.10.

# write_cni_config FILE SUBNET GATEWAY IPAM_DIR: the pod bridge mcp-cni0.
write_cni_config() {
  local f="$1" subnet="$2" gw="$3" ipam="$4"
  write_file "$f" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "mcp-e2e",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "mcp-cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$ipam",
        "ranges": [[{"subnet": "$subnet", "gateway": "$gw"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

# write_containerd_config FILE DIR SOCKET: root, state, runc root and CNI
# config under DIR; registry hosts under DIR/etc/certs.d.
write_containerd_config() {
  local f="$1" dir="$2" sock="$3" CNI_BIN=/usr/lib/cni
  [ -x "$CNI_BIN/bridge" ] || CNI_BIN=/opt/cni/bin
  write_file "$f" <<EOF
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
# Lowering an oom_score_adj needs CAP_SYS_RESOURCE, which this VM's root
# lacks: keep containerd at 0 and clamp the kubelet's negative values (-998
# for sandboxes, -997 for Guaranteed pods) to it, or runc init fails with
# "failed to update /proc/self/oom_score_adj: Permission denied".
oom_score = 0

[grpc]
  address = "$sock"

[ttrpc]
  address = "$sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$dir/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$dir/etc/certs.d"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$dir/cni/net.d"
    max_conf_num = 1
EOF
}

# write_registry_hosts DIR SERVER: containerd pulls $LOCAL_REGISTRY/... over
# plain HTTP from SERVER (host:port).
write_registry_hosts() {
  local dir="$1" server="$2"
  mkdir -p "$dir/etc/certs.d/$LOCAL_REGISTRY"
  write_file "$dir/etc/certs.d/$LOCAL_REGISTRY/hosts.toml" <<EOF
server = "http://$LOCAL_REGISTRY"

[host."http://$server"]
  capabilities = ["pull", "resolve"]
EOF
}

# write_kubelet_config FILE SOCKET PKI SERVING_CERT NODE_IP POD_SUBNET
#   RESOLV_CONF CGROUP_ROOT POD_LOGS_DIR (the last two empty on node 1, the
#   defaults; every other node has its own, or the kubelets would clean up
#   each other's pod cgroups and logs).
write_kubelet_config() {
  local f="$1" sock="$2" pki="$3" serving="$4" ip="$5" subnet="$6" resolv="$7"
  local cgroup_root="$8" logs_dir="$9"
  write_file "$f" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$sock
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: "$pki/ca.crt"}
authorization: {mode: AlwaysAllow}
tlsCertFile: "$pki/$serving.crt"
tlsPrivateKeyFile: "$pki/$serving.key"
address: $ip
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
clusterDomain: cluster.local
clusterDNS: [10.96.0.10]
resolvConf: "$resolv"
podCIDR: $subnet
failSwapOn: false
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  nodefs.inodesFree: "1%"
  imagefs.available: "1%"
evictionPressureTransitionPeriod: 10s
maxPods: 110
rotateCertificates: false
serverTLSBootstrap: false
protectKernelDefaults: false
makeIPTablesUtilChains: true
localStorageCapacityIsolation: true
containerLogMaxSize: 10Mi
shutdownGracePeriod: 0s${cgroup_root:+
cgroupRoot: $cgroup_root}${logs_dir:+
podLogsDir: $logs_dir}
EOF
}

# write_kube_proxy_config FILE KUBECONFIG NODE_NAME NODE_IP
write_kube_proxy_config() {
  local f="$1" kubeconfig="$2" name="$3" ip="$4"
  write_file "$f" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: "$kubeconfig"
mode: iptables
clusterCIDR: 10.244.0.0/16
hostnameOverride: $name
bindAddress: $ip
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["$ip/32"]
conntrack:
  maxPerCore: 0             # 0 = leave the host's conntrack sysctls alone
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
}
