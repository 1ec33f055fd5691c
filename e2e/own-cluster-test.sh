#!/usr/bin/env bash
# The "your own cluster" path of `make demo`, run on the local cluster as if
# it were someone else's: a copy of its kubeconfig under another name, which
# the demo cannot tell from a foreign cluster.
#   1. Without IMAGE_REPOSITORY the demo must refuse before changing anything:
#      exit 2, the cluster named, and no object, CRD, namespace or Helm release
#      added or changed.
#   2. With a registry on this machine (hack/registry.sh, 127.0.0.1:5000) and
#      IMAGE_REPOSITORY=127.0.0.1:5000/mcp, the demo builds and pushes the
#      images, the cluster pulls every one of them from the registry (pods'
#      imageIDs name it), and S1 passes.
# Needs the local cluster up; run by e2e/run-e2e.sh when E2E_USER_PATHS=1
# (make test). Suite arguments (e.g. --out DIR) go to the demo's suite run.
set -euo pipefail
cd "$(dirname "$0")/.."
unset E2E_USER_PATHS # the demo's own e2e run must not start this test again
# shellcheck source=cluster/local/versions.sh
. e2e/cluster/local/versions.sh
log() { printf '[%(%H:%M:%S)T] own-cluster: %s\n' -1 "$*" >&2; }
fail() { log "FAILED: $*"; exit 1; }
kubectl_bin=${KUBECTL:-$(command -v kubectl || echo "$K8S_BIN/kubectl")}
helm_bin=${HELM:-$(command -v helm || echo "$K8S_BIN/helm")}
[[ -s "$KUBECONFIG_PATH" ]] || fail "the local cluster is not up ($KUBECONFIG_PATH missing)"

work="$MCP_CACHE/own-cluster"
mkdir -p "$work"
own="$work/kubeconfig"
sed -e 's/^- name: mcp-e2e$/- name: own-cluster/' \
  -e 's/{cluster: mcp-e2e,/{cluster: own-cluster,/' \
  -e 's/^current-context: mcp-e2e$/current-context: own-cluster/' "$KUBECONFIG_PATH" >"$own"
chmod 600 "$own"
export KUBECONFIG=$own
"$kubectl_bin" config current-context | grep -qx own-cluster || fail "could not rename the kubeconfig's context"

# Everything the demo could create or change, by name (and Helm revision).
snapshot() {
  "$kubectl_bin" get namespaces,customresourcedefinitions,clusterroles,clusterrolebindings -o name
  "$kubectl_bin" get deployments,statefulsets,services,secrets,serviceaccounts,roles,rolebindings,poddisruptionbudgets,configmaps,persistentvolumeclaims \
    -A -o custom-columns=NS:.metadata.namespace,KIND:.kind,NAME:.metadata.name --no-headers
  "$helm_bin" list -A -o json
}

log "1/2: make demo against \"own-cluster\" without IMAGE_REPOSITORY must refuse and change nothing"
before=$(snapshot)
rc=0
out=$(env -u IMAGE_REPOSITORY make --no-print-directory demo 2>&1) || rc=$?
after=$(snapshot)
printf '%s\n' "$out" | sed 's/^/    /' >&2
((rc == 2)) || fail "expected exit 2 (refused), got $rc"
grep -q 'Nothing was changed' <<<"$out" || fail "the demo did not refuse (make exits 2 on any failure)"
grep -q 'cluster "own-cluster"' <<<"$out" || fail "the refusal does not name the cluster"
grep -q 'statefulset.apps/postgres' <<<"$out" || fail "the refusal does not list what it would install"
if [[ "$before" != "$after" ]]; then
  diff <(printf '%s\n' "$before") <(printf '%s\n' "$after") >&2 || true
  fail "the refused demo changed the cluster"
fi
log "refused with exit 2, the cluster named, nothing changed"

log "2/2: IMAGE_REPOSITORY=$LOCAL_REGISTRY/mcp make demo, every image pulled from the registry"
hack/registry.sh start
trap 'hack/registry.sh stop' EXIT
# Nothing may come from containerd's store: drop what an earlier run pulled.
for sock in $(cluster_containerd_sockets); do
  ctr_cmd=(ctr --address "$sock" -n k8s.io)
  mapfile -t stale < <("${ctr_cmd[@]}" images ls -q | grep "^$LOCAL_REGISTRY/" || true)
  if ((${#stale[@]})); then "${ctr_cmd[@]}" images rm "${stale[@]}" >/dev/null; fi
done
repo="$LOCAL_REGISTRY/mcp"
# The client runs in a pod in the cluster, as `auto` picks on a cluster whose
# ClusterIPs the host cannot reach (this one's it can).
IMAGE_REPOSITORY=$repo E2E_LOAD_FROM=cluster e2e/demo.sh "$@" || fail "the demo against own-cluster failed (exit $?)"

# Every container of the operator, Postgres and the McpServer runs an image
# resolved from the registry (imageID repo@sha256:...).
pulled=$("$kubectl_bin" get pods -n mcp-system -l app.kubernetes.io/name=mcp-operator -o jsonpath='{range .items[*].status.containerStatuses[*]}{.imageID}{"\n"}{end}'
  "$kubectl_bin" get pods -n mcp-e2e-db -o jsonpath='{range .items[*].status.containerStatuses[*]}{.imageID}{"\n"}{end}'
  "$kubectl_bin" get pods -n mcp-e2e -l mcp.operator.dev/server=notes -o jsonpath='{range .items[*].status.containerStatuses[*]}{.imageID}{"\n"}{end}')
printf '%s\n' "$pulled" | sort | uniq -c | sed 's/^/    /' >&2
for image in mcp-operator mcp-workload mcp-e2e/postgres; do
  grep -q "^$repo/$image@sha256:" <<<"$pulled" || fail "no running container's image came from $repo/$image"
done
if grep -v "^$repo/" <<<"$pulled" | grep -q .; then
  fail "a container runs an image that did not come from $repo"
fi
log "passed: refused without IMAGE_REPOSITORY; with it, 3 images pushed and every container pulled from $repo"
