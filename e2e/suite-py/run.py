#!/usr/bin/env python3
"""mcp-operator e2e suite: runs against the cluster in KUBECONFIG.

  python3 e2e/suite/run.py [--scenarios S1,S2,...] [--out target/e2e]

Setup is the real user path: the CRDs and the operator from the Helm chart,
then Postgres (StatefulSet on a PV) and a 3-replica McpServer of the workload
server. Every scenario disrupts something while `mcp-loadclient` writes through
the MCP Service, and checks the client's numbers and the operator's status and
Events. Writes report.json, report.md and timeline.svg; exits 1 if any check
failed, 2 if the setup failed."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report  # noqa: E402
import scenarios as S  # noqa: E402
from kube import Kube, KubeError, find_tool, log  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts/mcp-operator"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default=",".join(S.SCENARIOS),
                    help="comma-separated scenario ids (default: all: %(default)s)")
    ap.add_argument("--out", default=str(REPO / "target/e2e"), help="report directory")
    ap.add_argument("--repeat", type=int, default=10, help="S3: number of kills (default 10)")
    ap.add_argument("--warmup-s", type=float, default=4, help="writes before each disruption")
    ap.add_argument("--window-s", type=float, default=20, help="S1-S3: seconds measured after each kill")
    ap.add_argument("--outage-s", type=float, default=20, help="S4/S6: seconds Postgres stays down")
    ap.add_argument("--heal-window-s", type=float, default=70, help="S4/S6: seconds measured after Postgres is back")
    ap.add_argument("--no-s6-second-kill", dest="s6_second_kill", action="store_false",
                    help="S6: do not kill the operator a second time right after its first eviction")
    ap.add_argument("--drain-window-s", type=float, default=60, help="S5: seconds measured for the drain")
    ap.add_argument("--rollout-window-s", type=float, default=100, help="S8: seconds measured for the rollout")
    ap.add_argument("--rollback-timeout-s", type=float, default=90, help="S8: wait for the rollback at most")
    ap.add_argument("--rate", type=float, default=20, help="client calls per second")
    ap.add_argument("--concurrency", type=int, default=4, help="client workers (MCP sessions)")
    ap.add_argument("--session-affinity", action="store_true",
                    help="workaround: set sessionAffinity ClientIP on the MCP Services (MCP sessions are per pod)")
    ap.add_argument("--skip-install", action="store_true", help="do not run helm (operator already installed)")
    ap.add_argument("--restart-operator", action="store_true",
                    help="roll the operator Deployment after install (images re-imported under the same tag)")
    ap.add_argument("--keep-workloads", action="store_true",
                    help="reuse an existing Ready McpServer instead of recreating it")
    ap.add_argument("--helm-set", action="append", default=[], help="extra helm --set (repeatable)")
    ap.add_argument("-v", "--verbose", action="store_true", help="log every kubectl command")
    a = ap.parse_args(argv)
    a.scenarios = [s.strip().upper() for s in a.scenarios.split(",") if s.strip()]
    unknown = [s for s in a.scenarios if s not in S.SCENARIOS]
    if unknown:
        ap.error(f"unknown scenarios {unknown}; known: {list(S.SCENARIOS)}")
    if not 1 <= a.repeat <= 50:
        ap.error("--repeat must be within 1..50")
    return a


def cluster_meta(kube: Kube) -> dict:
    meta = {}
    try:
        meta["server"] = kube.run(["config", "view", "--minify", "-o",
                                   "jsonpath={.clusters[0].cluster.server}"]).stdout.strip()
        meta["k8s_version"] = json.loads(kube.run(["get", "--raw", "/version"]).stdout).get("gitVersion")
    except Exception as e:  # metadata is best effort
        meta["error"] = str(e)
    meta["kubeconfig"] = os.environ.get("KUBECONFIG", "~/.kube/config")
    return meta


def setup(kube: Kube, a) -> None:
    kube.run(["get", "--raw", "/readyz"], timeout=15)
    if not a.skip_install:
        log("installing the CRDs and the operator with Helm")
        args = ["upgrade", "--install", S.RELEASE, str(CHART), "-n", S.OP_NS, "--create-namespace",
                "--set", "image.pullPolicy=IfNotPresent", "--wait", "--timeout", "5m"]
        for s in a.helm_set:
            args += ["--set", s]
        kube.helm_run(args, timeout=360)
        # Helm installs crds/ only on first install; keep them current on upgrades.
        kube.apply(CHART / "crds", server_side=True)
    if a.restart_operator:
        log("restarting the operator (new image under the same tag)")
        kube.run(["rollout", "restart", "deployment", "-n", S.OP_NS, "-l", f"app.kubernetes.io/instance={S.RELEASE}"])
        kube.run(["rollout", "status", "deployment", "-n", S.OP_NS, "-l",
                  f"app.kubernetes.io/instance={S.RELEASE}", "--timeout=180s"], timeout=200)
    kube.wait_for("operator pod ready", lambda: any(
        p["ready"] for p in S.list_pods(kube, S.OP_NS, S.OP_SEL).values()), 180, 1)

    log("deploying Postgres")
    kube.apply(S.MANIFESTS / "namespaces.yaml")
    kube.apply(S.MANIFESTS / "postgres.yaml")
    kube.apply(S.MANIFESTS / "db-secret.yaml")
    kube.run(["rollout", "status", "statefulset/postgres", "-n", S.DB_NS, "--timeout=300s"], timeout=320)


def main(argv=None) -> int:
    a = parse_args(argv)
    out = Path(a.out)
    if not out.is_absolute():
        out = Path.cwd() / out
    out.mkdir(parents=True, exist_ok=True)
    kube = Kube(find_tool("kubectl", "KUBECTL"), find_tool("helm", "HELM"), a.verbose)
    started = time.time()
    meta = cluster_meta(kube)
    meta["session_affinity_workaround"] = a.session_affinity
    meta["started"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
    doc = {"meta": meta, "passed": False, "scenarios": []}
    try:
        setup(kube, a)
        ctx = S.Ctx(kube, out, a)
        ctx.wait_pg_ready()
        # leftovers of an interrupted run
        for name in (S.FRAGILE, "bad-missing-secret"):
            if ctx.mcps(name) is not None:
                ctx.delete_mcps(name)
        if a.keep_workloads and ctx.mcps(S.NOTES) is not None:
            kube.apply(S.MANIFESTS / "mcpserver.yaml")
            ctx.wait_mcps_ready(S.NOTES)
        else:
            ctx.fresh_mcps(S.NOTES, S.MANIFESTS / "mcpserver.yaml")
        log(f"McpServer {S.NOTES} Ready; MCP endpoint {ctx.endpoint(S.NOTES)} "
            f"(via {ctx.endpoints[S.NOTES].mode}); load client {ctx.loadclient}")
    except (KubeError, TimeoutError, RuntimeError) as e:
        log(f"setup failed: {e}")
        doc["setup_error"] = str(e)
        meta["duration_s"] = time.time() - started
        paths = report.write_all(out, doc)
        print(f"setup failed: {e}\nreport: {paths['json']}", file=sys.stderr)
        return 2

    try:
        for sid in a.scenarios:
            name = S.SCENARIOS[sid][0]
            log(f"=== {sid}: {name}")
            t = time.time()
            runs, notes = S.run_scenario(ctx, sid)
            sc = report.scenario_summary(sid, name, runs, notes)
            sc["duration_s"] = round(time.time() - t, 1)
            doc["scenarios"].append(sc)
            log(f"=== {sid}: {'PASS' if sc['passed'] else 'FAIL'} in {sc['duration_s']:.0f}s")
            for r in runs:
                for c in r.get("checks", []):
                    if not c["ok"]:
                        log(f"    failed: {c['name']}: {c['detail'][:300]}")
            meta["duration_s"] = time.time() - started
            doc["passed"] = all(s["passed"] for s in doc["scenarios"])
            report.write_all(out, doc)  # keep partial results
            S.restore_baseline(ctx)
    finally:
        ctx.close()
    meta["duration_s"] = time.time() - started
    doc["passed"] = bool(doc["scenarios"]) and all(s["passed"] for s in doc["scenarios"])
    paths = report.write_all(out, doc)
    print(report.markdown(doc))
    print(f"report: {paths['json']}\n        {paths['md']}\n        {paths['svg']}")
    return 0 if doc["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
