//! `swarm init`: a new swarm, its first manager and its cluster store (the
//! embedded store, the first etcd member, or an existing etcd cluster).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use netloom_cluster::proto::Peer;
use netloom_cluster::{Role, RootCa, new_id};
use netloom_store::{EtcdConfig, EtcdStore, Store};
use serde_json::Value;

use super::etcd::{self, Member};
use super::manager::{availability, merge_spec, secret};
use super::state::{
    self, ClusterRecord, ClusterStore, LocalState, ManagedEtcd, NodeRecord, StoreMode, hex,
};
use super::store::SwarmStore;
use super::{ERR_SWARM_EXISTS, Swarm, addr, ha, internal, store_err, view};
use crate::error::CtlError;
/// `POST /swarm/init`, parsed.
#[derive(Debug, Default)]
pub struct InitRequest {
    /// `ListenAddr`.
    pub listen_addr: String,
    /// `AdvertiseAddr`.
    pub advertise_addr: String,
    /// `DataPathAddr`.
    pub data_path_addr: String,
    /// `DataPathPort`.
    pub data_path_port: u32,
    /// `DefaultAddrPool`.
    pub default_addr_pool: Vec<String>,
    /// `SubnetSize`.
    pub subnet_size: u32,
    /// `Availability`.
    pub availability: String,
    /// `Spec` (merged over the defaults).
    pub spec: Value,
    /// `ClusterStore` (a netloom extension): `""`/`embedded`, `etcd` or
    /// `etcd://HOST:PORT,…`.
    pub cluster_store: String,
}

/// Reads `--cluster-store` of `swarm init`.
fn cluster_store(s: &str) -> Result<ClusterStore, CtlError> {
    match s.trim() {
        "" | "embedded" => Ok(ClusterStore::Embedded),
        "etcd" => Ok(ClusterStore::Managed),
        url if url.contains("://") => {
            let cfg = EtcdConfig::parse(url).map_err(|e| CtlError::invalid(e.to_string()))?;
            let _ = cfg;
            Ok(ClusterStore::External {
                url: url.to_string(),
            })
        }
        other => Err(CtlError::invalid(format!(
            "invalid cluster store {other:?}: use embedded (one manager), etcd (every manager runs an etcd member) or etcd://HOST:PORT[,HOST:PORT...] (an existing etcd cluster)"
        ))),
    }
}

/// How long a new etcd member may take to answer.
const MEMBER_READY: Duration = Duration::from_secs(30);

impl Swarm {
    /// `POST /swarm/init`: makes this node the first manager of a new swarm.
    pub async fn init(&self, req: InitRequest) -> Result<String, CtlError> {
        let _g = self.control.lock().await;
        if self.node().is_some() {
            return Err(CtlError::unavailable(ERR_SWARM_EXISTS));
        }
        let listen = addr::listen(&req.listen_addr)?;
        let adv = addr::advertise(&req.advertise_addr, listen)?;
        let dpa = addr::data_path(&req.data_path_addr)?;
        let dpp = addr::data_path_port(req.data_path_port)?;
        let (pools, subnet_size) = addr::pools(&req.default_addr_pool, req.subnet_size)?;
        let avail = availability(&req.availability)?;
        let spec = merge_spec(
            &view::default_spec(netloom_cluster::ca::DEFAULT_NODE_CERT_EXPIRY.as_nanos() as u64),
            &req.spec,
            true,
        )?;
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
            CtlError::invalid(format!(
                "failed to listen on remote API address {listen}: {e}"
            ))
        })?;
        let mode = cluster_store(&req.cluster_store)?;
        let ca = RootCa::generate().map_err(|e| internal("create the root CA")(&e))?;
        let etcd_ca = match mode {
            ClusterStore::Managed => Some(
                ca.issue_etcd_ca()
                    .map_err(|e| internal("create the etcd CA")(&e))?,
            ),
            _ => None,
        };
        let (node_id, cluster_id) = (new_id(), new_id());
        let (store_mode, member) = self
            .init_store(&mode, etcd_ca.as_ref(), &node_id, &cluster_id, adv.ip())
            .await?;
        let now = SystemTime::now();
        let mut cluster = ClusterRecord {
            id: cluster_id.clone(),
            created_at: now,
            updated_at: now,
            spec,
            trusted_cas: vec![ca.cert_pem.clone()],
            signing_ca: ca,
            rotation_in_progress: false,
            worker_secret: secret(),
            manager_secret: secret(),
            gossip_key: hex(&rand::random::<[u8; 32]>()),
            removed: Vec::new(),
            default_addr_pool: pools,
            subnet_size,
            data_path_port: dpp,
            store: mode.clone(),
            etcd_ca,
        };
        let cert = cluster
            .signing_ca
            .issue_new(
                &node_id,
                Role::Manager,
                &cluster_id,
                now + cluster.cert_expiry(),
            )
            .map_err(|e| internal("issue the node certificate")(&e))?;
        cluster.updated_at = now;
        let ip = adv.ip().to_string();
        let node = NodeRecord {
            id: node_id.clone(),
            created_at: now,
            updated_at: now,
            role: Role::Manager,
            availability: avail,
            labels: BTreeMap::new(),
            hostname: self.hostname.clone(),
            engine_version: env!("CARGO_PKG_VERSION").into(),
            addr: ip.clone(),
            manager_addr: Some(adv.to_string()),
            gossip_addr: SocketAddr::new(adv.ip(), netloom_cluster::membership::DEFAULT_PORT)
                .to_string(),
            data_path_addr: if dpa.is_empty() {
                ip.clone()
            } else {
                dpa.clone()
            },
            cert_root: hex(&cluster.signing_ca.digest()),
            cert_not_after: now + cluster.cert_expiry(),
            reported_state: "ready".into(),
        };
        let store = self.store();
        let cleanup = |member: Option<Member>| async move {
            drop(member);
            let _ = etcd::wipe(&ha::member_dir(&self.data_root));
            self.set_store(SwarmStore::new(self.base.clone()));
        };
        if let Err(e) = store.write(Some((&cluster, None)), &[(&node, None)]).await {
            cleanup(member).await;
            return Err(store_err(e));
        }
        let local = LocalState {
            node_id: node_id.clone(),
            cluster_id,
            role: Role::Manager,
            listen_addr: listen.to_string(),
            advertise_addr: ip,
            data_path_addr: dpa,
            cert,
            trusted_cas: cluster.trusted_cas.clone(),
            gossip_key: cluster.gossip_key.clone(),
            managers: vec![Peer {
                node_id: node_id.clone(),
                addr: adv.to_string(),
            }],
            gossip_seeds: Vec::new(),
            cert_root: hex(&cluster.signing_ca.digest()),
            data_path_port: dpp,
            store: store_mode,
        };
        let saved = state::save(&self.data_root, &local);
        if let Err(e) = saved {
            let _ = store.clear().await;
            cleanup(member).await;
            return Err(internal("save swarm state")(&e));
        }
        if let Err(e) = self.run_node(local, Some(listener), member, None).await {
            if let Some(n) = self.stop_node() {
                n.shutdown().await;
            }
            let _ = store.clear().await;
            cleanup(None).await;
            let _ = state::clear(&self.data_root);
            return Err(e);
        }
        tracing::info!(node = %node_id, %adv, "swarm initialized; this node is its manager");
        Ok(node_id)
    }

    /// `swarm init`: the store of the new swarm, empty and answering (starting the
    /// first etcd member on managed etcd), as this node's store now.
    async fn init_store(
        &self,
        mode: &ClusterStore,
        etcd_ca: Option<&RootCa>,
        node_id: &str,
        cluster_id: &str,
        ip: IpAddr,
    ) -> Result<(StoreMode, Option<Member>), CtlError> {
        match mode {
            ClusterStore::Embedded => {
                let store = SwarmStore::new(self.base.clone());
                // A swarm record without local state is what a crash in leave leaves behind.
                store.clear().await.map_err(store_err)?;
                self.set_store(store);
                Ok((StoreMode::Embedded, None))
            }
            ClusterStore::External { url } => {
                let cfg = EtcdConfig::parse(url)
                    .map_err(|e| CtlError::invalid(e.to_string()))?
                    .with_deadline(self.cfg.store_deadline);
                let e = EtcdStore::connect(cfg).await.map_err(|e| {
                    CtlError::unavailable(format!(
                        "cannot use cluster store {url}: {}",
                        crate::error::chain(&e)
                    ))
                })?;
                let store = SwarmStore::etcd(Arc::new(e));
                if let Some(c) = store.cluster().await.map_err(store_err)? {
                    return Err(CtlError::invalid(format!(
                        "cluster store {url} already holds swarm {}: join it with a manager token, or give another key prefix (etcd://HOST:PORT/PREFIX)",
                        c.value.id
                    )));
                }
                self.set_store(store);
                Ok((StoreMode::External { url: url.clone() }, None))
            }
            ClusterStore::Managed => {
                let ca = etcd_ca.ok_or_else(|| CtlError::internal("no etcd CA"))?;
                let dir = ha::member_dir(&self.data_root);
                etcd::wipe(&dir).map_err(|e| internal("remove an old etcd member's data")(&e))?;
                let (csr, key_pem) =
                    netloom_cluster::ca::new_csr().map_err(|e| internal("make a key")(&e))?;
                let cert_pem = ca
                    .issue_etcd_member(
                        &csr,
                        node_id,
                        &[ip],
                        SystemTime::now() + ha::MEMBER_CERT_VALIDITY,
                    )
                    .map_err(|e| internal("issue the etcd member certificate")(&e))?;
                let m = ManagedEtcd {
                    client_port: self.cfg.etcd_client_port,
                    peer_port: self.cfg.etcd_peer_port,
                    ca_pem: ca.cert_pem.clone(),
                    cert: netloom_cluster::NodeCert { cert_pem, key_pem },
                    initial_cluster: format!(
                        "{node_id}={}",
                        etcd::url(ip, self.cfg.etcd_peer_port)
                    ),
                    initial_state: "new".into(),
                    cluster_token: cluster_id.to_string(),
                    learner: None,
                    promote_via: Vec::new(),
                };
                let spec = etcd::MemberSpec {
                    name: node_id.to_string(),
                    dir: dir.clone(),
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
                };
                let member = Member::start(spec.clone())
                    .map_err(|e| internal("start the etcd member")(&e))?;
                let e =
                    EtcdStore::open(spec.client_config().with_deadline(self.cfg.store_deadline))
                        .await
                        .map_err(|e| CtlError::unavailable(crate::error::chain(&e)))?;
                let started = std::time::Instant::now();
                loop {
                    match e.revision().await {
                        Ok(_) => break,
                        Err(err) if started.elapsed() > MEMBER_READY => {
                            drop(member);
                            let _ = etcd::wipe(&dir);
                            return Err(CtlError::unavailable(format!(
                                "the etcd member did not answer within {}s ({}); see {}",
                                MEMBER_READY.as_secs(),
                                crate::error::chain(&err),
                                dir.join("etcd.log").display()
                            )));
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                    }
                }
                self.set_store(SwarmStore::etcd(Arc::new(e)));
                Ok((StoreMode::Managed(m), Some(member)))
            }
        }
    }
}
