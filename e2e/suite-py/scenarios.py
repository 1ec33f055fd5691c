"""The scenarios S1..S8 and the measured run they share."""

from __future__ import annotations

import json
import threading
import time
import traceback
from pathlib import Path

import measure as M
from client import Endpoint, LoadClient, find_loadclient
from kube import Kube, KubeError, Watcher, log, mcps_summary, now_ms, pod_summary

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "e2e/manifests"
NS = "mcp-e2e"
DB_NS = "mcp-e2e-db"
OP_NS = "mcp-system"
RELEASE = "mcp-operator"
OP_SEL = f"app.kubernetes.io/name=mcp-operator,app.kubernetes.io/instance={RELEASE}"
PG_SEL = "app.kubernetes.io/name=postgres"
PG_POD = "postgres-0"
NOTES = "notes"
FRAGILE = "notes-fragile"
DESIRED = 3
ACTION_EVENT_REASONS = ("PodEvicted", "RolloutRolledBack", "RolledBack")


def server_sel(name: str) -> str:
    return f"mcp.operator.dev/server={name}"


def check(name: str, ok, detail="") -> dict:
    return {"name": name, "ok": bool(ok), "detail": str(detail)}


def list_pods(kube: Kube, ns: str, sel: str) -> dict:
    return {p["metadata"]["name"]: pod_summary(p) for p in kube.items("pods", "-n", ns, "-l", sel)}


class Ctx:
    def __init__(self, kube: Kube, out: Path, opts):
        self.kube = kube
        self.out = out
        self.opts = opts
        self.loadclient = find_loadclient()
        self.endpoints: dict[str, Endpoint] = {}

    # -- observation helpers --------------------------------------------------
    def pods(self, ns: str, sel: str) -> dict:
        return list_pods(self.kube, ns, sel)

    def operator_pods(self) -> dict:
        return self.pods(OP_NS, OP_SEL)

    def mcps(self, name: str) -> dict | None:
        return self.kube.get("mcps", name, "-n", NS)

    def events_for(self, name: str, since_ms: int = 0) -> list[dict]:
        """events.k8s.io Events regarding McpServer `name`, at or after since_ms."""
        out = []
        for ev in self.kube.items("events.events.k8s.io", "-n", NS):
            reg = ev.get("regarding") or {}
            if reg.get("kind") != "McpServer" or reg.get("name") != name:
                continue
            t = M.event_time_ms(ev)
            if t is not None and t >= since_ms:
                ev["_t_ms"] = t
                ev["_t_first_ms"] = M.parse_time_ms(ev.get("eventTime")) or t
                ev["_count"] = int((ev.get("series") or {}).get("count") or 1)
                out.append(ev)
        return sorted(out, key=lambda e: e["_t_ms"])

    def actions_since(self, obj: dict | None, since_ms: int) -> list[dict]:
        rem = ((obj or {}).get("status") or {}).get("remediation") or {}
        acts = []
        for a in rem.get("recentActions", []) or []:
            t = M.parse_time_ms(a.get("time"))
            # metav1.Time has second precision: allow the truncated second.
            if t is not None and t >= since_ms - 1000:
                acts.append(a)
        return acts

    def endpoint(self, name: str) -> str:
        ep = self.endpoints.get(name)
        if ep is None or ep.mode == "port-forward":
            if ep:
                ep.close()
            if self.opts.session_affinity:
                # workaround, off by default: pin each client to one pod (MCP sessions live in one pod)
                p = self.kube.run(["patch", "service", name, "-n", NS, "-p",
                                   '{"spec":{"sessionAffinity":"ClientIP"}}'])
                if "no change" not in p.stdout:
                    time.sleep(3)  # let kube-proxy program the affinity rules
            ep = Endpoint(self.kube, NS, name)
            ep.open()
            self.endpoints[name] = ep
        return ep.url

    def close(self):
        for ep in self.endpoints.values():
            ep.close()

    # -- actions ----------------------------------------------------------------
    def wait_pg_ready(self, timeout=180):
        def ok():
            p = self.kube.get("pod", PG_POD, "-n", DB_NS)
            return p and pod_summary(p)["ready"] and not pod_summary(p)["deleting"]
        self.kube.wait_for("Postgres ready", ok, timeout, 0.5)

    def scale_pg(self, n: int):
        self.kube.run(["scale", "statefulset/postgres", "-n", DB_NS, f"--replicas={n}"])

    def force_delete_pg(self):
        self.kube.run(["delete", "pod", PG_POD, "-n", DB_NS, "--grace-period=0", "--force",
                       "--wait=false"])

    def kill9_pg(self):
        self.kube.run(["exec", "-n", DB_NS, PG_POD, "-c", "postgres", "--", "pkill", "-KILL",
                       "-o", "-x", "postgres"], timeout=20)

    def wait_mcps_ready(self, name: str, timeout=180):
        def ok():
            o = self.mcps(name)
            st = (o or {}).get("status") or {}
            return (st.get("phase") == "Ready" and st.get("readyReplicas", 0) >= DESIRED
                    and st.get("observedGeneration") == o["metadata"].get("generation"))
        self.kube.wait_for(f"McpServer {name} phase Ready", ok, timeout, 1.0)
        self.kube.wait_for(f"{DESIRED} ready pods of {name}",
                           lambda: M.pods_ready(self.pods(NS, server_sel(name)), DESIRED), 60, 0.5)

    def delete_mcps(self, name: str, timeout=90):
        ep = self.endpoints.pop(name, None)  # a re-created Service gets a new ClusterIP
        if ep:
            ep.close()
        self.kube.run(["delete", "mcps", name, "-n", NS, "--ignore-not-found", "--wait=false"])
        self.kube.wait_for(f"McpServer {name} gone", lambda: self.mcps(name) is None, timeout, 1)
        self.kube.wait_for(f"pods of {name} gone",
                           lambda: not self.pods(NS, server_sel(name)), timeout, 1)

    def fresh_mcps(self, name: str, manifest: Path):
        if self.mcps(name) is not None:
            log(f"deleting McpServer {name} for a fresh start")
            self.delete_mcps(name)
        self.kube.apply(manifest)
        log(f"waiting for McpServer {name} to be Ready")
        self.wait_mcps_ready(name)

    def diag(self, sid: str, names=(NOTES, FRAGILE)):
        d = self.out / "diag" / sid
        d.mkdir(parents=True, exist_ok=True)
        for fname, args in (
            ("mcps.yaml", ["get", "mcps", "-n", NS, "-o", "yaml"]),
            ("pods.txt", ["get", "pods", "-A", "-o", "wide"]),
            ("events.txt", ["get", "events", "-n", NS, "--sort-by=.lastTimestamp"]),
            ("operator.log", ["logs", "-n", OP_NS, "-l", OP_SEL, "--tail=400", "--all-containers"]),
            ("operator-previous.log", ["logs", "-n", OP_NS, "-l", OP_SEL, "--tail=200", "--previous"]),
        ):
            try:
                p = self.kube.run(args, check=False, timeout=30)
                (d / fname).write_text(p.stdout + p.stderr)
            except Exception as e:  # diagnostics never fail the run
                (d / fname).write_text(str(e))


# -- the measured run ------------------------------------------------------------
def measured_run(ctx: Ctx, tag: str, target: str, disrupt, *, warmup_s: float, window_s: float,
                 pg_down: bool = True) -> dict:
    """Write through `target` with the load client while `disrupt(t0_ms)` runs, and
    measure everything from t0 (the disruption instant)."""
    sel = server_sel(target)
    before_mcp = ctx.pods(NS, sel)
    before_op = ctx.operator_pods()
    obj_before = ctx.mcps(target)
    pgw = Watcher(ctx.kube, "pods", DB_NS, PG_SEL).start()
    mcpw = Watcher(ctx.kube, "pods", NS, sel).start()
    objw = Watcher(ctx.kube, "mcps", NS, field_selector=f"metadata.name={target}",
                   summarize=mcps_summary).start()
    watchers = (pgw, mcpw, objw)
    client = None
    info: dict = {}
    try:
        for w, n in ((pgw, 1), (mcpw, DESIRED), (objw, 1)):
            if not w.wait_synced(n, 20):
                log(f"warning: watch of {w.resource} in {w.namespace} saw {len(w.state)} objects")
        url = ctx.endpoint(target)
        client = LoadClient(ctx.loadclient, url, ctx.out / "runs", tag, warmup_s + window_s,
                            rate=ctx.opts.rate, concurrency=ctx.opts.concurrency).start()
        time.sleep(warmup_s)
        t0 = now_ms()
        client.mark(t0)
        log(f"{tag}: disruption at t0")
        info = disrupt(t0) or {}
        rep = client.wait()
        t_end = now_ms()
    finally:
        if client:
            client.kill()
        for w in watchers:
            w.stop()
    after_mcp = ctx.pods(NS, sel)
    after_op = ctx.operator_pods()
    obj_after = ctx.mcps(target)

    pg_hist, mcp_hist = pgw.snapshot(), mcpw.snapshot()
    pg_ready_t = M.first_ready_after_down(pg_hist, t0, 1) if pg_down else None
    ready_from = pg_ready_t if pg_down else info.get("disruption_end_ms", t0)
    mcp_ready_t = (M.first_stable_ready(mcp_hist, ready_from, DESIRED, t_end)
                   if ready_from is not None else None)
    mcp_restarts, mcp_replaced = M.restart_delta(before_mcp, after_mcp)
    op_restarts, op_replaced = M.restart_delta(before_op, after_op)
    actions = ctx.actions_since(obj_after, t0)
    action_events = [e for e in ctx.events_for(target, t0 - 1000) if e.get("reason") in ACTION_EVENT_REASONS]
    n_action_events = sum(e["_count"] for e in action_events)
    fs = M.first_success_after_outage(rep.get("outages") or [], t0, rep.get("first_success_after_s"))
    run = {
        "tag": tag,
        "target": target,
        "kill_unix_ms": t0,
        "pg_ready_s": M.secs(pg_ready_t, t0),
        "mcp_ready_s": M.secs(mcp_ready_t, t0),
        "first_success_s": round(fs, 3) if fs is not None else None,
        "errors": rep.get("errors_total"),
        "longest_outage_s": round(rep["longest_outage_s"], 3) if rep.get("longest_outage_s") is not None else None,
        "acked_writes": rep.get("acknowledged"),
        "lost_acked_writes": rep.get("lost_acked_writes"),
        "unverified_acked_writes": rep.get("unverified_acked_writes"),
        "mcp_pod_restarts": mcp_restarts,
        "mcp_pods_replaced": mcp_replaced,
        "remediation_actions": max(len(actions), n_action_events),
        "operator_restarts": op_restarts,
        "operator_pods_replaced": op_replaced,
        "min_ready_replicas": M.min_ready(mcp_hist, t0, t_end),
        "calls": rep.get("calls"),
        "error_kinds": rep.get("errors"),
        "error_samples": rep.get("error_samples"),
        "client_exit_code": rep.get("exit_code"),
        "client_url_mode": ctx.endpoints[target].mode if target in ctx.endpoints else None,
        "actions": actions,
        "action_events": [{"reason": e.get("reason"), "note": e.get("note"), "t_ms": e["_t_ms"],
                           "count": e["_count"]}
                          for e in action_events],
        "bucket_ms": rep.get("timeline_bucket_ms", 1000),
        "timeline": rep.get("timeline"),
        "extra_marks": info.get("marks", []),
        "info": {k: v for k, v in info.items() if k != "marks"},
        "client_report": str(client.report_path) if client else None,
        "_hist": {"pg": pg_hist, "mcp": mcp_hist, "obj": objw.snapshot()},
        "_before": {"mcp": before_mcp, "op": before_op, "obj": obj_before},
        "_after": {"mcp": after_mcp, "op": after_op, "obj": obj_after},
        "_t_end": t_end,
    }
    if rep.get("client_failed"):
        run["client_stderr_tail"] = rep.get("stderr_tail")
    pre = [b for b in (rep.get("timeline") or []) if b["t_unix_ms"] + run["bucket_ms"] <= t0]
    ok_before = sum(b["ok"] for b in pre)
    err_before = sum(b["err"] for b in pre)
    run["errors_before_disruption"] = err_before
    run["client_first_success_after_mark_s"] = rep.get("first_success_after_s")
    run["checks"] = [
        check("load client ran and reported", not rep.get("client_failed"), rep.get("stderr_tail", "")[-300:]),
        check("calls succeeded before the disruption (baseline)", ok_before > 0, f"{ok_before} ok calls"),
        check("no call failed before the disruption (steady state through the Service)", err_before == 0,
              f"{err_before} failed vs {ok_before} ok before t0; kinds={rep.get('errors')}"),
        check("no acknowledged write lost", rep.get("lost_acked_writes") == 0,
              f"lost={rep.get('lost_acked_writes')} keys={rep.get('lost_keys', [])[:5]}"),
        check("every acknowledged write read back", rep.get("unverified_acked_writes") == 0,
              f"unverified={rep.get('unverified_acked_writes')}"),
        check("operator did not crash", op_restarts == 0, f"restarts={op_restarts}"),
    ]
    return run


def kill_checks(run: dict, expect_no_actions: bool = True) -> list[dict]:
    c = [
        check("Postgres ready again", run["pg_ready_s"] is not None, run["pg_ready_s"]),
        check(f"all {DESIRED} MCP replicas ready again", run["mcp_ready_s"] is not None, run["mcp_ready_s"]),
        check("a call sent after the kill succeeded", run["first_success_s"] is not None, run["first_success_s"]),
        check("no MCP container restarts (liveness ignores the database)", run["mcp_pod_restarts"] == 0,
              run["mcp_pod_restarts"]),
    ]
    if expect_no_actions:
        c.append(check("operator took no action (the pools reconnected by themselves)",
                       run["remediation_actions"] == 0 and run["mcp_pods_replaced"] == 0,
                       f"actions={run['remediation_actions']} replaced={run['mcp_pods_replaced']}"))
    return c


def finish(run: dict) -> dict:
    run["passed"] = all(c["ok"] for c in run["checks"])
    for k in [k for k in run if k.startswith("_")]:
        run.pop(k)
    return run


# -- S1, S2, S3 -------------------------------------------------------------------
def pg_kill_run(ctx: Ctx, tag: str, how: str) -> dict:
    def disrupt(t0):
        if how == "delete":
            ctx.force_delete_pg()
        else:
            ctx.kill9_pg()
        return {}
    ctx.wait_pg_ready()
    run = measured_run(ctx, tag, NOTES, disrupt, warmup_s=ctx.opts.warmup_s, window_s=ctx.opts.window_s)
    run["checks"] += kill_checks(run)
    if how == "kill9":
        # same pod: the Postgres container restarted inside it
        pg_hist = run["_hist"]["pg"]
        uids = {s.get(PG_POD, {}).get("uid") for _, s in pg_hist if PG_POD in s}
        restarts = [s[PG_POD]["restarts"] for _, s in pg_hist if PG_POD in s]
        run["checks"].append(check("same Postgres pod, container restarted",
                                   len(uids) == 1 and restarts and max(restarts) > min(restarts),
                                   f"uids={len(uids)} restarts {min(restarts or [0])}->{max(restarts or [0])}"))
    return finish(run)


def s1(ctx):
    return [pg_kill_run(ctx, "S1", "delete")], []


def s2(ctx):
    return [pg_kill_run(ctx, "S2", "kill9")], []


def s3(ctx):
    runs = []
    for i in range(1, ctx.opts.repeat + 1):
        log(f"S3: kill {i}/{ctx.opts.repeat}")
        runs.append(pg_kill_run(ctx, f"S3-{i:02d}", "delete"))
    return runs, []


# -- S4, S6: the fragile workload -----------------------------------------------------
def outage_run(ctx: Ctx, tag: str, kill_operator: bool) -> dict:
    ctx.fresh_mcps(FRAGILE, MANIFESTS / "mcpserver-fragile.yaml")
    obj = ctx.mcps(FRAGILE)
    spec_rem = obj["spec"].get("remediation", {})
    max_actions = spec_rem.get("maxActions", 5)
    hold_s = ctx.opts.outage_s
    ctx.wait_pg_ready()

    def disrupt(t0):
        marks = []
        ctx.scale_pg(0)
        ctx.force_delete_pg()
        info = {}
        if kill_operator:
            # wait (bounded) until the operator has recorded the outage, then kill it
            try:
                ctx.kube.wait_for("DependencyAvailable=False", lambda: any(
                    c.get("type") == "DependencyAvailable" and c.get("status") == "False"
                    for c in ((ctx.mcps(FRAGILE) or {}).get("status") or {}).get("conditions", [])),
                    min(15, hold_s), 0.5)
            except TimeoutError as e:
                info["dependency_wait"] = str(e)
            ops = list(ctx.operator_pods())
            t_k = now_ms()
            for p in ops:
                ctx.kube.run(["delete", "pod", p, "-n", OP_NS, "--grace-period=0", "--force", "--wait=false"])
            marks.append(("operator killed", t_k, "other"))
            info["operator_killed_ms"] = t_k
            info["operator_pods_killed"] = ops
        left = hold_s - (now_ms() - t0) / 1000
        if left > 0:
            time.sleep(left)
        t_up = now_ms()
        ctx.scale_pg(1)
        marks.append(("pg scaled up", t_up, "other"))
        info.update({"restore_ms": t_up, "marks": marks})
        if kill_operator and ctx.opts.s6_second_kill:
            # kill it again right after its first eviction: the budget and the
            # "already evicted" memory must survive in status
            th = threading.Thread(target=kill_after_first_eviction, args=(ctx, t_up, info), daemon=True)
            th.start()
            info["_thread"] = th
        return info

    run = measured_run(ctx, tag, FRAGILE, disrupt, warmup_s=ctx.opts.warmup_s,
                       window_s=hold_s + ctx.opts.heal_window_s)
    info = run["info"]
    th = info.pop("_thread", None)
    if th:
        th.join(timeout=5)
    t0, t_up = run["kill_unix_ms"], info.get("restore_ms")
    before = run["_before"]["mcp"]
    mcp_hist, obj_hist = run["_hist"]["mcp"], run["_hist"]["obj"]
    # the hold: no pod touched while Postgres was down
    during = [s for t, s in mcp_hist if t0 <= t <= (t_up or t0)]
    touched = []
    uids0 = {p["uid"]: p["restarts"] for p in before.values()}
    for s in during:
        for name, p in s.items():
            if p["uid"] not in uids0:
                touched.append(f"new pod {name}")
            elif p["restarts"] != uids0[p["uid"]] or p["deleting"]:
                touched.append(f"{name} restarted/deleted")
        if len([p for p in s.values() if p["uid"] in uids0]) < len(uids0):
            touched.append("a pod disappeared")
    obj_after = run["_after"]["obj"] or {}
    events = ctx.events_for(FRAGILE, t0 - 1000)
    evictions = [e for e in events if e.get("reason") == "PodEvicted"]
    early = [e for e in evictions if t_up is None or e["_t_first_ms"] < t_up]
    n_evict_events = sum(e["_count"] for e in evictions)
    evict_actions = [a for a in run["actions"] if a.get("kind") == "Evict"]
    saw_dep_down = any(s.get(FRAGILE, {}).get("conditions", {}).get("DependencyAvailable", (None,))[0] == "False"
                       for t, s in obj_hist if t >= t0)
    saw_phase = any(s.get(FRAGILE, {}).get("phase") == "DependencyUnavailable" for t, s in obj_hist if t >= t0)
    st = obj_after.get("status") or {}
    last = (st.get("remediation") or {}).get("lastAction") or {}
    inc = st.get("lastIncident") or {}
    names = [a.get("pod") for a in evict_actions]
    n_actions = max(len(run["actions"]), n_evict_events)
    run["remediation_actions"] = n_actions
    run["checks"] += [
        check("operator reported DependencyAvailable=False during the outage", saw_dep_down),
        check("phase DependencyUnavailable during the outage", saw_phase),
        check("no MCP pod touched while Postgres was down (uids, restarts)", not touched,
              "; ".join(sorted(set(touched))[:5])),
        check("no eviction Event timestamped during the outage", not early,
              [e.get("note") for e in early][:3]),
        check("Postgres ready again", run["pg_ready_s"] is not None, run["pg_ready_s"]),
        check("operator evicted the stuck pods (Evict actions, PodEvicted Events)",
              evict_actions and evictions and last.get("kind") == "Evict",
              f"actions={len(evict_actions)} PodEvicted events={n_evict_events} (series) lastAction={last.get('kind')}"),
        check(f"all {DESIRED} replicas ready again (healed)", run["mcp_ready_s"] is not None, run["mcp_ready_s"]),
        check("a call sent after the kill succeeded", run["first_success_s"] is not None, run["first_success_s"]),
        check(f"actions within the budget (<= maxActions={max_actions})", n_actions <= max_actions,
              f"{n_actions} actions"),
        check("no pod evicted twice", len(names) == len(set(names)), names),
        check("lastIncident recorded (startedAt, recoveredAt, actions)",
              inc.get("startedAt") and inc.get("recoveredAt") and inc.get("actions", 0) >= 1, inc),
        check("no MCP container restarts", run["mcp_pod_restarts"] == 0, run["mcp_pod_restarts"]),
    ]
    if kill_operator:
        op_after = run["_after"]["op"]
        killed = set(info.get("operator_pods_killed", []))
        run["checks"] += [
            check("operator pod was killed and replaced",
                  killed and not (killed & set(op_after)) and any(p["ready"] for p in op_after.values()),
                  f"killed={sorted(killed)} now={sorted(op_after)}"),
            check("operator killed again right after its first eviction",
                  info.get("second_kill_ms") or not ctx.opts.s6_second_kill, info.get("second_kill_ms")),
            check("actionsInWindow within the budget after the restart",
                  (st.get("remediation") or {}).get("actionsInWindow", 0) <= max_actions,
                  (st.get("remediation") or {}).get("actionsInWindow")),
        ]
    run["evicted_pods"] = names
    run["incident"] = inc
    finished = finish(run)
    try:
        ctx.delete_mcps(FRAGILE)
    except Exception as e:
        log(f"warning: could not delete {FRAGILE}: {e}")
    return finished


def kill_after_first_eviction(ctx: Ctx, since_ms: int, info: dict):
    deadline = time.monotonic() + ctx.opts.heal_window_s
    while time.monotonic() < deadline:
        try:
            acts = [a for a in ctx.actions_since(ctx.mcps(FRAGILE), since_ms) if a.get("kind") == "Evict"]
        except KubeError:
            acts = []
        if acts:
            t_k = now_ms()
            ops = list(ctx.operator_pods())
            for p in ops:
                ctx.kube.run(["delete", "pod", p, "-n", OP_NS, "--grace-period=0", "--force", "--wait=false"],
                             check=False)
            info["marks"].append(("operator killed again", t_k, "other"))
            info["operator_pods_killed"] = info.get("operator_pods_killed", []) + ops
            info["second_kill_ms"] = t_k
            return
        time.sleep(0.3)


def s4(ctx):
    return [outage_run(ctx, "S4", kill_operator=False)], []


def s6(ctx):
    return [outage_run(ctx, "S6", kill_operator=True)], []


# -- S5: drain against the PDB --------------------------------------------------------
def evict(ctx: Ctx, pod: str) -> tuple[bool, str]:
    body = json.dumps({"apiVersion": "policy/v1", "kind": "Eviction",
                       "metadata": {"name": pod, "namespace": NS}})
    p = ctx.kube.run(["create", "--raw", f"/api/v1/namespaces/{NS}/pods/{pod}/eviction", "-f", "-"],
                     stdin=body, check=False, timeout=20)
    return p.returncode == 0, (p.stderr or p.stdout).strip()


def s5(ctx):
    ctx.wait_mcps_ready(NOTES)
    pdb = ctx.kube.get("pdb", NOTES, "-n", NS)
    results = []

    def pdb_allows():
        d = ctx.kube.get("pdb", NOTES, "-n", NS) or {}
        return (d.get("status") or {}).get("disruptionsAllowed", 0) >= 1

    def disrupt(t0):
        marks = []
        originals = sorted(ctx.pods(NS, server_sel(NOTES)))
        for i, pod in enumerate(originals):
            ctx.kube.wait_for("PDB allows a disruption and all replicas ready", lambda: pdb_allows() and
                              M.pods_ready(ctx.pods(NS, server_sel(NOTES)), DESIRED), 90, 0.5)
            t = now_ms()
            ok1, msg1 = evict(ctx, pod)
            others = [n for n, p in ctx.pods(NS, server_sel(NOTES)).items()
                      if n != pod and p["ready"] and not p["deleting"]]
            ok2, msg2 = (evict(ctx, others[0]) if others else (None, "no other ready pod"))
            results.append({"pod": pod, "evicted": ok1, "msg": msg1[-200:],
                            "second": others[0] if others else None, "second_evicted": ok2,
                            "second_msg": msg2[-200:]})
            marks.append((f"evict {i + 1}", t, "other"))
            log(f"S5: evict {pod}: {'ok' if ok1 else msg1[-120:]}; concurrent second: "
                f"{'ACCEPTED' if ok2 else '429' if '429' in msg2 or 'disruption budget' in msg2 else msg2[-120:]}")
        ctx.kube.wait_for("all replicas ready after the drain",
                          lambda: M.pods_ready(ctx.pods(NS, server_sel(NOTES)), DESIRED), 90, 0.5)
        return {"marks": marks, "disruption_end_ms": marks[-1][1] if marks else t0, "evictions": results}

    run = measured_run(ctx, "S5", NOTES, disrupt, warmup_s=ctx.opts.warmup_s, window_s=ctx.opts.drain_window_s,
                       pg_down=False)
    rejected = [r for r in results if r["second_evicted"] is False and
                ("429" in r["second_msg"] or "disruption budget" in r["second_msg"])]
    run["checks"] += [
        check("PodDisruptionBudget exists", pdb is not None),
        check(f"each of the {DESIRED} pods evicted in turn", len(results) == DESIRED and all(r["evicted"] for r in results),
              [(r["pod"], r["evicted"], r["msg"][-80:]) for r in results if not r["evicted"]]),
        check("a concurrent second eviction is refused (429, the PDB holds)", len(rejected) == len(results),
              [(r["second"], r["second_evicted"], r["second_msg"][-100:]) for r in results if r not in rejected]),
        check(">= 2 replicas ready throughout", run["min_ready_replicas"] >= 2, run["min_ready_replicas"]),
        check("no call failed", run["errors"] == 0, f"errors={run['errors']} kinds={run['error_kinds']}"),
        check(f"all {DESIRED} replicas ready after the drain", run["mcp_ready_s"] is not None, run["mcp_ready_s"]),
        check("operator took no remediation action", run["remediation_actions"] == 0, run["remediation_actions"]),
    ]
    run["evictions"] = results
    return [finish(run)], []


# -- S7: bad specs -------------------------------------------------------------------
REJECTED = [
    ("replicas-min-gt-max.yaml", ["spec.replicas", "replicas.min must be <= replicas.max"]),
    ("pool-min-gt-max.yaml", ["spec.database.pool", "database.pool.min must be <= database.pool.max"]),
    ("port-zero.yaml", ["spec.port", "greater than or equal to 1"]),
    ("unknown-transport.yaml", ["spec.transport", "Unsupported value", "carrier-pigeon"]),
    ("pool-over-budget.yaml", ["database.pool.max * replicas.max must be <= database.maxConnections"]),
]


def s7(ctx):
    op_before = ctx.operator_pods()
    checks = []
    details = {}
    for fname, needles in REJECTED:
        p = ctx.kube.run(["apply", "-f", str(MANIFESTS / "bad" / fname)], check=False)
        msg = (p.stderr + p.stdout).strip()
        details[fname] = msg
        missing = [n for n in needles if n not in msg]
        checks.append(check(f"{fname} rejected at apply, message names the field", p.returncode != 0 and not missing,
                            msg[-300:] if (p.returncode == 0 or missing) else msg.splitlines()[0][-200:]))
    name = "bad-missing-secret"
    t0 = now_ms()
    ctx.kube.run(["delete", "mcps", name, "-n", NS, "--ignore-not-found"])
    ctx.kube.apply(MANIFESTS / "bad" / "missing-secret.yaml")

    def cond():
        o = ctx.mcps(name) or {}
        st = o.get("status") or {}
        c = {x["type"]: x for x in st.get("conditions", [])}.get("ConfigValid")
        return (st, c) if c and c.get("status") == "False" and st.get("phase") == "Invalid" else None
    try:
        st, c = ctx.kube.wait_for("ConfigValid=False", cond, 60, 1)
        checks.append(check("missing Secret: ConfigValid=False reason SecretNotFound, phase Invalid",
                            c.get("reason") == "SecretNotFound", f"{c.get('reason')}: {c.get('message')}"))
        checks.append(check("the condition message names the Secret", "no-such-secret" in (c.get("message") or ""),
                            c.get("message")))
        details["missing-secret"] = c
    except TimeoutError as e:
        o = ctx.mcps(name) or {}
        checks.append(check("missing Secret: ConfigValid=False reason SecretNotFound, phase Invalid", False,
                            f"{e}; status={json.dumps(o.get('status'))[:400]}"))
    evs = ctx.events_for(name, t0 - 1000)
    checks.append(check("a Warning Event explains it", any(e.get("type") == "Warning" for e in evs),
                        [(e.get("reason"), e.get("note")) for e in evs][:3]))
    time.sleep(3)  # let the operator chew on it a bit longer before judging its health
    op_after = ctx.operator_pods()
    restarts, replaced = M.restart_delta(op_before, op_after)
    checks.append(check("operator kept running (same pod, no restarts, ready)",
                        restarts == 0 and replaced == 0 and all(p["ready"] for p in op_after.values()),
                        f"restarts={restarts} replaced={replaced}"))
    ctx.kube.run(["delete", "mcps", name, "-n", NS, "--ignore-not-found", "--wait=false"])
    checks += cannot_start_checks(ctx, details)
    checks += gc_checks(ctx)
    run = {"tag": "S7", "operator_restarts": restarts, "rejections": details, "checks": checks}
    return [finish(run)], []


# McpServer -> (Ready reason, words of the cause that must reach its message)
CANNOT_START = {
    "stuck-unschedulable": ("PodsNotStarted", ["Unschedulable", "node affinity/selector"]),
    "stuck-image": ("PodsNotStarted", ["no-such-tag"]),
    "stuck-serviceaccount": ("ReplicaFailure", ["no-such-sa"]),
}


def cannot_start_checks(ctx: Ctx, details: dict) -> list[dict]:
    """Pods that never start are reported with their cause and never evicted."""
    names = list(CANNOT_START)
    for n in names:
        ctx.kube.run(["delete", "mcps", n, "-n", NS, "--ignore-not-found"])
    t0 = now_ms()
    ctx.kube.apply(MANIFESTS / "bad" / "cannot-start.yaml")
    checks = []
    for n, (reason, words) in CANNOT_START.items():
        def ready_cond(n=n):
            st = (ctx.mcps(n) or {}).get("status") or {}
            c = {x["type"]: x for x in st.get("conditions", [])}.get("Ready") or {}
            return c if c.get("reason") == reason and all(w in (c.get("message") or "") for w in words) else None
        try:
            c = ctx.kube.wait_for(f"{n} Ready reason {reason}", ready_cond, 90, 1)
            details[n] = c.get("message")
            checks.append(check(f"{n}: Ready=False reason {reason}, the cause in the message", True,
                                (c.get("message") or "")[:200]))
        except TimeoutError:
            st = (ctx.mcps(n) or {}).get("status") or {}
            c = {x["type"]: x for x in st.get("conditions", [])}.get("Ready")
            checks.append(check(f"{n}: Ready=False reason {reason}, the cause in the message", False, json.dumps(c)[:400]))
    # Long past unhealthyAfterSeconds (3 s): a restart would have happened by now.
    time.sleep(20)
    for n in names:
        rem = ((ctx.mcps(n) or {}).get("status") or {}).get("remediation") or {}
        evicted = [e for e in ctx.events_for(n, t0 - 1000) if e.get("reason") == "PodEvicted"]
        checks.append(check(f"{n}: never evicted (no action, no PodEvicted Event) 20 s past unhealthyAfterSeconds",
                            not rem.get("recentActions") and not rem.get("lastAction") and not evicted,
                            f"state={rem.get('state')} reason={rem.get('reason')} actions={rem.get('recentActions')} "
                            f"events={len(evicted)}"))
    for n in names:
        ctx.kube.run(["delete", "mcps", n, "-n", NS, "--ignore-not-found", "--wait=false"])
    return checks


GC_KINDS = ("deployment", "service", "poddisruptionbudget")


def gc_checks(ctx: Ctx) -> list[dict]:
    """A valid McpServer gets owned children; deleting it garbage-collects them."""
    name = "gc-probe"
    ctx.kube.run(["delete", "mcps", name, "-n", NS, "--ignore-not-found"])
    ctx.kube.apply(MANIFESTS / "gc-probe.yaml")
    checks = []
    try:
        uid = ctx.kube.wait_for("gc-probe created", lambda: (ctx.mcps(name) or {}).get("metadata", {}).get("uid"), 30)

        def children():
            objs = [ctx.kube.get(k, name, "-n", NS) for k in GC_KINDS]
            if not all(objs):
                return None
            return all(any(r.get("uid") == uid and r.get("controller") for r in o["metadata"].get("ownerReferences", []))
                       for o in objs)
        owned = ctx.kube.wait_for("gc-probe children", children, 60)
        checks.append(check("Deployment, Service and PDB created with a controller owner reference", owned))
        ctx.kube.run(["delete", "mcps", name, "-n", NS, "--wait=false"])
        gone = ctx.kube.wait_for("gc-probe children gone",
                                 lambda: all(ctx.kube.get(k, name, "-n", NS) is None for k in GC_KINDS), 90)
        checks.append(check("deleting the McpServer removes its children (garbage collection)", gone))
    except TimeoutError as e:
        checks.append(check("owned children created and garbage-collected", False, str(e)))
        ctx.kube.run(["delete", "mcps", name, "-n", NS, "--ignore-not-found", "--wait=false"], check=False)
    return checks


# -- S8: a bad rollout ---------------------------------------------------------------
def s8(ctx):
    ctx.wait_mcps_ready(NOTES)
    obj = ctx.mcps(NOTES)
    gen0 = obj["metadata"]["generation"]
    env = list(obj["spec"].get("env", []))
    bad_env = env + [{"name": "WORKLOAD_MODE", "value": "crash-on-start"}]
    state = {}

    def disrupt(t0):
        ctx.kube.run(["patch", "mcps", NOTES, "-n", NS, "--type", "merge", "-p",
                      json.dumps({"spec": {"env": bad_env}})])
        marks = []

        def held():
            o = ctx.mcps(NOTES) or {}
            st = o.get("status") or {}
            return st if st.get("rollbackHold") else None
        try:
            st = ctx.kube.wait_for("status.rollbackHold", held, ctx.opts.rollback_timeout_s, 1)
            t = now_ms()
            state["held_ms"] = t
            marks.append(("rolled back", t, "other"))
        except TimeoutError as e:
            state["error"] = str(e)
            t = now_ms()
        # the bad revision's pods must be gone before the run counts as settled
        if "held_ms" in state:
            try:
                ctx.kube.wait_for("bad-revision pods gone", lambda: bad_pods() == 0, 90, 1)
            except TimeoutError as e:
                state["bad_pods_left"] = str(e)
        return {"marks": marks, "disruption_end_ms": t}

    def bad_pods():
        n = 0
        for p in ctx.kube.items("pods", "-n", NS, "-l", server_sel(NOTES)):
            envs = [e for c in p["spec"]["containers"] for e in c.get("env", [])]
            if any(e.get("name") == "WORKLOAD_MODE" and e.get("value") == "crash-on-start" for e in envs):
                n += 1
        return n

    run = measured_run(ctx, "S8", NOTES, disrupt, warmup_s=ctx.opts.warmup_s, window_s=ctx.opts.rollout_window_s,
                       pg_down=False)
    o = run["_after"]["obj"] or {}
    st = o.get("status") or {}
    hold = st.get("rollbackHold") or {}
    deg = {c["type"]: c for c in st.get("conditions", [])}.get("Degraded") or {}
    evs = ctx.events_for(NOTES, run["kill_unix_ms"] - 1000)
    rb_events = [e for e in evs if e.get("reason") in ("RolloutRolledBack", "RolledBack")]
    dep = ctx.kube.get("deployment", NOTES, "-n", NS) or {}
    tmpl_env = [e for c in dep["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])]
    still_bad = any(e.get("name") == "WORKLOAD_MODE" and e.get("value") == "crash-on-start" for e in tmpl_env)
    run["checks"] += [
        check("old pods kept serving: no call failed", run["errors"] == 0,
              f"errors={run['errors']} kinds={run['error_kinds']}"),
        check(f"{DESIRED} ready replicas throughout", run["min_ready_replicas"] >= DESIRED, run["min_ready_replicas"]),
        check("status.rollbackHold set for the bad generation", hold.get("generation") == gen0 + 1 and hold.get("revision"),
              hold or state.get("error")),
        check("condition Degraded reason RolledBack", deg.get("reason") == "RolledBack" and deg.get("status") == "True",
              f"{deg.get('status')} {deg.get('reason')}: {deg.get('message')}"),
        check("RolledBack Event published", rb_events, [(e.get("reason"), e.get("note")) for e in rb_events][:2]),
        check("Deployment template back to the good revision", not still_bad),
        check("a Rollback action recorded", any(a.get("kind") == "Rollback" for a in run["actions"]),
              [a.get("kind") for a in run["actions"]]),
        check("no acknowledged write lost", run["lost_acked_writes"] == 0, run["lost_acked_writes"]),
    ]
    # restore the good spec: a new generation clears the hold
    ctx.kube.apply(MANIFESTS / "mcpserver.yaml")
    try:
        ctx.wait_mcps_ready(NOTES, 120)
        o2 = ctx.mcps(NOTES) or {}
        ok = not (o2.get("status") or {}).get("rollbackHold")
        run["checks"].append(check("good spec re-applied: Ready, hold cleared", ok, (o2.get("status") or {}).get("rollbackHold")))
    except TimeoutError as e:
        run["checks"].append(check("good spec re-applied: Ready, hold cleared", False, e))
    run["rollback_hold"] = hold
    return [finish(run)], []


# -- S9: fixed replicas -> HPA -------------------------------------------------------
def s9(ctx):
    """Raising replicas.max on a Ready fixed pool turns an HPA on. Server-side apply
    would drop spec.replicas (to the default of 1) when the operator stops setting
    it; the operator hands the field over first, so capacity never dips."""
    ctx.wait_mcps_ready(NOTES)
    state = {}

    def disrupt(t0):
        ctx.kube.run(["patch", "mcps", NOTES, "-n", NS, "--type", "merge", "-p",
                      json.dumps({"spec": {"replicas": {"min": DESIRED, "max": DESIRED + 2}}})])

        def handed_over():
            hpa = ctx.kube.get("hpa", NOTES, "-n", NS)
            dep = ctx.kube.get("deployment", NOTES, "-n", NS, "--show-managed-fields") or {}
            managers = [m.get("manager") for m in dep.get("metadata", {}).get("managedFields", [])
                        if "f:replicas" in ((m.get("fieldsV1") or {}).get("f:spec") or {})]
            # someone owns spec.replicas (the handover manager, or the HPA controller), not us
            return (hpa, dep, managers) if hpa and managers and "mcp-operator" not in managers else None
        try:
            hpa, dep, managers = ctx.kube.wait_for("HPA on, replicas handed over", handed_over, 60, 1)
            state.update(hpa_min=(hpa.get("spec") or {}).get("minReplicas"),
                         spec_replicas=(dep.get("spec") or {}).get("replicas"), managers=managers)
        except TimeoutError as e:
            state["error"] = str(e)
        return {"marks": [("HPA on", now_ms(), "other")], "disruption_end_ms": now_ms()}

    run = measured_run(ctx, "S9", NOTES, disrupt, warmup_s=ctx.opts.warmup_s, window_s=15, pg_down=False)
    run["checks"] += [
        check("HPA created with minReplicas = replicas.min, spec.replicas handed over",
              state.get("hpa_min") == DESIRED and not state.get("error"), state),
        check(f"Deployment still asks for {DESIRED} replicas", state.get("spec_replicas") == DESIRED, state),
        check(f"{DESIRED} ready replicas throughout (watched)", run["min_ready_replicas"] >= DESIRED,
              run["min_ready_replicas"]),
        check("no call failed", run["errors"] == 0, f"errors={run['errors']} kinds={run['error_kinds']}"),
        check("no acknowledged write lost", run["lost_acked_writes"] == 0, run["lost_acked_writes"]),
    ]
    run["hpa_switch"] = state
    # back to the fixed pool: the HPA goes, the operator owns spec.replicas again
    ctx.kube.apply(MANIFESTS / "mcpserver.yaml")
    try:
        ctx.kube.wait_for("HPA removed", lambda: ctx.kube.get("hpa", NOTES, "-n", NS) is None, 60, 1)
        ctx.wait_mcps_ready(NOTES, 120)
    except TimeoutError as e:
        run["checks"].append(check("fixed pool restored (HPA removed, Ready)", False, e))
    return [finish(run)], []


SCENARIOS = {
    "S1": ("delete the Postgres pod (grace 0)", s1),
    "S2": ("kill -9 postgres in its container", s2),
    "S3": ("S1 repeated", s3),
    "S4": ("fragile workload healed, held while Postgres down", s4),
    "S5": ("evict/drain against the PDB", s5),
    "S6": ("operator killed mid-outage", s6),
    "S7": ("bad McpServer specs", s7),
    "S8": ("bad rollout rolled back", s8),
    "S9": ("fixed replicas switched to an HPA", s9),
}


def run_scenario(ctx: Ctx, sid: str) -> tuple[list, list]:
    name, fn = SCENARIOS[sid]
    try:
        runs, notes = fn(ctx)
    except Exception as e:  # a broken scenario is a failed scenario, not a crashed suite
        log(f"{sid} aborted: {e}")
        tb = traceback.format_exc()
        (ctx.out / "diag").mkdir(parents=True, exist_ok=True)
        (ctx.out / "diag" / f"{sid}.traceback.txt").write_text(tb)
        runs = [{"tag": sid, "passed": False, "checks": [check("scenario completed", False, f"{type(e).__name__}: {e}")]}]
        notes = []
    if not all(r.get("passed") for r in runs):
        ctx.diag(sid)
    return runs, notes


def restore_baseline(ctx: Ctx):
    """After a scenario: Postgres up, notes Ready (bounded)."""
    try:
        sts = ctx.kube.get("statefulset", "postgres", "-n", DB_NS) or {}
        if (sts.get("spec") or {}).get("replicas", 1) != 1:
            ctx.scale_pg(1)
        ctx.wait_pg_ready(180)
        ctx.wait_mcps_ready(NOTES, 120)
    except (TimeoutError, KubeError) as e:
        log(f"warning: baseline not restored: {e}")
