//! Swarm-scoped networks on this node (the overlay control plane's controller side).
//!
//! A network whose driver has global data scope (the overlay driver) exists in the
//! cluster store (`cluster::global`); a manager creates it there and every manager
//! keeps a local copy (so `network ls` lists it, scope `swarm`). A worker gets its
//! copy only when a container there uses the network (lazy extension,
//! [`Controller::extend_global`]) and drops it once no container refers to it
//! ([`super::global_peers`]). Endpoints on such networks are published in the
//! cluster store with this node's ID (their addresses claimed there, so no two nodes
//! use one), and the other nodes program them as peers.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use netloom_model::{Endpoint, IpamPoolConfig, IpamSpec, Network, Scope};
use tracing::{info, warn};

use super::networks::{NetworkCreate, parse_pool};
use super::{Controller, Locked, new_id, now};
use crate::cluster::global::{ERR_WORKER_NETWORK, EndpointCall, EndpointRecord};
use crate::cluster::{ERR_NOT_IN_SWARM, Swarm};
use crate::error::{CtlError, CtlResult};

/// Docker's message for a standalone container on a non-attachable swarm network.
fn not_attachable(name: &str) -> CtlError {
    CtlError::forbidden(format!(
        "Could not attach to network {name}: rpc error: code = PermissionDenied desc = network {name} not manually attachable"
    ))
}

/// How long a worker waits for its relay to show a swarm network it was asked for.
const RELAY_CATCH_UP: std::time::Duration = std::time::Duration::from_millis(1500);

impl Controller {
    /// Connects the controller to the daemon's swarm agent and starts the overlay
    /// control plane's sync (see [`super::global_peers`]).
    pub fn set_swarm(self: &Arc<Self>, swarm: Arc<Swarm>) {
        if self.swarm.set(swarm).is_ok() {
            self.spawn_global_sync();
        }
    }

    /// The swarm agent, once set.
    pub(crate) fn swarm(&self) -> Option<&Arc<Swarm>> {
        self.swarm.get()
    }

    /// Whether networks of driver `name` span the swarm (global data scope).
    pub(crate) fn is_global_driver(&self, name: &str) -> bool {
        self.drivers
            .get(name)
            .is_some_and(|d| d.capabilities().data_scope == Scope::Global)
    }

    /// Whether `net` is a swarm network.
    pub(crate) fn is_global(&self, net: &Network) -> bool {
        net.scope == Scope::Swarm && self.is_global_driver(&net.driver)
    }

    /// `network create -d overlay …` on a manager: the swarm allocates the subnets and
    /// VNIs and stores the network; this manager installs its copy at once.
    pub(crate) async fn create_global_network(&self, req: NetworkCreate) -> CtlResult<String> {
        let me = self
            .swarm()
            .and_then(|s| s.local_node())
            .ok_or_else(|| CtlError::unavailable(ERR_NOT_IN_SWARM))?;
        if !me.manager {
            return Err(CtlError::forbidden(ERR_WORKER_NETWORK));
        }
        let driver_name = req.driver.clone();
        for (set, what) in [
            (req.ingress, "--ingress"),
            (req.config_only, "--config-only"),
            (req.config_from.is_some(), "--config-from"),
            (req.enable_ipv6 == Some(true), "--ipv6"),
            (req.enable_ipv4 == Some(false), "--ipv4=false"),
            (!super::is_default_ipam(&req.ipam_driver), "--ipam-driver"),
            (!req.ipam_options.is_empty(), "--ipam-opt"),
        ] {
            if set {
                return Err(CtlError::invalid(format!(
                    "{what} is not supported on {driver_name} networks by netloom yet"
                )));
            }
        }
        if !matches!(req.scope.as_str(), "" | "swarm") {
            return Err(CtlError::invalid(format!(
                "invalid scope {:?} for a {driver_name} network: its scope is swarm",
                req.scope
            )));
        }
        {
            let st = self.state.lock().await;
            if st.networks.values().any(|n| n.name == req.name) {
                return Err(CtlError::conflict(format!(
                    "network with name {} already exists",
                    req.name
                )));
            }
        }
        if !netloom_model::is_valid_name(&req.name) {
            return Err(CtlError::invalid(format!(
                "invalid network name {:?}: use [a-zA-Z0-9][a-zA-Z0-9_.-]",
                req.name
            )));
        }
        let mut configs = Vec::new();
        for c in &req.ipam_configs {
            let Some((subnet, ip_range, gateway, aux)) = parse_pool(c)? else {
                continue;
            };
            let gateway = gateway.or_else(|| netloom_ipam::first_host(&subnet));
            configs.push(IpamPoolConfig {
                subnet,
                ip_range,
                gateway,
                aux,
                pool_id: String::new(),
            });
        }
        let net = Network {
            id: new_id(),
            name: req.name.clone(),
            driver: driver_name.clone(),
            scope: Scope::Swarm,
            created: now(),
            enable_ipv4: true,
            enable_ipv6: false,
            internal: req.internal,
            attachable: req.attachable,
            ingress: false,
            predefined: false,
            ipam: IpamSpec {
                driver: "default".into(),
                options: Default::default(),
                configs,
            },
            options: req.options.clone(),
            labels: req.labels.clone(),
            iface: String::new(),
            mtu: 0,
        };
        let driver = self.driver(&driver_name).await?;
        // Options are checked before anything is allocated (with a stand-in subnet
        // when the swarm is to choose it).
        let mut probe = net.clone();
        if probe.ipam.configs.is_empty() {
            let s: IpNet = "10.255.255.0/24"
                .parse()
                .map_err(|_| CtlError::internal("stand-in subnet does not parse"))?;
            probe.ipam.configs.push(IpamPoolConfig {
                subnet: s,
                ip_range: None,
                gateway: netloom_ipam::first_host(&s),
                aux: Default::default(),
                pool_id: String::new(),
            });
        }
        driver.validate(&mut probe)?;
        let vnis = probe.ipam.configs.len();
        let swarm = self
            .swarm()
            .ok_or_else(|| CtlError::unavailable(ERR_NOT_IN_SWARM))?;
        let mut stored = swarm.create_global_network(net, vnis).await?;
        driver.validate(&mut stored)?;
        let id = stored.id.clone();
        let mut st = self.lock_state().await;
        self.install_global(&mut st, stored).await?;
        // The relay shows the new record a little later: until then the sync must not
        // take this copy for one of a network that is gone.
        st.extended.insert(id.clone(), std::time::Instant::now());
        Ok(id)
    }

    /// Installs this node's copy of swarm network `net` (its pools reserved in the
    /// local IPAM, the driver told); nothing if it is there.
    pub(crate) async fn install_global(&self, st: &mut Locked<'_>, net: Network) -> CtlResult<()> {
        if st.networks.contains_key(&net.id) {
            return Ok(());
        }
        if let Some(o) = st.networks.values().find(|n| n.name == net.name) {
            return Err(CtlError::conflict(format!(
                "swarm network {} cannot be used on this node: local network {} has its name",
                net.name,
                netloom_model::short_id(&o.id)
            )));
        }
        let mut reserved: Vec<IpNet> = Vec::new();
        let mut res = Ok(());
        for c in &net.ipam.configs {
            match st
                .ipam
                .request_pool(&net.name, Some(c.subnet), c.ip_range, &[])
            {
                Ok(s) => reserved.push(s),
                Err(e) => {
                    res = Err(super::networks::map_ipam(e));
                    break;
                }
            }
            for a in c.gateway.iter().chain(c.aux.values()) {
                let _ = st.ipam.request_address(&c.subnet, Some(*a));
            }
        }
        if let Err(e) = res {
            for s in reserved {
                st.ipam.release_pool(&s);
            }
            return Err(e);
        }
        let name = net.name.clone();
        self.install_network(st, net).await?;
        info!(network = %name, "swarm network installed on this node");
        Ok(())
    }

    /// After `swarm leave`: this node's copies of swarm networks are removed (those
    /// no endpoint here uses; one still in use is left with a warning and goes with
    /// its last endpoint).
    pub(crate) async fn drop_global_copies(&self) {
        self.drop_copies(true).await;
    }

    /// [`Controller::drop_global_copies`], quietly about copies still in use.
    pub(crate) async fn drop_copies(&self, loud: bool) {
        let mut st = self.lock_state().await;
        let copies: Vec<Network> = st
            .networks
            .values()
            .filter(|n| self.is_global(n))
            .cloned()
            .collect();
        for n in copies {
            if !st.network_endpoints(&n.id).is_empty() {
                if !loud {
                    continue;
                }
                warn!(network = %n.name, "swarm network still has endpoints on this node: its copy stays until they are gone");
                continue;
            }
            st.extended.remove(&n.id);
            st.removed_global.remove(&n.id);
            match self.remove_network_locked(&mut st, &n).await {
                Ok(()) => info!(network = %n.name, "swarm network's copy removed (left the swarm)"),
                Err(e) => {
                    warn!(network = %n.name, error = %e, "cannot remove the swarm network's copy")
                }
            }
        }
    }

    /// Lazy extension: the networks `keys` name (names or IDs) that this node does not
    /// have but the swarm does are installed; a swarm network that is not attachable
    /// is refused with Docker's message.
    pub(crate) async fn extend_global<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a str>,
    ) -> CtlResult<()> {
        let Some(swarm) = self.swarm() else {
            return Ok(());
        };
        let keys: Vec<&str> = keys.into_iter().collect();
        let mut missing = Vec::new();
        {
            let st = self.state.lock().await;
            for k in &keys {
                match st.find_network(k) {
                    Ok(n) if self.is_global(n) && !n.attachable => {
                        return Err(not_attachable(&n.name));
                    }
                    Ok(_) => {}
                    Err(_) => missing.push(*k),
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let find = |all: &[Network], k: &str| -> Option<Network> {
            all.iter()
                .find(|n| n.name == k)
                .or_else(|| all.iter().find(|n| n.id == k))
                .or_else(|| all.iter().find(|n| k.len() >= 2 && n.id.starts_with(k)))
                .cloned()
        };
        // The relay follows the store a moment behind: a network a manager has just
        // created may not be here yet, so one that is missing is looked for a little
        // longer before the lookup below reports it unknown.
        let mut all = swarm.global_networks();
        let until = std::time::Instant::now() + RELAY_CATCH_UP;
        while missing.iter().any(|k| find(&all, k).is_none()) && std::time::Instant::now() < until {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            all = swarm.global_networks();
        }
        for k in missing {
            let Some(net) = find(&all, k) else { continue };
            if !net.attachable {
                return Err(not_attachable(&net.name));
            }
            let mut st = self.lock_state().await;
            self.install_global(&mut st, net.clone()).await?;
            st.extended
                .insert(net.id.clone(), std::time::Instant::now());
        }
        Ok(())
    }

    /// The record other nodes see of endpoint `ep` of swarm network `net`.
    fn endpoint_record(&self, net: &Network, ep: &Endpoint) -> Option<EndpointRecord> {
        let me = self.swarm()?.local_node()?;
        let ipv4 = ep.ipv4?;
        // Known before the first sync runs (a container right after the join).
        self.overlay.set_data_path(me.data_path, me.port);
        let mut names = vec![
            ep.container_name.clone(),
            format!("{}.{}", ep.container_name, net.name),
            netloom_model::short_id(&ep.container_id).to_string(),
        ];
        for a in &ep.aliases {
            names.push(a.clone());
            names.push(format!("{a}.{}", net.name));
        }
        Some(EndpointRecord {
            node_id: me.node_id,
            network_id: net.id.clone(),
            endpoint_id: ep.id.clone(),
            container_id: ep.container_id.clone(),
            container_name: ep.container_name.clone(),
            ipv4,
            mac: ep.mac.clone(),
            vtep: self.overlay.data_path(),
            names: names.into_iter().map(|n| n.to_ascii_lowercase()).collect(),
        })
    }

    /// Publishes a new endpoint of a swarm network, claiming its address in the
    /// cluster store. An address another node holds is a conflict (the caller picks
    /// another).
    pub(crate) async fn publish_global(&self, net: &Network, ep: &Endpoint) -> CtlResult<()> {
        let (Some(swarm), Some(record)) = (self.swarm(), self.endpoint_record(net, ep)) else {
            return Err(CtlError::unavailable(format!(
                "network {} is a swarm network and this node is not in the swarm",
                net.name
            )));
        };
        swarm
            .endpoint_call(EndpointCall {
                publish: true,
                reclaim: false,
                record,
            })
            .await
    }

    /// Publishes again this node's endpoints on swarm networks (after a restart, or
    /// when the store lost them).
    pub(crate) async fn republish_global(&self, eps: Vec<(Network, Endpoint)>) {
        let Some(swarm) = self.swarm() else { return };
        for (net, ep) in eps {
            let Some(record) = self.endpoint_record(&net, &ep) else {
                continue;
            };
            if let Err(e) = swarm
                .endpoint_call(EndpointCall {
                    publish: true,
                    reclaim: true,
                    record,
                })
                .await
            {
                warn!(endpoint = %netloom_model::short_id(&ep.id), network = %net.name, error = %e, "cannot publish the endpoint in the cluster store");
            }
        }
    }

    /// Withdraws an endpoint of a swarm network from the cluster store (errors are
    /// logged: the endpoint is gone locally whatever the store says).
    pub(crate) async fn withdraw_global(&self, net: &Network, ep: &Endpoint) {
        let (Some(swarm), Some(record)) = (self.swarm(), self.endpoint_record(net, ep)) else {
            return;
        };
        if let Err(e) = swarm
            .endpoint_call(EndpointCall {
                publish: false,
                reclaim: false,
                record,
            })
            .await
        {
            warn!(endpoint = %netloom_model::short_id(&ep.id), network = %net.name, error = %e, "cannot withdraw the endpoint from the cluster store");
        }
    }

    /// [`Controller::withdraw_global`] from a request holding the state lock: the lock
    /// is let go for the call, the network counting as busy meanwhile.
    pub(crate) async fn withdraw_global_locked(
        &self,
        st: &mut Locked<'_>,
        net: &Network,
        ep: &Endpoint,
    ) {
        st.busy(&net.id);
        st.without(self.withdraw_global(net, ep)).await;
        st.unbusy(&net.id);
    }

    /// Picks the address of a new endpoint on swarm network `net`: the local IPAM's
    /// choice, published in the cluster store; while another node holds the address
    /// claimed, the next one is tried. The addresses tried and lost are given back to
    /// the local IPAM once the claim is settled (the caller keeps and, on failure,
    /// releases the endpoint's first address itself). The network counts as busy
    /// while the lock is let go, so `network rm` cannot undercut the claim.
    pub(crate) async fn claim_global(
        &self,
        st: &mut Locked<'_>,
        net: &Network,
        ep: &mut Endpoint,
        want: Option<IpAddr>,
    ) -> CtlResult<()> {
        let first = ep.ipv4;
        let mut tried: Vec<ipnet::Ipv4Net> = Vec::new();
        st.busy(&net.id);
        let res = self.claim_loop(st, net, ep, want, &mut tried).await;
        st.unbusy(&net.id);
        // What is held now: on success the endpoint's address replaces the first one
        // (the caller's record of it is updated); on failure the first one stays the
        // caller's to release.
        let keep = if res.is_ok() { ep.ipv4 } else { first };
        let mut lost: Vec<ipnet::Ipv4Net> = tried;
        if res.is_ok()
            && let Some(f) = first
        {
            lost.push(f);
        }
        for a in lost {
            if Some(a) != keep {
                st.ipam
                    .release_address(&IpNet::V4(a.trunc()), IpAddr::V4(a.addr()));
            }
        }
        if res.is_err() {
            ep.ipv4 = first;
        }
        res
    }

    async fn claim_loop(
        &self,
        st: &mut Locked<'_>,
        net: &Network,
        ep: &mut Endpoint,
        want: Option<IpAddr>,
        tried: &mut Vec<ipnet::Ipv4Net>,
    ) -> CtlResult<()> {
        for _ in 0..64 {
            match st.without(self.publish_global(net, ep)).await {
                Ok(()) => return Ok(()),
                Err(e) if e.kind == netloom_model::ErrorKind::Conflict && want.is_none() => {
                    let Some(cur) = ep.ipv4 else { return Err(e) };
                    let pool = IpNet::V4(cur.trunc());
                    let next = st
                        .ipam
                        .request_address(&pool, None)
                        .map_err(super::networks::map_ipam)?;
                    let IpAddr::V4(v4) = next else {
                        st.ipam.release_address(&pool, next);
                        return Err(e);
                    };
                    let Ok(n) = ipnet::Ipv4Net::new(v4, cur.prefix_len()) else {
                        st.ipam.release_address(&pool, next);
                        return Err(e);
                    };
                    tried.push(n);
                    ep.ipv4 = Some(n);
                    ep.mac = netloom_model::network::mac_from_ipv4(v4);
                }
                Err(e) => return Err(e),
            }
        }
        Err(CtlError::conflict(format!(
            "no free address found on swarm network {}",
            net.name
        )))
    }
}
