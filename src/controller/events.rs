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
pub struct Workers {
    tasks: Vec<JoinHandle<()>>,
    pending: Arc<AtomicUsize>,
    /// Events the lease fence refused (this replica no longer leads).
    refused: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

impl EventQueue {
    pub fn start(recorder: Recorder, metrics: Arc<Metrics>) -> (Self, Workers) {
        let mut shards = Vec::with_capacity(SHARDS);
        let mut tasks = Vec::with_capacity(SHARDS);
        let pending = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        for _ in 0..SHARDS {
            let (tx, mut rx) = mpsc::channel::<Queued>(SHARD_CAPACITY);
            let (recorder, pending, refused, m) = (
                recorder.clone(),
                pending.clone(),
                refused.clone(),
                metrics.clone(),
            );
            shards.push(tx);
            tasks.push(tokio::spawn(async move {
                while let Some((reference, event)) = rx.recv().await {
                    match recorder.publish(&event, &reference).await {
                        Ok(()) => {}
                        // The lease is handed back (shutdown) or lost: every
                        // queued Event would fail alike, counted (the metric,
                        // and one line from `drain`) instead of a warning each.
                        Err(err) if crate::apiclient::is_not_leader(&err) => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            m.events_dropped.inc();
                        }
                        Err(err) => {
                            tracing::warn!(error = %crate::redact::redact(&err.to_string()), reason = %event.reason, "failed to publish event");
                        }
                    }
                    pending.fetch_sub(1, Ordering::Relaxed);
                }
            }));
        }
        let queue = Self {
            shards,
            metrics: metrics.clone(),
            pending: pending.clone(),
        };
        let workers = Workers {
            tasks,
            pending,
            refused,
            metrics,
        };
        (queue, workers)
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
    /// Wait (bounded) for the queued Events to go out once the queues are
    /// closed; past `within`, drop the rest. One line says what was not
    /// published, however many.
    pub async fn drain(self, within: Duration) -> Drained {
        let aborts: Vec<_> = self.tasks.iter().map(JoinHandle::abort_handle).collect();
        let all = futures::future::join_all(self.tasks);
        let dropped = if tokio::time::timeout(within, all).await.is_err() {
            aborts.iter().for_each(|a| a.abort());
            let left = self.pending.load(Ordering::Relaxed);
            self.metrics.events_dropped.inc_by(left as u64);
            left
        } else {
            0
        };
        let drained = Drained {
            refused: self.refused.load(Ordering::Relaxed),
            dropped,
        };
        if drained.refused > 0 || drained.dropped > 0 {
            tracing::warn!(
                refused_by_lease = drained.refused,
                dropped = drained.dropped,
                within_s = within.as_secs_f64(),
                "events not published at shutdown (the lease was handed back, or time ran out)"
            );
        }
        drained
    }
}

/// What [`Workers::drain`] could not publish.
#[derive(Debug, PartialEq, Eq)]
pub struct Drained {
    pub refused: usize,
    pub dropped: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiclient::FenceLayer;
    use crate::leader::Fence;
    use http::{Request, Response};
    use kube::client::Body;
    use kube::runtime::events::EventType;
    use tower::{BoxError, Layer};

    fn reference(i: usize) -> ObjectReference {
        ObjectReference {
            api_version: Some("mcp.operator.dev/v1alpha1".into()),
            kind: Some("McpServer".into()),
            name: Some(format!("s{i}")),
            namespace: Some("ns".into()),
            ..Default::default()
        }
    }

    fn event() -> Event {
        Event {
            type_: EventType::Normal,
            reason: "Test".into(),
            note: None,
            action: "Test".into(),
            secondary: None,
        }
    }

    /// Queue 10 Events and drain; what `drain` said and the dropped count.
    async fn queue_and_drain(client: Client, within: Duration) -> (Drained, u64) {
        let metrics = Arc::new(Metrics::default());
        let (queue, workers) = EventQueue::start(recorder(client, None), metrics.clone());
        for i in 0..10 {
            queue.push(&reference(i), event());
        }
        drop(queue);
        let drained = workers.drain(within).await;
        (drained, metrics.events_dropped.get())
    }

    /// After the lease is handed back every queued Event is refused by the
    /// fence: counted, not warned about one by one.
    #[tokio::test]
    async fn events_refused_by_the_fence_are_counted() {
        let answer = tower::service_fn(|_req: Request<Body>| async {
            Ok::<_, BoxError>(Response::new(Body::empty()))
        });
        let client = Client::new(FenceLayer(Some(Fence::closed())).layer(answer), "default");
        let (drained, counted) = queue_and_drain(client, Duration::from_secs(5)).await;
        assert_eq!(
            drained,
            Drained {
                refused: 10,
                dropped: 0
            }
        );
        assert_eq!(counted, 10, "refused Events count as dropped");
    }

    /// An API server that never answers: past the deadline the workers are
    /// stopped and what they still held is counted as dropped.
    #[tokio::test]
    async fn a_stuck_api_server_drops_the_rest_at_the_deadline() {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let never = tower::service_fn(move |_req: Request<Body>| {
            seen.fetch_add(1, Ordering::Relaxed);
            std::future::pending::<Result<Response<Body>, BoxError>>()
        });
        let client = Client::new(never, "default");
        let (drained, counted) = queue_and_drain(client, Duration::from_millis(200)).await;
        assert_eq!(counted, 10, "Events left at the deadline count as dropped");
        assert_eq!(
            drained,
            Drained {
                refused: 0,
                dropped: 10
            }
        );
        let at_drain = calls.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            calls.load(Ordering::Relaxed),
            at_drain,
            "an aborted worker sends nothing more"
        );
    }
}
