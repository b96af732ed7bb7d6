//! netloom's embedded DNS server: the in-process equivalent of Docker's `127.0.0.11` resolver.
//!
//! Role: answer A/AAAA/PTR queries for container names of one sandbox, and relay
//! everything else to the sandbox's upstream servers.
//!
//! * Names are published per network: one immutable [`NetworkView`] per network, shared by
//!   reference by every sandbox on it; a sandbox's [`SandboxView`] is the ordered list of
//!   its networks' views, looked up in order. A change ([`Resolver::set_records`]) rebuilds
//!   only the entries it touches (persistent maps) and swaps the networks' views
//!   atomically (`ArcSwap`): its cost follows the change, not the host, and queries take
//!   no lock.
//! * Answers for local names are encoded when a view changes; a query is answered by
//!   copying its question and the pre-encoded records into a thread-local buffer, with
//!   batched `recvmmsg`/`sendmmsg` and no allocation. Anything unusual takes the general
//!   path through hickory (which the fast path is tested against).
//!
//! * One listener pair (UDP + TCP on `127.0.0.11:53`) per sandbox, created inside the
//!   sandbox's network namespace by a dedicated `std::thread` that calls `setns` (never a
//!   tokio worker, see STYLE §8.5) and then driven by tokio tasks on the caller's runtime.
//!   The scope of a query is the listener it arrived on, not its source address.
//! * Forwarding runs from the daemon's own namespace over UDP (TCP when the upstream sets
//!   TC=1), with a total time budget split across servers, a back-off for dead servers, a
//!   response cache and global/per-sandbox in-flight limits.
//! * Anything a container can trigger (malformed packets, upstream failures) is logged
//!   through a rate limiter (at most about one line per second per kind).
//!
//! This crate depends only on `hickory-proto` (wire format), tokio, `arc-swap`, `imbl`,
//! `libc` and `nix`;
//! it must not depend on the controller, the store or the drivers: the daemon converts its
//! model into [`Record`]s.

#![warn(missing_docs)]

mod answer;
mod cache;
mod error;
mod forward;
mod netns;
mod publish;
mod ratelimit;
mod server;
#[cfg(test)]
mod tests;
mod threads;
mod udp;
mod view;
mod wire;

pub use error::ResolverError;
pub use server::Resolver;
pub use view::{FlatSandbox, LinkAlias, NetworkView, Record, SandboxView, Snapshot};

use std::time::Duration;

/// Tunables of the resolver. The defaults match Docker/aardvark behaviour.
#[derive(Debug, Clone)]
pub struct ResolverConfig {
    /// Total time budget for one forwarded query, split across the upstream servers.
    pub upstream_timeout: Duration,
    /// Maximum number of concurrent upstream forwards for the whole daemon.
    pub max_inflight: usize,
    /// Maximum number of concurrent upstream forwards for one sandbox.
    pub per_sandbox_inflight: usize,
    /// TTL (seconds) of the authoritative answers for container names.
    pub ttl: u32,
    /// Idle time after which a TCP client connection is closed.
    pub tcp_idle: Duration,
    /// How long an upstream that failed or timed out is skipped (while another one is available).
    pub upstream_backoff: Duration,
    /// Maximum number of cached upstream responses.
    pub cache_capacity: usize,
    /// Maximum number of concurrent TCP client connections per sandbox.
    pub max_tcp_connections: usize,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        Self {
            upstream_timeout: Duration::from_secs(5),
            max_inflight: 1024,
            per_sandbox_inflight: 64,
            ttl: 600,
            tcp_idle: Duration::from_secs(3),
            upstream_backoff: Duration::from_secs(30),
            cache_capacity: 4096,
            max_tcp_connections: 128,
        }
    }
}
