//! Shared state handed to every reconcile.
use crate::telemetry::metrics::Metrics;
use kube::runtime::events::Recorder;
use kube::Client;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// Consecutive failures per object, for the error policy's backoff.
    pub failures: Mutex<HashMap<String, u32>>,
}
