//! The suite's stopwatch: a `kube::runtime::watcher` per followed set of
//! objects, timestamping every change on receipt.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

use crate::measure::History;
use mcp_workload::client::now_ms;

struct Shared<S> {
    state: BTreeMap<String, S>,
    history: History<S>,
    /// Objects buffered during a (re)list, published at InitDone.
    init: Option<BTreeMap<String, S>>,
}

/// Records `(t, name -> summary)` on every event until dropped or stopped.
pub struct Recorder<S> {
    shared: Arc<Mutex<Shared<S>>>,
    task: JoinHandle<()>,
}

impl<S: Clone + Send + 'static> Recorder<S> {
    pub fn start<K>(api: Api<K>, config: watcher::Config, summarize: fn(&K) -> S) -> Self
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let shared = Arc::new(Mutex::new(Shared {
            state: BTreeMap::new(),
            history: Vec::new(),
            init: None,
        }));
        let sink = shared.clone();
        let task = tokio::spawn(async move {
            // The watcher re-lists and re-watches by itself after errors; a
            // short backoff keeps the gap in the record small.
            let mut stream = watcher::watcher(api, config).boxed();
            while let Some(ev) = stream.next().await {
                let t = now_ms();
                let Ok(ev) = ev else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                let Ok(mut g) = sink.lock() else { return };
                let changed = match ev {
                    Event::Init => {
                        g.init = Some(BTreeMap::new());
                        false
                    }
                    Event::InitApply(o) => {
                        let s = summarize(&o);
                        if let Some(init) = g.init.as_mut() {
                            init.insert(o.name_any(), s);
                        }
                        false
                    }
                    Event::InitDone => {
                        g.state = g.init.take().unwrap_or_default();
                        true
                    }
                    Event::Apply(o) => {
                        g.state.insert(o.name_any(), summarize(&o));
                        true
                    }
                    Event::Delete(o) => {
                        g.state.remove(&o.name_any());
                        true
                    }
                };
                if changed {
                    let snap = g.state.clone();
                    g.history.push((t, snap));
                }
            }
        });
        Self { shared, task }
    }

    /// Wait (bounded) until the first list has been published with at least
    /// `min` objects.
    pub async fn synced(&self, min: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let ok = self
                .shared
                .lock()
                .map(|g| !g.history.is_empty() && g.state.len() >= min)
                .unwrap_or(false);
            if ok {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn history(&self) -> History<S> {
        self.shared
            .lock()
            .map(|g| g.history.clone())
            .unwrap_or_default()
    }

    pub fn stop(self) -> History<S> {
        self.task.abort();
        self.history()
    }
}
