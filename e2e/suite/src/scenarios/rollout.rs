//! S8: a bad rollout rolled back while the old pods keep serving; S9: a fixed
//! pool switched to an HPA without a dip in capacity.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::Api;
use mcp_operator::remediation::ActionKind;
use serde_json::json;

use crate::cluster::{eventually, manifest, server_sel, Ctx, DESIRED, NOTES, NS};
use crate::model::{Mark, Scenario};
use crate::run::{measured_run, Disruption};
use crate::scenarios::{condition, patch_spec};
use mcp_workload::client::now_ms;

pub async fn s8(ctx: &Ctx) -> Result<Scenario> {
    ctx.wait_mcps_ready(NOTES, Duration::from_secs(120)).await?;
    let obj = ctx
        .mcps(NOTES)
        .await?
        .ok_or_else(|| anyhow::anyhow!("McpServer {NOTES} missing"))?;
    let gen0 = obj.metadata.generation.unwrap_or(0);
    let mut env = serde_json::to_value(&obj.spec.env)?;
    if let Some(a) = env.as_array_mut() {
        a.push(json!({"name": "WORKLOAD_MODE", "value": "crash-on-start"}));
    }
    let sel = server_sel(NOTES);
    let timeout = Duration::from_secs_f64(ctx.opts.rollback_timeout_s);
    let measured = measured_run(ctx, "S8", NOTES, ctx.opts.rollout_window_s, false, |_t0| {
        let (env, sel) = (env.clone(), sel.clone());
        async move {
            let mut d = Disruption::default();
            patch_spec(ctx, json!({ "env": env })).await?;
            let held = eventually(
                "status.rollbackHold",
                timeout,
                Duration::from_secs(1),
                || async { Ok(ctx.mcps(NOTES).await?.and_then(|o| o.status?.rollback_hold)) },
            )
            .await;
            let t = now_ms();
            match held {
                Ok(_) => {
                    d.marks.push(Mark::other("rolled back", t));
                    // the bad revision's pods must be gone before the run counts as settled
                    let gone = eventually(
                        "bad-revision pods gone",
                        Duration::from_secs(90),
                        Duration::from_secs(1),
                        || async {
                            let pods = ctx.pods(NS, &sel).await?;
                            Ok((!pods.values().any(|p| p.crash_on_start)).then_some(()))
                        },
                    )
                    .await;
                    if let Err(e) = gone {
                        d.info
                            .insert("bad_pods_left".into(), json!(format!("{e:#}")));
                    }
                }
                Err(e) => {
                    d.info
                        .insert("rollback_error".into(), json!(format!("{e:#}")));
                }
            }
            d.end_ms = Some(t);
            Ok(d)
        }
    })
    .await?;
    let mut run = measured.run;
    let o = measured.obj_after.clone();
    let hold = o
        .as_ref()
        .and_then(|o| o.status.as_ref()?.rollback_hold.clone());
    let deg = o.as_ref().and_then(|o| condition(o, "Degraded"));
    let rb_events: Vec<_> = run
        .action_events
        .iter()
        .filter(|e| e.reason == "RolloutRolledBack" || e.reason == "RolledBack")
        .map(|e| e.note.clone())
        .collect();
    let deps: Api<Deployment> = Api::namespaced(ctx.client.clone(), NS);
    let dep = deps.get(NOTES).await?;
    let still_bad = dep.spec.and_then(|s| s.template.spec).is_some_and(|s| {
        s.containers.iter().any(|c| {
            c.env
                .iter()
                .flatten()
                .any(|e| e.name == "WORKLOAD_MODE" && e.value.as_deref() == Some("crash-on-start"))
        })
    });
    run.check(
        format!("{DESIRED} ready replicas throughout"),
        run.min_ready_replicas >= DESIRED as u64,
        run.min_ready_replicas,
    );
    run.check(
        "status.rollbackHold set for the bad generation",
        hold.as_ref()
            .is_some_and(|h| h.generation == gen0 + 1 && !h.revision.is_empty()),
        format!("{hold:?} {:?}", run.info.get("rollback_error")),
    );
    run.check(
        "condition Degraded reason RolledBack",
        deg.as_ref()
            .is_some_and(|c| c.reason == "RolledBack" && c.status == "True"),
        format!("{deg:?}"),
    );
    run.check(
        "RolledBack Event published",
        !rb_events.is_empty(),
        format!("{rb_events:?}"),
    );
    run.check(
        "Deployment template back to the good revision",
        !still_bad,
        "",
    );
    run.check(
        "a Rollback action recorded",
        measured
            .actions
            .iter()
            .any(|a| a.kind == ActionKind::Rollback),
        format!(
            "{:?}",
            measured.actions.iter().map(|a| a.kind).collect::<Vec<_>>()
        ),
    );
    run.require_no_failed_calls();
    // restore the good spec: a new generation clears the hold
    ctx.apply(&manifest("mcpserver.yaml")).await?;
    let restored = ctx.wait_mcps_ready(NOTES, Duration::from_secs(120)).await;
    let cleared = ctx
        .mcps(NOTES)
        .await?
        .is_some_and(|o| o.status.is_some_and(|s| s.rollback_hold.is_none()));
    run.check(
        "good spec re-applied: Ready, hold cleared",
        restored.is_ok() && cleared,
        restored.err().map(|e| format!("{e:#}")).unwrap_or_default(),
    );
    if let Some(h) = hold {
        run.info.insert(
            "rollback_hold".into(),
            json!({"generation": h.generation, "revision": h.revision}),
        );
    }
    run.finish();
    Ok(Scenario::with_runs(vec![run]))
}

/// Raising replicas.max on a Ready fixed pool turns an HPA on. Server-side
/// apply would drop spec.replicas (to the default of 1) when the operator
/// stops setting it; the operator hands the field over first.
pub async fn s9(ctx: &Ctx) -> Result<Scenario> {
    ctx.wait_mcps_ready(NOTES, Duration::from_secs(120)).await?;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), NS);
    let deps: Api<Deployment> = Api::namespaced(ctx.client.clone(), NS);
    let measured = measured_run(ctx, "S9", NOTES, 15.0, false, |_t0| {
        let (hpas, deps) = (hpas.clone(), deps.clone());
        async move {
            let mut d = Disruption::default();
            patch_spec(ctx, json!({"replicas": {"min": DESIRED, "max": DESIRED + 2}})).await?;
            let handed = eventually("HPA on, replicas handed over", Duration::from_secs(60), Duration::from_secs(1), || async {
                let Some(hpa) = hpas.get_opt(NOTES).await? else { return Ok(None) };
                let dep = deps.get(NOTES).await?;
                let managers: Vec<String> = dep
                    .metadata
                    .managed_fields
                    .iter()
                    .flatten()
                    .filter(|m| {
                        m.fields_v1
                            .as_ref()
                            .and_then(|f| f.0.get("f:spec"))
                            .and_then(|s| s.get("f:replicas"))
                            .is_some()
                    })
                    .filter_map(|m| m.manager.clone())
                    .collect();
                // someone owns spec.replicas (the handover manager or the HPA controller), not us
                let ok = !managers.is_empty() && !managers.iter().any(|m| m == "mcp-operator");
                Ok(ok.then(|| (hpa.spec.map(|s| s.min_replicas), dep.spec.and_then(|s| s.replicas), managers)))
            })
            .await;
            match handed {
                Ok((hpa_min, spec_replicas, managers)) => {
                    d.info.insert(
                        "hpa_switch".into(),
                        json!({"hpa_min": hpa_min.flatten(), "spec_replicas": spec_replicas, "managers": managers}),
                    );
                }
                Err(e) => {
                    d.info.insert("hpa_error".into(), json!(format!("{e:#}")));
                }
            }
            let t = now_ms();
            d.marks.push(Mark::other("HPA on", t));
            d.end_ms = Some(t);
            Ok(d)
        }
    })
    .await?;
    let mut run = measured.run;
    let sw = run.info.get("hpa_switch").cloned().unwrap_or_default();
    let want = json!(DESIRED);
    run.check(
        "HPA created with minReplicas = replicas.min, spec.replicas handed over",
        sw.get("hpa_min") == Some(&want),
        format!("{sw} {:?}", run.info.get("hpa_error")),
    );
    run.check(
        format!("Deployment still asks for {DESIRED} replicas"),
        sw.get("spec_replicas") == Some(&want),
        &sw,
    );
    run.check(
        format!("{DESIRED} ready replicas throughout (watched)"),
        run.min_ready_replicas >= DESIRED as u64,
        run.min_ready_replicas,
    );
    run.require_no_failed_calls();
    // back to the fixed pool: the HPA goes, the operator owns spec.replicas again
    ctx.apply(&manifest("mcpserver.yaml")).await?;
    let back = eventually(
        "HPA removed",
        Duration::from_secs(60),
        Duration::from_secs(1),
        || async { Ok(hpas.get_opt(NOTES).await?.is_none().then_some(())) },
    )
    .await;
    let ready = ctx.wait_mcps_ready(NOTES, Duration::from_secs(120)).await;
    run.check(
        "fixed pool restored (HPA removed, Ready)",
        back.is_ok() && ready.is_ok(),
        back.err()
            .or(ready.err())
            .map(|e| format!("{e:#}"))
            .unwrap_or_default(),
    );
    run.finish();
    Ok(Scenario::with_runs(vec![run]))
}
