//! Memory given back: glibc's allocator keeps what a burst freed (a start-up
//! reconciliation of a thousand containers, `rm -f` of all of them) and gives each
//! thread that allocates an arena of its own, so netloomd's resident memory would stay
//! at its high-water mark. Two arenas are plenty for a daemon that mostly waits, and
//! a trim after start-up and every few seconds, when a few MB lie free, hands the free
//! pages back to the kernel (`malloc_trim` also releases free pages inside the heap).
//! See mallopt(3), malloc_trim(3): https://man7.org/linux/man-pages/man3/mallopt.3.html

use std::time::Duration;

/// How often the free memory is checked.
const TRIM_EVERY: Duration = Duration::from_secs(5);

/// Trim only when at least this much lies free in the heap.
#[cfg(target_env = "gnu")]
const TRIM_ABOVE: usize = 4 << 20;

/// Limits the allocator's arenas (before any thread is started).
pub fn tune() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes allocator parameters; it is called before any other
    // thread exists, and M_ARENA_MAX takes any positive value.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Gives free heap pages back to the kernel when enough lie free; returns whether it
/// trimmed.
pub fn trim() -> bool {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: mallinfo2 and malloc_trim only inspect and shrink the allocator's own
        // free lists; they are thread-safe in glibc.
        unsafe {
            if libc::mallinfo2().fordblks < TRIM_ABOVE {
                return false;
            }
            libc::malloc_trim(0);
        }
        true
    }
    #[cfg(not(target_env = "gnu"))]
    false
}

/// Trims now and then every [`TRIM_EVERY`], off the async workers.
pub fn spawn_trimmer() {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(TRIM_EVERY);
        loop {
            tick.tick().await;
            if tokio::task::spawn_blocking(trim).await.unwrap_or(false) {
                tracing::trace!("gave free memory back to the kernel");
            }
        }
    });
}

#[cfg(all(test, target_env = "gnu"))]
mod tests {
    use super::*;

    fn rss_kb() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0)
    }

    #[test]
    fn trim_gives_freed_memory_back() {
        // Many small blocks (below the mmap threshold: they live in the heap), touched,
        // then freed except every 64th, so the heap cannot shrink from its top alone.
        let mut blocks: Vec<Vec<u8>> = (0..200_000).map(|i| vec![i as u8; 512]).collect();
        let high = rss_kb();
        let keep: Vec<Vec<u8>> = blocks
            .drain(..)
            .enumerate()
            .filter(|(i, _)| i % 64 == 0)
            .map(|(_, b)| b)
            .collect();
        assert!(trim(), "about 100 MB lay free");
        let low = rss_kb();
        assert!(
            low + 50_000 < high,
            "RSS {high} kB -> {low} kB after freeing ~100 MB and trimming"
        );
        drop(keep);
    }
}
