#!/usr/bin/env bash
# Installs the Debian packages and builds (once, cached by version) the Go
# binaries the local cluster needs:
#   kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy
#   kubectl [kubeadm] (k8s.io/kubernetes), etcd (go.etcd.io/etcd/server/v3),
#   coredns (coredns-build: only the plugins the Corefile uses),
#   helm (hack/install-helm.sh, linked here).
# Binaries land in ~/.cache/mcp-operator/k8s/<k8s version>/bin.
# A warm run (everything present) does nothing but check.
#
# Usage: build.sh [--no-apt] [--only-control-plane] [--with-kubeadm]
#   --no-apt              skip the Debian package step
#   --only-control-plane  build only what control-plane.sh needs
#                         (etcd, kube-apiserver, kubectl)
#   --with-kubeadm        also build kubeadm (not needed by up.sh)
# Env: GO_BUILD_P (default 2) parallelism for go build.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/versions.sh
source "$HERE/versions.sh"

DO_APT=1
ONLY_CP=0
WITH_KUBEADM=0
for arg in "$@"; do
  case "$arg" in
    --no-apt) DO_APT=0 ;;
    --only-control-plane) ONLY_CP=1 ;;
    --with-kubeadm) WITH_KUBEADM=1 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) die "unknown argument: $arg" ;;
  esac
done

GO_BUILD_P="${GO_BUILD_P:-2}"
START=$(date +%s)

APT_PKGS=(containerd runc containernetworking-plugins iptables conntrack
  debootstrap openssl socat ethtool kmod iproute2 ca-certificates python3 util-linux
  procps curl gcc libc6-dev)

apt_install() {
  local missing=() p
  for p in "${APT_PKGS[@]}"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    log "apt: all ${#APT_PKGS[@]} packages present"
    return
  fi
  [ "$(id -u)" -eq 0 ] || die "need root to apt-get install: ${missing[*]}"
  log "apt: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The Debian containerd package may start nothing (no systemd) but be safe.
  log "apt: done"
}

need_go() {
  local d
  if ! command -v go >/dev/null; then
    for d in /usr/local/go/bin /usr/lib/go/bin "$HOME/go/bin" "$HOME/sdk/go/bin"; do
      if [ -x "$d/go" ]; then PATH="$d:$PATH"; export PATH; break; fi
    done
  fi
  command -v go >/dev/null || die "go not found in PATH (need Go >= 1.24)"
}

# have TOOL VERSION: binary present and built from VERSION
have() {
  [ -x "$K8S_BIN/$1" ] && [ "$(cat "$K8S_BIN/.$1.version" 2>/dev/null)" = "$2" ]
}

stamp() { echo "$2" > "$K8S_BIN/.$1.version"; }

build_k8s() {
  local cmds=(kube-apiserver kubectl)
  if [ "$ONLY_CP" -eq 0 ]; then
    cmds+=(kube-controller-manager kube-scheduler kubelet kube-proxy)
  fi
  # kubeadm is not needed (up.sh makes the PKI with openssl); opt in.
  if [ "$WITH_KUBEADM" -eq 1 ]; then cmds+=(kubeadm); fi
  local todo=() c
  for c in "${cmds[@]}"; do
    have "$c" "v$K8S_VERSION" || todo+=("$c")
  done
  if [ "${#todo[@]}" -eq 0 ]; then
    log "kubernetes v$K8S_VERSION: ${cmds[*]} cached"
    return
  fi
  need_go
  local pkgs=() t0 ldflags tmp
  for c in "${todo[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  local minor="${K8S_VERSION#*.}"; minor="${minor%%.*}"
  ldflags="-s -w"
  local p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  tmp="$K8S_BIN/.tmp"
  rm -rf "$tmp"; mkdir -p "$tmp"
  log "kubernetes v$K8S_VERSION: building ${todo[*]} (go build -p $GO_BUILD_P; ~10 min on 2 cores with an empty Go build cache)"
  t0=$(date +%s)
  (
    cd "$HERE/k8s-build"
    # Keep go.mod in sync with the pinned version (no-op when it already is).
    grep -q "k8s.io/kubernetes v$K8S_VERSION\$" go.mod ||
      die "k8s-build/go.mod does not pin k8s.io/kubernetes v$K8S_VERSION"
    CGO_ENABLED=0 go build -p "$GO_BUILD_P" -trimpath -buildvcs=false \
      -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}"
  )
  for c in "${todo[@]}"; do
    mv -f "$tmp/$c" "$K8S_BIN/$c"
    stamp "$c" "v$K8S_VERSION"
  done
  rmdir "$tmp"
  log "kubernetes: built ${todo[*]} in $(( $(date +%s) - t0 ))s"
}

# build_module TOOL VERSION MODULE PACKAGE [extra -ldflags]
# Builds PACKAGE from MODULE@VERSION through a throwaway go.mod in the cache
# (a plain `go install pkg@version` refuses modules with replace directives,
# which etcd has).
build_module() {
  local tool="$1" ver="$2" mod="$3" pkg="$4" xl="${5:-}"
  if have "$tool" "$ver"; then
    log "$tool $ver cached"
    return
  fi
  need_go
  local wd="$MCP_CACHE/gobuild/$tool-$ver" t0
  t0=$(date +%s)
  log "$tool $ver: building from $mod"
  rm -rf "$wd"; mkdir -p "$wd"
  (
    cd "$wd"
    go mod init "mcp-e2e/build-$tool" >/dev/null 2>&1
    # go get of the package (not just the module) records its deps in go.sum.
    go get "$pkg@$ver" >/dev/null 2>&1 || go get "$pkg@$ver"
    CGO_ENABLED=0 go build -p "$GO_BUILD_P" -trimpath -buildvcs=false \
      -ldflags "-s -w $xl" -o "$K8S_BIN/$tool.tmp" "$pkg"
  )
  mv -f "$K8S_BIN/$tool.tmp" "$K8S_BIN/$tool"
  stamp "$tool" "$ver"
  rm -rf "$wd"
  log "$tool: built in $(( $(date +%s) - t0 ))s"
}

mkdir -p "$K8S_BIN"
[ "$DO_APT" -eq 1 ] && apt_install

# CoreDNS with the plugins the Corefile uses (coredns-build/main.go).
build_coredns() {
  if have coredns "$COREDNS_VERSION"; then
    log "coredns $COREDNS_VERSION cached"
    return
  fi
  need_go
  grep -q "github.com/coredns/coredns $COREDNS_VERSION\$" "$HERE/coredns-build/go.mod" ||
    die "coredns-build/go.mod does not pin github.com/coredns/coredns $COREDNS_VERSION"
  local t0; t0=$(date +%s)
  log "coredns $COREDNS_VERSION: building (bind, errors, ready, kubernetes, cache)"
  (
    cd "$HERE/coredns-build"
    CGO_ENABLED=0 go build -p "$GO_BUILD_P" -trimpath -buildvcs=false -ldflags "-s -w" \
      -o "$K8S_BIN/coredns.tmp" .
  )
  mv -f "$K8S_BIN/coredns.tmp" "$K8S_BIN/coredns"
  stamp coredns "$COREDNS_VERSION"
  log "coredns: built in $(( $(date +%s) - t0 ))s"
}

build_module etcd "$ETCD_VERSION" go.etcd.io/etcd/server/v3 go.etcd.io/etcd/server/v3
build_k8s
if [ "$ONLY_CP" -eq 0 ]; then
  build_coredns
  # One helm for the chart checks and the clusters (hack/install-helm.sh).
  helm_bin=$(HELM_VERSION="$HELM_VERSION" "$HERE/../../../hack/install-helm.sh")
  ln -sf "$helm_bin" "$K8S_BIN/helm"
  log "helm $HELM_VERSION: $K8S_BIN/helm"
fi

log "build.sh: done in $(( $(date +%s) - START ))s; binaries in $K8S_BIN"
