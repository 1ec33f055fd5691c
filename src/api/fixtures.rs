//! Test builders for McpServers (controller-rs style): `McpServer::test()` and
//! chainable tweaks, instead of JSON blobs repeated in every test.
use super::{McpServer, McpServerStatus, RollbackHold};

impl McpServer {
    /// `team-a/notes`: 3 fixed replicas, a Postgres Service and Secret, generation 1.
    pub fn test() -> Self {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "mcp.operator.dev/v1alpha1", "kind": "McpServer",
            "metadata": {"name": "notes", "namespace": "team-a", "uid": "uid-1", "generation": 1, "resourceVersion": "1"},
            "spec": {
                "image": "notes:1",
                "replicas": {"min": 3, "max": 3},
                "database": {"urlSecretRef": {"name": "notes-db", "key": "url"},
                             "service": {"name": "postgres", "port": 5432},
                             "maxConnections": 30, "pool": {"min": 2, "max": 10}}
            }
        }))
        .unwrap_or_else(|e| panic!("fixture McpServer: {e}"))
    }

    pub fn replicas(mut self, min: i32, max: i32) -> Self {
        self.spec.replicas.min = min;
        self.spec.replicas.max = max;
        self
    }

    pub fn generation(mut self, g: i64) -> Self {
        self.metadata.generation = Some(g);
        self
    }

    /// A failed rollout of the current generation rolled back to `revision`.
    pub fn rolled_back_to(mut self, revision: &str) -> Self {
        let generation = self.metadata.generation.unwrap_or(1);
        self.status
            .get_or_insert_with(McpServerStatus::default)
            .rollback_hold = Some(RollbackHold {
            generation,
            revision: revision.into(),
        });
        self
    }
}
