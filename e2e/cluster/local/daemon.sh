#!/usr/bin/env bash
# Stop or restart one daemon of the local cluster, for the e2e suite's fault
# scenarios (kube-apiserver or etcd restarted under load).
#
#   daemon.sh stop  NAME   TERM (then KILL after 15 s) the daemon up.sh started
#   daemon.sh start        run up.sh again: it starts whatever is not running,
#                          with the same flags, and waits until it serves
#   daemon.sh pid   NAME   print the daemon's pid (exit 1 if not running)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/versions.sh
source "$HERE/versions.sh"
# shellcheck source=SCRIPTDIR/lib.sh
source "$HERE/lib.sh"

case "${1:-}" in
  stop)
    [ -n "${2:-}" ] || die "usage: daemon.sh stop NAME"
    daemon_alive "$2" "$CLUSTER_DIR" || die "$2 is not running"
    stop_daemon "$2" "$CLUSTER_DIR"
    ;;
  start)
    "$HERE/up.sh" --no-images >/dev/null
    ;;
  pid)
    [ -n "${2:-}" ] || die "usage: daemon.sh pid NAME"
    daemon_alive "$2" "$CLUSTER_DIR" || exit 1
    cat "$CLUSTER_DIR/run/$2.pid"
    ;;
  *) die "usage: daemon.sh stop NAME | start | pid NAME" ;;
esac
