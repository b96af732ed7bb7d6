//! Open files: netloomd holds a few descriptors per running container (the DNS
//! listener's UDP and TCP sockets in the container's namespace, a pidfd on its shim), so
//! the soft `RLIMIT_NOFILE` a shell or a unit hands out (1,024) caps a host at about 330
//! containers. At start the daemon raises its soft limit to the hard one, as dockerd's
//! systemd unit does with `LimitNOFILE=` (and Go programs do at start-up); the processes
//! it starts (shims, containers, `exec`) get the soft limit back that it was started
//! with, so a container sees the limit it would have had without this.
//!
//! Near the limit, a start is refused before anything is made ([`headroom`]): the last
//! [`RESERVE`] descriptors stay for API connections and for the work in flight, so the
//! daemon always remains reachable to remove containers. Counting the open descriptors
//! costs a read of `/proc/self/fd`, which grows with every container: it is done only
//! when an upper bound kept since the last count reaches half the limit.

use std::io;

/// Descriptors kept free for API connections, the store, `nft` and one start in progress.
pub const RESERVE: u64 = 64;

/// `RLIMIT_NOFILE` as it was at start and as it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nofile {
    /// The soft limit the daemon was started with (what its children get).
    pub original_soft: u64,
    /// The soft limit now.
    pub soft: u64,
    /// The hard limit.
    pub hard: u64,
}

fn get() -> io::Result<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the valid, exclusively borrowed `lim`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim)
}

/// Raises the soft open-file limit to the hard limit (capped at `fs.nr_open`, which
/// the kernel enforces for an infinite hard limit). Never lowers it.
pub fn raise() -> io::Result<Nofile> {
    let lim = get()?;
    let original_soft = lim.rlim_cur;
    let mut target = lim.rlim_max;
    if target == libc::RLIM_INFINITY {
        // setrlimit refuses a soft limit above fs.nr_open (EPERM):
        // https://man7.org/linux/man-pages/man2/setrlimit.2.html ("EPERM ... RLIMIT_NOFILE")
        target = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20);
    }
    if target > original_soft {
        let new = libc::rlimit {
            rlim_cur: target,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads one valid rlimit; raising the soft limit up to the
        // hard limit needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let now = get()?;
    Ok(Nofile {
        original_soft,
        soft: now.rlim_cur,
        hard: now.rlim_max,
    })
}

/// How many descriptors this process has open (the entries of `/proc/self/fd`).
pub fn open_count() -> io::Result<u64> {
    let mut n = 0u64;
    for e in std::fs::read_dir("/proc/self/fd")? {
        e?;
        n += 1;
    }
    // The directory handle read_dir holds is one of them.
    Ok(n.saturating_sub(1))
}

/// Descriptors one container start may add for good (DNS UDP + TCP, the shim's pidfd),
/// with one to spare.
const PER_START: u64 = 4;

/// An upper bound of the descriptors open after the starts admitted since the last
/// count (`u64::MAX`: unknown). Counting means reading `/proc/self/fd`, whose cost grows
/// with every container, so the count is taken again only in the upper half of the
/// limit; below it, each start adds [`PER_START`] to the bound (descriptors closed
/// meanwhile only make it looser).
static BOUND: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(u64::MAX);

/// Refuses new long-lived work (a container start) when fewer than [`RESERVE`]
/// descriptors are left under the soft limit. The error names the limit and the fix.
pub fn headroom(what: &str) -> Result<(), String> {
    use std::sync::atomic::Ordering;
    let Ok(lim) = get() else { return Ok(()) };
    if lim.rlim_cur == libc::RLIM_INFINITY {
        return Ok(());
    }
    let bound = BOUND.load(Ordering::Relaxed);
    let open = if bound < lim.rlim_cur / 2 {
        bound
    } else {
        match open_count() {
            Ok(n) => n,
            Err(_) => return Ok(()),
        }
    };
    if open.saturating_add(RESERVE) <= lim.rlim_cur {
        BOUND.store(open.saturating_add(PER_START), Ordering::Relaxed);
        return Ok(());
    }
    BOUND.store(open, Ordering::Relaxed);
    Err(format!(
        "cannot start {what}: netloomd is at its open-file limit ({open} of {} descriptors \
         in use, each running container holds 3): raise the limit netloomd starts with \
         (LimitNOFILE= in its unit, or ulimit -Hn), or remove containers",
        lim.rlim_cur
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raise_reaches_the_hard_limit_and_keeps_the_original() {
        let before = get().expect("getrlimit");
        let n = raise().expect("raise");
        assert_eq!(n.original_soft, before.rlim_cur);
        assert!(n.soft >= before.rlim_cur, "never lowered: {n:?}");
        if before.rlim_max != libc::RLIM_INFINITY {
            assert_eq!(n.soft, before.rlim_max, "{n:?}");
        }
        // Raising again changes nothing.
        let again = raise().expect("raise again");
        assert_eq!(again.soft, n.soft);
        assert_eq!(again.original_soft, n.soft);
    }

    #[test]
    fn counts_open_descriptors() {
        let before = open_count().expect("count");
        let f = std::fs::File::open("/proc/self/status").expect("open");
        let with = open_count().expect("count");
        drop(f);
        // Other tests run in parallel threads: only check the order of magnitude.
        assert!(with >= 1 && before >= 1, "{before} {with}");
    }
}
