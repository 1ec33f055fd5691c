//! Pure builders: McpServer spec -> desired child objects. No I/O here.
pub mod budget;
pub mod deployment;
pub mod hpa;
pub mod labels;
pub mod pdb;
pub mod service;

use crate::api::McpServer;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

/// Metadata for a child object: same name and namespace, our labels, a controller owner reference.
pub fn child_meta(mcp: &McpServer) -> ObjectMeta {
    ObjectMeta {
        name: Some(mcp.name_any()),
        namespace: mcp.namespace(),
        labels: Some(labels::common(mcp)),
        owner_references: owner_ref(mcp).map(|o| vec![o]),
        ..Default::default()
    }
}

/// Controller owner reference, so children are garbage-collected with the McpServer.
pub fn owner_ref(mcp: &McpServer) -> Option<OwnerReference> {
    mcp.controller_owner_ref(&())
}

#[cfg(test)]
mod tests;
