#!/usr/bin/env bash
# Lints and renders charts/mcp-operator with a helm CLI built from its Go module
# (hack/install-helm.sh), in cluster-wide and namespaced modes, checks the
# rendered RBAC and pod security settings, and proves values.schema.json
# rejects bad values. Rendered objects are then strictly decoded into their
# k8s.io/api types and the pod template is checked against the restricted Pod
# Security Standard by hack/validate-manifests (Go, offline).
#
# Usage: hack/helm-lint.sh        Env: HELM=/path/to/helm to skip the build.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHART="${ROOT}/charts/mcp-operator"
HELM="${HELM:-$("${ROOT}/hack/install-helm.sh")}"
NS="mcp-operator-system"

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT

failures=0
ok() { echo "  ok   $*"; }
bad() { echo "  FAIL $*"; failures=$((failures + 1)); }

# count <file> <regex>: number of matching lines
count() { grep -cE -- "$2" "$1" || true; }

expect_count() { # <file> <regex> <n> <what>
  local n
  n="$(count "$1" "$2")"
  if [[ "${n}" == "$3" ]]; then ok "$4"; else bad "$4 (expected $3 x '$2', got ${n})"; fi
}

render() { # <out> [helm args...]
  local out="$1"
  shift
  "${HELM}" template mcp-operator "${CHART}" --namespace "${NS}" "$@" >"${out}"
}

expect_render_failure() { # <what> <expected message regex> [helm args...]
  local what="$1" msg="$2"
  shift 2
  if "${HELM}" template mcp-operator "${CHART}" --namespace "${NS}" "$@" >"${work}/neg.out" 2>&1; then
    bad "rejects ${what} (rendered without error)"
  elif grep -qiE -- "${msg}" "${work}/neg.out"; then
    ok "rejects ${what}"
  else
    bad "rejects ${what} (failed, but not with /${msg}/):"
    sed 's/^/       /' "${work}/neg.out"
  fi
}

lint() { # <what> [helm lint args...]
  local what="$1"
  shift
  if "${HELM}" lint "${CHART}" "$@" >"${work}/lint.out" 2>&1; then
    ok "${what}"
  else
    bad "${what}:"
    sed 's/^/       /' "${work}/lint.out"
  fi
}

echo "helm: ${HELM} ($("${HELM}" version --short))"

echo "== helm lint"
lint "helm lint"
lint "helm lint --strict" --strict
lint "helm lint --strict (namespaced)" --strict --set 'watchNamespaces={team-a,team-b}'
lint "helm lint --strict (HA + ServiceMonitor + PDB)" --strict \
  --set replicaCount=3,serviceMonitor.enabled=true,podDisruptionBudget.enabled=true
lint "helm lint --strict (PrometheusRule + Grafana dashboard)" --strict \
  --set prometheusRule.enabled=true,grafanaDashboard.enabled=true

echo "== helm template: cluster-wide (default values)"
f="${work}/cluster.yaml"
render "${f}"
expect_count "${f}" '^kind: ClusterRole$' 1 "one ClusterRole"
expect_count "${f}" '^kind: ClusterRoleBinding$' 1 "one ClusterRoleBinding"
expect_count "${f}" '^kind: Role$' 1 "only the leader-election Role"
expect_count "${f}" '^  name: mcp-operator-leader-election$' 3 "leader-election Role, RoleBinding and its roleRef"
expect_count "${f}" "^  namespace: ${NS}\$" 6 "SA, Deployment, Service, PDB, lease Role + RoleBinding in the release namespace"
expect_count "${f}" '^kind: Deployment$' 1 "one Deployment"
expect_count "${f}" '^kind: ServiceAccount$' 1 "one ServiceAccount"
expect_count "${f}" '^kind: Service$' 1 "one metrics Service"
expect_count "${f}" '^kind: ServiceMonitor$' 0 "no ServiceMonitor by default"
expect_count "${f}" '^kind: PrometheusRule$' 0 "no PrometheusRule by default"
expect_count "${f}" '^kind: ConfigMap$' 0 "no dashboard ConfigMap by default"
expect_count "${f}" '--namespaces' 0 "no --namespaces flag (all namespaces)"
expect_count "${f}" '^            - --leader-election=true$' 1 "leader election on"
expect_count "${f}" '^            - --lease-name=mcp-operator-leader$' 1 "lease name mcp-operator-leader"
expect_count "${f}" '^          image: "mcp-operator:dev"$' 1 "image mcp-operator:dev"
expect_count "${f}" 'fieldPath: metadata.(name|namespace)$' 2 "POD_NAME/POD_NAMESPACE from the downward API"
expect_count "${f}" '^  replicas: 2$' 1 "two replicas (leader + warm standby) by default"
expect_count "${f}" '^kind: PodDisruptionBudget$' 1 "a PodDisruptionBudget for the operator by default"
expect_count "${f}" '^  maxUnavailable: 1$' 1 "the operator PDB lets one replica go at a time"
expect_count "${f}" '^            - --lease-(duration|renew-deadline|retry-period)-seconds=(15|10|2)$' 3 "lease timings 15/10/2 s"

echo "== restricted Pod Security Standard (rendered pod spec)"
expect_count "${f}" '^ +runAsNonRoot: true$' 2 "runAsNonRoot (pod + container)"
expect_count "${f}" '^ +runAsUser: 65532$' 2 "runAsUser 65532"
expect_count "${f}" '^ +allowPrivilegeEscalation: false$' 1 "allowPrivilegeEscalation false"
expect_count "${f}" '^ +readOnlyRootFilesystem: true$' 1 "readOnlyRootFilesystem"
expect_count "${f}" '^ +- ALL$' 1 "capabilities drop ALL"
expect_count "${f}" '^ +add:' 0 "no added capabilities"
expect_count "${f}" '^ +type: RuntimeDefault$' 2 "seccompProfile RuntimeDefault"
expect_count "${f}" '^ +(privileged: true|hostNetwork: true|hostPID: true|hostIPC: true|hostPath:)' 0 "no privileged/host namespaces/hostPath"
expect_count "${f}" '^ +(hostPort:)' 0 "no hostPort"
expect_count "${f}" '^kind: NetworkPolicy$' 0 "no NetworkPolicy by default"

echo "== helm template: networkPolicy for the MCP checks"
f="${work}/netpol.yaml"
render "${f}" --set 'networkPolicy.enabled=true,networkPolicy.namespaces={team-a,team-b}'
expect_count "${f}" '^kind: NetworkPolicy$' 2 "a NetworkPolicy per listed namespace"
expect_count "${f}" '^  name: mcp-operator-mcp-checks$' 2 "named mcp-operator-mcp-checks"
expect_count "${f}" "kubernetes.io/metadata.name: ${NS}\$" 2 "admits pods from the release namespace"
expect_count "${f}" '^      app.kubernetes.io/managed-by: mcp-operator$' 2 "selects the pods the operator manages"
expect_render_failure "a namespace that is not a DNS label" "networkPolicy" --set 'networkPolicy.enabled=true,networkPolicy.namespaces={Team_A}'

echo "== helm template: dependencyScope and the admission policy"
f="${work}/cluster.yaml"
expect_count "${f}" '^            - --dependency-scope=auto$' 1 "--dependency-scope=auto by default"
expect_count "${f}" '^kind: ValidatingAdmissionPolicy(Binding)?$' 0 "no admission policy by default"
f="${work}/vap.yaml"
render "${f}" --set admissionPolicy.enabled=true,dependencyScope=ownNamespace
expect_count "${f}" '^            - --dependency-scope=own-namespace$' 1 "--dependency-scope=own-namespace"
expect_count "${f}" '^kind: ValidatingAdmissionPolicy$' 1 "a ValidatingAdmissionPolicy when enabled"
expect_count "${f}" '^kind: ValidatingAdmissionPolicyBinding$' 1 "and its binding"
expect_count "${f}" "request.userInfo.username == 'system:serviceaccount:${NS}:mcp-operator'" 1 "matching the operator's ServiceAccount"
expect_count "${f}" '^  validationActions: \["Deny"\]$' 1 "denying by default"
f="${work}/vap-ns.yaml"
render "${f}" --set admissionPolicy.enabled=true --set 'watchNamespaces={team-a,team-b}'
expect_count "${f}" 'request.namespace in \["team-a","team-b"\]' 1 "evictions only in the watched namespaces"
expect_render_failure "dependencyScope=nearby" 'dependencyScope' --set dependencyScope=nearby
expect_render_failure "Deny with Warn" 'Deny and Warn' --set admissionPolicy.enabled=true --set 'admissionPolicy.validationActions={Deny,Warn}'

echo "== helm template: namespaced (watchNamespaces={team-a,team-b})"
f="${work}/namespaced.yaml"
render "${f}" --set 'watchNamespaces={team-a,team-b}'
expect_count "${f}" '^kind: ClusterRole(Binding)?$' 0 "no cluster-scoped RBAC"
expect_count "${f}" '^kind: Role$' 3 "a Role per watched namespace + leader election"
expect_count "${f}" '^kind: RoleBinding$' 3 "a RoleBinding per watched namespace + leader election"
expect_count "${f}" '^  namespace: team-a$' 2 "Role + RoleBinding in team-a"
expect_count "${f}" '^  namespace: team-b$' 2 "Role + RoleBinding in team-b"
expect_count "${f}" '^            - --namespaces=team-a,team-b$' 1 "--namespaces=team-a,team-b"

echo "== helm template: options"
f="${work}/options.yaml"
render "${f}" --set replicaCount=3,serviceMonitor.enabled=true,podDisruptionBudget.enabled=true \
  --set prometheusRule.enabled=true,grafanaDashboard.enabled=true
expect_count "${f}" '^kind: ServiceMonitor$' 1 "ServiceMonitor when enabled"
expect_count "${f}" '^    - port: http-metrics$' 1 "ServiceMonitor scrapes http-metrics"
expect_count "${f}" '^      honorLabels: true$' 1 "ServiceMonitor honours the operator's namespace/name labels"
expect_count "${f}" '^kind: PrometheusRule$' 1 "PrometheusRule when enabled (rules: hack/check-alerts.sh)"
expect_count "${f}" '^kind: ConfigMap$' 1 "dashboard ConfigMap when enabled"
expect_count "${f}" '^    grafana_dashboard: "1"$' 1 "dashboard ConfigMap labelled for Grafana's sidecar"
expect_count "${f}" '^kind: PodDisruptionBudget$' 1 "PodDisruptionBudget when enabled"
expect_count "${f}" '^  replicas: 3$' 1 "replicas 3"
f="${work}/noleader.yaml"
render "${f}" --set leaderElection.enabled=false,replicaCount=1
expect_count "${f}" '^kind: Role$' 0 "no lease Role without leader election"
expect_count "${f}" '^            - --leader-election=false$' 1 "--leader-election=false"
expect_count "${f}" '^    type: Recreate$' 1 "Recreate strategy without leader election"

echo "== values.schema.json and template guards reject bad values"
expect_render_failure "logFormat=xml" 'logFormat' --set logFormat=xml
expect_render_failure "replicaCount as a string" 'replicaCount' --set-string replicaCount=two
expect_render_failure "an unknown top-level key" 'additional propert|not allowed' --set unknownKey=1
expect_render_failure "an invalid namespace name" 'watchNamespaces' --set 'watchNamespaces={Bad_NS}'
expect_render_failure "image.pullPolicy=Sometimes" 'pullPolicy' --set image.pullPolicy=Sometimes
expect_render_failure "httpPort=0" 'httpPort' --set httpPort=0
expect_render_failure "an unknown serviceMonitor key" 'serviceMonitor' --set serviceMonitor.enable=true
expect_render_failure "an unknown prometheusRule key" 'prometheusRule' --set prometheusRule.enable=true
expect_render_failure "grafanaDashboard.namespace that is not a DNS label" 'grafanaDashboard' \
  --set grafanaDashboard.enabled=true,grafanaDashboard.namespace=Bad_NS
expect_render_failure "replicaCount=2 without leader election" 'requires leaderElection' \
  --set replicaCount=2,leaderElection.enabled=false
expect_render_failure "renew deadline not below the lease duration" 'renewDeadlineSeconds must be shorter' \
  --set leaderElection.renewDeadlineSeconds=15
expect_render_failure "retry period not below the renew deadline" 'retryPeriodSeconds must be shorter' \
  --set leaderElection.retryPeriodSeconds=10

echo "== offline validation: strict k8s.io/api decoding + restricted PSS (hack/validate-manifests)"
validator="${work}/validate-manifests"
(cd "${ROOT}/hack/validate-manifests" && go build -o "${validator}" .)
for f in cluster namespaced options noleader; do
  if "${validator}" "${work}/${f}.yaml" >"${work}/validate.out" 2>&1; then
    ok "${f}: $(grep -c '  ok ' "${work}/validate.out") validations"
  else
    bad "${f}:"
    sed 's/^/       /' "${work}/validate.out"
  fi
done
if "${validator}" "${ROOT}/deploy/install.yaml" >"${work}/validate.out" 2>&1; then
  ok "deploy/install.yaml validates"
else
  bad "deploy/install.yaml:"
  sed 's/^/       /' "${work}/validate.out"
fi
render "${work}/privesc.yaml" --set securityContext.allowPrivilegeEscalation=true
if "${validator}" "${work}/privesc.yaml" >"${work}/validate.out" 2>&1; then
  bad "validator rejects allowPrivilegeEscalation=true (it passed)"
else
  ok "validator rejects allowPrivilegeEscalation=true"
fi

if ((failures > 0)); then
  echo "helm-lint: ${failures} check(s) failed" >&2
  exit 1
fi
echo "helm-lint: all checks passed"
