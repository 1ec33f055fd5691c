//! S20: what GitOps tools see. kstatus (`sigs.k8s.io/cli-utils`, what Flux and
//! cli-utils appliers wait on) and the chart's Argo CD health check (Lua, run
//! the way Argo CD runs it) evaluated on live McpServers by
//! `hack/gitops-health`: the ready `notes`; a server created, then rolled out
//! to a new spec; one whose Secret is missing. And the chart's alerts and
//! dashboard: every metric they name is on the live leader's /metrics.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use kube::api::{Patch, PatchParams};
use serde::Deserialize;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::cluster::{log, manifest, repo_root, Ctx, NOTES, OP_NS};
use crate::model::{Check, Run, Scenario};

const GITOPS: &str = "notes-gitops";
const MISSING_SECRET: &str = "bad-missing-secret";
/// How often the states are sampled while they change.
const EVERY: Duration = Duration::from_millis(200);

#[derive(Deserialize, Debug, Clone, PartialEq)]
struct Health {
    status: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize, Debug, Clone)]
struct Verdict {
    kstatus: Health,
    argocd: Health,
}

impl Verdict {
    /// What a change is: the two verdicts and the reason Argo CD's message
    /// starts with (RollingOut, Remediating, ...).
    fn key(&self) -> (String, String, String) {
        let reason = self.argocd.message.split(':').next().unwrap_or_default();
        (
            self.kstatus.status.clone(),
            self.argocd.status.clone(),
            reason.to_string(),
        )
    }
}

/// The tool: `GITOPS_HEALTH` (run-suite.sh builds it), else the cache's.
fn tool() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("GITOPS_HEALTH").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let cache = std::env::var_os("MCP_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/mcp-operator")))
        .ok_or_else(|| anyhow!("neither GITOPS_HEALTH nor HOME is set"))?;
    let p = cache.join("bin/gitops-health");
    if !p.is_file() {
        bail!("{} not built: run hack/gitops-health/build.sh", p.display());
    }
    Ok(p)
}

/// kstatus and Argo CD's verdict on the McpServer `name` as it is now.
async fn verdict(ctx: &Ctx, tool: &PathBuf, name: &str) -> Result<Verdict> {
    let obj = ctx.mcps_api().get(name).await?;
    let input = serde_json::to_vec(&obj)?;
    let lua = repo_root().join("charts/mcp-operator/argocd/health.lua");
    let mut child = Command::new(tool)
        .arg("-lua")
        .arg(&lua)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("running {}", tool.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(&input).await?;
    }
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .map_err(|_| anyhow!("gitops-health did not answer in 10 s"))??;
    if !out.status.success() {
        bail!(
            "gitops-health exited {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(line.trim()).with_context(|| format!("gitops-health printed {line:?}"))
}

/// The verdicts over time (seconds from `t0`), each change once, until
/// `done` holds or `limit` passes.
async fn follow(
    ctx: &Ctx,
    tool: &PathBuf,
    name: &str,
    t0: Instant,
    limit: Duration,
    done: impl Fn(&Verdict) -> bool,
) -> Vec<(f64, Verdict)> {
    let mut seen: Vec<(f64, Verdict)> = Vec::new();
    while t0.elapsed() < limit {
        match verdict(ctx, tool, name).await {
            Ok(v) => {
                let fin = done(&v);
                if seen.last().is_none_or(|(_, l)| l.key() != v.key()) {
                    seen.push((t0.elapsed().as_secs_f64(), v));
                }
                if fin {
                    break;
                }
            }
            Err(e) => log(format!("S20: {name}: {e:#}")),
        }
        tokio::time::sleep(EVERY).await;
    }
    seen
}

fn describe(seen: &[(f64, Verdict)]) -> String {
    seen.iter()
        .map(|(t, v)| {
            format!(
                "+{t:.1} s {}/{} ({})",
                v.kstatus.status,
                v.argocd.status,
                v.argocd.message.chars().take(80).collect::<String>()
            )
        })
        .collect::<Vec<_>>()
        .join(" -> ")
}

/// `hack/metric-names.sh --base` against the leader's /metrics (through the
/// API server's pod proxy, so it works wherever the suite runs): a family
/// exists once registered (its `# TYPE` line), whether or not it has samples.
async fn metrics_check(ctx: &Ctx) -> Result<(bool, String)> {
    let out = Command::new("bash")
        .arg(repo_root().join("hack/metric-names.sh"))
        .arg("--base")
        .output()
        .await?;
    if !out.status.success() {
        bail!(
            "hack/metric-names.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let wanted: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if wanted.is_empty() {
        bail!("hack/metric-names.sh named no metric");
    }
    let Some((pod, text)) = ctx.leader_metrics(OP_NS).await? else {
        bail!("no operator pod's /metrics says mcp_operator_leader 1");
    };
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|m| !text.lines().any(|l| l.starts_with(&format!("# TYPE {m} "))))
        .collect();
    Ok((
        missing.is_empty(),
        format!(
            "{pod}: {} of {} present; missing {:?}",
            wanted.len() - missing.len(),
            wanted.len(),
            missing
        ),
    ))
}

fn healthy(v: &Verdict) -> bool {
    v.kstatus.status == "Current" && v.argocd.status == "Healthy"
}

fn in_progress(v: &Verdict) -> bool {
    v.kstatus.status == "InProgress" && v.argocd.status == "Progressing"
}

pub async fn s20(ctx: &Ctx) -> Result<Scenario> {
    let tool = tool()?;
    let mut checks = Vec::new();
    let mut run = Run::checks_only("S20", Vec::new());

    let v = verdict(ctx, &tool, NOTES).await?;
    checks.push(Check::new(
        format!("{NOTES} (Ready): kstatus Current, Argo CD Healthy"),
        healthy(&v),
        format!("{:?}", v),
    ));

    // Created: in progress while its pods start, then current.
    ctx.delete_mcps(GITOPS, Duration::from_secs(90)).await?;
    let t0 = Instant::now();
    ctx.apply(&manifest("mcpserver-gitops.yaml")).await?;
    let created = follow(ctx, &tool, GITOPS, t0, Duration::from_secs(120), healthy).await;
    checks.push(Check::new(
        "created: InProgress/Progressing while its pods start",
        created.iter().any(|(_, v)| in_progress(v)),
        describe(&created),
    ));
    checks.push(Check::new(
        "created: then Current/Healthy",
        created.last().is_some_and(|(_, v)| healthy(v)),
        describe(&created),
    ));
    run.info.insert(
        "created_s".into(),
        json!(created.last().filter(|(_, v)| healthy(v)).map(|(t, _)| *t)),
    );
    // kstatus's generic rule: an object without status is Current. Reported, not failed.
    let before_status = created
        .iter()
        .take_while(|(_, v)| v.argocd.message.contains("to observe the McpServer"))
        .count();
    run.info
        .insert("samples_before_first_status".into(), json!(before_status));

    // A spec change: a rollout.
    let t1 = Instant::now();
    ctx.mcps_api()
        .patch(
            GITOPS,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"env": [{"name": "S20_REVISION", "value": "2"}]}})),
        )
        .await?;
    let rolled = follow(ctx, &tool, GITOPS, t1, Duration::from_secs(120), healthy).await;
    checks.push(Check::new(
        "spec change: InProgress/Progressing during the rollout",
        rolled.iter().any(|(_, v)| in_progress(v)),
        describe(&rolled),
    ));
    checks.push(Check::new(
        "spec change: then Current/Healthy (new generation observed, pods ready)",
        rolled.last().is_some_and(|(_, v)| healthy(v)),
        describe(&rolled),
    ));
    run.info.insert(
        "rolled_out_s".into(),
        json!(rolled.last().filter(|(_, v)| healthy(v)).map(|(t, _)| *t)),
    );

    // A spec that cannot be realised: Failed / Degraded, not waited on forever.
    ctx.delete_mcps(MISSING_SECRET, Duration::from_secs(90))
        .await?;
    let t2 = Instant::now();
    ctx.apply(&manifest("bad/missing-secret.yaml")).await?;
    let failed = |v: &Verdict| v.kstatus.status == "Failed" && v.argocd.status == "Degraded";
    let bad = follow(
        ctx,
        &tool,
        MISSING_SECRET,
        t2,
        Duration::from_secs(60),
        failed,
    )
    .await;
    checks.push(Check::new(
        "missing Secret: kstatus Failed, Argo CD Degraded, reason InvalidSpec",
        bad.last()
            .is_some_and(|(_, v)| failed(v) && v.argocd.message.starts_with("InvalidSpec")),
        describe(&bad),
    ));

    // The chart's alerts and dashboard name only metrics the operator exports.
    let (ok, detail) = metrics_check(ctx)
        .await
        .unwrap_or_else(|e| (false, format!("{e:#}")));
    checks.push(Check::new(
        "every metric the chart's alerts and dashboard use is on the leader's /metrics",
        ok,
        detail,
    ));

    for name in [GITOPS, MISSING_SECRET] {
        if let Err(e) = ctx.delete_mcps(name, Duration::from_secs(90)).await {
            log(format!("warning: could not delete {name}: {e:#}"));
        }
    }
    run.checks = checks;
    run.finish();
    let mut sc = Scenario::with_runs(vec![run]);
    sc.notes.push(
        "verdicts from hack/gitops-health: kstatus via sigs.k8s.io/cli-utils v0.37.2, Argo CD via \
         charts/mcp-operator/argocd/health.lua in gopher-lua as Argo CD v3.5.1 runs it; sampled every 0.2 s"
            .into(),
    );
    Ok(sc)
}
