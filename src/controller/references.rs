//! Checks that the objects a spec refers to exist. Failures are conditions, not errors.
use super::error::Result;
use crate::api::McpServer;
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::{Api, Client};

/// A reference that cannot be resolved, with a reason and an actionable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub reason: &'static str,
    pub message: String,
}

/// Secret and Service references. Secret values are never read into logs or status:
/// only the presence of the key is checked.
pub async fn check(client: &Client, ns: &str, mcp: &McpServer) -> Result<Vec<Problem>> {
    let mut problems = Vec::new();
    let Some(db) = &mcp.spec.database else {
        return Ok(problems);
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let r = &db.url_secret_ref;
    match secrets.get_opt(&r.name).await? {
        None => problems.push(Problem {
            reason: "SecretNotFound",
            message: format!(
                "Secret {ns}/{} (database.urlSecretRef) does not exist: create it with key {:?} holding the database URL",
                r.name, r.key
            ),
        }),
        Some(s) => {
            let has_key = s.data.as_ref().is_some_and(|d| d.contains_key(&r.key))
                || s.string_data.as_ref().is_some_and(|d| d.contains_key(&r.key));
            if !has_key {
                problems.push(Problem {
                    reason: "SecretKeyMissing",
                    message: format!(
                        "Secret {ns}/{} has no key {:?} (database.urlSecretRef.key): add the key or point urlSecretRef.key at an existing one",
                        r.name, r.key
                    ),
                });
            }
        }
    }
    if let Some(svc) = &db.service {
        let svc_ns = svc.namespace.as_deref().unwrap_or(ns);
        let services: Api<Service> = Api::namespaced(client.clone(), svc_ns);
        if services.get_opt(&svc.name).await?.is_none() {
            problems.push(Problem {
                reason: "DependencyServiceNotFound",
                message: format!(
                    "Service {svc_ns}/{} (database.service) does not exist: create it or fix database.service.name/namespace",
                    svc.name
                ),
            });
        }
    }
    Ok(problems)
}
