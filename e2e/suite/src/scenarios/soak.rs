//! `make soak`: S1 and S2 alternately, many times (not in CI), for the
//! distribution of first success rather than one sample.

use anyhow::Result;

use crate::cluster::{log, NOTES};
use crate::measure::{self as m, percentile};
use crate::model::{Check, Run, Scenario, Threshold};
use crate::scenarios::kill::{pg_kill_run, Kill};
use crate::Ctx;

pub async fn soak(ctx: &Ctx) -> Result<Scenario> {
    let n = ctx.opts.soak_runs;
    let mut runs = Vec::new();
    for i in 1..=n {
        let (how, name) = if i % 2 == 1 {
            (Kill::ForceDelete, "S1")
        } else {
            (Kill::Kill9, "S2")
        };
        let tag = format!("SOAK-{i:03}-{name}");
        log(format!("soak: {i}/{n} ({name})"));
        match pg_kill_run(ctx, &tag, NOTES, how, None).await {
            Ok(r) => runs.push(r),
            Err(e) => runs.push(Run::checks_only(
                &tag,
                vec![Check::new("kill measured", false, format!("{e:#}"))],
            )),
        }
    }
    let fs: Vec<Option<f64>> = runs.iter().map(|r| r.first_success_s).collect();
    let after_pg: Vec<Option<f64>> = runs
        .iter()
        .map(|r| r.first_success_s.zip(r.pg_ready_s).map(|(f, p)| f - p))
        .collect();
    let mut sc = Scenario::with_runs(runs);
    sc.thresholds = vec![
        Threshold::at_most(
            "p95 first success after Postgres ready",
            percentile(&after_pg, 95.0),
            m::SLACK_AFTER_PG_READY_S,
            "s",
            "failed kills count as infinite",
        ),
        Threshold::at_most(
            "p95 first success after the kill",
            percentile(&fs, 95.0),
            m::WITHIN_AFTER_KILL_S,
            "s",
            "failed kills count as infinite",
        ),
    ];
    let lost: u64 = sc.runs.iter().filter_map(|r| r.lost_acked_writes).sum();
    let restarts: u64 = sc.runs.iter().map(|r| r.mcp_pod_restarts).sum();
    sc.notes.push(format!(
        "{} kills: first success p50 {} / p95 {} / p99 {} / max {} s; lost acknowledged writes {lost}; MCP container restarts {restarts}",
        sc.runs.len(),
        m::fmt(percentile(&fs, 50.0)),
        m::fmt(percentile(&fs, 95.0)),
        m::fmt(percentile(&fs, 99.0)),
        m::fmt(percentile(&fs, 100.0)),
    ));
    Ok(sc)
}
