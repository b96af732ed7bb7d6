//! Swarm-scoped networks and their endpoints in the cluster store: what the overlay
//! control plane keeps there, and how a node reads and writes it.
//!
//! - `swarm/networks/<id>`: the network record (scope `swarm`), written by a manager
//!   once it allocated the network's subnets (from the swarm's default address pool)
//!   and VNIs (from 4096 up). Every allocation is one transaction that also updates
//!   [`ALLOC`] at the version it read: two managers allocating at once cannot hand out
//!   the same subnet or VNI (the loser's compare-and-set fails and it allocates again).
//! - `swarm/endpoints/<net>/<ep>`: an endpoint on a node ([`EndpointRecord`]), written
//!   by that node (a worker through a manager, `POST /endpoints`) together with
//!   `swarm/alloc/addrs/<net>/<ip>` created only if absent, so no address is used twice
//!   across the nodes.
//!
//! Both prefixes are relayed to every node ([`super::relay::RELAYED`]).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};
use netloom_cluster::Role;
use netloom_model::{IpamPoolConfig, Network};
use netloom_store::{Expect, Op, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::warn;

use super::removal::removing_key;
use super::{ERR_NOT_IN_SWARM, Swarm, net, store_err};
use crate::error::CtlError;

/// Prefix of the swarm's network records.
pub const NETWORKS: &str = "swarm/networks/";
/// Prefix of the endpoint records (`swarm/endpoints/<net>/<ep>`).
pub const ENDPOINTS: &str = "swarm/endpoints/";
/// The allocation fence: every network allocation updates it at the version it read.
const ALLOC: &str = "swarm/alloc/networks";
/// Prefix of the address claims (`swarm/alloc/addrs/<net>/<ip>`).
const ADDRS: &str = "swarm/alloc/addrs/";
/// How many times an allocation that lost a race is tried again.
const RETRIES: usize = 8;

/// Docker's message for an overlay network created on a worker.
pub const ERR_WORKER_NETWORK: &str = "Cannot create a multi-host network from a worker node. Please create the network from a manager node.";

/// One endpoint of a swarm-scoped network, as its node publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    /// The node it lives on.
    pub node_id: String,
    /// The network.
    pub network_id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// Its container.
    pub container_id: String,
    /// The container's name (as `network inspect` shows it).
    pub container_name: String,
    /// Its address and prefix length.
    pub ipv4: Ipv4Net,
    /// Its MAC (`aa:bb:…`).
    pub mac: String,
    /// The node's data-path address (the VTEP other nodes send to).
    pub vtep: IpAddr,
    /// The DNS names it answers to on the network.
    #[serde(default)]
    pub names: Vec<String>,
}

/// A node's call about its endpoints (`POST /endpoints` on a manager).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointCall {
    /// Publish (claiming the address unless `reclaim`) or withdraw.
    pub publish: bool,
    /// Re-publishing after a restart: the address claim may exist already.
    #[serde(default)]
    pub reclaim: bool,
    /// The endpoint.
    pub record: EndpointRecord,
}

/// This node's place in the swarm, as the overlay control plane needs it.
#[derive(Debug, Clone)]
pub struct LocalNode {
    /// Its node ID.
    pub node_id: String,
    /// Whether it is a manager.
    pub manager: bool,
    /// Its data-path address.
    pub data_path: IpAddr,
    /// The swarm's VXLAN port.
    pub port: u16,
}

fn addr_key(net: &str, ip: Ipv4Addr) -> String {
    format!("{ADDRS}{net}/{ip}")
}

/// The key of an endpoint record.
pub fn endpoint_key(net: &str, ep: &str) -> String {
    format!("{ENDPOINTS}{net}/{ep}")
}

fn encode<T: Serialize>(key: String, v: &T, expect: Expect) -> Result<Op, CtlError> {
    Op::put_json(key, v, expect).map_err(|e| CtlError::internal(e.to_string()))
}

fn is_conflict(e: &StoreError) -> bool {
    matches!(e, StoreError::Conflict { .. })
}

/// The next free subnet of `size` bits in `pools`, overlapping none of `used`.
fn free_subnet(pools: &[Ipv4Net], size: u8, used: &[Ipv4Net]) -> Option<Ipv4Net> {
    for p in pools {
        let Ok(subs) = p.subnets(size) else { continue };
        for s in subs {
            if !used.iter().any(|u| u.contains(&s) || s.contains(u)) {
                return Some(s);
            }
        }
    }
    None
}

fn v4_subnets(n: &Network) -> Vec<Ipv4Net> {
    n.ipam
        .configs
        .iter()
        .filter_map(|c| match c.subnet {
            IpNet::V4(s) => Some(s),
            IpNet::V6(_) => None,
        })
        .collect()
}

fn vnis_of(n: &Network) -> Vec<u32> {
    n.options
        .get(netloom_drivers::overlay::OPT_VXLANID_LIST)
        .map(|l| l.split(',').filter_map(|v| v.trim().parse().ok()).collect())
        .unwrap_or_default()
}

impl Swarm {
    /// This node in the swarm (`None` outside one).
    pub fn local_node(&self) -> Option<LocalNode> {
        let n = self.node()?;
        let l = n.local();
        let data = if l.data_path_addr.is_empty() {
            &l.advertise_addr
        } else {
            &l.data_path_addr
        };
        let data_path = data.parse().ok()?;
        Some(LocalNode {
            node_id: l.node_id,
            manager: l.role == Role::Manager,
            data_path,
            port: l.data_path_port,
        })
    }

    /// Whether SWIM sees node `id` alive (this node always is).
    pub fn is_up(&self, id: &str) -> bool {
        match self.node() {
            Some(n) => n.local().node_id == id || n.membership.is_up(id),
            None => false,
        }
    }

    /// What this node's relay holds under `prefix` (key, value).
    pub fn relayed(&self, prefix: &str) -> Vec<(String, Value)> {
        self.relay.snapshot(prefix)
    }

    /// Whether this node's relay has received `prefix` once.
    pub fn relay_ready(&self, prefix: &str) -> bool {
        self.relay.is_ready(prefix)
    }

    /// The swarm's networks, as this node's relay holds them.
    pub fn global_networks(&self) -> Vec<Network> {
        self.relayed(NETWORKS)
            .into_iter()
            .filter_map(|(_, v)| serde_json::from_value(v).ok())
            .collect()
    }

    /// The endpoints of swarm networks, as this node's relay holds them.
    pub fn global_endpoints(&self) -> Vec<EndpointRecord> {
        self.relayed(ENDPOINTS)
            .into_iter()
            .filter_map(|(_, v)| serde_json::from_value(v).ok())
            .collect()
    }

    /// Creates a swarm network on this manager: allocates the subnets `net` leaves open
    /// (from the default address pool) and its VNIs (`vni_count`, or the requested ones
    /// in its options), and stores it. Returns the stored record.
    pub async fn create_global_network(
        &self,
        mut net: Network,
        vni_count: usize,
    ) -> Result<Network, CtlError> {
        let n = self
            .node()
            .ok_or_else(|| CtlError::unavailable(ERR_NOT_IN_SWARM))?;
        if n.local().role != Role::Manager {
            return Err(CtlError::forbidden(ERR_WORKER_NETWORK));
        }
        let store = self.store();
        let requested = match net.options.get(netloom_drivers::overlay::OPT_VXLANID_LIST) {
            Some(l) => Some(netloom_drivers::overlay::config::parse_vni_list(l)?),
            None => None,
        };
        let base = net.clone();
        for _ in 0..RETRIES {
            net = base.clone();
            let c = store
                .cluster()
                .await
                .map_err(store_err)?
                .ok_or_else(|| CtlError::unavailable(ERR_NOT_IN_SWARM))?;
            let fence = store
                .raw()
                .get(ALLOC)
                .await
                .map_err(|e| store_err(store.err(e)))?;
            let existing: Vec<Network> = store
                .raw()
                .list(NETWORKS)
                .await
                .map_err(|e| store_err(store.err(e)))?
                .items
                .into_iter()
                .filter_map(|(_, v)| serde_json::from_slice(&v.value).ok())
                .collect();
            if existing.iter().any(|e| e.name == net.name) {
                return Err(CtlError::conflict(format!(
                    "network with name {} already exists",
                    net.name
                )));
            }
            let mut used: Vec<Ipv4Net> = existing.iter().flat_map(v4_subnets).collect();
            let pools: Vec<Ipv4Net> = c
                .value
                .default_addr_pool
                .iter()
                .filter_map(|p| p.parse().ok())
                .collect();
            let size = u8::try_from(c.value.subnet_size).unwrap_or(24);
            for cfg in net.ipam.configs.iter_mut() {
                let IpNet::V4(s) = cfg.subnet else { continue };
                if s.prefix_len() != 0 {
                    if let Some(o) = used.iter().find(|u| u.contains(&s) || s.contains(*u)) {
                        return Err(CtlError::forbidden(format!(
                            "invalid pool request: Pool overlaps with other one on this address space (subnet {s} overlaps {o} of another swarm network)"
                        )));
                    }
                    used.push(s);
                    continue;
                }
                let got = free_subnet(&pools, size, &used).ok_or_else(|| {
                    CtlError::forbidden(
                        "could not find an available, non-overlapping IPv4 address pool among the swarm's default address pools",
                    )
                })?;
                used.push(got);
                cfg.subnet = IpNet::V4(got);
                if cfg.gateway.is_none() {
                    cfg.gateway = netloom_ipam::first_host(&cfg.subnet);
                }
            }
            if net.ipam.configs.is_empty() {
                let got = free_subnet(&pools, size, &used).ok_or_else(|| {
                    CtlError::forbidden(
                        "could not find an available, non-overlapping IPv4 address pool among the swarm's default address pools",
                    )
                })?;
                let subnet = IpNet::V4(got);
                net.ipam.configs.push(IpamPoolConfig {
                    subnet,
                    ip_range: None,
                    gateway: netloom_ipam::first_host(&subnet),
                    aux: Default::default(),
                    pool_id: String::new(),
                });
            }
            let count = vni_count.max(net.ipam.configs.len());
            let in_use: BTreeSet<u32> = existing.iter().flat_map(vnis_of).collect();
            let vnis =
                netloom_drivers::overlay::allocate_vnis(&in_use, count, requested.as_deref())?;
            netloom_drivers::overlay::set_vnis(&mut net.options, &vnis);
            let mut ops = vec![
                encode(format!("{NETWORKS}{}", net.id), &net, Expect::Absent)?,
                encode(
                    ALLOC.to_string(),
                    &net.id,
                    fence
                        .map(|f| Expect::Version(f.version))
                        .unwrap_or(Expect::Absent),
                )?,
            ];
            if let Some(t) = n.leadership.as_ref().and_then(|l| l.term()) {
                ops.push(t.fence());
            }
            match store.raw().apply(ops).await {
                Ok(_) => return Ok(net),
                Err(e) if is_conflict(&e) => continue,
                Err(e) => return Err(store_err(store.err(e))),
            }
        }
        Err(CtlError::conflict(
            "the swarm's network allocation kept changing concurrently; try again",
        ))
    }

    /// Removes a swarm network on this manager; refused while endpoints of nodes that
    /// are up use it (the records of nodes that are not are removed with it).
    ///
    /// Transactional against concurrent publications: a marker
    /// (`swarm/alloc/removing/<net>`) is written first, and a publication checks it is
    /// absent in its own transaction, so an endpoint published after the endpoints were
    /// listed fails instead of being left on a network that is gone. The marker lives
    /// on this manager's lease and never outlives the removal ([`super::removal`]).
    pub async fn remove_global_network(&self, id: &str, name: &str) -> Result<(), CtlError> {
        let n = self
            .node()
            .ok_or_else(|| CtlError::unavailable(ERR_NOT_IN_SWARM))?;
        if n.local().role != Role::Manager {
            return Err(CtlError::forbidden(format!(
                "network {name} is a swarm network: remove it on a manager node"
            )));
        }
        let removal = self.mark_removal(id, &n.local().node_id).await?;
        let res = self.remove_marked(id, name).await;
        // Whatever the outcome, the marker goes with its lease (a removal that
        // succeeded deleted it already).
        removal.finish().await;
        res
    }

    async fn remove_marked(&self, id: &str, name: &str) -> Result<(), CtlError> {
        let store = self.store();
        let eps = store
            .raw()
            .list(&format!("{ENDPOINTS}{id}/"))
            .await
            .map_err(|e| store_err(store.err(e)))?;
        let mut ops = vec![
            Op::Delete {
                key: format!("{NETWORKS}{id}"),
                expect: Expect::Any,
            },
            Op::Delete {
                key: removing_key(id),
                expect: Expect::Any,
            },
        ];
        for (k, v) in &eps.items {
            let rec = serde_json::from_slice::<EndpointRecord>(&v.value).ok();
            match rec {
                Some(r) if !self.is_up(&r.node_id) => ops.push(Op::Delete {
                    key: k.clone(),
                    expect: Expect::Version(v.version),
                }),
                Some(r) => {
                    return Err(CtlError::forbidden(format!(
                        "error while removing network: network {name} id {id} has active endpoints ({} on node {})",
                        r.container_name, r.node_id
                    )));
                }
                None => ops.push(Op::Delete {
                    key: k.clone(),
                    expect: Expect::Version(v.version),
                }),
            }
        }
        for (k, _) in store
            .raw()
            .list(&format!("{ADDRS}{id}/"))
            .await
            .map_err(|e| store_err(store.err(e)))?
            .items
        {
            ops.push(Op::Delete {
                key: k,
                expect: Expect::Any,
            });
        }
        match store.raw().apply(ops).await {
            Ok(_) => Ok(()),
            Err(e) if is_conflict(&e) => Err(CtlError::conflict(format!(
                "network {name}'s endpoints changed while it was being removed: try again"
            ))),
            Err(e) => Err(store_err(store.err(e))),
        }
    }

    /// Publishes (or withdraws) one of this node's endpoints: directly on a manager,
    /// through one on a worker. A claimed address another endpoint holds is a conflict.
    pub async fn endpoint_call(&self, call: EndpointCall) -> Result<(), CtlError> {
        let n = self
            .node()
            .ok_or_else(|| CtlError::unavailable(ERR_NOT_IN_SWARM))?;
        let l = n.local();
        if l.role == Role::Manager {
            return self.apply_endpoint(&call).await;
        }
        let cfg = netloom_cluster::tls::client_config(&l.trusted_cas, Some(&l.cert))
            .map_err(|e| CtlError::internal(e.to_string()))?;
        let mut last = CtlError::unavailable("no manager known to publish the endpoint to");
        // The connection of the last call first, if it is still open.
        let mut kept = n.endpoint_conn.lock().await;
        let cached = kept.take().filter(|(_, c)| c.is_open());
        let mut order: Vec<String> = Vec::new();
        if let Some((a, _)) = &cached {
            order.push(a.clone());
        }
        // Then every manager afresh (the kept one too: its connection may have gone
        // stale).
        for m in l.managers.iter().filter(|m| m.node_id != l.node_id) {
            order.push(m.addr.clone());
        }
        let mut cached = cached;
        // A manager's verdict (conflict, refusal, unknown network) is final; one that
        // cannot be reached or cannot reach the store now (5xx) is not: the next
        // manager is tried.
        for addr in order {
            let mut c = match cached.take() {
                Some((a, c)) if a == addr => c,
                _ => match net::connect(&addr, cfg.clone()).await {
                    Ok(c) => c,
                    Err(e) => {
                        last = CtlError::unavailable(e.to_string());
                        continue;
                    }
                },
            };
            match c.call::<_, Value>("/endpoints", Some(&call)).await {
                Ok(_) => {
                    *kept = Some((addr, c));
                    return Ok(());
                }
                Err(net::CallError::Refused { status, message }) if status < 500 => {
                    *kept = Some((addr, c));
                    return Err(match status {
                        409 => CtlError::conflict(message),
                        404 => CtlError::not_found(message),
                        400 => CtlError::invalid(message),
                        _ => CtlError::forbidden(message),
                    });
                }
                Err(e) => {
                    warn!(manager = %addr, error = %e, "endpoint call failed; trying another manager");
                    last = CtlError::unavailable(e.to_string());
                }
            }
        }
        Err(last)
    }

    /// `POST /endpoints` from node `who`: its own endpoints only.
    pub(super) async fn serve_endpoints(
        &self,
        who: &str,
        call: EndpointCall,
    ) -> Result<Value, CtlError> {
        if call.record.node_id != who {
            return Err(CtlError::forbidden(format!(
                "node {who} cannot publish endpoints of node {}",
                call.record.node_id
            )));
        }
        self.apply_endpoint(&call).await?;
        Ok(Value::Object(Default::default()))
    }

    async fn apply_endpoint(&self, call: &EndpointCall) -> Result<(), CtlError> {
        let res = self.apply_endpoint_once(call).await;
        // A removal marker its removal left behind is dropped, and the publication
        // tried again.
        if res.is_err()
            && call.publish
            && self
                .clear_stale_marker(&call.record.network_id)
                .await
                .unwrap_or(false)
        {
            return self.apply_endpoint_once(call).await;
        }
        res
    }

    async fn apply_endpoint_once(&self, call: &EndpointCall) -> Result<(), CtlError> {
        let store = self.store();
        let r = &call.record;
        let ak = addr_key(&r.network_id, r.ipv4.addr());
        let ek = endpoint_key(&r.network_id, &r.endpoint_id);
        let get = |k: String| async move {
            self.store()
                .raw()
                .get(&k)
                .await
                .map_err(|e| store_err(self.store().err(e)))
        };
        // An endpoint record belongs to the node that published it: no other node may
        // overwrite or withdraw it.
        let current = get(ek.clone()).await?;
        if let Some(v) = &current
            && let Ok(old) = serde_json::from_slice::<EndpointRecord>(&v.value)
            && old.node_id != r.node_id
        {
            return Err(CtlError::forbidden(format!(
                "endpoint {} of network {} belongs to node {}: node {} cannot change it",
                netloom_model::short_id(&r.endpoint_id),
                netloom_model::short_id(&r.network_id),
                old.node_id,
                r.node_id
            )));
        }
        let ek_expect = current
            .as_ref()
            .map(|v| Expect::Version(v.version))
            .unwrap_or(Expect::Absent);
        let ops = if call.publish {
            let nk = format!("{NETWORKS}{}", r.network_id);
            let Some(netv) = get(nk.clone()).await? else {
                return Err(CtlError::not_found(format!(
                    "network {} not found in the swarm",
                    netloom_model::short_id(&r.network_id)
                )));
            };
            let claim = if call.reclaim {
                Expect::Any
            } else {
                Expect::Absent
            };
            vec![
                // The network stays, and is not being removed, while this is applied.
                Op::Check {
                    key: nk,
                    expect: Expect::Version(netv.version),
                },
                Op::Check {
                    key: removing_key(&r.network_id),
                    expect: Expect::Absent,
                },
                encode(ak.clone(), &r.endpoint_id, claim)?,
                encode(ek, r, ek_expect)?,
            ]
        } else {
            if current.is_none() {
                return Ok(());
            }
            // The claim goes only if it is this endpoint's.
            let mut ops = vec![Op::Delete {
                key: ek,
                expect: ek_expect,
            }];
            if let Some(v) = get(ak.clone()).await?
                && serde_json::from_slice::<String>(&v.value).ok().as_deref()
                    == Some(&r.endpoint_id)
            {
                ops.push(Op::Delete {
                    key: ak.clone(),
                    expect: Expect::Version(v.version),
                });
            }
            ops
        };
        match store.raw().apply(ops).await {
            Ok(_) => Ok(()),
            Err(e) if is_conflict(&e) => {
                if call.publish {
                    let nk = format!("{NETWORKS}{}", r.network_id);
                    if get(nk).await?.is_none() || get(removing_key(&r.network_id)).await?.is_some()
                    {
                        return Err(CtlError::forbidden(format!(
                            "network {} is being removed from the swarm",
                            netloom_model::short_id(&r.network_id)
                        )));
                    }
                    if get(ak).await?.is_none() {
                        // Something else changed meanwhile (the record): the caller
                        // may try again.
                        return Err(CtlError::unavailable(format!(
                            "endpoint {} changed concurrently: try again",
                            netloom_model::short_id(&r.endpoint_id)
                        )));
                    }
                }
                Err(CtlError::conflict(format!(
                    "address {} is already in use on network {}",
                    r.ipv4.addr(),
                    netloom_model::short_id(&r.network_id)
                )))
            }
            Err(e) => Err(store_err(store.err(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_skip_what_is_used() {
        let pools: Vec<Ipv4Net> = vec!["10.0.0.0/8".parse().unwrap()];
        let used: Vec<Ipv4Net> = vec!["10.0.0.0/24".parse().unwrap()];
        assert_eq!(
            free_subnet(&pools, 24, &used),
            Some("10.0.1.0/24".parse().unwrap())
        );
        let used: Vec<Ipv4Net> = vec!["10.0.0.0/16".parse().unwrap()];
        assert_eq!(
            free_subnet(&pools, 24, &used),
            Some("10.1.0.0/24".parse().unwrap())
        );
        let small: Vec<Ipv4Net> = vec!["10.9.0.0/24".parse().unwrap()];
        assert_eq!(free_subnet(&small, 24, &small), None);
    }
}
