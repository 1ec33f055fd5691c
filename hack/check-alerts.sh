#!/usr/bin/env bash
# Checks the chart's alerting rules and Grafana dashboard:
#   1. `promtool check rules` (with every lint fatal) on
#      charts/mcp-operator/alerts/mcp-operator.rules.yaml;
#   2. `promtool test rules` on charts/mcp-operator/alerts/tests/*.test.yaml;
#   3. every alert has a severity label, summary/description/runbook_url
#      annotations, a runbook section in charts/mcp-operator/README.md, and
#      test cases where it fires and where it must not;
#   4. the chart rendered with prometheusRule.enabled=true holds a PrometheusRule
#      whose spec.groups equal the rule file's (and its labels/namespace
#      values apply); with grafanaDashboard.enabled=true a ConfigMap whose
#      dashboard equals dashboards/mcp-operator.json;
#   5. the dashboard is tidy JSON (2-space indent, as json.dumps writes it),
#      with unique panel ids and every query on the ${datasource} variable,
#      and every panel query is valid PromQL (Grafana's variables substituted,
#      checked by promtool as recording rules);
#   6. every metric the rules and the dashboard use (hack/metric-names.sh
#      --base) is registered in src/telemetry/metrics.rs (the e2e suite checks
#      the live /metrics too).
# promtool is built from its Go module by hack/promtool.sh, helm by
# hack/install-helm.sh.
#
# Usage: hack/check-alerts.sh
# Env:   PROMTOOL=/path/to/promtool, HELM=/path/to/helm to skip the builds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHART="${ROOT}/charts/mcp-operator"
RULES="${CHART}/alerts/mcp-operator.rules.yaml"
TESTS_DIR="${CHART}/alerts/tests"
DASHBOARD="${CHART}/dashboards/mcp-operator.json"
README="${CHART}/README.md"
METRICS_RS="${ROOT}/src/telemetry/metrics.rs"

PROMTOOL="${PROMTOOL:-$("${ROOT}/hack/promtool.sh")}"
HELM="${HELM:-$("${ROOT}/hack/install-helm.sh")}"

if ! python3 -c 'import yaml' 2>/dev/null; then
  echo "check-alerts: python3 needs PyYAML (pip install pyyaml)" >&2
  exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT

failures=0
ok() { echo "  ok   $*"; }
bad() { echo "  FAIL $*"; failures=$((failures + 1)); }

run() { # <what> <cmd...>: ok/FAIL with the command's output indented on failure
  local what="$1"
  shift
  if "$@" >"${work}/run.out" 2>&1; then
    ok "${what}"
  else
    bad "${what}:"
    sed 's/^/       /' "${work}/run.out"
  fi
}

echo "promtool: ${PROMTOOL} ($("${PROMTOOL}" --version 2>&1 | head -n1))"
echo "helm: ${HELM} ($("${HELM}" version --short))"

echo "== promtool check rules"
run "promtool check rules --lint=all --lint-fatal ${RULES#"${ROOT}"/}" \
  "${PROMTOOL}" check rules --lint=all --lint-fatal "${RULES}"
sed -n 's/^ *SUCCESS: /       /p' "${work}/run.out"

echo "== promtool test rules"
tests=("${TESTS_DIR}"/*.test.yaml)
run "promtool test rules ${tests[*]#"${ROOT}"/}" "${PROMTOOL}" test rules "${tests[@]}"

echo "== every alert: labels, annotations, runbook section, firing and quiet test cases"
python3 - "${RULES}" "${README}" "${tests[@]}" >"${work}/meta.out" 2>&1 <<'PY' || true
import re
import sys

import yaml

rules_path, readme_path, test_paths = sys.argv[1], sys.argv[2], sys.argv[3:]
RUNBOOK = "https://github.com/mcp-operator/mcp-operator/blob/main/charts/mcp-operator/README.md#"


def anchor(heading):
    # GitHub's heading anchors: lower case, punctuation dropped, spaces to '-'.
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


with open(readme_path) as f:
    anchors = {anchor(m) for m in re.findall(r"^#+ (.+)$", f.read(), flags=re.M)}

fired, quiet = set(), set()
for path in test_paths:
    with open(path) as f:
        for test in yaml.safe_load(f)["tests"]:
            for case in test.get("alert_rule_test", []):
                (fired if case.get("exp_alerts") else quiet).add(case["alertname"])

with open(rules_path) as f:
    groups = yaml.safe_load(f)["groups"]
names = []
for group in groups:
    for rule in group["rules"]:
        if "alert" not in rule:
            continue
        name = rule["alert"]
        names.append(name)
        problems = []
        if not re.fullmatch(r"(?:[A-Z][a-z0-9]+)+", name):
            problems.append("name is not CamelCase")
        if rule.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
            problems.append("severity label missing or not critical/warning/info")
        ann = rule.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            if not ann.get(key):
                problems.append(f"no {key} annotation")
        url = ann.get("runbook_url", "")
        want = RUNBOOK + "alert-" + name.lower()
        if url != want:
            problems.append(f"runbook_url is {url!r}, expected {want!r}")
        elif url.split("#", 1)[1] not in anchors:
            problems.append(f"README.md has no section '#{url.split('#', 1)[1]}'")
        if name not in fired:
            problems.append("no test case where it fires")
        if name not in quiet:
            problems.append("no test case where it must not fire")
        print(("FAIL " if problems else "ok   ") + name + (": " + "; ".join(problems) if problems else ""))
if len(names) != len(set(names)):
    print("FAIL duplicate alert names")
PY
while IFS= read -r line; do
  case "${line}" in
    "ok   "*) ok "${line#ok   }" ;;
    "FAIL "*) bad "${line#FAIL }" ;;
    *) bad "${line}" ;;
  esac
done <"${work}/meta.out"

echo "== chart: PrometheusRule and dashboard ConfigMap"
render() { # <out> [helm args...]
  local out="$1"
  shift
  "${HELM}" template mcp-operator "${CHART}" --namespace mcp-operator-system "$@" >"${out}"
}
run "renders with prometheusRule.enabled=true, grafanaDashboard.enabled=true" \
  render "${work}/on.yaml" --set prometheusRule.enabled=true,grafanaDashboard.enabled=true
run "renders with labels and namespaces set" \
  render "${work}/custom.yaml" \
  --set prometheusRule.enabled=true,prometheusRule.namespace=monitoring \
  --set prometheusRule.labels.release=kube-prometheus-stack \
  --set grafanaDashboard.enabled=true,grafanaDashboard.namespace=grafana \
  --set grafanaDashboard.labels.team=platform \
  --set grafanaDashboard.annotations.grafana_folder=MCP
run "renders with defaults" render "${work}/off.yaml"
python3 - "${RULES}" "${DASHBOARD}" "${work}/on.yaml" "${work}/custom.yaml" "${work}/off.yaml" \
  >"${work}/chart.out" 2>&1 <<'PY' || true
import json
import sys

import yaml

rules_path, dashboard_path, on_path, custom_path, off_path = sys.argv[1:]
with open(rules_path) as f:
    groups = yaml.safe_load(f)["groups"]
with open(dashboard_path) as f:
    dashboard = json.load(f)


def docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def one(objs, kind):
    found = [o for o in objs if o.get("kind") == kind and o.get("apiVersion") in ("monitoring.coreos.com/v1", "v1")]
    return found[0] if len(found) == 1 else None


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)


on = docs(on_path)
rule = one(on, "PrometheusRule")
check(rule is not None, "one monitoring.coreos.com/v1 PrometheusRule when prometheusRule.enabled")
if rule:
    check(rule["spec"] == {"groups": groups}, "PrometheusRule spec.groups equal alerts/mcp-operator.rules.yaml")
    check(rule["metadata"]["namespace"] == "mcp-operator-system", "PrometheusRule in the release namespace by default")
cm = [o for o in on if o.get("kind") == "ConfigMap" and o["metadata"]["name"].endswith("-dashboard")]
check(len(cm) == 1, "one dashboard ConfigMap when grafanaDashboard.enabled")
if cm:
    cm = cm[0]
    check(cm["metadata"]["labels"].get("grafana_dashboard") == "1", 'ConfigMap labelled grafana_dashboard: "1"')
    data = cm.get("data", {})
    check(list(data) == ["mcp-operator.json"], "ConfigMap holds mcp-operator.json")
    check(json.loads(data.get("mcp-operator.json", "null")) == dashboard, "ConfigMap dashboard equals dashboards/mcp-operator.json")

custom = docs(custom_path)
rule = one(custom, "PrometheusRule")
check(rule is not None and rule["metadata"]["namespace"] == "monitoring", "prometheusRule.namespace applies")
check(rule is not None and rule["metadata"]["labels"].get("release") == "kube-prometheus-stack", "prometheusRule.labels apply")
cm = [o for o in custom if o.get("kind") == "ConfigMap"]
meta = cm[0]["metadata"] if len(cm) == 1 else {}
check(meta.get("namespace") == "grafana", "grafanaDashboard.namespace applies")
check(meta.get("labels", {}).get("team") == "platform" and meta["labels"].get("grafana_dashboard") == "1",
      "grafanaDashboard.labels apply beside grafana_dashboard")
check(meta.get("annotations") == {"grafana_folder": "MCP"}, "grafanaDashboard.annotations apply")

off = docs(off_path)
check(not any(o.get("kind") in ("PrometheusRule", "ConfigMap") for o in off),
      "no PrometheusRule and no dashboard ConfigMap by default")
PY
while IFS= read -r line; do
  case "${line}" in
    "ok   "*) ok "${line#ok   }" ;;
    "FAIL "*) bad "${line#FAIL }" ;;
    *) bad "${line}" ;;
  esac
done <"${work}/chart.out"

echo "== dashboard JSON"
python3 - "${DASHBOARD}" "${work}/dashboard-queries.json" >"${work}/dash.out" 2>&1 <<'PY' || true
import json
import sys

path = sys.argv[1]
with open(path) as f:
    text = f.read()
d = json.loads(text)


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)


check(text == json.dumps(d, indent=2) + "\n", "tidy: 2-space indent, one trailing newline (reformat: python3 -m json.tool --indent 2)")
check(d.get("uid") == "mcp-operator" and isinstance(d.get("schemaVersion"), int), f"uid mcp-operator, schemaVersion {d.get('schemaVersion')}")
panels = []


def walk(ps):
    for p in ps:
        panels.append(p)
        walk(p.get("panels", []))


walk(d["panels"])
ids = [p["id"] for p in panels]
check(len(ids) == len(set(ids)), f"{len(panels)} panels, unique ids")
ds = {"type": "prometheus", "uid": "${datasource}"}
bad = [p["title"] for p in panels if p["type"] != "row" and (p.get("datasource") != ds or any(t.get("datasource") != ds for t in p.get("targets", [])))]
check(not bad, "every panel and query uses the ${datasource} variable" + (f" (not: {bad})" if bad else ""))
variables = {v["name"]: v for v in d["templating"]["list"]}
check(variables.get("datasource", {}).get("type") == "datasource" and variables["datasource"].get("query") == "prometheus",
      "datasource variable of type prometheus")
for name in ("namespace", "mcpserver"):
    v = variables.get(name, {})
    check(v.get("type") == "query" and "label_values(" in v.get("definition", ""), f"{name} variable from label_values")
empty = [p["title"] for p in panels if p["type"] != "row" and not p.get("targets")]
check(not empty, "every panel has a query" + (f" (not: {empty})" if empty else ""))

# Every panel query as a recording rule, Grafana's variables substituted, for
# `promtool check rules` to parse.
subst = {"$__rate_interval": "2m", "$__range": "6h", "$__interval": "30s", "$job": ".*", "$namespace": ".*", "$mcpserver": ".*"}
rules = []
for p in panels:
    for t in p.get("targets", []):
        expr = t["expr"]
        for var in sorted(subst, key=len, reverse=True):
            expr = expr.replace(var, subst[var])
        rules.append({"record": f"dashboard:panel_{p['id']}_{t['refId']}", "expr": expr})
with open(sys.argv[2], "w") as f:
    json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, f, indent=2)
PY
while IFS= read -r line; do
  case "${line}" in
    "ok   "*) ok "${line#ok   }" ;;
    "FAIL "*) bad "${line#FAIL }" ;;
    *) bad "${line}" ;;
  esac
done <"${work}/dash.out"
run "every dashboard query is valid PromQL (promtool check rules, variables substituted)" \
  "${PROMTOOL}" check rules --lint=none "${work}/dashboard-queries.json"

echo "== metrics used vs metrics the operator registers (src/telemetry/metrics.rs)"
"${ROOT}/hack/metric-names.sh" >"${work}/used.txt"
python3 - "${METRICS_RS}" "${work}/used.txt" >"${work}/metrics.out" 2>&1 <<'PY' || true
import re
import sys

metrics_rs, used_path = sys.argv[1], sys.argv[2]
with open(metrics_rs) as f:
    src = f.read()
prefix = re.search(r'Registry::with_prefix\(\s*"([a-z0-9_]+)"\s*\)', src).group(1)
# `pub field: Family<Labels, Counter>` / `pub field: Gauge` ...
field_kind = {
    name: re.findall(r"(Counter|Gauge|Histogram)", ty)[-1].lower()
    for name, ty in re.findall(r"pub (\w+): ([\w<>, ]+),", src)
    if re.search(r"(Counter|Gauge|Histogram)", ty)
}
# registry.register("name", "help", variable.clone()); the variable is the field's name.
families = {}
for name, var in re.findall(r'\.register\(\s*"([a-z0-9_]+)",\s*"(?:[^"\\]|\\.)*",\s*(\w+)\.clone\(\)', src):
    families[f"{prefix}_{name}"] = field_kind.get(var, "unknown")
SUFFIXES = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_sum", "_count"]}
samples = {fam + suffix: (fam, kind) for fam, kind in families.items() for suffix in SUFFIXES.get(kind, [""])}

with open(used_path) as f:
    used = [line.strip() for line in f if line.strip()]
used_families = set()
for name in used:
    if name in samples:
        fam, kind = samples[name]
        used_families.add(fam)
        print(f"ok   {name} ({kind} {fam})")
    else:
        near = sorted((fam for fam in families if name.startswith(fam)), key=len, reverse=True)
        hint = f"; {near[0]} is a {families[near[0]]}, exposed as " + ", ".join(
            near[0] + s for s in SUFFIXES.get(families[near[0]], [""])) if near else ""
        print(f"FAIL {name}: not a series the operator exposes (src/telemetry/metrics.rs){hint}")
for fam in sorted(set(families) - used_families):
    print(f"note {fam}: exported ({families[fam]}), used by neither the alerts nor the dashboard")
PY
while IFS= read -r line; do
  case "${line}" in
    "ok   "*) ok "${line#ok   }" ;;
    "note "*) echo "  ${line}" ;;
    "FAIL "*) bad "${line#FAIL }" ;;
    *) bad "${line}" ;;
  esac
done <"${work}/metrics.out"

if ((failures > 0)); then
  echo "check-alerts: ${failures} check(s) failed" >&2
  exit 1
fi
echo "check-alerts: all checks passed"
