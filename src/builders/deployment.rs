//! The Deployment that runs the replica pool.
use super::{budget, child_meta, labels};
use crate::api::{McpServer, PodOverrides, ProbeSpec};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, Lifecycle, LifecycleHandler, PodReadinessGate, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, SeccompProfile, SecretKeySelector, SecurityContext, SleepAction,
    Toleration, TopologySpreadConstraint, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeSet;

pub const CONTAINER_NAME: &str = "mcp";
pub const DEFAULT_GRACE_SECONDS: i64 = 30;
pub const DEFAULT_PRESTOP_SECONDS: i64 = 5;
/// Non-root uid used when the image does not say otherwise (restricted PSS).
pub const DEFAULT_UID: i64 = 65532;
pub const PROGRESS_DEADLINE_SECONDS: i32 = 120;
/// The NoExecute taints the node lifecycle controller puts on a node that stops
/// reporting; `nodeLossTolerationSeconds` tolerates them for a while.
pub const NODE_LOSS_TAINTS: [&str; 2] = [
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
];

pub fn build(mcp: &McpServer) -> Deployment {
    let spec = &mcp.spec;
    let with_hpa = spec.replicas.max > spec.replicas.min;
    Deployment {
        metadata: child_meta(mcp),
        spec: Some(DeploymentSpec {
            // With an HPA the replica count is its to own; setting it here would fight it.
            replicas: if with_hpa {
                None
            } else {
                Some(spec.replicas.min)
            },
            selector: LabelSelector {
                match_labels: Some(labels::selector(mcp)),
                ..Default::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: Some(IntOrString::Int(1)),
                }),
            }),
            progress_deadline_seconds: Some(PROGRESS_DEADLINE_SECONDS),
            revision_history_limit: Some(10),
            template: pod_template(mcp),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn pod_template(mcp: &McpServer) -> PodTemplateSpec {
    let spec = &mcp.spec;
    let o = &spec.pod_template;
    let mut pod_labels = o.labels.clone();
    pod_labels.extend(labels::common(mcp));
    let read_only = o.read_only_root_filesystem.unwrap_or(true);
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            annotations: (!o.annotations.is_empty()).then(|| o.annotations.clone()),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container(mcp, read_only)],
            service_account_name: o.service_account_name.clone(),
            // The workload needs no API access; don't hand it a token.
            automount_service_account_token: Some(false),
            node_selector: (!o.node_selector.is_empty()).then(|| o.node_selector.clone()),
            tolerations: tolerations(o),
            affinity: o.affinity.clone(),
            readiness_gates: mcp.spec.health.readiness_gate.enabled.then(|| {
                vec![PodReadinessGate {
                    condition_type: crate::api::READINESS_GATE.into(),
                }]
            }),
            priority_class_name: o.priority_class_name.clone(),
            image_pull_secrets: (!o.image_pull_secrets.is_empty())
                .then(|| o.image_pull_secrets.clone()),
            termination_grace_period_seconds: Some(
                o.termination_grace_period_seconds
                    .unwrap_or(DEFAULT_GRACE_SECONDS),
            ),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(DEFAULT_UID),
                run_as_group: Some(DEFAULT_UID),
                fs_group: Some(DEFAULT_UID),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            topology_spread_constraints: spread(mcp),
            volumes: Some(vec![Volume {
                name: "tmp".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

/// Unset: a soft spread over nodes. Empty: none. Given: as given, each entry
/// without a selector counting this server's pods (what a user almost always means).
fn spread(mcp: &McpServer) -> Option<Vec<TopologySpreadConstraint>> {
    let own_pods = || {
        Some(LabelSelector {
            match_labels: Some(labels::selector(mcp)),
            ..Default::default()
        })
    };
    match &mcp.spec.pod_template.topology_spread_constraints {
        None => Some(vec![TopologySpreadConstraint {
            max_skew: 1,
            topology_key: "kubernetes.io/hostname".into(),
            when_unsatisfiable: "ScheduleAnyway".into(),
            label_selector: own_pods(),
            ..Default::default()
        }]),
        Some(given) if given.is_empty() => None,
        Some(given) => Some(
            given
                .iter()
                .map(|c| TopologySpreadConstraint {
                    label_selector: c.label_selector.clone().or_else(own_pods),
                    ..c.clone()
                })
                .collect(),
        ),
    }
}

/// The user's tolerations, then ours for the node-loss taints when
/// `nodeLossTolerationSeconds` is set and the user does not already tolerate
/// that taint (theirs wins: the taint manager uses the first match anyway).
fn tolerations(o: &PodOverrides) -> Option<Vec<Toleration>> {
    let mut out = o.tolerations.clone();
    if let Some(secs) = o.node_loss_toleration_seconds {
        for key in NODE_LOSS_TAINTS {
            let theirs = o.tolerations.iter().any(|t| {
                t.key.as_deref() == Some(key)
                    && t.effect
                        .as_deref()
                        .is_none_or(|e| e.is_empty() || e == "NoExecute")
            });
            if !theirs {
                out.push(Toleration {
                    key: Some(key.into()),
                    operator: Some("Exists".into()),
                    effect: Some("NoExecute".into()),
                    toleration_seconds: Some(secs),
                    value: None,
                });
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

fn container(mcp: &McpServer, read_only: bool) -> Container {
    let spec = &mcp.spec;
    let pre_stop = spec
        .pod_template
        .pre_stop_sleep_seconds
        .unwrap_or(DEFAULT_PRESTOP_SECONDS);
    Container {
        name: CONTAINER_NAME.into(),
        image: Some(spec.image.clone()),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_string()),
        command: (!spec.command.is_empty()).then(|| spec.command.clone()),
        args: (!spec.args.is_empty()).then(|| spec.args.clone()),
        ports: Some(vec![ContainerPort {
            name: Some("mcp".into()),
            container_port: spec.port,
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        env: Some(env(mcp)),
        env_from: (!spec.env_from.is_empty()).then(|| spec.env_from.clone()),
        resources: spec.resources.clone(),
        readiness_probe: Some(readiness_probe(mcp)),
        liveness_probe: Some(liveness_probe(mcp)),
        startup_probe: Some(startup_probe(mcp)),
        // Keep serving in-flight calls while endpoints drain; sleep needs no shell in the image.
        lifecycle: (pre_stop > 0).then(|| Lifecycle {
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction { seconds: pre_stop }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            read_only_root_filesystem: Some(read_only),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: "tmp".into(),
            mount_path: "/tmp".into(),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

/// Injected variables first; user entries with the same names are dropped so the operator's values win.
pub fn env(mcp: &McpServer) -> Vec<EnvVar> {
    let mut out = Vec::new();
    let port = &mcp.spec.port;
    out.push(plain("PORT", port.to_string()));
    out.push(plain("MCP_PATH", mcp.spec.path.clone()));
    if let Some(db) = &mcp.spec.database {
        out.push(EnvVar {
            name: db.env_names.url.clone(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: db.url_secret_ref.name.clone(),
                    key: db.url_secret_ref.key.clone(),
                    optional: Some(false),
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        if let Some(b) = budget::compute(&mcp.spec) {
            out.push(plain(&db.env_names.pool_min, b.per_replica_min.to_string()));
            out.push(plain(
                &db.env_names.pool_max,
                b.status.per_replica_max.to_string(),
            ));
        }
        out.push(plain(
            &db.env_names.acquire_timeout,
            db.pool.acquire_timeout_seconds.to_string(),
        ));
    }
    let injected: BTreeSet<String> = out.iter().map(|e| e.name.clone()).collect();
    let mut seen = injected.clone();
    for e in &mcp.spec.env {
        // Duplicate names would make server-side apply reject the whole Deployment.
        if seen.insert(e.name.clone()) {
            out.push(e.clone());
        }
    }
    out
}

fn plain(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value),
        ..Default::default()
    }
}

fn http_probe(
    path: String,
    port: i32,
    p: Option<&ProbeSpec>,
    period: i32,
    timeout: i32,
    failures: i32,
) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path),
            port: IntOrString::Int(port),
            ..Default::default()
        }),
        period_seconds: Some(p.and_then(|p| p.period_seconds).unwrap_or(period)),
        timeout_seconds: Some(p.and_then(|p| p.timeout_seconds).unwrap_or(timeout)),
        failure_threshold: Some(p.and_then(|p| p.failure_threshold).unwrap_or(failures)),
        success_threshold: Some(1),
        ..Default::default()
    }
}

pub fn readiness_probe(mcp: &McpServer) -> Probe {
    let p = mcp.spec.health.readiness.as_ref();
    let path = p
        .and_then(|p| p.path.clone())
        .unwrap_or_else(|| "/readyz".into());
    http_probe(path, mcp.spec.port, p, 2, 1, 2)
}

/// Liveness only asks "is the process alive": a database outage must never restart pods.
pub fn liveness_probe(mcp: &McpServer) -> Probe {
    let p = mcp.spec.health.liveness.as_ref();
    let path = p
        .and_then(|p| p.path.clone())
        .unwrap_or_else(|| "/healthz".into());
    http_probe(path, mcp.spec.port, p, 10, 1, 3)
}

pub fn startup_probe(mcp: &McpServer) -> Probe {
    let s = mcp.spec.health.startup.as_ref();
    let path = s
        .and_then(|s| s.path.clone())
        .unwrap_or_else(|| "/healthz".into());
    let budget = s.and_then(|s| s.budget_seconds).unwrap_or(30);
    let period = 1;
    http_probe(
        path,
        mcp.spec.port,
        None,
        period,
        1,
        (budget / period).max(1),
    )
}
