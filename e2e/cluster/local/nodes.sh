# shellcheck shell=bash
# Extra nodes of the local cluster (NODES=N, node 2..N), sourced by up.sh and
# down.sh. What a kind node container holds, without a container: each node is
# a network namespace with a veth to the host, its own containerd (root, state,
# socket), kubelet (root dir, pod log dir, cgroup root) and kube-proxy (its own
# iptables, being in its own namespace). The host keeps node 1 (the control
# plane, CoreDNS, the PVs and so Postgres).
#
#   host                                     node k (netns mcp-e2e-nk)
#   mcp-nodes0 10.243.0.1/24 --veth mcpnk--  eth0 10.243.0.(10+k)
#   route 10.244.(k-1).0/24 via the node     mcp-cni0 10.244.(k-1).1/24, pods
#   mcp-cni0 10.244.0.1/24, node 1's pods    default route via 10.243.0.1
#
# Pods on different nodes reach each other through the host's routes; every
# node reaches the API server and CoreDNS at 10.244.0.1 (node 1's address).
# Cutting node k's network is `ip link set mcpnk down` on the host.
# Needs lib.sh and versions.sh sourced first.

NODE_LINK_BRIDGE=mcp-nodes0
NODE_LINK_GW=10.243.0.1
# shellcheck disable=SC2034 # down.sh
NODE_LINK_CIDR=10.243.0.0/24

# node_vars K: the names and addresses of node K (>= 2).
node_vars() {
  local k="$1"
  NK_NAME="mcp-e2e-node-$k"
  NK_NS="mcp-e2e-n$k"
  NK_VETH="mcpn$k"
  NK_IP="10.243.0.$((10 + k))"
  NK_SUBNET="10.244.$((k - 1)).0/24"
  NK_GW="10.244.$((k - 1)).1"
  NK_DIR="$CLUSTER_DIR/nodes/$k"
  NK_SOCK="$NK_DIR/run/containerd.sock"
  NK_CGROUP="/$NK_NAME"
}

# in_node K CMD...: run CMD in node K's network namespace (host mounts: the
# kubelet's volume mounts must be seen by that node's containerd).
in_node() {
  local k="$1"; shift
  node_vars "$k"
  nsenter --net="/run/netns/$NK_NS" "$@"
}

# node_network K: namespace, veth, addresses, routes, sysctls (idempotent).
node_network() {
  node_vars "$1"
  if ! ip link show "$NODE_LINK_BRIDGE" >/dev/null 2>&1; then
    ip link add "$NODE_LINK_BRIDGE" type bridge
  fi
  case "$(ip -4 -o addr show dev "$NODE_LINK_BRIDGE")" in
    *"inet $NODE_LINK_GW/24"*) ;;
    *) ip addr add "$NODE_LINK_GW/24" dev "$NODE_LINK_BRIDGE" ;;
  esac
  ip link set "$NODE_LINK_BRIDGE" up
  [ -e "/run/netns/$NK_NS" ] || ip netns add "$NK_NS"
  if ! ip link show "$NK_VETH" >/dev/null 2>&1; then
    ip link add "$NK_VETH" type veth peer name eth0 netns "$NK_NS"
  fi
  ip link set "$NK_VETH" master "$NODE_LINK_BRIDGE"
  ip link set "$NK_VETH" up
  local ns=(ip -n "$NK_NS")
  "${ns[@]}" link set lo up
  case "$("${ns[@]}" -4 -o addr show dev eth0)" in
    *"inet $NK_IP/24"*) ;;
    *) "${ns[@]}" addr add "$NK_IP/24" dev eth0 ;;
  esac
  "${ns[@]}" link set eth0 up
  "${ns[@]}" route replace default via "$NODE_LINK_GW"
  ip route replace "$NK_SUBNET" via "$NK_IP" dev "$NODE_LINK_BRIDGE"
  # Forwarding and netfilter on the pod bridge are per namespace.
  ip netns exec "$NK_NS" sysctl -qw net.ipv4.ip_forward=1
  modprobe br_netfilter 2>/dev/null || true
  if ip netns exec "$NK_NS" test -e /proc/sys/net/bridge/bridge-nf-call-iptables; then
    ip netns exec "$NK_NS" sysctl -qw net.bridge.bridge-nf-call-iptables=1
  fi
  # The pod bridge exists before the kubelet starts, as on node 1.
  if ! "${ns[@]}" link show mcp-cni0 >/dev/null 2>&1; then
    "${ns[@]}" link add mcp-cni0 type bridge
  fi
  case "$("${ns[@]}" -4 -o addr show dev mcp-cni0)" in
    *"inet $NK_GW/24"*) ;;
    *) "${ns[@]}" addr add "$NK_GW/24" dev mcp-cni0 ;;
  esac
  "${ns[@]}" link set mcp-cni0 up
}

# node_up K PKI: start node K (idempotent) and register it. Needs the control
# plane up and the CA in PKI.
node_up() {
  local k="$1" pki="$2"
  node_vars "$k"
  local d="$NK_DIR" server="https://10.244.0.1:6443"
  mkdir -p "$d"/{run,logs,etc,cni/net.d,cni/ipam,containerd,kubelet,pod-logs}
  node_network "$k"
  node_vars "$k"

  gen_cert "$pki" "node$k-kubelet" "/O=system:nodes/CN=system:node:$NK_NAME" client
  gen_cert "$pki" "node$k-kubelet-serving" "/CN=$NK_NAME" server "DNS:$NK_NAME,DNS:localhost,IP:$NK_IP,IP:127.0.0.1"
  write_kubeconfig "$d/etc/kubelet.kubeconfig" "$server" "$pki" "node$k-kubelet" "system:node:$NK_NAME"
  write_kubeconfig "$d/etc/kube-proxy.kubeconfig" "$server" "$pki" kube-proxy system:kube-proxy

  write_cni_config "$d/cni/net.d/10-mcp-e2e.conflist" "$NK_SUBNET" "$NK_GW" "$d/cni/ipam"
  write_containerd_config "$d/etc/containerd.toml" "$d" "$NK_SOCK"
  NETNS="$NK_NS" start_daemon containerd "$d" containerd --config "$d/etc/containerd.toml"
  wait_for "node $k containerd socket" 60 ctr --address "$NK_SOCK" version

  # The kubelet makes its pods' cgroups under this root, in every hierarchy.
  local ctrl
  for ctrl in /sys/fs/cgroup/*/; do
    [ -e "${ctrl}cgroup.procs" ] && mkdir -p "${ctrl%/}$NK_CGROUP"
  done
  echo "nameserver 10.244.0.1" | write_file "$d/etc/resolv.conf"
  write_kubelet_config "$d/etc/kubelet.yaml" "$NK_SOCK" "$pki" "node$k-kubelet-serving" "$NK_IP" "$NK_SUBNET" \
    "$d/etc/resolv.conf" "$NK_CGROUP" "$d/pod-logs"
  NETNS="$NK_NS" start_daemon kubelet "$d" "$K8S_BIN/kubelet" \
    --config "$d/etc/kubelet.yaml" \
    --kubeconfig "$d/etc/kubelet.kubeconfig" \
    --root-dir "$d/kubelet" \
    --hostname-override "$NK_NAME" \
    --node-ip "$NK_IP" \
    --v 1

  write_kube_proxy_config "$d/etc/kube-proxy.yaml" "$d/etc/kube-proxy.kubeconfig" "$NK_NAME" "$NK_IP"
  NETNS="$NK_NS" start_daemon kube-proxy "$d" "$K8S_BIN/kube-proxy" --config "$d/etc/kube-proxy.yaml"
}

# node_down K: stop node K's daemons and containers, unmount, remove its
# cgroups and namespace (with it the veth, the pod bridge and its iptables).
node_down() {
  node_vars "$1"
  local d="$NK_DIR" t pid ctrl
  [ -d "$d" ] || return 0
  stop_daemon kube-proxy "$d"
  stop_daemon kubelet "$d"
  if daemon_alive containerd "$d" && [ -S "$NK_SOCK" ]; then
    if command -v crictl >/dev/null 2>&1; then
      crictl -r "unix://$NK_SOCK" rmp -af >/dev/null 2>&1 || true
    fi
    for t in $(ctr --address "$NK_SOCK" -n k8s.io tasks ls -q 2>/dev/null || true); do
      ctr --address "$NK_SOCK" -n k8s.io tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
    done
  fi
  stop_daemon containerd "$d"
  for pid in $(pgrep -f "containerd-shim.*-address $NK_SOCK" 2>/dev/null || true); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  for ctrl in /sys/fs/cgroup/*/; do
    [ -d "${ctrl%/}$NK_CGROUP" ] || continue
    while IFS= read -r -d '' procs; do
      while read -r pid; do
        if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
      done < "$procs"
    done < <(find "${ctrl%/}$NK_CGROUP" -name cgroup.procs -print0 2>/dev/null)
  done
  sleep 0.5
  local m
  while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done < <(awk -v d="$d/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r)
  for ctrl in /sys/fs/cgroup/*/; do
    [ -d "${ctrl%/}$NK_CGROUP" ] || continue
    find "${ctrl%/}$NK_CGROUP" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  ip route del "$NK_SUBNET" 2>/dev/null || true
  ip link del "$NK_VETH" 2>/dev/null || true
  if [ -e "/run/netns/$NK_NS" ]; then
    ip netns del "$NK_NS" && log "node $1: removed network namespace $NK_NS"
  fi
  rm -rf "${d:?}/cni/ipam"
}

# The extra nodes that exist under CLUSTER_DIR (by directory).
existing_nodes() {
  local n
  for n in "$CLUSTER_DIR"/nodes/*/; do
    n="${n%/}"; n="${n##*/}"
    [[ "$n" =~ ^[0-9]+$ ]] && echo "$n"
  done
  return 0
}
