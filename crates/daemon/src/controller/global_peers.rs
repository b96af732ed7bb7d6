//! The overlay control plane's sync on every node: from what the relay holds of the
//! cluster store (swarm networks and their endpoints) and what SWIM says of the nodes,
//! brings this node in line.
//!
//! - Managers keep a copy of every swarm network; workers drop a copy no container
//!   refers to any more (lazy extension's other half).
//! - Per swarm network on this node, the endpoints of the other nodes that are up are
//!   the driver's peers (static neighbour and FDB entries towards their VTEP): an
//!   endpoint of a node that went `Down` is removed, and returns with the node.
//! - The same endpoints are names in the embedded DNS (network-scoped).
//! - This node's own endpoints missing from the store are published again (after a
//!   restart, or a publication that could not reach a manager).
//!
//! It runs on every change the relay reports, and every [`TICK`] for SWIM's verdicts.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use netloom_drivers::overlay::PeerEndpoint;
use netloom_model::{Endpoint, Network};
use netloom_resolver::Record;
use tracing::{debug, warn};

use super::Controller;
use crate::cluster::global::{ENDPOINTS, EndpointRecord, NETWORKS, endpoint_key};

/// How often SWIM's view is checked without a relay change.
const TICK: Duration = Duration::from_millis(500);
/// A copy installed by lazy extension is kept at least this long without a container
/// (the container that asked for it is being created meanwhile).
const EXTEND_GRACE: Duration = Duration::from_secs(10);
/// How long a record of this node without its endpoint here is left alone.
const STALE_AFTER: Duration = Duration::from_secs(5);
/// Least time between two publications of one endpoint found missing.
const REPUBLISH_EVERY: Duration = Duration::from_secs(2);

/// What the sync applied last.
#[derive(Default)]
struct Applied {
    peers: HashMap<String, Vec<PeerEndpoint>>,
    dns: BTreeMap<String, (String, Record)>,
    republished: HashMap<String, Instant>,
    /// This node's records with no endpoint here, since when.
    stale: HashMap<String, Instant>,
}

fn dns_owner(ep: &str) -> String {
    format!("remote-{ep}")
}

fn peer_of(r: &EndpointRecord) -> Option<PeerEndpoint> {
    Some(PeerEndpoint {
        ip: r.ipv4.addr(),
        mac: netloom_model::network::parse_mac(&r.mac)?,
        vtep: r.vtep,
    })
}

impl Controller {
    /// Starts the sync task (once the swarm agent is set).
    pub(crate) fn spawn_global_sync(self: &Arc<Self>) {
        let me: Weak<Controller> = Arc::downgrade(self);
        tokio::spawn(async move {
            let Some(relay) = me.upgrade().and_then(|c| c.swarm().map(|s| s.relay())) else {
                return;
            };
            let mut eps = relay.subscribe(ENDPOINTS);
            let mut nets = relay.subscribe(NETWORKS);
            let mut applied = Applied::default();
            let mut tick = tokio::time::interval(TICK);
            loop {
                let ended = tokio::select! {
                    u = eps.recv() => u.is_none(),
                    u = nets.recv() => u.is_none(),
                    _ = tick.tick() => false,
                };
                if ended {
                    // The node left the swarm: subscribe again for the next one.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    eps = relay.subscribe(ENDPOINTS);
                    nets = relay.subscribe(NETWORKS);
                }
                let Some(ctl) = me.upgrade() else { return };
                ctl.global_sync(&mut applied).await;
            }
        });
    }

    async fn global_sync(&self, applied: &mut Applied) {
        let Some(swarm) = self.swarm().cloned() else {
            return;
        };
        let Some(me) = swarm.local_node() else {
            // Not in a swarm (left it): no copy of a swarm network stays.
            self.drop_copies(false).await;
            return;
        };
        self.overlay.set_data_path(me.data_path, me.port);
        // Sandboxes adopted at start, before the data path was known, get it now.
        if let Err(e) = self.overlay.refresh().await {
            warn!(error = %e, "cannot bring the overlay sandboxes to the node's data path");
        }
        let ready = swarm.relay_ready(NETWORKS) && swarm.relay_ready(ENDPOINTS);
        if !ready {
            return;
        }
        let nets = swarm.global_networks();
        let records = swarm.global_endpoints();
        let wanted: BTreeSet<&str> = nets.iter().map(|n| n.id.as_str()).collect();

        // Copies of the swarm's networks.
        let (install, remove, local_eps) = {
            let mut st = self.state.lock().await;
            st.removed_global.retain(|_, t| t.elapsed() <= EXTEND_GRACE);
            let install: Vec<Network> = if me.manager {
                nets.iter()
                    .filter(|n| !st.networks.contains_key(&n.id))
                    .filter(|n| !st.removed_global.contains_key(&n.id))
                    .cloned()
                    .collect()
            } else {
                Vec::new()
            };
            let remove: Vec<Network> = st
                .networks
                .values()
                .filter(|n| self.is_global(n))
                .filter(|n| st.network_endpoints(&n.id).is_empty())
                .filter(|n| {
                    // A copy made or extended a moment ago may not be in the relay yet.
                    let fresh = st
                        .extended
                        .get(&n.id)
                        .is_some_and(|t| t.elapsed() <= EXTEND_GRACE);
                    let gone = !wanted.contains(n.id.as_str()) && !fresh;
                    let unused = !me.manager
                        && !st
                            .containers
                            .values()
                            .any(|c| c.networks.contains_key(&n.id))
                        && st
                            .extended
                            .get(&n.id)
                            .is_none_or(|t| t.elapsed() > EXTEND_GRACE);
                    gone || unused
                })
                .cloned()
                .collect();
            let local_eps: Vec<(Network, Endpoint)> = st
                .endpoints
                .values()
                .filter_map(|e| {
                    let n = st.networks.get(&e.network_id)?;
                    self.is_global(n).then(|| (n.clone(), e.clone()))
                })
                .collect();
            (install, remove, local_eps)
        };
        for n in install {
            let mut st = self.lock_state().await;
            if let Err(e) = self.install_global(&mut st, n.clone()).await {
                warn!(network = %n.name, error = %e, "cannot install the swarm network on this manager");
            }
        }
        for n in remove {
            let mut st = self.lock_state().await;
            // Checked again under the lock.
            if st.network_endpoints(&n.id).is_empty()
                && (me.manager
                    || !st
                        .containers
                        .values()
                        .any(|c| c.networks.contains_key(&n.id)))
            {
                st.extended.remove(&n.id);
                match self.remove_network_locked(&mut st, &n).await {
                    Ok(()) => debug!(network = %n.name, "swarm network's copy removed"),
                    Err(e) => {
                        warn!(network = %n.name, error = %e, "cannot remove the swarm network's copy")
                    }
                }
            }
        }

        // This node's endpoints the store does not have.
        let known: BTreeSet<String> = records
            .iter()
            .map(|r| endpoint_key(&r.network_id, &r.endpoint_id))
            .collect();
        let mine: BTreeSet<String> = local_eps.iter().map(|(_, e)| e.id.clone()).collect();
        // This node's records without an endpoint here (removed while the daemon was
        // down): withdrawn once they stayed so for STALE_AFTER (an endpoint being
        // attached is published just before it is recorded here).
        let now = Instant::now();
        let stale: Vec<&EndpointRecord> = records
            .iter()
            .filter(|r| r.node_id == me.node_id && !mine.contains(&r.endpoint_id))
            .collect();
        applied
            .stale
            .retain(|k, _| stale.iter().any(|r| &r.endpoint_id == k));
        for r in stale {
            let since = *applied.stale.entry(r.endpoint_id.clone()).or_insert(now);
            if since.elapsed() > STALE_AFTER {
                applied.stale.remove(&r.endpoint_id);
                let call = crate::cluster::global::EndpointCall {
                    publish: false,
                    reclaim: false,
                    record: r.clone(),
                };
                match swarm.endpoint_call(call).await {
                    Ok(()) => {
                        debug!(endpoint = %netloom_model::short_id(&r.endpoint_id), "stale endpoint withdrawn")
                    }
                    Err(e) => {
                        warn!(endpoint = %netloom_model::short_id(&r.endpoint_id), error = %e, "cannot withdraw a stale endpoint")
                    }
                }
            }
        }
        let missing: Vec<(Network, Endpoint)> = local_eps
            .into_iter()
            .filter(|(n, e)| !known.contains(&endpoint_key(&n.id, &e.id)))
            .filter(|(_, e)| {
                applied
                    .republished
                    .get(&e.id)
                    .is_none_or(|t| t.elapsed() > REPUBLISH_EVERY)
            })
            .collect();
        for (_, e) in &missing {
            applied.republished.insert(e.id.clone(), Instant::now());
        }
        applied
            .republished
            .retain(|_, t| t.elapsed() < REPUBLISH_EVERY * 4);
        if !missing.is_empty() {
            self.republish_global(missing).await;
        }

        // Peers and names of the other nodes' endpoints that are up.
        let local: Vec<String> = {
            let st = self.state.lock().await;
            st.networks
                .values()
                .filter(|n| self.is_global(n))
                .map(|n| n.id.clone())
                .collect()
        };
        let live: Vec<&EndpointRecord> = records
            .iter()
            .filter(|r| r.node_id != me.node_id && swarm.is_up(&r.node_id))
            .collect();
        for id in &local {
            let mut want: Vec<PeerEndpoint> = live
                .iter()
                .filter(|r| &r.network_id == id)
                .filter_map(|r| peer_of(r))
                .collect();
            want.sort();
            want.dedup_by_key(|p| p.ip);
            if applied.peers.get(id) == Some(&want) {
                continue;
            }
            match self.overlay.sync_peers(id, &want).await {
                Ok(()) => {
                    debug!(network = %netloom_model::short_id(id), peers = want.len(), "overlay peers programmed");
                    applied.peers.insert(id.clone(), want);
                }
                Err(e) => {
                    warn!(network = %netloom_model::short_id(id), error = %e, "cannot program the overlay's peers");
                }
            }
        }
        applied.peers.retain(|id, _| local.contains(id));

        let mut dns: BTreeMap<String, (String, Record)> = BTreeMap::new();
        for r in &live {
            if !local.contains(&r.network_id) || r.names.is_empty() {
                continue;
            }
            dns.insert(
                dns_owner(&r.endpoint_id),
                (
                    r.network_id.clone(),
                    Record {
                        names: r.names.clone(),
                        addrs: vec![IpAddr::V4(r.ipv4.addr())],
                        ptr_name: r.names.get(1).cloned().unwrap_or_default(),
                    },
                ),
            );
        }
        for owner in applied.dns.keys() {
            if !dns.contains_key(owner) {
                self.resolver.set_records(owner, Vec::new());
            }
        }
        for (owner, rec) in &dns {
            if applied.dns.get(owner) != Some(rec) {
                self.resolver.set_records(owner, vec![rec.clone()]);
            }
        }
        applied.dns = dns;
    }

    /// The endpoints of swarm network `net` on the other nodes that are up, as
    /// `network inspect` lists them next to this node's.
    pub(crate) fn remote_endpoints(&self, net: &Network) -> Vec<Endpoint> {
        let Some(swarm) = self.swarm() else {
            return Vec::new();
        };
        let Some(me) = swarm.local_node() else {
            return Vec::new();
        };
        swarm
            .global_endpoints()
            .into_iter()
            .filter(|r| r.network_id == net.id && r.node_id != me.node_id)
            .filter(|r| swarm.is_up(&r.node_id))
            .map(|r| Endpoint {
                id: r.endpoint_id,
                network_id: r.network_id,
                container_id: r.container_id,
                container_name: r.container_name,
                ifname: String::new(),
                host_ifname: String::new(),
                mac: r.mac,
                ipv4: Some(r.ipv4),
                ipv6: None,
                gateway4: None,
                gateway6: None,
                aliases: Vec::new(),
                default_route: false,
            })
            .collect()
    }
}
