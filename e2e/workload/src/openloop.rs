//! Open-loop dispatch: a fixed schedule of send slots that never moves.
//!
//! Slot `k` is due at `start + k / rate`. When it is due the dispatcher starts
//! the call in its own task and goes on to the next slot, whether or not
//! earlier calls have finished or succeeded: no backoff, no `retry_after_ms`,
//! no waiting for a free worker. The only bound is `max_in_flight`: a slot that
//! comes due while that many calls are still running is *not sent* and is
//! recorded as a failed call of kind [`NOT_SENT_IN_FLIGHT_CAP`], so the offered
//! load is always accounted for (`events.len() == offered` once every call
//! has finished).
//!
//! Times come from tokio's clock (so tests can run on paused time) and are
//! turned into unix ms as `started_unix_ms + elapsed`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::report::CallEvent;

/// Error kind of a slot that was not sent because `max_in_flight` calls were
/// still running.
pub const NOT_SENT_IN_FLIGHT_CAP: &str = "not_sent_in_flight_cap";

/// Largest accepted `max_in_flight` (keeps the semaphore arithmetic in range).
pub const MAX_IN_FLIGHT_LIMIT: usize = 1_000_000;

/// Number of slots in `duration` at `rate` calls/s: the `k` with
/// `k / rate < duration`. A tolerance of 1e-9 slot absorbs float error, so
/// 2 s at 50/s is exactly 100 slots. Zero for a non-positive or non-finite rate.
pub fn slot_count(duration: Duration, rate: f64) -> u64 {
    if !(rate.is_finite() && rate > 0.0) {
        return 0;
    }
    let x = duration.as_secs_f64() * rate;
    if !x.is_finite() {
        return u64::MAX;
    }
    let n = (x - 1e-9).ceil();
    if n <= 0.0 {
        0
    } else {
        n as u64
    }
}

/// Offset of slot `k` from the start: `k / rate` (zero for a bad rate).
pub fn slot_offset(k: u64, rate: f64) -> Duration {
    if !(rate.is_finite() && rate > 0.0) {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(k as f64 / rate).unwrap_or(Duration::MAX)
}

/// Default in-flight cap: `ceil(rate × call_timeout)` (what a steady rate can
/// have outstanding when every call runs into its timeout), at least 1, at
/// most [`MAX_IN_FLIGHT_LIMIT`].
pub fn default_max_in_flight(rate: f64, call_timeout: Duration) -> usize {
    let x = rate * call_timeout.as_secs_f64();
    if !x.is_finite() {
        return MAX_IN_FLIGHT_LIMIT;
    }
    let n = (x - 1e-9).ceil();
    if n < 1.0 {
        1
    } else if n >= MAX_IN_FLIGHT_LIMIT as f64 {
        MAX_IN_FLIGHT_LIMIT
    } else {
        n as usize
    }
}

/// What one sent call came to.
#[derive(Debug, Clone, Default)]
pub struct Attempt {
    pub ok: bool,
    /// Error kind when not ok.
    pub kind: Option<String>,
    /// Error message when not ok (one sample per kind goes to the report).
    pub message: Option<String>,
    /// The call met a session loss (whether or not its retry succeeded).
    pub session_lost: bool,
}

/// The dispatcher's log.
#[derive(Debug, Clone, Default)]
pub struct Dispatched {
    /// Slots that came due (sent or not).
    pub offered: u64,
    /// One event per offered slot whose outcome is known, ordered by slot.
    pub events: Vec<CallEvent>,
    /// Latency of each successful call, ms, from its *scheduled* send time.
    pub latencies_ms: Vec<f64>,
    /// First message seen per error kind.
    pub samples: BTreeMap<String, String>,
    pub started_unix_ms: u64,
    /// When the last call finished.
    pub ended_unix_ms: u64,
}

#[derive(Default)]
struct Collected {
    events: Vec<CallEvent>,
    latencies_ms: Vec<f64>,
    samples: BTreeMap<String, String>,
}

impl Collected {
    fn push(&mut self, event: CallEvent, message: Option<String>, latency_ms: Option<f64>) {
        if let (Some(kind), Some(message)) = (&event.kind, message) {
            self.samples.entry(kind.clone()).or_insert(message);
        }
        if let Some(l) = latency_ms {
            self.latencies_ms.push(l);
        }
        self.events.push(event);
    }
}

fn unix_at(started_unix_ms: u64, start: Instant, t: Instant) -> u64 {
    let ms = u64::try_from(t.saturating_duration_since(start).as_millis()).unwrap_or(u64::MAX);
    started_unix_ms.saturating_add(ms)
}

/// Run the schedule: `slot_count(duration, rate)` slots, each handed to
/// `call(k)` in its own task, at most `max_in_flight` at once (clamped to
/// 1..=[`MAX_IN_FLIGHT_LIMIT`]). `stop` ends the offering early (slots not yet
/// due are not offered). Returns after every started call has finished.
pub async fn dispatch<F, Fut>(
    rate: f64,
    duration: Duration,
    max_in_flight: usize,
    stop: &CancellationToken,
    started_unix_ms: u64,
    mut call: F,
) -> Dispatched
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Attempt> + Send + 'static,
{
    let cap = max_in_flight.clamp(1, MAX_IN_FLIGHT_LIMIT);
    let start = Instant::now();
    let slots = slot_count(duration, rate);
    let gate = Arc::new(Semaphore::new(cap));
    let log = Arc::new(Mutex::new(Collected::default()));
    let mut offered = 0u64;
    for k in 0..slots {
        let due = start + slot_offset(k, rate);
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(due) => {}
        }
        offered += 1;
        let scheduled_ms = unix_at(started_unix_ms, start, due);
        match gate.clone().try_acquire_owned() {
            Err(_) => {
                let now = unix_at(started_unix_ms, start, Instant::now());
                let event = CallEvent {
                    slot: k,
                    scheduled_ms,
                    start_ms: now,
                    end_ms: now,
                    ok: false,
                    kind: Some(NOT_SENT_IN_FLIGHT_CAP.to_string()),
                    session_lost: false,
                };
                let message = format!("not sent: {cap} calls already in flight (max_in_flight)");
                if let Ok(mut g) = log.lock() {
                    g.push(event, Some(message), None);
                }
            }
            Ok(permit) => {
                let fut = call(k);
                let log = log.clone();
                tokio::spawn(async move {
                    let sent = Instant::now();
                    let a = fut.await;
                    let done = Instant::now();
                    let latency =
                        a.ok.then(|| done.saturating_duration_since(due).as_secs_f64() * 1000.0);
                    let event = CallEvent {
                        slot: k,
                        scheduled_ms,
                        start_ms: unix_at(started_unix_ms, start, sent),
                        end_ms: unix_at(started_unix_ms, start, done),
                        ok: a.ok,
                        kind: if a.ok { None } else { a.kind },
                        session_lost: a.session_lost,
                    };
                    if let Ok(mut g) = log.lock() {
                        g.push(event, a.message, latency);
                    }
                    drop(permit);
                });
            }
        }
    }
    // Every running call holds a permit: having them all back means all done.
    // `cap` <= MAX_IN_FLIGHT_LIMIT, so it fits in u32.
    let _all = gate.acquire_many(cap as u32).await;
    let ended_unix_ms = unix_at(started_unix_ms, start, Instant::now());
    let collected = match log.lock() {
        Ok(mut g) => std::mem::take(&mut *g),
        Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
    };
    let mut events = collected.events;
    events.sort_by_key(|e| e.slot);
    Dispatched {
        offered,
        events,
        latencies_ms: collected.latencies_ms,
        samples: collected.samples,
        started_unix_ms,
        ended_unix_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_counts() {
        assert_eq!(slot_count(Duration::from_secs(2), 50.0), 100);
        assert_eq!(slot_count(Duration::from_secs_f64(0.3), 10.0), 3);
        assert_eq!(slot_count(Duration::from_millis(2001), 50.0), 101);
        assert_eq!(slot_count(Duration::from_millis(10), 50.0), 1);
        assert_eq!(slot_count(Duration::ZERO, 50.0), 0);
        assert_eq!(slot_count(Duration::from_secs(1), 0.0), 0);
        assert_eq!(slot_count(Duration::from_secs(1), f64::NAN), 0);
        assert_eq!(slot_count(Duration::from_secs(1), -5.0), 0);
    }

    #[test]
    fn slot_offsets() {
        assert_eq!(slot_offset(0, 50.0), Duration::ZERO);
        assert_eq!(slot_offset(1, 50.0), Duration::from_millis(20));
        assert_eq!(slot_offset(99, 50.0), Duration::from_millis(1980));
        assert_eq!(slot_offset(3, 0.0), Duration::ZERO);
        // The last slot is inside the duration.
        let d = Duration::from_secs(2);
        let n = slot_count(d, 50.0);
        assert!(slot_offset(n - 1, 50.0) < d);
        assert!(slot_offset(n, 50.0) >= d);
    }

    #[test]
    fn default_cap() {
        assert_eq!(default_max_in_flight(50.0, Duration::from_secs(10)), 500);
        assert_eq!(default_max_in_flight(0.1, Duration::from_secs(1)), 1);
        assert_eq!(default_max_in_flight(33.3, Duration::from_secs(1)), 34);
        assert_eq!(
            default_max_in_flight(1e12, Duration::from_secs(10)),
            MAX_IN_FLIGHT_LIMIT
        );
    }

    async fn ok_after(ms: u64) -> Attempt {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Attempt {
            ok: true,
            ..Attempt::default()
        }
    }

    /// Calls are sent on schedule even though each takes 5 slots to finish.
    #[tokio::test(start_paused = true)]
    async fn schedule_does_not_wait_for_calls() {
        let stop = CancellationToken::new();
        let d = dispatch(
            100.0,
            Duration::from_millis(500),
            1000,
            &stop,
            1_000,
            |_| ok_after(45),
        )
        .await;
        assert_eq!(d.offered, 50);
        assert_eq!(d.events.len(), 50);
        for (k, e) in d.events.iter().enumerate() {
            assert_eq!(e.slot, k as u64);
            assert_eq!(e.scheduled_ms, 1_000 + 10 * k as u64);
            assert_eq!(e.start_ms, e.scheduled_ms, "slot {k} sent late");
            assert_eq!(e.end_ms, e.start_ms + 45);
            assert!(e.ok);
        }
        assert_eq!(d.latencies_ms.len(), 50);
        assert!(d.latencies_ms.iter().all(|l| (l - 45.0).abs() < 1e-6));
        assert_eq!(d.ended_unix_ms, 1_000 + 490 + 45);
    }

    /// Failures do not move the schedule either (no backoff).
    #[tokio::test(start_paused = true)]
    async fn failures_do_not_back_off() {
        let stop = CancellationToken::new();
        let d = dispatch(50.0, Duration::from_secs(1), 100, &stop, 0, |_| async {
            Attempt {
                ok: false,
                kind: Some("db_unavailable".into()),
                message: Some("down".into()),
                session_lost: false,
            }
        })
        .await;
        assert_eq!(d.offered, 50);
        assert!(d.events.iter().all(|e| !e.ok));
        let starts: Vec<u64> = d.events.iter().map(|e| e.start_ms).collect();
        assert_eq!(starts, (0..50).map(|k| k * 20).collect::<Vec<_>>());
        assert_eq!(
            d.samples.get("db_unavailable").map(String::as_str),
            Some("down")
        );
        assert!(d.latencies_ms.is_empty());
    }

    /// Cap 2, calls of 45 ms, a slot every 10 ms: of every 5 slots 2 are sent
    /// and 3 are recorded as not sent; nothing is dropped from the count.
    #[tokio::test(start_paused = true)]
    async fn in_flight_cap_accounting() {
        let stop = CancellationToken::new();
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let d = dispatch(100.0, Duration::from_millis(500), 2, &stop, 0, |_| {
            let running = running.clone();
            let peak = peak.clone();
            async move {
                use std::sync::atomic::Ordering::SeqCst;
                let now = running.fetch_add(1, SeqCst) + 1;
                peak.fetch_max(now, SeqCst);
                let a = ok_after(45).await;
                running.fetch_sub(1, SeqCst);
                a
            }
        })
        .await;
        assert_eq!(d.offered, 50);
        assert_eq!(d.events.len(), 50, "every slot is accounted for");
        let sent: Vec<u64> = d.events.iter().filter(|e| e.ok).map(|e| e.slot).collect();
        let not_sent = d
            .events
            .iter()
            .filter(|e| e.kind.as_deref() == Some(NOT_SENT_IN_FLIGHT_CAP))
            .count();
        assert_eq!(sent.len(), 20);
        assert_eq!(not_sent, 30);
        assert!(sent.iter().all(|k| k % 5 == 0 || k % 5 == 1), "{sent:?}");
        assert_eq!(peak.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert!(d.samples.contains_key(NOT_SENT_IN_FLIGHT_CAP));
    }

    #[tokio::test(start_paused = true)]
    async fn stop_ends_the_offering_and_waits_for_running_calls() {
        let stop = CancellationToken::new();
        let s = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(95)).await;
            s.cancel();
        });
        let d = dispatch(100.0, Duration::from_secs(10), 100, &stop, 0, |_| {
            ok_after(200)
        })
        .await;
        assert_eq!(d.offered, 10);
        assert_eq!(d.events.len(), 10);
        assert!(d.events.iter().all(|e| e.ok));
        assert_eq!(d.ended_unix_ms, 90 + 200);
    }
}
