//! A tiny log rate limiter for container-triggerable events.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Allows at most one event per `interval_ms`; counts what it suppressed in between.
#[derive(Debug)]
pub(crate) struct LogLimiter {
    start: Instant,
    /// Milliseconds since `start` of the last allowed event, plus one (0 = never).
    last: AtomicU64,
    suppressed: AtomicU64,
    interval_ms: u64,
}

impl LogLimiter {
    pub(crate) fn new(interval_ms: u64) -> Self {
        Self {
            start: Instant::now(),
            last: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
            interval_ms,
        }
    }

    /// `Some(n)` when the caller may log now (`n` = events suppressed since the last log),
    /// `None` when this event must be dropped.
    pub(crate) fn check(&self) -> Option<u64> {
        let now = u64::try_from(self.start.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let last = self.last.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < self.interval_ms {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if self
            .last
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_per_interval() {
        let l = LogLimiter::new(60_000);
        assert_eq!(l.check(), Some(0));
        for _ in 0..10 {
            assert_eq!(l.check(), None);
        }
        let l = LogLimiter::new(0);
        assert_eq!(l.check(), Some(0));
        assert_eq!(l.check(), Some(0));
    }
}
