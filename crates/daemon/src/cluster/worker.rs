//! A node joining a swarm, and a worker's session with a manager: one mutual-TLS
//! connection, kept alive, carrying a long poll (`POST /session`) with the node's
//! heartbeat and relay positions; the answers bring role, managers, trusted roots,
//! gossip seeds and what changed under the relayed prefixes, and tell when to renew.
//! When the manager dies or cannot serve (no quorum), the node fails over to the
//! next manager it knows, and its relay resumes there from its positions.

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use netloom_cluster::ca::{new_csr, parse_cert, renew_at};
use netloom_cluster::proto::{
    CaResponse, Heartbeat, JoinRequest as WireJoin, JoinResponse, RenewRequest, RenewResponse,
    SessionRequest, SessionResponse, SessionUpdate,
};
use netloom_cluster::token::ca_digest;
use netloom_cluster::{JoinToken, NodeCert, Role, tls};

use super::net::{self, CallError, Conn};
use super::state::{self, LocalState, hex};
use super::{ERR_SWARM_EXISTS, Node, Swarm, addr, internal};
use crate::error::CtlError;

/// Docker's message when a node's certificate expired while it was down.
const ERR_CERTS_EXPIRED: &str =
    "Swarm certificates have expired. To replace them, leave the swarm and join again.";

/// `POST /swarm/join`, parsed.
#[derive(Debug, Default)]
pub struct JoinRequest {
    /// `ListenAddr`.
    pub listen_addr: String,
    /// `AdvertiseAddr`.
    pub advertise_addr: String,
    /// `DataPathAddr`.
    pub data_path_addr: String,
    /// `RemoteAddrs`.
    pub remote_addrs: Vec<String>,
    /// `JoinToken`.
    pub join_token: String,
    /// `Availability`.
    pub availability: String,
}

fn with_port(a: &str) -> String {
    if a.parse::<std::net::SocketAddr>().is_ok() {
        a.to_string()
    } else if let Ok(ip) = a.parse::<std::net::IpAddr>() {
        std::net::SocketAddr::new(ip, addr::DEFAULT_PORT).to_string()
    } else if a.contains(':') {
        a.to_string()
    } else {
        format!("{a}:{}", addr::DEFAULT_PORT)
    }
}

fn refused(e: CallError) -> CtlError {
    match e {
        CallError::Refused { status, message } if status < 500 => CtlError::invalid(message),
        other => CtlError::unavailable(other.to_string()),
    }
}

impl Swarm {
    /// `POST /swarm/join`: joins the swarm of the manager at `remote_addrs[0]`.
    pub async fn join(&self, req: JoinRequest) -> Result<(), CtlError> {
        let _g = self.control.lock().await;
        if self.node().is_some() {
            return Err(CtlError::unavailable(ERR_SWARM_EXISTS));
        }
        let Some(remote) = req.remote_addrs.first() else {
            return Err(CtlError::invalid(
                "at least 1 RemoteAddr is required to join",
            ));
        };
        let remote = with_port(remote.trim());
        let token = JoinToken::parse(&req.join_token).map_err(|_| {
            CtlError::invalid("invalid join token: expected SWMTKN-1-<digest>-<secret> (docker swarm join-token worker on a manager prints one)")
        })?;
        let listen = addr::listen(&req.listen_addr)?;
        let adv = if req.advertise_addr.is_empty() {
            addr::advertise("", listen).ok()
        } else {
            Some(addr::advertise(&req.advertise_addr, listen)?)
        };
        let dpa = addr::data_path(&req.data_path_addr)?;
        let avail = match req.availability.as_str() {
            "" | "active" | "pause" | "drain" => req.availability.clone(),
            a => {
                return Err(CtlError::invalid(format!(
                    "invalid Availability: {a:?} (use active, pause or drain)"
                )));
            }
        };
        // 1. The manager's CA, over a connection that checks nothing: it must be the
        //    CA the token names before anything secret is sent.
        let boot = tls::bootstrap_client_config().map_err(|e| internal("TLS")(&e))?;
        let mut c = net::connect(&remote, boot).await.map_err(refused)?;
        let ca: CaResponse = c.call::<(), _>("/ca", None).await.map_err(refused)?;
        drop(c);
        token
            .check_ca(&ca.signing_ca)
            .map_err(|e| CtlError::invalid(e.to_string()))?;
        // 2. The secret and a CSR, now to a manager verified against that CA.
        let cfg = tls::client_config(&ca.trusted_cas, None).map_err(|e| internal("TLS")(&e))?;
        let mut c = net::connect(&remote, cfg).await.map_err(refused)?;
        let (csr, key_pem) = new_csr().map_err(|e| internal("make a key")(&e))?;
        // In case the token makes this node a manager of managers on etcd.
        let (etcd_req, member_key) = self.member_request()?;
        let wire = WireJoin {
            token: req.join_token.trim().to_string(),
            csr,
            role: None,
            hostname: self.hostname.clone(),
            advertise_addr: adv.map(|a| a.ip().to_string()).unwrap_or_default(),
            data_path_addr: dpa.clone(),
            gossip_port: netloom_cluster::membership::DEFAULT_PORT,
            availability: avail,
            engine_version: env!("CARGO_PKG_VERSION").into(),
            etcd: Some(etcd_req),
        };
        let resp: JoinResponse = c
            .call_t("/join", Some(&wire), JOIN_TIMEOUT)
            .await
            .map_err(refused)?;
        let info = parse_cert(&resp.cert).map_err(|e| {
            CtlError::unavailable(format!("the manager sent a bad certificate: {e}"))
        })?;
        if info.node_id != resp.node_id || info.role != resp.role {
            return Err(CtlError::unavailable(
                "the manager sent a certificate for another node",
            ));
        }
        let local = LocalState {
            node_id: resp.node_id.clone(),
            cluster_id: resp.cluster_id,
            role: resp.role,
            listen_addr: listen.to_string(),
            advertise_addr: resp.addr,
            data_path_addr: dpa,
            cert: NodeCert {
                cert_pem: resp.cert,
                key_pem,
            },
            trusted_cas: resp.trusted_cas,
            gossip_key: resp.gossip_key,
            managers: resp.managers,
            gossip_seeds: resp.gossip_seeds,
            cert_root: hex(&ca_digest(&ca.signing_ca)),
            // The swarm's, so that this node's VXLAN devices talk to the others'.
            data_path_port: match resp.data_path_port {
                0 => addr::DEFAULT_DATA_PATH_PORT,
                p => p,
            },
            store: super::state::StoreMode::Embedded,
        };
        let local = match (&resp.store, resp.role) {
            (Some(join), Role::Manager) => self.manager_state(local, join, &member_key),
            _ => local,
        };
        let _ = super::etcd::wipe(&super::ha::member_dir(&self.data_root));
        state::save(&self.data_root, &local).map_err(|e| internal("save swarm state")(&e))?;
        self.relay.clear();
        if let Err(e) = self.run_node(local, None, None, None).await {
            if let Some(n) = self.stop_node() {
                n.shutdown().await;
            }
            let _ = state::clear(&self.data_root);
            let _ = super::etcd::wipe(&super::ha::member_dir(&self.data_root));
            return Err(e);
        }
        tracing::info!(node = %resp.node_id, %remote, "joined the swarm");
        Ok(())
    }
}

/// Budget of a join (a manager's join adds an etcd member).
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// What the manager may add to the session's wait before the node gives up on it.
const SESSION_SLACK: Duration = Duration::from_secs(10);

/// The worker's session: a long poll on one connection; on a broken connection or
/// a manager that cannot serve, fails over to the next manager it knows; leaves
/// when it was removed.
pub(super) async fn session_loop(swarm: Weak<Swarm>, node: Weak<Node>) {
    let mut conn: Option<Conn> = None;
    let mut next_manager = 0usize;
    let mut wait = Duration::from_millis(200);
    let mut hb_secs = 5u64;
    loop {
        let (Some(s), Some(n)) = (swarm.upgrade(), node.upgrade()) else {
            return;
        };
        let l = n.local();
        if parse_cert(&l.cert.cert_pem).is_ok_and(|i| i.not_after <= SystemTime::now()) {
            // Down for the whole validity period: no renewal is possible any more.
            n.set_error(ERR_CERTS_EXPIRED);
            drop((s, n));
            tokio::time::sleep(Duration::from_secs(5)).await;
            continue;
        }
        let managers: Vec<_> = l
            .managers
            .iter()
            .filter(|m| m.node_id != l.node_id)
            .cloned()
            .collect();
        if conn.as_ref().is_none_or(|c| !c.is_open()) {
            conn = None;
            let Some(m) = managers.get(next_manager % managers.len().max(1)).cloned() else {
                n.set_error("no manager known: leave the swarm and join again");
                drop((s, n));
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            };
            let cfg = match tls::client_config(&l.trusted_cas, Some(&l.cert)) {
                Ok(c) => c,
                Err(e) => {
                    n.set_error(e.to_string());
                    drop((s, n));
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
            };
            match net::connect(&m.addr, cfg).await {
                Ok(c) => {
                    tracing::info!(manager = %m.node_id, addr = %m.addr, "session with a manager");
                    if let Ok(mut g) = n.relay_source.write() {
                        *g = m.node_id.clone();
                    }
                    conn = Some(c);
                }
                Err(e) => {
                    n.set_error(e.to_string());
                    next_manager += 1;
                    drop((s, n));
                    // Try the next manager soon; back off once every one failed.
                    if next_manager.is_multiple_of(managers.len().max(1)) {
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(5));
                    }
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let req = SessionRequest {
            heartbeat: Heartbeat {
                hostname: s.hostname.clone(),
                engine_version: env!("CARGO_PKG_VERSION").into(),
                state: "ready".into(),
            },
            watches: s.relay.positions(),
            wait_ms: hb_secs * 1000,
        };
        let started = std::time::Instant::now();
        let budget = Duration::from_secs(hb_secs) + SESSION_SLACK;
        match c
            .call_t::<_, SessionResponse>("/session", Some(&req), budget)
            .await
        {
            Ok(resp) => {
                wait = Duration::from_millis(200);
                n.set_error("");
                let quiet = resp
                    .watches
                    .iter()
                    .all(|b| b.events.is_empty() && b.reset.is_none());
                s.relay.apply(resp.watches);
                let u = resp.update;
                hb_secs = u.heartbeat_secs.clamp(1, 60);
                match apply(&s, &n, &u, c).await {
                    Ok(Next::Continue) => {}
                    // This node is a manager now: the new runtime takes over.
                    Ok(Next::Stop) => return,
                    Err(e) => {
                        tracing::warn!(error = %e.message, "session update failed");
                        n.set_error(e.message);
                    }
                }
                drop((s, n));
                // A manager that answers at once with nothing new does not hold
                // polls: do not spin.
                if quiet && started.elapsed() < Duration::from_millis(500) {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            Err(CallError::Refused {
                status: 403,
                message,
            })
            | Err(CallError::Transport {
                revoked: true,
                message,
            }) => {
                tracing::warn!(%message, "the managers removed this node");
                let id = l.node_id.clone();
                drop(n);
                s.removed(&id).await;
                return;
            }
            Err(e) => {
                tracing::info!(error = %e, "session with the manager lost; failing over");
                n.set_error(e.to_string());
                conn = None;
                next_manager += 1;
                drop((s, n));
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// What the session does after an update.
enum Next {
    /// Keep polling.
    Continue,
    /// Stop: the node became a manager.
    Stop,
}

/// Applies a session update: new managers, roots and seeds; renewal when due, when
/// the signing root changed or when the role did (a promotion then starts the
/// manager's runtime).
async fn apply(
    s: &Arc<Swarm>,
    n: &Arc<Node>,
    u: &SessionUpdate,
    c: &mut Conn,
) -> Result<Next, CtlError> {
    let l = n.local();
    if l.managers != u.managers
        || l.trusted_cas != u.trusted_cas
        || l.gossip_seeds != u.gossip_seeds
    {
        s.save_local(n, |st| {
            st.managers = u.managers.clone();
            st.trusted_cas = u.trusted_cas.clone();
            st.gossip_seeds = u.gossip_seeds.clone();
        })?;
    }
    for p in &u.gossip_seeds {
        if p.node_id != l.node_id
            && !n.membership.is_up(&p.node_id)
            && let Ok(a) = p.addr.parse()
        {
            n.membership.announce(a);
        }
    }
    let info =
        parse_cert(&l.cert.cert_pem).map_err(|e| internal("read this node's certificate")(&e))?;
    let due = SystemTime::now() >= renew_at(info.not_before, info.not_after);
    if !(due || l.cert_root != u.signing_ca_digest || info.role != u.role || l.role != u.role) {
        return Ok(Next::Continue);
    }
    let (csr, key_pem) = new_csr().map_err(|e| internal("make a key")(&e))?;
    // A worker (perhaps still with the certificate of its time as a manager) that
    // is to be a manager again.
    let promoted = u.role == Role::Manager && l.role == Role::Worker;
    let (etcd, member_key) = if promoted {
        let (r, k) = s.member_request()?;
        (Some(r), k)
    } else {
        (None, String::new())
    };
    let r: RenewResponse = c
        .call_t("/renew", Some(&RenewRequest { csr, etcd }), JOIN_TIMEOUT)
        .await
        .map_err(|e| CtlError::unavailable(format!("certificate renewal failed: {e}")))?;
    s.save_local(n, |st| {
        st.cert = NodeCert {
            cert_pem: r.cert.clone(),
            key_pem: key_pem.clone(),
        };
        st.cert_root = u.signing_ca_digest.clone();
        st.trusted_cas = r.trusted_cas.clone();
    })?;
    tracing::info!(role = %r.role, "renewed this node's certificate");
    if r.role == Role::Manager
        && let Some(join) = &r.store
    {
        let next = s.manager_state(n.local(), join, &member_key);
        tokio::spawn(s.clone().transition(next, "promoted"));
        return Ok(Next::Stop);
    }
    Ok(Next::Continue)
}
