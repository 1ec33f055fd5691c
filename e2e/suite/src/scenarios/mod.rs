//! The scenarios, by id.

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::cluster::{log, Ctx, DB_NS, NOTES};
use crate::measure::percentile;
use crate::model::{Check, Run, Scenario};
use mcp_operator::api::McpServer;

pub mod drain;
pub mod eras;
pub mod gitops;
pub mod ha;
pub mod hostile;
pub mod install;
pub mod kill;
pub mod node_loss;
pub mod outage;
pub mod rollout;
pub mod soak;
pub mod specs;
pub mod wedge;

/// Every scenario: id, name, part of the default run, in the order run
/// (S22 and S23 before S21: S21 reinstalls the operator).
pub const SCENARIOS: [(&str, &str, bool); 24] = [
    ("S1", "delete the Postgres pod (grace 0)", true),
    ("S2", "kill -9 postgres in its container", true),
    ("S3", "S1 repeated", true),
    (
        "S4",
        "fragile workload healed, held while Postgres down",
        true,
    ),
    ("S5", "node drain against the PDB", true),
    ("S6", "operator killed mid-outage", true),
    ("S7", "bad McpServer specs", true),
    ("S8", "bad rollout rolled back", true),
    ("S9", "fixed replicas switched to an HPA", true),
    ("S10", "API server restarted during a Postgres outage", true),
    ("S11", "etcd restarted during a Postgres outage", true),
    ("S12", "a standby with its clock 60 s ahead", true),
    ("S13", "network partition from Postgres", true),
    ("S14", "Postgres graceful delete and rollout restart", true),
    ("S15", "S1 with the default McpServer settings", true),
    (
        "S16",
        "one pod's MCP layer wedged (readiness still passes)",
        true,
    ),
    (
        "S17",
        "a node lost (its network cut past the grace period)",
        true,
    ),
    (
        "S18",
        "leader frozen (SIGSTOP) during a Postgres outage",
        true,
    ),
    (
        "S19",
        "S1 repeated with the database in readiness and no gate",
        true,
    ),
    (
        "S20",
        "GitOps health (kstatus, Argo CD) and the alerts' metrics, live",
        true,
    ),
    (
        "S22",
        "dual-era -> 2026-07-28-only rollout, no pod evicted for its revision",
        true,
    ),
    (
        "S23",
        "a hostile tenant (name takeover, drain-blocking PDB, hanging pods) beside S1",
        true,
    ),
    (
        "S21",
        "helm uninstall, kubectl bundle, previous chart version, helm upgrade",
        true,
    ),
    ("SOAK", "S1 and S2 alternately, many times", false),
];

/// A condition of an McpServer's status, by type.
pub fn condition(
    o: &McpServer,
    type_: &str,
) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    o.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .cloned()
}

/// A merge patch of `notes`' spec.
pub async fn patch_spec(ctx: &Ctx, spec: serde_json::Value) -> Result<McpServer> {
    Ok(ctx
        .mcps_api()
        .patch(
            NOTES,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({ "spec": spec })),
        )
        .await?)
}

pub fn name_of(id: &str) -> Option<&'static str> {
    SCENARIOS
        .iter()
        .find(|(i, _, _)| *i == id)
        .map(|(_, n, _)| *n)
}

async fn dispatch(ctx: &Ctx, id: &str) -> Result<Scenario> {
    match id {
        "S1" => kill::s1(ctx).await,
        "S2" => kill::s2(ctx).await,
        "S3" => kill::s3(ctx).await,
        "S4" => outage::s4(ctx).await,
        "S5" => drain::s5(ctx).await,
        "S6" => outage::s6(ctx).await,
        "S7" => specs::s7(ctx).await,
        "S8" => rollout::s8(ctx).await,
        "S9" => rollout::s9(ctx).await,
        "S10" => outage::s10(ctx).await,
        "S11" => outage::s11(ctx).await,
        "S12" => ha::s12(ctx).await,
        "S13" => kill::s13(ctx).await,
        "S14" => kill::s14(ctx).await,
        "S15" => kill::s15(ctx).await,
        "S16" => wedge::s16(ctx).await,
        "S17" => node_loss::s17(ctx).await,
        "S18" => outage::s18(ctx).await,
        "S19" => kill::s19(ctx).await,
        "S20" => gitops::s20(ctx).await,
        "S21" => install::s21(ctx).await,
        "S22" => eras::s22(ctx).await,
        "S23" => hostile::s23(ctx).await,
        "SOAK" => soak::soak(ctx).await,
        other => anyhow::bail!("unknown scenario {other}"),
    }
}

/// Run one scenario; a broken scenario is a failed scenario, not a crashed suite.
pub async fn run_scenario(ctx: &Ctx, id: &str) -> Scenario {
    let started = Instant::now();
    let mut sc = match dispatch(ctx, id).await {
        Ok(sc) => sc,
        Err(e) => {
            log(format!("{id} aborted: {e:#}"));
            Scenario::with_runs(vec![Run::checks_only(
                id,
                vec![Check::new("scenario completed", false, format!("{e:#}"))],
            )])
        }
    };
    sc.id = id.to_string();
    sc.name = name_of(id).unwrap_or_default().to_string();
    let fs: Vec<Option<f64>> = sc
        .runs
        .iter()
        .filter(|r| !r.timeline.is_empty())
        .map(|r| r.first_success_s)
        .collect();
    sc.p50_first_success_s = percentile(&fs, 50.0);
    sc.p95_first_success_s = percentile(&fs, 95.0);
    sc.duration_s = started.elapsed().as_secs_f64();
    sc.finish();
    if !sc.passed {
        ctx.diag(id).await;
    }
    sc
}

/// After a scenario: Postgres up, notes Ready (bounded).
pub async fn restore_baseline(ctx: &Ctx) {
    let res: Result<()> = async {
        let sts: kube::Api<k8s_openapi::api::apps::v1::StatefulSet> =
            kube::Api::namespaced(ctx.client.clone(), DB_NS);
        let replicas = sts.get("postgres").await?.spec.and_then(|s| s.replicas);
        if replicas != Some(1) {
            ctx.scale_pg(1).await?;
        }
        ctx.wait_pg_ready(Duration::from_secs(180)).await?;
        ctx.wait_mcps_ready(NOTES, Duration::from_secs(120)).await
    }
    .await;
    if let Err(e) = res {
        log(format!("warning: baseline not restored: {e:#}"));
    }
}
