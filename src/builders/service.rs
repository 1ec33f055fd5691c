//! The ClusterIP Service in front of the pool.
use super::{child_meta, labels};
use crate::api::{McpServer, SessionAffinity};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The MCP era a server's pods were seen to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObservedEra {
    /// MCP 2026-07-28 and later: no sessions, any pod serves any request.
    Stateless,
    /// An earlier revision: a session lives in the process that opened it.
    Legacy,
}

impl ObservedEra {
    /// From the protocol revision a check negotiated (`status.mcp.protocolVersion`).
    pub fn from_protocol_version(v: &str) -> Option<Self> {
        // Revisions are dates, so they order as strings.
        match v {
            "" => None,
            v if v >= "2026-07-28" => Some(Self::Stateless),
            _ => Some(Self::Legacy),
        }
    }

    fn of(mcp: &McpServer) -> Option<Self> {
        mcp.status
            .as_ref()?
            .mcp
            .as_ref()?
            .protocol_version
            .as_deref()
            .and_then(Self::from_protocol_version)
    }
}

/// Pure: the affinity the Service gets. The spec's when set; else `None` for a
/// stateless server, and `ClientIP` when a server with sessions (or one whose
/// era is not known yet) may run more than one replica.
pub fn session_affinity(
    spec: Option<SessionAffinity>,
    observed_era: Option<ObservedEra>,
    replicas: i32,
) -> SessionAffinity {
    match (spec, observed_era) {
        (Some(s), _) => s,
        (None, Some(ObservedEra::Stateless)) => SessionAffinity::None,
        (None, _) if replicas > 1 => SessionAffinity::ClientIp,
        (None, _) => SessionAffinity::None,
    }
}

/// The affinity this server's Service gets, and whether it is `ClientIP`
/// over more than one replica: every client behind one IP (a NAT, a proxy, a
/// gateway) then lands on the same pod, a hot spot.
pub fn affinity_of(mcp: &McpServer) -> (SessionAffinity, bool) {
    let replicas = mcp.spec.replicas.max.max(mcp.spec.replicas.min);
    let a = session_affinity(mcp.spec.session_affinity, ObservedEra::of(mcp), replicas);
    (a, a == SessionAffinity::ClientIp && replicas > 1)
}

/// Appended to the `McpResponsive` message while the Service pins clients
/// to pods over more than one replica; empty otherwise.
pub fn hot_spot_warning(mcp: &McpServer) -> String {
    if !affinity_of(mcp).1 {
        return String::new();
    }
    let why = if mcp.spec.session_affinity.is_some() {
        "as spec.sessionAffinity says"
    } else {
        "the server keeps sessions per pod, or its protocol revision is not known yet"
    };
    format!(
        "; SessionAffinityHotSpot: the Service uses sessionAffinity ClientIP ({why}), so every client behind one IP (a NAT, a proxy, a gateway) lands on one pod; \
         set spec.sessionAffinity: None if the server keeps no sessions"
    )
}

pub fn build(mcp: &McpServer) -> Service {
    Service {
        metadata: child_meta(mcp),
        spec: Some(ServiceSpec {
            selector: Some(labels::selector(mcp)),
            ports: Some(vec![ServicePort {
                name: Some("mcp".into()),
                port: mcp.spec.port,
                target_port: Some(IntOrString::String("mcp".into())),
                protocol: Some("TCP".into()),
                app_protocol: Some("http".into()),
                ..Default::default()
            }]),
            session_affinity: Some(
                match affinity_of(mcp).0 {
                    SessionAffinity::ClientIp => "ClientIP",
                    SessionAffinity::None => "None",
                }
                .into(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// In-cluster URL of the MCP endpoint.
pub fn endpoint_url(mcp: &McpServer) -> Option<String> {
    use kube::ResourceExt;
    let ns = mcp.namespace()?;
    Some(format!(
        "http://{}.{}.svc:{}{}",
        mcp.name_any(),
        ns,
        mcp.spec.port,
        mcp.spec.path
    ))
}
