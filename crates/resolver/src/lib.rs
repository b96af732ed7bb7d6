//! netloom's embedded DNS server: the in-process equivalent of Docker's `127.0.0.11` resolver.
//!
//! Role: answer A/AAAA/PTR queries for container names of one sandbox from an immutable
//! [`Snapshot`] published by the controller (an `ArcSwap`, so the query path takes no lock
//! for local names), and relay everything else to the sandbox's upstream servers.
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
//! This crate depends only on `hickory-proto` (wire format), tokio, `arc-swap` and `nix`;
//! it must not depend on the controller, the store or the drivers: the daemon converts its
//! model into [`Record`]s.

#![warn(missing_docs)]

mod answer;
mod cache;
mod error;
mod forward;
mod netns;
mod ratelimit;
mod server;
mod view;

pub use error::ResolverError;
pub use server::Resolver;
pub use view::{Record, SandboxView, Snapshot};

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
