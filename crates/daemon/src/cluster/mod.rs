//! Swarm mode in the daemon: this node's place in a cluster (none, worker or
//! manager), the manager's cluster API on 2377 (`server.rs`, `manager.rs`), the
//! worker's session with a manager (`worker.rs`) and SWIM membership on 7946.
//!
//! The security, token and membership machinery lives in `netloom-cluster`; the
//! records in the cluster store (`store.rs`). The API layer (`api/swarm.rs`) only
//! translates Docker's requests into the calls below. `docs/swarm.md` describes the
//! protocol between nodes.

mod addr;
mod certs;
mod manager;
mod net;
mod nodes;
mod server;
mod state;
mod store;
mod view;
mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use netloom_cluster::Role;
use netloom_cluster::membership::{self, Membership, MembershipConfig};
use netloom_cluster::tls::Revocations;
use netloom_store::Store;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

pub use manager::{InitRequest, SwarmUpdateFlags};
pub use nodes::{NodeFilter, NodeSpecUpdate};
pub use worker::JoinRequest;

use crate::error::CtlError;
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
pub const ERR_EMBEDDED_ONE_MANAGER: &str = "this swarm keeps its state in the manager's embedded store, which only one manager can use: a second manager needs a shared cluster store (run the managers with --cluster-store etcd)";

/// Swarm mode of this daemon.
pub struct Swarm {
    data_root: PathBuf,
    store: SwarmStore,
    hostname: String,
    /// Serializes init, join, leave and the manager's writes.
    control: tokio::sync::Mutex<()>,
    node: RwLock<Option<Arc<Node>>>,
    /// Set once at start: the handle the background tasks reach the agent through.
    me: std::sync::OnceLock<std::sync::Weak<Swarm>>,
}

impl std::fmt::Debug for Swarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Swarm").finish_non_exhaustive()
    }
}

/// A running swarm node (this daemon, while it is in a swarm).
pub(crate) struct Node {
    local: RwLock<LocalState>,
    membership: Membership,
    revoked: Revocations,
    /// The manager's server TLS configuration (swapped on rotation and renewal).
    server_tls: Option<Arc<RwLock<Arc<rustls::ServerConfig>>>>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    /// The last problem, shown as `Swarm.Error` in `/info`.
    error: RwLock<String>,
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
}

fn internal(what: &str) -> impl FnOnce(&dyn std::fmt::Display) -> CtlError + '_ {
    move |e| CtlError::internal(format!("{what}: {e}"))
}

fn store_err(e: store::SwarmStoreError) -> CtlError {
    match &e {
        store::SwarmStoreError::Store(netloom_store::StoreError::Conflict { .. }) => {
            CtlError::conflict("update out of sequence")
        }
        _ => CtlError::unavailable(format!(
            "swarm state unavailable: {}",
            crate::error::chain(&e)
        )),
    }
}

impl Swarm {
    /// Loads this node's swarm state and, when it is in a swarm, starts its part.
    pub async fn start(data_root: PathBuf, store: Arc<dyn Store>) -> anyhow::Result<Arc<Swarm>> {
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default();
        let s = Arc::new(Swarm {
            data_root,
            store: SwarmStore::new(store),
            hostname,
            control: tokio::sync::Mutex::new(()),
            node: RwLock::new(None),
            me: std::sync::OnceLock::new(),
        });
        let _ = s.me.set(Arc::downgrade(&s));
        match state::load(&s.data_root) {
            Ok(Some(local)) => {
                let role = local.role;
                if let Err(e) = s.run_node(local, None).await {
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

    fn node(&self) -> Option<Arc<Node>> {
        self.node.read().ok().and_then(|n| n.clone())
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
        let mut v = json!({
            "NodeID": l.node_id,
            "NodeAddr": l.advertise_addr,
            "LocalNodeState": "active",
            "ControlAvailable": l.role == Role::Manager,
            "Error": error,
            "RemoteManagers": managers,
        });
        if l.role == Role::Manager
            && let Ok(Some(c)) = self.store.cluster().await
        {
            let nodes = self.store.nodes().await.unwrap_or_default();
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

    /// Starts the node's runtime: membership, and the manager's server or the
    /// worker's session. `listener`: the manager's already bound socket (init).
    async fn run_node(
        &self,
        local: LocalState,
        listener: Option<tokio::net::TcpListener>,
    ) -> Result<(), CtlError> {
        let key = state::unhex32(&local.gossip_key)
            .ok_or_else(|| CtlError::internal("swarm state has no valid gossip key"))?;
        let adv_ip: std::net::IpAddr = local
            .advertise_addr
            .parse()
            .map_err(|_| CtlError::internal("swarm state has no valid advertise address"))?;
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
        for p in &local.gossip_seeds {
            if let Ok(a) = p.addr.parse() {
                m.announce(a);
            }
        }
        let role = local.role;
        let mut node = Node {
            local: RwLock::new(local),
            membership: m,
            revoked: Revocations::default(),
            server_tls: None,
            tasks: std::sync::Mutex::new(Vec::new()),
            error: RwLock::new(String::new()),
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
        if l.role == Role::Manager {
            let managers = self
                .store
                .nodes()
                .await
                .map(|ns| ns.iter().filter(|x| x.value.role == Role::Manager).count())
                .unwrap_or(1);
            if managers <= 1 && !force {
                return Err(CtlError::unavailable(
                    "You are attempting to leave the swarm on a node that is participating as a manager. Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message.",
                ));
            }
        }
        let n = self.stop_node().unwrap_or(n);
        // Tell the others at once (they would see it down within seconds anyway).
        n.membership.leave().await;
        drop(n);
        if l.role == Role::Manager {
            self.store.clear().await.map_err(store_err)?;
        }
        state::clear(&self.data_root).map_err(|e| internal("remove swarm state")(&e))?;
        tracing::info!(node = %l.node_id, "left the swarm");
        Ok(())
    }

    /// Forgets the swarm after the managers removed this node.
    async fn removed(&self, node_id: &str) {
        let _g = self.control.lock().await;
        if self.node().is_some_and(|n| n.local().node_id == node_id) {
            self.stop_node();
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
