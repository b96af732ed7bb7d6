//! The `bridge` driver: one Linux bridge per network, a veth pair per endpoint.

pub mod config;

use async_trait::async_trait;
use ipnet::IpNet;
use netloom_kernel::{KernelError, Netlink};
use netloom_model::{
    Capabilities, Driver, DriverError, Endpoint, JoinInfo, Network, SandboxInfo, Scope,
};
use tracing::debug;

pub use config::{BridgeConfig, OPT_BRIDGE_NAME, OPT_ENABLE_ICC, OPT_ENABLE_MASQ, OPT_MTU};

/// How many ports a Linux bridge takes: port numbers are 10 bits and 0 is reserved
/// (`BR_MAX_PORTS`, `find_portno` in net/bridge/br_if.c:
/// https://elixir.bootlin.com/linux/v6.1/source/net/bridge/br_if.c#L332).
pub const BRIDGE_MAX_PORTS: u32 = 1023;

/// The bridge driver.
pub struct BridgeDriver {
    nl: Netlink,
    pending: std::sync::Mutex<std::collections::HashMap<String, tokio::task::JoinHandle<()>>>,
    alias: String,
    default_mtu: u32,
    default_bridge_name: String,
}

impl BridgeDriver {
    /// A bridge driver working in the daemon's namespace through `nl`. `tag` marks the
    /// links it creates; `default_mtu` applies when a network gives none;
    /// `default_bridge_name` is the kernel name of the predefined `bridge` network.
    pub fn new(nl: Netlink, tag: &str, default_mtu: u32, default_bridge_name: &str) -> Self {
        BridgeDriver {
            nl,
            pending: Default::default(),
            alias: crate::link_alias(tag),
            default_mtu,
            default_bridge_name: default_bridge_name.to_string(),
        }
    }

    /// Host-side veth name of an endpoint.
    pub fn host_ifname(ep_id: &str) -> String {
        format!("nl{}", netloom_model::short_id(ep_id))
    }

    /// Waits until a background deletion of a bridge named `name` has finished.
    async fn wait_pending(&self, name: &str) {
        let task = self.pending.lock().ok().and_then(|mut p| p.remove(name));
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

fn kerr(op: impl Into<String>) -> impl FnOnce(KernelError) -> DriverError {
    let op = op.into();
    move |e| match e {
        KernelError::AlreadyExists { what } => {
            DriverError::Conflict(format!("{what}; {op} needs it"))
        }
        KernelError::NotSupported { what } => {
            DriverError::NotSupported(format!("the kernel does not support {what}"))
        }
        e => DriverError::kernel(op, e),
    }
}

/// A stable, locally administered MAC for a bridge, derived from the network ID so that a
/// re-created bridge keeps it.
fn bridge_mac(net_id: &str) -> [u8; 6] {
    let b = net_id.as_bytes();
    let h = |i: usize| -> u8 {
        let hi = b.get(2 * i).copied().unwrap_or(b'0');
        let lo = b.get(2 * i + 1).copied().unwrap_or(b'0');
        let v = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
        (v(hi) << 4) | v(lo)
    };
    [0x02, h(0), h(1), h(2), h(3), h(4)]
}

#[async_trait]
impl Driver for BridgeDriver {
    fn name(&self) -> &'static str {
        "bridge"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            data_scope: Scope::Local,
            has_sandbox_interfaces: true,
            shares_host_stack: false,
            single_instance: false,
            host_firewall: true,
        }
    }

    fn iface_claim(&self, net: &Network) -> Option<netloom_model::IfaceClaim> {
        Some(netloom_model::IfaceClaim {
            kind: "bridge",
            name: net.iface.clone(),
        })
    }

    fn claim_conflict(&self, net: &Network, other: &str) -> String {
        format!(
            "bridge name {} is already used by network {other}",
            net.iface
        )
    }

    fn prepare_endpoint(&self, _net: &Network, ep: &mut Endpoint) {
        ep.host_ifname = Self::host_ifname(&ep.id);
    }

    fn validate(&self, net: &mut Network) -> Result<(), DriverError> {
        let cfg = BridgeConfig::parse(&net.options)?;
        net.iface = match cfg.name {
            Some(n) => n,
            None if net.predefined => self.default_bridge_name.clone(),
            None => format!("br-{}", netloom_model::short_id(&net.id)),
        };
        net.mtu = cfg.mtu.unwrap_or(self.default_mtu);
        Ok(())
    }

    async fn create_network(&self, net: &Network) -> Result<(), DriverError> {
        self.wait_pending(&net.iface).await;
        let br = self
            .nl
            .ensure_bridge(&net.iface, net.mtu, bridge_mac(&net.id), &self.alias)
            .await
            .map_err(kerr(format!(
                "create bridge {} for network {}",
                net.iface, net.name
            )))?;
        let mut gateways = Vec::new();
        for pool in &net.ipam.configs {
            if let Some(gw) = pool.gateway {
                let addr = IpNet::new(gw, pool.subnet.prefix_len())
                    .map_err(|e| DriverError::InvalidOption(format!("gateway {gw}: {e}")))?;
                gateways.push(addr);
                self.nl
                    .add_address(br.index, &net.iface, addr)
                    .await
                    .map_err(kerr(format!("add gateway {addr} to bridge {}", net.iface)))?;
            }
        }
        self.nl
            .retain_addresses(br.index, &net.iface, &gateways)
            .await
            .map_err(kerr(format!("clean addresses of bridge {}", net.iface)))?;
        // Routing between an IPv6 network and the outside (and IPv6 published ports)
        // needs IPv6 forwarding in this namespace, as Docker enables it for IPv6 networks.
        if net.enable_ipv6
            && net.ipam.v6().is_some()
            && let Err(e) = netloom_kernel::sysctl::set("net.ipv6.conf.all.forwarding", "1")
        {
            tracing::warn!(error = %e, "cannot enable IPv6 forwarding");
        }
        // Published ports reached through 127.0.0.1 are DNATed to the bridge: the kernel
        // routes such loopback-sourced packets only with route_localnet on the bridge.
        if let Err(e) = netloom_kernel::sysctl::set_iface("ipv4", &net.iface, "route_localnet", "1")
        {
            debug!(bridge = %net.iface, error = %e, "cannot enable route_localnet");
        }
        debug!(network = %net.name, bridge = %net.iface, "bridge ready");
        Ok(())
    }

    async fn delete_network(&self, net: &Network) -> Result<(), DriverError> {
        // Bridge deletion waits for an RCU grace period (~40 ms): run it in the
        // background, remembering it so that a new bridge of the same name waits for it.
        let nl = self.nl.clone();
        let name = net.iface.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = nl.delete_link(&name).await {
                tracing::warn!(bridge = %name, error = %e, "cannot delete bridge");
            }
        });
        if let Ok(mut p) = self.pending.lock() {
            // Forget deletions that have finished, so the map holds only the ones in flight.
            p.retain(|_, t| !t.is_finished());
            p.insert(net.iface.clone(), task);
        }
        Ok(())
    }

    async fn create_endpoint(&self, _net: &Network, _ep: &Endpoint) -> Result<(), DriverError> {
        // The veth pair is created at join, with its peer born inside the sandbox.
        Ok(())
    }

    async fn delete_endpoint(&self, _net: &Network, ep: &Endpoint) -> Result<(), DriverError> {
        let host = Self::host_ifname(&ep.id);
        self.nl
            .delete_link(&host)
            .await
            .map_err(kerr(format!("delete veth {host}")))
    }

    async fn join(
        &self,
        net: &Network,
        ep: &Endpoint,
        sb: &SandboxInfo,
    ) -> Result<JoinInfo, DriverError> {
        let ctx = format!("endpoint {} of network {}", ep.ifname, net.name);
        self.wait_pending(&net.iface).await;
        let br = self
            .nl
            .require_link(&net.iface)
            .await
            .map_err(kerr(format!(
                "find bridge {} of network {}",
                net.iface, net.name
            )))?;
        let host = Self::host_ifname(&ep.id);
        let veth = crate::sandbox::Veth {
            host: &host,
            bridge: br.index,
            bridge_name: &net.iface,
            mtu: net.mtu,
            alias: &self.alias,
        };
        let setup = crate::sandbox::Setup {
            ifname: &ep.ifname,
            mac: None,
            routes: Vec::new(),
            default: crate::sandbox::DefaultRoute::of(ep),
        };
        crate::sandbox::plug_veth(&self.nl, veth, sb, ep, &ctx, setup, |op| Box::new(kerr(op)))
            .await?;
        Ok(JoinInfo {
            ifname: ep.ifname.clone(),
            ..Default::default()
        })
    }

    async fn leave(
        &self,
        _net: &Network,
        ep: &Endpoint,
        _sb: &SandboxInfo,
    ) -> Result<(), DriverError> {
        // Only a sandbox that stays (a disconnect, a repair) gets a leave: a torn-down
        // sandbox takes its veth with it. So the pair is gone when this returns, as a
        // user running `ip link` right after `network disconnect` expects.
        let host = Self::host_ifname(&ep.id);
        if let Err(e) = self.nl.delete_link(&host).await {
            tracing::warn!(link = %host, error = %e, "cannot delete veth");
        }
        Ok(())
    }

    async fn restore_network(&self, net: &Network, eps: &[Endpoint]) -> Result<(), DriverError> {
        self.create_network(net).await?;
        // A deleted bridge lets its ports go but not die: plug each host end back in.
        let br = self
            .nl
            .require_link(&net.iface)
            .await
            .map_err(kerr(format!(
                "look up bridge {} of network {}",
                net.iface, net.name
            )))?;
        // Each port is tried (a failed one does not leave the rest out); hairpin mode
        // goes back on, since a new bridge port starts without it.
        let mut first_err = None;
        for ep in eps {
            let host = Self::host_ifname(&ep.id);
            if let Ok(Some(l)) = self.nl.link(&host).await
                && l.controller != Some(br.index)
            {
                let plugged = match self.nl.set_controller(l.index, &host, br.index).await {
                    Ok(()) => self.nl.set_hairpin(&host, true).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = plugged {
                    tracing::warn!(link = %host, bridge = %net.iface, error = %e, "cannot plug a port back in");
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(kerr(format!("plug ports into bridge {}", net.iface))(e)),
            None => Ok(()),
        }
    }

    fn owned_links(&self, net: &Network, eps: &[Endpoint]) -> Vec<String> {
        let mut v = vec![net.iface.clone()];
        v.extend(eps.iter().map(|e| Self::host_ifname(&e.id)));
        v
    }
}
