//! The McpServer controller: caches and watches, the reconcile, the error policy.
pub mod act;
pub mod apply;
pub mod by_server;
pub mod cached;
pub mod context;
pub mod decide;
pub mod dependency;
pub mod drift;
pub mod error;
pub mod events;
pub mod gate;
pub mod mcp_prober;
pub mod observe;
pub mod prober;
pub mod reconcile;
pub mod references;
pub mod remediate;
pub mod report;
pub mod stores;

use crate::api::McpServer;
use crate::builders::labels;
use crate::telemetry::metrics::Metrics;
use cached::{CachedDeployment, CachedPod, CachedReplicaSet};
use context::Context;
use error::Error;
use events::Recorder;
use futures::{Future, StreamExt};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;

/// Backoff for failed reconciles: 1s doubling to 2 min, with ±20% jitter so many
/// failing objects don't hammer the API server in lockstep.
pub fn backoff(failures: u32) -> Duration {
    let base = 1u64 << failures.min(7);
    let secs = base.min(120) as f64;
    let jitter = rand::rng().random_range(0.8..1.2);
    Duration::from_secs_f64(secs * jitter)
}

/// Retry after a write conflict: short, and not counted as a failure.
const CONFLICT_RETRY: Duration = Duration::from_millis(500);

fn error_policy(mcp: Arc<McpServer>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconcile_errors
        .get_or_create(&crate::telemetry::metrics::ErrorLabels {
            kind: err.metric_label().into(),
        })
        .inc();
    let key = reconcile::object_key(&mcp);
    if err.is_conflict() {
        // A write raced a newer version of the object (our cache was behind):
        // routine, and the newer version's watch event reconciles it anyway.
        tracing::debug!(object = %key, error = %crate::redact::redact(&err.to_string()), "write conflict; reconciling the newer version");
        return Action::requeue(CONFLICT_RETRY);
    }
    let n = match ctx.failures.lock() {
        Ok(mut f) => {
            let n = f.entry(key.clone()).or_insert(0);
            *n += 1;
            *n
        }
        Err(_) => 1,
    };
    let wait = backoff(n - 1);
    tracing::warn!(object = %key, error = %crate::redact::redact(&err.to_string()), retry_in_s = wait.as_secs_f64(), "reconcile failed");
    Action::requeue(wait)
}

/// McpServers that name the EndpointSlice's Service as their database.
fn servers_for_slice(store: &Store<McpServer>, slice: &EndpointSlice) -> Vec<ObjectRef<McpServer>> {
    let Some(svc) = slice.labels().get(dependency::SERVICE_NAME_LABEL) else {
        return vec![];
    };
    let slice_ns = slice.namespace().unwrap_or_default();
    store
        .state()
        .iter()
        .filter(|m| {
            m.spec
                .database
                .as_ref()
                .and_then(|d| d.service.as_ref())
                .is_some_and(|s| {
                    let ns = s
                        .namespace
                        .clone()
                        .or_else(|| m.namespace())
                        .unwrap_or_default();
                    &s.name == svc && ns == slice_ns
                })
        })
        .map(|m| ObjectRef::from_obj(m.as_ref()))
        .collect()
}

/// What one controller covers and how: its settings from the command line.
#[derive(Clone, Debug)]
pub struct Scope {
    /// None = all namespaces.
    pub namespace: Option<String>,
    /// Reconciles at once.
    pub concurrency: u16,
    /// Where an McpServer's database may be looked for.
    pub dependency_scope: dependency::DependencyScope,
}

/// Run one controller over `scope` until `shutdown` resolves.
pub async fn run(
    client: Client,
    recorder: Recorder,
    metrics: Arc<Metrics>,
    health: Arc<crate::telemetry::health::Health>,
    scope: Scope,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let Scope {
        namespace,
        concurrency,
        dependency_scope,
    } = scope;
    fn api<K>(c: &Client, ns: &Option<String>) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match ns {
            Some(n) => Api::namespaced(c.clone(), n),
            None => Api::all(c.clone()),
        }
    }
    let (stores, w) = stores::new();
    let (events, event_workers) = events::EventQueue::start(recorder, metrics.clone());
    let own_namespace_dependencies = dependency_scope.confines(namespace.is_some());
    let ctx = Arc::new(Context {
        own_namespace_dependencies,
        ..Context::new(client.clone(), events, metrics, stores, namespace.clone())
    });
    let c = &client;
    let ns = &namespace;
    // ReplicaSets wake nothing (their Deployment's status does); they only fill a cache.
    let rs_stream = stores::watch_indexed(
        api::<CachedReplicaSet>(c, ns),
        stores::managed(),
        w.replica_sets,
        Some(w.replica_sets_by_server),
        stores::trim::managed_fields,
    );
    let rs_task = tokio::spawn(async move {
        let mut s = std::pin::pin!(rs_stream);
        while s.next().await.is_some() {}
    });
    // Deletions of McpServers trigger too (the default trigger ignores them): the
    // reconcile then finds no object and its per-object state is forgotten below.
    let (store, server_writer) = reflector::store();
    let servers = reflector::reflector(
        server_writer,
        watcher(
            api::<McpServer>(c, ns),
            watcher::Config::default().any_semantic(),
        )
        .backoff(stores::backoff())
        .modify(stores::trim::server),
    )
    .touched_objects();
    // Databases outside the cluster are probed apart from the reconcile; a changed
    // verdict wakes the McpServers that use them.
    let (wake_tx, wake_rx) = tokio::sync::mpsc::channel(1024);
    let prober_task = tokio::spawn(prober::run(
        store.clone(),
        ctx.verdicts.clone(),
        wake_tx.clone(),
        own_namespace_dependencies,
    ));
    // MCP checks of the ready pods, likewise; they start once the pod cache is filled.
    let mcp_task = tokio::spawn({
        let (servers, pods, verdicts, metrics) = (
            store.clone(),
            ctx.stores.pods.clone(),
            ctx.mcp_verdicts.clone(),
            ctx.metrics.clone(),
        );
        async move {
            stores::wait_listed(&pods).await;
            mcp_prober::run(servers, pods, verdicts, metrics, wake_tx).await
        }
    });
    // /healthz fails if one of these dies while the controller runs.
    let watched = [
        health.watch("dependency prober", &prober_task, None),
        health.watch("MCP prober", &mcp_task, None),
        health.watch("ReplicaSet cache", &rs_task, None),
    ];
    let woken =
        futures::stream::unfold(
            wake_rx,
            |mut rx| async move { rx.recv().await.map(|r| (r, rx)) },
        );
    let server_store = store.clone();
    let controller = Controller::for_stream(servers, store.clone())
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .trigger_backoff(stores::backoff())
        .reconcile_on(woken);
    let forget_ctx = ctx.clone();
    let stop_ctx = ctx.clone();
    let listed_ctx = ctx.clone();
    let shutdown = async move {
        shutdown.await;
        stop_ctx
            .stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
    };
    let drained = controller
        .owns_stream(stores::watch(api::<CachedDeployment>(c, ns), stores::managed(), w.deployments, stores::trim::child))
        .owns_stream(stores::watch(api::<Service>(c, ns), stores::managed(), w.services, stores::trim::service))
        .owns_stream(stores::watch(api::<PodDisruptionBudget>(c, ns), stores::managed(), w.pdbs, stores::trim::pdb))
        .owns_stream(stores::watch(api::<HorizontalPodAutoscaler>(c, ns), stores::managed(), w.hpas, stores::trim::child))
        .watches_stream(stores::watch_indexed(api::<CachedPod>(c, ns), stores::managed(), w.pods, Some(w.pods_by_server), stores::trim::managed_fields), |pod: CachedPod| {
            let ns = pod.namespace();
            pod.labels().get(labels::SERVER_LABEL).cloned().zip(ns).map(|(n, ns)| ObjectRef::new(&n).within(&ns))
        })
        .watches_stream(
            stores::watch(api::<EndpointSlice>(c, ns), stores::databases(), w.endpoint_slices, stores::trim::managed_fields),
            move |slice: EndpointSlice| servers_for_slice(&store, &slice),
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, error_policy, ctx)
        .for_each(|res| {
            let ctx = forget_ctx.clone();
            async move {
                match res {
                    Ok((obj, _)) => tracing::debug!(object = %obj, "reconciled"),
                    // The McpServer is gone: forget its per-object state.
                    Err(kube::runtime::controller::Error::ObjectNotFound(obj)) => {
                        ctx.forget(obj.namespace.as_deref().unwrap_or_default(), &obj.name);
                    }
                    Err(e) => tracing::debug!(error = %crate::redact::redact(&e.to_string()), "reconcile loop"),
                }
            }
        })
        ;
    // kube's runner starts reconciling only once the McpServer cache has its
    // first list, and stops polling the watch at shutdown: a shutdown before
    // that list would wait for ever. No reconcile can be in flight then.
    let never_listed = async move {
        while !listed_ctx
            .stopping
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if stores::listed(&server_store) {
            std::future::pending::<()>().await;
        }
        tracing::info!("stopped before the first list of McpServers; nothing in flight");
    };
    tokio::select! {
        () = drained => {}
        () = never_listed => {}
    }
    drop(watched);
    prober_task.abort();
    mcp_task.abort();
    rs_task.abort();
    // Every Context is gone with the controller: the queues close, and what the
    // last reconciles queued goes out (a lost lease's fence refuses it anyway).
    event_workers.drain(Duration::from_secs(5)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        for n in 0..20 {
            let d = backoff(n).as_secs_f64();
            let base = (1u64 << n.min(7)).min(120) as f64;
            assert!(d >= base * 0.8 && d <= base * 1.2, "n={n} d={d}");
        }
        assert!(backoff(30).as_secs_f64() <= 144.0);
    }
}
