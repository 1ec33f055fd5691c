//! Jittered exponential backoff for reconnect attempts.

use std::time::Duration;

/// Equal-jitter exponential backoff: the n-th delay is drawn uniformly from
/// `[d/2, d]` where `d = min(cap, base * 2^n)`. The jitter spreads replicas
/// apart (no thundering herd on a restarted database) while the cap keeps the
/// gap between attempts, and so the time to notice a recovered database, at
/// most `cap`.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// A new backoff starting at `base` and never exceeding `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap: cap.max(base),
            attempt: 0,
        }
    }

    /// Number of delays handed out so far.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Start over (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The next delay, using the thread RNG for jitter.
    pub fn next_delay(&mut self) -> Duration {
        let unit: f64 = rand::random();
        self.next_delay_with(unit)
    }

    /// The next delay with an explicit jitter sample in `[0, 1]` (for tests).
    pub fn next_delay_with(&mut self, unit: f64) -> Duration {
        let d = delay_for(self.attempt, self.base, self.cap, unit);
        self.attempt = self.attempt.saturating_add(1);
        d
    }
}

/// The delay for `attempt` (0-based) with jitter sample `unit` in `[0, 1]`.
pub fn delay_for(attempt: u32, base: Duration, cap: Duration, unit: f64) -> Duration {
    let factor = 2u64.saturating_pow(attempt.min(32)) as f64;
    let ceiling = (base.as_secs_f64() * factor).min(cap.as_secs_f64());
    let unit = unit.clamp(0.0, 1.0);
    Duration::from_secs_f64(ceiling / 2.0 + ceiling / 2.0 * unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn grows_exponentially_then_caps() {
        let mut b = Backoff::new(ms(50), ms(1000));
        let upper: Vec<Duration> = (0..8).map(|_| b.next_delay_with(1.0)).collect();
        assert_eq!(
            upper,
            vec![
                ms(50),
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1000),
                ms(1000),
                ms(1000)
            ]
        );
    }

    #[test]
    fn jitter_stays_within_half_to_full() {
        for attempt in 0..40 {
            let lo = delay_for(attempt, ms(50), ms(1000), 0.0);
            let hi = delay_for(attempt, ms(50), ms(1000), 1.0);
            assert!(lo * 2 >= hi - ms(1), "attempt {attempt}: {lo:?} {hi:?}");
            assert!(hi <= ms(1000));
        }
        let mut b = Backoff::new(ms(50), ms(1000));
        for _ in 0..100 {
            assert!(b.next_delay() <= ms(1000));
        }
    }

    #[test]
    fn huge_attempt_numbers_do_not_overflow() {
        assert_eq!(delay_for(u32::MAX, ms(50), ms(1000), 1.0), ms(1000));
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::new(ms(10), ms(100));
        b.next_delay_with(1.0);
        b.next_delay_with(1.0);
        b.reset();
        assert_eq!(b.attempt(), 0);
        assert_eq!(b.next_delay_with(1.0), ms(10));
    }

    #[test]
    fn cap_below_base_is_raised_to_base() {
        let mut b = Backoff::new(ms(100), ms(10));
        assert_eq!(b.next_delay_with(1.0), ms(100));
    }
}
