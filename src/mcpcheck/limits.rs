//! What one check may read from a pod: bytes per message, per SSE event (and
//! so per line), and in total. Every byte the prober reads passes through
//! here before anything parses it.
use std::future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use futures::{Stream, StreamExt};

/// One JSON-RPC message: a JSON body or one SSE event (so also one SSE line).
/// A `tools/list` page of a server with a hundred tools and full schemas is
/// well under this; nothing else the prober asks for comes near it.
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;

/// Everything one check reads from the pod, across all its requests: a
/// handshake and four pages at the message cap. Bounds the check's work and,
/// times the checks in flight, the prober's memory (see the module doc).
pub const MAX_CHECK_BYTES: usize = 512 * 1024;

/// Which cap a pod's answer hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TooLarge {
    #[error("a response body larger than the {} KiB cap", MAX_MESSAGE_BYTES / 1024)]
    Body,
    #[error("an SSE event or line larger than the {} KiB cap", MAX_MESSAGE_BYTES / 1024)]
    Event,
    #[error("more than the {} KiB a check reads in total", MAX_CHECK_BYTES / 1024)]
    Check,
}

/// The bytes one check may still read, shared by all its requests and
/// streams. Remembers the first cap hit, so the check reports it even where
/// rmcp turns the read error into a closed transport.
#[derive(Clone, Debug)]
pub(crate) struct Budget(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    left: AtomicUsize,
    hit: OnceLock<TooLarge>,
    tripped: tokio::sync::Notify,
}

impl Default for Budget {
    fn default() -> Self {
        Self::new(MAX_CHECK_BYTES)
    }
}

impl Budget {
    pub(crate) fn new(bytes: usize) -> Self {
        Self(Arc::new(Inner {
            left: AtomicUsize::new(bytes),
            hit: OnceLock::new(),
            tripped: tokio::sync::Notify::new(),
        }))
    }

    /// Spend `n` bytes, or fail for good once the total is exceeded.
    pub(crate) fn take(&self, n: usize) -> Result<(), TooLarge> {
        if let Some(hit) = self.hit() {
            return Err(hit);
        }
        let spent = self
            .0
            .left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(n)
            });
        match spent {
            Ok(_) => Ok(()),
            Err(_) => Err(self.trip(TooLarge::Check)),
        }
    }

    /// Record a cap hit (the first one wins) and return what was recorded.
    pub(crate) fn trip(&self, what: TooLarge) -> TooLarge {
        let hit = *self.0.hit.get_or_init(|| what);
        // one waiter (the check); the permit is kept if it is not waiting yet
        self.0.tripped.notify_one();
        hit
    }

    /// Resolves once a cap is hit.
    pub(crate) async fn tripped(&self) -> TooLarge {
        loop {
            if let Some(hit) = self.hit() {
                return hit;
            }
            self.0.tripped.notified().await;
        }
    }

    /// The first cap hit, if any.
    pub(crate) fn hit(&self) -> Option<TooLarge> {
        self.0.hit.get().copied()
    }
}

/// Counts the bytes of the SSE event being received, resetting at the blank
/// line that ends it (CR, LF and CRLF line ends, as the SSE grammar allows).
/// sse-stream buffers a line and an event without limit; this runs before it.
#[derive(Debug)]
pub(crate) struct EventLimiter {
    max: usize,
    len: usize,
    at_line_start: bool,
    after_cr: bool,
}

impl EventLimiter {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            len: 0,
            at_line_start: true,
            after_cr: false,
        }
    }

    /// Whether the event in progress is still within the cap after `bytes`.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> bool {
        for &b in bytes {
            if self.after_cr && b == b'\n' {
                // the LF of a CRLF: the line already ended at the CR
                self.after_cr = false;
                continue;
            }
            self.after_cr = b == b'\r';
            if b == b'\n' || b == b'\r' {
                if self.at_line_start {
                    self.len = 0;
                    continue;
                }
                self.at_line_start = true;
            } else {
                self.at_line_start = false;
            }
            self.len += 1;
            if self.len > self.max {
                return false;
            }
        }
        true
    }
}

/// A read error: the transport's, or a cap.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    #[error("the pod sent {0}")]
    TooLarge(TooLarge),
}

/// `stream` cut off (with an error, then its end) at the first event over
/// [`MAX_MESSAGE_BYTES`] or once the check's budget is spent.
pub(crate) fn capped_events<S, D>(
    stream: S,
    budget: Budget,
) -> impl Stream<Item = Result<D, ReadError>> + Send + 'static
where
    S: Stream<Item = Result<D, reqwest::Error>> + Send + 'static,
    D: AsRef<[u8]> + Send + 'static,
{
    let mut limiter = EventLimiter::new(MAX_MESSAGE_BYTES);
    stream.scan(false, move |failed, item| {
        if *failed {
            return future::ready(None);
        }
        let out = match item {
            Err(e) => Err(ReadError::Http(e)),
            Ok(chunk) => {
                let bytes = chunk.as_ref();
                match budget.take(bytes.len()) {
                    Err(hit) => Err(ReadError::TooLarge(hit)),
                    Ok(()) if !limiter.feed(bytes) => {
                        Err(ReadError::TooLarge(budget.trip(TooLarge::Event)))
                    }
                    Ok(()) => Ok(chunk),
                }
            }
        };
        *failed = out.is_err();
        future::ready(Some(out))
    })
}

/// A whole response body, at most [`MAX_MESSAGE_BYTES`] and within the budget;
/// a declared `Content-Length` over the cap is refused before reading.
pub(crate) async fn read_body(
    mut resp: reqwest::Response,
    budget: &Budget,
) -> Result<Vec<u8>, ReadError> {
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_MESSAGE_BYTES as u64)
    {
        return Err(ReadError::TooLarge(budget.trip(TooLarge::Body)));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        budget.take(chunk.len()).map_err(ReadError::TooLarge)?;
        if body.len() + chunk.len() > MAX_MESSAGE_BYTES {
            return Err(ReadError::TooLarge(budget.trip(TooLarge::Body)));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_limiter_resets_at_each_blank_line_whatever_the_line_ends() {
        for end in ["\n", "\r", "\r\n"] {
            // 11 bytes and one line end: at the cap, every time
            let event = format!("data: 12345{end}{end}");
            let mut l = EventLimiter::new(12);
            for _ in 0..100 {
                assert!(l.feed(event.as_bytes()), "{end:?}");
            }
        }
    }

    #[test]
    fn event_limiter_cuts_an_endless_line_and_a_long_event() {
        let mut l = EventLimiter::new(16);
        assert!(l.feed(b"data: 0123456789"));
        assert!(!l.feed(b"x"), "one line past the cap");

        let mut l = EventLimiter::new(16);
        assert!(l.feed(b"data: a\n"));
        assert!(l.feed(b"data: b\n"));
        assert!(!l.feed(b"data: c\n"), "several lines of one event");
    }

    #[test]
    fn event_limiter_split_crlf_is_one_line_end() {
        let mut l = EventLimiter::new(9);
        assert!(l.feed(b"data: ab\r"));
        assert!(l.feed(b"\n\r"));
        assert!(l.feed(b"\ndata: cd\n\n"));
    }

    #[test]
    fn budget_is_shared_and_remembers_the_first_cap() {
        let b = Budget::new(10);
        let c = b.clone();
        assert!(b.take(6).is_ok());
        assert_eq!(c.take(6), Err(TooLarge::Check));
        assert_eq!(b.take(1), Err(TooLarge::Check), "spent for good");
        assert_eq!(b.trip(TooLarge::Event), TooLarge::Check);
    }

    #[tokio::test]
    async fn capped_events_ends_after_the_error() {
        let chunks = futures::stream::iter(
            std::iter::repeat_with(|| Ok::<_, reqwest::Error>(vec![b'x'; 1024])).take(1000),
        );
        let budget = Budget::default();
        let out: Vec<_> = capped_events(chunks, budget.clone()).collect().await;
        assert_eq!(out.len(), MAX_MESSAGE_BYTES / 1024 + 1);
        assert!(matches!(
            out.last(),
            Some(Err(ReadError::TooLarge(TooLarge::Event)))
        ));
        assert_eq!(budget.hit(), Some(TooLarge::Event));
    }
}
