//! The crate's single error type.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Errors returned by [`crate::Resolver::attach`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolverError {
    /// `attach` was called outside of a tokio runtime.
    #[error("resolver attach for sandbox {sandbox_id} needs a tokio runtime")]
    NoRuntime {
        /// The sandbox being attached.
        sandbox_id: String,
    },
    /// The network namespace file could not be opened.
    #[error("cannot open network namespace {path}")]
    OpenNetns {
        /// Path of the namespace file (e.g. `/run/netns/X`).
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `setns(CLONE_NEWNET)` into the namespace failed.
    #[error("cannot enter network namespace {path}")]
    Setns {
        /// Path of the namespace file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: nix::Error,
    },
    /// Binding a listener inside the namespace failed.
    #[error("cannot bind {proto} {addr} in network namespace {path}")]
    Bind {
        /// `udp` or `tcp`.
        proto: &'static str,
        /// The address being bound.
        addr: SocketAddr,
        /// Path of the namespace file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The helper thread that enters the namespace could not be started or died.
    #[error("network namespace helper thread for {path} failed")]
    NamespaceThread {
        /// Path of the namespace file.
        path: PathBuf,
        /// The underlying error, if the thread could not be spawned.
        #[source]
        source: Option<io::Error>,
    },
    /// Registering the socket with the tokio reactor failed.
    #[error("cannot register {proto} listener of sandbox {sandbox_id} with the runtime")]
    Register {
        /// `udp` or `tcp`.
        proto: &'static str,
        /// The sandbox being attached.
        sandbox_id: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}
