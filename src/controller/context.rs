//! Shared state handed to every reconcile.
use super::mcp_prober::McpVerdicts;
use super::prober::Verdicts;
use super::stores::Stores;
use crate::telemetry::metrics::Metrics;
use kube::runtime::events::Recorder;
use kube::Client;
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// Caches of everything a reconcile reads.
    pub stores: Stores,
    /// The namespace this controller is confined to (None: the whole cluster).
    pub scope: Option<String>,
    /// Last TCP probe verdicts of databases outside the cluster.
    pub verdicts: Verdicts,
    /// Last MCP check of each ready pod.
    pub mcp_verdicts: McpVerdicts,
    /// Consecutive failures per object, for the error policy's backoff.
    pub failures: Mutex<HashMap<String, u32>>,
    /// Set at shutdown: a reconcile still waiting for the caches gives up at
    /// once (the caches stop filling when the controller stops polling them,
    /// so it would otherwise hold the shutdown for its whole wait).
    pub stopping: AtomicBool,
}

impl Context {
    pub fn new(
        client: Client,
        recorder: Recorder,
        metrics: Arc<Metrics>,
        stores: Stores,
        scope: Option<String>,
    ) -> Self {
        Self {
            client,
            recorder,
            metrics,
            stores,
            scope,
            verdicts: Verdicts::default(),
            mcp_verdicts: McpVerdicts::default(),
            failures: Mutex::default(),
            stopping: AtomicBool::new(false),
        }
    }

    /// Forget an McpServer that is gone: its backoff and its per-object series, so
    /// alerts on a deleted object stop firing.
    pub fn forget(&self, namespace: &str, name: &str) {
        if let Ok(mut f) = self.failures.lock() {
            f.remove(&format!("{namespace}/{name}"));
        }
        self.metrics.forget_object(namespace, name);
    }
}
