//! The messages of the cluster protocol between nodes: HTTP/1.1 with JSON bodies over
//! mutual TLS 1.3 on the manager's port (2377). `docs/swarm.md` describes the exchange:
//!
//! 1. `GET /ca` (no client certificate): the manager's [`CaResponse`]; the joiner checks
//!    `signing_ca` against its token's digest.
//! 2. `POST /join` (no client certificate, now verifying the manager against that CA):
//!    [`JoinRequest`] → [`JoinResponse`] with the node's ID and certificate.
//! 3. From then on, with the node certificate: `POST /session` ([`Heartbeat`] →
//!    [`SessionUpdate`]) every few seconds on one kept-alive connection, `POST /renew`
//!    ([`RenewRequest`] → [`RenewResponse`]) before the certificate expires, and
//!    `POST /leave` when a node leaves.

use serde::{Deserialize, Serialize};

use crate::token::Role;

/// Answer to `GET /ca`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaResponse {
    /// The root that signs new certificates (PEM); the tokens carry its digest.
    pub signing_ca: String,
    /// Every root currently trusted (during a rotation: the old and the new one).
    pub trusted_cas: Vec<String>,
}

/// Body of `POST /join`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The whole join token.
    pub token: String,
    /// A CSR for the node's new key (PEM); only its public key is used.
    pub csr: String,
    /// The role the joiner expects; `None`: whatever the token grants.
    #[serde(default)]
    pub role: Option<Role>,
    /// The node's hostname.
    pub hostname: String,
    /// The address other nodes reach it at (no port), or empty to use the source
    /// address the manager sees.
    pub advertise_addr: String,
    /// Its data-path address (VXLAN), empty for the advertise address.
    #[serde(default)]
    pub data_path_addr: String,
    /// Its membership (gossip) port.
    pub gossip_port: u16,
    /// Its initial availability (`active`, `pause`, `drain`).
    pub availability: String,
    /// Its engine version.
    #[serde(default)]
    pub engine_version: String,
}

/// A node another node should know: for gossip seeds and manager lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// The node ID.
    pub node_id: String,
    /// Its management address (`IP:2377`) for managers, or its gossip address.
    pub addr: String,
}

/// Answer to `POST /join`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinResponse {
    /// The new node's ID.
    pub node_id: String,
    /// The cluster ID.
    pub cluster_id: String,
    /// The role granted.
    pub role: Role,
    /// The node certificate (PEM).
    pub cert: String,
    /// Every trusted root (PEM).
    pub trusted_cas: Vec<String>,
    /// The key that authenticates membership datagrams (hex).
    pub gossip_key: String,
    /// The managers (management addresses).
    pub managers: Vec<Peer>,
    /// Members to announce to (gossip addresses).
    pub gossip_seeds: Vec<Peer>,
    /// The address the manager recorded for the node.
    pub addr: String,
}

/// Body of `POST /session`: a node's periodic report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The node's hostname.
    pub hostname: String,
    /// Its engine version.
    pub engine_version: String,
    /// The status it reports: `ready`.
    pub state: String,
}

/// Answer to `POST /session`: what the node must know or do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionUpdate {
    /// The node's desired role; a change means: renew the certificate for it.
    pub role: Role,
    /// Its availability.
    pub availability: String,
    /// The managers.
    pub managers: Vec<Peer>,
    /// Every trusted root (PEM), for a root rotation.
    pub trusted_cas: Vec<String>,
    /// Digest (hex) of the signing root: a node whose certificate comes from another
    /// root renews it.
    pub signing_ca_digest: String,
    /// Members to (re)announce to.
    pub gossip_seeds: Vec<Peer>,
    /// Seconds between heartbeats.
    pub heartbeat_secs: u64,
}

/// Body of `POST /renew`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenewRequest {
    /// A CSR for the node's (new) key (PEM).
    pub csr: String,
}

/// Answer to `POST /renew`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenewResponse {
    /// The new certificate (PEM).
    pub cert: String,
    /// The role it carries.
    pub role: Role,
    /// Every trusted root (PEM).
    pub trusted_cas: Vec<String>,
}

/// An error answer of the cluster protocol (any non-2xx status).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// The message for the user.
    pub message: String,
}
