//! The manager: the cluster's records, `swarm update`, and the server side of the
//! cluster protocol (join, sessions, renewal, root rotation). `swarm init` is in
//! `init.rs`, the node API in `nodes.rs`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use netloom_cluster::ca::MIN_NODE_CERT_EXPIRY;
use netloom_cluster::proto::{
    CaResponse, JoinRequest as WireJoin, JoinResponse, Peer, RenewRequest, RenewResponse,
    SessionRequest, SessionResponse, SessionUpdate,
};
use netloom_cluster::{JoinToken, Role, RootCa, new_id, tls};
use serde_json::{Value, json};

use super::state::{ClusterRecord, NodeRecord, StoreMode, hex};
use super::store::Versioned;
use super::{Node, Swarm, addr, ha, internal, relay, store_err, view};
use crate::error::CtlError;

/// Seconds between a worker's heartbeats (Docker's dispatcher default: 5 s).
const HEARTBEAT_SECS: u64 = 5;

/// `POST /swarm/update` query flags.
#[derive(Debug, Default)]
pub struct SwarmUpdateFlags {
    /// `rotateWorkerToken`.
    pub rotate_worker_token: bool,
    /// `rotateManagerToken`.
    pub rotate_manager_token: bool,
}

pub(super) fn availability(s: &str) -> Result<String, CtlError> {
    match s {
        "" => Ok("active".into()),
        "active" | "pause" | "drain" => Ok(s.into()),
        _ => Err(CtlError::invalid(format!(
            "invalid Availability: {s:?} (use active, pause or drain)"
        ))),
    }
}

pub(super) fn secret() -> String {
    // A token's secret: 128 random bits in base 36 (the digest part is the CA's).
    JoinToken::generate("").secret
}

/// Checks a spec from the client against what netloom implements, merging it over
/// `base`. `init`: zero values mean "default" (Docker's merge at init).
pub(super) fn merge_spec(base: &Value, given: &Value, init: bool) -> Result<Value, CtlError> {
    let mut out = base.clone();
    let Some(g) = given.as_object() else {
        return Ok(out);
    };
    let name = g.get("Name").and_then(Value::as_str).unwrap_or("");
    if !name.is_empty() && name != "default" {
        return Err(CtlError::invalid(r#"swarm spec must be named "default""#));
    }
    if let Some(l) = g.get("Labels").filter(|l| !l.is_null()) {
        out["Labels"] = l.clone();
    }
    fn nz(v: Option<&Value>) -> Option<&Value> {
        v.filter(|x| !x.is_null() && x.as_u64() != Some(0) && x.as_i64() != Some(0))
    }
    if let Some(v) = nz(g
        .get("Orchestration")
        .and_then(|o| o.get("TaskHistoryRetentionLimit")))
    {
        out["Orchestration"]["TaskHistoryRetentionLimit"] = v.clone();
    }
    if let Some(v) = nz(g.get("Dispatcher").and_then(|o| o.get("HeartbeatPeriod"))) {
        out["Dispatcher"]["HeartbeatPeriod"] = v.clone();
    }
    if let Some(raft) = g.get("Raft").and_then(Value::as_object) {
        for (k, v) in raft {
            let cur = &base["Raft"][k];
            let zero = v.as_u64() == Some(0) || v.is_null();
            if v != cur && !(init && zero) {
                return Err(CtlError::invalid(format!(
                    "netloom keeps no Raft log: Raft.{k} cannot be changed (--snapshot-interval, --max-snapshots and the raft ticks do not apply)"
                )));
            }
        }
    }
    if let Some(ca) = g.get("CAConfig").and_then(Value::as_object) {
        if ca
            .get("ExternalCAs")
            .is_some_and(|v| v.as_array().is_some_and(|a| !a.is_empty()))
        {
            return Err(CtlError::invalid(
                "netloom does not implement external CAs (--external-ca): the swarm signs its own certificates",
            ));
        }
        for k in ["SigningCACert", "SigningCAKey"] {
            if ca
                .get(k)
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
            {
                return Err(CtlError::invalid(
                    "netloom does not implement a given root CA (--ca-cert/--ca-key): use docker swarm ca --rotate to make a new one",
                ));
            }
        }
        if let Some(v) = nz(ca.get("NodeCertExpiry")) {
            let ns = v.as_u64().unwrap_or(0);
            if Duration::from_nanos(ns) < MIN_NODE_CERT_EXPIRY {
                return Err(CtlError::invalid(
                    "minimum certificate expiry time is 1h0m0s: give a longer --cert-expiry",
                ));
            }
            out["CAConfig"]["NodeCertExpiry"] = json!(ns);
        }
        if let Some(v) = nz(ca.get("ForceRotate")) {
            out["CAConfig"]["ForceRotate"] = v.clone();
        }
    }
    if g.get("EncryptionConfig")
        .and_then(|e| e.get("AutoLockManagers"))
        .and_then(Value::as_bool)
        == Some(true)
    {
        return Err(CtlError::not_implemented(
            "netloom does not implement autolock (--autolock): managers' keys are not encrypted at rest",
        ));
    }
    if g.get("TaskDefaults")
        .and_then(|t| t.get("LogDriver"))
        .is_some_and(|l| !l.is_null())
    {
        return Err(CtlError::not_implemented(
            "netloom does not implement task defaults (--log-driver for swarm tasks)",
        ));
    }
    Ok(out)
}

impl Swarm {
    /// Builds the manager's TLS server configuration (before the node is shared),
    /// from the cluster record when the store answers, else from the local state
    /// (a manager that starts while the others are down; its watch of the cluster
    /// record brings the revocations once the store answers).
    pub(super) async fn prepare_manager(&self, node: &mut Node) -> Result<(), CtlError> {
        let l = node.local();
        let read = tokio::time::timeout(Duration::from_secs(2), self.store().cluster()).await;
        let trusted = match read {
            Ok(Ok(Some(c))) => {
                node.revoked.set(c.value.removed.iter().cloned());
                c.value.trusted_cas
            }
            _ => l.trusted_cas.clone(),
        };
        let cfg = tls::server_config(&trusted, &l.cert, node.revoked.clone())
            .map_err(|e| internal("build the cluster TLS configuration")(&e))?;
        node.server_tls = Some(Arc::new(RwLock::new(cfg)));
        Ok(())
    }

    /// Starts the manager's listener and maintenance.
    pub(super) async fn start_manager(
        &self,
        node: &Arc<Node>,
        listener: Option<tokio::net::TcpListener>,
    ) -> Result<(), CtlError> {
        let l = node.local();
        let listener = match listener {
            Some(x) => x,
            None => {
                let a: SocketAddr = l
                    .listen_addr
                    .parse()
                    .map_err(|_| CtlError::internal("swarm state has no valid listen address"))?;
                tokio::net::TcpListener::bind(a).await.map_err(|e| {
                    CtlError::unavailable(format!(
                        "failed to listen on remote API address {a}: {e}"
                    ))
                })?
            }
        };
        let Some(cfg) = node.server_tls.clone() else {
            return Err(CtlError::internal("manager without TLS configuration"));
        };
        node.spawn(super::server::serve(
            listener,
            cfg,
            self.weak(),
            Arc::downgrade(node),
        ));
        node.spawn(super::certs::maintenance(self.weak(), Arc::downgrade(node)));
        node.spawn(ha::watch_records(self.weak(), Arc::downgrade(node)));
        if let Some(l) = &node.leadership {
            let (w, nw) = (self.weak(), Arc::downgrade(node));
            let h =
                l.spawn_while_leading(move |term| super::certs::lead(w.clone(), nw.clone(), term));
            node.spawn(async move {
                // Abort the leader's work with the node's other tasks.
                struct Abort(tokio::task::JoinHandle<()>);
                impl Drop for Abort {
                    fn drop(&mut self) {
                        self.0.abort();
                    }
                }
                let _a = Abort(h);
                std::future::pending::<()>().await;
            });
        }
        let w = self.weak();
        node.spawn(relay::feed(self.relay.clone(), move || {
            w.upgrade().map(|s| s.store())
        }));
        if let StoreMode::Managed(_) = &l.store {
            node.spawn(ha::on_member_removed(self.weak(), Arc::downgrade(node)));
        }
        Ok(())
    }

    pub(super) async fn cluster(&self) -> Result<Versioned<ClusterRecord>, CtlError> {
        self.store()
            .cluster()
            .await
            .map_err(store_err)?
            .ok_or_else(|| CtlError::unavailable("this manager's store holds no swarm"))
    }

    /// `GET /swarm`.
    pub async fn inspect(&self) -> Result<Value, CtlError> {
        let n = self.manager()?;
        let c = self.cluster().await?;
        Ok(view::swarm(
            &c.value,
            c.version,
            &super::data_path_of(&n.local()),
        ))
    }

    /// `POST /swarm/update`.
    pub async fn update(
        &self,
        version: u64,
        spec: Value,
        flags: SwarmUpdateFlags,
    ) -> Result<(), CtlError> {
        let node = self.manager()?;
        let _g = self.control.lock().await;
        let c = self.cluster().await?;
        if c.version != version {
            return Err(CtlError::conflict("update out of sequence"));
        }
        let mut next = c.value.clone();
        next.spec = merge_spec(&c.value.spec, &spec, false)?;
        if flags.rotate_worker_token {
            next.worker_secret = secret();
        }
        if flags.rotate_manager_token {
            next.manager_secret = secret();
        }
        let old_force = c
            .value
            .spec
            .pointer("/CAConfig/ForceRotate")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let new_force = next
            .spec
            .pointer("/CAConfig/ForceRotate")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let rotate = new_force != old_force;
        if rotate {
            let new = RootCa::generate().map_err(|e| internal("create the new root CA")(&e))?;
            // Both roots are trusted until every node has a certificate of the new one.
            let old = next.signing_ca.cert_pem.clone();
            next.trusted_cas = vec![old, new.cert_pem.clone()];
            next.signing_ca = new;
            next.rotation_in_progress = true;
        }
        next.updated_at = SystemTime::now();
        self.store()
            .write(Some((&next, Some(c.version))), &[])
            .await
            .map_err(store_err)?;
        if rotate {
            tracing::info!("root CA rotation started");
            self.rebuild_server_tls(&node, &next.trusted_cas, None)?;
        }
        Ok(())
    }

    pub(super) fn rebuild_server_tls(
        &self,
        node: &Node,
        trusted: &[String],
        cert: Option<&netloom_cluster::NodeCert>,
    ) -> Result<(), CtlError> {
        let l = node.local();
        let cert = cert.unwrap_or(&l.cert);
        let cfg = tls::server_config(trusted, cert, node.revoked.clone())
            .map_err(|e| internal("build the cluster TLS configuration")(&e))?;
        if let Some(slot) = &node.server_tls
            && let Ok(mut g) = slot.write()
        {
            *g = cfg;
        }
        Ok(())
    }

    /// `GET /ca` of the cluster protocol.
    pub(super) async fn serve_ca(&self) -> Result<CaResponse, CtlError> {
        let c = self.cluster().await?;
        Ok(CaResponse {
            signing_ca: c.value.signing_ca.cert_pem.clone(),
            trusted_cas: c.value.trusted_cas.clone(),
        })
    }

    pub(super) async fn peers(&self) -> Result<(Vec<Peer>, Vec<Peer>), CtlError> {
        let nodes = self.store().nodes().await.map_err(store_err)?;
        let managers = nodes
            .iter()
            .filter_map(|n| {
                n.value.manager_addr.as_ref().map(|a| Peer {
                    node_id: n.value.id.clone(),
                    addr: a.clone(),
                })
            })
            .collect();
        let gossip = nodes
            .iter()
            .map(|n| Peer {
                node_id: n.value.id.clone(),
                addr: n.value.gossip_addr.clone(),
            })
            .collect();
        Ok((managers, gossip))
    }

    /// `POST /join` of the cluster protocol: checks the token and signs the CSR.
    pub(super) async fn serve_join(
        &self,
        req: WireJoin,
        peer: IpAddr,
    ) -> Result<JoinResponse, CtlError> {
        let _g = self.control.lock().await;
        let c = self.cluster().await?;
        let cluster = &c.value;
        let token =
            JoinToken::parse(&req.token).map_err(|_| CtlError::invalid("invalid join token"))?;
        if token.check_ca(&cluster.signing_ca.cert_pem).is_err() {
            return Err(CtlError::invalid(
                "the join token names another root CA than this swarm's (it was rotated, or the token is from another swarm): get a current token with docker swarm join-token worker|manager",
            ));
        }
        let as_token = |s: &str| JoinToken {
            digest: token.digest,
            secret: s.to_string(),
        };
        let role = if token.secret_matches(&as_token(&cluster.worker_secret)) {
            Role::Worker
        } else if token.secret_matches(&as_token(&cluster.manager_secret)) {
            Role::Manager
        } else {
            tracing::info!(%peer, "refused a join with a wrong token secret");
            return Err(CtlError::invalid(
                "A valid join token is necessary to join this cluster",
            ));
        };
        if req.role == Some(Role::Manager) && role == Role::Worker {
            return Err(CtlError::invalid(
                "a worker join token cannot make a manager: use the manager token (docker swarm join-token manager)",
            ));
        }
        let avail = availability(&req.availability)?;
        let ip = if req.advertise_addr.is_empty() {
            peer.to_string()
        } else {
            req.advertise_addr
                .parse::<IpAddr>()
                .map_err(|_| {
                    CtlError::invalid(format!(
                        "invalid advertise address {:?}",
                        req.advertise_addr
                    ))
                })?
                .to_string()
        };
        let node_id = new_id();
        let store_join = match role {
            Role::Manager => {
                let ipa: IpAddr = ip.parse().unwrap_or(peer);
                Some(
                    self.add_manager_member(cluster, &node_id, ipa, req.etcd.as_ref())
                        .await?,
                )
            }
            Role::Worker => None,
        };
        let now = SystemTime::now();
        let exp = now + cluster.cert_expiry();
        let cert = cluster
            .signing_ca
            .issue(&req.csr, &node_id, role, &cluster.id, exp)
            .map_err(|e| {
                CtlError::invalid(format!(
                    "bad certificate signing request: {}",
                    crate::error::chain(&e)
                ))
            })?;
        let gossip_addr = SocketAddr::new(
            ip.parse().unwrap_or(peer),
            if req.gossip_port == 0 {
                netloom_cluster::membership::DEFAULT_PORT
            } else {
                req.gossip_port
            },
        );
        let node = NodeRecord {
            id: node_id.clone(),
            created_at: now,
            updated_at: now,
            role,
            availability: avail,
            labels: BTreeMap::new(),
            hostname: req.hostname,
            engine_version: req.engine_version,
            addr: ip.clone(),
            manager_addr: (role == Role::Manager)
                .then(|| SocketAddr::new(gossip_addr.ip(), addr::DEFAULT_PORT).to_string()),
            gossip_addr: gossip_addr.to_string(),
            data_path_addr: if req.data_path_addr.is_empty() {
                ip.clone()
            } else {
                req.data_path_addr
            },
            cert_root: hex(&cluster.signing_ca.digest()),
            cert_not_after: exp,
            reported_state: String::new(),
        };
        self.store()
            .write(None, &[(&node, None)])
            .await
            .map_err(store_err)?;
        let (managers, gossip_seeds) = self.peers().await?;
        tracing::info!(node = %node_id, %ip, %role, "node joined the swarm");
        Ok(JoinResponse {
            node_id,
            cluster_id: cluster.id.clone(),
            role,
            cert,
            trusted_cas: cluster.trusted_cas.clone(),
            gossip_key: cluster.gossip_key.clone(),
            managers,
            gossip_seeds,
            addr: ip,
            store: store_join,
            data_path_port: cluster.data_path_port,
        })
    }

    /// `POST /session`: a node's heartbeat and watch positions; answers (at once
    /// when something it watches changed, else after its wait) what it must know
    /// and what changed.
    pub(super) async fn serve_session(
        &self,
        _node: &Node,
        who: &netloom_cluster::CertInfo,
        req: SessionRequest,
    ) -> Result<SessionResponse, CtlError> {
        let store = self.store();
        let hb = req.heartbeat;
        let Some(n) = store.node(&who.node_id).await.map_err(store_err)? else {
            return Err(removed_node(&who.node_id));
        };
        if n.value.hostname != hb.hostname
            || n.value.engine_version != hb.engine_version
            || n.value.reported_state != hb.state
        {
            let mut next = n.value.clone();
            next.hostname = hb.hostname;
            next.engine_version = hb.engine_version;
            next.reported_state = hb.state;
            next.updated_at = SystemTime::now();
            let _ = store.write(None, &[(&next, Some(n.version))]).await;
        }
        let wait = Duration::from_millis(req.wait_ms.min(30_000));
        let watches = relay::serve(&store, Some(&who.node_id), &req.watches, wait)
            .await
            .map_err(store_err)?;
        // After the wait: the answer says what holds now.
        let Some(n) = store.node(&who.node_id).await.map_err(store_err)? else {
            return Err(removed_node(&who.node_id));
        };
        let c = self.cluster().await?;
        let (managers, gossip_seeds) = self.peers().await?;
        let update = SessionUpdate {
            role: n.value.role,
            availability: n.value.availability.clone(),
            managers,
            trusted_cas: c.value.trusted_cas.clone(),
            signing_ca_digest: hex(&c.value.signing_ca.digest()),
            gossip_seeds,
            heartbeat_secs: c
                .value
                .spec
                .pointer("/Dispatcher/HeartbeatPeriod")
                .and_then(Value::as_u64)
                .map(|ns| (ns / 1_000_000_000).clamp(1, 60))
                .unwrap_or(HEARTBEAT_SECS),
        };
        Ok(SessionResponse { update, watches })
    }

    /// `POST /renew`: a new certificate for a member's (new) key.
    pub(super) async fn serve_renew(
        &self,
        who: &netloom_cluster::CertInfo,
        req: RenewRequest,
    ) -> Result<RenewResponse, CtlError> {
        let _g = self.control.lock().await;
        let store = self.store();
        let Some(n) = store.node(&who.node_id).await.map_err(store_err)? else {
            return Err(removed_node(&who.node_id));
        };
        let c = self.cluster().await?;
        // A worker promoted to manager: where to find the cluster store (and, on
        // managed etcd, its new member).
        let store_join = if n.value.role == Role::Manager && req.etcd.is_some() {
            let ip: IpAddr = n.value.addr.parse().map_err(|_| {
                CtlError::internal(format!("node {} has no valid address", n.value.id))
            })?;
            Some(
                self.add_manager_member(&c.value, &n.value.id, ip, req.etcd.as_ref())
                    .await?,
            )
        } else {
            None
        };
        let exp = SystemTime::now() + c.value.cert_expiry();
        let cert = c
            .value
            .signing_ca
            .issue(&req.csr, &n.value.id, n.value.role, &c.value.id, exp)
            .map_err(|e| {
                CtlError::invalid(format!(
                    "bad certificate signing request: {}",
                    crate::error::chain(&e)
                ))
            })?;
        let mut next = n.value.clone();
        next.cert_root = hex(&c.value.signing_ca.digest());
        next.cert_not_after = exp;
        next.updated_at = SystemTime::now();
        store
            .write(None, &[(&next, Some(n.version))])
            .await
            .map_err(store_err)?;
        tracing::info!(node = %n.value.id, role = %n.value.role, "renewed a node certificate");
        Ok(RenewResponse {
            cert,
            role: n.value.role,
            trusted_cas: c.value.trusted_cas.clone(),
            store: store_join,
        })
    }
}

fn removed_node(id: &str) -> CtlError {
    CtlError::forbidden(format!("node {id} was removed from the swarm"))
}
