//! Problems with what a spec refers to. They are conditions, not errors.
use crate::api::McpServer;
use crate::controller::cached::CachedPod;

/// A reference that cannot be resolved, with a reason and an actionable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub reason: &'static str,
    pub message: String,
    /// Children are not applied while it stands (a reference the operator cannot
    /// follow). Problems seen on running pods do not block: their pods need the
    /// Deployment to report them.
    pub blocks_children: bool,
}

/// Problems the kubelet found while creating containers (`CreateContainerConfigError`):
/// a missing database Secret or key, or any other missing reference of the pod.
/// Read from the pods, so the operator needs no permission on Secrets at all and
/// never sees a Secret's value.
pub fn from_pods(ns: &str, mcp: &McpServer, pods: &[CachedPod]) -> Vec<Problem> {
    let secret = mcp.spec.database.as_ref().map(|d| &d.url_secret_ref);
    let mut out: Vec<Problem> = Vec::new();
    let messages = pods
        .iter()
        .filter_map(|p| p.status.as_ref()?.container_statuses.as_ref())
        .flatten()
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref())
        .filter(|w| w.reason.as_deref() == Some("CreateContainerConfigError"))
        .map(|w| w.message.clone().unwrap_or_default());
    for m in messages {
        let problem = match secret {
            Some(r) if m.contains(&format!("secret \"{}\" not found", r.name)) => Problem {
                reason: "SecretNotFound",
                message: format!(
                    "Secret {ns}/{} (database.urlSecretRef) does not exist: create it with key {:?} holding the database URL",
                    r.name, r.key
                ),
                blocks_children: false,
            },
            Some(r) if m.contains(&format!("couldn't find key {} in Secret", r.key)) => Problem {
                reason: "SecretKeyMissing",
                message: format!(
                    "Secret {ns}/{} has no key {:?} (database.urlSecretRef.key): add the key or point urlSecretRef.key at an existing one",
                    r.name, r.key
                ),
                blocks_children: false,
            },
            _ => Problem {
                reason: "ContainerConfigError",
                message: format!("pods cannot be configured: {m}"),
                blocks_children: false,
            },
        };
        if !out.contains(&problem) {
            out.push(problem);
        }
    }
    out
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
            blocks_children: true,
        }],
        _ => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(message: &str) -> CachedPod {
        serde_json::from_value(json!({"metadata": {"name": "notes-1"}, "status": {"containerStatuses": [
            {"name": "mcp", "ready": false, "restartCount": 0, "image": "x", "imageID": "",
             "state": {"waiting": {"reason": "CreateContainerConfigError", "message": message}}}]}}))
        .expect("pod")
    }

    #[test]
    fn secret_problems_come_from_the_kubelet() {
        let mcp = McpServer::test();
        let p = from_pods(
            "team-a",
            &mcp,
            &[
                pod("secret \"notes-db\" not found"),
                pod("secret \"notes-db\" not found"),
            ],
        );
        assert_eq!(p.len(), 1, "one problem for many pods");
        assert_eq!(p[0].reason, "SecretNotFound");
        assert!(p[0].message.contains("team-a/notes-db") && !p[0].blocks_children);
        let p = from_pods(
            "team-a",
            &mcp,
            &[pod("couldn't find key url in Secret team-a/notes-db")],
        );
        assert_eq!(p[0].reason, "SecretKeyMissing");
        let p = from_pods("team-a", &mcp, &[pod("configmap \"extra\" not found")]);
        assert_eq!(p[0].reason, "ContainerConfigError");
        assert!(p[0].message.contains("configmap \"extra\""));
        assert!(from_pods("team-a", &mcp, &[]).is_empty());
    }

    #[test]
    fn cross_namespace_database_only_in_cluster_scope() {
        let mut mcp = McpServer::test();
        if let Some(svc) = mcp.spec.database.as_mut().and_then(|d| d.service.as_mut()) {
            svc.namespace = Some("db".into());
        }
        assert!(check_scope(None, "team-a", &mcp).is_empty());
        let p = check_scope(Some("team-a"), "team-a", &mcp);
        assert_eq!(p[0].reason, "CrossNamespaceDependency");
        assert!(p[0].blocks_children);
    }
}
