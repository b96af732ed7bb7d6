//! Options of the overlay driver and VNI allocation, parsed and checked before anything
//! touches the kernel (pure code, unit-tested).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};
use netloom_model::{DriverError, Network};

/// `com.docker.network.driver.overlay.vxlanid_list`: the VNIs of the network's IPv4
/// subnets, in order, comma-separated (the manager's allocation writes it, as Docker's
/// `ovmanager` does; a user may give it at creation).
pub const OPT_VXLANID_LIST: &str = "com.docker.network.driver.overlay.vxlanid_list";
/// `com.docker.network.driver.mtu`: the MTU of the network's interfaces, instead of the
/// underlay's MTU minus the VXLAN overhead.
pub const OPT_MTU: &str = crate::bridge::OPT_MTU;
/// `encrypted`: Docker's IPsec data plane (not implemented yet, so refused).
const OPT_ENCRYPTED: &str = "encrypted";

const KNOWN: &[&str] = &[OPT_VXLANID_LIST, OPT_MTU];

/// The first VNI the allocator hands out (Docker's `vxlanIDStart`).
pub const VNI_FIRST: u32 = 4096;
/// The largest VNI (24 bits).
pub const VNI_MAX: u32 = (1 << 24) - 1;
/// VXLAN encapsulation overhead on an IPv4 underlay: outer IPv4 (20) + UDP (8) +
/// VXLAN (8) + inner Ethernet (14).
pub const VXLAN_OVERHEAD_V4: u32 = 50;
/// The same on an IPv6 underlay (outer header 40 bytes).
pub const VXLAN_OVERHEAD_V6: u32 = 70;

/// One IPv4 subnet of an overlay network: its own bridge and VXLAN device (VNI) in the
/// network's sandbox, as Docker does (one VNI per subnet; the subnets of one network are
/// routed between each other inside the sandbox).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetConfig {
    /// The subnet.
    pub subnet: Ipv4Net,
    /// Its gateway, carried by the subnet's bridge in every node's sandbox.
    pub gateway: Ipv4Addr,
    /// Its VNI, once allocated.
    pub vni: Option<u32>,
}

/// Parsed options of an overlay network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayConfig {
    /// The IPv4 subnets, in IPAM order.
    pub subnets: Vec<SubnetConfig>,
    /// MTU from `com.docker.network.driver.mtu`.
    pub mtu: Option<u32>,
}

fn invalid(msg: String) -> DriverError {
    DriverError::InvalidOption(msg)
}

impl OverlayConfig {
    /// Parses and validates the network's options and pools: unknown options, bad VNI
    /// lists, IPv6 pools and subnets without a gateway are errors. A missing
    /// `vxlanid_list` is fine here (the manager allocates the VNIs later).
    pub fn parse(net: &Network) -> Result<Self, DriverError> {
        let opts = &net.options;
        if opts.contains_key(OPT_ENCRYPTED) {
            return Err(DriverError::NotSupported(format!(
                "overlay network {}: option {OPT_ENCRYPTED:?} (an encrypted data plane) is not implemented yet; create the network without -o {OPT_ENCRYPTED}",
                net.name
            )));
        }
        crate::check_known("overlay", opts, KNOWN)?;
        let mtu = match opts.get(OPT_MTU) {
            Some(v) => Some(crate::bridge::config::parse_mtu(v)?),
            None => None,
        };
        let mut subnets = Vec::new();
        for pool in &net.ipam.configs {
            let IpNet::V4(subnet) = pool.subnet else {
                return Err(DriverError::NotSupported(format!(
                    "overlay network {}: IPv6 subnet {} is not supported on overlay networks yet; use IPv4 subnets only",
                    net.name, pool.subnet
                )));
            };
            let gateway = match pool.gateway {
                Some(std::net::IpAddr::V4(g)) if subnet.contains(&g) => g,
                Some(g) => {
                    return Err(invalid(format!(
                        "overlay network {}: gateway {g} is not in subnet {subnet}",
                        net.name
                    )));
                }
                None => {
                    return Err(invalid(format!(
                        "overlay network {}: subnet {subnet} has no gateway address",
                        net.name
                    )));
                }
            };
            subnets.push(SubnetConfig {
                subnet,
                gateway,
                vni: None,
            });
        }
        if subnets.is_empty() {
            return Err(invalid(format!(
                "overlay network {} has no IPv4 subnet",
                net.name
            )));
        }
        for (i, a) in subnets.iter().enumerate() {
            if let Some(b) = subnets[i + 1..].iter().find(|b| {
                a.subnet.contains(&b.subnet.network()) || b.subnet.contains(&a.subnet.network())
            }) {
                return Err(invalid(format!(
                    "overlay network {}: subnets {} and {} overlap",
                    net.name, a.subnet, b.subnet
                )));
            }
        }
        if let Some(list) = opts.get(OPT_VXLANID_LIST) {
            let vnis = parse_vni_list(list)?;
            if vnis.len() != subnets.len() {
                return Err(invalid(format!(
                    "invalid {OPT_VXLANID_LIST} {list:?}: it gives {} VNI(s) for {} IPv4 subnet(s) of network {}; give exactly one per subnet, in order",
                    vnis.len(),
                    subnets.len(),
                    net.name
                )));
            }
            for (s, v) in subnets.iter_mut().zip(vnis) {
                s.vni = Some(v);
            }
        }
        Ok(OverlayConfig { subnets, mtu })
    }

    /// The VNIs of every subnet, or an error naming the network if the manager has not
    /// allocated them yet.
    pub fn vnis(&self, net_name: &str) -> Result<Vec<u32>, DriverError> {
        self.subnets
            .iter()
            .map(|s| {
                s.vni.ok_or_else(|| {
                    invalid(format!(
                        "overlay network {net_name} has no VNI for subnet {} yet: a manager allocates it ({OPT_VXLANID_LIST})",
                        s.subnet
                    ))
                })
            })
            .collect()
    }

    /// The MTU of the network's interfaces on a node whose underlay interface has MTU
    /// `underlay_mtu`: the option if given, else the underlay MTU minus the VXLAN
    /// overhead of the underlay's family.
    pub fn effective_mtu(&self, underlay_mtu: u32, underlay_v6: bool) -> Result<u32, DriverError> {
        if let Some(m) = self.mtu {
            return Ok(m);
        }
        let overhead = if underlay_v6 {
            VXLAN_OVERHEAD_V6
        } else {
            VXLAN_OVERHEAD_V4
        };
        match underlay_mtu.checked_sub(overhead) {
            Some(m) if m >= 68 => Ok(m),
            _ => Err(invalid(format!(
                "the underlay interface's MTU {underlay_mtu} leaves no room for VXLAN ({overhead} bytes); set {OPT_MTU}"
            ))),
        }
    }
}

/// Parses a `vxlanid_list` value: comma-separated VNIs in 1..=16777215, no repeats.
pub fn parse_vni_list(list: &str) -> Result<Vec<u32>, DriverError> {
    let mut out = Vec::new();
    for part in list.split(',') {
        let p = part.trim();
        let v = match p.parse::<u32>() {
            Ok(v) if (1..=VNI_MAX).contains(&v) => v,
            _ => {
                return Err(invalid(format!(
                    "invalid {OPT_VXLANID_LIST} {list:?}: {p:?} is not a VNI (a number from 1 to {VNI_MAX})"
                )));
            }
        };
        if out.contains(&v) {
            return Err(invalid(format!(
                "invalid {OPT_VXLANID_LIST} {list:?}: VNI {v} is given twice"
            )));
        }
        out.push(v);
    }
    Ok(out)
}

/// Allocates `count` VNIs for a new network on a manager: the requested ones (a
/// user's `vxlanid_list`) if none is in use, else the lowest free ones from
/// [`VNI_FIRST`] up. `in_use` holds every VNI of the cluster's networks; a VNI is never
/// handed out again while it is in use.
pub fn allocate_vnis(
    in_use: &BTreeSet<u32>,
    count: usize,
    requested: Option<&[u32]>,
) -> Result<Vec<u32>, DriverError> {
    if let Some(req) = requested {
        if let Some(v) = req.iter().find(|v| in_use.contains(v)) {
            return Err(DriverError::Conflict(format!(
                "VNI {v} is already used by another overlay network; choose another {OPT_VXLANID_LIST} or let the manager allocate one"
            )));
        }
        return Ok(req.to_vec());
    }
    let mut out = Vec::with_capacity(count);
    let mut v = VNI_FIRST;
    while out.len() < count {
        if v > VNI_MAX {
            return Err(DriverError::Conflict(
                "no free VNI left (all VNIs from 4096 to 16777215 are in use)".into(),
            ));
        }
        if !in_use.contains(&v) {
            out.push(v);
        }
        v += 1;
    }
    Ok(out)
}

/// Writes allocated VNIs into a network's options (what the manager stores, so that
/// every node's driver reads the same VNIs).
pub fn set_vnis(opts: &mut BTreeMap<String, String>, vnis: &[u32]) {
    let list: Vec<String> = vnis.iter().map(u32::to_string).collect();
    opts.insert(OPT_VXLANID_LIST.to_string(), list.join(","));
}

#[cfg(test)]
mod tests {
    use super::*;
    use netloom_model::{IpamPoolConfig, IpamSpec};

    fn net(subnets: &[(&str, &str)], opts: &[(&str, &str)]) -> Network {
        Network {
            id: "a".repeat(64),
            name: "ov".into(),
            driver: "overlay".into(),
            scope: netloom_model::Scope::Swarm,
            created: String::new(),
            enable_ipv4: true,
            enable_ipv6: false,
            internal: false,
            attachable: true,
            ingress: false,
            predefined: false,
            ipam: IpamSpec {
                driver: "default".into(),
                options: BTreeMap::new(),
                configs: subnets
                    .iter()
                    .map(|(s, g)| IpamPoolConfig {
                        subnet: s.parse().unwrap_or(IpNet::V4(Ipv4Net::default())),
                        ip_range: None,
                        gateway: g.parse().ok(),
                        aux: BTreeMap::new(),
                        pool_id: String::new(),
                    })
                    .collect(),
            },
            options: opts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            labels: BTreeMap::new(),
            iface: String::new(),
            mtu: 0,
        }
    }

    fn err(r: Result<OverlayConfig, DriverError>) -> String {
        match r {
            Ok(c) => panic!("expected an error, got {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn vnis_pair_with_subnets_in_order() {
        let n = net(
            &[("10.1.1.0/24", "10.1.1.1"), ("10.1.2.0/24", "10.1.2.1")],
            &[(OPT_VXLANID_LIST, "4200, 4201"), (OPT_MTU, "1400")],
        );
        let c = OverlayConfig::parse(&n).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.subnets.len(), 2);
        assert_eq!(c.subnets[0].vni, Some(4200));
        assert_eq!(c.subnets[1].vni, Some(4201));
        assert_eq!(c.subnets[1].gateway, Ipv4Addr::new(10, 1, 2, 1));
        assert_eq!(c.mtu, Some(1400));
        assert_eq!(c.vnis("ov").ok(), Some(vec![4200, 4201]));
    }

    #[test]
    fn missing_vnis_parse_but_cannot_be_used() {
        let n = net(&[("10.1.1.0/24", "10.1.1.1")], &[]);
        let c = OverlayConfig::parse(&n).unwrap_or_else(|e| panic!("{e}"));
        let e = c
            .vnis("ov")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("no VNI") && e.contains("10.1.1.0/24"), "{e}");
    }

    #[test]
    fn bad_options_are_refused_with_the_fix() {
        let one = [("10.1.1.0/24", "10.1.1.1")];
        let e = err(OverlayConfig::parse(&net(&one, &[("foo", "1")])));
        assert!(e.contains("\"foo\"") && e.contains(OPT_VXLANID_LIST), "{e}");
        let e = err(OverlayConfig::parse(&net(&one, &[(OPT_VXLANID_LIST, "0")])));
        assert!(e.contains("not a VNI"), "{e}");
        let e = err(OverlayConfig::parse(&net(
            &one,
            &[(OPT_VXLANID_LIST, "16777216")],
        )));
        assert!(e.contains("not a VNI"), "{e}");
        let e = err(OverlayConfig::parse(&net(&one, &[(OPT_VXLANID_LIST, "x")])));
        assert!(e.contains("not a VNI"), "{e}");
        let e = err(OverlayConfig::parse(&net(
            &one,
            &[(OPT_VXLANID_LIST, "5000,5001")],
        )));
        assert!(e.contains("exactly one per subnet"), "{e}");
        let two = [("10.1.1.0/24", "10.1.1.1"), ("10.1.2.0/24", "10.1.2.1")];
        let e = err(OverlayConfig::parse(&net(
            &two,
            &[(OPT_VXLANID_LIST, "5000,5000")],
        )));
        assert!(e.contains("twice"), "{e}");
        let e = err(OverlayConfig::parse(&net(&one, &[(OPT_MTU, "20")])));
        assert!(e.contains("MTU"), "{e}");
        let e = err(OverlayConfig::parse(&net(&one, &[("encrypted", "")])));
        assert!(e.contains("not implemented"), "{e}");
        let e = err(OverlayConfig::parse(&net(&[("fd00::/64", "fd00::1")], &[])));
        assert!(e.contains("IPv6"), "{e}");
        let e = err(OverlayConfig::parse(&net(&[("10.1.1.0/24", "")], &[])));
        assert!(e.contains("no gateway"), "{e}");
        let e = err(OverlayConfig::parse(&net(
            &[("10.1.0.0/16", "10.1.0.1"), ("10.1.2.0/24", "10.1.2.1")],
            &[],
        )));
        assert!(e.contains("overlap"), "{e}");
        let e = err(OverlayConfig::parse(&net(&[], &[])));
        assert!(e.contains("no IPv4 subnet"), "{e}");
    }

    #[test]
    fn mtu_is_the_underlay_minus_vxlan_unless_given() {
        let n = net(&[("10.1.1.0/24", "10.1.1.1")], &[]);
        let c = OverlayConfig::parse(&n).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.effective_mtu(1500, false).ok(), Some(1450));
        assert_eq!(c.effective_mtu(9000, false).ok(), Some(8950));
        assert_eq!(c.effective_mtu(1500, true).ok(), Some(1430));
        assert!(c.effective_mtu(100, false).is_err());
        let n = net(&[("10.1.1.0/24", "10.1.1.1")], &[(OPT_MTU, "1300")]);
        let c = OverlayConfig::parse(&n).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.effective_mtu(9000, false).ok(), Some(1300));
    }

    #[test]
    fn allocator_skips_used_vnis_and_honours_requests() {
        let used: BTreeSet<u32> = [4096, 4097, 4099].into_iter().collect();
        assert_eq!(allocate_vnis(&used, 2, None).ok(), Some(vec![4098, 4100]));
        assert_eq!(allocate_vnis(&used, 1, Some(&[77])).ok(), Some(vec![77]));
        assert!(allocate_vnis(&used, 1, Some(&[4097])).is_err());
        let mut opts = BTreeMap::new();
        set_vnis(&mut opts, &[4098, 4100]);
        assert_eq!(
            opts.get(OPT_VXLANID_LIST).map(String::as_str),
            Some("4098,4100")
        );
    }
}
