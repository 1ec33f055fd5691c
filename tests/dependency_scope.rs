//! Dependencies confined to the McpServer's own namespace, against a real
//! kube-apiserver: a probe host outside it and a database Service in another
//! namespace are refused in status (`DependencyOutOfScope`), and the status
//! reads the same whether or not that other namespace's Service exists.
//!
//! Set MCP_TEST_KUBECONFIG to the kubeconfig (`e2e/cluster/local/control-plane.sh
//! up`). Without it the tests skip, unless MCP_REQUIRE_APISERVER=1 (CI).
mod common;

use common::real_api::{apply, client, context, install_crd, namespace, recreate};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams};
use kube::Client;
use mcp_operator::api::McpServer;
use mcp_operator::controller::context::Context;
use mcp_operator::controller::reconcile::reconcile;
use serde_json::{json, Value};
use std::sync::Arc;

/// A reconcile context over `ns` that confines dependencies to it.
async fn confined_ctx(client: &Client, ns: &str) -> Arc<Context> {
    Arc::new(Context {
        own_namespace_dependencies: true,
        ..context(client, ns, None).await
    })
}

/// Create `name` in `ns` anew, reconcile it once, and return the conditions
/// (type, status, reason, message) of its status.
async fn reconciled(
    client: &Client,
    ns: &str,
    name: &str,
    database: Value,
) -> Vec<(String, String, String, String)> {
    let api: Api<McpServer> = Api::namespaced(client.clone(), ns);
    recreate(
        &api,
        json!({
        "apiVersion": "mcp.operator.dev/v1alpha1", "kind": "McpServer",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"image": "mcp-workload:dev", "replicas": {"min": 1, "max": 1}, "database": database}
        }),
    )
    .await;
    let ctx = confined_ctx(client, ns).await;
    let fresh = api.get(name).await.expect("get");
    reconcile(Arc::new(fresh), ctx).await.expect("reconcile");
    let st = api.get(name).await.expect("get").status.expect("status");
    st.conditions
        .iter()
        .map(|c| {
            (
                c.type_.clone(),
                c.status.clone(),
                c.reason.clone(),
                c.message.clone(),
            )
        })
        .collect()
}

fn find<'a>(
    cs: &'a [(String, String, String, String)],
    t: &str,
) -> &'a (String, String, String, String) {
    cs.iter()
        .find(|c| c.0 == t)
        .unwrap_or_else(|| panic!("no {t}: {cs:?}"))
}

#[tokio::test]
async fn dependencies_outside_the_own_namespace_are_refused_without_a_look() {
    let Some(client) = client().await else {
        return;
    };
    install_crd(&client).await;
    for ns in ["scope-tenant", "scope-db"] {
        namespace(&client, ns).await;
    }
    let ns = "scope-tenant";
    let url = json!({"name": "db", "key": "url"});

    // A probe of the cloud metadata address: refused, never probed.
    let cs = reconciled(
        &client,
        ns,
        "scan",
        json!({"urlSecretRef": url, "probe": {"host": "169.254.169.254", "port": 80}}),
    )
    .await;
    let dep = find(&cs, "DependencyAvailable");
    assert_eq!(
        (dep.1.as_str(), dep.2.as_str()),
        ("Unknown", "DependencyOutOfScope"),
        "{dep:?}"
    );
    let cfg = find(&cs, "ConfigValid");
    assert_eq!(
        (cfg.1.as_str(), cfg.2.as_str()),
        ("False", "DependencyOutOfScope"),
        "{cfg:?}"
    );

    // A Service in another namespace: the status is the same whether it exists
    // (with a ready endpoint) or not.
    let other =
        json!({"urlSecretRef": url, "service": {"name": "postgres", "namespace": "scope-db"}});
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "scope-db");
    let _ = slices.delete("postgres-x", &DeleteParams::default()).await;
    let absent = reconciled(&client, ns, "peek", other.clone()).await;
    apply(
        &slices,
        "postgres-x",
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "metadata": {"name": "postgres-x", "namespace": "scope-db",
                            "labels": {"kubernetes.io/service-name": "postgres"}},
               "addressType": "IPv4",
               "endpoints": [{"addresses": ["10.0.0.9"], "conditions": {"ready": true}}],
               "ports": [{"port": 5432}]}),
    )
    .await;
    let present = reconciled(&client, ns, "peek", other).await;
    for t in ["DependencyAvailable", "ConfigValid"] {
        let (a, p) = (find(&absent, t), find(&present, t));
        assert_eq!(
            (&a.1, &a.2, &a.3),
            (&p.1, &p.2, &p.3),
            "{t} tells the Service exists"
        );
    }
    assert_eq!(
        find(&present, "DependencyAvailable").2,
        "DependencyOutOfScope"
    );
}
