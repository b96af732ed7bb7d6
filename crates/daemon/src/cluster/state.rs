//! What swarm mode persists.
//!
//! - Cluster state (managers only), in the cluster store under `swarm/`: one
//!   [`ClusterRecord`] and one [`NodeRecord`] per node (see `store.rs`). With one
//!   manager that is its embedded store; HA managers share etcd ([`StoreMode`]).
//! - Node-local state, on every node, in `<data-root>/swarm/`: [`LocalState`]
//!   (`state.json`, mode 0600): this node's identity, certificate and key, the
//!   trusted roots, the gossip key and the managers it knows. Swarm mode survives a
//!   restart from these two alone.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use netloom_cluster::proto::Peer;
use netloom_cluster::{NodeCert, Role, RootCa};
use serde::{Deserialize, Serialize};

/// The cluster's record (one per swarm), kept by the managers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterRecord {
    /// Cluster ID (the O of every node certificate).
    pub id: String,
    /// Creation time.
    pub created_at: SystemTime,
    /// Last update.
    pub updated_at: SystemTime,
    /// The swarm spec as Docker shows it (`Spec` of `GET /swarm`).
    pub spec: serde_json::Value,
    /// The root that signs certificates now.
    pub signing_ca: RootCa,
    /// Every trusted root (PEM); two during a rotation.
    pub trusted_cas: Vec<String>,
    /// A root rotation is under way (old root still trusted).
    pub rotation_in_progress: bool,
    /// Secret of the worker join token.
    pub worker_secret: String,
    /// Secret of the manager join token.
    pub manager_secret: String,
    /// Key of the membership datagrams (hex).
    pub gossip_key: String,
    /// Nodes removed from the swarm: their certificates are refused.
    pub removed: Vec<String>,
    /// `--default-addr-pool` (for the global IPAM).
    pub default_addr_pool: Vec<String>,
    /// `--default-addr-pool-mask-length`.
    pub subnet_size: u32,
    /// `--data-path-port` (VXLAN, for the overlay driver).
    pub data_path_port: u16,
    /// Where the managers keep this record (`--cluster-store` of `swarm init`).
    #[serde(default)]
    pub store: ClusterStore,
    /// The CA of the managers' etcd members (with its key), when they run them.
    #[serde(default)]
    pub etcd_ca: Option<RootCa>,
}

/// Where a swarm's managers keep the cluster state (`swarm init --cluster-store`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ClusterStore {
    /// The single manager's embedded store.
    #[default]
    Embedded,
    /// etcd members run by the managers themselves (`--cluster-store etcd`).
    Managed,
    /// An existing etcd cluster (`--cluster-store etcd://HOST:PORT,…`).
    External {
        /// Its URL.
        url: String,
    },
}

/// How this node reaches the cluster store (managers; workers keep `Embedded`,
/// unused).
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StoreMode {
    /// The daemon's own store (the single manager's embedded store).
    #[default]
    Embedded,
    /// This manager's own etcd member.
    Managed(ManagedEtcd),
    /// An existing etcd cluster.
    External {
        /// Its `etcd://…` URL.
        url: String,
    },
}

/// This manager's etcd member.
#[derive(Clone, Serialize, Deserialize)]
pub struct ManagedEtcd {
    /// Client port (on the advertise address).
    pub client_port: u16,
    /// Peer port (on the advertise address).
    pub peer_port: u16,
    /// The etcd CA (PEM).
    pub ca_pem: String,
    /// The member's certificate and key (server, client and peer).
    pub cert: NodeCert,
    /// `--initial-cluster` for the member's first start.
    pub initial_cluster: String,
    /// `--initial-cluster-state`: `new` (the first manager) or `existing`.
    pub initial_state: String,
    /// `--initial-cluster-token` (the cluster ID).
    pub cluster_token: String,
    /// The learner's member ID until it has been promoted to a voting member.
    #[serde(default)]
    pub learner: Option<u64>,
    /// Client URLs of voting members, to ask for the promotion through.
    #[serde(default)]
    pub promote_via: Vec<String>,
}

impl ClusterRecord {
    /// Node certificate validity from the spec.
    pub fn cert_expiry(&self) -> Duration {
        self.spec
            .pointer("/CAConfig/NodeCertExpiry")
            .and_then(|v| v.as_u64())
            .map(Duration::from_nanos)
            .unwrap_or(netloom_cluster::ca::DEFAULT_NODE_CERT_EXPIRY)
    }
}

/// What a node reported about itself and what the managers decided for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Node ID.
    pub id: String,
    /// Creation (join) time.
    pub created_at: SystemTime,
    /// Last update.
    pub updated_at: SystemTime,
    /// Desired role.
    pub role: Role,
    /// `active`, `pause` or `drain`.
    pub availability: String,
    /// Node labels (`node update --label-add`).
    pub labels: BTreeMap<String, String>,
    /// Hostname the node reported.
    pub hostname: String,
    /// Engine version it reported.
    pub engine_version: String,
    /// Its address (advertise address, no port).
    pub addr: String,
    /// Its management address (`IP:2377`), managers only.
    pub manager_addr: Option<String>,
    /// Its membership address (`IP:7946`).
    pub gossip_addr: String,
    /// Its data-path address (VXLAN endpoint).
    pub data_path_addr: String,
    /// SHA-256 (hex) of the root that issued its current certificate.
    pub cert_root: String,
    /// End of validity of its current certificate.
    pub cert_not_after: SystemTime,
    /// The state the node last reported in its heartbeat (`ready`).
    #[serde(default)]
    pub reported_state: String,
}

/// This node's own swarm state (every node).
#[derive(Clone, Serialize, Deserialize)]
pub struct LocalState {
    /// This node's ID.
    pub node_id: String,
    /// The cluster ID.
    pub cluster_id: String,
    /// The role of its certificate.
    pub role: Role,
    /// Where the manager API listens (`IP:PORT`).
    pub listen_addr: String,
    /// Its advertise address (no port).
    pub advertise_addr: String,
    /// Its data-path address.
    pub data_path_addr: String,
    /// Its node certificate and key.
    pub cert: NodeCert,
    /// Every trusted root (PEM).
    pub trusted_cas: Vec<String>,
    /// Key of the membership datagrams (hex).
    pub gossip_key: String,
    /// The managers it knows (management addresses).
    pub managers: Vec<Peer>,
    /// Gossip addresses of members to announce to.
    pub gossip_seeds: Vec<Peer>,
    /// SHA-256 (hex) of the root that issued `cert`.
    pub cert_root: String,
    /// `--data-path-port` of the swarm (for the overlay driver).
    pub data_path_port: u16,
    /// How this node reaches the cluster store (managers).
    #[serde(default)]
    pub store: StoreMode,
}

impl std::fmt::Debug for LocalState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalState")
            .field("node_id", &self.node_id)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// The directory of the node-local state.
pub fn dir(data_root: &Path) -> PathBuf {
    data_root.join("swarm")
}

/// Reads the local state; `None` when this node is in no swarm.
pub fn load(data_root: &Path) -> std::io::Result<Option<LocalState>> {
    let p = dir(data_root).join("state.json");
    match std::fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes the local state atomically (temp file, fsync, rename), mode 0600.
pub fn save(data_root: &Path, st: &LocalState) -> std::io::Result<()> {
    let d = dir(data_root);
    std::fs::create_dir_all(&d)?;
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))?;
    let tmp = d.join("state.json.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(st).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, d.join("state.json"))
}

/// Removes the local state (leave).
pub fn clear(data_root: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir(data_root)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Hex of bytes.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Bytes of a 64-digit hex key.
pub fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}
