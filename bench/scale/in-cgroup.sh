#!/usr/bin/env bash
# Runs a command in a memory cgroup of its own with a hard limit, as a pod's
# memory limit would: past it the kernel reclaims, then OOM-kills.
# Usage: in-cgroup.sh NAME LIMIT_BYTES CMD [ARGS...]
set -euo pipefail
name=$1 limit=$2; shift 2
if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
  dir=/sys/fs/cgroup/mcp-bench-$name
  mkdir -p "$dir"
  echo "$limit" >"$dir/memory.max"
  echo 0 >"$dir/memory.swap.max" 2>/dev/null || true
else
  dir=/sys/fs/cgroup/memory/mcp-bench-$name
  mkdir -p "$dir"
  echo "$limit" >"$dir/memory.limit_in_bytes"
fi
echo $$ >"$dir/cgroup.procs"
exec "$@"
