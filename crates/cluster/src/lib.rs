//! netloom swarm mode, the parts without the daemon: the cluster's root CA and node
//! certificates ([`ca`]), Docker-form join tokens ([`token`]), mutual-TLS 1.3
//! configurations with revocation of removed nodes ([`tls`]), SWIM membership over
//! UDP ([`membership`]) and the messages of the join/session protocol ([`proto`]).
//!
//! This crate knows nothing of the daemon, the API or the store: the daemon's
//! `cluster` module wires it up. It depends on no other netloom crate.
#![warn(missing_docs)]

pub mod ca;
pub mod membership;
pub mod proto;
pub mod tls;
pub mod token;

mod base36;

pub use ca::{CertInfo, NodeCert, RootCa};
pub use token::{JoinToken, Role};

/// Errors of the cluster's security and membership layers.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A join token is not of the form `SWMTKN-1-<digest>-<secret>`.
    #[error("invalid join token")]
    InvalidToken,
    /// The manager's CA is not the one named by the token's digest.
    #[error(
        "remote CA does not match fingerprint: the join token was made for another swarm's CA (expected {expected}, got {actual}); check the token (docker swarm join-token worker|manager on a manager)"
    )]
    CaMismatch {
        /// The digest in the token (base 36).
        expected: String,
        /// The digest of the CA the manager presented (base 36).
        actual: String,
    },
    /// A certificate, key or CSR could not be made or signed.
    #[error("cannot {what}")]
    Certificate {
        /// What was being done.
        what: String,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },
    /// A PEM or DER object could not be parsed.
    #[error("cannot parse {what}: {detail}")]
    Parse {
        /// What was being parsed.
        what: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A certificate does not carry a swarm node identity.
    #[error("certificate is not a swarm node certificate: {0}")]
    NotNodeCert(String),
    /// A TLS configuration could not be built.
    #[error("cannot build the TLS configuration for {what}")]
    Tls {
        /// What the configuration is for.
        what: String,
        /// rustls' error.
        #[source]
        source: rustls::Error,
    },
    /// A socket operation of the membership layer failed.
    #[error("membership on {addr}: cannot {what}")]
    Io {
        /// The address involved.
        addr: String,
        /// What was being done.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Result of this crate.
pub type Result<T, E = ClusterError> = std::result::Result<T, E>;

/// A new random ID (128 bits, 25 base-36 characters), the form swarmkit uses for
/// node and cluster IDs.
pub fn new_id() -> String {
    let bytes: [u8; 16] = rand::random();
    base36::encode(&bytes, 25)
}
