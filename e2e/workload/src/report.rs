//! Pure computations over the client's call log: outages, first success after
//! a mark, timeline buckets, percentiles.

use serde::{Deserialize, Serialize};

/// One offered call slot as seen by the client (sent, or recorded as not sent).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CallEvent {
    /// Index of the schedule slot (`0..offered`).
    #[serde(default)]
    pub slot: u64,
    /// Unix ms the slot was due (`start + slot / rate`).
    #[serde(default)]
    pub scheduled_ms: u64,
    /// Unix ms when the call was sent (for a slot not sent: when that was decided).
    pub start_ms: u64,
    /// Unix ms when it completed (success or failure).
    pub end_ms: u64,
    pub ok: bool,
    /// Error kind when not ok.
    pub kind: Option<String>,
    /// The call met a session loss (HTTP 404 for its session): the session was
    /// re-initialized and the call retried once. Set whether or not the retry
    /// succeeded.
    #[serde(default)]
    pub session_lost: bool,
}

/// A run of failures between two successes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Outage {
    /// Last success before the failures (or the run start), unix ms.
    pub start_unix_ms: u64,
    /// First success after them; `None` if the run ended still failing.
    pub end_unix_ms: Option<u64>,
    pub duration_s: f64,
    pub failures: u64,
}

/// A timeline bucket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Bucket {
    pub t_unix_ms: u64,
    /// Seconds since the run start.
    pub t_s: f64,
    pub ok: u64,
    pub err: u64,
}

fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// Outages: from the last success before a failure run to the first success
/// after it.
///
/// The *sequence* is send order: calls are ordered by send time (`start_ms`,
/// then completion), and a failure run is a maximal run of consecutive failed
/// calls in that order. So with an open-loop client, where a slow early call
/// can complete after later ones, a run is "the calls sent while the service
/// was failing", not an artefact of completion order.
///
/// An outage starts when the last success *sent before* the run completed
/// (the latest completion among the successes sent before it, or the run
/// start) and ends when the first success *sent after* the run completed
/// (`None` while the run lasts to the end; the duration then runs to
/// `run_end_ms`). If that success overtook an earlier slow one, the duration
/// is 0. Outages come out ordered by start.
pub fn outages(events: &[CallEvent], run_start_ms: u64, run_end_ms: u64) -> Vec<Outage> {
    let mut sorted: Vec<&CallEvent> = events.iter().collect();
    sorted.sort_by_key(|e| (e.start_ms, e.end_ms));
    let mut out = Vec::new();
    let mut last_ok = run_start_ms;
    let mut failures = 0u64;
    for e in sorted {
        if e.ok {
            if failures > 0 {
                out.push(Outage {
                    start_unix_ms: last_ok,
                    end_unix_ms: Some(e.end_ms),
                    duration_s: secs(e.end_ms.saturating_sub(last_ok)),
                    failures,
                });
                failures = 0;
            }
            last_ok = last_ok.max(e.end_ms);
        } else {
            failures += 1;
        }
    }
    if failures > 0 {
        out.push(Outage {
            start_unix_ms: last_ok,
            end_unix_ms: None,
            duration_s: secs(run_end_ms.saturating_sub(last_ok)),
            failures,
        });
    }
    // `last_ok` never decreases, so this is already ordered; keep it explicit.
    out.sort_by_key(|o| o.start_unix_ms);
    out
}

/// Longest outage in seconds (0 when there was none).
pub fn longest_outage_s(outages: &[Outage]) -> f64 {
    outages.iter().map(|o| o.duration_s).fold(0.0, f64::max)
}

/// Seconds from `mark_ms` to the first success that was *sent* at or after it.
/// Counting only calls sent after the mark excludes calls that were already
/// committed before the instant of interest.
pub fn first_success_after(events: &[CallEvent], mark_ms: u64) -> Option<f64> {
    events
        .iter()
        .filter(|e| e.ok && e.start_ms >= mark_ms)
        .map(|e| e.end_ms)
        .min()
        .map(|t| secs(t.saturating_sub(mark_ms)))
}

/// Successes and failures per bucket (by completion time).
pub fn timeline(events: &[CallEvent], start_ms: u64, end_ms: u64, bucket_ms: u64) -> Vec<Bucket> {
    let bucket_ms = bucket_ms.max(1);
    let last = events
        .iter()
        .map(|e| e.end_ms)
        .max()
        .unwrap_or(end_ms)
        .max(end_ms);
    let n = (last.saturating_sub(start_ms) / bucket_ms + 1) as usize;
    let mut buckets: Vec<Bucket> = (0..n)
        .map(|i| {
            let t = start_ms + i as u64 * bucket_ms;
            Bucket {
                t_unix_ms: t,
                t_s: secs(t - start_ms),
                ok: 0,
                err: 0,
            }
        })
        .collect();
    for e in events {
        let i = (e.end_ms.saturating_sub(start_ms) / bucket_ms) as usize;
        if let Some(b) = buckets.get_mut(i) {
            if e.ok {
                b.ok += 1;
            } else {
                b.err += 1;
            }
        }
    }
    buckets
}

/// Nearest-rank percentile of an ascending slice (`p` in 0..=100).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(start: u64, end: u64, ok: bool) -> CallEvent {
        CallEvent {
            slot: 0,
            scheduled_ms: start,
            start_ms: start,
            end_ms: end,
            ok,
            kind: (!ok).then(|| "x".to_string()),
            session_lost: false,
        }
    }

    /// Open loop: completions arrive out of send order. The failure run is
    /// taken in send order, and outages come out ordered by start.
    #[test]
    fn outages_follow_send_order_with_out_of_order_completions() {
        // Given in completion order, as a log would collect them.
        let events = vec![
            ev(0, 20, true),
            ev(40, 45, false), // fast failure
            ev(20, 50, false), // slow failure, sent before it
            ev(60, 70, true),  // first success sent after the run
            ev(80, 90, false),
            ev(100, 120, false),
            ev(90, 400, true), // slow success sent inside the second run
            ev(130, 150, false),
            ev(140, 160, true),
        ];
        let o = outages(&events, 0, 1000);
        assert_eq!(o.len(), 3, "{o:?}");
        assert_eq!(
            (o[0].start_unix_ms, o[0].end_unix_ms, o[0].failures),
            (20, Some(70), 2)
        );
        // Send order: 80 fail, 90 ok (completes at 400): a one-call run.
        assert_eq!(
            (o[1].start_unix_ms, o[1].end_unix_ms, o[1].failures),
            (70, Some(400), 1)
        );
        // 100 and 130 fail, 140 ok at 160; the success sent before them
        // completed later (at 400): the outage starts there, duration clamps to 0.
        assert_eq!(
            (o[2].start_unix_ms, o[2].end_unix_ms, o[2].failures),
            (400, Some(160), 2)
        );
        assert_eq!(o[2].duration_s, 0.0);
        assert!(o
            .windows(2)
            .all(|w| w[0].start_unix_ms <= w[1].start_unix_ms));
        // Shuffling the input does not change the result.
        let mut rev = events.clone();
        rev.reverse();
        assert_eq!(outages(&rev, 0, 1000), o);
    }

    #[test]
    fn not_sent_slots_count_as_failures() {
        let mut n = ev(30, 30, false);
        n.kind = Some("not_sent_in_flight_cap".into());
        let events = vec![ev(0, 10, true), n, ev(40, 55, true)];
        let o = outages(&events, 0, 100);
        assert_eq!(o.len(), 1);
        assert_eq!((o[0].start_unix_ms, o[0].end_unix_ms), (10, Some(55)));
    }

    #[test]
    fn call_event_json_round_trip() {
        let mut e = ev(1, 2, false);
        e.session_lost = true;
        let v = serde_json::to_value(&e).expect("json");
        assert_eq!(v["session_lost"], true);
        let back: CallEvent = serde_json::from_value(v).expect("back");
        assert_eq!(back, e);
    }

    #[test]
    fn outage_spans_last_success_to_first_success() {
        let events = vec![
            ev(0, 100, true),
            ev(100, 200, false),
            ev(200, 300, false),
            ev(300, 1600, true),
            ev(1600, 1700, true),
        ];
        let o = outages(&events, 0, 2000);
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].start_unix_ms, 100);
        assert_eq!(o[0].end_unix_ms, Some(1600));
        assert_eq!(o[0].failures, 2);
        assert!((longest_outage_s(&o) - 1.5).abs() < 1e-9);
    }

    #[test]
    fn unfinished_outage_runs_to_end() {
        let events = vec![ev(0, 100, true), ev(100, 200, false)];
        let o = outages(&events, 0, 1100);
        assert_eq!(o[0].end_unix_ms, None);
        assert!((o[0].duration_s - 1.0).abs() < 1e-9);
    }

    #[test]
    fn no_failures_no_outage() {
        assert!(outages(&[ev(0, 1, true)], 0, 10).is_empty());
        assert_eq!(longest_outage_s(&[]), 0.0);
    }

    #[test]
    fn first_success_after_mark_ignores_calls_sent_before() {
        let events = vec![
            ev(900, 1100, true),
            ev(1000, 1200, false),
            ev(1300, 1450, true),
        ];
        assert_eq!(first_success_after(&events, 1000), Some(0.45));
        assert_eq!(first_success_after(&events, 2000), None);
    }

    #[test]
    fn timeline_buckets() {
        let events = vec![ev(0, 10, true), ev(0, 999, false), ev(0, 1000, true)];
        let t = timeline(&events, 0, 1500, 1000);
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].ok, t[0].err), (1, 1));
        assert_eq!((t[1].ok, t[1].err, t[1].t_s), (1, 0, 1.0));
    }

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 95.0), 95.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
