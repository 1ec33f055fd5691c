//! Giving freed heap back to the kernel. glibc's `free` returns only the top of
//! each arena; after a burst (thousands of watch events while servers come up,
//! a rollout doubling the pods) the freed middle stays resident and counts
//! against the pod's memory limit until something reuses it. `malloc_trim`
//! releases those free pages (`MADV_DONTNEED`); it walks the free lists, a
//! millisecond or so at thousands of servers.

use std::time::Duration;

/// How often the heap is trimmed.
pub const TRIM_EVERY: Duration = Duration::from_secs(30);

/// Trim the heap every `every` until the runtime stops.
pub fn spawn_trim(every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            trim();
        }
    });
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim takes no pointers and is safe to call from any thread
    // at any time (it takes each arena's lock).
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
