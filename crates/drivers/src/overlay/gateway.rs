//! The egress leg of containers on non-internal overlays: Docker's `docker_gwbridge`, a
//! local bridge network of its own (its own pool, inter-container communication off,
//! masquerade on) on which every such container gets a second interface carrying its
//! default route. An overlay never carries traffic to the outside.
//!
//! The gateway bridge is an ordinary bridge network made by the bridge driver (nothing
//! here re-implements it): [`gateway_network`] describes it, [`GatewayBridge`] creates it
//! on first use (idempotent, so a restarted daemon finds the same bridge with its
//! containers still attached) and attaches or detaches a container, and
//! [`GatewayBridge::rules`] is what the firewall programs for it (ICC off, masquerade).
//! A container needs the leg when [`needs_gateway`] says so.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};
use netloom_model::{
    Driver, DriverError, Endpoint, IpamPoolConfig, IpamSpec, JoinInfo, Network, SandboxInfo, Scope,
};

use crate::bridge::{BridgeDriver, OPT_BRIDGE_NAME, OPT_ENABLE_ICC, OPT_ENABLE_MASQ};
use crate::firewall::NetRules;

/// Name of the gateway bridge network and of its kernel bridge (Docker's).
pub const GATEWAY_BRIDGE: &str = "docker_gwbridge";

/// The options of the gateway bridge network: its kernel bridge's name, no
/// inter-container communication, masquerade (Docker's `docker_gwbridge`).
pub fn gateway_options() -> BTreeMap<String, String> {
    [
        (OPT_BRIDGE_NAME, GATEWAY_BRIDGE),
        (OPT_ENABLE_ICC, "false"),
        (OPT_ENABLE_MASQ, "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Whether an endpoint on `net` may carry its container's default route itself. An
/// overlay's may not: its containers leave through the gateway bridge (or, internal,
/// not at all), never through the overlay.
pub fn carries_default_route(net: &Network) -> bool {
    net.driver != "overlay"
}

/// Whether `net` is the gateway bridge network.
pub fn is_gateway_network(net: &Network) -> bool {
    net.name == GATEWAY_BRIDGE && net.driver == "bridge"
}

/// The gateway bridge network on `subnet` (Docker picks 172.18.0.0/16, or the next free
/// local pool), its gateway the subnet's first host.
pub fn gateway_network(id: &str, subnet: Ipv4Net, created: &str) -> Network {
    let gateway = subnet.hosts().next().map(IpAddr::V4);
    let options = gateway_options();
    Network {
        id: id.to_string(),
        name: GATEWAY_BRIDGE.to_string(),
        driver: "bridge".to_string(),
        scope: Scope::Local,
        created: created.to_string(),
        enable_ipv4: true,
        enable_ipv6: false,
        internal: false,
        attachable: false,
        ingress: false,
        predefined: false,
        ipam: IpamSpec {
            driver: "default".to_string(),
            options: BTreeMap::new(),
            configs: vec![IpamPoolConfig {
                subnet: IpNet::V4(subnet),
                ip_range: None,
                gateway,
                aux: BTreeMap::new(),
                pool_id: String::new(),
            }],
        },
        options,
        labels: BTreeMap::new(),
        iface: GATEWAY_BRIDGE.to_string(),
        mtu: 0,
    }
}

/// Whether a container on `nets` (the networks of its endpoints, its gateway leg left
/// out) needs the gateway leg: some endpoint is on a non-internal overlay, and no
/// endpoint on a network that gives a default route itself (any non-overlay network
/// with a gateway that is not internal) already carries it. Docker's `needDefaultGW`:
/// an endpoint the container asked for on the gateway bridge itself is such a network
/// (Docker skips only its `gateway_…` legs there).
pub fn needs_gateway(nets: &[&Network]) -> bool {
    let mut need = false;
    for n in nets {
        if n.internal || matches!(n.driver.as_str(), "null" | "host") {
            continue;
        }
        if n.driver != "overlay" && n.ipam.configs.iter().any(|c| c.gateway.is_some()) {
            return false;
        }
        if n.driver == "overlay" {
            need = true;
        }
    }
    need
}

/// The gateway bridge of one node, through the bridge driver.
pub struct GatewayBridge {
    bridge: BridgeDriver,
    net: Network,
}

impl GatewayBridge {
    /// The gateway bridge `net` (see [`gateway_network`]) driven by `bridge`; its options
    /// are checked here.
    pub fn new(bridge: BridgeDriver, mut net: Network) -> Result<Self, DriverError> {
        bridge.validate(&mut net)?;
        Ok(GatewayBridge { bridge, net })
    }

    /// The network record.
    pub fn network(&self) -> &Network {
        &self.net
    }

    /// Creates the bridge if missing (idempotent: an existing one, with the containers on
    /// it, is kept).
    pub async fn ensure(&self) -> Result<(), DriverError> {
        self.bridge.create_network(&self.net).await
    }

    /// The endpoint of a container on the gateway bridge at `ip`, as interface `ifname`,
    /// carrying the default route.
    pub fn endpoint(&self, id: &str, container_id: &str, ip: Ipv4Addr, ifname: &str) -> Endpoint {
        let prefix = self
            .net
            .ipam
            .configs
            .first()
            .map(|c| c.subnet.prefix_len())
            .unwrap_or(16);
        let gateway4 = match self.net.ipam.configs.first().and_then(|c| c.gateway) {
            Some(IpAddr::V4(g)) => Some(g),
            _ => None,
        };
        Endpoint {
            id: id.to_string(),
            network_id: self.net.id.clone(),
            container_id: container_id.to_string(),
            container_name: format!("gateway_{}", netloom_model::short_id(container_id)),
            ifname: ifname.to_string(),
            host_ifname: BridgeDriver::host_ifname(id),
            mac: netloom_model::network::mac_from_ipv4(ip),
            ipv4: Ipv4Net::new(ip, prefix).ok(),
            ipv6: None,
            gateway4,
            gateway6: None,
            aliases: Vec::new(),
            default_route: true,
        }
    }

    /// Plugs the container's egress interface into the gateway bridge, with its default
    /// route via the bridge.
    pub async fn attach(&self, ep: &Endpoint, sb: &SandboxInfo) -> Result<JoinInfo, DriverError> {
        self.bridge.create_endpoint(&self.net, ep).await?;
        self.bridge.join(&self.net, ep, sb).await
    }

    /// Unplugs it.
    pub async fn detach(&self, ep: &Endpoint, sb: &SandboxInfo) -> Result<(), DriverError> {
        self.bridge.leave(&self.net, ep, sb).await?;
        self.bridge.delete_endpoint(&self.net, ep).await
    }

    /// Removes the bridge (Docker keeps it; for tests and `network prune`).
    pub async fn remove(&self) -> Result<(), DriverError> {
        self.bridge.delete_network(&self.net).await
    }

    /// What the firewall programs for it: no inter-container communication, masquerade
    /// of what leaves the node.
    pub fn rules(&self) -> NetRules {
        NetRules {
            iface: self.net.iface.clone(),
            subnets: self.net.ipam.configs.iter().map(|c| c.subnet).collect(),
            internal: false,
            icc: self.net.bool_option(OPT_ENABLE_ICC, true),
            masquerade: self.net.bool_option(OPT_ENABLE_MASQ, true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_network_is_docker_s() {
        let n = gateway_network(
            &"b".repeat(64),
            "172.18.0.0/16".parse().unwrap_or_default(),
            "",
        );
        assert_eq!(n.name, "docker_gwbridge");
        assert_eq!(n.driver, "bridge");
        assert!(!n.bool_option(OPT_ENABLE_ICC, true));
        assert!(n.bool_option(OPT_ENABLE_MASQ, false));
        assert_eq!(
            n.ipam.configs[0].gateway.map(|g| g.to_string()).as_deref(),
            Some("172.18.0.1")
        );
        assert!(crate::bridge::BridgeConfig::parse(&n.options).is_ok());
    }

    #[test]
    fn only_non_internal_overlays_without_another_gateway_need_it() {
        let sub: Ipv4Net = "10.0.0.0/24".parse().unwrap_or_default();
        let mut ov = gateway_network("o", sub, "");
        ov.driver = "overlay".into();
        ov.name = "ov".into();
        let mut internal = ov.clone();
        internal.internal = true;
        let br = gateway_network("b", "172.19.0.0/16".parse().unwrap_or_default(), "");
        let mut br = br;
        br.name = "user-bridge".into();
        assert!(needs_gateway(&[&ov]));
        assert!(!needs_gateway(&[&internal]));
        assert!(!needs_gateway(&[&ov, &br]));
        assert!(!needs_gateway(&[]));
        // A container connected to docker_gwbridge itself leaves through that endpoint.
        let gw = gateway_network("g", "172.18.0.0/16".parse().unwrap_or_default(), "");
        assert!(!needs_gateway(&[&ov, &gw]));
        assert!(!needs_gateway(&[&gw, &ov]));
    }
}
