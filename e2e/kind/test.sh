#!/usr/bin/env bash
# The kind path of `make demo` (docker and kind on PATH, no KUBECONFIG), run on
# the local cluster with kind and docker stood in for by two shims, since
# neither can run on the project's machines (no privileged containers):
#   kind get clusters, create cluster   a state file: the local cluster plays
#                                       the kind cluster (the step not tested)
#   kind get kubeconfig                 the local cluster's kubeconfig
#   kind load docker-image IMG...       IMG imported into every local-cluster
#                                       node's containerd, as kind does
#   docker info                         succeeds
#   docker build -t TAG ...             TAG's image built by e2e/images/build.sh
#                                       (the Dockerfiles are not built here)
# Everything else is real: demo.sh choosing kind, e2e/kind/run.sh, the Helm
# install, the operator rolled onto the loaded image, S1 with the MCP client
# in a pod in the cluster. Checks: what kind and docker were asked (cluster
# mcp-demo created, three images built once and loaded), the demo passed, the
# report says the client ran in the cluster.
# Needs the local cluster up; run by e2e/run-e2e.sh when E2E_USER_PATHS=1.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
# shellcheck source=../cluster/local/versions.sh
. e2e/cluster/local/versions.sh
log() { printf '[%(%H:%M:%S)T] kind-test: %s\n' -1 "$*" >&2; }
fail() { log "FAILED: $*"; exit 1; }
[[ -s "$KUBECONFIG_PATH" ]] || fail "the local cluster is not up ($KUBECONFIG_PATH missing)"
unset E2E_USER_PATHS KUBECONFIG

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin"
export KIND_SHIM_LOG="$work/calls.log" KIND_SHIM_STATE="$work/clusters" KIND_SHIM_REPO="$REPO"
touch "$KIND_SHIM_STATE"

cat >"$work/bin/kind" <<'EOF'
#!/usr/bin/env bash
# kind stand-in (e2e/kind/test.sh)
set -euo pipefail
echo "kind $*" >>"$KIND_SHIM_LOG"
. "$KIND_SHIM_REPO/e2e/cluster/local/versions.sh"
name=kind
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  [[ "${args[i]}" == --name ]] && name=${args[i + 1]}
done
case "$1 ${2:-}" in
  "get clusters") cat "$KIND_SHIM_STATE" ;;
  "create cluster") echo "$name" >>"$KIND_SHIM_STATE" ;;
  "delete cluster") sed -i "/^$name\$/d" "$KIND_SHIM_STATE" ;;
  "get kubeconfig") cat "$KUBECONFIG_PATH" ;;
  "load docker-image")
    for img in "${args[@]:2}"; do
      case "$img" in
        --name | "$name") continue ;;
        mcp-operator:dev) image=operator ;;
        mcp-workload:dev) image=workload ;;
        mcp-e2e/postgres:15) image=postgres ;;
        *) echo "kind shim: unknown image $img" >&2; exit 1 ;;
      esac
      # Into every node, as kind does.
      for sock in $(cluster_containerd_sockets); do
        CONTAINERD_ADDRESS="$sock" "$KIND_SHIM_REPO/e2e/images/build.sh" --import "$image"
      done
    done
    ;;
  *) echo "kind shim: unexpected: kind $*" >&2; exit 1 ;;
esac
EOF
cat >"$work/bin/docker" <<'EOF'
#!/usr/bin/env bash
# docker stand-in (e2e/kind/test.sh)
set -euo pipefail
echo "docker $*" >>"$KIND_SHIM_LOG"
case "$1" in
  info) exit 0 ;;
  build)
    tag=""
    args=("$@")
    for ((i = 0; i < ${#args[@]}; i++)); do
      [[ "${args[i]}" == -t ]] && tag=${args[i + 1]}
    done
    case "$tag" in
      mcp-operator:dev) exec "$KIND_SHIM_REPO/e2e/images/build.sh" operator ;;
      mcp-workload:dev) exec "$KIND_SHIM_REPO/e2e/images/build.sh" workload ;;
      mcp-e2e/postgres:15) exec "$KIND_SHIM_REPO/e2e/images/build.sh" postgres ;;
      *) echo "docker shim: unknown tag $tag" >&2; exit 1 ;;
    esac
    ;;
  *) echo "docker shim: unexpected: docker $*" >&2; exit 1 ;;
esac
EOF
chmod +x "$work/bin/kind" "$work/bin/docker"

out_dir="${CARGO_TARGET_DIR:-$MCP_CACHE/target}/e2e"
rm -f "$out_dir/report.json"
log "make demo with kind and docker on PATH and no KUBECONFIG"
rc=0
PATH="$work/bin:$PATH" make --no-print-directory demo || rc=$?
sed 's/^/    /' "$KIND_SHIM_LOG" >&2
((rc == 0)) || fail "make demo (kind) exited $rc"

calls=$(cat "$KIND_SHIM_LOG")
expect() { grep -qE "$1" <<<"$calls" || fail "kind/docker were not asked: $2"; }
expect '^kind create cluster --name mcp-demo ' "to create the cluster mcp-demo"
expect '^docker build -t mcp-operator:dev ' "to build the operator image"
expect '^docker build --target workload -t mcp-workload:dev ' "to build the workload image (the Dockerfile's workload target)"
expect '^docker build -t mcp-e2e/postgres:15 ' "to build the Postgres image"
expect '^kind load docker-image --name mcp-demo mcp-operator:dev mcp-workload:dev mcp-e2e/postgres:15$' "to load the three images"
builds=$(grep -c '^docker build' <<<"$calls")
((builds == 3)) || fail "expected 3 image builds, got $builds"
[[ -s "$out_dir/report.json" ]] || fail "the demo wrote no report in $out_dir"
python3 - "$out_dir/report.json" <<'EOF' || fail "the demo's report does not show the client in the cluster"
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["settings"].get("load_from") == "cluster", doc["settings"].get("load_from")
runs = [r for s in doc["scenarios"] for r in s["runs"]]
assert runs and all(r.get("url_mode") == "in-cluster" for r in runs), [r.get("url_mode") for r in runs]
EOF
log "passed: mcp-demo created, 3 images built and loaded, S1 passed with the client in a pod in the cluster"
