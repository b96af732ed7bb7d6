//! What refers to the host: `--add-host NAME:host-gateway` and published ports of a
//! container on the host's network.

use std::net::IpAddr;

use netloom_model::{Container, PortBinding};

use super::{Controller, State};
use crate::error::{CtlError, CtlResult};

/// The word of `--add-host NAME:host-gateway`.
pub(crate) const HOST_GATEWAY: &str = "host-gateway";

/// Docker's warning for `-p` with `--network host`.
pub(crate) const PORTS_DISCARDED: &str =
    "Published ports are discarded when using host network mode";

impl Controller {
    /// The address `host-gateway` stands for: daemon option `host-gateway-ip`, else the
    /// default bridge's IPv4 gateway (as dockerd).
    pub(crate) fn host_gateway(&self, st: &State) -> Option<IpAddr> {
        self.cfg.host_gateway_ip.or_else(|| {
            st.networks
                .values()
                .find(|n| n.is_default_bridge())
                .and_then(|n| n.ipam.v4())
                .and_then(|p| p.gateway)
        })
    }

    /// Refuses `host-gateway` in `--add-host` when nothing says what it stands for.
    pub(crate) fn check_host_gateway(&self, st: &State, extra_hosts: &[String]) -> CtlResult<()> {
        let wants = extra_hosts
            .iter()
            .filter_map(|h| h.split_once(':'))
            .any(|(_, ip)| ip == HOST_GATEWAY);
        if wants && self.host_gateway(st).is_none() {
            return Err(CtlError::invalid(
                "unable to derive the IP value for host-gateway: set host-gateway-ip in daemon.json or --host-gateway-ip",
            ));
        }
        Ok(())
    }

    /// The `/etc/hosts` line of one `--add-host NAME:IP` (`host-gateway` resolved).
    pub(crate) fn extra_host_line(&self, st: &State, h: &str) -> Option<String> {
        let (name, ip) = h.split_once(':')?;
        let ip = if ip == HOST_GATEWAY {
            self.host_gateway(st)?.to_string()
        } else {
            ip.trim_start_matches('[').trim_end_matches(']').to_string()
        };
        Some(format!("{ip}\t{name}\n"))
    }
}

/// The warnings of a container create (the API's `Warnings`), as dockerd gives them.
pub(crate) fn create_warnings(
    ctr: &Container,
    port_bindings: &std::collections::BTreeMap<String, Vec<PortBinding>>,
) -> Vec<String> {
    let mut w = Vec::new();
    if ctr.network_mode == "host" && !port_bindings.is_empty() {
        w.push(PORTS_DISCARDED.to_string());
    }
    w
}
