//! Whole-second time helpers.
//!
//! The engine computes in Unix seconds: persisted `metav1.Time` values carry
//! one-second precision, so doing all arithmetic at that precision makes a
//! decision identical whether its inputs came from memory or from a status
//! that went through the API server.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// Unix seconds.
pub(crate) type Secs = i64;

/// The Unix epoch, used as the default for required time fields.
pub(crate) fn epoch() -> Time {
    Time(Timestamp::UNIX_EPOCH)
}

/// Whole seconds of a `Time` (truncated).
pub(crate) fn secs(t: &Time) -> Secs {
    t.0.as_second()
}

/// `Time` at whole seconds; out-of-range values clamp to the epoch, which
/// only happens with absurd inputs.
pub(crate) fn time(s: Secs) -> Time {
    Time(Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// `u64` seconds as `Secs`, saturating.
pub(crate) fn dur(s: u64) -> Secs {
    Secs::try_from(s).unwrap_or(Secs::MAX)
}

/// Non-negative difference as `u64`.
pub(crate) fn until(from: Secs, to: Secs) -> u64 {
    u64::try_from(to.saturating_sub(from)).unwrap_or(0)
}
