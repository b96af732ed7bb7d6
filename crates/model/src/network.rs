//! Networks and endpoints.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

/// Where a network exists: one host (`local`) or the whole cluster (`swarm`, `global`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// One host.
    #[default]
    Local,
    /// A swarm cluster (managed by the managers).
    Swarm,
    /// Cluster-wide through a global store.
    Global,
}

impl Scope {
    /// Docker's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Local => "local",
            Scope::Swarm => "swarm",
            Scope::Global => "global",
        }
    }
}

/// One IPAM pool of a network, as resolved at creation (subnet and gateway always known
/// for the default IPAM driver).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamPoolConfig {
    /// The subnet.
    pub subnet: IpNet,
    /// Sub-range for dynamic allocation.
    #[serde(default)]
    pub ip_range: Option<IpNet>,
    /// Gateway address (on the bridge).
    #[serde(default)]
    pub gateway: Option<IpAddr>,
    /// Auxiliary addresses reserved by name (never handed out).
    #[serde(default)]
    pub aux: BTreeMap<String, IpAddr>,
    /// The pool's ID at a remote IPAM plugin (empty for the default IPAM driver).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pool_id: String,
}

/// IPAM settings of a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct IpamSpec {
    /// IPAM driver name (`default`).
    pub driver: String,
    /// IPAM driver options.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Pools (v4 and v6).
    #[serde(default)]
    pub configs: Vec<IpamPoolConfig>,
}

impl IpamSpec {
    /// The first IPv4 pool.
    pub fn v4(&self) -> Option<&IpamPoolConfig> {
        self.configs
            .iter()
            .find(|c| matches!(c.subnet, IpNet::V4(_)))
    }

    /// The first IPv6 pool.
    pub fn v6(&self) -> Option<&IpamPoolConfig> {
        self.configs
            .iter()
            .find(|c| matches!(c.subnet, IpNet::V6(_)))
    }
}

/// A network: a group of endpoints that can talk (a Linux bridge for the bridge driver).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// 64-hex ID.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Driver name (`bridge`, `host`, `null`, ...).
    pub driver: String,
    /// Scope.
    #[serde(default)]
    pub scope: Scope,
    /// Creation time, RFC 3339 with nanoseconds.
    pub created: String,
    /// IPv4 enabled.
    #[serde(default = "yes")]
    pub enable_ipv4: bool,
    /// IPv6 enabled.
    #[serde(default)]
    pub enable_ipv6: bool,
    /// No external connectivity.
    #[serde(default)]
    pub internal: bool,
    /// Standalone containers may attach (swarm networks).
    #[serde(default)]
    pub attachable: bool,
    /// The swarm routing-mesh network.
    #[serde(default)]
    pub ingress: bool,
    /// One of the networks created at first start (`bridge`, `host`, `none`).
    #[serde(default)]
    pub predefined: bool,
    /// IPAM settings, with subnets and gateways resolved.
    pub ipam: IpamSpec,
    /// Driver options as given by the user.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// User labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The kernel interface that carries the network (bridge name), if any.
    #[serde(default)]
    pub iface: String,
    /// MTU of the network's interfaces.
    #[serde(default)]
    pub mtu: u32,
}

fn yes() -> bool {
    true
}

impl Network {
    /// Whether this is Docker's default network (the predefined `bridge`), the one with
    /// legacy links and without the embedded DNS, aliases or pinned addresses.
    pub fn is_default_bridge(&self) -> bool {
        self.predefined && self.name == "bridge"
    }

    /// Value of a boolean driver option, `default` if absent.
    pub fn bool_option(&self, key: &str, default: bool) -> bool {
        match self.options.get(key).map(|v| v.trim().to_ascii_lowercase()) {
            Some(v) => matches!(v.as_str(), "1" | "true" | "t" | "yes"),
            None => default,
        }
    }
}

/// One endpoint: the interface that joins a container's sandbox to a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// 64-hex ID.
    pub id: String,
    /// The network.
    pub network_id: String,
    /// The container (sandbox owner).
    pub container_id: String,
    /// The container's name (without `/`).
    pub container_name: String,
    /// Interface name inside the sandbox (`eth0`, `eth1`, ...).
    pub ifname: String,
    /// Host-side interface name (the veth peer on the bridge), if any.
    #[serde(default)]
    pub host_ifname: String,
    /// MAC address inside the sandbox.
    pub mac: String,
    /// IPv4 address with the subnet's prefix length.
    #[serde(default)]
    pub ipv4: Option<Ipv4Net>,
    /// IPv6 address with the subnet's prefix length.
    #[serde(default)]
    pub ipv6: Option<Ipv6Net>,
    /// IPv4 gateway.
    #[serde(default)]
    pub gateway4: Option<Ipv4Addr>,
    /// IPv6 gateway.
    #[serde(default)]
    pub gateway6: Option<Ipv6Addr>,
    /// Network-scoped aliases.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Whether this endpoint carries the sandbox's default route.
    #[serde(default)]
    pub default_route: bool,
}

/// Docker's MAC for an IPv4 address: `02:42:` followed by the four address bytes.
pub fn mac_from_ipv4(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in out.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac() {
        let m = mac_from_ipv4(Ipv4Addr::new(172, 18, 0, 2));
        assert_eq!(m, "02:42:ac:12:00:02");
        assert_eq!(parse_mac(&m), Some([2, 0x42, 0xac, 0x12, 0, 2]));
        assert_eq!(parse_mac("02:42"), None);
        assert_eq!(parse_mac("02:42:ac:12:00:02:ff"), None);
    }
}
