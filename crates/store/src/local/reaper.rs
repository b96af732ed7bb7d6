//! The lease reaper of a local backend: one thread per store, started with the first
//! lease, that sleeps until the next lease deadline and then ends the expired leases.
//!
//! It is a plain thread, not a tokio task, so that a store works the same under any
//! runtime (current-thread in unit tests, or none) and the redb commit that deletes
//! a lease's keys (an fsync) never blocks an async worker.

use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Instant;

use super::engine::Engine;

/// When the reaper should wake next, and whether its store is gone.
#[derive(Default)]
pub(crate) struct Clock {
    state: Mutex<ClockState>,
    cv: Condvar,
}

#[derive(Default)]
struct ClockState {
    next: Option<Instant>,
    shut_down: bool,
}

impl Clock {
    /// Makes the reaper wake at `at` at the latest.
    pub(crate) fn wake_at(&self, at: Instant) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.next.is_none_or(|n| at < n) {
            s.next = Some(at);
            self.cv.notify_all();
        }
    }

    /// Stops the reaper (the store is being dropped).
    pub(crate) fn shut_down(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.shut_down = true;
        self.cv.notify_all();
    }

    /// Waits until the wake-up time has come; false once shut down.
    fn wait(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if s.shut_down {
                return false;
            }
            let now = Instant::now();
            match s.next {
                Some(at) if at <= now => {
                    s.next = None;
                    return true;
                }
                Some(at) => {
                    s = self
                        .cv
                        .wait_timeout(s, at - now)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|e| e.into_inner().0);
                }
                None => s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner()),
            }
        }
    }
}

/// Starts the reaper thread of `engine`.
pub(crate) fn spawn(engine: Weak<Engine>, clock: Arc<Clock>, name: &str) {
    let spawned = std::thread::Builder::new()
        .name("netloom-store-leases".into())
        .spawn(move || {
            while clock.wait() {
                // The engine is only borrowed while expiring, never while sleeping, so
                // dropping the store closes it at once.
                let Some(engine) = engine.upgrade() else {
                    return;
                };
                let next = engine.expire_due();
                drop(engine);
                if let Some(at) = next {
                    clock.wake_at(at);
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(store = %name, error = %e, "cannot start the lease reaper: leases will not expire");
    }
}
