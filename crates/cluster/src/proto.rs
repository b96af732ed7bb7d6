//! The messages of the cluster protocol between nodes: HTTP/1.1 with JSON bodies over
//! mutual TLS 1.3 on the manager's port (2377). `docs/swarm.md` describes the exchange:
//!
//! 1. `GET /ca` (no client certificate): the manager's [`CaResponse`]; the joiner checks
//!    `signing_ca` against its token's digest.
//! 2. `POST /join` (no client certificate, now verifying the manager against that CA):
//!    [`JoinRequest`] → [`JoinResponse`] with the node's ID and certificate.
//! 3. From then on, with the node certificate, on one kept-alive connection:
//!    `POST /session` ([`SessionRequest`] → [`SessionResponse`]), a long poll that
//!    carries the node's heartbeat and its watch positions and answers what it must
//!    know ([`SessionUpdate`]) and what changed under the prefixes it watches
//!    ([`WatchBatch`]); and `POST /renew` ([`RenewRequest`] → [`RenewResponse`])
//!    before the certificate expires or when the node's role changes.

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
    /// For a manager joining a swarm whose managers run etcd members: a CSR for its
    /// member's key, and the ports its member will listen on.
    #[serde(default)]
    pub etcd: Option<EtcdMemberRequest>,
}

/// What a node that becomes a manager sends so that it can run an etcd member.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EtcdMemberRequest {
    /// A CSR for the member's new key (PEM).
    pub csr: String,
    /// The member's client port.
    pub client_port: u16,
    /// The member's peer port.
    pub peer_port: u16,
}

/// How the managers keep the cluster state, told to a node that becomes a manager.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StoreJoin {
    /// Every manager runs an etcd member: the new manager was added as a learner and
    /// starts its member with these settings, then has itself promoted.
    Managed {
        /// The etcd CA (PEM).
        etcd_ca: String,
        /// The member's certificate (PEM), for the key of its CSR.
        cert: String,
        /// The learner's etcd member ID.
        member_id: u64,
        /// `--initial-cluster` of the new member.
        initial_cluster: String,
        /// `--initial-cluster-token` (the cluster ID).
        cluster_token: String,
        /// Client URLs of voting members, to ask for the promotion.
        client_urls: Vec<String>,
    },
    /// The managers share an existing etcd cluster.
    External {
        /// Its `etcd://HOST:PORT,…` URL.
        url: String,
    },
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
    /// For a manager: how to reach the cluster store.
    #[serde(default)]
    pub store: Option<StoreJoin>,
    /// The swarm's `--data-path-port` (VXLAN), the same on every node (0: not sent by
    /// an older manager, the default port).
    #[serde(default)]
    pub data_path_port: u16,
}

/// Body of `POST /session`: the node's heartbeat and watch positions. The manager
/// answers at once when something changed under a watched prefix, else after at most
/// `wait_ms` (its heartbeat acknowledgement); the node sends the next one at once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRequest {
    /// The node's report.
    pub heartbeat: Heartbeat,
    /// Where the node is in each prefix it watches.
    #[serde(default)]
    pub watches: Vec<WatchPosition>,
    /// How long the manager may hold the answer back (milliseconds).
    #[serde(default)]
    pub wait_ms: u64,
}

/// A node's position in one watched prefix of the cluster store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchPosition {
    /// The key prefix (`swarm/nodes/`).
    pub prefix: String,
    /// The store revision up to which the node has every change; `None`: the node
    /// has nothing yet and needs a listing.
    pub after: Option<u64>,
}

/// Answer to `POST /session`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionResponse {
    /// What the node must know.
    pub update: SessionUpdate,
    /// What changed under each watched prefix (one entry per [`WatchPosition`]).
    pub watches: Vec<WatchBatch>,
}

/// Changes under one watched prefix.
///
/// With `reset`, the node replaces everything it holds under the prefix with those
/// items (a first listing, or a re-list because the store's history no longer
/// reached back to the node's position); then, or else, it applies `events` in
/// order. Either way it is complete up to `revision` afterwards and sends that as its
/// next `after`. Batches end on a revision boundary, so a resume from `revision`
/// neither repeats nor misses a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchBatch {
    /// The prefix.
    pub prefix: String,
    /// A full listing that replaces what the node holds.
    #[serde(default)]
    pub reset: Option<Vec<RelayItem>>,
    /// Changes after the node's position (or after the listing), in revision order.
    #[serde(default)]
    pub events: Vec<RelayEvent>,
    /// The revision the node is complete up to after applying this batch.
    pub revision: u64,
    /// Why the prefix cannot be watched (not relayed to nodes, or not to this one).
    #[serde(default)]
    pub error: Option<String>,
}

/// A key under a watched prefix, in a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelayItem {
    /// The key.
    pub key: String,
    /// Its value (the store's JSON record).
    pub value: serde_json::Value,
    /// Its version (the revision of its last change).
    pub version: u64,
}

/// A change under a watched prefix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelayEvent {
    /// The key.
    pub key: String,
    /// The new value; `None`: the key was deleted.
    pub value: Option<serde_json::Value>,
    /// The revision of the change.
    pub revision: u64,
}

/// A node's periodic report (in [`SessionRequest`]).
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
    /// For a node that becomes a manager of a swarm whose managers run etcd members.
    #[serde(default)]
    pub etcd: Option<EtcdMemberRequest>,
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
    /// For a node that becomes a manager: how to reach the cluster store.
    #[serde(default)]
    pub store: Option<StoreJoin>,
}

/// An error answer of the cluster protocol (any non-2xx status).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// The message for the user.
    pub message: String,
}
