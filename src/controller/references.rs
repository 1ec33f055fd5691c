//! Checks that the objects a spec refers to exist. Failures are conditions, not errors.
use super::error::Result;
use crate::api::McpServer;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

/// A reference that cannot be resolved, with a reason and an actionable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub reason: &'static str,
    pub message: String,
}

/// The database Secret reference. (The database Service is judged from its
/// EndpointSlices, in the cache: see `dependency`.) Secret values are never read into logs or status:
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
    Ok(problems)
}

/// A controller confined to one namespace cannot see (or be allowed to read) a
/// database Service in another one: say so instead of reporting it down forever.
pub fn check_scope(scope: Option<&str>, ns: &str, mcp: &McpServer) -> Vec<Problem> {
    let Some(scope) = scope else {
        return vec![];
    };
    let svc = mcp.spec.database.as_ref().and_then(|d| d.service.as_ref());
    match svc.and_then(|s| s.namespace.as_deref()) {
        Some(other) if other != ns => vec![Problem {
            reason: "CrossNamespaceDependency",
            message: format!(
                "database.service is in namespace {other}, but the operator watches only namespace {scope}: deploy the database Service in {ns}, or run the operator cluster-wide (WATCH_NAMESPACES empty)"
            ),
        }],
        _ => vec![],
    }
}
