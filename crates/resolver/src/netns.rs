//! Creating listener sockets inside a network namespace.
//!
//! `setns` switches only the calling OS thread, and tokio moves tasks between worker
//! threads, so the switch happens on a throw-away `std::thread` (STYLE §8.5). A socket
//! stays in the namespace it was created in, so the thread binds, hands the sockets back
//! and exits; they are then driven from the daemon's runtime.

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::thread;
use std::time::Duration;

use nix::sched::{CloneFlags, setns};

use crate::ResolverError;

/// How often a bind that hits EADDRINUSE is retried (a just-detached listener of the same
/// sandbox may still be winding down on the runtime).
const BIND_RETRIES: u32 = 20;
const BIND_RETRY_DELAY: Duration = Duration::from_millis(25);

/// Bind UDP and TCP on `addr` inside the namespace at `netns`; both are non-blocking.
pub(crate) fn bind_in_netns(
    netns: &Path,
    addr: SocketAddr,
) -> Result<(UdpSocket, TcpListener), ResolverError> {
    let ns = File::open(netns).map_err(|source| ResolverError::OpenNetns {
        path: netns.to_path_buf(),
        source,
    })?;
    let path = netns.to_path_buf();
    let thread_path = path.clone();
    let handle = thread::Builder::new()
        .name("netloom-dns-netns".into())
        .spawn(move || bind_on_this_thread(ns, &thread_path, addr))
        .map_err(|source| ResolverError::NamespaceThread {
            path: path.clone(),
            source: Some(source),
        })?;
    handle
        .join()
        .map_err(|_| ResolverError::NamespaceThread { path, source: None })?
}

/// Runs on the dedicated thread only: the thread is left in the target namespace and must
/// exit afterwards (it is never reused).
fn bind_on_this_thread(
    ns: File,
    path: &Path,
    addr: SocketAddr,
) -> Result<(UdpSocket, TcpListener), ResolverError> {
    setns(&ns, CloneFlags::CLONE_NEWNET).map_err(|source| ResolverError::Setns {
        path: path.to_path_buf(),
        source,
    })?;
    let bind_err = |proto, source| ResolverError::Bind {
        proto,
        addr,
        path: path.to_path_buf(),
        source,
    };
    let udp = retry_in_use(|| UdpSocket::bind(addr)).map_err(|e| bind_err("udp", e))?;
    udp.set_nonblocking(true).map_err(|e| bind_err("udp", e))?;
    // std sets SO_REUSEADDR on listeners, so TIME_WAIT connections don't block a re-attach.
    let tcp = retry_in_use(|| TcpListener::bind(addr)).map_err(|e| bind_err("tcp", e))?;
    tcp.set_nonblocking(true).map_err(|e| bind_err("tcp", e))?;
    Ok((udp, tcp))
}

fn retry_in_use<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let mut tries = 0;
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && tries < BIND_RETRIES => {
                tries += 1;
                thread::sleep(BIND_RETRY_DELAY);
            }
            other => return other,
        }
    }
}
