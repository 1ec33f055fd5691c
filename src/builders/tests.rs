//! Builder tests: spec -> desired objects, no cluster.
use super::*;
use crate::api::{McpServer, McpServerSpec, SessionAffinity};
use serde_json::json;

fn mcp(spec: serde_json::Value) -> McpServer {
    let mut m = McpServer::new(
        "notes",
        serde_json::from_value::<McpServerSpec>(spec).expect("valid spec"),
    );
    m.metadata.namespace = Some("team-a".into());
    m.metadata.uid = Some("uid-1".into());
    m
}

fn base() -> serde_json::Value {
    json!({
        "image": "registry.example/notes:1.4.2",
        "replicas": {"min": 3, "max": 3},
        "database": {"urlSecretRef": {"name": "notes-db", "key": "url"}, "maxConnections": 60, "pool": {"min": 2, "max": 10}}
    })
}

#[test]
fn budget_within_limits_is_not_clamped() {
    let b = budget::compute(&mcp(base()).spec).expect("budget");
    assert_eq!(b.status.per_replica_max, 10);
    assert_eq!(b.status.total_max, 30);
    assert_eq!(b.status.budget, Some(60));
    assert!(b.clamped.is_none());
}

#[test]
fn budget_clamps_to_floor_of_share() {
    let mut s = base();
    s["replicas"] = json!({"min": 2, "max": 7});
    let b = budget::compute(&mcp(s).spec).expect("budget");
    // floor(60 / 7) = 8
    assert_eq!(b.status.per_replica_max, 8);
    assert_eq!(b.status.total_max, 56);
    let c = b.clamped.expect("clamped");
    assert_eq!(c.requested_total, 70);
    assert!(c.message(8, 7).contains("by 10"), "{}", c.message(8, 7));
    // pool.min never exceeds the clamped max.
    assert!(b.per_replica_min <= 8);
}

#[test]
fn budget_never_below_one() {
    let mut s = base();
    s["replicas"] = json!({"min": 1, "max": 100});
    s["database"]["maxConnections"] = json!(10);
    let b = budget::compute(&mcp(s).spec).expect("budget");
    assert_eq!(b.status.per_replica_max, 1);
}

#[test]
fn no_database_no_budget() {
    assert!(budget::compute(&mcp(json!({"image": "x"})).spec).is_none());
}

#[test]
fn deployment_defaults_are_safe() {
    let d = deployment::build(&mcp(base()));
    let meta = &d.metadata;
    let owner = &meta.owner_references.as_ref().expect("owner")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("McpServer", "uid-1", Some(true))
    );
    let spec = d.spec.expect("spec");
    assert_eq!(spec.replicas, Some(3));
    let ru = spec
        .strategy
        .and_then(|s| s.rolling_update)
        .expect("rolling update");
    assert_eq!(
        ru.max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(0))
    );
    let pod = spec.template.spec.expect("pod spec");
    assert_eq!(pod.automount_service_account_token, Some(false));
    assert_eq!(pod.termination_grace_period_seconds, Some(30));
    let psc = pod.security_context.expect("pod security context");
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(
        psc.seccomp_profile.map(|s| s.type_).as_deref(),
        Some("RuntimeDefault")
    );
    assert!(pod
        .topology_spread_constraints
        .is_some_and(|t| t[0].topology_key == "kubernetes.io/hostname"));
    let c = &pod.containers[0];
    let sc = c
        .security_context
        .clone()
        .expect("container security context");
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(
        sc.capabilities.and_then(|c| c.drop),
        Some(vec!["ALL".to_string()])
    );
    assert!(c
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
        .and_then(|p| p.sleep.as_ref())
        .is_some_and(|s| s.seconds == 5));
    // /tmp stays writable with a read-only root.
    assert!(c
        .volume_mounts
        .as_ref()
        .is_some_and(|v| v.iter().any(|m| m.mount_path == "/tmp")));
}

#[test]
fn read_only_root_can_be_opted_out() {
    let mut s = base();
    s["podTemplate"] = json!({"readOnlyRootFilesystem": false, "terminationGracePeriodSeconds": 60, "preStopSleepSeconds": 0});
    let d = deployment::build(&mcp(s));
    let pod = d.spec.and_then(|s| s.template.spec).expect("pod");
    assert_eq!(pod.termination_grace_period_seconds, Some(60));
    let c = &pod.containers[0];
    assert_eq!(
        c.security_context
            .as_ref()
            .and_then(|s| s.read_only_root_filesystem),
        Some(false)
    );
    assert!(c.lifecycle.is_none());
}

#[test]
fn env_injects_secret_ref_and_pool_and_operator_wins() {
    let mut s = base();
    s["env"] = json!([{"name": "POOL_MAX_SIZE", "value": "999"}, {"name": "EXTRA", "value": "1"}]);
    let env = deployment::env(&mcp(s));
    let get = |n: &str| env.iter().filter(|e| e.name == n).collect::<Vec<_>>();
    let url = get("DATABASE_URL");
    assert_eq!(url.len(), 1);
    assert!(url[0].value.is_none(), "URL never inlined");
    let sk = url[0]
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("secretKeyRef");
    assert_eq!((sk.name.as_str(), sk.key.as_str()), ("notes-db", "url"));
    let pool_max = get("POOL_MAX_SIZE");
    assert_eq!(
        pool_max.len(),
        1,
        "duplicates would break server-side apply"
    );
    assert_eq!(pool_max[0].value.as_deref(), Some("10"));
    assert_eq!(get("POOL_MIN_SIZE")[0].value.as_deref(), Some("2"));
    assert_eq!(
        get("POOL_ACQUIRE_TIMEOUT_SECONDS")[0].value.as_deref(),
        Some("30")
    );
    assert_eq!(get("EXTRA").len(), 1);
}

#[test]
fn env_names_are_overridable() {
    let mut s = base();
    s["database"]["envNames"] = json!({"url": "PG_URL", "poolMax": "PG_POOL_MAX"});
    let env = deployment::env(&mcp(s));
    assert!(env.iter().any(|e| e.name == "PG_URL"));
    assert!(env
        .iter()
        .any(|e| e.name == "PG_POOL_MAX" && e.value.as_deref() == Some("10")));
    assert!(
        env.iter().any(|e| e.name == "POOL_MIN_SIZE"),
        "unset names keep their defaults"
    );
}

#[test]
fn probes_default_and_liveness_never_uses_readiness_path() {
    let m = mcp(base());
    let r = deployment::readiness_probe(&m);
    let l = deployment::liveness_probe(&m);
    let s = deployment::startup_probe(&m);
    let path =
        |p: &k8s_openapi::api::core::v1::Probe| p.http_get.as_ref().and_then(|h| h.path.clone());
    assert_eq!(path(&r).as_deref(), Some("/readyz"));
    assert_eq!(
        (r.period_seconds, r.timeout_seconds, r.failure_threshold),
        (Some(2), Some(1), Some(2))
    );
    assert_eq!(path(&l).as_deref(), Some("/healthz"));
    assert_eq!((l.period_seconds, l.failure_threshold), (Some(10), Some(3)));
    // startup budget 30 s at a 1 s period
    assert_eq!(s.failure_threshold, Some(30));

    let mut spec = base();
    spec["health"] = json!({"readiness": {"path": "/ready", "periodSeconds": 5}, "startup": {"budgetSeconds": 90}});
    let m = mcp(spec);
    assert_eq!(
        path(&deployment::readiness_probe(&m)).as_deref(),
        Some("/ready")
    );
    assert_eq!(deployment::readiness_probe(&m).period_seconds, Some(5));
    assert_eq!(deployment::startup_probe(&m).failure_threshold, Some(90));
}

#[test]
fn hpa_only_when_range_allows_scaling() {
    assert!(hpa::build(&mcp(base())).is_none());
    let mut s = base();
    s["replicas"] = json!({"min": 2, "max": 5, "targetCPUUtilization": 60});
    let m = mcp(s);
    let h = hpa::build(&m).expect("hpa");
    let spec = h.spec.expect("spec");
    assert_eq!((spec.min_replicas, spec.max_replicas), (Some(2), 5));
    assert_eq!(spec.scale_target_ref.name, "notes");
    // With an HPA the Deployment leaves replicas alone.
    assert_eq!(deployment::build(&m).spec.and_then(|s| s.replicas), None);
}

#[test]
fn pdb_from_disruption_and_absent_for_single_replica() {
    let p = pdb::build(&mcp(base())).expect("pdb");
    let spec = p.spec.expect("spec");
    assert_eq!(
        spec.unhealthy_pod_eviction_policy.as_deref(),
        Some("AlwaysAllow")
    );
    assert_eq!(
        spec.max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );

    let mut s = base();
    s["disruption"] = json!({"minAvailable": 2});
    let m = mcp(s);
    let spec = pdb::build(&m).and_then(|p| p.spec).expect("spec");
    assert_eq!(
        spec.min_available,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(2))
    );
    assert!(spec.max_unavailable.is_none());
    assert_eq!(pdb::max_disruptions(&m, 3), 1);

    let mut s = base();
    s["replicas"] = json!({"min": 1, "max": 1});
    s["database"]["pool"] = json!({"min": 1, "max": 5});
    assert!(pdb::build(&mcp(s)).is_none());
}

#[test]
fn service_targets_named_port_and_endpoint_url() {
    let m = mcp(base());
    let s = service::build(&m);
    let spec = s.spec.expect("spec");
    assert_eq!(spec.selector, Some(labels::selector(&m)));
    assert_eq!(spec.ports.expect("ports")[0].port, 8080);
    assert_eq!(
        spec.session_affinity.as_deref(),
        Some("ClientIP"),
        "MCP sessions are per pod"
    );
    let mut no = base();
    no["sessionAffinity"] = json!("None");
    let spec = service::build(&mcp(no)).spec.expect("spec");
    assert_eq!(spec.session_affinity.as_deref(), Some("None"));
    // A server seen speaking 2026-07-28 needs no affinity.
    let mut stateless = mcp(base());
    stateless.status = Some(
        serde_json::from_value(json!({"mcp": {"protocolVersion": "2026-07-28"}})).expect("status"),
    );
    let spec = service::build(&stateless).spec.expect("spec");
    assert_eq!(spec.session_affinity.as_deref(), Some("None"));
    assert_eq!(
        service::affinity_of(&stateless),
        (SessionAffinity::None, false)
    );
    assert_eq!(service::hot_spot_warning(&stateless), "");
    assert!(
        service::hot_spot_warning(&m).contains("SessionAffinityHotSpot"),
        "two replicas pinned by client IP"
    );
    assert_eq!(
        service::endpoint_url(&m).as_deref(),
        Some("http://notes.team-a.svc:8080/mcp")
    );
}

#[test]
fn pod_labels_include_selector_and_user_labels() {
    let mut s = base();
    s["podTemplate"] = json!({"labels": {"team": "a", "app.kubernetes.io/instance": "spoof"}});
    let m = mcp(s);
    let tpl = deployment::pod_template(&m);
    let l = tpl.metadata.and_then(|m| m.labels).expect("labels");
    assert_eq!(l.get("team").map(String::as_str), Some("a"));
    // Selector labels cannot be overridden, or the Deployment would lose its pods.
    assert_eq!(
        l.get("app.kubernetes.io/instance").map(String::as_str),
        Some("notes")
    );
}

#[test]
fn pods_carry_the_readiness_gate_unless_it_is_off() {
    let gates = |d: &k8s_openapi::api::apps::v1::Deployment| {
        d.spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|p| p.readiness_gates.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|g| g.condition_type)
            .collect::<Vec<_>>()
    };
    let on = deployment::build(&mcp(base()));
    assert_eq!(gates(&on), vec![crate::api::READINESS_GATE.to_string()]);
    let mut s = base();
    s["health"] = json!({"readinessGate": {"enabled": false}});
    let m = mcp(s);
    assert!(
        !m.spec.health.readiness_gate.enabled,
        "camelCase field read"
    );
    assert!(gates(&deployment::build(&m)).is_empty());
}

fn pod_spec(m: &McpServer) -> k8s_openapi::api::core::v1::PodSpec {
    deployment::pod_template(m).spec.unwrap_or_default()
}

#[test]
fn topology_spread_default_is_a_soft_spread_over_nodes() {
    let m = mcp(base());
    let tsc = pod_spec(&m).topology_spread_constraints.unwrap_or_default();
    assert_eq!(tsc.len(), 1);
    let c = &tsc[0];
    assert_eq!(
        (
            c.max_skew,
            c.topology_key.as_str(),
            c.when_unsatisfiable.as_str()
        ),
        (1, "kubernetes.io/hostname", "ScheduleAnyway")
    );
    assert_eq!(
        c.label_selector
            .as_ref()
            .and_then(|s| s.match_labels.clone()),
        Some(labels::selector(&m))
    );
    // Existing objects keep their applied hash: the default pod template is
    // exactly what it was before the field existed.
    assert_eq!(
        serde_json::to_value(&tsc).expect("json"),
        json!([{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": labels::selector(&m)}}])
    );
    assert!(pod_spec(&m).tolerations.is_none());
}

#[test]
fn an_empty_spread_list_turns_spreading_off() {
    let mut s = base();
    s["podTemplate"] = json!({"topologySpreadConstraints": []});
    let m = mcp(s);
    assert_eq!(
        m.spec.pod_template.topology_spread_constraints,
        Some(vec![]),
        "[] is not the same as unset"
    );
    assert!(pod_spec(&m).topology_spread_constraints.is_none());
}

#[test]
fn a_spread_constraint_without_selector_counts_this_servers_pods() {
    let mut s = base();
    s["podTemplate"] = json!({"topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule"},
        {"maxSkew": 2, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
         "labelSelector": {"matchLabels": {"tier": "mcp"}}}
    ]});
    let m = mcp(s);
    let tsc = pod_spec(&m).topology_spread_constraints.unwrap_or_default();
    assert_eq!(tsc.len(), 2, "the user's list replaces the default");
    assert_eq!(
        (
            tsc[0].topology_key.as_str(),
            tsc[0].when_unsatisfiable.as_str()
        ),
        ("topology.kubernetes.io/zone", "DoNotSchedule")
    );
    let selector = |i: usize| {
        tsc[i]
            .label_selector
            .as_ref()
            .and_then(|s| s.match_labels.clone())
            .unwrap_or_default()
    };
    assert_eq!(selector(0), labels::selector(&m));
    assert_eq!(
        selector(1).get("tier").map(String::as_str),
        Some("mcp"),
        "a selector the user gave is kept"
    );
    assert_eq!(selector(1).len(), 1);
}

fn node_loss(
    t: &[k8s_openapi::api::core::v1::Toleration],
    key: &str,
) -> Vec<(Option<i64>, String)> {
    t.iter()
        .filter(|t| t.key.as_deref() == Some(key))
        .map(|t| (t.toleration_seconds, t.effect.clone().unwrap_or_default()))
        .collect()
}

#[test]
fn node_loss_toleration_seconds_tolerates_both_taints() {
    let mut s = base();
    s["podTemplate"] = json!({"nodeLossTolerationSeconds": 30,
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "mcp", "effect": "NoSchedule"}]});
    let t = pod_spec(&mcp(s)).tolerations.unwrap_or_default();
    assert_eq!(t.len(), 3);
    assert_eq!(t[0].key.as_deref(), Some("dedicated"), "user's first");
    for key in deployment::NODE_LOSS_TAINTS {
        assert_eq!(
            node_loss(&t, key),
            vec![(Some(30), "NoExecute".into())],
            "{key}"
        );
        assert!(t
            .iter()
            .filter(|t| t.key.as_deref() == Some(key))
            .all(|t| t.operator.as_deref() == Some("Exists")));
    }
}

#[test]
fn the_users_own_node_loss_toleration_wins() {
    let mut s = base();
    s["podTemplate"] = json!({"nodeLossTolerationSeconds": 30, "tolerations": [
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 600},
        // Another effect is no toleration of the NoExecute taint: ours is still added.
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"}
    ]});
    let t = pod_spec(&mcp(s)).tolerations.unwrap_or_default();
    assert_eq!(
        node_loss(&t, "node.kubernetes.io/unreachable"),
        vec![(Some(600), "NoExecute".into())]
    );
    assert_eq!(
        node_loss(&t, "node.kubernetes.io/not-ready"),
        vec![(None, "NoSchedule".into()), (Some(30), "NoExecute".into())]
    );

    // No effect means every effect, NoExecute included.
    let mut s = base();
    s["podTemplate"] = json!({"nodeLossTolerationSeconds": 0, "tolerations": [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists"}
    ]});
    let t = pod_spec(&mcp(s)).tolerations.unwrap_or_default();
    assert_eq!(node_loss(&t, "node.kubernetes.io/not-ready").len(), 1);
    assert_eq!(
        node_loss(&t, "node.kubernetes.io/unreachable"),
        vec![(Some(0), "NoExecute".into())]
    );
}

#[test]
fn session_affinity_is_what_the_server_needs() {
    use service::{session_affinity, ObservedEra};
    use SessionAffinity::{ClientIp, None as NoAffinity};
    let stateless = Some(ObservedEra::Stateless);
    let legacy = Some(ObservedEra::Legacy);
    // (spec, era, replicas) -> affinity
    for (spec, era, replicas, want) in [
        (None, stateless, 3, NoAffinity),
        (None, legacy, 3, ClientIp),
        (None, legacy, 1, NoAffinity),
        // Era not seen yet: today's behaviour.
        (None, None, 2, ClientIp),
        (None, None, 1, NoAffinity),
        // The spec wins.
        (Some(ClientIp), stateless, 3, ClientIp),
        (Some(NoAffinity), legacy, 3, NoAffinity),
    ] {
        assert_eq!(
            session_affinity(spec, era, replicas),
            want,
            "{spec:?} {era:?} {replicas}"
        );
    }
    assert_eq!(
        ObservedEra::from_protocol_version("2025-11-25"),
        Some(ObservedEra::Legacy)
    );
    assert_eq!(
        ObservedEra::from_protocol_version("2026-07-28"),
        Some(ObservedEra::Stateless)
    );
}
