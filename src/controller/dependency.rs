//! Is the database reachable? Ready endpoints of its Service, or a direct TCP probe.
use super::prober::{self, Verdicts};
use crate::api::McpServer;
use crate::remediation::DependencyObs;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use std::sync::Arc;

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

/// The dependency's state (None: none declared or watched) from the cached EndpointSlices of its Service, or a direct
/// TCP probe (bounded by its timeout) when `database.probe` is set.
pub fn observe(
    ns: &str,
    mcp: &McpServer,
    all_slices: &[Arc<EndpointSlice>],
    verdicts: &Verdicts,
) -> Option<DependencyObs> {
    let Some(db) = &mcp.spec.database else {
        return None;
    };
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
    if let Some(t) = prober::target(mcp) {
        return Some(prober::observe(&t, verdicts.get(&t)));
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
