//! Labels shared by every child object, and the pod selector.
use crate::api::McpServer;
use kube::ResourceExt;
use std::collections::BTreeMap;

pub const SERVER_LABEL: &str = "mcp.operator.dev/server";
pub const MANAGED_BY: &str = "mcp-operator";

/// Selector labels: stable for the life of the object (Deployment selectors are immutable).
pub fn selector(mcp: &McpServer) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            "mcp-server".to_string(),
        ),
        ("app.kubernetes.io/instance".to_string(), mcp.name_any()),
        (SERVER_LABEL.to_string(), mcp.name_any()),
    ])
}

/// Labels on every child object.
pub fn common(mcp: &McpServer) -> BTreeMap<String, String> {
    let mut l = selector(mcp);
    l.insert("app.kubernetes.io/managed-by".into(), MANAGED_BY.into());
    l
}

/// `k=v,k=v` form for list calls.
pub fn selector_string(mcp: &McpServer) -> String {
    selector(mcp)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}
