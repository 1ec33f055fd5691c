//! Every Kubernetes API call the operator makes, as RBAC rules: the chart's
//! ClusterRole/Role and Lease Role must grant exactly these (a test compares the
//! chart with this list, and the real-API-server tests check that every call they
//! see is on it).

/// (API group, resource, verbs).
pub type Rule = (&'static str, &'static str, &'static [&'static str]);

/// Rules in the watched namespaces (ClusterRole in cluster-wide mode).
pub const RULES: &[Rule] = &[
    // Reflector of McpServers; status is the only thing written.
    ("mcp.operator.dev", "mcpservers", &["list", "watch"]),
    ("mcp.operator.dev", "mcpservers/status", &["patch"]),
    // Children: cached, and server-side applied (which creates when missing);
    // get: before creating one, whether its name is taken (`act::claim`).
    (
        "apps",
        "deployments",
        &["get", "list", "watch", "create", "patch"],
    ),
    ("", "services", &["get", "list", "watch", "create", "patch"]),
    (
        "policy",
        "poddisruptionbudgets",
        &["get", "list", "watch", "create", "patch", "delete"],
    ),
    (
        "autoscaling",
        "horizontalpodautoscalers",
        &["get", "list", "watch", "create", "patch", "delete"],
    ),
    // Observed only; a rollback reads its revision's template (get).
    ("apps", "replicasets", &["get", "list", "watch"]),
    ("", "pods", &["list", "watch"]),
    ("discovery.k8s.io", "endpointslices", &["list", "watch"]),
    // Remediation.
    ("", "pods/eviction", &["create"]),
    // The readiness gate `mcp.operator.dev/healthy` (a pod condition).
    ("", "pods/status", &["patch"]),
    // Events (events.k8s.io/v1; a series is patched).
    ("events.k8s.io", "events", &["create", "patch"]),
];

/// Rules in the operator's own namespace, for leader election: `create` for
/// any Lease (RBAC cannot limit a create by name), the [`LEASE_NAMED_VERBS`]
/// only on the operator's own Lease (`resourceNames`), so in a shared
/// namespace the operator cannot read or rewrite other components' leases.
pub const LEASE_RULES: &[Rule] = &[
    ("coordination.k8s.io", "leases", &["create"]),
    ("coordination.k8s.io", "leases", LEASE_NAMED_VERBS),
];

/// The Lease verbs granted on the operator's own Lease name only.
pub const LEASE_NAMED_VERBS: &[&str] = &["get", "update"];

/// The RBAC (group, resource, verb) of a request, from its method, path and query.
pub fn request_rule(method: &str, path: &str, query: &str) -> Option<(String, String, String)> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match *parts.first()? {
        "api" => ("", parts.get(2..)?),
        "apis" => (*parts.get(1)?, parts.get(3..)?),
        _ => return None,
    };
    let rest = match rest {
        ["namespaces", _ns, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    let (resource, name, sub) = match rest {
        [r] => (*r, None, None),
        [r, n] => (*r, Some(*n), None),
        [r, n, s] => (*r, Some(*n), Some(*s)),
        _ => return None,
    };
    let verb = match (method, name) {
        ("GET", None) if query.contains("watch=true") || query.contains("watch=1") => "watch",
        ("GET", None) => "list",
        ("GET", Some(_)) => "get",
        ("POST", _) => "create",
        ("PATCH", _) => "patch",
        ("PUT", _) => "update",
        ("DELETE", _) => "delete",
        _ => return None,
    };
    let resource = match sub {
        Some(s) => format!("{resource}/{s}"),
        None => resource.to_string(),
    };
    Some((group.to_string(), resource, verb.to_string()))
}

/// Is (group, resource, verb) granted by `rules`?
pub fn allows(rules: &[Rule], group: &str, resource: &str, verb: &str) -> bool {
    rules
        .iter()
        .any(|(g, r, vs)| *g == group && *r == resource && vs.contains(&verb))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_map_to_rules() {
        let r = |m, p, q| request_rule(m, p, q).map(|(g, r, v)| format!("{g}|{r}|{v}"));
        assert_eq!(
            r(
                "PATCH",
                "/apis/apps/v1/namespaces/a/deployments/notes",
                "fieldManager=x"
            )
            .as_deref(),
            Some("apps|deployments|patch")
        );
        assert_eq!(
            r(
                "GET",
                "/api/v1/namespaces/a/pods",
                "watch=true&labelSelector=x"
            )
            .as_deref(),
            Some("|pods|watch")
        );
        assert_eq!(r("GET", "/api/v1/pods", "").as_deref(), Some("|pods|list"));
        assert_eq!(
            r("POST", "/api/v1/namespaces/a/pods/p1/eviction", "").as_deref(),
            Some("|pods/eviction|create")
        );
        assert_eq!(
            r(
                "PATCH",
                "/apis/mcp.operator.dev/v1alpha1/namespaces/a/mcpservers/n/status",
                ""
            )
            .as_deref(),
            Some("mcp.operator.dev|mcpservers/status|patch")
        );
        assert!(allows(RULES, "", "pods/eviction", "create"));
        assert!(
            !allows(RULES, "", "secrets", "get"),
            "Secrets are never read"
        );
    }

    /// The chart grants exactly `RULES`.
    #[test]
    fn the_chart_grants_exactly_these_rules() {
        let helpers = include_str!("../charts/mcp-operator/templates/_helpers.tpl");
        let start = helpers
            .find("{{- define \"mcp-operator.rules\" -}}")
            .expect("rules template");
        let body = &helpers[start..];
        let body =
            &body[body.find('\n').unwrap_or(0)..body.find("{{- end }}").unwrap_or(body.len())];
        let chart: Vec<serde_yaml::Value> = serde_yaml::from_str(body).expect("rules yaml");
        let mut granted: Vec<String> = Vec::new();
        for rule in &chart {
            let list = |k: &str| -> Vec<String> {
                rule[k]
                    .as_sequence()
                    .map(|s| {
                        s.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            for g in list("apiGroups") {
                for r in list("resources") {
                    for v in list("verbs") {
                        granted.push(format!("{g}|{r}|{v}"));
                    }
                }
            }
        }
        let mut wanted: Vec<String> = RULES
            .iter()
            .flat_map(|(g, r, vs)| vs.iter().map(move |v| format!("{g}|{r}|{v}")))
            .collect();
        granted.sort();
        wanted.sort();
        assert_eq!(
            granted, wanted,
            "chart rules differ from the calls the operator makes"
        );
    }

    /// The rendered bundle (the chart with default values) grants the Lease
    /// rules, with get/update limited to the Lease the operator is started with.
    #[test]
    fn the_lease_role_names_the_operators_lease() {
        let bundle = include_str!("../deploy/install.yaml");
        let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(bundle)
            .filter_map(|d| serde::Deserialize::deserialize(d).ok())
            .collect();
        let lease_name = bundle
            .lines()
            .find_map(|l| l.trim().strip_prefix("- --lease-name="))
            .expect("the Deployment passes --lease-name");
        let role = docs
            .iter()
            .find(|d| {
                d["kind"] == "Role"
                    && d["metadata"]["name"]
                        .as_str()
                        .is_some_and(|n| n.ends_with("-leader-election"))
            })
            .expect("a leader-election Role");
        let strings = |v: &serde_yaml::Value| -> Vec<String> {
            v.as_sequence()
                .map(|s| {
                    s.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut granted: Vec<(Vec<String>, Vec<String>)> = Vec::new();
        for rule in role["rules"].as_sequence().into_iter().flatten() {
            assert_eq!(strings(&rule["resources"]), ["leases"]);
            granted.push((strings(&rule["verbs"]), strings(&rule["resourceNames"])));
        }
        let wanted: Vec<(Vec<String>, Vec<String>)> = LEASE_RULES
            .iter()
            .map(|(_, _, verbs)| {
                let names = if *verbs == LEASE_NAMED_VERBS {
                    vec![lease_name.to_string()]
                } else {
                    vec![]
                };
                (verbs.iter().map(|v| v.to_string()).collect(), names)
            })
            .collect();
        assert_eq!(granted, wanted);
    }
}
