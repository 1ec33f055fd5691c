//! The committed CRD files must equal what crdgen prints.
use kube::CustomResourceExt;

fn generated() -> String {
    serde_yaml::to_string(&mcp_operator::api::McpServer::crd()).expect("CRD serialises")
}

fn check(path: &str) {
    let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    let committed =
        std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("cannot read {full}: {e}"));
    assert!(
        committed == generated(),
        "{path} is out of date: run `cargo run --bin crdgen > {path}` (and copy it to the other location)"
    );
}

#[test]
fn crds_dir_matches_crdgen() {
    check("crds/mcp.operator.dev_mcpservers.yaml");
}

#[test]
fn chart_crd_matches_crdgen() {
    check("charts/mcp-operator/crds/mcp.operator.dev_mcpservers.yaml");
}

#[test]
fn crd_carries_cross_field_rules_and_columns() {
    let y = generated();
    for needle in [
        "self.min <= self.max",
        "self.database.pool.max * self.replicas.max <= self.database.maxConnections",
        "shortNames:\n    - mcps",
        "jsonPath: .status.readyDisplay",
        "streamable-http",
        "subresources:\n      status: {}",
    ] {
        assert!(y.contains(needle), "CRD lacks {needle:?}");
    }
}
