//! Events leave the reconcile path, as client-go's recorder does: a reconcile
//! queues them and returns, so a slow API server (or an outage that changes a
//! thousand servers' conditions at once) delays the Events, not the status
//! writes. Each object's Events keep their order (one worker per shard, and an
//! object always lands on the same shard); a full queue drops and counts,
//! it never blocks a reconcile.
//!
//! The recorder is ours, not kube's `Recorder`: that one keeps every Event of
//! the last 6 minutes whole (the `events.k8s.io` Event and its key, about 2 KB
//! each) in one map it sweeps on every publish and only then: 9.6 MB of heap
//! at N = 1,000, held through idle (bench/scale/HISTORY.md, 2026-12-05). Each
//! shard here remembers a name, a count and a time per Event, at most
//! [`SERIES_PER_SHARD`] of them. The Events themselves are the same.
use crate::telemetry::metrics::Metrics;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType};
use kube::Client;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
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
/// A repeat of an Event within this long of its last showing is counted on
/// it (its `series`) instead of created again, as kube's and client-go's
/// recorders do.
const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);
/// Events a shard remembers for counting repeats (client-go's correlator
/// keeps 4,096 in all); past that the older half is forgotten, and a repeat
/// of a forgotten Event is created anew.
pub const SERIES_PER_SHARD: usize = 1024;

type Queued = (ObjectReference, Event);

/// Publishes the operator's Events (`reportingController` mcp-operator;
/// `reportingInstance`: the replica, when known).
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    instance: String,
}

const CONTROLLER: &str = "mcp-operator";

/// The recorder of the operator's Events.
pub fn recorder(client: Client, instance: Option<String>) -> Recorder {
    Recorder {
        client,
        instance: instance.unwrap_or_else(|| CONTROLLER.into()),
    }
}

impl Recorder {
    /// Create `ev` about `regarding`, or count it on the Event it repeats.
    pub async fn publish(
        &self,
        series: &mut Series,
        ev: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let ns = regarding.namespace.as_deref().unwrap_or("default");
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), ns);
        let key = Series::key(ev, regarding);
        if let Some((name, count)) = series.repeat_of(key, now) {
            let patch = serde_json::json!({ "series": EventSeries {
                count,
                last_observed_time: MicroTime(now),
            }});
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    series.remember(key, name, count, now);
                    return Ok(());
                }
                // Gone (the API server's Event TTL, or deleted): a new one.
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let event = self.new_event(ev, regarding, now);
        api.create(&PostParams::default(), &event).await?;
        series.remember(key, event.metadata.name.unwrap_or_default(), 1, now);
        Ok(())
    }

    /// Pure: the Event as kube's recorder makes it (its name: the object's and
    /// the time in hex nanoseconds).
    pub fn new_event(&self, ev: &Event, regarding: &ObjectReference, now: Timestamp) -> K8sEvent {
        K8sEvent {
            action: Some(ev.action.clone()),
            reason: Some(ev.reason.clone()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: ev.secondary.clone(),
            note: ev.note.clone(),
            metadata: ObjectMeta {
                namespace: regarding.namespace.clone(),
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_deref().unwrap_or(CONTROLLER),
                    now.as_nanosecond()
                )),
                ..Default::default()
            },
            reporting_controller: Some(CONTROLLER.into()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(
                match ev.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .into(),
            ),
            ..Default::default()
        }
    }
}

/// What a shard remembers of an Event it published: enough to count a repeat.
#[derive(Debug)]
struct Seen {
    name: String,
    count: i32,
    last: Timestamp,
}

/// The Events one shard published lately, by what makes a repeat: type,
/// action, reason, the object and the related object (not the note), as in
/// kube's and client-go's recorders. Kept as a 64-bit hash of those: at 1,024
/// entries two Events share one with odds near 3e-14, and then a repeat would
/// be counted on the other's Event.
#[derive(Debug, Default)]
pub struct Series {
    seen: HashMap<u64, Seen>,
}

impl Series {
    fn key(ev: &Event, regarding: &ObjectReference) -> u64 {
        fn object(r: &ObjectReference, h: &mut DefaultHasher) {
            (&r.api_version, &r.kind, &r.namespace, &r.name, &r.uid).hash(h);
        }
        let mut h = DefaultHasher::new();
        (
            matches!(ev.type_, EventType::Warning),
            &ev.action,
            &ev.reason,
        )
            .hash(&mut h);
        object(regarding, &mut h);
        if let Some(related) = &ev.secondary {
            object(related, &mut h);
        }
        h.finish()
    }

    /// The name of the Event `key` repeats and its next count, when it was
    /// last shown within the window.
    fn repeat_of(&self, key: u64, now: Timestamp) -> Option<(String, i32)> {
        self.seen
            .get(&key)
            .filter(|s| now.duration_since(s.last) < SERIES_WINDOW)
            .map(|s| (s.name.clone(), s.count + 1))
    }

    fn remember(&mut self, key: u64, name: String, count: i32, now: Timestamp) {
        self.seen.insert(
            key,
            Seen {
                name,
                count,
                last: now,
            },
        );
        if self.seen.len() > SERIES_PER_SHARD {
            self.forget_old(now);
        }
    }

    /// Past the bound: forget what left the window, then, if that was not
    /// enough, all but the newest half (so this runs once per half a bound
    /// of new Events at most, not on every publish).
    fn forget_old(&mut self, now: Timestamp) {
        self.seen
            .retain(|_, s| now.duration_since(s.last) < SERIES_WINDOW);
        if self.seen.len() > SERIES_PER_SHARD {
            let mut lasts: Vec<Timestamp> = self.seen.values().map(|s| s.last).collect();
            let nth = lasts.len() - SERIES_PER_SHARD / 2;
            let (_, cut, _) = lasts.select_nth_unstable(nth);
            let cut = *cut;
            self.seen.retain(|_, s| s.last >= cut);
        }
    }

    /// Events remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.len()
    }
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
                let mut series = Series::default();
                while let Some((reference, event)) = rx.recv().await {
                    match recorder.publish(&mut series, &event, &reference).await {
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

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("valid timestamp")
    }

    #[test]
    fn a_repeat_within_the_window_counts_on_the_first_event() {
        let mut series = Series::default();
        let key = Series::key(&event(), &reference(1));
        assert_eq!(series.repeat_of(key, at(0)), None);
        series.remember(key, "s1.a".into(), 1, at(0));
        assert_eq!(series.repeat_of(key, at(300)), Some(("s1.a".into(), 2)));
        series.remember(key, "s1.a".into(), 2, at(300));
        // The window runs from the last showing, not the first.
        assert_eq!(series.repeat_of(key, at(659)), Some(("s1.a".into(), 3)));
        assert_eq!(
            series.repeat_of(key, at(660)),
            None,
            "6 minutes after the last"
        );
    }

    #[test]
    fn what_makes_a_repeat() {
        let key = |ev: &Event, r: &ObjectReference| Series::key(ev, r);
        let base = event();
        let other_note = Event {
            note: Some("another note".into()),
            ..event()
        };
        assert_eq!(
            key(&base, &reference(1)),
            key(&other_note, &reference(1)),
            "the note is not part of it"
        );
        let warning = Event {
            type_: EventType::Warning,
            ..event()
        };
        let other_reason = Event {
            reason: "Other".into(),
            ..event()
        };
        let pod = |name: &str| Event {
            secondary: Some(ObjectReference {
                kind: Some("Pod".into()),
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..Default::default()
            }),
            ..event()
        };
        let k = key(&base, &reference(1));
        for (what, other) in [
            ("another object", key(&base, &reference(2))),
            ("the type", key(&warning, &reference(1))),
            ("the reason", key(&other_reason, &reference(1))),
            ("a related pod", key(&pod("p1"), &reference(1))),
        ] {
            assert_ne!(k, other, "{what} makes another Event");
        }
        assert_ne!(
            key(&pod("p1"), &reference(1)),
            key(&pod("p2"), &reference(1))
        );
    }

    #[test]
    fn a_shard_remembers_a_bounded_number_of_events() {
        let mut series = Series::default();
        let n = SERIES_PER_SHARD * 3;
        for i in 0..n {
            // All within the window: only the bound forgets.
            series.remember(i as u64, format!("e{i}"), 1, at(i as i64 / 100));
            assert!(
                series.len() <= SERIES_PER_SHARD,
                "{} remembered",
                series.len()
            );
        }
        let last = (n - 1) as u64;
        assert!(
            series.repeat_of(last, at(30)).is_some(),
            "the newest is kept"
        );
        assert!(
            series.repeat_of(0, at(30)).is_none(),
            "the oldest is forgotten"
        );
        // Past the window everything goes at the next forgetting.
        series.remember(u64::MAX, "late".into(), 1, at(10_000));
        series.forget_old(at(10_000));
        assert_eq!(series.len(), 1);
    }

    #[tokio::test]
    async fn the_event_is_the_one_kube_made() {
        let rec = recorder(
            Client::new(
                tower::service_fn(|_req: Request<Body>| async {
                    Ok::<_, BoxError>(Response::new(Body::empty()))
                }),
                "default",
            ),
            Some("replica-0".into()),
        );
        let ev = Event {
            type_: EventType::Warning,
            note: Some("n".into()),
            ..event()
        };
        let e = rec.new_event(&ev, &reference(3), at(0));
        assert_eq!(e.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(
            e.metadata.name,
            Some(format!("s3.{:x}", at(0).as_nanosecond()))
        );
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        assert_eq!(
            (e.reason.as_deref(), e.action.as_deref(), e.note.as_deref()),
            (Some("Test"), Some("Test"), Some("n"))
        );
        assert_eq!(e.reporting_controller.as_deref(), Some("mcp-operator"));
        assert_eq!(e.reporting_instance.as_deref(), Some("replica-0"));
        assert_eq!(e.regarding, Some(reference(3)));
        assert_eq!(e.event_time, Some(MicroTime(at(0))));
        assert!(e.series.is_none());
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
