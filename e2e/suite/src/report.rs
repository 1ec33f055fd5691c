//! report.json, report.md and timeline.svg (hand-written SVG, no
//! dependencies), rendered from the [`Report`] the suite recorded.
//!
//! report.md puts every threshold beside its figure; timeline.svg draws one
//! panel per measured run: calls per time bucket around the disruption.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::Value;

use crate::measure::percentile;
use crate::model::{Conformance, Report, Run, Scenario, Threshold};

/// Where [`write_all`] put the three files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub json: PathBuf,
    pub md: PathBuf,
    pub svg: PathBuf,
}

/// Write report.json (pretty, with the timelines the SVG is drawn from),
/// report.md and timeline.svg into `dir`, creating it if need be.
pub fn write_all(dir: &Path, doc: &Report) -> anyhow::Result<Paths> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let paths = Paths {
        json: dir.join("report.json"),
        md: dir.join("report.md"),
        svg: dir.join("timeline.svg"),
    };
    let mut json = serde_json::to_string_pretty(doc).context("cannot serialise the report")?;
    json.push('\n');
    for (path, text) in [
        (&paths.json, json),
        (&paths.md, markdown(doc)),
        (&paths.svg, svg(doc)),
    ] {
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(paths)
}

// -- small formatters ----------------------------------------------------------

/// A time or other measured figure: two decimals, "–" when absent.
pub fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{v:.2}"))
}

/// A count, "–" when absent.
fn fmt_count(v: Option<u64>) -> String {
    v.map_or_else(|| "–".to_string(), |v| v.to_string())
}

/// A setting such as a rate or a timeout: as short as it can be (20, 2.5).
fn fmt_num(v: f64) -> String {
    if v.is_finite() {
        format!("{}", (v * 1000.0).round() / 1000.0)
    } else {
        v.to_string()
    }
}

/// A threshold's figure or limit with its unit: seconds with two decimals,
/// whole counts as integers; a missing (or infinite) figure is "never".
fn fmt_measure(v: Option<f64>, unit: &str) -> String {
    let n = match v {
        Some(v) if v.is_nan() => "NaN".to_string(),
        Some(v) if v.is_finite() => {
            if unit != "s" && v.fract() == 0.0 && v.abs() < 1e15 {
                format!("{}", v as i64)
            } else {
                format!("{v:.2}")
            }
        }
        _ => return "never".to_string(),
    };
    if unit.is_empty() {
        n
    } else {
        format!("{n} {unit}")
    }
}

/// Text on one line (details can be command output).
fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ")
}

/// Text safe inside a Markdown table cell.
fn cell(s: &str) -> String {
    one_line(s).replace('|', "\\|")
}

/// A Markdown code span that survives backticks in `s`.
fn code(s: &str) -> String {
    let s = one_line(s);
    let mut longest = 0;
    let mut run = 0;
    for c in s.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    let fence = "`".repeat(longest + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{s}{pad}{fence}")
}

/// At most `n` characters, with "…" when cut.
fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n).collect();
        t.push('…');
        t
    }
}

/// A JSON value as one compact, readable line: `key: value` pairs, nested
/// objects in braces, strings unquoted, nulls and empty lists left out.
fn compact(v: &Value) -> String {
    fn skip(v: &Value) -> bool {
        match v {
            Value::Null => true,
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            _ => false,
        }
    }
    fn inner(v: &Value) -> String {
        match v {
            Value::Null => "null".to_string(),
            Value::String(s) => s.clone(),
            Value::Array(a) => format!("[{}]", a.iter().map(inner).collect::<Vec<_>>().join(", ")),
            Value::Object(o) => format!(
                "{{{}}}",
                o.iter()
                    .filter(|(_, v)| !skip(v))
                    .map(|(k, v)| format!("{k}: {}", inner(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            other => other.to_string(),
        }
    }
    match v {
        Value::Object(o) => o
            .iter()
            .filter(|(_, v)| !skip(v))
            .map(|(k, v)| format!("{k}: {}", inner(v)))
            .collect::<Vec<_>>()
            .join("; "),
        other => inner(other),
    }
}

/// Text safe in XML content and attribute values.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A run with load and a disruption instant (not a checks-only run, S7).
fn measured(run: &Run) -> bool {
    run.kill_unix_ms != 0 || !run.timeline.is_empty()
}

fn pass_fail(ok: bool) -> &'static str {
    if ok {
        "pass"
    } else {
        "**FAIL**"
    }
}

// -- Markdown ------------------------------------------------------------------

const COLUMNS: [&str; 15] = [
    "scenario",
    "run",
    "result",
    "pg ready s",
    "MCP ready s",
    "1st success s",
    "errors",
    "session losses",
    "longest outage s",
    "acked",
    "lost",
    "MCP restarts",
    "remediation actions",
    "operator restarts",
    "URL mode",
];
/// Index of "1st success s" in [`COLUMNS`] (the p50 / p95 row).
const FIRST_SUCCESS_COL: usize = 5;

/// The readiness variants side by side: S3 (process readiness + the operator's
/// gate) and S19 (the database in readiness, no gate), when both ran.
fn variants(out: &mut String, doc: &Report) {
    let find = |id: &str| doc.scenarios.iter().find(|s| s.id == id);
    let (Some(gate), Some(classic)) = (find("S3"), find("S19")) else {
        return;
    };
    out.push_str("## Readiness variants\n\n");
    out.push_str(
        "The same Postgres kill (delete, grace 0) against the same server, two readiness designs. \
         `min ready` is the fewest Ready MCP pods seen during a run (0: the Service had no endpoint). \
         The route is back at the first TCP connect from this host through the Postgres Service's ClusterIP that succeeded \
         after Postgres was Ready (one every 25 ms): until then no MCP pod can reach the new Postgres, whatever it does \
         (endpoint propagation, kube-proxy's sync); the last column is the MCP side's own part.\n\n",
    );
    table_head(
        out,
        &[
            "variant",
            "kills",
            "1st success after pg ready s (p50 / p95)",
            "1st success after kill s (p50 / p95)",
            "Service routes to Postgres after pg ready s (p50 / p95)",
            "1st success after the route s (p50 / p95)",
            "min ready (worst run)",
            "failed calls by kind (all kills)",
        ],
    );
    for (label, sc) in [
        ("S3: process readiness + readiness gate", gate),
        ("S19: database in readiness, no gate", classic),
    ] {
        // p50 / p95 over the runs of a per-run figure
        let p50_p95 = |f: fn(&Run) -> Option<f64>| {
            let v: Vec<Option<f64>> = sc.runs.iter().map(f).collect();
            format!(
                "{} / {}",
                fmt_opt(percentile(&v, 50.0)),
                fmt_opt(percentile(&v, 95.0))
            )
        };
        let min_ready = sc.runs.iter().map(|r| r.min_ready_replicas).min();
        let mut kinds: std::collections::BTreeMap<&str, u64> = Default::default();
        for r in &sc.runs {
            for (k, n) in &r.error_kinds {
                *kinds.entry(k.as_str()).or_default() += n;
            }
        }
        let kinds = kinds
            .iter()
            .map(|(k, n)| format!("`{k}` {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        table_row(
            out,
            &[
                label.to_string(),
                sc.runs.len().to_string(),
                p50_p95(Run::after_pg_ready_s),
                p50_p95(|r| r.first_success_s),
                p50_p95(Run::route_delay_s),
                p50_p95(Run::after_route_s),
                min_ready.map_or("–".into(), |m| m.to_string()),
                kinds,
            ],
        );
    }
    out.push('\n');
}

fn table_row(out: &mut String, cells: &[String]) {
    out.push_str("| ");
    out.push_str(&cells.join(" | "));
    out.push_str(" |\n");
}

fn table_head(out: &mut String, head: &[&str]) {
    table_row(out, &head.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    out.push('|');
    out.push_str(&"---|".repeat(head.len()));
    out.push('\n');
}

fn run_row(sc: &Scenario, i: usize, r: &Run) -> Vec<String> {
    let first = if i == 1 {
        cell(&format!("{} {}", sc.id, sc.name))
    } else {
        String::new()
    };
    // Counters a checks-only run never measured read "–", not 0.
    let counter = |v: u64| {
        if measured(r) {
            v.to_string()
        } else {
            "–".to_string()
        }
    };
    vec![
        first,
        i.to_string(),
        pass_fail(r.passed).to_string(),
        fmt_opt(r.pg_ready_s),
        fmt_opt(r.mcp_ready_s),
        fmt_opt(r.first_success_s),
        fmt_count(r.errors),
        fmt_count(r.session_losses),
        fmt_opt(r.longest_outage_s),
        fmt_count(r.acked_writes),
        fmt_count(r.lost_acked_writes),
        counter(r.mcp_pod_restarts),
        counter(r.remediation_actions),
        counter(r.operator_restarts),
        r.url_mode.as_deref().map_or_else(|| "–".to_string(), cell),
    ]
}

fn threshold_row(id: &str, run: &str, t: &Threshold) -> Vec<String> {
    vec![
        cell(id),
        run.to_string(),
        cell(&t.name),
        fmt_measure(t.figure, &t.unit),
        format!("≤ {}", fmt_measure(Some(t.limit), &t.unit)),
        if t.basis.is_empty() {
            "–".to_string()
        } else {
            cell(&t.basis)
        },
        if t.ok { "ok" } else { "**BREACH**" }.to_string(),
    ]
}

/// report.md.
pub fn markdown(doc: &Report) -> String {
    let mut out = String::from("# mcp-operator e2e report\n\n");
    let meta = &doc.meta;
    let (ok, bad) = doc.verdicts();
    let _ = writeln!(
        out,
        "Cluster {} (Kubernetes {}), started {}, {:.0} s, result **{}** \
         ({ok} checks and thresholds passed, {bad} failed).",
        code(meta.server.as_deref().unwrap_or("?")),
        one_line(meta.k8s_version.as_deref().unwrap_or("?")),
        if meta.started.is_empty() {
            "?"
        } else {
            &meta.started
        },
        meta.duration_s,
        if doc.passed { "PASS" } else { "FAIL" },
    );
    if meta.session_affinity_workaround {
        out.push_str(
            "\nRun with `--session-affinity`: the suite set `sessionAffinity: ClientIP` on the \
             MCP Services (a workaround; MCP sessions live in one pod).\n",
        );
    }
    out.push('\n');

    // Settings.
    let st = &doc.settings;
    out.push_str("## Settings\n\n");
    let _ = writeln!(
        out,
        "- Offered load: {} calls/s, open loop, over {} MCP sessions; call timeout {} s.",
        fmt_num(st.rate),
        st.sessions,
        fmt_num(st.call_timeout_s),
    );
    let _ = writeln!(
        out,
        "- {} s of load before each disruption; {} s measured after a single kill, {} s after each of many (S3, S19), at least until Postgres ready + 5 s.",
        fmt_num(st.warmup_s),
        fmt_num(st.window_s),
        fmt_num(st.repeat_window_s),
    );
    if let Some(from) = &st.load_from {
        let _ = writeln!(
            out,
            "- The client ran {}.",
            if from == "cluster" {
                "in a pod in the cluster (mcp-loadclient, through the Service's DNS name)"
            } else {
                "on the host (through the Service's ClusterIP)"
            }
        );
    }
    if let Some(repo) = &st.image_repository {
        let _ = writeln!(out, "- Every image pulled from {}.", code(repo));
    }
    for (name, v) in &st.mcpservers {
        let _ = writeln!(out, "- McpServer {}: {}", code(name), code(&compact(v)));
    }
    out.push('\n');

    if let Some(e) = &doc.setup_error {
        let _ = writeln!(out, "**Setup failed**: {}\n", one_line(e));
    }

    // Results.
    out.push_str("## Results\n\n");
    if doc.scenarios.is_empty() {
        out.push_str("No scenario ran.\n");
    } else {
        table_head(&mut out, &COLUMNS);
        for sc in &doc.scenarios {
            for (i, r) in sc.runs.iter().enumerate() {
                table_row(&mut out, &run_row(sc, i + 1, r));
            }
            if sc.runs.len() > 1 {
                let mut row = vec![String::new(); COLUMNS.len()];
                row[1] = "p50 / p95".to_string();
                row[FIRST_SUCCESS_COL] = format!(
                    "{} / {}",
                    fmt_opt(sc.p50_first_success_s),
                    fmt_opt(sc.p95_first_success_s)
                );
                table_row(&mut out, &row);
            }
        }
    }
    out.push('\n');
    variants(&mut out, doc);

    // Thresholds: each beside its figure.
    out.push_str("## Thresholds\n\n");
    let mut rows = Vec::new();
    for sc in &doc.scenarios {
        for (i, r) in sc.runs.iter().enumerate() {
            let run = (i + 1).to_string();
            rows.extend(r.thresholds.iter().map(|t| threshold_row(&sc.id, &run, t)));
        }
        rows.extend(
            sc.thresholds
                .iter()
                .map(|t| threshold_row(&sc.id, "all runs", t)),
        );
    }
    let all = doc.scenarios.iter().flat_map(|sc| {
        sc.runs
            .iter()
            .flat_map(|r| r.thresholds.iter())
            .chain(sc.thresholds.iter())
    });
    let (n, n_ok) = all.fold((0, 0), |(n, k), t| (n + 1, k + usize::from(t.ok)));
    if rows.is_empty() {
        out.push_str("No thresholds.\n");
    } else {
        let _ = writeln!(
            out,
            "{n_ok} of {n} thresholds met{}. A threshold is met when its figure is at most \
             its limit; a missing figure (the event never happened) is a breach.\n",
            if n_ok < n {
                format!(", **{} breached**", n - n_ok)
            } else {
                String::new()
            }
        );
        table_head(
            &mut out,
            &[
                "scenario",
                "run",
                "threshold",
                "figure",
                "limit",
                "basis",
                "verdict",
            ],
        );
        for row in &rows {
            table_row(&mut out, row);
        }
    }
    out.push('\n');

    // Failed checks.
    let mut failed = Vec::new();
    for sc in &doc.scenarios {
        for (i, r) in sc.runs.iter().enumerate() {
            for c in r.checks.iter().filter(|c| !c.ok) {
                let detail = one_line(&c.detail);
                failed.push(if detail.is_empty() {
                    format!("- {} run {}: {}", sc.id, i + 1, one_line(&c.name))
                } else {
                    format!("- {} run {}: {}: {detail}", sc.id, i + 1, one_line(&c.name))
                });
            }
        }
    }
    if !failed.is_empty() {
        out.push_str("## Failed checks\n\n");
        for f in &failed {
            out.push_str(f);
            out.push('\n');
        }
        out.push('\n');
    }

    // Errors by kind, where calls failed.
    let mut kinds = String::new();
    for sc in &doc.scenarios {
        for (i, r) in sc.runs.iter().enumerate() {
            if r.error_kinds.is_empty() {
                continue;
            }
            let list: Vec<String> = r
                .error_kinds
                .iter()
                .map(|(k, n)| format!("{} × {n}", code(k)))
                .collect();
            let _ = writeln!(kinds, "- {} run {}: {}", sc.id, i + 1, list.join(", "));
            for (k, sample) in &r.error_samples {
                let _ = writeln!(kinds, "  - {}: {}", code(k), code(&clip(sample, 300)));
            }
        }
    }
    if !kinds.is_empty() {
        out.push_str("## Errors by kind\n\n");
        out.push_str(&kinds);
        out.push('\n');
    }

    // Checks.
    out.push_str("## Checks\n\n");
    for sc in &doc.scenarios {
        let checks = sc.runs.iter().flat_map(|r| r.checks.iter());
        let (n, n_ok) = checks.fold((0, 0), |(n, k), c| (n + 1, k + usize::from(c.ok)));
        let ths = sc
            .runs
            .iter()
            .flat_map(|r| r.thresholds.iter())
            .chain(sc.thresholds.iter());
        let (m, m_ok) = ths.fold((0, 0), |(n, k), t| (n + 1, k + usize::from(t.ok)));
        let _ = write!(
            out,
            "- **{}** {} ({}): {n_ok}/{n} checks passed",
            sc.id,
            one_line(&sc.name),
            pass_fail(sc.passed)
        );
        if m > 0 {
            let _ = write!(out, ", {m_ok}/{m} thresholds met");
        }
        out.push('\n');
        if let Some(r) = sc.runs.first() {
            if !r.checks.is_empty() {
                let names: Vec<String> = r.checks.iter().map(|c| one_line(&c.name)).collect();
                let _ = writeln!(out, "  ({})", names.join("; "));
            }
        }
        for note in &sc.notes {
            let _ = writeln!(out, "  - {}", one_line(note));
        }
    }
    out.push('\n');

    out.push_str(
        "Times are seconds from the disruption instant (the kill; S5: the first eviction, \
         S8: the bad spec applied). `1st success` is the end of the client outage the \
         disruption caused, i.e. the first acknowledged call once the disruption took effect \
         (S5/S8 have no outage: it is the first call after t0). `errors` are calls that failed \
         after at most one explicit MCP re-initialize on a lost session (HTTP 404); \
         `session losses` counts those lost sessions separately. The load is open loop at a \
         fixed offered rate, so every scheduled call counts: a call that could not be made or \
         timed out is an error, never a skipped call. `lost` is acknowledged writes missing on \
         read-back (must be 0); MCP/operator restarts are container restarts.\n",
    );
    if let Some(c) = &doc.conformance {
        conformance(&mut out, c);
    }
    out
}

/// The official MCP conformance suite's verdict per scenario: the server
/// scenarios against the bundled workload server, the client scenarios
/// against the operator's prober.
fn conformance(out: &mut String, c: &Conformance) {
    out.push_str("\n## MCP conformance\n\n");
    if let Some(e) = &c.error {
        let _ = writeln!(out, "No results: {}.", one_line(e));
        return;
    }
    let (ok, bad, na) = c.counts();
    let _ = writeln!(
        out,
        "The official suite (`@modelcontextprotocol/conformance`, hack/conformance.sh), from {}: \
         **{ok} passed, {bad} failed**, {na} not applicable. `server` scenarios ran against the \
         bundled workload server, `client` ones against the operator's prober.\n",
        code(&c.source)
    );
    table_head(
        out,
        &[
            "run",
            "side",
            "server MCP_ERAS",
            "scenario",
            "verdict",
            "checks ok",
            "checks failed",
            "why",
        ],
    );
    for r in c.rows.iter().filter(|r| r.verdict != "n/a") {
        let verdict = match r.verdict.as_str() {
            "ok" => "passed",
            "FAILED" => "**failed**",
            other => other,
        };
        let why = if r.failed_checks.is_empty() {
            r.reason.clone()
        } else {
            format!("{} (failed: {})", r.reason, r.failed_checks.join(", "))
        };
        table_row(
            out,
            &[
                cell(&r.run),
                cell(&r.side),
                cell(&r.eras),
                cell(&r.scenario),
                verdict.to_string(),
                r.passed.to_string(),
                r.failed.to_string(),
                cell(&clip(&why, 300)),
            ],
        );
    }
    // Not applicable: one row per side and reason (dozens of auth scenarios
    // share one), each scenario named once however many runs listed it.
    let mut na: Vec<(&str, &str, Vec<&str>)> = Vec::new();
    for r in c.rows.iter().filter(|r| r.verdict == "n/a") {
        match na
            .iter_mut()
            .find(|(side, why, _)| (*side, *why) == (r.side.as_str(), r.reason.as_str()))
        {
            Some((_, _, names)) if names.contains(&r.scenario.as_str()) => {}
            Some((_, _, names)) => names.push(&r.scenario),
            None => na.push((&r.side, &r.reason, vec![&r.scenario])),
        }
    }
    if !na.is_empty() {
        out.push_str("\nNot applicable, and why:\n\n");
        table_head(out, &["side", "scenarios", "why"]);
        for (side, why, names) in na {
            table_row(
                out,
                &[cell(side), cell(&names.join(", ")), cell(&clip(why, 300))],
            );
        }
    }
}

// -- SVG -----------------------------------------------------------------------

const W: f64 = 960.0;
const LEFT: f64 = 150.0;
const RIGHT: f64 = 20.0;
const ROW_H: f64 = 90.0;
const ROW_GAP: f64 = 14.0;
const TOP: f64 = 50.0;
const LABEL_CHARS: usize = 22;

fn line(out: &mut String, s: String) {
    out.push_str(&s);
    out.push('\n');
}

/// The marker classes the stylesheet knows; anything else is "other".
fn mark_class(cls: &str) -> &'static str {
    match cls {
        "kill" => "kill",
        "pg" => "pg",
        "mcp" => "mcp",
        "first" => "first",
        _ => "other",
    }
}

/// Seconds between axis ticks for a plot spanning `span_ms`.
fn tick_step_ms(span_ms: i64) -> i64 {
    if span_ms <= 60_000 {
        5_000
    } else if span_ms <= 150_000 {
        10_000
    } else if span_ms <= 600_000 {
        30_000
    } else {
        [60_000, 120_000, 300_000, 600_000, 1_800_000]
            .into_iter()
            .find(|s| span_ms <= 20 * s)
            .unwrap_or(3_600_000)
    }
}

/// One run: green bars (ok calls per bucket) up, red bars (failed) down, and
/// vertical markers for the disruption, Postgres ready, MCP ready, first
/// success and the run's own marks.
fn panel(out: &mut String, run: &Run, label: &str, y: f64) {
    line(
        out,
        format!(
            r#"<text x="8" y="{:.1}" class="lbl">{}</text>"#,
            y + 22.0,
            xml(label)
        ),
    );
    line(
        out,
        format!(
            r#"<text x="8" y="{:.1}" class="{}">{}</text>"#,
            y + 40.0,
            if run.passed { "ok" } else { "bad" },
            if run.passed { "pass" } else { "FAIL" }
        ),
    );
    let tl = &run.timeline;
    let (Some(first), Some(last)) = (
        tl.iter().map(|b| b.t_unix_ms).min(),
        tl.iter().map(|b| b.t_unix_ms).max(),
    ) else {
        line(
            out,
            format!(
                r#"<text x="{:.1}" y="{:.1}" class="lbl">no timeline</text>"#,
                LEFT,
                y + 40.0
            ),
        );
        return;
    };
    line(
        out,
        format!(
            r#"<text x="8" y="{:.1}" class="sm">first ok {}</text>"#,
            y + 56.0,
            fmt_measure(run.first_success_s, "s")
        ),
    );
    line(
        out,
        format!(
            r#"<text x="8" y="{:.1}" class="sm">errors {}, lost {}</text>"#,
            y + 70.0,
            fmt_count(run.errors),
            fmt_count(run.lost_acked_writes)
        ),
    );
    line(
        out,
        format!(
            r#"<text x="8" y="{:.1}" class="sm">session losses {}</text>"#,
            y + 84.0,
            fmt_count(run.session_losses)
        ),
    );

    let bucket = if run.bucket_ms > 0 {
        run.bucket_ms
    } else {
        // Older reports: infer the bucket from the spacing.
        let mut ts: Vec<u64> = tl.iter().map(|b| b.t_unix_ms).collect();
        ts.sort_unstable();
        ts.windows(2)
            .map(|w| w[1] - w[0])
            .filter(|d| *d > 0)
            .min()
            .unwrap_or(1000)
    };
    let t0 = run.kill_unix_ms as f64;
    let start = first as f64;
    let end = (last + bucket) as f64;
    let span = (end - start).max(1.0);
    let plot_w = W - LEFT - RIGHT;
    let mid = y + ROW_H * 0.6;
    let peak = tl.iter().map(|b| b.ok.max(b.err)).max().unwrap_or(0).max(1) as f64;
    let sx = |t: f64| LEFT + (t - start) / span * plot_w;
    let bw = (bucket as f64 / span * plot_w - 1.0).max(1.0);

    line(
        out,
        format!(
            r#"<line x1="{LEFT:.1}" y1="{mid:.1}" x2="{:.1}" y2="{mid:.1}" class="axis"/>"#,
            W - RIGHT
        ),
    );
    let up_h = ROW_H * 0.5;
    let dn_h = ROW_H * 0.3;
    for b in tl {
        let x = sx(b.t_unix_ms as f64);
        if b.ok > 0 {
            let h = b.ok as f64 / peak * up_h;
            line(
                out,
                format!(
                    r#"<rect x="{x:.1}" y="{:.1}" width="{bw:.1}" height="{h:.1}" class="okb"/>"#,
                    mid - h
                ),
            );
        }
        if b.err > 0 {
            let h = (b.err as f64 / peak * dn_h).max(2.0);
            line(
                out,
                format!(
                    r#"<rect x="{x:.1}" y="{mid:.1}" width="{bw:.1}" height="{h:.1}" class="errb"/>"#
                ),
            );
        }
    }

    let mut marks: Vec<(String, f64, &str)> = vec![("kill".to_string(), t0, "kill")];
    for (v, name, cls) in [
        (run.pg_ready_s, "pg ready", "pg"),
        (run.mcp_ready_s, "MCP ready", "mcp"),
        (run.first_success_s, "1st ok", "first"),
    ] {
        if let Some(v) = v {
            marks.push((name.to_string(), t0 + v * 1000.0, cls));
        }
    }
    for m in &run.marks {
        marks.push((m.name.clone(), m.t_ms as f64, mark_class(&m.class)));
    }
    for (i, (name, t, cls)) in marks.iter().enumerate() {
        if !(start <= *t && *t <= end) {
            continue;
        }
        let x = sx(*t);
        line(
            out,
            format!(
                r#"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" class="m-{cls}"/>"#,
                y + 4.0,
                y + ROW_H - 4.0
            ),
        );
        line(
            out,
            format!(
                r#"<text x="{:.1}" y="{:.1}" class="mk m-{cls}t">{}</text>"#,
                x + 2.0,
                y + 12.0 + (i % 3) as f64 * 10.0,
                xml(name)
            ),
        );
    }

    // Seconds axis relative to the disruption.
    let t0 = run.kill_unix_ms as i64;
    let (start, end) = (first as i64, (last + bucket) as i64);
    let step = tick_step_ms(end - start);
    let mut t = t0 + (start - t0).div_euclid(step) * step;
    while t <= end {
        if t >= start {
            let x = sx(t as f64);
            line(
                out,
                format!(
                    r#"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" class="axis"/>"#,
                    y + ROW_H - 6.0,
                    y + ROW_H - 2.0
                ),
            );
            line(
                out,
                format!(
                    r#"<text x="{x:.1}" y="{:.1}" class="tick">{:+}s</text>"#,
                    y + ROW_H + 6.0,
                    (t - t0).div_euclid(1000)
                ),
            );
        }
        t += step;
    }
}

const STYLE: &str = "<style>\
.lbl{font-size:12px;font-weight:bold}.sm{font-size:10px;fill:#444}\
.tick{font-size:9px;fill:#666;text-anchor:middle}\
.ok{font-size:11px;fill:#1a7f37}.bad{font-size:11px;fill:#cf222e;font-weight:bold}\
.axis{stroke:#999;stroke-width:1}.okb{fill:#2da44e}.errb{fill:#cf222e}.mk{font-size:9px}\
.m-kill{stroke:#000;stroke-width:2}.m-pg{stroke:#0969da;stroke-dasharray:4 2}\
.m-mcp{stroke:#8250df;stroke-dasharray:4 2}.m-first{stroke:#1a7f37;stroke-dasharray:2 2}\
.m-other{stroke:#bf8700;stroke-dasharray:3 3}\
.m-killt{fill:#000}.m-pgt{fill:#0969da}.m-mcpt{fill:#8250df}.m-firstt{fill:#1a7f37}\
.m-othert{fill:#bf8700}\
</style>";

/// timeline.svg: one panel per measured run (checks-only runs have none).
pub fn svg(doc: &Report) -> String {
    let mut panels: Vec<(String, &Run)> = Vec::new();
    for sc in &doc.scenarios {
        for (i, r) in sc.runs.iter().enumerate() {
            if !measured(r) {
                continue;
            }
            let num = if sc.runs.len() > 1 {
                format!(" #{}", i + 1)
            } else {
                String::new()
            };
            let label = format!("{}{num} {}", sc.id, one_line(&sc.name));
            panels.push((label.chars().take(LABEL_CHARS).collect(), r));
        }
    }
    let h = TOP + panels.len().max(1) as f64 * (ROW_H + ROW_GAP) + 20.0;
    let mut out = String::new();
    line(
        &mut out,
        format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W:.1}" height="{h:.1}" viewBox="0 0 {W:.1} {h:.1}" font-family="sans-serif">"#
        ),
    );
    line(&mut out, STYLE.to_string());
    line(
        &mut out,
        format!(r##"<rect width="{W:.1}" height="{h:.1}" fill="#fff"/>"##),
    );
    line(
        &mut out,
        r#"<text x="8" y="20" font-size="15" font-weight="bold">mcp-operator e2e: tool calls per time bucket (green ok, red failed) around each disruption</text>"#
            .to_string(),
    );
    line(
        &mut out,
        r##"<text x="8" y="38" font-size="10" fill="#444">markers: disruption (black), Postgres ready (blue), all MCP replicas ready (purple), first acknowledged call after the disruption (green), other events (amber)</text>"##
            .to_string(),
    );
    if panels.is_empty() {
        line(
            &mut out,
            format!(
                r#"<text x="8" y="{:.1}" class="lbl">no timeline</text>"#,
                TOP + 40.0
            ),
        );
    }
    for (i, (label, r)) in panels.iter().enumerate() {
        panel(&mut out, r, label, TOP + i as f64 * (ROW_H + ROW_GAP));
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Check, Mark};

    /// 40 half-second buckets from 5 s before `kill`. Built through serde:
    /// the real crate's model only imports `Bucket` privately.
    fn set_timeline(r: &mut Run, kill: u64) {
        let buckets: Vec<Value> = (0..40u64)
            .map(|i| {
                serde_json::json!({
                    "t_unix_ms": kill - 5_000 + i * 500,
                    "t_s": i as f64 * 0.5,
                    "ok": 10 - (i % 10),
                    "err": i % 3,
                })
            })
            .collect();
        r.timeline = serde_json::from_value(Value::Array(buckets)).expect("buckets");
    }

    fn kill_run(first_success_s: Option<f64>) -> Run {
        let kill = 1_700_000_010_000;
        let mut r = Run {
            tag: "S1".into(),
            target: "notes".into(),
            kill_unix_ms: kill,
            pg_ready_s: Some(1.1),
            mcp_ready_s: Some(1.5),
            first_success_s,
            errors: Some(3),
            session_losses: Some(2),
            longest_outage_s: Some(4.25),
            acked_writes: Some(120),
            lost_acked_writes: Some(0),
            url_mode: Some("clusterip".into()),
            offered_rate: 20.0,
            bucket_ms: 500,
            marks: vec![Mark::other("evict 1", kill + 2_000)],
            ..Run::default()
        };
        set_timeline(&mut r, kill);
        r.check("acked writes read back", true, "");
        r.thresholds.push(Threshold::at_most(
            "first success after the kill",
            first_success_s,
            10.0,
            "s",
            "the seeds' target",
        ));
        r.thresholds
            .push(Threshold::zero("lost acknowledged writes", 0, "writes"));
        r.finish();
        r
    }

    fn doc(runs: Vec<Run>) -> Report {
        let mut sc = Scenario::with_runs(runs);
        sc.id = "S1".into();
        sc.name = "delete the Postgres pod (grace 0)".into();
        sc.notes.push("a note".into());
        sc.finish();
        let mut d = Report {
            scenarios: vec![sc],
            ..Report::default()
        };
        d.meta.server = Some("https://127.0.0.1:6443".into());
        d.meta.k8s_version = Some("v1.33.1".into());
        d.meta.started = "2025-01-01T00:00:00Z".into();
        d.meta.duration_s = 61.4;
        d.settings.rate = 20.0;
        d.settings.sessions = 4;
        d.settings.call_timeout_s = 5.0;
        d.settings.mcpservers.insert(
            "notes".into(),
            serde_json::json!({
                "readiness": {"periodSeconds": 1, "failureThreshold": 1},
                "pool": null,
                "remediation": {"unhealthyAfterSeconds": 10, "cooldownSeconds": 30},
                "env": [],
            }),
        );
        d.passed = d.scenarios.iter().all(|s| s.passed);
        d
    }

    fn threshold_lines(md: &str) -> Vec<&str> {
        let start = md.find("## Thresholds").expect("thresholds section");
        md[start..]
            .lines()
            .take_while(|l| !l.starts_with("## Failed") && !l.starts_with("## Checks"))
            .filter(|l| l.starts_with("| S"))
            .collect()
    }

    #[test]
    fn passing_report() {
        let md = markdown(&doc(vec![kill_run(Some(3.5))]));
        assert!(md.starts_with("# mcp-operator e2e report\n"));
        assert!(md.contains("result **PASS**"), "{md}");
        assert!(md.contains("20 calls/s, open loop, over 4 MCP sessions; call timeout 5 s"));
        assert!(md.contains(
            "McpServer `notes`: `readiness: {failureThreshold: 1, periodSeconds: 1}; \
             remediation: {cooldownSeconds: 30, unhealthyAfterSeconds: 10}`"
        ));
        assert!(md.contains(
            "| S1 delete the Postgres pod (grace 0) | 1 | pass | 1.10 | 1.50 | 3.50 | 3 | 2 | \
             4.25 | 120 | 0 | 0 | 0 | 0 | clusterip |"
        ));
        let rows = threshold_lines(&md);
        assert_eq!(rows.len(), 2, "{md}");
        assert_eq!(
            rows[0],
            "| S1 | 1 | first success after the kill | 3.50 s | ≤ 10.00 s | the seeds' target | ok |"
        );
        assert_eq!(
            rows[1],
            "| S1 | 1 | lost acknowledged writes | 0 writes | ≤ 0 writes | – | ok |"
        );
        assert!(md.contains("2 of 2 thresholds met."));
        assert!(!md.contains("BREACH"));
        assert!(!md.contains("## Failed checks"));
        assert!(md.contains("- **S1** delete the Postgres pod (grace 0) (pass): 1/1 checks passed, 2/2 thresholds met"));
        assert!(md.contains("  (acked writes read back)"));
        assert!(md.contains("  - a note"));
        assert!(md.contains("session losses"));
        assert!(md.contains("open loop at a fixed offered rate"));
    }

    #[test]
    fn breached_threshold_shows_figure_and_limit() {
        let md = markdown(&doc(vec![kill_run(Some(12.345))]));
        let rows = threshold_lines(&md);
        assert_eq!(
            rows[0],
            "| S1 | 1 | first success after the kill | 12.35 s | ≤ 10.00 s | the seeds' target | **BREACH** |"
        );
        assert!(md.contains("1 of 2 thresholds met, **1 breached**"));
        assert!(md.contains("result **FAIL**"));
        assert!(md.contains("| **FAIL** |"));
        // A breach alone is no failed check.
        assert!(!md.contains("## Failed checks"));
    }

    #[test]
    fn missing_figure_is_never_and_a_breach() {
        let mut d = doc(vec![kill_run(None), kill_run(Some(2.0))]);
        d.scenarios[0].p50_first_success_s = Some(2.0);
        d.scenarios[0].thresholds.push(Threshold::at_most(
            "p95 first success after the kill",
            None,
            10.0,
            "s",
            "failed kills count as infinite",
        ));
        let md = markdown(&d);
        let rows = threshold_lines(&md);
        assert_eq!(rows.len(), 5);
        assert_eq!(
            rows[0],
            "| S1 | 1 | first success after the kill | never | ≤ 10.00 s | the seeds' target | **BREACH** |"
        );
        assert_eq!(
            rows[4],
            "| S1 | all runs | p95 first success after the kill | never | ≤ 10.00 s | \
             failed kills count as infinite | **BREACH** |"
        );
        // p50 / p95 row under the first-success column.
        assert!(md.contains("|  | p50 / p95 |  |  |  | 2.00 / – |"), "{md}");
    }

    #[test]
    fn failed_checks_only_when_a_check_failed() {
        let mut r = kill_run(Some(3.0));
        r.check("no MCP pod restarted", false, "restarts: 2\nin pod x");
        r.finish();
        let md = markdown(&doc(vec![r]));
        assert!(md.contains(
            "## Failed checks\n\n- S1 run 1: no MCP pod restarted: restarts: 2 / in pod x\n"
        ));
        assert!(md.contains("1/2 checks passed"));
        let md = markdown(&doc(vec![kill_run(Some(3.0))]));
        assert!(!md.contains("Failed checks"));
    }

    #[test]
    fn setup_error_and_checks_only_runs() {
        let mut d = doc(vec![Run::checks_only(
            "S7",
            vec![Check::new("rejected", true, "")],
        )]);
        d.setup_error = Some("no cluster".into());
        d.meta.session_affinity_workaround = true;
        let md = markdown(&d);
        assert!(md.contains("**Setup failed**: no cluster\n"));
        assert!(md.contains("`--session-affinity`"));
        assert!(md.contains("| 1 | pass | – | – | – | – | – | – | – | – | – | – | – | – |"));
        assert!(md.contains("No thresholds."));
        let empty = markdown(&Report::default());
        assert!(empty.contains("No scenario ran."));
        assert!(empty.contains("Cluster `?` (Kubernetes ?), started ?"));
    }

    #[test]
    fn table_cells_are_escaped() {
        let mut r = kill_run(Some(1.0));
        r.thresholds[0].basis = "a | b".into();
        let md = markdown(&doc(vec![r]));
        assert!(md.contains("| a \\| b |"));
    }

    #[test]
    fn helpers() {
        assert_eq!(fmt_opt(None), "–");
        assert_eq!(fmt_opt(Some(1.005)), "1.00");
        assert_eq!(fmt_opt(Some(2.5)), "2.50");
        assert_eq!(fmt_num(0.1 + 0.2), "0.3");
        assert_eq!(fmt_measure(Some(3.0), "kills"), "3 kills");
        assert_eq!(fmt_measure(Some(f64::INFINITY), "s"), "never");
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(clip("abcdef", 3), "abc…");
        assert_eq!(tick_step_ms(60_000), 5_000);
        assert_eq!(tick_step_ms(3_600_000), 300_000);
        assert_eq!(
            compact(&serde_json::json!({"a": [1, "x"], "b": null})),
            "a: [1, x]"
        );
    }

    #[test]
    fn svg_is_well_formed_and_escaped() {
        let mut d = doc(vec![kill_run(Some(3.0))]);
        d.scenarios[0].name = "a<&>b".into();
        let kill = d.scenarios[0].runs[0].kill_unix_ms;
        d.scenarios[0].runs[0].marks.push(Mark {
            name: "it's \"odd\"".into(),
            t_ms: kill + 1_000,
            class: "weird\"class".into(),
        });
        let s = svg(&d);
        assert!(s.starts_with("<svg"));
        assert!(s.ends_with("</svg>\n"));
        assert!(s.contains("S1 a&lt;&amp;&gt;b"), "{s}");
        assert!(!s.contains("<&>"));
        assert!(s.contains("it&apos;s &quot;odd&quot;"));
        assert!(s.contains(r#"class="mk m-othert">evict 1</text>"#));
        assert!(!s.contains("weird"));
        assert!(s.contains("class=\"okb\"") && s.contains("class=\"errb\""));
        assert!(s.contains(r#"class="m-kill""#));
        assert!(
            s.contains(">-5s</text>") && s.contains(">+0s</text>") && s.contains(">+10s</text>")
        );
        assert!(s.contains("session losses 2"));
        assert!(s.contains("first ok 3.00 s"));
        let s = svg(&doc(vec![kill_run(None)]));
        assert!(s.contains("first ok never"));
        // Every element opened is closed (tags are one per line).
        for l in s.lines().skip(2).filter(|l| *l != "</svg>") {
            assert!(l.ends_with("/>") || l.ends_with("</text>"), "{l}");
        }
    }

    #[test]
    fn svg_empty_timeline() {
        let mut r = kill_run(Some(3.0));
        r.timeline.clear();
        let s = svg(&doc(vec![r]));
        assert!(s.contains("no timeline"));
        assert!(s.contains(">S1 delete the Postgres</text>"));
        assert!(s.ends_with("</svg>\n"));
        let s = svg(&Report::default());
        assert!(s.contains("no timeline"));
        // Checks-only runs get no panel.
        let s = svg(&doc(vec![Run::checks_only("S7", vec![])]));
        assert!(!s.contains("S1 delete"));
    }

    #[test]
    fn write_all_writes_three_files() {
        let dir = std::env::temp_dir().join(format!(
            "e2e-report-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let d = doc(vec![kill_run(Some(3.0))]);
        let paths = write_all(&dir.join("nested"), &d).unwrap();
        let json = std::fs::read_to_string(&paths.json).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back.scenarios[0].runs[0].timeline.len(), 40);
        assert!(json.ends_with("}\n"));
        assert_eq!(std::fs::read_to_string(&paths.md).unwrap(), markdown(&d));
        assert_eq!(std::fs::read_to_string(&paths.svg).unwrap(), svg(&d));
        assert_eq!(paths.md.file_name().unwrap(), "report.md");
        assert_eq!(paths.svg.file_name().unwrap(), "timeline.svg");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// conformance.json in the shape hack/conformance.sh writes (an older
    /// file without `side` is a server run).
    const CONFORMANCE_FIXTURE: &str = r#"{
  "rows": [
    {"run": "legacy", "eras": "both", "scenario": "server-initialize", "passed": 3, "failed": 0,
     "status": "passed", "expect": "pass", "verdict": "ok", "reason": "legacy initialize handshake", "failed_checks": []},
    {"run": "2026-only", "eras": "2026", "scenario": "dns-rebinding-protection", "passed": 1, "failed": 1,
     "status": "failed", "expect": "pass", "verdict": "FAILED", "reason": "a foreign Host gets 403",
     "failed_checks": ["dns-rebinding-host"]},
    {"run": "2026-07-28", "eras": "both", "scenario": "resources-list", "passed": 0, "failed": 1,
     "status": "failed", "expect": "n/a", "verdict": "n/a", "reason": "the server offers no | resources", "failed_checks": []},
    {"run": "2026-only", "eras": "2026", "scenario": "resources-list", "passed": 0, "failed": 0,
     "status": "failed", "expect": "n/a", "verdict": "n/a", "reason": "the server offers no | resources", "failed_checks": []},
    {"run": "2026-only", "eras": "2026", "scenario": "prompts-list", "passed": 0, "failed": 0,
     "status": "failed", "expect": "n/a", "verdict": "n/a", "reason": "the server offers no | resources", "failed_checks": []},
    {"run": "client", "side": "client", "eras": "-", "scenario": "initialize", "passed": 2, "failed": 0,
     "status": "passed", "expect": "pass", "verdict": "ok", "reason": "the prober's legacy check", "failed_checks": []}
  ],
  "failed": 1
}"#;

    #[test]
    fn conformance_results_are_a_section_of_the_report() {
        let dir = std::env::temp_dir().join(format!("mcp-e2e-conformance-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("conformance.json");
        std::fs::write(&path, CONFORMANCE_FIXTURE).expect("fixture");
        let c = Conformance::read(&path).expect("the file exists");
        assert_eq!(c.error, None);
        assert_eq!(c.counts(), (2, 1, 3));
        assert_eq!(c.rows[0].side, "server", "no side: a server scenario");
        let doc = Report {
            conformance: Some(c),
            ..Report::default()
        };
        let md = markdown(&doc);
        let section = md
            .split_once("## MCP conformance")
            .map(|(_, s)| s)
            .expect("a conformance section");
        assert!(
            section.contains("**2 passed, 1 failed**, 3 not applicable"),
            "{section}"
        );
        assert!(
            section.contains("| legacy | server | both | server-initialize | passed | 3 | 0 |"),
            "{section}"
        );
        assert!(
            section.contains("| **failed** |") && section.contains("(failed: dns-rebinding-host)"),
            "{section}"
        );
        assert!(
            section.contains(
                "| server | resources-list, prompts-list | the server offers no \\| resources |"
            ),
            "the reason of an n/a scenario, escaped: {section}"
        );
        assert!(
            section.contains("| client | client | - | initialize | passed |"),
            "{section}"
        );
        // The JSON report carries it too, and reads back.
        let back: Report =
            serde_json::from_str(&serde_json::to_string(&doc).expect("json")).expect("read back");
        assert_eq!(back.conformance, doc.conformance);

        // No file: no section; a broken file: the section says why.
        assert_eq!(Conformance::read(&dir.join("absent.json")), None);
        assert!(!markdown(&Report::default()).contains("MCP conformance"));
        std::fs::write(&path, "{not json").expect("broken fixture");
        let broken = Conformance::read(&path).expect("the file exists");
        let md = markdown(&Report {
            conformance: Some(broken),
            ..Report::default()
        });
        assert!(
            md.contains("## MCP conformance\n\nNo results: cannot read"),
            "{md}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
