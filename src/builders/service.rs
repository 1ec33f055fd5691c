//! The ClusterIP Service in front of the pool.
use super::{child_meta, labels};
use crate::api::{McpServer, SessionAffinity};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

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
                match mcp.spec.session_affinity {
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
