//! The resolver's own I/O threads: one single-threaded tokio runtime per CPU (at most
//! [`MAX_THREADS`]), each serving the listeners of the sandboxes assigned to it.
//!
//! On the daemon's multi-threaded runtime a datagram wakes the I/O driver on one worker,
//! which then hands the listener task to another: two thread wake-ups per quiet query,
//! most of the latency at low rates. A current-thread runtime waits in `epoll_wait` and
//! runs the woken listener on the same thread, as a blocking server would, while still
//! serving any number of sandboxes and their forwards.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

/// Most DNS threads, whatever the number of CPUs.
const MAX_THREADS: usize = 4;

/// The DNS threads; they stop when this is dropped (with the tasks still on them).
pub(crate) struct DnsThreads {
    handles: Vec<Handle>,
    next: AtomicUsize,
    _stop: Vec<oneshot::Sender<()>>,
}

impl std::fmt::Debug for DnsThreads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsThreads")
            .field("threads", &self.handles.len())
            .finish_non_exhaustive()
    }
}

impl DnsThreads {
    /// Start one thread per CPU (1..=MAX_THREADS).
    pub(crate) fn start() -> io::Result<Self> {
        let n = std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .clamp(1, MAX_THREADS);
        let mut handles = Vec::with_capacity(n);
        let mut stop = Vec::with_capacity(n);
        for i in 0..n {
            let rt = Builder::new_current_thread().enable_all().build()?;
            handles.push(rt.handle().clone());
            let (tx, rx) = oneshot::channel::<()>();
            stop.push(tx);
            std::thread::Builder::new()
                .name(format!("netloom-dns-{i}"))
                .spawn(move || {
                    // Returns when the sender is dropped; dropping the runtime then
                    // cancels whatever still runs on it.
                    let _ = rt.block_on(rx);
                })?;
        }
        Ok(Self {
            handles,
            next: AtomicUsize::new(0),
            _stop: stop,
        })
    }

    /// The runtime the next sandbox's listeners go to (round robin).
    pub(crate) fn pick(&self) -> &Handle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        &self.handles[i]
    }
}
