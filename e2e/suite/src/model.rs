//! What the suite records: runs, their checks and thresholds, scenarios and
//! the report. Serialised as report.json; report.md and timeline.svg are
//! rendered from it.

use std::collections::BTreeMap;

use mcp_workload::report::Bucket;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A yes/no verdict with the evidence behind it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl Check {
    pub fn new(name: impl Into<String>, ok: bool, detail: impl std::fmt::Display) -> Self {
        Self {
            name: name.into(),
            ok,
            detail: detail.to_string(),
        }
    }
}

/// A measured figure against its limit: `figure <= limit` passes. A missing
/// figure (the thing never happened) is a breach.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Threshold {
    pub name: String,
    pub figure: Option<f64>,
    pub limit: f64,
    /// "s", "calls", "writes", ...
    pub unit: String,
    pub ok: bool,
    /// How the limit is derived, e.g. "Postgres ready (1.1 s) + 2.5 s".
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub basis: String,
}

impl Threshold {
    pub fn at_most(
        name: impl Into<String>,
        figure: Option<f64>,
        limit: f64,
        unit: &str,
        basis: impl Into<String>,
    ) -> Self {
        let ok = figure.is_some_and(|f| f.is_finite() && f <= limit + 1e-9);
        Self {
            name: name.into(),
            figure,
            limit,
            unit: unit.to_string(),
            ok,
            basis: basis.into(),
        }
    }

    /// A count that must be zero.
    pub fn zero(name: impl Into<String>, figure: u64, unit: &str) -> Self {
        Self::at_most(name, Some(figure as f64), 0.0, unit, "")
    }
}

/// A vertical marker on the timeline.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Mark {
    pub name: String,
    pub t_ms: u64,
    /// "kill", "pg", "mcp", "first" or "other" (the SVG colour).
    pub class: String,
}

impl Mark {
    pub fn other(name: impl Into<String>, t_ms: u64) -> Self {
        Self {
            name: name.into(),
            t_ms,
            class: "other".into(),
        }
    }
}

/// An Event the operator published about an action.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ActionEvent {
    pub reason: String,
    pub note: String,
    pub t_ms: u64,
    pub count: u64,
}

/// One measured run: load through the Service while something is disrupted.
/// Times are seconds from `kill_unix_ms` (the disruption instant).
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Run {
    pub tag: String,
    pub target: String,
    pub kill_unix_ms: u64,
    pub pg_ready_s: Option<f64>,
    /// The Postgres Service routed to the new pod again: the first TCP connect
    /// from this host through its ClusterIP that succeeded after `pg_ready_s`
    /// (see `route`). Between the two: endpoint propagation and kube-proxy.
    #[serde(default)]
    pub pg_routed_s: Option<f64>,
    /// First instant from which all desired MCP replicas stayed ready to the
    /// end of the observation.
    pub mcp_ready_s: Option<f64>,
    /// First acknowledged call once the disruption took effect.
    pub first_success_s: Option<f64>,
    /// Calls that failed (after the client's one explicit re-initialize on a
    /// lost session).
    pub errors: Option<u64>,
    /// MCP sessions the server no longer knew (404), each re-initialized once.
    pub session_losses: Option<u64>,
    pub offered_calls: Option<u64>,
    pub longest_outage_s: Option<f64>,
    pub acked_writes: Option<u64>,
    pub lost_acked_writes: Option<u64>,
    pub unverified_acked_writes: Option<u64>,
    pub mcp_pod_restarts: u64,
    pub mcp_pods_replaced: u64,
    pub remediation_actions: u64,
    pub operator_restarts: u64,
    pub operator_pods_replaced: u64,
    pub min_ready_replicas: u64,
    pub error_kinds: BTreeMap<String, u64>,
    pub error_samples: BTreeMap<String, String>,
    /// How the host reached the Service: "clusterip" or "port-forward".
    pub url_mode: Option<String>,
    pub offered_rate: f64,
    pub bucket_ms: u64,
    pub timeline: Vec<Bucket>,
    pub marks: Vec<Mark>,
    pub action_events: Vec<ActionEvent>,
    /// Scenario-specific facts (evictions, the rollback hold, ...).
    pub info: BTreeMap<String, Value>,
    pub checks: Vec<Check>,
    pub thresholds: Vec<Threshold>,
    pub passed: bool,
}

impl Run {
    /// A run that is only checks (S7).
    pub fn checks_only(tag: &str, checks: Vec<Check>) -> Self {
        let mut r = Run {
            tag: tag.to_string(),
            checks,
            ..Run::default()
        };
        r.finish();
        r
    }

    /// First success minus Postgres ready (None: either never happened).
    pub fn after_pg_ready_s(&self) -> Option<f64> {
        self.first_success_s
            .zip(self.pg_ready_s)
            .map(|(f, p)| f - p)
    }

    /// Postgres ready to its Service routing again (Kubernetes' part).
    pub fn route_delay_s(&self) -> Option<f64> {
        self.pg_routed_s.zip(self.pg_ready_s).map(|(x, p)| x - p)
    }

    /// The Service routing again to the first success (the MCP side's part).
    pub fn after_route_s(&self) -> Option<f64> {
        self.first_success_s
            .zip(self.pg_routed_s)
            .map(|(f, x)| f - x)
    }

    pub fn check(&mut self, name: impl Into<String>, ok: bool, detail: impl std::fmt::Display) {
        self.checks.push(Check::new(name, ok, detail));
    }

    /// Threshold: no call failed (a run without the figure counts as failed).
    pub fn require_no_failed_calls(&mut self) {
        self.thresholds.push(Threshold::zero(
            "failed calls",
            self.errors.unwrap_or(u64::MAX),
            "calls",
        ));
    }

    pub fn finish(&mut self) {
        self.passed = self.checks.iter().all(|c| c.ok) && self.thresholds.iter().all(|t| t.ok);
    }

    /// A number the disruption recorded in `info` (a unix ms time, say).
    pub fn info_u64(&self, key: &str) -> Option<u64> {
        self.info.get(key).and_then(|v| v.as_u64())
    }

    /// A string the disruption recorded in `info` ("" when absent).
    pub fn info_str(&self, key: &str) -> String {
        self.info
            .get(key)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    }
}

/// A scenario: its runs and the thresholds over all of them (S3's p95).
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Scenario {
    pub id: String,
    pub name: String,
    pub passed: bool,
    pub runs: Vec<Run>,
    pub thresholds: Vec<Threshold>,
    pub p50_first_success_s: Option<f64>,
    pub p95_first_success_s: Option<f64>,
    pub notes: Vec<String>,
    pub duration_s: f64,
}

impl Scenario {
    pub fn with_runs(runs: Vec<Run>) -> Self {
        Self {
            runs,
            ..Self::default()
        }
    }

    pub fn finish(&mut self) {
        self.passed = !self.runs.is_empty()
            && self.runs.iter().all(|r| r.passed)
            && self.thresholds.iter().all(|t| t.ok);
    }

    /// One line per failed check or breached threshold, for the log and for
    /// the last lines CI shows.
    pub fn failures(&self) -> Vec<String> {
        let breached = |t: &Threshold| {
            format!(
                "breached: {}: {} > {} {}",
                t.name,
                crate::measure::fmt(t.figure),
                t.limit,
                t.unit
            )
        };
        self.runs
            .iter()
            .flat_map(|r| {
                r.checks
                    .iter()
                    .filter(|c| !c.ok)
                    .map(|c| {
                        format!(
                            "failed: {}: {}",
                            c.name,
                            c.detail.chars().take(300).collect::<String>()
                        )
                    })
                    .chain(r.thresholds.iter().filter(|t| !t.ok).map(breached))
            })
            .chain(self.thresholds.iter().filter(|t| !t.ok).map(breached))
            .collect()
    }

    pub fn checks_passed_failed(&self) -> (usize, usize) {
        let mut ok = 0;
        let mut bad = 0;
        let verdicts = self
            .runs
            .iter()
            .flat_map(|r| {
                r.checks
                    .iter()
                    .map(|c| c.ok)
                    .chain(r.thresholds.iter().map(|t| t.ok))
            })
            .chain(self.thresholds.iter().map(|t| t.ok));
        for v in verdicts {
            if v {
                ok += 1;
            } else {
                bad += 1;
            }
        }
        (ok, bad)
    }
}

/// The settings that produced the figures.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Settings {
    /// Offered load, calls per second (open loop).
    pub rate: f64,
    /// MCP sessions the load is spread over.
    pub sessions: usize,
    pub call_timeout_s: f64,
    /// Seconds of load before each disruption.
    #[serde(default)]
    pub warmup_s: f64,
    /// Seconds measured after a single kill (S1, S2, ...) and after each of
    /// many (S3, S19), at least until 5 s after Postgres is ready.
    #[serde(default)]
    pub window_s: f64,
    #[serde(default)]
    pub repeat_window_s: f64,
    /// Where the MCP client ran: "host" or "cluster" (a pod).
    #[serde(default)]
    pub load_from: Option<String>,
    /// The registry every image was pulled from (`--image-repository`).
    #[serde(default)]
    pub image_repository: Option<String>,
    /// McpServer name -> the settings that shape recovery (readiness probe,
    /// pool acquire timeout, remediation timings), as applied.
    pub mcpservers: BTreeMap<String, Value>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Meta {
    pub server: Option<String>,
    pub k8s_version: Option<String>,
    pub started: String,
    pub duration_s: f64,
    pub session_affinity_workaround: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Report {
    pub meta: Meta,
    pub settings: Settings,
    pub passed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup_error: Option<String>,
    pub scenarios: Vec<Scenario>,
    /// The official MCP conformance suite's results (hack/conformance.sh),
    /// when the run was given them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conformance: Option<Conformance>,
}

/// conformance.json as hack/conformance.sh writes it, plus where it came from.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Conformance {
    /// The file read.
    #[serde(default)]
    pub source: String,
    /// Why the file could not be read, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub rows: Vec<ConformanceRow>,
    /// Scenarios that should pass and did not.
    #[serde(default)]
    pub failed: usize,
}

/// One scenario of one run of the conformance suite.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ConformanceRow {
    /// Which suite and server build: `legacy`, `2026-07-28`, `2026-only`,
    /// or a client run.
    pub run: String,
    /// `server` (the suite against the bundled server) or `client` (the
    /// suite's server against the operator's prober).
    #[serde(default = "server_side")]
    pub side: String,
    /// MCP_ERAS of the bundled server (`-` for client scenarios).
    #[serde(default)]
    pub eras: String,
    pub scenario: String,
    #[serde(default)]
    pub passed: u64,
    #[serde(default)]
    pub failed: u64,
    /// `ok`, `FAILED` or `n/a`.
    pub verdict: String,
    /// Why the scenario applies as it does, or why it does not.
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub failed_checks: Vec<String>,
}

fn server_side() -> String {
    "server".into()
}

impl Conformance {
    /// Reads conformance.json; `None` when there is no such file (the suite
    /// was not run), a [`Conformance`] with `error` when it is unreadable.
    pub fn read(path: &std::path::Path) -> Option<Self> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => return Some(Self::unreadable(path, e)),
        };
        Some(match serde_json::from_slice::<Self>(&text) {
            Ok(c) => Self {
                source: path.display().to_string(),
                ..c
            },
            Err(e) => Self::unreadable(path, e),
        })
    }

    fn unreadable(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        Self {
            source: path.display().to_string(),
            error: Some(format!("cannot read {}: {e}", path.display())),
            ..Self::default()
        }
    }

    /// (ok, FAILED, n/a) scenarios.
    pub fn counts(&self) -> (usize, usize, usize) {
        let n = |v: &str| self.rows.iter().filter(|r| r.verdict == v).count();
        (n("ok"), n("FAILED"), n("n/a"))
    }
}

impl Report {
    /// (passed, failed) over every check and threshold of every run.
    pub fn verdicts(&self) -> (usize, usize) {
        self.scenarios
            .iter()
            .map(Scenario::checks_passed_failed)
            .fold((0, 0), |(a, b), (c, d)| (a + c, b + d))
    }
}
