//! High availability: managers that share etcd.
//!
//! - **Where the state lives** ([`StoreMode`]): the single manager's embedded
//!   store; etcd members the managers run themselves (`swarm init --cluster-store
//!   etcd`, see `etcd.rs`); or an existing etcd cluster (`--cluster-store
//!   etcd://…`). Each manager talks to its own member only, so a dead manager costs
//!   the others nothing but a vote.
//! - **Members follow roles.** A manager that joins, or a worker that is promoted,
//!   is added to etcd as a learner by the manager that serves it (with a member
//!   certificate from the etcd CA for the key of the node's CSR), starts its member
//!   and has itself promoted to a voting member once it has caught up. Demote,
//!   leave and `node rm --force` remove the member first, refused by etcd when that
//!   would cost the quorum.
//! - **Role changes** stop the node's runtime and start it again in the new role,
//!   keeping its membership agent and its relay: a promoted worker learns its role
//!   from its session, a demoted manager from its own node record, which it
//!   watches (or from etcd, when its member was removed while it was down).

use std::net::IpAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use netloom_cluster::Role;
use netloom_cluster::proto::{EtcdMemberRequest, StoreJoin};
use netloom_store::{EtcdConfig, EtcdStore, Event, StoreError};

use super::etcd::{self, Member, MemberSpec};
use super::state::{
    self, ClusterRecord, ClusterStore, LocalState, ManagedEtcd, NodeRecord, StoreMode,
};
use super::store::{CLUSTER, NODES, SwarmStore};
use super::{ERR_EMBEDDED_ONE_MANAGER, Node, Swarm, internal, store_err};
use crate::error::CtlError;

/// Validity of an etcd member certificate (etcd reads it once, at start).
pub const MEMBER_CERT_VALIDITY: Duration = Duration::from_secs(5 * 365 * 24 * 3600);
/// How long etcd may refuse a reconfiguration as unsafe before we give up.
const RECONFIGURE_WITHIN: Duration = Duration::from_secs(15);
/// How long a new member may take to catch up before it is promoted.
const PROMOTE_WITHIN: Duration = Duration::from_secs(60);
/// Docker's message when a change would cost the managers their quorum.
pub const ERR_QUORUM: &str =
    "can't remove member from the raft: this would result in a loss of quorum";

/// The directory of this node's etcd member.
pub fn member_dir(data_root: &std::path::Path) -> std::path::PathBuf {
    state::dir(data_root).join("etcd")
}

fn etcd_err(store: &SwarmStore, e: StoreError) -> CtlError {
    if crate::error::chain(&e).contains("unhealthy cluster") {
        return CtlError::unavailable(
            "etcd refuses to change its membership while a member is not connected (etcd's strict reconfiguration check): retry once every manager is up",
        );
    }
    if let Some(m) = e.etcd_message() {
        if m.contains("not enough started members") {
            return CtlError::invalid(format!(
                "rpc error: code = FailedPrecondition desc = {ERR_QUORUM}"
            ));
        }
        if m.contains("too many learner") {
            return CtlError::unavailable(
                "another manager is joining the swarm right now: retry in a few seconds",
            );
        }
    }
    store_err(store.err(e))
}

impl Swarm {
    /// The spec of this node's member from its local state.
    pub(super) fn member_spec(
        &self,
        l: &LocalState,
        m: &ManagedEtcd,
    ) -> Result<MemberSpec, CtlError> {
        let ip: IpAddr = l
            .advertise_addr
            .parse()
            .map_err(|_| CtlError::internal("swarm state has no valid advertise address"))?;
        Ok(MemberSpec {
            name: l.node_id.clone(),
            dir: member_dir(&self.data_root),
            ip,
            client_port: m.client_port,
            peer_port: m.peer_port,
            initial_cluster: m.initial_cluster.clone(),
            initial_state: m.initial_state.clone(),
            cluster_token: m.cluster_token.clone(),
            ca_pem: m.ca_pem.clone(),
            cert_pem: m.cert.cert_pem.clone(),
            key_pem: m.cert.key_pem.clone(),
            binary: self.cfg.etcd_binary.clone(),
        })
    }

    /// Opens the store this node's role and mode use (starting its etcd member when
    /// it runs one and `member` is not already running). Does not wait for the
    /// store to answer: a manager comes up without quorum too.
    pub(super) async fn connect_store(
        &self,
        l: &mut LocalState,
        member: Option<Member>,
    ) -> Result<(SwarmStore, Option<Member>), CtlError> {
        if l.role != Role::Manager {
            return Ok((SwarmStore::new(self.base.clone()), None));
        }
        let deadline = self.cfg.store_deadline;
        match &l.store {
            StoreMode::Embedded => Ok((SwarmStore::new(self.base.clone()), None)),
            StoreMode::External { url } => {
                let cfg = EtcdConfig::parse(url)
                    .map_err(|e| CtlError::invalid(e.to_string()))?
                    .with_deadline(deadline);
                let s = EtcdStore::open(cfg)
                    .await
                    .map_err(|e| CtlError::unavailable(crate::error::chain(&e)))?;
                Ok((SwarmStore::etcd(Arc::new(s)), None))
            }
            StoreMode::Managed(m) => {
                let spec = self.member_spec(l, m)?;
                let member = match member {
                    Some(x) => x,
                    None => Member::start(spec.clone())
                        .map_err(|e| internal("start the etcd member")(&e))?,
                };
                // A learner serves no clients: have it promoted first (it catches up
                // with the log in a second or two), then use it.
                if let Some(id) = m.learner {
                    if let Err(e) = promote(m, id).await {
                        // Do not leave a learner behind: etcd takes one at a time.
                        forget_learner(m, id).await;
                        return Err(e);
                    }
                    if let StoreMode::Managed(mm) = &mut l.store {
                        mm.learner = None;
                    }
                    state::save(&self.data_root, l)
                        .map_err(|e| internal("save swarm state")(&e))?;
                }
                let s = EtcdStore::open(spec.client_config().with_deadline(deadline))
                    .await
                    .map_err(|e| CtlError::unavailable(crate::error::chain(&e)))?;
                Ok((SwarmStore::etcd(Arc::new(s)), Some(member)))
            }
        }
    }

    /// Server side of a manager join or promotion: where the new manager finds the
    /// cluster store; on managed etcd, adds it as a learner and signs its member
    /// certificate.
    pub(super) async fn add_manager_member(
        &self,
        c: &ClusterRecord,
        node_id: &str,
        ip: IpAddr,
        req: Option<&EtcdMemberRequest>,
    ) -> Result<StoreJoin, CtlError> {
        match &c.store {
            ClusterStore::Embedded => Err(CtlError::invalid(ERR_EMBEDDED_ONE_MANAGER)),
            ClusterStore::External { url } => Ok(StoreJoin::External { url: url.clone() }),
            ClusterStore::Managed => {
                let req = req.ok_or_else(|| {
                    CtlError::invalid(
                        "this swarm's managers run etcd members: the new manager must send a certificate request for its member",
                    )
                })?;
                let ca = c
                    .etcd_ca
                    .as_ref()
                    .ok_or_else(|| CtlError::internal("the cluster record has no etcd CA"))?;
                let store = self.store();
                let admin = store.admin().ok_or_else(|| {
                    CtlError::unavailable("this manager does not reach the managers' etcd")
                })?;
                let peer = etcd::url(ip, req.peer_port);
                let members = admin.members().await.map_err(|e| etcd_err(&store, e))?;
                // What an earlier, unfinished attempt of the same node left behind.
                for m in members
                    .iter()
                    .filter(|m| m.name == node_id || m.peer_urls.contains(&peer))
                {
                    tracing::info!(member = %m.name, id = m.id, "removing a stale etcd member of the joining manager");
                    admin
                        .remove_member(m.id)
                        .await
                        .map_err(|e| etcd_err(&store, e))?;
                }
                let cert = ca
                    .issue_etcd_member(
                        &req.csr,
                        node_id,
                        &[ip],
                        SystemTime::now() + MEMBER_CERT_VALIDITY,
                    )
                    .map_err(|e| {
                        CtlError::invalid(format!(
                            "bad certificate signing request for the etcd member: {}",
                            crate::error::chain(&e)
                        ))
                    })?;
                // etcd refuses reconfigurations until its leader has been connected
                // to every voter for a few seconds ("unhealthy cluster"), as right
                // after the previous manager joined: retry for a while.
                let started = Instant::now();
                let (added, all) = loop {
                    match admin.add_learner(&peer).await {
                        Ok(x) => break x,
                        Err(e)
                            if crate::error::chain(&e).contains("unhealthy cluster")
                                && started.elapsed() < RECONFIGURE_WITHIN =>
                        {
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                        Err(e) => return Err(etcd_err(&store, e)),
                    }
                };
                let initial_cluster = all
                    .iter()
                    .flat_map(|m| {
                        let name = if m.id == added.id {
                            node_id.to_string()
                        } else if m.name.is_empty() {
                            format!("m{:x}", m.id)
                        } else {
                            m.name.clone()
                        };
                        m.peer_urls.iter().map(move |u| format!("{name}={u}"))
                    })
                    .collect::<Vec<_>>()
                    .join(",");
                let client_urls = all
                    .iter()
                    .filter(|m| !m.is_learner)
                    .flat_map(|m| m.client_urls.clone())
                    .collect();
                tracing::info!(node = %node_id, member = added.id, %peer, "added the new manager's etcd member as a learner");
                Ok(StoreJoin::Managed {
                    etcd_ca: ca.cert_pem.clone(),
                    cert,
                    member_id: added.id,
                    initial_cluster,
                    cluster_token: c.id.clone(),
                    client_urls,
                })
            }
        }
    }

    /// Removes `node_id`'s etcd member, if the managers run members and it has one.
    pub(super) async fn remove_manager_member(&self, node_id: &str) -> Result<(), CtlError> {
        let store = self.store();
        let Some(admin) = store.admin() else {
            return Ok(());
        };
        let c = self.cluster().await?;
        if c.value.store != ClusterStore::Managed {
            return Ok(());
        }
        let members = admin.members().await.map_err(|e| etcd_err(&store, e))?;
        for m in members.iter().filter(|m| m.name == node_id) {
            let started = Instant::now();
            let result = loop {
                match admin.remove_member(m.id).await {
                    Err(e)
                        if crate::error::chain(&e).contains("unhealthy cluster")
                            && started.elapsed() < RECONFIGURE_WITHIN =>
                    {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    r => break r,
                }
            };
            match result {
                Ok(()) => {
                    tracing::info!(node = %node_id, member = m.id, "removed the etcd member of a manager")
                }
                Err(e)
                    if e.etcd_message()
                        .is_some_and(|x| x.contains("member not found")) => {}
                Err(e) => return Err(etcd_err(&store, e)),
            }
        }
        Ok(())
    }

    /// Node side: the local state of a node that becomes a manager with `join`.
    pub(super) fn manager_state(
        &self,
        mut l: LocalState,
        join: &StoreJoin,
        member_key: &str,
    ) -> LocalState {
        l.role = Role::Manager;
        l.store = match join {
            StoreJoin::External { url } => StoreMode::External { url: url.clone() },
            StoreJoin::Managed {
                etcd_ca,
                cert,
                member_id,
                initial_cluster,
                cluster_token,
                client_urls,
            } => StoreMode::Managed(ManagedEtcd {
                client_port: self.cfg.etcd_client_port,
                peer_port: self.cfg.etcd_peer_port,
                ca_pem: etcd_ca.clone(),
                cert: netloom_cluster::NodeCert {
                    cert_pem: cert.clone(),
                    key_pem: member_key.to_string(),
                },
                initial_cluster: initial_cluster.clone(),
                initial_state: "existing".into(),
                cluster_token: cluster_token.clone(),
                learner: Some(*member_id),
                promote_via: client_urls.clone(),
            }),
        };
        l
    }

    /// What this node sends to become a manager: a CSR for its member's key (which
    /// it keeps) and its member's ports.
    pub(super) fn member_request(&self) -> Result<(EtcdMemberRequest, String), CtlError> {
        let (csr, key) = netloom_cluster::ca::new_csr().map_err(|e| internal("make a key")(&e))?;
        Ok((
            EtcdMemberRequest {
                csr,
                client_port: self.cfg.etcd_client_port,
                peer_port: self.cfg.etcd_peer_port,
            },
            key,
        ))
    }

    /// Stops this node's runtime and starts it again with `local` (a role change).
    pub(super) async fn transition(self: Arc<Self>, mut local: LocalState, why: &'static str) {
        let _g = self.control.lock().await;
        match self.node().map(|n| n.local()) {
            // Left, or joined another swarm, meanwhile; or already in that role.
            Some(cur) if cur.node_id == local.node_id && cur.role != local.role => {}
            _ => return,
        }
        let Some(old) = self.stop_node() else { return };
        let membership = old.membership.clone();
        old.shutdown().await;
        drop(old);
        if local.role == Role::Worker {
            local.store = StoreMode::Embedded;
            if let Err(e) = etcd::wipe(&member_dir(&self.data_root)) {
                tracing::warn!(error = %e, "cannot remove the etcd member's data");
            }
        }
        if let Err(e) = state::save(&self.data_root, &local) {
            tracing::error!(error = %e, "cannot save swarm state");
        }
        let role = local.role;
        match self.run_node(local, None, None, Some(membership)).await {
            Ok(()) => tracing::info!(%role, "{why}: this node is a {role} now"),
            Err(e) => tracing::error!(error = %e.message, "{why}: cannot start the new role"),
        }
    }

    /// The manager's answer to a change of its own node record.
    async fn own_record(self: &Arc<Self>, n: &Arc<Node>, rec: Option<NodeRecord>, version: u64) {
        let l = n.local();
        match rec {
            None => {
                let me = self.clone();
                let id = l.node_id.clone();
                tokio::spawn(async move { me.removed(&id).await });
            }
            Some(r) if r.role == Role::Worker => {
                let mut next = l.clone();
                next.role = Role::Worker;
                if let Ok((managers, _)) = self.peers().await {
                    next.managers = managers
                        .into_iter()
                        .filter(|p| p.node_id != l.node_id)
                        .collect();
                }
                let me = self.clone();
                tokio::spawn(me.transition(next, "demoted"));
            }
            Some(mut r) => {
                let want = manager_addr(&l);
                if r.manager_addr.as_deref() != Some(want.as_str()) {
                    r.manager_addr = Some(want);
                    r.updated_at = SystemTime::now();
                    let _ = self.store().write(None, &[(&r, Some(version))]).await;
                }
            }
        }
    }

    /// The manager's answer to a change of the cluster record: revocations and the
    /// trusted roots of its server.
    fn cluster_record(&self, n: &Node, c: &ClusterRecord) {
        n.revoked.set(c.removed.iter().cloned());
        let l = n.local();
        if l.trusted_cas != c.trusted_cas {
            if let Err(e) = self.rebuild_server_tls(n, &c.trusted_cas, None) {
                tracing::warn!(error = %e.message, "cannot rebuild the cluster TLS configuration");
            }
            let _ = self.save_local(n, |st| st.trusted_cas = c.trusted_cas.clone());
        }
    }
}

/// This manager's management address (`IP:PORT`).
pub(super) fn manager_addr(l: &LocalState) -> String {
    let port = l
        .listen_addr
        .parse::<std::net::SocketAddr>()
        .map(|a| a.port())
        .unwrap_or(super::addr::DEFAULT_PORT);
    match l.advertise_addr.parse::<IpAddr>() {
        Ok(ip) => std::net::SocketAddr::new(ip, port).to_string(),
        Err(_) => format!("{}:{port}", l.advertise_addr),
    }
}

/// Node side: removes learner `id` that could not be promoted (best effort).
async fn forget_learner(m: &ManagedEtcd, id: u64) {
    let cfg = etcd::client_config(
        m.promote_via.clone(),
        &m.ca_pem,
        &m.cert.cert_pem,
        &m.cert.key_pem,
    );
    if let Ok(admin) = EtcdStore::open(cfg).await
        && let Err(e) = admin.remove_member(id).await
    {
        tracing::warn!(member = id, error = %e, "cannot remove the learner that was not promoted");
    }
}

/// Node side: has learner `id` promoted to a voting member, through the voters.
async fn promote(m: &ManagedEtcd, id: u64) -> Result<(), CtlError> {
    let cfg = etcd::client_config(
        m.promote_via.clone(),
        &m.ca_pem,
        &m.cert.cert_pem,
        &m.cert.key_pem,
    );
    let admin = EtcdStore::open(cfg)
        .await
        .map_err(|e| CtlError::unavailable(crate::error::chain(&e)))?;
    let started = Instant::now();
    loop {
        match admin.promote_member(id).await {
            Ok(()) => break,
            Err(e) => {
                let msg = e.etcd_message().unwrap_or_default();
                if msg.contains("can only promote a learner member") && !msg.contains("in sync") {
                    break; // promoted already
                }
                if msg.contains("member not found") {
                    return Err(CtlError::unavailable(
                        "this node's etcd member was removed from the managers' etcd before it could vote: demote it and promote it again",
                    ));
                }
                if started.elapsed() > PROMOTE_WITHIN {
                    return Err(CtlError::unavailable(format!(
                        "this node's etcd member did not catch up within {}s: {}",
                        PROMOTE_WITHIN.as_secs(),
                        crate::error::chain(&e)
                    )));
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }
    tracing::info!(
        member = id,
        "this node's etcd member is a voting member now"
    );
    Ok(())
}

/// The manager's watch of the swarm's records: its own node record (role changes,
/// removal, its management address) and the cluster record (revocations, roots).
pub(super) async fn watch_records(swarm: Weak<Swarm>, node: Weak<Node>) {
    loop {
        let (Some(s), Some(n)) = (swarm.upgrade(), node.upgrade()) else {
            return;
        };
        let store = s.store();
        let me = format!("{NODES}{}", n.local().node_id);
        let listing = match store.raw().list("swarm/").await {
            Ok(l) => l,
            Err(_) => {
                drop((s, n));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut mine = None;
        for (k, v) in &listing.items {
            if k == CLUSTER
                && let Ok(c) = v.decode_json::<ClusterRecord>(k)
            {
                s.cluster_record(&n, &c.value);
            }
            if *k == me {
                mine = Some(v.clone());
            }
        }
        // (No record yet: the manager that admits this node has not written it.)
        if let Some(v) = mine {
            match v.decode_json::<NodeRecord>(&me) {
                Ok(r) => s.own_record(&n, Some(r.value), r.version).await,
                Err(e) => tracing::warn!(error = %e, "unreadable node record"),
            }
        }
        let mut w = match store.raw().watch("swarm/", listing.revision).await {
            Ok(w) => w,
            Err(_) => continue,
        };
        drop((s, n));
        loop {
            let ev = w.recv().await;
            let (Some(s), Some(n)) = (swarm.upgrade(), node.upgrade()) else {
                return;
            };
            match ev {
                Ok(Event::Put {
                    key,
                    value,
                    revision,
                }) if key == me => {
                    if let Ok(r) = serde_json::from_slice::<NodeRecord>(&value) {
                        s.own_record(&n, Some(r), revision).await;
                    }
                }
                Ok(Event::Delete { key, .. }) if key == me => {
                    s.own_record(&n, None, 0).await;
                }
                Ok(Event::Put { key, value, .. }) if key == CLUSTER => {
                    if let Ok(c) = serde_json::from_slice::<ClusterRecord>(&value) {
                        s.cluster_record(&n, &c);
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
}

/// A manager whose member etcd reports removed (demoted while it was down) becomes
/// a worker; its session then renews its certificate for that role.
pub(super) async fn on_member_removed(swarm: Weak<Swarm>, node: Weak<Node>) {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Some(n) = node.upgrade() else { return };
        let removed = n
            .member
            .lock()
            .map(|m| m.as_ref().is_some_and(Member::is_removed))
            .unwrap_or(false);
        if !removed {
            continue;
        }
        let Some(s) = swarm.upgrade() else { return };
        let mut next = n.local();
        next.role = Role::Worker;
        next.managers.retain(|p| p.node_id != next.node_id);
        drop(n);
        tracing::warn!(
            "this manager's etcd member was removed from the cluster: continuing as a worker"
        );
        // Detached: the transition stops this node's tasks, this one among them.
        tokio::spawn(s.transition(next, "etcd member removed"));
        return;
    }
}
