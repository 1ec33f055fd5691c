//! Shared state handed to every reconcile.
use super::events::EventQueue;
use super::mcp_prober::McpVerdicts;
use super::prober::Verdicts;
use super::stores::Stores;
use crate::telemetry::metrics::Metrics;
use kube::Client;
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

pub struct Context {
    pub client: Client,
    /// Events go out from here, off the reconcile path.
    pub events: EventQueue,
    pub metrics: Arc<Metrics>,
    /// Caches of everything a reconcile reads.
    pub stores: Stores,
    /// The namespace this controller is confined to (None: the whole cluster).
    pub scope: Option<String>,
    /// Last TCP probe verdicts of databases outside the cluster.
    pub verdicts: Verdicts,
    /// A database must be a Service of the McpServer's own namespace
    /// (`--dependency-scope`).
    pub own_namespace_dependencies: bool,
    /// Last MCP check of each ready pod.
    pub mcp_verdicts: McpVerdicts,
    /// Consecutive failures per object, for the error policy's backoff.
    pub failures: Mutex<HashMap<String, u32>>,
    /// Per McpServer, the `resourceVersion`s our own status writes replaced
    /// since the cache last showed a version we did not replace. A reconcile
    /// handed one of them runs on a cache that has not seen our write yet: any
    /// guarded write from it would be refused (409), and the watch event of
    /// our write reconciles the object again anyway.
    pub superseded: Superseded,
    /// Set at shutdown: a reconcile still waiting for the caches gives up at
    /// once (the caches stop filling when the controller stops polling them,
    /// so it would otherwise hold the shutdown for its whole wait).
    pub stopping: AtomicBool,
}

impl Context {
    pub fn new(
        client: Client,
        events: EventQueue,
        metrics: Arc<Metrics>,
        stores: Stores,
        scope: Option<String>,
    ) -> Self {
        Self {
            client,
            events,
            metrics,
            stores,
            scope,
            verdicts: Verdicts::default(),
            own_namespace_dependencies: false,
            mcp_verdicts: McpVerdicts::default(),
            failures: Mutex::default(),
            superseded: Superseded::default(),
            stopping: AtomicBool::new(false),
        }
    }

    /// Forget an McpServer that is gone: its backoff and its per-object series, so
    /// alerts on a deleted object stop firing.
    pub fn forget(&self, namespace: &str, name: &str) {
        if let Ok(mut f) = self.failures.lock() {
            f.remove(&format!("{namespace}/{name}"));
        }
        self.superseded.forget(&format!("{namespace}/{name}"));
        self.metrics.forget_object(namespace, name);
    }
}

/// How many replaced versions of one McpServer are remembered.
const SUPERSEDED_KEPT: usize = 8;

/// Per McpServer, the `resourceVersion`s our own status writes replaced since
/// the cache last showed a version we did not replace.
#[derive(Default)]
pub struct Superseded(Mutex<HashMap<String, Vec<String>>>);

impl Superseded {
    /// A status write of `key` replaced version `from` with `to`. A write the
    /// API server found to change nothing keeps the version, and replaces nothing.
    pub fn record(&self, key: &str, from: Option<String>, to: Option<String>) {
        let (Some(from), Some(to)) = (from, to) else {
            return;
        };
        if from == to {
            return;
        }
        if let Ok(mut m) = self.0.lock() {
            let v = m.entry(key.to_string()).or_default();
            // Bounded: a reconcile that sees a version we did not replace clears it.
            if v.len() >= SUPERSEDED_KEPT {
                v.remove(0);
            }
            v.push(from);
        }
    }

    /// Is the cached `version` of `key` one our own writes replaced? When it is
    /// not, the cache has caught up (or someone else wrote): forget the list.
    pub fn is_stale(&self, key: &str, version: Option<&str>) -> bool {
        let Ok(mut m) = self.0.lock() else {
            return false;
        };
        let stale = match (m.get(key), version) {
            (Some(v), Some(version)) => v.iter().any(|r| r == version),
            _ => false,
        };
        if !stale {
            m.remove(key);
        }
        stale
    }

    pub fn forget(&self, key: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rv(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn stale_until_the_cache_shows_a_version_we_did_not_replace() {
        let s = Superseded::default();
        assert!(!s.is_stale("ns/a", Some("10")));
        // Intent write 10 -> 11, report write 11 -> 12.
        s.record("ns/a", rv("10"), rv("11"));
        s.record("ns/a", rv("11"), rv("12"));
        assert!(s.is_stale("ns/a", Some("10")));
        assert!(s.is_stale("ns/a", Some("11")));
        assert!(!s.is_stale("ns/b", Some("10")), "per object");
        // The cache caught up: the list goes, so 10 is no longer remembered.
        assert!(!s.is_stale("ns/a", Some("12")));
        assert!(!s.is_stale("ns/a", Some("10")));
    }

    #[test]
    fn a_write_that_changed_nothing_replaces_nothing() {
        let s = Superseded::default();
        s.record("ns/a", rv("10"), rv("10"));
        s.record("ns/a", None, rv("11"));
        s.record("ns/a", rv("9"), None);
        assert!(!s.is_stale("ns/a", Some("10")));
        assert!(!s.is_stale("ns/a", Some("9")));
    }

    #[test]
    fn bounded_and_forgotten() {
        let s = Superseded::default();
        for i in 0..20 {
            s.record("ns/a", rv(&i.to_string()), rv(&(i + 1).to_string()));
        }
        // The newest 8 are kept (12..=19), the oldest dropped.
        assert!(s.is_stale("ns/a", Some("19")));
        assert!(s.is_stale("ns/a", Some("12")));
        assert!(!s.is_stale("ns/a", Some("11")));
        s.record("ns/a", rv("30"), rv("31"));
        assert!(s.is_stale("ns/a", Some("30")));
        s.forget("ns/a");
        assert!(!s.is_stale("ns/a", Some("30")));
    }
}
