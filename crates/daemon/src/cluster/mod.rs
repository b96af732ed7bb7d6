//! Swarm mode in the daemon: this node's place in a cluster (none, worker or
//! manager), the manager's cluster API on 2377 (`server.rs`, `manager.rs`), the
//! worker's session with a manager (`worker.rs`), SWIM membership on 7946, the
//! managers' shared etcd and their own members (`ha.rs`, `etcd.rs`), the leader
//! (`leader.rs`) and the relay of cluster-store prefixes to every node (`relay.rs`).
//!
//! The security, token and membership machinery lives in `netloom-cluster`; the
//! records in the cluster store (`store.rs`). The API layer (`api/swarm.rs`) only
//! translates Docker's requests into the calls below. `docs/swarm.md` describes the
//! protocol between nodes.

mod addr;
mod certs;
mod etcd;
pub mod global;
mod ha;
mod init;
pub mod leader;
mod manager;
mod net;
mod nodes;
pub mod relay;
mod removal;
mod server;
mod state;
mod store;
mod view;
mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use netloom_cluster::Role;
use netloom_cluster::membership::{self, Membership, MembershipConfig};
use netloom_cluster::tls::Revocations;
use netloom_store::Store;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

pub use init::InitRequest;
pub use manager::SwarmUpdateFlags;
pub use nodes::{NodeFilter, NodeSpecUpdate};
pub use worker::JoinRequest;

use crate::error::CtlError;
use leader::{Election, LeaderState, Leadership};
use relay::Relay;
use state::LocalState;
use store::SwarmStore;

/// Docker's message for `init`/`join` on a member.
pub const ERR_SWARM_EXISTS: &str = "This node is already part of a swarm. Use \"docker swarm leave\" to leave this swarm and join another one.";
/// Docker's message for `leave` on a non-member.
pub const ERR_NO_SWARM: &str = "This node is not part of a swarm";
/// Docker's message for manager calls on a non-member.
pub const ERR_NOT_IN_SWARM: &str = "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";
/// Docker's message for manager calls on a worker.
pub const ERR_NOT_MANAGER: &str = "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.";
/// Why a second manager cannot be had on the embedded store, and the fix.
pub const ERR_EMBEDDED_ONE_MANAGER: &str = "this swarm keeps its state in the manager's embedded store, which only one manager can use: a second manager needs a shared cluster store (create the swarm with netloom swarm init --cluster-store etcd)";
/// Docker's message when the managers have no quorum (here: their etcd cannot be
/// reached or has none).
pub const ERR_NO_LEADER: &str = "The swarm does not have a leader. It's possible that too few managers are online. Make sure more than half of the managers are online.";

/// How this daemon runs its part of a swarm (netloomd's flags).
#[derive(Debug, Clone)]
pub struct SwarmConfig {
    /// Client port of this node's etcd member, when it is a manager on managed etcd.
    pub etcd_client_port: u16,
    /// Peer port of that member.
    pub etcd_peer_port: u16,
    /// The etcd binary.
    pub etcd_binary: PathBuf,
    /// Request deadline towards the managers' etcd.
    pub store_deadline: Duration,
}

impl Default for SwarmConfig {
    fn default() -> Self {
        SwarmConfig {
            etcd_client_port: etcd::DEFAULT_CLIENT_PORT,
            etcd_peer_port: etcd::DEFAULT_PEER_PORT,
            etcd_binary: PathBuf::from(etcd::DEFAULT_BINARY),
            store_deadline: netloom_store::DEFAULT_DEADLINE,
        }
    }
}

/// Swarm mode of this daemon.
pub struct Swarm {
    data_root: PathBuf,
    /// The daemon's own store (the single manager's cluster store).
    base: Arc<dyn Store>,
    /// The cluster store this node uses now.
    store: RwLock<SwarmStore>,
    cfg: SwarmConfig,
    hostname: String,
    /// Serializes init, join, leave, role changes and the manager's writes.
    control: tokio::sync::Mutex<()>,
    node: RwLock<Option<Arc<Node>>>,
    /// What this node receives of the cluster store (kept across role changes).
    relay: Arc<Relay>,
    /// Set once at start: the handle the background tasks reach the agent through.
    me: std::sync::OnceLock<std::sync::Weak<Swarm>>,
    /// The swarm networks this manager is removing now (their removal markers are
    /// live; one of this node's that is not here was left by an earlier run).
    removals: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for Swarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Swarm").finish_non_exhaustive()
    }
}

/// A running swarm node (this daemon, while it is in a swarm).
pub(crate) struct Node {
    local: RwLock<LocalState>,
    membership: Arc<Membership>,
    revoked: Revocations,
    /// The manager's server TLS configuration (swapped on rotation and renewal).
    server_tls: Option<Arc<RwLock<Arc<rustls::ServerConfig>>>>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    /// The last problem, shown as `Swarm.Error` in `/info`.
    error: RwLock<String>,
    /// This manager's etcd member, when it runs one.
    member: std::sync::Mutex<Option<etcd::Member>>,
    /// This manager's election.
    election: std::sync::Mutex<Option<Election>>,
    /// Its handle (managers).
    leadership: Option<Leadership>,
    /// The manager whose store feeds this node's relay (itself on managers; on a
    /// worker, the manager of its session).
    relay_source: RwLock<String>,
    /// A worker's kept-alive connection to the manager it publishes endpoints through
    /// (address, connection): one TLS handshake, not one per endpoint.
    endpoint_conn: tokio::sync::Mutex<Option<(String, net::Conn)>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(t) = self.tasks.lock() {
            for h in t.iter() {
                h.abort();
            }
        }
    }
}

impl Node {
    fn local(&self) -> LocalState {
        self.local
            .read()
            .map(|l| l.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    fn set_error(&self, e: impl Into<String>) {
        if let Ok(mut g) = self.error.write() {
            *g = e.into();
        }
    }

    fn spawn(&self, f: impl std::future::Future<Output = ()> + Send + 'static) {
        if let Ok(mut t) = self.tasks.lock() {
            t.push(tokio::spawn(f));
        }
    }

    /// Stops the node's work: its tasks, its leadership (resigned, so another
    /// manager takes over at once) and its etcd member.
    async fn shutdown(&self) {
        if let Ok(t) = self.tasks.lock() {
            for h in t.iter() {
                h.abort();
            }
        }
        let election = self.election.lock().ok().and_then(|mut e| e.take());
        if let Some(e) = election {
            let _ = tokio::time::timeout(Duration::from_secs(2), e.resign()).await;
        }
        let member = self.member.lock().ok().and_then(|mut m| m.take());
        if let Some(mut m) = member {
            let _ = tokio::task::spawn_blocking(move || m.stop()).await;
        }
    }
}

fn internal(what: &str) -> impl FnOnce(&dyn std::fmt::Display) -> CtlError + '_ {
    move |e| CtlError::internal(format!("{what}: {e}"))
}

fn store_err(e: store::SwarmStoreError) -> CtlError {
    match &e {
        store::SwarmStoreError::Store(netloom_store::StoreError::Conflict { .. }) => {
            CtlError::conflict("update out of sequence")
        }
        store::SwarmStoreError::NoQuorum { source } => {
            tracing::warn!(error = %crate::error::chain(source), "the managers' cluster store cannot be reached");
            CtlError::unavailable(ERR_NO_LEADER)
        }
        _ => CtlError::unavailable(format!(
            "swarm state unavailable: {}",
            crate::error::chain(&e)
        )),
    }
}

impl Swarm {
    /// Loads this node's swarm state and, when it is in a swarm, starts its part.
    pub async fn start(
        data_root: PathBuf,
        store: Arc<dyn Store>,
        cfg: SwarmConfig,
    ) -> anyhow::Result<Arc<Swarm>> {
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default();
        let s = Arc::new(Swarm {
            data_root,
            store: RwLock::new(SwarmStore::new(store.clone())),
            base: store,
            cfg,
            hostname,
            control: tokio::sync::Mutex::new(()),
            node: RwLock::new(None),
            relay: Arc::new(Relay::new(relay::DEFAULT_SUBSCRIPTIONS)),
            me: std::sync::OnceLock::new(),
            removals: std::sync::Mutex::new(Default::default()),
        });
        let _ = s.me.set(Arc::downgrade(&s));
        match state::load(&s.data_root) {
            Ok(Some(local)) => {
                let role = local.role;
                if let Err(e) = s.run_node(local, None, None, None).await {
                    tracing::error!(error = %e.message, "cannot resume swarm mode");
                } else {
                    tracing::info!(%role, "swarm mode resumed");
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "unreadable swarm state; this node stays out of the swarm")
            }
        }
        Ok(s)
    }

    /// Stops swarm mode's processes (the etcd member) as the daemon exits; the
    /// node stays in the swarm and resumes at the next start.
    pub async fn shutdown(&self) {
        if let Some(n) = self.stop_node() {
            n.shutdown().await;
        }
    }

    fn node(&self) -> Option<Arc<Node>> {
        self.node.read().ok().and_then(|n| n.clone())
    }

    /// The cluster store this node uses now.
    fn store(&self) -> SwarmStore {
        self.store
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    fn set_store(&self, s: SwarmStore) {
        if let Ok(mut g) = self.store.write() {
            *g = s;
        }
    }

    /// What this node receives of the cluster store by watch (see [`relay`]).
    #[allow(
        dead_code,
        reason = "the hook the overlay and services work use (issue 14)"
    )]
    pub fn relay(&self) -> Arc<Relay> {
        self.relay.clone()
    }

    /// The leadership of this manager's swarm (`None` on workers and outside a swarm).
    #[allow(
        dead_code,
        reason = "the hook the overlay and services work use (issue 14)"
    )]
    pub fn leadership(&self) -> Option<Leadership> {
        self.node().and_then(|n| n.leadership.clone())
    }

    /// `GET /swarm/relay`: this node's relay mirrors.
    pub fn relay_status(&self) -> Result<Value, CtlError> {
        let Some(n) = self.node() else {
            return Err(CtlError::unavailable(ERR_NOT_IN_SWARM));
        };
        let l = n.local();
        let source = if l.role == Role::Manager {
            l.node_id
        } else {
            n.relay_source.read().map(|s| s.clone()).unwrap_or_default()
        };
        Ok(json!({ "Source": source, "Prefixes": self.relay.status() }))
    }

    fn weak(&self) -> std::sync::Weak<Swarm> {
        self.me.get().cloned().unwrap_or_default()
    }

    /// The running manager, or Docker's error for a non-member or a worker.
    fn manager(&self) -> Result<Arc<Node>, CtlError> {
        match self.node() {
            None => Err(CtlError::unavailable(ERR_NOT_IN_SWARM)),
            Some(n) if n.local().role != Role::Manager => {
                Err(CtlError::unavailable(ERR_NOT_MANAGER))
            }
            Some(n) => Ok(n),
        }
    }

    /// `Swarm` header of `/_ping`: `inactive`, `active` (worker) or `active/manager`.
    pub fn ping_status(&self) -> &'static str {
        match self.node() {
            None => "inactive",
            Some(n) if n.local().role == Role::Manager => "active/manager",
            Some(_) => "active",
        }
    }

    /// The `Swarm` section of `/info`.
    pub async fn info(&self) -> Value {
        let Some(n) = self.node() else {
            return view::info_inactive();
        };
        let l = n.local();
        let error = n.error.read().map(|e| e.clone()).unwrap_or_default();
        let managers: Vec<Value> = l
            .managers
            .iter()
            .map(|p| json!({ "NodeID": p.node_id, "Addr": p.addr }))
            .collect();
        let no_quorum = matches!(
            n.leadership.as_ref().map(Leadership::state),
            Some(LeaderState::Unavailable { .. })
        );
        let error = if no_quorum {
            ERR_NO_LEADER.to_string()
        } else {
            error
        };
        let mut v = json!({
            "NodeID": l.node_id,
            "NodeAddr": l.advertise_addr,
            "LocalNodeState": "active",
            "ControlAvailable": l.role == Role::Manager,
            "Error": error,
            "RemoteManagers": managers,
        });
        let store = self.store();
        if l.role == Role::Manager
            && !no_quorum
            && let Ok(Some(c)) = store.cluster().await
        {
            let nodes = store.nodes().await.unwrap_or_default();
            v["Nodes"] = json!(nodes.len());
            v["Managers"] = json!(
                nodes
                    .iter()
                    .filter(|x| x.value.role == Role::Manager)
                    .count()
            );
            v["Cluster"] = view::cluster_info(&c.value, c.version, &data_path_of(&l));
        }
        v
    }

    /// Starts the node's runtime: membership (unless `membership` is given: a role
    /// change keeps it), the cluster store (and this manager's etcd member, unless
    /// `member` is already running), and the manager's server or the worker's
    /// session. `listener`: the manager's already bound socket (init).
    fn run_node<'a>(
        &'a self,
        local: LocalState,
        listener: Option<tokio::net::TcpListener>,
        member: Option<etcd::Member>,
        membership: Option<Arc<Membership>>,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), CtlError>> + Send + 'a>> {
        // Boxed with `Send` spelled out: a role change runs it again from a task it
        // started.
        Box::pin(self.run_node_inner(local, listener, member, membership))
    }

    async fn run_node_inner(
        &self,
        local: LocalState,
        listener: Option<tokio::net::TcpListener>,
        member: Option<etcd::Member>,
        membership: Option<Arc<Membership>>,
    ) -> Result<(), CtlError> {
        let m = match membership {
            Some(m) => m,
            None => {
                let key = state::unhex32(&local.gossip_key)
                    .ok_or_else(|| CtlError::internal("swarm state has no valid gossip key"))?;
                let adv_ip: std::net::IpAddr = local.advertise_addr.parse().map_err(|_| {
                    CtlError::internal("swarm state has no valid advertise address")
                })?;
                let bind = SocketAddr::from(([0, 0, 0, 0], membership::DEFAULT_PORT));
                let m = Membership::start(MembershipConfig {
                    node_id: local.node_id.clone(),
                    bind,
                    advertise: SocketAddr::new(adv_ip, membership::DEFAULT_PORT),
                    key,
                    cluster_size: 16,
                })
                .await
                .map_err(|e| CtlError::unavailable(crate::error::chain(&e)))?;
                Arc::new(m)
            }
        };
        for p in &local.gossip_seeds {
            if let Ok(a) = p.addr.parse() {
                m.announce(a);
            }
        }
        let mut local = local;
        let (store, member) = self.connect_store(&mut local, member).await?;
        self.set_store(store);
        let role = local.role;
        let election = (role == Role::Manager).then(|| {
            let w = self.weak();
            let fallback = self.store().raw().clone();
            Election::start(
                local.node_id.clone(),
                Arc::new(move || {
                    w.upgrade()
                        .map(|s| s.store().raw().clone())
                        .unwrap_or_else(|| fallback.clone())
                }),
            )
        });
        let mut node = Node {
            local: RwLock::new(local),
            membership: m,
            revoked: Revocations::default(),
            server_tls: None,
            tasks: std::sync::Mutex::new(Vec::new()),
            error: RwLock::new(String::new()),
            member: std::sync::Mutex::new(member),
            leadership: election.as_ref().map(Election::handle),
            election: std::sync::Mutex::new(election),
            relay_source: RwLock::new(String::new()),
            endpoint_conn: tokio::sync::Mutex::new(None),
        };
        if role == Role::Manager {
            self.prepare_manager(&mut node).await?;
        }
        let node = Arc::new(node);
        if let Ok(mut g) = self.node.write() {
            *g = Some(node.clone());
        }
        match role {
            Role::Manager => self.start_manager(&node, listener).await,
            Role::Worker => {
                let me = self.weak();
                node.spawn(worker::session_loop(me, Arc::downgrade(&node)));
                Ok(())
            }
        }
    }

    /// Stops the node's runtime and forgets it (state files are the caller's).
    fn stop_node(&self) -> Option<Arc<Node>> {
        self.node.write().ok().and_then(|mut g| g.take())
    }

    /// Saves a changed local state (and keeps it in memory).
    fn save_local(&self, node: &Node, f: impl FnOnce(&mut LocalState)) -> Result<(), CtlError> {
        let mut g = node
            .local
            .write()
            .map_err(|_| CtlError::internal("swarm state lock poisoned"))?;
        let mut next = g.clone();
        f(&mut next);
        state::save(&self.data_root, &next).map_err(|e| internal("save swarm state")(&e))?;
        *g = next;
        Ok(())
    }

    /// `POST /swarm/leave`.
    pub async fn leave(&self, force: bool) -> Result<(), CtlError> {
        let _g = self.control.lock().await;
        let Some(n) = self.node() else {
            return Err(CtlError::unavailable(ERR_NO_SWARM));
        };
        let l = n.local();
        let store = self.store();
        let mut last = true;
        if l.role == Role::Manager {
            let managers = store
                .nodes()
                .await
                .map(|ns| {
                    ns.iter()
                        .filter(|x| x.value.role == Role::Manager)
                        .map(|x| n.membership.is_up(&x.value.id) || x.value.id == l.node_id)
                        .collect::<Vec<bool>>()
                })
                .ok();
            let (total, up) = managers
                .as_ref()
                .map(|m| (m.len(), m.iter().filter(|u| **u).count()))
                .unwrap_or((1, 1));
            last = total <= 1;
            if !force {
                return Err(CtlError::unavailable(leave_refusal(last, total, up)));
            }
        }
        if l.role == Role::Manager && !last {
            // Hand the work over first: demote the own record (while this node can
            // still write), then give up the etcd member.
            if let Ok(Some(r)) = store.node(&l.node_id).await {
                let mut next = r.value.clone();
                next.role = Role::Worker;
                next.manager_addr = None;
                next.updated_at = std::time::SystemTime::now();
                if let Err(e) = store.write(None, &[(&next, Some(r.version))]).await {
                    tracing::warn!(error = %crate::error::chain(&e), "cannot demote this manager's node record");
                }
            }
            let election = n.election.lock().ok().and_then(|mut e| e.take());
            if let Some(e) = election {
                e.resign().await;
            }
            if let Err(e) = self.remove_manager_member(&l.node_id).await {
                tracing::warn!(error = %e.message, "cannot remove this manager's etcd member");
            }
        }
        let n = self.stop_node().unwrap_or(n);
        // Tell the others at once (they would see it down within seconds anyway).
        n.membership.leave().await;
        n.shutdown().await;
        drop(n);
        if l.role == Role::Manager && last && !matches!(l.store, state::StoreMode::Managed(_)) {
            store.clear().await.map_err(store_err)?;
        }
        self.set_store(SwarmStore::new(self.base.clone()));
        etcd::wipe(&ha::member_dir(&self.data_root))
            .map_err(|e| internal("remove the etcd member's data")(&e))?;
        state::clear(&self.data_root).map_err(|e| internal("remove swarm state")(&e))?;
        self.relay.clear();
        tracing::info!(node = %l.node_id, "left the swarm");
        Ok(())
    }

    /// Forgets the swarm after the managers removed this node.
    async fn removed(&self, node_id: &str) {
        let _g = self.control.lock().await;
        if self.node().is_some_and(|n| n.local().node_id == node_id) {
            if let Some(n) = self.stop_node() {
                n.shutdown().await;
            }
            self.set_store(SwarmStore::new(self.base.clone()));
            self.relay.clear();
            if let Err(e) = etcd::wipe(&ha::member_dir(&self.data_root)) {
                tracing::error!(error = %e, "cannot remove the etcd member's data");
            }
            if let Err(e) = state::clear(&self.data_root) {
                tracing::error!(error = %e, "cannot remove swarm state");
            }
            tracing::warn!(node = %node_id, "this node was removed from the swarm");
        }
    }
}

fn data_path_of(l: &LocalState) -> String {
    if l.data_path_addr.is_empty() {
        l.advertise_addr.clone()
    } else {
        l.data_path_addr.clone()
    }
}

/// Docker's refusals of `swarm leave` on a manager without `--force`.
fn leave_refusal(last: bool, total: usize, up: usize) -> String {
    let mut msg = String::from(
        "You are attempting to leave the swarm on a node that is participating as a manager. ",
    );
    if last {
        msg.push_str("Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message.");
        return msg;
    }
    // Docker's removingManagerCausesLossOfQuorum(reachable, unreachable).
    if up.saturating_sub(2) <= total - up.min(total) || up < 2 {
        msg.push_str(&format!(
            "Removing this node leaves {} managers out of {total}. Without a Raft quorum your swarm will be inaccessible. ",
            up.saturating_sub(1)
        ));
    }
    msg.push_str("The only way to restore a swarm that has lost consensus is to reinitialize it with `--force-new-cluster`. Use `--force` to suppress this message.");
    msg
}
