//! Configuration of an endpoint's interface once it exists inside its sandbox: shared
//! by every driver whose endpoints are real interfaces (bridge, macvlan, ipvlan).

use std::net::IpAddr;

use ipnet::IpNet;
use netloom_kernel::{KernelError, Netlink};
use netloom_model::{DriverError, Endpoint, SandboxInfo};

/// How an endpoint's default route is set when it carries the default route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DefaultRoute {
    /// Through the network's gateway(s).
    Gateway,
    /// Out of the interface itself (layer-3 links without a gateway).
    Device,
}

/// Opens the sandbox, finds the endpoint's interface, adds its addresses, brings it up
/// and sets the default route. `ctx` names the endpoint in errors.
pub(crate) async fn configure(
    sb: &SandboxInfo,
    ep: &Endpoint,
    ctx: &str,
    route: DefaultRoute,
    kerr: impl Fn(String) -> Box<dyn FnOnce(KernelError) -> DriverError>,
) -> Result<(), DriverError> {
    let inner = Netlink::in_netns(&sb.key).map_err(kerr(format!("open sandbox of {ctx}")))?;
    let link = inner
        .require_link(&ep.ifname)
        .await
        .map_err(kerr(format!("find {ctx}")))?;
    for addr in ep
        .ipv4
        .map(IpNet::V4)
        .into_iter()
        .chain(ep.ipv6.map(IpNet::V6))
    {
        inner
            .add_address(link.index, &ep.ifname, addr)
            .await
            .map_err(kerr(format!("add {addr} to {ctx}")))?;
    }
    inner
        .set_up(link.index, &ep.ifname)
        .await
        .map_err(kerr(format!("bring up {ctx}")))?;
    if !ep.default_route {
        return Ok(());
    }
    match route {
        DefaultRoute::Gateway => {
            let gws: [Option<IpAddr>; 2] =
                [ep.gateway4.map(IpAddr::V4), ep.gateway6.map(IpAddr::V6)];
            for gw in gws.into_iter().flatten() {
                inner
                    .set_default_route(link.index, gw)
                    .await
                    .map_err(kerr(format!("set default route of {ctx}")))?;
            }
        }
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
    Ok(())
}
