//! What differs between the operators compared: their custom resource, when it
//! counts as converged, and where a spec change lands.
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[value(rename_all = "kebab-case")]
pub enum Peer {
    McpOperator,
    Toolhive,
}

/// The database every server points at (a Service without a selector and a
/// hand-made EndpointSlice, so the benchmark decides when it is "down").
pub const DB_NS: &str = "bench-db";
pub const DB_SERVICE: &str = "postgres";
pub const DB_SLICE: &str = "postgres-bench";

impl Peer {
    pub fn name(self) -> &'static str {
        match self {
            Peer::McpOperator => "mcp-operator",
            Peer::Toolhive => "toolhive",
        }
    }

    pub fn resource(self) -> ApiResource {
        let gvk = match self {
            Peer::McpOperator => GroupVersionKind::gvk("mcp.operator.dev", "v1alpha1", "McpServer"),
            Peer::Toolhive => {
                GroupVersionKind::gvk("toolhive.stacklok.dev", "v1beta1", "MCPServer")
            }
        };
        ApiResource::from_gvk(&gvk)
    }

    /// One server of the workload: the same image, port and replica count
    /// for both (ToolHive: see `toolhive_spec`). Our MCP checks are off: no
    /// server answers at a kwok pod's address, so they would fail and evict
    /// (ToolHive has no such checks either).
    pub fn manifest(self, ns: &str, name: &str, image: &str) -> Value {
        let r = self.resource();
        let spec = match self {
            Peer::McpOperator => json!({
                "image": image,
                "transport": "streamable-http",
                "port": 8080,
                "path": "/mcp",
                "replicas": {"min": 2, "max": 2},
                "health": {"mcp": {"enabled": false}},
                "database": {
                    "urlSecretRef": {"name": "db", "key": "url"},
                    "service": {"name": DB_SERVICE, "namespace": DB_NS, "port": 5432},
                    "maxConnections": 40,
                    "pool": {"min": 1, "max": 10}
                }
            }),
            Peer::Toolhive => toolhive_spec(image),
        };
        json!({
            "apiVersion": r.api_version,
            "kind": r.kind,
            "metadata": {"name": name, "namespace": ns},
            "spec": spec,
        })
    }

    /// The patch that changes every server's image.
    pub fn image_patch(self, image: &str) -> Value {
        json!({"spec": {"image": image}})
    }

    /// Converged: what a user (or Argo CD, or `kubectl wait`) would take as
    /// "this server is up and the operator has seen its current spec".
    pub fn converged(self, o: &DynamicObject) -> bool {
        let generation = o.metadata.generation;
        let status = o.data.get("status");
        match self {
            Peer::McpOperator => {
                let observed = status
                    .and_then(|s| s.get("observedGeneration"))
                    .and_then(Value::as_i64);
                observed.is_some() && observed == generation && condition(o, "Ready") == Some(true)
            }
            Peer::Toolhive => {
                let observed = status
                    .and_then(|s| s.get("observedGeneration"))
                    .and_then(Value::as_i64);
                let phase = status.and_then(|s| s.get("phase")).and_then(Value::as_str);
                observed == generation
                    && phase == Some("Ready")
                    && condition(o, "Ready") == Some(true)
            }
        }
    }

    /// What stands in for the part of a peer that only runs inside its pods.
    /// ToolHive's proxy runner (the container of the Deployment its operator
    /// makes) creates the server's StatefulSet when it starts, and the
    /// operator reports Ready only once that exists; no container runs under
    /// kwok, so the benchmark creates it, as the runner would, with the
    /// runner's labels (the operator adopts it).
    pub fn runner_stand_in(self, ns: &str, name: &str) -> Option<Value> {
        match self {
            Peer::McpOperator => None,
            Peer::Toolhive => Some(json!({
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": {"name": name, "namespace": ns,
                    "labels": {"toolhive": "true", "toolhive-name": name}},
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": {"toolhive-name": name, "bench-runner": "stand-in"}},
                    "template": {
                        "metadata": {"labels": {"toolhive-name": name, "bench-runner": "stand-in"}},
                        "spec": {"containers": [{"name": "mcp", "image": "registry.bench.local/mcp/server:1.0.0"}]}
                    }
                }
            })),
        }
    }

    /// The operator's view of the database, when it has one.
    pub fn dependency_up(self, o: &DynamicObject) -> Option<bool> {
        match self {
            Peer::McpOperator => condition(o, "DependencyAvailable"),
            Peer::Toolhive => None,
        }
    }

    /// Whether a Deployment of this operator runs `image` (in its pod
    /// template, wherever the peer puts it).
    pub fn deployment_runs(self, d: &Deployment, image: &str) -> bool {
        match self {
            Peer::McpOperator => d
                .spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .is_some_and(|p| {
                    p.containers
                        .iter()
                        .any(|c| c.image.as_deref() == Some(image))
                }),
            Peer::Toolhive => serde_json::to_string(&d.spec).is_ok_and(|s| s.contains(image)),
        }
    }
}

pub fn condition(o: &DynamicObject, type_: &str) -> Option<bool> {
    o.data
        .get("status")?
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
        .and_then(|c| c.get("status").and_then(Value::as_str))
        .map(|s| s == "True")
}

/// ToolHive's MCPServer (v1beta1, its stored version): 2 proxy replicas in
/// front of the server, which is what serves clients.
fn toolhive_spec(image: &str) -> Value {
    json!({
        "image": image,
        "transport": "streamable-http",
        "proxyPort": 8080,
        "mcpPort": 8080,
        "replicas": 2,
    })
}
