#!/usr/bin/env bash
# Tears down what up.sh created: the extra nodes (their daemons, containers,
# mounts, cgroups and network namespaces, the link bridge and the registry
# forward), every daemon it started on the host (by pidfile), the
# containers and their shims, mounts under the cluster dir (overlay rootfs,
# shm, secret tmpfs, network namespaces), the CNI bridge and veths, the
# kubelet's cgroups, and the KUBE-*/CNI-* iptables chains; restores the
# sysctls it changed.
#
# Usage: down.sh [--purge]
#   --purge  also delete the cluster state dir (etcd data, PV data, certs,
#            containerd image store). Without it, the next up.sh is warm:
#            images and data stay.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/versions.sh
source "$HERE/versions.sh"
# shellcheck source=SCRIPTDIR/lib.sh
source "$HERE/lib.sh"
# shellcheck source=SCRIPTDIR/nodes.sh
source "$HERE/nodes.sh"

PURGE=0
for arg in "$@"; do
  case "$arg" in
    --purge) PURGE=1 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) die "unknown argument: $arg" ;;
  esac
done
[ "$(id -u)" -eq 0 ] || die "down.sh needs root"

D="$CLUSTER_DIR"
BRIDGE=mcp-cni0
SOCK="$D/run/containerd.sock"
T0=$(date +%s)

if [ ! -d "$D" ]; then
  log "nothing to do: $D does not exist"
  exit 0
fi

# 1. Host processes that talk to the cluster, then the kubelet (so it does
#    not restart containers while we remove them).
for d in pv-recycler coredns kube-proxy kubelet kube-scheduler kube-controller-manager; do
  stop_daemon "$d" "$D"
done
# Nodes 2..N: each goes with its network namespace.
for k in $(existing_nodes); do
  log "node $k: stopping"
  node_down "$k"
done
reg_port="${LOCAL_REGISTRY##*:}"
while iptables -w -t nat -D PREROUTING -i "$NODE_LINK_BRIDGE" -d "$NODE_LINK_GW" -p tcp --dport "$reg_port" \
  -m comment --comment mcp-e2e-registry -j DNAT --to-destination "$LOCAL_REGISTRY" 2>/dev/null; do :; done
if ip link show "$NODE_LINK_BRIDGE" >/dev/null 2>&1; then
  ip link del "$NODE_LINK_BRIDGE"
  log "removed bridge $NODE_LINK_BRIDGE"
fi
# The registry the cluster may pull from (hack/registry.sh), if it runs.
"$HERE/../../../hack/registry.sh" stop || true

# 2. Containers: kill every task in containerd's k8s.io namespace, remove
#    sandboxes through the CRI so the CNI DEL runs (releases IPs, veths,
#    portmap rules).
if daemon_alive containerd "$D" && [ -S "$SOCK" ]; then
  if command -v crictl >/dev/null 2>&1; then
    crictl -r "unix://$SOCK" rmp -af >/dev/null 2>&1 || true
  fi
  for t in $(ctr --address "$SOCK" -n k8s.io tasks ls -q 2>/dev/null || true); do
    ctr --address "$SOCK" -n k8s.io tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
  done
  sleep 1
  for t in $(ctr --address "$SOCK" -n k8s.io tasks ls -q 2>/dev/null || true); do
    ctr --address "$SOCK" -n k8s.io tasks delete -f "$t" >/dev/null 2>&1 || true
  done
  for c in $(ctr --address "$SOCK" -n k8s.io containers ls -q 2>/dev/null || true); do
    ctr --address "$SOCK" -n k8s.io containers delete "$c" >/dev/null 2>&1 || true
  done
fi
stop_daemon containerd "$D"

# 3. Leftover shims and container processes: anything whose cgroup is under
#    our kubepods hierarchy, and shims whose command line names our state dir.
for pid in $(pgrep -f "containerd-shim.*-address $SOCK" 2>/dev/null || true); do
  log "killing leftover shim $pid"
  kill -KILL "$pid" 2>/dev/null || true
done
for cg in /sys/fs/cgroup/pids/kubepods /sys/fs/cgroup/cpu/kubepods /sys/fs/cgroup/kubepods; do
  [ -d "$cg" ] || continue
  while IFS= read -r -d '' procs; do
    while read -r pid; do
      if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
    done < "$procs"
  done < <(find "$cg" -name cgroup.procs -print0 2>/dev/null)
done
sleep 0.5

# 4. Mounts under the cluster dir (deepest first): rootfs overlays, shm,
#    kubelet volumes, network namespaces (netns_mounts_under_state_dir).
umount_all() {
  local m n=0
  while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    n=$((n + 1))
  done < <(awk -v d="$D/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r)
  [ "$n" -gt 0 ] && log "unmounted $n mounts under $D"
  return 0
}
umount_all
umount_all

# 5. Kubelet cgroups (cgroupfs driver, v1 hierarchies).
for ctrl in /sys/fs/cgroup/*/; do
  [ -d "${ctrl}kubepods" ] || continue
  find "${ctrl}kubepods" -depth -type d -exec rmdir {} + 2>/dev/null || true
done

# 6. Network: veths on our bridge, the bridge itself.
if ip link show "$BRIDGE" >/dev/null 2>&1; then
  for veth in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link del "$veth" 2>/dev/null || true
  done
  ip link del "$BRIDGE"
  log "removed bridge $BRIDGE"
fi
rm -rf "${D:?}/cni/ipam"

# 7. iptables: kube-proxy's own cleanup, then any KUBE-*/CNI-* chain and the
#    rules that jump to them (kubelet canaries, portmap). Other rules stay.
if [ -x "$K8S_BIN/kube-proxy" ]; then
  "$K8S_BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
fi
clean_tables() {
  local save="$1" restore="$2" table rules
  command -v "$save" >/dev/null || return 0
  for table in filter nat mangle; do
    rules="$("$save" -t "$table" 2>/dev/null)" || continue
    grep -qE '^:(KUBE-|CNI-)|-j (KUBE-|CNI-)' <<<"$rules" || continue
    # The dump holds this one table, so restore replaces only it.
    grep -vE '^:(KUBE-|CNI-)|-j (KUBE-|CNI-)|^-A (KUBE-|CNI-)' <<<"$rules" | "$restore" ||
      log "WARNING: $restore failed for table $table"
    log "$save: removed KUBE-*/CNI-* chains from $table"
  done
}
clean_tables iptables-save iptables-restore
clean_tables ip6tables-save ip6tables-restore
# conntrack entries for pod/service addresses would only confuse a next run.
if command -v conntrack >/dev/null; then
  conntrack -D -s 10.244.0.0/16 >/dev/null 2>&1 || true
  conntrack -D -d 10.96.0.0/16 >/dev/null 2>&1 || true
  conntrack -D -s "$NODE_LINK_CIDR" >/dev/null 2>&1 || true
fi

# 8. sysctls we changed.
if [ -f "$D/run/ip_forward.orig" ]; then
  cat "$D/run/ip_forward.orig" > /proc/sys/net/ipv4/ip_forward
  rm -f "$D/run/ip_forward.orig"
fi
if [ -f "$D/run/bridge-nf.orig" ]; then
  cat "$D/run/bridge-nf.orig" > /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || true
  rm -f "$D/run/bridge-nf.orig"
fi

# 9. Control plane last.
stop_daemon kube-apiserver "$D"
stop_daemon etcd "$D"

if [ "$PURGE" -eq 1 ]; then
  umount_all
  rm -rf "$D"
  log "purged $D"
fi
log "down in $(( $(date +%s) - T0 ))s"
