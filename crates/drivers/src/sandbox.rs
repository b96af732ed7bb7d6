//! Configuration of an endpoint's interface once it exists inside its sandbox: shared
//! by every driver whose endpoints are real interfaces (bridge, macvlan, ipvlan, remote).

use std::net::IpAddr;

use ipnet::IpNet;
use netloom_kernel::{KernelError, LinkInfo, Netlink};
use netloom_model::{DriverError, Endpoint, SandboxInfo};

/// How an endpoint's default route is set when it carries the default route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DefaultRoute {
    /// Through these gateways (IPv4, IPv6).
    Gateways([Option<IpAddr>; 2]),
    /// Out of the interface itself (layer-3 links without a gateway).
    Device,
    /// Never: the network gives no default route (an overlay, whose containers leave
    /// through the gateway bridge instead).
    Never,
}

impl DefaultRoute {
    /// Through the endpoint's own gateways (from the network's IPAM).
    pub(crate) fn of(ep: &Endpoint) -> Self {
        DefaultRoute::Gateways([ep.gateway4.map(IpAddr::V4), ep.gateway6.map(IpAddr::V6)])
    }
}

/// What to set on the interface `ifname` inside the sandbox.
pub(crate) struct Setup<'a> {
    /// The interface's name inside the sandbox.
    pub ifname: &'a str,
    /// A MAC address to set (drivers that cannot choose it at creation).
    pub mac: Option<[u8; 6]>,
    /// Extra routes (destination, next hop or on-link), added before the default route.
    pub routes: Vec<(IpNet, Option<IpAddr>)>,
    /// The default route, when the endpoint carries it.
    pub default: DefaultRoute,
}

/// Converts a kernel error into a driver error for the operation it names.
pub(crate) type Kerr = fn(String) -> Box<dyn FnOnce(KernelError) -> DriverError>;

/// Opens the sandbox, finds the interface, sets its MAC, adds the endpoint's addresses,
/// brings it up, adds the extra routes and the default route. `ctx` names the endpoint
/// in errors. Returns the sandbox handle and the configured link.
pub(crate) async fn configure(
    sb: &SandboxInfo,
    ep: &Endpoint,
    ctx: &str,
    setup: Setup<'_>,
    kerr: Kerr,
) -> Result<(Netlink, LinkInfo), DriverError> {
    let ifname = setup.ifname;
    let inner = Netlink::in_netns(&sb.key).map_err(kerr(format!("open sandbox of {ctx}")))?;
    let link = inner
        .require_link(ifname)
        .await
        .map_err(kerr(format!("find {ctx}")))?;
    if let Some(m) = setup.mac {
        inner
            .set_mac(link.index, ifname, m)
            .await
            .map_err(kerr(format!("set MAC of {ctx}")))?;
    }
    for addr in ep
        .ipv4
        .map(IpNet::V4)
        .into_iter()
        .chain(ep.ipv6.map(IpNet::V6))
    {
        inner
            .add_address(link.index, ifname, addr)
            .await
            .map_err(kerr(format!("add {addr} to {ctx}")))?;
    }
    inner
        .set_up(link.index, ifname)
        .await
        .map_err(kerr(format!("bring up {ctx}")))?;
    for (dest, hop) in &setup.routes {
        inner
            .add_route(link.index, *dest, *hop)
            .await
            .map_err(kerr(format!("add route to {dest} on {ctx}")))?;
    }
    if ep.default_route {
        match setup.default {
            DefaultRoute::Gateways(gws) => {
                for gw in gws.into_iter().flatten() {
                    inner
                        .set_default_route(link.index, gw)
                        .await
                        .map_err(kerr(format!("set default route via {gw} on {ctx}")))?;
                }
            }
            DefaultRoute::Never => {}
            DefaultRoute::Device => {
                for (present, v6) in [(ep.ipv4.is_some(), false), (ep.ipv6.is_some(), true)] {
                    if present {
                        inner
                            .set_default_dev_route(link.index, v6)
                            .await
                            .map_err(kerr(format!("set default route of {ctx}")))?;
                    }
                }
            }
        }
    }
    Ok((inner, link))
}

/// A veth endpoint to plug into a bridge: its host side joins the bridge in the
/// namespace of the handle it is created through, its peer is born inside the sandbox.
pub(crate) struct Veth<'a> {
    /// Host-side name (unique per endpoint).
    pub host: &'a str,
    /// Index of the bridge the host side joins.
    pub bridge: u32,
    /// Name of that bridge (for the message when it is full).
    pub bridge_name: &'a str,
    /// MTU of both ends.
    pub mtu: u32,
    /// The alias marking netloom's links.
    pub alias: &'a str,
}

/// Creates the endpoint's veth pair through `nl` (host side on `veth.bridge`, peer born
/// in the sandbox as `setup.ifname` with the endpoint's MAC) and configures the sandbox
/// side as [`configure`] does. Shared by the bridge driver (bridge in the daemon's
/// namespace) and the overlay driver (bridge inside the network's sandbox).
pub(crate) async fn plug_veth(
    nl: &Netlink,
    veth: Veth<'_>,
    sb: &SandboxInfo,
    ep: &Endpoint,
    ctx: &str,
    setup: Setup<'_>,
    kerr: Kerr,
) -> Result<(Netlink, LinkInfo), DriverError> {
    nl.create_veth_into(
        veth.host,
        setup.ifname,
        &sb.key,
        veth.mtu,
        netloom_model::network::parse_mac(&ep.mac),
        veth.bridge,
        veth.alias,
    )
    .await
    .map_err(|e| match e {
        // The kernel unregisters the new pair itself when the bridge refuses it
        // (rtnl_newlink: out_unregister), so nothing is left to undo.
        KernelError::Full { .. } => DriverError::Conflict(format!(
            "cannot connect {ctx}: bridge {} has no free port (the kernel allows {} interfaces per bridge); connect the container to another network, or spread the containers over several networks",
            veth.bridge_name,
            crate::bridge::BRIDGE_MAX_PORTS
        )),
        e => kerr(format!("create {ctx} in sandbox {}", sb.key.display()))(e),
    })?;
    configure(sb, ep, ctx, setup, kerr).await
}
