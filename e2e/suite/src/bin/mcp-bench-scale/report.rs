//! report.json and report.md from every run, the side-by-side ratios, the
//! goals at N = 1,000, and the thresholds every run of ours must pass.
use crate::run::RunRecord;
use anyhow::{Context as _, Result};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Opts {
    /// Directory of the runs' JSON files
    #[arg(long)]
    runs: PathBuf,
    /// Where report.json and report.md go
    #[arg(long)]
    out: PathBuf,
    /// The machine and settings, one line each, for the report's header
    #[arg(long = "note")]
    notes: Vec<String>,
    /// Fail when a goal at N = 1,000 is missed (not only the thresholds)
    #[arg(long)]
    goals: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    notes: &'a [String],
    runs: &'a [RunRecord],
    ratios: Vec<Ratio>,
    thresholds: Vec<Check>,
    goals: Vec<Check>,
}

#[derive(Serialize, Clone)]
struct Ratio {
    n: usize,
    /// ours / ToolHive's, per figure (lower is better for all of them).
    converge: Option<f64>,
    rss_peak: Option<f64>,
    rss_idle: Option<f64>,
    cpu_converge: Option<f64>,
    cpu_idle: Option<f64>,
    requests: Option<f64>,
}

#[derive(Serialize, Clone)]
struct Check {
    what: String,
    value: String,
    ok: bool,
}

const OURS: &str = "mcp-operator";
const PEER: &str = "toolhive";

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn requests(r: &RunRecord) -> Option<f64> {
    Some((r.reads? + r.writes?) as f64)
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    v.map_or("—".into(), |v| format!("{v:.digits$}"))
}

pub fn report(o: &Opts) -> Result<bool> {
    let mut runs: Vec<RunRecord> = Vec::new();
    for e in std::fs::read_dir(&o.runs).with_context(|| format!("read {}", o.runs.display()))? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "json") {
            let text = std::fs::read_to_string(&p)?;
            runs.push(
                serde_json::from_str(&text).with_context(|| format!("parse {}", p.display()))?,
            );
        }
    }
    runs.sort_by(|a, b| (a.n, &a.operator).cmp(&(b.n, &b.operator)));
    let find = |op: &str, n: usize| runs.iter().find(|r| r.operator == op && r.n == n);

    let mut ratios = Vec::new();
    let mut thresholds = Vec::new();
    let mut goals = Vec::new();
    for r in runs.iter().filter(|r| r.operator == OURS) {
        let n = r.n;
        thresholds.push(Check {
            what: format!("N={n}: converged, no error"),
            value: if r.errors.is_empty() {
                fmt(r.converge_s, 1) + " s"
            } else {
                r.errors.join("; ")
            },
            ok: r.errors.is_empty() && r.converge_s.is_some(),
        });
        thresholds.push(Check {
            what: format!("N={n}: idle writes = 0"),
            value: format!(
                "{} /min {:?}",
                fmt(r.idle_writes_per_min, 1),
                r.idle_writes_by_kind
            ),
            ok: r.idle_writes_per_min == Some(0.0),
        });
        thresholds.push(Check {
            what: format!("N={n}: outage fan-out ≤ 5 s"),
            value: fmt(r.fanout_s, 2) + " s",
            ok: r.fanout_s.is_some_and(|v| v <= 5.0),
        });
        let peer = find(PEER, n);
        if let Some(p) = peer {
            ratios.push(Ratio {
                n,
                converge: ratio(r.converge_s, p.converge_s),
                rss_peak: ratio(r.rss_peak_mib, p.rss_peak_mib),
                rss_idle: ratio(r.rss_idle_mib, p.rss_idle_mib),
                cpu_converge: ratio(r.cpu_converge_s, p.cpu_converge_s),
                cpu_idle: ratio(r.cpu_idle_s_per_min, p.cpu_idle_s_per_min),
                requests: ratio(requests(r), requests(p)),
            });
        }
        if n == 1000 {
            let le = |what: &str, v: Option<f64>, max: f64, unit: &str| Check {
                what: what.into(),
                value: format!("{} {unit}", fmt(v, 2)),
                ok: v.is_some_and(|v| v <= max),
            };
            goals.push(le("N=1000: converge ≤ 60 s", r.converge_s, 60.0, "s"));
            goals.push(le("N=1000: idle RSS ≤ 64 MiB", r.rss_idle_mib, 64.0, "MiB"));
            goals.push(le(
                "N=1000: peak RSS ≤ 1/3 of ToolHive's",
                peer.and_then(|p| ratio(r.rss_peak_mib, p.rss_peak_mib)),
                1.0 / 3.0,
                "×",
            ));
            goals.push(le(
                "N=1000: CPU to converge ≤ 1/3 of ToolHive's",
                peer.and_then(|p| ratio(r.cpu_converge_s, p.cpu_converge_s)),
                1.0 / 3.0,
                "×",
            ));
            goals.push(le(
                "N=1000: idle writes = 0",
                r.idle_writes_per_min,
                0.0,
                "/min",
            ));
            goals.push(le("N=1000: outage fan-out ≤ 5 s", r.fanout_s, 5.0, "s"));
        }
        if n == 3000 {
            goals.push(Check {
                what:
                    "N=3000: works within the chart's memory limit (256 MiB, enforced by a cgroup)"
                        .into(),
                value: format!("peak {} MiB", fmt(r.rss_peak_mib, 0)),
                ok: r.errors.is_empty() && r.rss_peak_mib.is_some_and(|v| v <= 256.0),
            });
        }
    }
    for r in runs
        .iter()
        .filter(|r| r.operator != OURS && !r.errors.is_empty())
    {
        thresholds.push(Check {
            what: format!("{} N={}: the peer's run completed", r.operator, r.n),
            value: r.errors.join("; "),
            ok: false,
        });
    }

    let rep = Report {
        notes: &o.notes,
        runs: &runs,
        ratios: ratios.clone(),
        thresholds: thresholds.clone(),
        goals: goals.clone(),
    };
    std::fs::create_dir_all(&o.out)?;
    std::fs::write(
        o.out.join("report.json"),
        serde_json::to_string_pretty(&rep)? + "\n",
    )?;
    std::fs::write(o.out.join("report.md"), markdown(&rep))?;
    let thresholds_ok = thresholds.iter().all(|c| c.ok);
    let goals_ok = goals.iter().all(|c| c.ok);
    for c in thresholds.iter().chain(&goals) {
        eprintln!(
            "{} {}: {}",
            if c.ok { "ok  " } else { "FAIL" },
            c.what,
            c.value
        );
    }
    let passed = thresholds.iter().filter(|c| c.ok).count();
    println!(
        "bench checks: {passed} passed, {} failed (thresholds; goals: {} of {} met)",
        thresholds.len() - passed,
        goals.iter().filter(|c| c.ok).count(),
        goals.len()
    );
    eprintln!("wrote {}", o.out.join("report.md").display());
    Ok(thresholds_ok && (goals_ok || !o.goals))
}

fn markdown(r: &Report) -> String {
    let mut s = String::from("# Scale benchmark\n\n");
    for n in r.notes {
        let _ = writeln!(s, "- {n}");
    }
    s.push_str("\n| operator | N | converge s (all pods Ready s) | peak RSS MiB | idle RSS MiB | CPU-s to converge | idle CPU-s/min | reads | writes | idle reads/min | idle writes/min (+ Lease renewals) | idle reconciles/min | reconcile p50 / p99 s | fan-out s (down / back) | spec rollout s |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for x in r.runs {
        let _ = writeln!(
            s,
            "| {} {} | {} | {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} (+{}) | {} | {} / {} | {} / {} | {} |",
            x.operator,
            x.version,
            x.n,
            fmt(x.converge_s, 1),
            fmt(x.pods_ready_s, 1),
            fmt(x.rss_peak_mib, 0),
            fmt(x.rss_idle_mib, 0),
            fmt(x.cpu_converge_s, 1),
            fmt(x.cpu_idle_s_per_min, 2),
            x.reads.map_or("—".into(), |v| v.to_string()),
            x.writes.map_or("—".into(), |v| v.to_string()),
            fmt(x.idle_reads_per_min, 0),
            fmt(x.idle_writes_per_min, 1),
            fmt(x.idle_lease_writes_per_min, 0),
            fmt(x.idle_reconciles_per_min, 0),
            fmt(x.reconcile_p50_s, 3),
            fmt(x.reconcile_p99_s, 3),
            fmt(x.fanout_s, 2),
            fmt(x.fanout_back_s, 2),
            fmt(x.spec_rollout_s, 1),
        );
    }
    if !r.ratios.is_empty() {
        s.push_str("\nRatios, mcp-operator / ToolHive (below 1: ours is lower):\n\n| N | converge | peak RSS | idle RSS | CPU to converge | idle CPU | requests to converge |\n|---:|---:|---:|---:|---:|---:|---:|\n");
        for x in &r.ratios {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} |",
                x.n,
                fmt(x.converge, 2),
                fmt(x.rss_peak, 2),
                fmt(x.rss_idle, 2),
                fmt(x.cpu_converge, 2),
                fmt(x.cpu_idle, 2),
                fmt(x.requests, 2)
            );
        }
    }
    let split: Vec<_> = r
        .runs
        .iter()
        .filter(|x| !x.writes_by_kind.is_empty())
        .collect();
    if !split.is_empty() {
        s.push_str("\nWrites to converge, per server, by request (from the audit log):\n\n");
        for x in split {
            let per = |c: u64| c as f64 / x.n.max(1) as f64;
            let parts: Vec<String> = x
                .writes_by_kind
                .iter()
                .map(|(k, c)| format!("{k} {:.2}", per(*c)))
                .collect();
            let _ = writeln!(s, "- {} N={}: {}", x.operator, x.n, parts.join(", "));
        }
    }
    let timed: Vec<_> = r.runs.iter().filter(|x| !x.pipeline.is_empty()).collect();
    if !timed.is_empty() {
        s.push_str("\nWhere converging went: seconds after the last create until all N servers (2N pods) reached each stage:\n\n");
        for x in timed {
            let parts: Vec<String> = x
                .pipeline
                .iter()
                .map(|(stage, t)| format!("{stage} {t:.1}"))
                .collect();
            let per = |r: f64| r / x.n.max(1) as f64;
            let stale = x
                .reconciles_stale
                .map(|r| format!(", {:.2} of them stale-cache skips", per(r)))
                .unwrap_or_default();
            let reconciles = x
                .reconciles
                .map(|r| format!(" ({:.1} reconciles per server{stale})", per(r)))
                .unwrap_or_default();
            // Every Service's ClusterIP is allocated one at a time by the
            // API server: when their sum nears the converge time, Services
            // were the queue the servers waited in.
            let ips = match (x.cluster_ip_allocations, x.cluster_ip_allocation_s) {
                (Some(n), Some(secs)) if n > 0.0 => format!(
                    "; the API server allocated {n:.0} ClusterIPs one at a time in {secs:.1} s ({:.0} ms each)",
                    1000.0 * secs / n
                ),
                _ => String::new(),
            };
            let cpu = cpu_line(x);
            let _ = writeln!(
                s,
                "- {} N={}: {}{reconciles}{ips}{cpu}",
                x.operator,
                x.n,
                parts.join(", ")
            );
        }
    }
    render_checks(r, s)
}

/// Whose CPU the converge time was, largest first, and how busy the machine
/// was; empty for a run recorded without it.
fn cpu_line(x: &RunRecord) -> String {
    if x.converge_cpu_by_process.is_empty() {
        return String::new();
    }
    let mut by: Vec<(&String, &f64)> = x.converge_cpu_by_process.iter().collect();
    by.sort_by(|a, b| b.1.total_cmp(a.1));
    let total: f64 = by.iter().map(|(_, c)| **c).sum();
    let parts: Vec<String> = by
        .iter()
        .map(|(name, c)| format!("{name} {c:.1}"))
        .collect();
    let busy = x
        .converge_machine_busy
        .map(|b| format!(", the machine's cores {:.0} % busy", 100.0 * b))
        .unwrap_or_default();
    let ours = x
        .converge_cpu_by_process
        .get(&x.operator)
        .map(|c| format!(" (the operator {:.0} %)", 100.0 * c / total.max(1e-9)))
        .unwrap_or_default();
    format!(
        "; CPU-s from the first create to converged: {}{ours}{busy}",
        parts.join(", ")
    )
}

/// The thresholds and goals, after the tables.
fn render_checks(r: &Report, mut s: String) -> String {
    for (title, checks) in [
        ("Thresholds (asserted)", &r.thresholds),
        ("Goals", &r.goals),
    ] {
        if checks.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n## {title}\n");
        for c in checks {
            let _ = writeln!(
                s,
                "- {} {}: {}",
                if c.ok { "✅" } else { "❌" },
                c.what,
                c.value
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_line_names_the_largest_first_and_the_operator_share() {
        let mut x = RunRecord {
            operator: "mcp-operator".into(),
            ..Default::default()
        };
        assert_eq!(cpu_line(&x), "", "a run recorded without it");
        x.converge_cpu_by_process = [
            ("etcd".to_string(), 12.4),
            ("kube-apiserver".to_string(), 100.8),
            ("mcp-operator".to_string(), 8.0),
        ]
        .into();
        x.converge_machine_busy = Some(0.994);
        assert_eq!(
            cpu_line(&x),
            "; CPU-s from the first create to converged: kube-apiserver 100.8, etcd 12.4, \
             mcp-operator 8.0 (the operator 7 %), the machine's cores 99 % busy"
        );
    }
}
