//! The `overlay` driver's data plane: one L2 network across nodes on different L3
//! underlays, carried by VXLAN.
//!
//! Per node and network, a sandbox (network namespace) holds one bridge per subnet,
//! carrying the subnet's gateway, and one VXLAN device per subnet (one VNI per subnet,
//! as Docker does: `vxlanid_list` gives them in subnet order), enslaved to that bridge,
//! learning off and answering ARP itself (`proxy`). The subnets of a network are routed
//! between each other inside the sandbox. Containers' veths plug into their subnet's
//! bridge. The VXLAN devices send to other nodes' data-path addresses on the data-path
//! UDP port (4789 by default); remote endpoints are static FDB (MAC → VTEP) and
//! permanent neighbour (IP → MAC) entries programmed from the control plane through
//! [`OverlayDriver::add_peer`], [`OverlayDriver::remove_peer`],
//! [`OverlayDriver::sync_peers`] and [`OverlayDriver::remove_vtep`]. Nothing floods: there
//! is no default FDB destination, no multicast group, and ARP requests for remote
//! endpoints are answered on the node.
//!
//! The sandbox is made when the first local endpoint joins and removed when the last
//! one leaves (lazily, as Docker does); a daemon restart finds it again
//! ([`Driver::create_network`] adopts an existing sandbox). The MTU is the underlay
//! interface's (the one holding the data-path address) minus the VXLAN overhead, unless
//! `com.docker.network.driver.mtu` says otherwise. Containers on non-internal overlays
//! leave through a gateway bridge ([`gateway`]), not through the overlay.

pub mod config;
pub mod gateway;
pub mod peers;
mod sandbox;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use netloom_kernel::Netlink;
use netloom_model::{
    Capabilities, Driver, DriverError, Endpoint, JoinInfo, Network, SandboxInfo, Scope,
};
use tracing::debug;

pub use config::{OPT_VXLANID_LIST, OverlayConfig, allocate_vnis, set_vnis};
pub use peers::PeerEndpoint;

use peers::SubnetPlan;
use sandbox::{Node, kerr};

/// Docker's VXLAN UDP port (`--data-path-port` default).
pub const DEFAULT_PORT: u16 = 4789;

/// How the driver is set up on a node.
#[derive(Debug, Clone)]
pub struct OverlayOptions {
    /// Directory for the sandboxes' namespace files (its own: every `ov-*` file in it is
    /// the driver's).
    pub netns_dir: PathBuf,
    /// This node's data-path address (`--data-path-addr`, else the advertise address):
    /// the source of its VXLAN packets and the VTEP other nodes send to.
    pub data_path: IpAddr,
    /// The VXLAN UDP port (`--data-path-port`).
    pub port: u16,
    /// The daemon's tag, marking the links it creates.
    pub tag: String,
}

/// One overlay network known on this node.
struct NetState {
    name: String,
    cfg: OverlayConfig,
    /// Remote (and local) endpoints announced by the control plane, by address.
    peers: BTreeMap<Ipv4Addr, PeerEndpoint>,
}

/// The overlay driver of one node.
pub struct OverlayDriver {
    node: std::sync::RwLock<Arc<Node>>,
    nets: Mutex<HashMap<String, Arc<tokio::sync::Mutex<NetState>>>>,
    /// The data path changed since the sandboxes were last brought in line with it.
    stale: std::sync::atomic::AtomicBool,
}

fn unknown(net_id: &str) -> DriverError {
    DriverError::InvalidOption(format!(
        "overlay network {} is not known on this node",
        netloom_model::short_id(net_id)
    ))
}

impl OverlayDriver {
    /// An overlay driver working from the node's own namespace through `host` (the
    /// namespace holding the underlay and `opts.data_path`).
    pub fn new(host: Netlink, opts: OverlayOptions) -> Self {
        OverlayDriver {
            node: std::sync::RwLock::new(Arc::new(Node {
                host,
                dir: opts.netns_dir,
                vtep: opts.data_path,
                port: opts.port,
                alias: crate::link_alias(&opts.tag),
            })),
            nets: Mutex::new(HashMap::new()),
            stale: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn node(&self) -> Arc<Node> {
        match self.node.read() {
            Ok(n) => n.clone(),
            Err(e) => e.into_inner().clone(),
        }
    }

    /// Sets this node's data-path address and VXLAN port (known once the node is in a
    /// swarm); sandboxes made afterwards use them. Returns whether they changed: the
    /// existing sandboxes then need [`OverlayDriver::refresh`].
    pub fn set_data_path(&self, data_path: IpAddr, port: u16) -> bool {
        let mut g = match self.node.write() {
            Ok(g) => g,
            Err(e) => e.into_inner(),
        };
        if g.vtep == data_path && g.port == port {
            return false;
        }
        let n = Node {
            host: g.host.clone(),
            dir: g.dir.clone(),
            vtep: data_path,
            port,
            alias: g.alias.clone(),
        };
        *g = Arc::new(n);
        self.stale.store(true, std::sync::atomic::Ordering::SeqCst);
        true
    }

    /// Brings every existing sandbox in line with the node's current data path if
    /// [`OverlayDriver::set_data_path`] changed it since the last call (a daemon that
    /// restarted finds its sandboxes before it knows its swarm's data path and port:
    /// their VXLAN devices are re-made with the right source address and port here).
    /// Cheap when nothing changed. Errors are returned after every network was tried
    /// (and the next call tries again).
    pub async fn refresh(&self) -> Result<(), DriverError> {
        use std::sync::atomic::Ordering;
        if self.node().vtep.is_unspecified() || !self.stale.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        let all: Vec<(String, Arc<tokio::sync::Mutex<NetState>>)> = match self.nets.lock() {
            Ok(m) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Err(_) => Vec::new(),
        };
        let mut first = None;
        for (id, st) in all {
            let st = st.lock().await;
            if !self.node().has_sandbox(&id) {
                continue;
            }
            if let Err(e) = self.ensure(&id, &st).await {
                first.get_or_insert(e);
            }
        }
        if first.is_some() {
            self.stale.store(true, Ordering::SeqCst);
        }
        first.map_or(Ok(()), Err)
    }

    /// This node's data-path address (its VTEP).
    pub fn data_path(&self) -> IpAddr {
        self.node().vtep
    }

    /// The namespace file of a network's sandbox on this node (it exists only while a
    /// local endpoint is on the network).
    pub fn sandbox_path(&self, net_id: &str) -> PathBuf {
        self.node().sandbox_path(net_id)
    }

    fn state(&self, net_id: &str) -> Result<Arc<tokio::sync::Mutex<NetState>>, DriverError> {
        self.nets
            .lock()
            .ok()
            .and_then(|m| m.get(net_id).cloned())
            .ok_or_else(|| unknown(net_id))
    }

    fn plans(&self, net_id: &str, st: &NetState) -> Result<Vec<SubnetPlan>, DriverError> {
        peers::plan(net_id, &st.name, &st.cfg, &st.peers, self.node().vtep)
    }

    /// Creates (or finds) the sandbox and brings its entries in line with `st`.
    async fn ensure(
        &self,
        net_id: &str,
        st: &NetState,
    ) -> Result<(Netlink, Vec<SubnetPlan>), DriverError> {
        let plans = self.plans(net_id, st)?;
        let underlay = self.node().underlay_mtu().await?;
        let mtu = st.cfg.effective_mtu(underlay, self.node().vtep.is_ipv6())?;
        let sb = self.node().ensure_sandbox(net_id, &plans, mtu).await?;
        self.node().program(&sb, &plans).await?;
        Ok((sb, plans))
    }

    /// Re-programs the sandbox's entries if it exists (lazy: without local endpoints
    /// there is nothing to program; the entries are set when the sandbox is made).
    async fn reprogram(&self, net_id: &str, st: &NetState) -> Result<(), DriverError> {
        if !self.node().has_sandbox(net_id) {
            return Ok(());
        }
        let plans = self.plans(net_id, st)?;
        let path = self.node().sandbox_path(net_id);
        let sb = Netlink::in_netns(&path)
            .map_err(kerr(format!("open overlay sandbox {}", path.display())))?;
        self.node().program(&sb, &plans).await
    }

    /// Adds (or updates) one endpoint of the network announced by the control plane.
    /// A remote one becomes a static FDB and neighbour entry; one on this node (its VTEP
    /// is this node's) needs none.
    pub async fn add_peer(&self, net_id: &str, peer: PeerEndpoint) -> Result<(), DriverError> {
        let st = self.state(net_id)?;
        let mut st = st.lock().await;
        peers::check_peer(&st.cfg, &st.name, self.node().vtep, &peer)?;
        st.peers.insert(peer.ip, peer);
        self.reprogram(net_id, &st).await
    }

    /// Removes the endpoint at `ip` (it left, or its node went); unknown is fine.
    pub async fn remove_peer(&self, net_id: &str, ip: Ipv4Addr) -> Result<(), DriverError> {
        let st = self.state(net_id)?;
        let mut st = st.lock().await;
        if st.peers.remove(&ip).is_some() {
            self.reprogram(net_id, &st).await?;
        }
        Ok(())
    }

    /// Replaces the network's endpoints with `peers` (the control plane's full view,
    /// e.g. after a restart) and reconciles the kernel: stale entries removed, missing
    /// ones added. Every peer is checked before anything changes.
    pub async fn sync_peers(&self, net_id: &str, list: &[PeerEndpoint]) -> Result<(), DriverError> {
        let st = self.state(net_id)?;
        let mut st = st.lock().await;
        for p in list {
            peers::check_peer(&st.cfg, &st.name, self.node().vtep, p)?;
        }
        st.peers = list.iter().map(|p| (p.ip, *p)).collect();
        self.reprogram(net_id, &st).await
    }

    /// Removes every endpoint behind the VTEP `vtep` from every network (its node went
    /// down or left); returns how many were removed.
    pub async fn remove_vtep(&self, vtep: IpAddr) -> Result<usize, DriverError> {
        let all: Vec<(String, Arc<tokio::sync::Mutex<NetState>>)> = match self.nets.lock() {
            Ok(m) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Err(_) => Vec::new(),
        };
        let mut removed = 0;
        for (id, st) in all {
            let mut st = st.lock().await;
            let before = st.peers.len();
            st.peers.retain(|_, p| p.vtep != vtep);
            if st.peers.len() != before {
                removed += before - st.peers.len();
                self.reprogram(&id, &st).await?;
            }
        }
        Ok(removed)
    }

    /// The endpoints the control plane announced for a network.
    pub async fn peers(&self, net_id: &str) -> Result<Vec<PeerEndpoint>, DriverError> {
        let st = self.state(net_id)?;
        let st = st.lock().await;
        Ok(st.peers.values().copied().collect())
    }

    /// Removes sandboxes of networks not in `keep` (left by a daemon that died before
    /// it could remove them); returns their paths.
    pub async fn remove_orphans(&self, keep: &[&str]) -> Result<Vec<PathBuf>, DriverError> {
        let keep: Vec<String> = keep.iter().map(|id| peers::sandbox_name(id)).collect();
        let mut out = Vec::new();
        for p in netloom_kernel::netns::list(&self.node().dir) {
            let Some(name) = p.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
                continue;
            };
            if !name.starts_with("ov-") || keep.contains(&name) {
                continue;
            }
            let id = name.trim_start_matches("ov-").to_string();
            self.node().destroy(&id).await?;
            out.push(p);
        }
        Ok(out)
    }
}

#[async_trait]
impl Driver for OverlayDriver {
    fn name(&self) -> &'static str {
        "overlay"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            data_scope: Scope::Global,
            has_sandbox_interfaces: true,
            shares_host_stack: false,
            single_instance: false,
            host_firewall: false,
        }
    }

    fn validate(&self, net: &mut Network) -> Result<(), DriverError> {
        let cfg = OverlayConfig::parse(net)?;
        // 0: derived on each node from its underlay at join.
        net.mtu = cfg.mtu.unwrap_or(0);
        Ok(())
    }

    async fn create_network(&self, net: &Network) -> Result<(), DriverError> {
        let cfg = OverlayConfig::parse(net)?;
        cfg.vnis(&net.name)?;
        let st = {
            let mut nets = self
                .nets
                .lock()
                .map_err(|_| DriverError::Conflict("overlay driver state poisoned".into()))?;
            nets.entry(net.id.clone())
                .or_insert_with(|| {
                    Arc::new(tokio::sync::Mutex::new(NetState {
                        name: net.name.clone(),
                        cfg: cfg.clone(),
                        peers: BTreeMap::new(),
                    }))
                })
                .clone()
        };
        let mut st = st.lock().await;
        st.name = net.name.clone();
        st.cfg = cfg;
        // After a restart the sandbox (and the containers in it) is still there: adopt
        // it, repairing whatever drifted. Not before the data path is known (a
        // restarted daemon installs its networks before it rejoins its swarm): the
        // VXLAN devices would be re-made from 0.0.0.0 on the default port;
        // [`OverlayDriver::refresh`] adopts them once it is set.
        if self.node().has_sandbox(&net.id) && !self.node().vtep.is_unspecified() {
            self.ensure(&net.id, &st).await?;
            debug!(network = %net.name, "adopted existing overlay sandbox");
        }
        Ok(())
    }

    async fn delete_network(&self, net: &Network) -> Result<(), DriverError> {
        let st = self.nets.lock().ok().and_then(|mut m| m.remove(&net.id));
        // Wait for operations in flight on the network.
        let _guard = match &st {
            Some(s) => Some(s.lock().await),
            None => None,
        };
        self.node().destroy(&net.id).await
    }

    async fn create_endpoint(&self, net: &Network, ep: &Endpoint) -> Result<(), DriverError> {
        let st = self.state(&net.id)?;
        let st = st.lock().await;
        let Some(ip) = ep.ipv4 else {
            return Err(DriverError::InvalidOption(format!(
                "endpoint {} on overlay network {} has no IPv4 address",
                ep.ifname, net.name
            )));
        };
        if ep.ipv6.is_some() {
            return Err(DriverError::NotSupported(format!(
                "endpoint {} on overlay network {}: IPv6 is not supported on overlay networks yet",
                ep.ifname, net.name
            )));
        }
        if !st.cfg.subnets.iter().any(|s| s.subnet.contains(&ip.addr())) {
            return Err(DriverError::InvalidOption(format!(
                "address {ip} is in none of the subnets of overlay network {}",
                net.name
            )));
        }
        Ok(())
    }

    async fn delete_endpoint(&self, net: &Network, ep: &Endpoint) -> Result<(), DriverError> {
        let path = self.node().sandbox_path(&net.id);
        if !self.node().has_sandbox(&net.id) {
            return Ok(());
        }
        let sb = Netlink::in_netns(&path)
            .map_err(kerr(format!("open overlay sandbox {}", path.display())))?;
        let veth = peers::veth_name(&ep.id);
        sb.delete_link(&veth).await.map_err(kerr(format!(
            "delete veth {veth} of endpoint {}",
            ep.ifname
        )))
    }

    async fn join(
        &self,
        net: &Network,
        ep: &Endpoint,
        sb: &SandboxInfo,
    ) -> Result<JoinInfo, DriverError> {
        let ctx = format!("endpoint {} of overlay network {}", ep.ifname, net.name);
        let st = self.state(&net.id)?;
        let st = st.lock().await;
        let ip = ep
            .ipv4
            .ok_or_else(|| DriverError::InvalidOption(format!("{ctx} has no IPv4 address")))?;
        let own = st
            .cfg
            .subnets
            .iter()
            .position(|s| s.subnet.contains(&ip.addr()))
            .ok_or_else(|| {
                DriverError::InvalidOption(format!(
                    "{ctx}: {ip} is in none of the network's subnets"
                ))
            })?;
        let (nl, plans) = self.ensure(&net.id, &st).await?;
        let plan = &plans[own];
        let br = nl
            .require_link(&plan.bridge)
            .await
            .map_err(kerr(format!("find bridge {} of {ctx}", plan.bridge)))?;
        let host = peers::veth_name(&ep.id);
        let node = self.node();
        let veth = crate::sandbox::Veth {
            host: &host,
            bridge: br.index,
            bridge_name: &br.name,
            mtu: br.mtu,
            alias: &node.alias,
        };
        let setup = crate::sandbox::Setup {
            ifname: &ep.ifname,
            mac: None,
            routes: peers::subnet_routes(&plans, own),
            // The default route goes through the gateway bridge (or nowhere: internal).
            default: crate::sandbox::DefaultRoute::Never,
        };
        let plugged =
            crate::sandbox::plug_veth(&nl, veth, sb, ep, &ctx, setup, |op| Box::new(kerr(op)))
                .await;
        if let Err(e) = plugged {
            // Undo: the veth, and the sandbox if this endpoint was to be its first.
            let _ = nl.delete_link(&host).await;
            if self.node().endpoint_count(&nl).await.unwrap_or(1) == 0 {
                let _ = self.node().destroy(&net.id).await;
            }
            return Err(e);
        }
        Ok(JoinInfo {
            ifname: ep.ifname.clone(),
            ..Default::default()
        })
    }

    async fn leave(
        &self,
        net: &Network,
        ep: &Endpoint,
        _sb: &SandboxInfo,
    ) -> Result<(), DriverError> {
        self.release_endpoint(net, ep).await
    }

    async fn sandbox_removed(&self, net: &Network, ep: &Endpoint) -> Result<(), DriverError> {
        // The container's end of the pair went with its sandbox, but the kernel deletes
        // the pair asynchronously: the network's sandbox must not count it any more.
        self.release_endpoint(net, ep).await
    }
}

impl OverlayDriver {
    /// Deletes the endpoint's veth in the network's sandbox; the last local endpoint
    /// takes the sandbox (and its VXLAN device) with it.
    async fn release_endpoint(&self, net: &Network, ep: &Endpoint) -> Result<(), DriverError> {
        let st = self.state(&net.id)?;
        let _st = st.lock().await;
        if !self.node().has_sandbox(&net.id) {
            return Ok(());
        }
        let path = self.node().sandbox_path(&net.id);
        let nl = Netlink::in_netns(&path)
            .map_err(kerr(format!("open overlay sandbox {}", path.display())))?;
        let veth = peers::veth_name(&ep.id);
        nl.delete_link(&veth).await.map_err(kerr(format!(
            "delete veth {veth} of endpoint {}",
            ep.ifname
        )))?;
        // The last local endpoint takes the network's sandbox with it.
        if self.node().endpoint_count(&nl).await? == 0 {
            self.node().destroy(&net.id).await?;
        }
        Ok(())
    }
}
