//! Reflector caches of everything a reconcile reads. A reconcile makes no GET or
//! LIST of its own for children, pods, ReplicaSets or the database's endpoints.
use crate::builders::labels;
use crate::controller::by_server::ByServer;
use crate::controller::cached::{CachedDeployment, CachedPod, CachedReplicaSet};
use futures::{FutureExt, Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::reflector::{self, store::Writer, ObjectRef, Store};
use kube::runtime::utils::{Backoff, ResetTimerBackoff};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Read side of every cache.
#[derive(Clone)]
pub struct Stores {
    pub deployments: Store<CachedDeployment>,
    pub services: Store<Service>,
    pub pdbs: Store<PodDisruptionBudget>,
    pub hpas: Store<HorizontalPodAutoscaler>,
    pub pods: Store<CachedPod>,
    pub replica_sets: Store<CachedReplicaSet>,
    pub endpoint_slices: Store<EndpointSlice>,
    /// Pods and ReplicaSets by server, for [`Stores::selected`].
    pub pods_by_server: ByServer,
    pub replica_sets_by_server: ByServer,
}

/// Write side, consumed by the watch streams.
pub struct Writers {
    pub deployments: Writer<CachedDeployment>,
    pub services: Writer<Service>,
    pub pdbs: Writer<PodDisruptionBudget>,
    pub hpas: Writer<HorizontalPodAutoscaler>,
    pub pods: Writer<CachedPod>,
    pub replica_sets: Writer<CachedReplicaSet>,
    pub endpoint_slices: Writer<EndpointSlice>,
    pub pods_by_server: ByServer,
    pub replica_sets_by_server: ByServer,
}

pub fn new() -> (Stores, Writers) {
    let (deployments, dw) = reflector::store();
    let (services, sw) = reflector::store();
    let (pdbs, pw) = reflector::store();
    let (hpas, hw) = reflector::store();
    let (pods, pow) = reflector::store();
    let (replica_sets, rw) = reflector::store();
    let (endpoint_slices, ew) = reflector::store();
    let (pods_by_server, replica_sets_by_server) = (ByServer::default(), ByServer::default());
    (
        Stores {
            deployments,
            services,
            pdbs,
            hpas,
            pods,
            replica_sets,
            endpoint_slices,
            pods_by_server: pods_by_server.clone(),
            replica_sets_by_server: replica_sets_by_server.clone(),
        },
        Writers {
            deployments: dw,
            services: sw,
            pdbs: pw,
            hpas: hw,
            pods: pow,
            replica_sets: rw,
            endpoint_slices: ew,
            pods_by_server,
            replica_sets_by_server,
        },
    )
}

/// Has this cache had its first full list? Never waits.
pub fn listed<K: Resource<DynamicType = ()> + Clone>(s: &Store<K>) -> bool {
    s.wait_until_ready()
        .now_or_never()
        .is_some_and(|r| r.is_ok())
}

/// Wait until `s` has its first full list. Polled, never `Store::wait_until_ready`
/// held across an await: that future keeps one waker (a oneshot's), and every
/// other poll of it, such as [`listed`] from a reconcile, replaces it, so a
/// long-lived waiter can sleep for ever (the MCP prober did, after a leader
/// change, and never checked a pod).
pub async fn wait_listed<K: Resource<DynamicType = ()> + Clone>(s: &Store<K>) {
    while !listed(s) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Stores {
    /// Has every cache had its first full list?
    pub fn is_ready(&self) -> bool {
        listed(&self.deployments)
            && listed(&self.services)
            && listed(&self.pdbs)
            && listed(&self.hpas)
            && listed(&self.pods)
            && listed(&self.replica_sets)
            && listed(&self.endpoint_slices)
    }

    /// Wait (bounded) until every cache has its first full list, so a reconcile never
    /// mistakes "not listed yet" for "absent"; false at once when `stopping` is set.
    /// Polled, see [`wait_listed`].
    pub async fn ready(&self, within: Duration, stopping: &AtomicBool) -> bool {
        let start = tokio::time::Instant::now();
        loop {
            if self.is_ready() {
                return true;
            }
            if start.elapsed() >= within || stopping.load(Ordering::Relaxed) {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A child of `kind` K with this name in `ns`.
    pub fn child<K>(store: &Store<K>, ns: &str, name: &str) -> Option<K>
    where
        K: Resource<DynamicType = ()> + Clone,
    {
        store
            .get(&ObjectRef::new(name).within(ns))
            .map(|a| a.as_ref().clone())
    }

    /// Objects in `ns` carrying all of `selector`'s labels, looked up by the
    /// server `selector` names in `index` (every cached object is scanned only
    /// when it names none).
    pub fn selected<K>(
        store: &Store<K>,
        index: &ByServer,
        ns: &str,
        selector: &std::collections::BTreeMap<String, String>,
    ) -> Vec<K>
    where
        K: Resource<DynamicType = ()> + Clone,
    {
        let matches = |o: &K| {
            o.meta().namespace.as_deref() == Some(ns) && {
                let l = o.labels();
                selector.iter().all(|(k, v)| l.get(k) == Some(v))
            }
        };
        let Some(server) = selector.get(labels::SERVER_LABEL) else {
            return store
                .state_filter(matches)
                .iter()
                .map(|o| o.as_ref().clone())
                .collect();
        };
        let mut found: Vec<K> = index
            .names(ns, server)
            .into_iter()
            .filter_map(|name| store.get(&ObjectRef::new(&name).within(ns)))
            .filter(|o| matches(o))
            .map(|o| o.as_ref().clone())
            .collect();
        // The index is a hash set: the store's order is no promise either, but
        // a stable one keeps a reconcile's decisions and tests repeatable.
        found.sort_by(|a, b| a.meta().name.cmp(&b.meta().name));
        found
    }
}

/// The label selector every child, pod and ReplicaSet of ours carries.
pub fn managed() -> watcher::Config {
    watcher::Config::default().labels(&format!(
        "app.kubernetes.io/managed-by={}",
        labels::MANAGED_BY
    ))
}

/// The EndpointSlices a reconcile reads are its databases': all but those of
/// our own Services, which carry our label (the EndpointSlice controller copies
/// a Service's labels onto its slices) and at N servers would be N slices in
/// memory that nothing reads. (A database that is itself an McpServer's Service
/// is not supported.)
pub fn databases() -> watcher::Config {
    watcher::Config::default().labels(&format!(
        "app.kubernetes.io/managed-by!={}",
        labels::MANAGED_BY
    ))
}

/// What a cache keeps of each object: only what a reconcile reads, since at
/// thousands of servers the caches are most of the operator's memory.
pub mod trim {
    use crate::controller::apply::{FIELD_MANAGER, HASH_ANNOTATION};
    use kube::Resource;

    /// Children: drift is judged from our own Apply entry, so the other
    /// managers' field sets go (the entries stay: their presence matters, see
    /// `apply::write_needed`), and ours is kept as its JSON text
    /// (`drift::pack`). A child is found by its name and judged by our hash
    /// annotation and our field set, never by label values, so its labels
    /// and the other annotations go too (each map is a B-tree node of room
    /// for 11 entries: about 0.8 KB per child at four labels).
    pub fn child<K: Resource>(o: &mut K) {
        let meta = o.meta_mut();
        meta.labels = None;
        if let Some(a) = meta.annotations.as_mut() {
            a.retain(|k, _| k == HASH_ANNOTATION);
        }
        for e in meta.managed_fields.iter_mut().flatten() {
            if e.manager.as_deref() != Some(FIELD_MANAGER) {
                e.fields_v1 = None;
            } else if let Some(f) = e.fields_v1.as_mut() {
                crate::controller::drift::pack(f);
            }
        }
    }

    /// Services: as children (`child`), without spec or status. A
    /// reconcile judges a Service only by its metadata: our hash annotation,
    /// our Apply entry (drift) and its owner (`decide::change`).
    pub fn service(s: &mut k8s_openapi::api::core::v1::Service) {
        child(s);
        s.spec = None;
        s.status = None;
    }

    /// PodDisruptionBudgets: as Services, by their metadata alone.
    pub fn pdb(p: &mut k8s_openapi::api::policy::v1::PodDisruptionBudget) {
        child(p);
        p.spec = None;
        p.status = None;
    }

    /// McpServers: of the managed fields only the entries that set the
    /// override annotation (`remediate::override_request` names their manager);
    /// the status writers' entries are most of a served object's metadata.
    pub fn server(m: &mut crate::api::McpServer) {
        if let Some(entries) = m.metadata.managed_fields.as_mut() {
            entries.retain(crate::controller::remediate::sets_override);
        }
    }

    /// EndpointSlices, pods and ReplicaSets: no managed fields at all (the
    /// kubelet's status entry is most of a pod's metadata). The cached types
    /// (`cached.rs`) already leave out the rest a reconcile does not read.
    pub fn managed_fields<K: Resource>(o: &mut K) {
        o.meta_mut().managed_fields = None;
    }
}

/// How a watch that failed (the API server away or refusing) retries: 0.4 s
/// doubling to 3 s, jittered up to twice that, reset after 2 min without a failure.
/// kube's default doubles to 30 s and its jitter to 60 s: an API server back
/// after 23 s was seen by the operator up to a minute later (e2e S10: Ready again
/// 40 s after it returned). Every watcher and the controller's trigger stream use
/// this; at most one LIST per watcher per 3-6 s while the API server is away.
pub fn backoff() -> impl Backoff + 'static {
    let exp = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(400))
        .with_max_delay(Duration::from_secs(3))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times();
    ResetTimerBackoff::new(
        watcher::ExponentialBackoff::from(exp),
        Duration::from_secs(120),
    )
}

/// A reflector over `api` feeding `writer`; yields every touched object (deletions
/// too, so a deleted child is re-created). `trim` drops what we never read.
pub fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    writer: Writer<K>,
    trim: fn(&mut K),
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    watch_indexed(api, config, writer, None, trim)
}

/// As [`watch`], keeping `index` (when given) from the same events, before the store.
pub fn watch_indexed<K>(
    api: Api<K>,
    config: watcher::Config,
    writer: Writer<K>,
    index: Option<ByServer>,
    trim: fn(&mut K),
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    let stream = watcher(api, config)
        .backoff(backoff())
        .modify(trim)
        .inspect_ok(move |event| {
            if let Some(ix) = &index {
                ix.apply(event);
            }
        });
    reflector::reflector(writer, stream).touched_objects()
}

/// Start every reflector without a controller (tests): the streams are drained in tasks.
pub fn spawn_standalone(client: &Client, ns: &str) -> Stores {
    let (stores, w) = new();
    fn drain<S: Stream + Send + 'static>(s: S) {
        tokio::spawn(async move {
            let mut s = std::pin::pin!(s);
            while s.next().await.is_some() {}
        });
    }
    let c = client.clone();
    drain(watch(
        Api::namespaced(c.clone(), ns),
        managed(),
        w.deployments,
        trim::child,
    ));
    drain(watch(
        Api::namespaced(c.clone(), ns),
        managed(),
        w.services,
        trim::service,
    ));
    drain(watch(
        Api::namespaced(c.clone(), ns),
        managed(),
        w.pdbs,
        trim::pdb,
    ));
    drain(watch(
        Api::namespaced(c.clone(), ns),
        managed(),
        w.hpas,
        trim::child,
    ));
    drain(watch_indexed(
        Api::namespaced(c.clone(), ns),
        managed(),
        w.pods,
        Some(w.pods_by_server),
        trim::managed_fields,
    ));
    drain(watch_indexed(
        Api::namespaced(c.clone(), ns),
        managed(),
        w.replica_sets,
        Some(w.replica_sets_by_server),
        trim::managed_fields,
    ));
    drain(watch(
        Api::namespaced(c, ns),
        databases(),
        w.endpoint_slices,
        trim::managed_fields,
    ));
    stores
}

/// Caches filled from a fixed list of objects, dispatched by `kind` and marked
/// ready: for tests that script the API server instead of watching a real one.
pub fn from_objects(objects: impl IntoIterator<Item = serde_json::Value>) -> Stores {
    let (stores, mut w) = new();
    fn put<K: Resource<DynamicType = ()> + Clone + DeserializeOwned>(
        w: &mut Writer<K>,
        index: Option<&ByServer>,
        v: serde_json::Value,
    ) {
        if let Ok(o) = serde_json::from_value::<K>(v) {
            let event = watcher::Event::InitApply(o);
            if let Some(ix) = index {
                ix.apply(&event);
            }
            w.apply_watcher_event(&event);
        }
    }
    fn init<K: Resource<DynamicType = ()> + Clone>(w: &mut Writer<K>) {
        w.apply_watcher_event(&watcher::Event::Init);
    }
    fn done<K: Resource<DynamicType = ()> + Clone>(w: &mut Writer<K>) {
        w.apply_watcher_event(&watcher::Event::InitDone);
    }
    init(&mut w.deployments);
    init(&mut w.services);
    init(&mut w.pdbs);
    init(&mut w.hpas);
    init(&mut w.pods);
    init(&mut w.replica_sets);
    init(&mut w.endpoint_slices);
    for v in objects {
        match v.get("kind").and_then(|k| k.as_str()).unwrap_or_default() {
            "Deployment" => put(&mut w.deployments, None, v),
            "Service" => put(&mut w.services, None, v),
            "PodDisruptionBudget" => put(&mut w.pdbs, None, v),
            "HorizontalPodAutoscaler" => put(&mut w.hpas, None, v),
            "Pod" => put(&mut w.pods, Some(&w.pods_by_server), v),
            "ReplicaSet" => put(&mut w.replica_sets, Some(&w.replica_sets_by_server), v),
            "EndpointSlice" => put(&mut w.endpoint_slices, None, v),
            _ => {}
        }
    }
    done(&mut w.deployments);
    done(&mut w.services);
    done(&mut w.pdbs);
    done(&mut w.hpas);
    done(&mut w.pods);
    done(&mut w.replica_sets);
    done(&mut w.endpoint_slices);
    w.pods_by_server
        .apply(&watcher::Event::<CachedPod>::InitDone);
    w.replica_sets_by_server
        .apply(&watcher::Event::<CachedReplicaSet>::InitDone);
    stores
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A watch retries within 6 s however long the API server stays away.
    #[test]
    fn watch_retries_stay_short() {
        let mut b = backoff();
        let waits: Vec<Duration> = (0..40).map_while(|_| b.next()).collect();
        assert_eq!(waits.len(), 40, "the backoff never gives up");
        assert!(waits[0] >= Duration::from_millis(400), "{:?}", waits[0]);
        assert!(
            waits.iter().all(|w| *w <= Duration::from_secs(6)),
            "{waits:?}"
        );
        assert!(waits[39] >= Duration::from_secs(3), "{:?}", waits[39]);
        b.reset();
        assert!(b.next().is_some_and(|w| w < Duration::from_millis(800)));
    }

    /// The Deployment cache keeps what a reconcile judges a Deployment by.
    #[test]
    fn deployment_trim_keeps_what_a_reconcile_reads() {
        let mut d: CachedDeployment = serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "n", "labels": {"app.kubernetes.io/name": "mcp-server"},
                "annotations": {"mcp.operator.dev/applied-hash": "h", "deployment.kubernetes.io/revision": "3"},
                "managedFields": [
                    {"manager": "mcp-operator", "operation": "Apply", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:spec": {"f:replicas": {}}}},
                    {"manager": "kube-controller-manager", "operation": "Update", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:status": {"f:replicas": {}}}}
                ]},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "mcp", "image": "i"}]}}},
            "status": {"replicas": 2, "readyReplicas": 2}
        }))
        .expect("deployment");
        trim::child(&mut d);
        assert_eq!(d.spec.as_ref().and_then(|s| s.replicas), Some(2));
        assert_eq!(d.status.as_ref().and_then(|s| s.ready_replicas), Some(2));
        let entries = d.metadata.managed_fields.as_deref().unwrap_or_default();
        assert_eq!(entries.len(), 2, "every manager's entry stays");
        assert!(entries[0].fields_v1.is_some(), "our own field set stays");
        assert!(entries[1].fields_v1.is_none(), "the others' field sets go");
        assert!(
            crate::controller::apply::owns(&d, &["spec", "replicas"]),
            "our packed field set still answers"
        );
        assert!(!crate::controller::apply::owns(&d, &["status", "replicas"]));
        assert_eq!(
            d.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("mcp.operator.dev/applied-hash")),
            Some(&"h".to_string())
        );
        assert_eq!(
            d.metadata.annotations.as_ref().map(|a| a.len()),
            Some(1),
            "only the hash"
        );
        assert_eq!(d.metadata.labels, None);
    }

    /// Services and PDBs are cached by their metadata: the hash annotation,
    /// our (packed) Apply entry and the owner stay, spec and status go.
    #[test]
    fn service_and_pdb_trim_keep_the_metadata_a_reconcile_reads() {
        let meta = serde_json::json!({"name": "n", "namespace": "ns",
        "annotations": {"mcp.operator.dev/applied-hash": "h"},
        "ownerReferences": [{"apiVersion": "mcp.operator.dev/v1alpha1", "kind": "McpServer",
            "name": "n", "uid": "u"}],
        "managedFields": [
            {"manager": "mcp-operator", "operation": "Apply", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:spec": {"f:selector": {}}}},
            {"manager": "kube-controller-manager", "operation": "Update", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:status": {}}}
        ]});
        let mut svc: Service = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Service", "metadata": meta,
            "spec": {"selector": {"a": "b"}, "ports": [{"port": 80}], "clusterIP": "10.96.0.9"},
            "status": {"loadBalancer": {}}
        }))
        .expect("service");
        trim::service(&mut svc);
        let mut pdb: PodDisruptionBudget = serde_json::from_value(serde_json::json!({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta,
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"a": "b"}}},
            "status": {"currentHealthy": 2, "desiredHealthy": 1, "disruptionsAllowed": 1, "expectedPods": 2}
        }))
        .expect("pdb");
        trim::pdb(&mut pdb);
        assert!(svc.spec.is_none() && svc.status.is_none());
        assert!(pdb.spec.is_none() && pdb.status.is_none());
        for m in [&svc.metadata, &pdb.metadata] {
            assert_eq!(
                m.annotations
                    .as_ref()
                    .and_then(|a| a.get("mcp.operator.dev/applied-hash")),
                Some(&"h".to_string())
            );
            assert_eq!(m.owner_references.as_ref().map(Vec::len), Some(1));
        }
        assert!(crate::controller::apply::owns(&svc, &["spec", "selector"]));
        assert!(crate::controller::apply::owns(&pdb, &["spec", "selector"]));
    }

    /// A waiter must wake on the first list even when something else polled the
    /// store's readiness in between (which steals `wait_until_ready`'s one waker).
    #[tokio::test]
    async fn wait_listed_wakes_after_other_polls() {
        let (store, mut writer) = reflector::store::<CachedPod>();
        let waiter = tokio::spawn({
            let store = store.clone();
            async move { wait_listed(&store).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        for _ in 0..3 {
            assert!(!listed(&store));
        }
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let woke = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert!(matches!(woke, Ok(Ok(()))), "waiter never woke: {woke:?}");
        assert!(listed(&store));
    }
}
