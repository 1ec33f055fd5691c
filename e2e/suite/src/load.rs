//! Where the MCP client of a measured run runs: in this process on the host,
//! through the Service's ClusterIP (the local cluster routes it), or inside
//! the cluster, as a pod running the workload image's `mcp-loadclient`, which
//! reaches the Service by its DNS name as a real client does on any cluster
//! (on kind the host cannot reach a ClusterIP at all). Both give the same
//! report and per-call events; the pod's come back in its log.

use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, LogParams, PostParams};
use kube::Api;
use mcp_workload::client::{join_result_lines, run_until, LoadOptions, LoadReport, LoadResult};
use mcp_workload::report::CallEvent;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cluster::{eventually, log, service_port, Ctx, NS};

/// `--load-from`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadFrom {
    /// The host when it reaches the Service's ClusterIP, else the cluster.
    Auto,
    Host,
    Cluster,
}

/// The load client pod's control port (`GET /stop`).
const CONTROL_PORT: u16 = 8081;

pub enum Load {
    Host {
        task: JoinHandle<(LoadReport, Vec<CallEvent>)>,
        stop: CancellationToken,
    },
    Pod {
        name: String,
        /// When its schedule ends, verification included, plus a margin.
        wait: Duration,
    },
}

/// A pod name from a run tag: `S3-01` -> `mcp-load-s3-01-<ms>`.
fn pod_name(tag: &str, now: u64) -> String {
    let t: String = tag
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("mcp-load-{}-{}", t.trim_matches('-'), now % 1_000_000)
}

/// The pod that runs `mcp-loadclient` against `target`'s Service with `opts`.
fn load_pod(
    name: &str,
    target: &str,
    image: &str,
    pull: &str,
    url: &str,
    o: &LoadOptions,
) -> Result<Pod> {
    let args: Vec<String> = [
        "--url",
        url,
        "--rate",
        &o.rate.to_string(),
        "--concurrency",
        &o.concurrency.to_string(),
        "--duration-s",
        &o.duration.as_secs_f64().to_string(),
        "--key-prefix",
        &o.key_prefix,
        "--call-timeout-s",
        &o.call_timeout.as_secs_f64().to_string(),
        "--verify-timeout-s",
        &o.verify_timeout.as_secs_f64().to_string(),
        "--bucket-ms",
        &o.bucket_ms.to_string(),
        "--era",
        o.era.name(),
        "--events",
        "--control-port",
        &CONTROL_PORT.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {
                "app.kubernetes.io/name": "mcp-loadclient",
                "app.kubernetes.io/part-of": "mcp-e2e",
                "mcp-e2e/target": target,
            },
        },
        "spec": {
            "restartPolicy": "Never",
            "enableServiceLinks": false,
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 30,
            "securityContext": {
                "runAsNonRoot": true,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [{
                "name": "load",
                "image": image,
                "imagePullPolicy": pull,
                "command": ["/usr/local/bin/mcp-loadclient"],
                "args": args,
                "ports": [{"name": "control", "containerPort": CONTROL_PORT}],
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true,
                    "capabilities": {"drop": ["ALL"]},
                },
                "resources": {
                    "requests": {"cpu": "100m", "memory": "64Mi"},
                    "limits": {"memory": "256Mi"},
                },
            }],
        },
    });
    serde_json::from_value(pod).context("the load client pod's manifest")
}

/// The result a load client printed in its log.
pub fn parse_result(log_text: &str) -> Result<LoadResult> {
    let json = join_result_lines(log_text).map_err(|e| anyhow!("the load client's log: {e}"))?;
    serde_json::from_str(&json).context("the load client's result")
}

impl Load {
    /// Start the load; for a pod, returns once the client runs (its schedule
    /// starts with the process, so the caller's warm-up starts then too).
    pub async fn start(ctx: &Ctx, target: &str, opts: LoadOptions) -> Result<Load> {
        if !ctx.load_in_cluster() {
            let stop = CancellationToken::new();
            let task = tokio::spawn(run_until(opts, stop.clone()));
            return Ok(Load::Host { task, stop });
        }
        let mcp = ctx
            .mcps(target)
            .await?
            .ok_or_else(|| anyhow!("McpServer {target} not found"))?;
        let image = mcp.spec.image.clone();
        let pull = mcp
            .spec
            .image_pull_policy
            .map_or("IfNotPresent", |p| p.as_str());
        let port = service_port(&ctx.service(target).await?);
        let path = if mcp.spec.path.is_empty() {
            "/mcp".to_string()
        } else {
            mcp.spec.path.clone()
        };
        let url = format!("http://{target}.{NS}.svc:{port}{path}");
        let name = pod_name(&opts.key_prefix, mcp_workload::client::now_ms());
        let wait = opts.duration + opts.verify_timeout + Duration::from_secs(60);
        let pod = load_pod(&name, target, &image, pull, &url, &opts)?;
        let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), NS);
        pods.create(&PostParams::default(), &pod)
            .await
            .with_context(|| format!("creating the load client pod {name}"))?;
        let running = eventually(
            &format!("load client pod {name} running"),
            Duration::from_secs(120),
            Duration::from_millis(200),
            || async {
                let p = pods.get(&name).await?;
                let st = p.status.unwrap_or_default();
                let phase = st.phase.unwrap_or_default();
                if phase == "Failed" || phase == "Succeeded" {
                    bail!("the load client pod ended early ({phase})");
                }
                let started = st
                    .container_statuses
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()));
                Ok(started.then_some(()))
            },
        )
        .await;
        if let Err(e) = running {
            let _ = pods.delete(&name, &DeleteParams::default()).await;
            return Err(e);
        }
        Ok(Load::Pod { name, wait })
    }

    /// Stop offering calls now (the client still verifies and reports).
    pub async fn stop(&self, ctx: &Ctx) {
        match self {
            Load::Host { stop, .. } => stop.cancel(),
            Load::Pod { name, .. } => {
                let path = format!("/api/v1/namespaces/{NS}/pods/{name}:{CONTROL_PORT}/proxy/stop");
                let (ok, out) = ctx.kubectl_try(&["get", "--raw", &path]).await;
                if !ok {
                    log(format!(
                        "warning: could not stop the load client {name}: {out}"
                    ));
                }
            }
        }
    }

    /// Abandon the load (the measured run failed).
    pub async fn abort(self, ctx: &Ctx) {
        match self {
            Load::Host { task, .. } => task.abort(),
            Load::Pod { name, .. } => {
                let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), NS);
                let _ = pods.delete(&name, &DeleteParams::default()).await;
            }
        }
    }

    /// Wait for the load to end and return its report and per-call events.
    pub async fn finish(self, ctx: &Ctx) -> Result<(LoadReport, Vec<CallEvent>)> {
        let (name, wait) = match self {
            Load::Host { task, .. } => return Ok(task.await?),
            Load::Pod { name, wait } => (name, wait),
        };
        let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), NS);
        let ended = eventually(
            &format!("load client pod {name} finished"),
            wait,
            Duration::from_millis(500),
            || async {
                let phase = pods
                    .get(&name)
                    .await?
                    .status
                    .and_then(|s| s.phase)
                    .unwrap_or_default();
                Ok((phase == "Succeeded" || phase == "Failed").then_some(phase))
            },
        )
        .await;
        let text = pods.logs(&name, &LogParams::default()).await;
        if let Err(e) = pods.delete(&name, &DeleteParams::default()).await {
            log(format!("warning: could not delete {name}: {e}"));
        }
        let phase = ended?;
        let text = text.with_context(|| format!("the log of {name}"))?;
        let result = parse_result(&text).with_context(|| {
            let tail: Vec<&str> = text.lines().rev().take(5).collect();
            format!("{name} ended {phase}; last lines: {tail:?}")
        })?;
        Ok((result.report, result.events))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_workload::client::{result_lines, RESULT_PREFIX};

    #[test]
    fn pod_names_are_dns_labels() {
        let n = pod_name("e2e-S3-01-1764500000123", 1_764_500_000_123);
        assert!(n.len() <= 63, "{n}");
        assert!(n
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        assert!(!n.ends_with('-'));
    }

    #[test]
    fn the_result_line_is_found_among_log_lines() {
        let report = json!({"report": {
            "url": "http://x/mcp", "key_prefix": "k", "started_unix_ms": 1, "ended_unix_ms": 2,
            "duration_s": 0.001, "rate": 50.0, "concurrency": 4, "max_in_flight": 250,
            "offered": 0, "calls": 0, "acknowledged": 0, "errors_total": 0, "errors": {},
            "error_samples": {}, "sessions_opened": 4, "session_losses": 0,
            "session_lost_calls": 0, "longest_outage_s": 0.0, "outages": [],
            "mark_unix_ms": null, "first_success_after_s": null, "marks": [],
            "lost_acked_writes": 0, "unverified_acked_writes": 0, "lost_keys": [],
            "verify_duration_s": 0.0, "latency_ms": {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0},
            "timeline_bucket_ms": 500, "timeline": []}, "events": (0..200).map(|i| json!({
                "slot": i, "scheduled_ms": 1000 + i, "start_ms": 1000 + i, "end_ms": 1005 + i,
                "ok": true, "kind": null, "session_lost": false})).collect::<Vec<_>>()});
        // Cut into lines with a stderr line in between, as a runtime may log them.
        let lines = result_lines(&report.to_string());
        assert!(lines.len() > 1, "{} lines", lines.len());
        let mut log_text = String::from("SIGTERM: stopping the load\n");
        for (i, l) in lines.iter().enumerate() {
            log_text.push_str(l);
            log_text.push('\n');
            if i == 0 {
                log_text.push_str("offered=0 calls=0\n");
            }
        }
        let r = parse_result(&log_text).expect("parsed");
        assert_eq!(r.report.rate, 50.0);
        assert_eq!(r.events.len(), 200);
        assert!(parse_result("offered=0 calls=0\n").is_err());
        // a missing piece is an error, not a truncated result
        let last = format!("{RESULT_PREFIX}{}/", lines.len());
        let without_last: String = log_text
            .lines()
            .filter(|l| !l.starts_with(&last))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(parse_result(&without_last).is_err());
    }
}
