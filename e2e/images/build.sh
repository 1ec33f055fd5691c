#!/usr/bin/env bash
# Builds the e2e container images without docker or a registry, as
# docker-archive tarballs under ~/.cache/mcp-operator/images/out, and
# optionally imports them into containerd (`ctr -n k8s.io images import`).
#
# Usage: build.sh [--import] [--push=REPO] [NAME...]  NAME: pause postgres operator workload all
#   pause     registry.k8s.io/pause:3.10  static C binary (containerd's sandbox_image)
#   postgres  mcp-e2e/postgres:15         Debian bookworm PostgreSQL 15, debootstrap rootfs
#   operator  mcp-operator:dev            $CARGO_TARGET_DIR/release/mcp-operator
#   workload  mcp-workload:dev            $CARGO_TARGET_DIR/release/mcp-workload-server
#                                         (+ mcp-loadclient when built)
# Default NAME: all. With `all`, a Rust image whose binary is not built yet is
# skipped with a warning; named explicitly, that is an error.
# --import: import into the containerd at $CONTAINERD_ADDRESS (default: the
# local cluster's, ~/.cache/mcp-operator/cluster/run/containerd.sock).
# --push=REPO: push each image to REPO/<its tag above> (mcp-operator:dev goes
# to REPO/mcp-operator:dev) with crane (hack/crane.sh); credentials come from
# ~/.docker/config.json as for docker. Loopback and private addresses are
# spoken to over plain HTTP (crane's rule); PUSH_INSECURE=1 allows it anywhere.
# Each image is rebuilt only when its inputs changed; an import is skipped
# when containerd already holds the same image.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
MCP_CACHE="${MCP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mcp-operator}"
IMG_CACHE="$MCP_CACHE/images"
OUT="$IMG_CACHE/out"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
CONTAINERD_ADDRESS="${CONTAINERD_ADDRESS:-$MCP_CACHE/cluster/run/containerd.sock}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
NONROOT_UID=65532

log() { printf '[%s] images: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

DO_IMPORT=0
PUSH_TO=""
NAMES=()
for arg in "$@"; do
  case "$arg" in
    --import) DO_IMPORT=1 ;;
    --push=?*) PUSH_TO="${arg#--push=}"; PUSH_TO="${PUSH_TO%/}" ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    pause|postgres|operator|workload|all) NAMES+=("$arg") ;;
    *) die "unknown argument: $arg" ;;
  esac
done
[ "${#NAMES[@]}" -gt 0 ] || NAMES=(all)
EXPLICIT=1
if [ "${NAMES[*]}" = all ]; then
  NAMES=(pause postgres operator workload)
  EXPLICIT=0
fi

mkdir -p "$OUT"
WORK="$(mktemp -d "$IMG_CACHE/work.XXXXXX")"
umount_under() {
  local m
  while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done < <(awk -v d="$1/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r)
}
cleanup() {
  # debootstrap leaves /proc etc. mounted inside the rootfs when it fails.
  umount_under "$WORK"
  rm -rf "$WORK"
}
trap cleanup EXIT

inputs_hash() { cat "$@" | sha256sum | cut -c1-16; }

# mktar DIR OUT.tar : a reproducible-ish layer tarball of DIR's contents.
mktar() {
  tar -C "$1" --numeric-owner --sort=name --mtime=@0 -cf "$2" .
}

# archive NAME TAG HASH LAYERS... -- MKIMAGE_ARGS...
# Builds $OUT/NAME.tar unless $OUT/NAME.hash already says HASH.
finish_image() {
  local name="$1" hash="$2"; shift 2
  python3 "$HERE/mkimage.py" --out "$OUT/$name.tar" "$@" > "$OUT/$name.config-digest"
  echo "$hash" > "$OUT/$name.hash"
  rm -f "$OUT/$name.manifest-digest"
  log "$name: wrote $OUT/$name.tar ($(du -h "$OUT/$name.tar" | cut -f1))"
}

up_to_date() { [ -s "$OUT/$1.tar" ] && [ "$(cat "$OUT/$1.hash" 2>/dev/null)" = "$2" ]; }

# ------------------------------------------------------------------- pause
build_pause() {
  local hash; hash="$(inputs_hash "$HERE/pause/pause.c" "$HERE/mkimage.py")"
  if up_to_date pause "$hash"; then log "pause: up to date"; return; fi
  command -v gcc >/dev/null || die "gcc needed for the pause image (apt-get install gcc libc6-dev)"
  mkdir -p "$WORK/pause/root"
  gcc -Os -static -Wall -o "$WORK/pause/root/pause" "$HERE/pause/pause.c"
  strip "$WORK/pause/root/pause" 2>/dev/null || true
  mktar "$WORK/pause/root" "$WORK/pause/layer.tar"
  finish_image pause "$hash" --tag "${TAG[pause]}" --layer "$WORK/pause/layer.tar" \
    --entrypoint '["/pause"]' --user 65535:65535
}

# ---------------------------------------------------------------- postgres
PG_ROOTFS_RECIPE="bookworm minbase postgresql-15 procps nojit v3"
build_postgres_rootfs() {
  local key; key="$(echo "$PG_ROOTFS_RECIPE" | sha256sum | cut -c1-12)"
  PG_ROOTFS_TAR="$IMG_CACHE/postgres-rootfs-$SUITE-$key.tar"
  if [ -s "$PG_ROOTFS_TAR" ]; then log "postgres: cached rootfs $PG_ROOTFS_TAR"; return; fi
  command -v debootstrap >/dev/null || die "debootstrap missing (apt-get install debootstrap)"
  [ "$(id -u)" -eq 0 ] || die "debootstrap needs root"
  local r="$WORK/pgroot" t0; t0=$(date +%s)
  log "postgres: debootstrap $SUITE minbase + postgresql-15 (cold: a few minutes; log $IMG_CACHE/debootstrap.log)"
  debootstrap --variant=minbase --include=postgresql-15,procps "$SUITE" "$r" "$DEBIAN_MIRROR" \
    > "$IMG_CACHE/debootstrap.log" 2>&1 || { tail -20 "$IMG_CACHE/debootstrap.log" >&2; die "debootstrap failed"; }
  # postgres as uid/gid 999 (the usual container convention), no default cluster.
  chroot "$r" groupmod -g 999 postgres
  chroot "$r" usermod -u 999 -g 999 postgres
  rm -rf "$r/var/lib/postgresql/15" "$r/etc/postgresql/15"
  mkdir -p "$r/var/lib/postgresql/data" "$r/var/run/postgresql"
  chroot "$r" chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
  # Slim it down.
  rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/* "$r"/usr/share/doc/* \
    "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/var/log/*.log "$r"/var/cache/debconf/*-old
  # JIT (LLVM, ~150 MB with z3) is off in the entrypoint's config.
  rm -rf "$r"/usr/lib/x86_64-linux-gnu/libLLVM-* "$r"/usr/lib/x86_64-linux-gnu/libz3.so* \
    "$r"/usr/lib/postgresql/15/lib/llvmjit* "$r"/usr/lib/postgresql/15/lib/bitcode \
    "$r"/usr/share/i18n "$r"/usr/lib/x86_64-linux-gnu/perl/5.*/CORE/*.h
  find "$r/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} + 2>/dev/null || true
  : > "$r/etc/resolv.conf"
  umount_under "$r"
  tar -C "$r" --numeric-owner --sort=name --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
    -cf "$PG_ROOTFS_TAR.tmp" .
  mv -f "$PG_ROOTFS_TAR.tmp" "$PG_ROOTFS_TAR"
  rm -rf "$r"
  log "postgres: rootfs built in $(( $(date +%s) - t0 ))s ($(du -h "$PG_ROOTFS_TAR" | cut -f1))"
}

build_postgres() {
  build_postgres_rootfs
  local hash; hash="$(printf '%s\n' "$PG_ROOTFS_TAR" | cat - "$HERE/postgres/entrypoint.sh" "$HERE/mkimage.py" | sha256sum | cut -c1-16)"
  if up_to_date postgres "$hash"; then log "postgres: up to date"; return; fi
  local top="$WORK/pgtop"
  mkdir -p "$top/usr/local/bin"
  install -m 0755 "$HERE/postgres/entrypoint.sh" "$top/usr/local/bin/docker-entrypoint.sh"
  mktar "$top" "$WORK/pgtop.tar"
  finish_image postgres "$hash" --tag "${TAG[postgres]}" \
    --layer "$PG_ROOTFS_TAR" --layer "$WORK/pgtop.tar" \
    --entrypoint '["/usr/local/bin/docker-entrypoint.sh"]' --cmd '["postgres"]' \
    --env PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env PGDATA=/var/lib/postgresql/data/pgdata --env LANG=C.UTF-8 \
    --port 5432/tcp
}

# ------------------------------------------------------ Rust binary images
# A distroless-like image: the binary, the glibc shared objects it needs
# (from this host, where it was built), CA certificates, passwd/group with
# nonroot uid 65532, /tmp. Runs as 65532.
# build_rust NAME BIN TAG [EXTRA_BIN...] [-- MKIMAGE ARGS...]: EXTRA_BINs are
# copied too when built (e.g. mcp-loadclient beside the workload server).
build_rust() {
  local name="$1" bin="$2" tag="$3" path="$TARGET_DIR/release/$2"; shift 3
  local extra=() margs=() e
  while [ "$#" -gt 0 ]; do
    if [ "$1" = -- ]; then shift; margs=("$@"); break; fi
    extra+=("$1"); shift
  done
  local bins=("$path")
  for e in "${extra[@]}"; do
    if [ -x "$TARGET_DIR/release/$e" ]; then bins+=("$TARGET_DIR/release/$e"); fi
  done
  if [ ! -x "$path" ]; then
    if [ "$EXPLICIT" -eq 1 ]; then die "$name: $path not built (cargo build --release)"; fi
    log "$name: $path not built yet, skipping"
    return 0
  fi
  local hash; hash="$(inputs_hash "${bins[@]}" "$HERE/build.sh" "$HERE/mkimage.py")"
  if up_to_date "$name" "$hash"; then log "$name: up to date"; return; fi
  local r="$WORK/$name"
  mkdir -p "$r/usr/local/bin" "$r/etc/ssl/certs" "$r/tmp" "$r/home/nonroot"
  chmod 1777 "$r/tmp"
  chown "$NONROOT_UID:$NONROOT_UID" "$r/home/nonroot"
  local b lib real
  for b in "${bins[@]}"; do
    install -m 0755 "$b" "$r/usr/local/bin/$(basename "$b")"
    # Shared objects, with their symlink names, and the dynamic loader.
    while read -r lib; do
      [ -n "$lib" ] || continue
      real="$(readlink -f "$lib")"
      mkdir -p "$r$(dirname "$lib")" "$r$(dirname "$real")"
      cp -a "$real" "$r$real"
      [ "$lib" = "$real" ] || ln -sf "$real" "$r$lib"
    done < <(ldd "$b" | awk '/=> \//{print $3} /^\t\/.*ld-linux/{print $1}')
  done
  # glibc's NSS and iconv are not needed by Rust binaries; resolv via libc's
  # built-in DNS works without nsswitch plugins (files,dns are built in).
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    cp /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/"
  fi
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%s:%s:nonroot:/home/nonroot:/sbin/nologin\n' \
    "$NONROOT_UID" "$NONROOT_UID" > "$r/etc/passwd"
  printf 'root:x:0:\nnonroot:x:%s:\n' "$NONROOT_UID" > "$r/etc/group"
  printf 'hosts: files dns\n' > "$r/etc/nsswitch.conf"
  mktar "$r" "$WORK/$name.tar"
  finish_image "$name" "$hash" --tag "$tag" --layer "$WORK/$name.tar" \
    --entrypoint "[\"/usr/local/bin/$bin\"]" --user "$NONROOT_UID:$NONROOT_UID" \
    --env PATH=/usr/local/bin:/usr/bin:/bin --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    --port 8080/tcp "${margs[@]}"
}

# ------------------------------------------------------------------ import
import_image() {
  local name="$1" ref="$2"
  [ -s "$OUT/$name.tar" ] || return 0
  local ctr=(ctr --address "$CONTAINERD_ADDRESS" -n k8s.io)
  # The manifest containerd makes from our archive is deterministic: the
  # digest recorded at the last import tells whether this archive is there.
  local want; want="$(cat "$OUT/$name.manifest-digest" 2>/dev/null || true)"
  local have; have="$("${ctr[@]}" images ls "name==$ref" 2>/dev/null || true)"
  if [ -n "$want" ] && [[ "$have" == *"$want"* ]]; then
    log "$name: $ref already in containerd"
    return 0
  fi
  local t0 out digest; t0=$(date +%s)
  out="$("${ctr[@]}" images import "$OUT/$name.tar")"
  digest="$(grep -o 'sha256:[0-9a-f]\{64\}' <<<"$out" | head -1 || true)"
  [ -n "$digest" ] && echo "$digest" > "$OUT/$name.manifest-digest"
  log "$name: imported $ref in $(( $(date +%s) - t0 ))s"
}

# The tag each image is built with, and the reference containerd gives it.
declare -A TAG=(
  [pause]=registry.k8s.io/pause:3.10
  [postgres]=mcp-e2e/postgres:15
  [operator]=mcp-operator:dev
  [workload]=mcp-workload:dev
)
declare -A REF=(
  [pause]=registry.k8s.io/pause:3.10
  [postgres]=docker.io/mcp-e2e/postgres:15
  [operator]=docker.io/library/mcp-operator:dev
  [workload]=docker.io/library/mcp-workload:dev
)

for n in "${NAMES[@]}"; do
  case "$n" in
    pause) build_pause ;;
    postgres) build_postgres ;;
    operator) build_rust operator mcp-operator "${TAG[operator]}" ;;
    workload) build_rust workload mcp-workload-server "${TAG[workload]}" mcp-loadclient \
      -- --env PORT=8080 --env MCP_PATH=/mcp ;;
  esac
done

if [ "$DO_IMPORT" -eq 1 ]; then
  [ -S "$CONTAINERD_ADDRESS" ] || die "no containerd socket at $CONTAINERD_ADDRESS (is the cluster up?)"
  for n in "${NAMES[@]}"; do import_image "$n" "${REF[$n]}"; done
fi

if [ -n "$PUSH_TO" ]; then
  crane="$("$REPO/hack/crane.sh")"
  push_args=()
  if [ "${PUSH_INSECURE:-0}" = 1 ]; then push_args+=(--insecure); fi
  for n in "${NAMES[@]}"; do
    [ -s "$OUT/$n.tar" ] || die "$n: no image archive to push (build it first)"
    t0=$(date +%s)
    "$crane" push "${push_args[@]}" "$OUT/$n.tar" "$PUSH_TO/${TAG[$n]}" >/dev/null
    log "$n: pushed $PUSH_TO/${TAG[$n]} in $(( $(date +%s) - t0 ))s"
  done
fi
