//! S21: the ways users install, switch and remove the operator, one after the
//! other while a client writes through `notes`' Service:
//!  1. `helm uninstall`: the CRD, the McpServer and its children stay, and
//!     the pods keep serving with no operator at all;
//!  2. `kubectl apply --server-side -f crds/` and `kubectl apply -f
//!     deploy/install.yaml`: the bundle's operator leads and reconciles `notes`;
//!  3. `kubectl delete -f deploy/install.yaml`;
//!  4. `helm install` of the previous chart version with a user's values for it;
//!  5. `helm upgrade` to this chart with the same values: a new leader
//!     reconciles `notes`.
//!
//! The McpServer must not notice any of it: no failed call, the same pods, no
//! restart, every replica ready throughout, no remediation.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use serde_json::{json, Value};

use crate::cluster::{eventually, log, repo_root, Ctx, DESIRED, NOTES, NS, OP_NS, RELEASE};
use crate::model::{Mark, Scenario};
use crate::run::{measured_run, Disruption};
use mcp_workload::client::now_ms;

/// Where deploy/install.yaml puts the operator.
const BUNDLE_NS: &str = "mcp-operator-system";
/// The previous chart version as a chart repository serves it, and a user's values for it.
const PREVIOUS_CHART: &str = "e2e/fixtures/mcp-operator-0.1.0.tgz";
const PREVIOUS_VALUES: &str = "e2e/fixtures/values-0.1.0.yaml";
const CRD: &str = "mcpservers.mcp.operator.dev";
/// Room for the whole sequence; the load stops `TAIL_MS` after its last step.
const WINDOW_S: f64 = 420.0;
const TAIL_MS: u64 = 5_000;
/// How long the McpServer runs with no operator at all after the uninstall.
const ORPHANED: Duration = Duration::from_secs(5);
const STEP_TIMEOUT: Duration = Duration::from_secs(240);
/// helm's own --wait for the installs and the upgrade.
const HELM_WAIT: Duration = Duration::from_secs(240);

/// One step: what was done, when (ms), how long it took, and what it showed.
struct Steps {
    t0: u64,
    done: Vec<Value>,
    marks: Vec<Mark>,
}

impl Steps {
    fn record(&mut self, name: &str, started: Instant, detail: Value) {
        let t = now_ms();
        log(format!(
            "S21: {name}: {:.1} s",
            started.elapsed().as_secs_f64()
        ));
        self.done.push(json!({
            "step": name,
            "at_s": (t.saturating_sub(self.t0)) as f64 / 1000.0,
            "took_s": started.elapsed().as_secs_f64(),
            "detail": detail,
        }));
        self.marks.push(Mark::other(name, t));
    }

    /// Record step `name` with what of `notes` and its CRD is left; all must be.
    async fn record_survivors(&mut self, ctx: &Ctx, name: &str, started: Instant) -> Result<()> {
        let left = survivors(ctx).await?;
        self.record(name, started, json!(left));
        if let Some((what, _)) = left.iter().find(|(_, present)| !present) {
            bail!("{name} removed the {what}");
        }
        Ok(())
    }
}

fn path(rel: &str) -> String {
    repo_root().join(rel).to_string_lossy().into_owned()
}

/// Wait until an operator pod in `ns` that is not one of `old` leads and its
/// metrics show `notes` reconciled Ready; its name.
async fn new_leader_reconciled(ctx: &Ctx, ns: &str, old: &[String]) -> Result<String> {
    eventually(
        &format!("a new operator in {ns} leads and reports {NOTES} Ready"),
        STEP_TIMEOUT,
        Duration::from_secs(1),
        || async {
            let Some((pod, text)) = ctx.leader_metrics(ns).await? else {
                return Ok(None);
            };
            let reconciled = text.lines().any(|l| {
                l.starts_with("mcp_operator_mcpserver_ready{")
                    && l.contains(&format!("name=\"{NOTES}\""))
                    && l.contains(&format!("namespace=\"{NS}\""))
                    && l.trim_end().ends_with(" 1")
            });
            Ok((reconciled && !old.contains(&pod)).then_some(pod))
        },
    )
    .await
}

async fn operator_pod_names(ctx: &Ctx, ns: &str) -> Result<Vec<String>> {
    Ok(ctx
        .pods(ns, crate::cluster::OP_SEL)
        .await?
        .into_keys()
        .collect())
}

/// The CRD, the McpServer and its Deployment, Service and PDB, as (what, present).
async fn survivors(ctx: &Ctx) -> Result<Vec<(&'static str, bool)>> {
    let crds: Api<CustomResourceDefinition> = Api::all(ctx.client.clone());
    let deps: Api<Deployment> = Api::namespaced(ctx.client.clone(), NS);
    let svcs: Api<Service> = Api::namespaced(ctx.client.clone(), NS);
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), NS);
    Ok(vec![
        ("CRD", crds.get_opt(CRD).await?.is_some()),
        ("McpServer", ctx.mcps(NOTES).await?.is_some()),
        ("Deployment", deps.get_opt(NOTES).await?.is_some()),
        ("Service", svcs.get_opt(NOTES).await?.is_some()),
        ("PodDisruptionBudget", pdbs.get_opt(NOTES).await?.is_some()),
    ])
}

async fn sequence(ctx: &Ctx, steps: &mut Steps) -> Result<()> {
    let helm_t = HELM_WAIT + Duration::from_secs(60);

    // 1. helm uninstall: only the operator goes.
    let s = Instant::now();
    ctx.helm(
        &[
            "uninstall",
            RELEASE,
            "-n",
            OP_NS,
            "--wait",
            "--timeout",
            "3m",
        ],
        helm_t,
    )
    .await?;
    eventually(
        "the operator's pods gone",
        STEP_TIMEOUT,
        Duration::from_millis(500),
        || async {
            Ok(operator_pod_names(ctx, OP_NS)
                .await?
                .is_empty()
                .then_some(()))
        },
    )
    .await?;
    steps.record_survivors(ctx, "helm uninstall", s).await?;
    tokio::time::sleep(ORPHANED).await;

    // 2. The kubectl bundle.
    let s = Instant::now();
    ctx.kubectl(&["apply", "--server-side", "-f", &path("crds")])
        .await?;
    ctx.apply(Path::new(&path("deploy/install.yaml"))).await?;
    let leader = new_leader_reconciled(ctx, BUNDLE_NS, &[]).await?;
    steps.record(
        "kubectl apply deploy/install.yaml",
        s,
        json!({ "leader": leader }),
    );

    // 3. Its removal (the namespace included), before Helm owns the names again.
    let s = Instant::now();
    ctx.kubectl_t(
        &[
            "delete",
            "-f",
            &path("deploy/install.yaml"),
            "--wait=true",
            "--timeout=180s",
        ],
        STEP_TIMEOUT,
    )
    .await?;
    steps
        .record_survivors(ctx, "kubectl delete deploy/install.yaml", s)
        .await?;

    // 4. The previous chart version with its user's values.
    let s = Instant::now();
    let values = repo_root().join(PREVIOUS_VALUES);
    let chart = repo_root().join(PREVIOUS_CHART);
    ctx.helm_release(&["install"], &chart, Some(&values), HELM_WAIT)
        .await?;
    let leader = new_leader_reconciled(ctx, OP_NS, &[]).await?;
    steps.record(
        "helm install (previous chart version)",
        s,
        json!({ "chart": PREVIOUS_CHART, "leader": leader }),
    );

    // 5. Upgrade to this chart with the same values.
    let s = Instant::now();
    let old = operator_pod_names(ctx, OP_NS).await?;
    let current = repo_root().join("charts/mcp-operator");
    ctx.helm_release(&["upgrade"], &current, Some(&values), HELM_WAIT)
        .await?;
    let leader = new_leader_reconciled(ctx, OP_NS, &old).await?;
    let release = ctx
        .helm(
            &["list", "-n", OP_NS, "-o", "json"],
            Duration::from_secs(30),
        )
        .await?;
    let chart_version = serde_json::from_str::<Value>(&release)
        .ok()
        .and_then(|v| {
            v.as_array()?
                .iter()
                .find(|r| r["name"] == RELEASE)
                .map(|r| r["chart"].clone())
        })
        .unwrap_or_default();
    steps.record(
        "helm upgrade (this chart, same values)",
        s,
        json!({ "chart": chart_version, "leader": leader, "replaced": old }),
    );
    Ok(())
}

pub async fn s21(ctx: &Ctx) -> Result<Scenario> {
    for f in [PREVIOUS_CHART, PREVIOUS_VALUES] {
        if !repo_root().join(f).is_file() {
            bail!("{f} is missing");
        }
    }
    ctx.wait_mcps_ready(NOTES, Duration::from_secs(120)).await?;
    let measured = measured_run(ctx, "S21", NOTES, WINDOW_S, false, |t0| async move {
        let mut steps = Steps {
            t0,
            done: Vec::new(),
            marks: Vec::new(),
        };
        let outcome = sequence(ctx, &mut steps).await;
        let end = now_ms();
        let mut d = Disruption {
            marks: steps.marks,
            end_ms: Some(end),
            stop_load_at: Some(end + TAIL_MS),
            ..Disruption::default()
        };
        d.info.insert("steps".into(), json!(steps.done));
        if let Err(e) = &outcome {
            d.info.insert("failed_step".into(), json!(format!("{e:#}")));
        }
        Ok(d)
    })
    .await?;
    let mut run = measured.run;
    let failed_step = run.info.get("failed_step").cloned();
    let steps: Vec<String> = run
        .info
        .get("steps")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s["step"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    run.check(
        "every install path ran: helm uninstall, kubectl bundle apply and delete, helm install of the previous version, helm upgrade",
        failed_step.is_none() && steps.len() == 5,
        match &failed_step {
            Some(e) => format!("stopped after {steps:?}: {e}"),
            None => format!("{steps:?}"),
        },
    );
    run.check(
        format!("all {DESIRED} replicas ready throughout"),
        run.min_ready_replicas == DESIRED as u64,
        run.min_ready_replicas,
    );
    run.check(
        "the same McpServer pods, none restarted",
        run.mcp_pods_replaced == 0 && run.mcp_pod_restarts == 0,
        format!(
            "replaced={} restarts={}",
            run.mcp_pods_replaced, run.mcp_pod_restarts
        ),
    );
    run.check(
        "no remediation action",
        run.remediation_actions == 0,
        run.remediation_actions,
    );
    let (observed, generation, ready) =
        measured.obj_after.as_ref().map_or((None, None, None), |o| {
            let st = o.status.as_ref();
            let ready = st.and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
            (
                st.and_then(|s| s.observed_generation),
                o.metadata.generation,
                ready.map(|c| c.status.clone()),
            )
        });
    run.check(
        "McpServer Ready with its generation observed at the end",
        observed.is_some() && observed == generation && ready.as_deref() == Some("True"),
        format!("observedGeneration={observed:?} generation={generation:?} Ready={ready:?}"),
    );
    run.require_no_failed_calls();
    run.finish();
    let mut sc = Scenario::with_runs(vec![run]);
    sc.notes.push(format!(
        "the previous chart version is {PREVIOUS_CHART}; both versions run this build's operator image, so the upgrade tests the chart and the handover, not a change of operator code"
    ));
    Ok(sc)
}
