//! Is the database reachable? Ready endpoints of its Service, or a direct TCP probe.
use super::prober::{self, Verdicts};
use super::references::Problem;
use crate::api::McpServer;
use crate::remediation::{DependencyObs, DependencyState};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use std::sync::Arc;
use tokio::time::Instant;

pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Count ready endpoints; a missing `ready` condition counts as ready (API semantics).
pub fn ready_endpoints(slices: &[EndpointSlice], port: Option<i32>) -> usize {
    slices
        .iter()
        .filter(|s| {
            port.is_none_or(|p| {
                s.ports
                    .as_ref()
                    .is_none_or(|ps| ps.is_empty() || ps.iter().any(|sp| sp.port == Some(p)))
            })
        })
        .flat_map(|s| s.endpoints.iter())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .count()
}

/// Where an McpServer's database may be (`--dependency-scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DependencyScope {
    /// Own namespace when the operator watches listed namespaces, else anywhere.
    #[default]
    Auto,
    /// Any Service of any namespace, any host.
    Any,
    /// `database.service` and `database.probe.host` name Services of the
    /// McpServer's own namespace; nothing else is looked up or probed.
    OwnNamespace,
}

impl DependencyScope {
    /// Confined to the own namespace, for a controller that watches `namespaced`
    /// (a listed namespace) or the whole cluster.
    pub fn confines(self, namespaced: bool) -> bool {
        match self {
            Self::Auto => namespaced,
            Self::Any => false,
            Self::OwnNamespace => true,
        }
    }
}

impl std::str::FromStr for DependencyScope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "any" => Ok(Self::Any),
            "own-namespace" => Ok(Self::OwnNamespace),
            _ => Err(format!("{s:?}: expected auto, any or own-namespace")),
        }
    }
}

pub const OUT_OF_SCOPE: &str = "DependencyOutOfScope";

/// Longest user-written value echoed into a message.
const SHOWN: usize = 80;

fn shown(s: &str) -> String {
    if s.chars().count() <= SHOWN {
        return format!("{s:?}");
    }
    format!("{:?}...", s.chars().take(SHOWN).collect::<String>())
}

/// Pure: why the McpServer's database is not in its own namespace `ns` (None:
/// it is). Says nothing of what exists elsewhere: nothing is looked up.
pub fn out_of_scope(ns: &str, mcp: &McpServer) -> Option<String> {
    let db = mcp.spec.database.as_ref()?;
    if let Some(other) = db
        .service
        .as_ref()
        .and_then(|s| s.namespace.as_deref())
        .filter(|n| *n != ns)
    {
        return Some(format!(
            "database.service names namespace {}, but this operator confines dependencies to the McpServer's own namespace {ns} (--dependency-scope): put the database Service (or an ExternalName Service pointing at it) in {ns}",
            shown(other)
        ));
    }
    let probe = db.probe.as_ref()?;
    if prober::confined_host(&probe.host, ns).is_some() {
        return None;
    }
    Some(format!(
        "database.probe.host {} is not a Service of namespace {ns}, and this operator confines dependencies to the McpServer's own namespace (--dependency-scope): name a Service of {ns} (<svc>, <svc>.{ns} or <svc>.{ns}.svc); for a database outside the cluster, an ExternalName Service in {ns}",
        shown(&probe.host)
    ))
}

/// The same as a spec problem (`ConfigValid=False`); the pods still run.
pub fn scope_problem(own_namespace_only: bool, ns: &str, mcp: &McpServer) -> Option<Problem> {
    if !own_namespace_only {
        return None;
    }
    out_of_scope(ns, mcp).map(|message| Problem {
        reason: OUT_OF_SCOPE,
        message,
        blocks_children: false,
    })
}

/// The dependency's state (None: none declared or watched) from the cached EndpointSlices of its Service, or a direct
/// TCP probe (bounded by its timeout) when `database.probe` is set. Confined to
/// the own namespace, a dependency outside it is unknown and never looked at.
pub fn observe(
    ns: &str,
    mcp: &McpServer,
    all_slices: &[Arc<EndpointSlice>],
    verdicts: &Verdicts,
    own_namespace_only: bool,
) -> Option<DependencyObs> {
    observe_at(
        ns,
        mcp,
        all_slices,
        verdicts,
        own_namespace_only,
        Instant::now(),
    )
}

fn observe_at(
    ns: &str,
    mcp: &McpServer,
    all_slices: &[Arc<EndpointSlice>],
    verdicts: &Verdicts,
    own_namespace_only: bool,
    now: Instant,
) -> Option<DependencyObs> {
    let Some(db) = &mcp.spec.database else {
        return None;
    };
    if own_namespace_only {
        if let Some(why) = out_of_scope(ns, mcp) {
            return Some(DependencyObs {
                state: DependencyState::Unknown,
                since: None,
                message: Some(why),
                reason: Some(OUT_OF_SCOPE.into()),
            });
        }
    }
    if let Some(svc) = &db.service {
        let svc_ns = svc.namespace.as_deref().unwrap_or(ns);
        let slices: Vec<EndpointSlice> = all_slices
            .iter()
            .filter(|s| {
                s.labels().get(SERVICE_NAME_LABEL) == Some(&svc.name)
                    && s.metadata.namespace.as_deref() == Some(svc_ns)
            })
            .map(|s| s.as_ref().clone())
            .collect();
        if slices.is_empty() {
            // The EndpointSlice controller gives every Service with a selector at least
            // one slice, so none means no such Service (or one without a selector).
            return Some(DependencyObs::down(format!(
                    "Service {svc_ns}/{} has no EndpointSlice: it does not exist or has no selector; create it or fix database.service",
                    svc.name
                )).because("NoEndpointSlice"));
        }
        let ready = ready_endpoints(&slices, svc.port);
        if ready == 0 {
            return Some(
                DependencyObs::down(format!(
                    "Service {svc_ns}/{} has no ready endpoints",
                    svc.name
                ))
                .because("NoReadyEndpoints"),
            );
        }
        if db.probe.is_none() {
            return Some(DependencyObs::up_because(
                "EndpointsReady",
                format!(
                    "Service {svc_ns}/{} has {ready} ready endpoint(s)",
                    svc.name
                ),
            ));
        }
    }
    if let Some(t) = prober::target(mcp, own_namespace_only) {
        return Some(prober::observe(&t, verdicts.get(&t).as_ref(), now));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};

    fn slice(ready: &[Option<bool>], port: i32) -> EndpointSlice {
        EndpointSlice {
            address_type: "IPv4".into(),
            endpoints: ready
                .iter()
                .map(|r| Endpoint {
                    addresses: vec!["10.0.0.1".into()],
                    conditions: Some(EndpointConditions {
                        ready: *r,
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect(),
            ports: Some(vec![EndpointPort {
                port: Some(port),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    fn with_service_in(ns: Option<&str>) -> McpServer {
        let mut mcp = McpServer::test();
        if let Some(svc) = mcp.spec.database.as_mut().and_then(|d| d.service.as_mut()) {
            svc.namespace = ns.map(str::to_string);
        }
        mcp
    }

    fn slice_of(ns: &str, svc: &str) -> Arc<EndpointSlice> {
        let mut s = slice(&[Some(true)], 5432);
        s.metadata.namespace = Some(ns.into());
        s.metadata.labels = Some([(SERVICE_NAME_LABEL.to_string(), svc.to_string())].into());
        Arc::new(s)
    }

    #[test]
    fn confined_a_service_elsewhere_is_never_looked_at() {
        let mcp = with_service_in(Some("db"));
        let v = Verdicts::default();
        let now = Instant::now();
        let there = [slice_of("db", "postgres")];
        let with = observe_at("team-a", &mcp, &there, &v, true, now);
        let without = observe_at("team-a", &mcp, &[], &v, true, now);
        assert_eq!(
            with, without,
            "the verdict does not tell whether db/postgres exists"
        );
        let obs = with.unwrap_or_else(DependencyObs::up);
        assert_eq!(obs.state, DependencyState::Unknown);
        assert_eq!(obs.reason.as_deref(), Some(OUT_OF_SCOPE));
        assert!(obs
            .message
            .unwrap_or_default()
            .contains("own namespace team-a"));
        // Cluster scope: the Service elsewhere is followed, as before.
        let open = observe_at("team-a", &mcp, &there, &v, false, now);
        assert_eq!(open.map(|o| o.state), Some(DependencyState::Up));
        // Its own namespace, named or not, is in scope.
        for ns in [None, Some("team-a")] {
            let mine = with_service_in(ns);
            let obs = observe_at(
                "team-a",
                &mine,
                &[slice_of("team-a", "postgres")],
                &v,
                true,
                now,
            );
            assert_eq!(obs.map(|o| o.state), Some(DependencyState::Up), "{ns:?}");
        }
    }

    #[test]
    fn confined_a_probe_host_outside_is_not_probed() {
        let mut mcp = McpServer::test();
        if let Some(d) = mcp.spec.database.as_mut() {
            d.service = None;
            d.probe = Some(crate::api::TcpProbe {
                host: "169.254.169.254".into(),
                port: 80,
                timeout_ms: 500,
            });
        }
        let v = Verdicts::default();
        let obs = observe_at("team-a", &mcp, &[], &v, true, Instant::now());
        assert_eq!(
            obs.as_ref().and_then(|o| o.reason.as_deref()),
            Some(OUT_OF_SCOPE)
        );
        assert!(prober::target(&mcp, true).is_none());
        let p = scope_problem(true, "team-a", &mcp).map(|p| (p.reason, p.blocks_children));
        assert_eq!(p, Some((OUT_OF_SCOPE, false)));
        assert!(scope_problem(false, "team-a", &mcp).is_none());
        // Unconfined, it is probed as before.
        let obs = observe_at("team-a", &mcp, &[], &v, false, Instant::now());
        assert_eq!(obs.and_then(|o| o.reason), Some("ProbePending".into()));
        // A 5,000-character host is not echoed whole.
        if let Some(p) = mcp.spec.database.as_mut().and_then(|d| d.probe.as_mut()) {
            p.host = "a.".repeat(2500);
        }
        let m = out_of_scope("team-a", &mcp).unwrap_or_default();
        assert!(m.len() < 600, "{}", m.len());
    }

    #[test]
    fn scope_flag() {
        let parse = |s: &str| s.parse::<DependencyScope>();
        assert_eq!(parse("auto"), Ok(DependencyScope::Auto));
        assert_eq!(parse("own-namespace"), Ok(DependencyScope::OwnNamespace));
        assert!(parse("own").is_err());
        assert!(DependencyScope::Auto.confines(true));
        assert!(!DependencyScope::Auto.confines(false));
        assert!(DependencyScope::OwnNamespace.confines(false));
        assert!(!DependencyScope::Any.confines(true));
    }

    #[test]
    fn counts_ready_endpoints() {
        assert_eq!(
            ready_endpoints(&[slice(&[Some(true), Some(false), None], 5432)], None),
            2
        );
        assert_eq!(ready_endpoints(&[slice(&[Some(false)], 5432)], None), 0);
        assert_eq!(ready_endpoints(&[], None), 0);
        // Port filter: a slice for another port does not count.
        assert_eq!(
            ready_endpoints(&[slice(&[Some(true)], 9999)], Some(5432)),
            0
        );
        assert_eq!(
            ready_endpoints(&[slice(&[Some(true)], 5432)], Some(5432)),
            1
        );
    }
}
