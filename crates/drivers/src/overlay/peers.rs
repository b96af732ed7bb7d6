//! Remote endpoints and what an overlay sandbox should hold for them: the names of its
//! devices, one bridge and one VXLAN device per subnet, and the static FDB and neighbour
//! entries of every remote endpoint. Pure code: the kernel side only applies the
//! differences computed here.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};
use netloom_kernel::{FdbEntry, NeighEntry};
use netloom_model::DriverError;

use super::config::OverlayConfig;

/// An endpoint of the network on another node, as the control plane announces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerEndpoint {
    /// The endpoint's overlay address.
    pub ip: Ipv4Addr,
    /// The endpoint's MAC.
    pub mac: [u8; 6],
    /// The data-path address of the node it lives on (its VTEP).
    pub vtep: IpAddr,
}

/// Path component of a network's sandbox under the driver's namespace directory.
pub fn sandbox_name(net_id: &str) -> String {
    format!("ov-{}", netloom_model::short_id(net_id))
}

fn id5(net_id: &str) -> &str {
    net_id.get(..5).unwrap_or(net_id)
}

/// The bridge of a subnet inside the sandbox (Docker's `ov-<vni>-<id>` naming).
pub fn bridge_name(vni: u32, net_id: &str) -> String {
    format!("ov-{vni:06x}-{}", id5(net_id))
}

/// The VXLAN device of a subnet inside the sandbox (Docker's `vx-<vni>-<id>` naming).
pub fn vxlan_name(vni: u32, net_id: &str) -> String {
    format!("vx-{vni:06x}-{}", id5(net_id))
}

/// The sandbox side of an endpoint's veth pair.
pub fn veth_name(ep_id: &str) -> String {
    format!("ve{}", netloom_model::short_id(ep_id))
}

/// A stable, locally administered MAC for a subnet's bridge: Docker's form for the
/// gateway address, which no container ever holds.
pub fn bridge_mac(gateway: Ipv4Addr) -> [u8; 6] {
    let o = gateway.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// What one subnet's devices in a node's sandbox should be and carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetPlan {
    /// The subnet.
    pub subnet: Ipv4Net,
    /// Its gateway, with the subnet's prefix, on the bridge.
    pub gateway: Ipv4Net,
    /// Its VNI.
    pub vni: u32,
    /// The bridge's name.
    pub bridge: String,
    /// The VXLAN device's name.
    pub vxlan: String,
    /// FDB entries of the VXLAN device (remote MAC → remote VTEP).
    pub fdb: BTreeSet<FdbEntry>,
    /// Neighbour entries of the VXLAN device (remote IP → remote MAC), from which it
    /// answers ARP itself.
    pub neigh: BTreeSet<NeighEntry>,
}

/// Checks one announced peer against the network's subnets and the node's VTEP family;
/// returns the index of its subnet.
pub fn check_peer(
    cfg: &OverlayConfig,
    net_name: &str,
    local_vtep: IpAddr,
    p: &PeerEndpoint,
) -> Result<usize, DriverError> {
    let bad = |why: String| {
        DriverError::InvalidOption(format!(
            "peer {} of overlay network {net_name}: {why}",
            p.ip
        ))
    };
    let Some(i) = cfg.subnets.iter().position(|s| s.subnet.contains(&p.ip)) else {
        return Err(bad("the address is in none of the network's subnets".into()));
    };
    let s = &cfg.subnets[i];
    if p.ip == s.gateway || p.ip == s.subnet.network() || p.ip == s.subnet.broadcast() {
        return Err(bad(format!(
            "the address is the gateway, network or broadcast address of {}",
            s.subnet
        )));
    }
    if p.mac == [0; 6] || p.mac[0] & 1 == 1 {
        return Err(bad("the MAC is not a unicast address".into()));
    }
    if p.vtep.is_ipv4() != local_vtep.is_ipv4() || p.vtep.is_unspecified() {
        return Err(bad(format!(
            "VTEP {} is not a usable address of the data path's family (this node's is {local_vtep})",
            p.vtep
        )));
    }
    Ok(i)
}

/// What the sandbox of network `net_id` should hold on a node whose VTEP is
/// `local_vtep`, given the network's config (VNIs allocated) and its remote peers.
/// Peers on this node (VTEP = `local_vtep`) need no entry: their containers are on the
/// local bridge.
pub fn plan(
    net_id: &str,
    net_name: &str,
    cfg: &OverlayConfig,
    peers: &BTreeMap<Ipv4Addr, PeerEndpoint>,
    local_vtep: IpAddr,
) -> Result<Vec<SubnetPlan>, DriverError> {
    let vnis = cfg.vnis(net_name)?;
    let mut out: Vec<SubnetPlan> = cfg
        .subnets
        .iter()
        .zip(vnis)
        .map(|(s, vni)| SubnetPlan {
            subnet: s.subnet,
            gateway: Ipv4Net::new(s.gateway, s.subnet.prefix_len()).unwrap_or(s.subnet),
            vni,
            bridge: bridge_name(vni, net_id),
            vxlan: vxlan_name(vni, net_id),
            fdb: BTreeSet::new(),
            neigh: BTreeSet::new(),
        })
        .collect();
    for p in peers.values().filter(|p| p.vtep != local_vtep) {
        let i = check_peer(cfg, net_name, local_vtep, p)?;
        if let Some(sp) = out.get_mut(i) {
            sp.fdb.insert(FdbEntry {
                mac: p.mac,
                dst: p.vtep,
            });
            sp.neigh.insert(NeighEntry {
                ip: IpAddr::V4(p.ip),
                mac: p.mac,
            });
        }
    }
    Ok(out)
}

/// The entries to remove and to add to turn `have` into `want`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff<T> {
    /// In the kernel but not wanted (stale).
    pub remove: Vec<T>,
    /// Wanted but not in the kernel (missing).
    pub add: Vec<T>,
}

/// Compares what the kernel holds with what should be there.
pub fn diff<T: Ord + Clone>(have: &[T], want: &BTreeSet<T>) -> Diff<T> {
    let have: BTreeSet<T> = have.iter().cloned().collect();
    Diff {
        remove: have.difference(want).cloned().collect(),
        add: want.difference(&have).cloned().collect(),
    }
}

/// The routes a container on subnet `own` needs to the network's other subnets: each
/// via its own subnet's gateway, which routes between the bridges inside the sandbox.
pub fn subnet_routes(plans: &[SubnetPlan], own: usize) -> Vec<(IpNet, Option<IpAddr>)> {
    let Some(me) = plans.get(own) else {
        return Vec::new();
    };
    plans
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != own)
        .map(|(_, p)| (IpNet::V4(p.subnet), Some(IpAddr::V4(me.gateway.addr()))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::config::SubnetConfig;
    use super::*;

    fn cfg() -> OverlayConfig {
        OverlayConfig {
            subnets: vec![
                SubnetConfig {
                    subnet: "10.1.1.0/24".parse().unwrap_or_default(),
                    gateway: Ipv4Addr::new(10, 1, 1, 1),
                    vni: Some(4096),
                },
                SubnetConfig {
                    subnet: "10.1.2.0/24".parse().unwrap_or_default(),
                    gateway: Ipv4Addr::new(10, 1, 2, 1),
                    vni: Some(4097),
                },
            ],
            mtu: None,
        }
    }

    fn peer(ip: [u8; 4], vtep: [u8; 4]) -> PeerEndpoint {
        let ip = Ipv4Addr::from(ip);
        PeerEndpoint {
            ip,
            mac: bridge_mac(ip),
            vtep: IpAddr::V4(Ipv4Addr::from(vtep)),
        }
    }

    const ME: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 1, 11));
    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn names_fit_ifnamsiz() {
        assert_eq!(bridge_name(4096, ID), "ov-001000-01234");
        assert_eq!(vxlan_name(4096, ID), "vx-001000-01234");
        assert_eq!(vxlan_name(VNI, ID).len(), 15);
        assert_eq!(veth_name(ID), "ve0123456789ab");
        assert_eq!(sandbox_name(ID), "ov-0123456789ab");
    }
    const VNI: u32 = super::super::config::VNI_MAX;

    #[test]
    fn peers_land_on_their_subnet_and_local_ones_are_skipped() {
        let mut peers = BTreeMap::new();
        for p in [
            peer([10, 1, 1, 3], [198, 18, 2, 12]),
            peer([10, 1, 2, 7], [198, 18, 2, 12]),
            peer([10, 1, 1, 4], [198, 18, 1, 11]), // on this node
        ] {
            peers.insert(p.ip, p);
        }
        let plans = plan(ID, "ov", &cfg(), &peers, ME).unwrap_or_default();
        assert_eq!(plans.len(), 2);
        assert_eq!(plans[0].gateway.to_string(), "10.1.1.1/24");
        assert_eq!(plans[0].fdb.len(), 1);
        assert_eq!(plans[1].fdb.len(), 1);
        let n: Vec<_> = plans[0].neigh.iter().map(|n| n.ip.to_string()).collect();
        assert_eq!(n, ["10.1.1.3"]);
        let dst: Vec<_> = plans[1].fdb.iter().map(|f| f.dst.to_string()).collect();
        assert_eq!(dst, ["198.18.2.12"]);
        let r = subnet_routes(&plans, 0);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].0.to_string(), "10.1.2.0/24");
        assert_eq!(r[0].1.map(|g| g.to_string()).as_deref(), Some("10.1.1.1"));
    }

    #[test]
    fn bad_peers_are_refused() {
        let c = cfg();
        let mut p = peer([10, 9, 9, 9], [198, 18, 2, 12]);
        assert!(check_peer(&c, "ov", ME, &p).is_err());
        p = peer([10, 1, 1, 1], [198, 18, 2, 12]);
        assert!(check_peer(&c, "ov", ME, &p).is_err());
        p = peer([10, 1, 1, 5], [198, 18, 2, 12]);
        p.mac = [0x01, 0, 0, 0, 0, 1];
        assert!(check_peer(&c, "ov", ME, &p).is_err());
        p = peer([10, 1, 1, 5], [0, 0, 0, 0]);
        assert!(check_peer(&c, "ov", ME, &p).is_err());
        p = peer([10, 1, 2, 5], [198, 18, 2, 12]);
        assert_eq!(check_peer(&c, "ov", ME, &p).ok(), Some(1));
    }

    #[test]
    fn diff_finds_stale_and_missing_entries() {
        let a = FdbEntry {
            mac: [2, 0x42, 10, 1, 1, 3],
            dst: IpAddr::V4(Ipv4Addr::new(198, 18, 2, 12)),
        };
        let moved = FdbEntry {
            dst: IpAddr::V4(Ipv4Addr::new(198, 18, 1, 13)),
            ..a
        };
        let b = FdbEntry {
            mac: [2, 0x42, 10, 1, 1, 4],
            ..a
        };
        let want: BTreeSet<_> = [moved, b].into_iter().collect();
        let d = diff(&[a, b], &want);
        assert_eq!(d.remove, vec![a]);
        assert_eq!(d.add, vec![moved]);
        assert_eq!(diff(&[moved, b], &want).add.len(), 0);
    }
}
