#!/usr/bin/env bash
# Prints, one per line, sorted and unique, every operator metric that the alert
# rules (charts/mcp-operator/alerts/mcp-operator.rules.yaml: each rule's expr)
# and the Grafana dashboard (charts/mcp-operator/dashboards/mcp-operator.json:
# each panel target's expr and each template variable's query) reference, so a
# test can check them against the operator's live /metrics.
#
# Only the operator's own series (prefix mcp_operator_) are printed: up, ALERTS
# and other series of Prometheus or other exporters are left out.
#
# Usage: hack/metric-names.sh          exact series names, as queried
#                                      (mcp_operator_reconciles_total,
#                                      mcp_operator_reconcile_duration_seconds_bucket)
#        hack/metric-names.sh --base   metric family names, as in the
#                                      exposition's `# TYPE` lines: _total
#                                      (counters) and _bucket/_sum/_count
#                                      (histograms) stripped
#                                      (mcp_operator_reconciles,
#                                      mcp_operator_reconcile_duration_seconds)
#
# A family is listed in `# TYPE` as soon as the operator registers it, while a
# labelled family has samples only once a child was created (no
# mcp_operator_reconcile_errors_total sample before the first error): check
# --base names against `# TYPE` lines, exact names against samples.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RULES="${ROOT}/charts/mcp-operator/alerts/mcp-operator.rules.yaml"
DASHBOARD="${ROOT}/charts/mcp-operator/dashboards/mcp-operator.json"

base=0
case "${1:-}" in
  "") ;;
  --base) base=1 ;;
  -h | --help)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "metric-names: unknown argument '$1' (use --base or nothing)" >&2
    exit 2
    ;;
esac

python3 - "${RULES}" "${DASHBOARD}" "${base}" <<'PY'
import json
import re
import sys

try:
    import yaml
except ImportError:
    sys.exit("metric-names: python3 needs PyYAML (pip install pyyaml)")

rules_path, dashboard_path, base = sys.argv[1], sys.argv[2], sys.argv[3] == "1"

exprs = []
with open(rules_path) as f:
    rules = yaml.safe_load(f)
for group in rules["groups"]:
    for rule in group["rules"]:
        exprs.append(rule["expr"])


def panel_exprs(panels):
    for panel in panels:
        for target in panel.get("targets", []):
            if "expr" in target:
                yield target["expr"]
        # Collapsed rows hold their panels.
        yield from panel_exprs(panel.get("panels", []))


with open(dashboard_path) as f:
    dashboard = json.load(f)
exprs.extend(panel_exprs(dashboard.get("panels", [])))
for var in dashboard.get("templating", {}).get("list", []):
    if var.get("type") != "query":
        continue
    query = var.get("query")
    exprs.append(query.get("query", "") if isinstance(query, dict) else query or "")
    exprs.append(var.get("definition", ""))

names = set()
for expr in exprs:
    # Label values ("...") could hold anything; drop them before matching.
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    for name in re.findall(r"(?<![A-Za-z0-9_:])mcp_operator_[A-Za-z0-9_:]*", expr):
        if base:
            name = re.sub(r"_(total|bucket|sum|count)$", "", name)
        names.add(name)

for name in sorted(names):
    print(name)
PY
