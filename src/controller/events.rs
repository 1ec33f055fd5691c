//! Events leave the reconcile path, as client-go's recorder does: a reconcile
//! queues them and returns, so a slow API server (or an outage that changes a
//! thousand servers' conditions at once) delays the Events, not the status
//! writes. Each object's Events keep their order (one worker per shard, and an
//! object always lands on the same shard); a full queue drops and counts,
//! it never blocks a reconcile.
use crate::telemetry::metrics::Metrics;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, Recorder, Reporter};
use kube::Client;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Workers publishing at once (each in its shard's order).
const SHARDS: usize = 4;
/// Events waiting per shard: room for every server of a large cluster to
/// change one condition at once.
const SHARD_CAPACITY: usize = 2048;

type Queued = (ObjectReference, Event);

/// The recorder of the operator's Events (`reportingController` mcp-operator;
/// `instance`: the replica, when known).
pub fn recorder(client: Client, instance: Option<String>) -> Recorder {
    Recorder::new(
        client,
        Reporter {
            controller: "mcp-operator".into(),
            instance,
        },
    )
}

#[derive(Clone)]
pub struct EventQueue {
    shards: Vec<mpsc::Sender<Queued>>,
    metrics: Arc<Metrics>,
    /// Queued or being published.
    pending: Arc<AtomicUsize>,
}

/// The workers; they end once every [`EventQueue`] clone is dropped and their
/// queues are drained.
pub struct Workers(Vec<JoinHandle<()>>);

impl EventQueue {
    pub fn start(recorder: Recorder, metrics: Arc<Metrics>) -> (Self, Workers) {
        let mut shards = Vec::with_capacity(SHARDS);
        let mut tasks = Vec::with_capacity(SHARDS);
        let pending = Arc::new(AtomicUsize::new(0));
        for _ in 0..SHARDS {
            let (tx, mut rx) = mpsc::channel::<Queued>(SHARD_CAPACITY);
            let (recorder, pending) = (recorder.clone(), pending.clone());
            shards.push(tx);
            tasks.push(tokio::spawn(async move {
                while let Some((reference, event)) = rx.recv().await {
                    if let Err(err) = recorder.publish(&event, &reference).await {
                        tracing::warn!(error = %crate::redact::redact(&err.to_string()), reason = %event.reason, "failed to publish event");
                    }
                    pending.fetch_sub(1, Ordering::Relaxed);
                }
            }));
        }
        let queue = Self {
            shards,
            metrics,
            pending,
        };
        (queue, Workers(tasks))
    }

    /// Queue an Event about `reference`; dropped (and counted) when its queue is full.
    pub fn push(&self, reference: &ObjectReference, event: Event) {
        let mut h = DefaultHasher::new();
        (&reference.namespace, &reference.name).hash(&mut h);
        let shard = (h.finish() % self.shards.len() as u64) as usize;
        self.pending.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.shards[shard].try_send((reference.clone(), event)) {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            // One line per hundred drops: a full queue must not flood the log too.
            if self.metrics.events_dropped.inc().is_multiple_of(100) {
                let (_, ev) = e.into_inner();
                tracing::warn!(reason = %ev.reason, object = ?reference.name, "event queue full; events dropped (mcp_operator_events_dropped_total)");
            }
        }
    }

    /// Events queued or being published.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }
}

impl Workers {
    /// Wait (bounded) for the queued Events to go out once the queues are closed.
    pub async fn drain(self, within: Duration) {
        let all = futures::future::join_all(self.0);
        if tokio::time::timeout(within, all).await.is_err() {
            tracing::warn!(
                within_s = within.as_secs_f64(),
                "events still queued at shutdown; not waiting longer"
            );
        }
    }
}
