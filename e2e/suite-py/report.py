"""report.json, report.md and timeline.svg (hand-written SVG, no dependencies)."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from measure import percentile

FIELDS = [
    ("pg_ready_s", "pg ready s"),
    ("mcp_ready_s", "MCP ready s"),
    ("first_success_s", "1st success s"),
    ("errors", "errors"),
    ("longest_outage_s", "longest outage s"),
    ("acked_writes", "acked"),
    ("lost_acked_writes", "lost"),
    ("mcp_pod_restarts", "MCP restarts"),
    ("remediation_actions", "remediation actions"),
    ("operator_restarts", "operator restarts"),
]


def scenario_summary(sid: str, name: str, runs: list[dict], notes: list[str] | None = None) -> dict:
    fs = [r.get("first_success_s") for r in runs if r.get("first_success_s") is not None]
    return {
        "id": sid,
        "name": name,
        "passed": bool(runs) and all(r.get("passed") for r in runs),
        "runs": runs,
        "p50_first_success_s": percentile(fs, 50),
        "p95_first_success_s": percentile(fs, 95),
        "notes": notes or [],
    }


def fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


def write_json(path: Path, doc: dict) -> None:
    path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")


def markdown(doc: dict) -> str:
    lines = ["# mcp-operator e2e report", ""]
    meta = doc.get("meta", {})
    if meta:
        lines.append(
            f"Cluster `{meta.get('server', '?')}` (Kubernetes {meta.get('k8s_version', '?')}), "
            f"started {meta.get('started', '?')}, {meta.get('duration_s', 0):.0f} s, "
            f"result **{'PASS' if doc.get('passed') else 'FAIL'}**.")
        if meta.get("session_affinity_workaround"):
            lines.append("")
            lines.append("Run with `--session-affinity`: the suite set `sessionAffinity: ClientIP` on the MCP "
                         "Services (a workaround; MCP sessions live in one pod).")
        lines.append("")
    if doc.get("setup_error"):
        lines += [f"**Setup failed**: {doc['setup_error']}", ""]
    head = ["scenario", "run", "result"] + [h for _, h in FIELDS]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for sc in doc["scenarios"]:
        for i, r in enumerate(sc["runs"], 1):
            row = [f"{sc['id']} {sc['name']}" if i == 1 else "", str(i),
                   "pass" if r.get("passed") else "**FAIL**"]
            row += [fmt(r.get(k)) for k, _ in FIELDS]
            lines.append("| " + " | ".join(row) + " |")
        if len(sc["runs"]) > 1:
            lines.append(
                f"| | p50 / p95 | | | | {fmt(sc['p50_first_success_s'])} / "
                f"{fmt(sc['p95_first_success_s'])} |" + " |" * (len(FIELDS) - 3))
    lines.append("")
    failed = []
    for sc in doc["scenarios"]:
        for i, r in enumerate(sc["runs"], 1):
            for c in r.get("checks", []):
                if not c["ok"]:
                    failed.append(f"- {sc['id']} run {i}: {c['name']}: {c.get('detail', '')}")
    if failed:
        lines += ["## Failed checks", ""] + failed + [""]
    lines += ["## Checks", ""]
    for sc in doc["scenarios"]:
        n_ok = sum(1 for r in sc["runs"] for c in r.get("checks", []) if c["ok"])
        n = sum(1 for r in sc["runs"] for c in r.get("checks", []))
        lines.append(f"- **{sc['id']}** {sc['name']}: {n_ok}/{n} checks passed")
        names = []
        for r in sc["runs"][:1]:
            names = [c["name"] for c in r.get("checks", [])]
        if names:
            lines.append("  (" + "; ".join(names) + ")")
        for note in sc.get("notes", []):
            lines.append(f"  - {note}")
    lines.append("")
    lines.append("Times are seconds from the kill instant (S5: the first eviction, S8: the bad spec "
                 "applied). `1st success` is the end of the client outage the kill caused, i.e. the "
                 "first acknowledged call once the kill took effect (S5/S8 have no outage: it is the "
                 "first call after t0). `lost` is acknowledged writes missing on read-back (must be 0); "
                 "MCP/operator restarts are container restarts.")
    return "\n".join(lines) + "\n"


# -- SVG ---------------------------------------------------------------------
W = 960
LEFT = 150
RIGHT = 20
ROW_H = 90
TOP = 50


def _panel(run: dict, label: str, y: int) -> list[str]:
    """One run: green bars (ok calls per bucket) up, red bars (failed) down, and
    vertical markers for kill, Postgres ready, MCP ready, first success."""
    out = []
    tl = run.get("timeline") or []
    t0 = run.get("kill_unix_ms")
    if not tl or t0 is None:
        out.append(f'<text x="{LEFT}" y="{y + 40}" class="lbl">no timeline</text>')
        return out
    start = tl[0]["t_unix_ms"]
    bucket = max(1, run.get("bucket_ms", 1000))
    end = tl[-1]["t_unix_ms"] + bucket
    span = max(1, end - start)
    plot_w = W - LEFT - RIGHT
    mid = y + ROW_H * 0.6
    peak = max([b["ok"] for b in tl] + [b["err"] for b in tl] + [1])
    sx = lambda t: LEFT + (t - start) / span * plot_w  # noqa: E731
    bw = max(1.0, bucket / span * plot_w - 1)
    out.append(f'<text x="8" y="{y + 22}" class="lbl">{escape(label)}</text>')
    verdict = "pass" if run.get("passed") else "FAIL"
    out.append(f'<text x="8" y="{y + 40}" class="{"ok" if run.get("passed") else "bad"}">{verdict}</text>')
    fs = run.get("first_success_s")
    out.append(f'<text x="8" y="{y + 58}" class="sm">first ok {fmt(fs)} s</text>')
    out.append(f'<text x="8" y="{y + 74}" class="sm">errors {fmt(run.get("errors"))}, lost {fmt(run.get("lost_acked_writes"))}</text>')
    out.append(f'<line x1="{LEFT}" y1="{mid}" x2="{W - RIGHT}" y2="{mid}" class="axis"/>')
    up_h = ROW_H * 0.5
    dn_h = ROW_H * 0.3
    for b in tl:
        x = sx(b["t_unix_ms"])
        if b["ok"]:
            h = b["ok"] / peak * up_h
            out.append(f'<rect x="{x:.1f}" y="{mid - h:.1f}" width="{bw:.1f}" height="{h:.1f}" class="okb"/>')
        if b["err"]:
            h = max(2.0, b["err"] / peak * dn_h)
            out.append(f'<rect x="{x:.1f}" y="{mid:.1f}" width="{bw:.1f}" height="{h:.1f}" class="errb"/>')
    marks = [("kill", t0, "kill")]
    for key, name, cls in (("pg_ready_s", "pg ready", "pg"), ("mcp_ready_s", "MCP ready", "mcp"),
                           ("first_success_s", "1st ok", "first")):
        v = run.get(key)
        if v is not None:
            marks.append((name, t0 + v * 1000, cls))
    for name, t, cls in run.get("extra_marks", []):
        marks.append((name, t, cls))
    for i, (name, t, cls) in enumerate(marks):
        if not start <= t <= end:
            continue
        x = sx(t)
        out.append(f'<line x1="{x:.1f}" y1="{y + 4}" x2="{x:.1f}" y2="{y + ROW_H - 4}" class="m-{cls}"/>')
        out.append(f'<text x="{x + 2:.1f}" y="{y + 12 + (i % 3) * 10}" class="mk m-{cls}t">{escape(name)}</text>')
    # seconds axis relative to the kill
    step = 5000 if span <= 60000 else 10000 if span <= 150000 else 30000
    k = (start - t0) // step
    t = t0 + k * step
    while t <= end:
        if t >= start:
            x = sx(t)
            out.append(f'<line x1="{x:.1f}" y1="{y + ROW_H - 6}" x2="{x:.1f}" y2="{y + ROW_H - 2}" class="axis"/>')
            out.append(f'<text x="{x:.1f}" y="{y + ROW_H + 6}" class="tick">{(t - t0) // 1000:+d}s</text>')
        t += step
    return out


def svg(doc: dict) -> str:
    panels = []
    for sc in doc["scenarios"]:
        for i, r in enumerate(sc["runs"], 1):
            if r.get("timeline"):
                lab = f"{sc['id']}" + (f" #{i}" if len(sc["runs"]) > 1 else "") + f" {sc['name']}"
                panels.append((lab[:22], r))
    h = TOP + max(1, len(panels)) * (ROW_H + 14) + 20
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" '
        'font-family="sans-serif">',
        "<style>"
        ".lbl{font-size:12px;font-weight:bold}.sm{font-size:10px;fill:#444}.tick{font-size:9px;fill:#666;text-anchor:middle}"
        ".ok{font-size:11px;fill:#1a7f37}.bad{font-size:11px;fill:#cf222e;font-weight:bold}"
        ".axis{stroke:#999;stroke-width:1}.okb{fill:#2da44e}.errb{fill:#cf222e}.mk{font-size:9px}"
        ".m-kill{stroke:#000;stroke-width:2}.m-pg{stroke:#0969da;stroke-dasharray:4 2}"
        ".m-mcp{stroke:#8250df;stroke-dasharray:4 2}.m-first{stroke:#1a7f37;stroke-dasharray:2 2}"
        ".m-other{stroke:#bf8700;stroke-dasharray:3 3}"
        ".m-killt{fill:#000}.m-pgt{fill:#0969da}.m-mcpt{fill:#8250df}.m-firstt{fill:#1a7f37}.m-othert{fill:#bf8700}"
        "</style>",
        f'<rect width="{W}" height="{h}" fill="#fff"/>',
        '<text x="8" y="20" font-size="15" font-weight="bold">mcp-operator e2e: tool calls per second '
        '(green ok, red failed) around each kill</text>',
        '<text x="8" y="38" font-size="10" fill="#444">markers: kill (black), Postgres ready (blue), '
        'all MCP replicas ready (purple), first acknowledged call after the kill (green), other events (amber)</text>',
    ]
    for i, (lab, r) in enumerate(panels):
        out += _panel(r, lab, TOP + i * (ROW_H + 14))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_all(out_dir: Path, doc: dict) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "report.json", "md": out_dir / "report.md", "svg": out_dir / "timeline.svg"}
    # The JSON keeps the timeline too (it is what the SVG is drawn from).
    write_json(paths["json"], doc)
    paths["md"].write_text(markdown(doc))
    paths["svg"].write_text(svg(doc))
    return paths


if __name__ == "__main__":  # re-render report.md and timeline.svg from a report.json
    import sys

    src = Path(sys.argv[1] if len(sys.argv) > 1 else "target/e2e/report.json")
    d = json.loads(src.read_text())
    (src.parent / "report.md").write_text(markdown(d))
    (src.parent / "timeline.svg").write_text(svg(d))
    print(src.parent / "report.md")
