//! Service discovery: which names each sandbox may resolve through the embedded DNS
//! server at 127.0.0.11 (netloom-resolver), computed from the controller's state and
//! published to the resolver as one immutable snapshot after every change.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use netloom_model::{Container, short_id};
use netloom_resolver::{Record, SandboxView, Snapshot};

use super::{Controller, State};

/// True for networks whose containers get the embedded DNS: user-defined bridges
/// (the default `bridge` network has none, as in Docker).
fn has_dns(st: &State, net_id: &str) -> bool {
    st.networks
        .get(net_id)
        .map(|n| n.driver == "bridge" && !n.predefined)
        .unwrap_or(false)
}

impl Controller {
    /// Whether a container's resolv.conf points at the embedded DNS server.
    pub(crate) fn uses_embedded_dns(st: &State, c: &Container) -> bool {
        c.network_mode != "host" && c.networks.keys().any(|n| has_dns(st, n))
    }

    /// Upstream servers of a container: `--dns`, else the daemon's `dns`, else the
    /// host's resolv.conf without loopback servers.
    pub(crate) fn upstreams_for(&self, c: &Container) -> Vec<SocketAddr> {
        let mut conf = self.resolv_for(c);
        if !c.dns.is_empty() {
            conf.nameservers = c.dns.clone();
        }
        conf.nameservers
            .iter()
            .filter_map(|n| n.parse::<IpAddr>().ok())
            .filter(|a| !a.is_loopback())
            .map(|a| SocketAddr::new(a, 53))
            .collect()
    }

    /// Computes every sandbox's view and hands it to the resolver.
    pub(crate) fn publish_dns(&self, st: &State) {
        let mut sandboxes = HashMap::new();
        for c in st.containers.values().filter(|c| c.is_running() && Self::uses_embedded_dns(st, c)) {
            let mut records = Vec::new();
            let mut forward = false;
            for nid in c.networks.keys().filter(|n| has_dns(st, n)) {
                let Some(net) = st.networks.get(nid) else { continue };
                forward |= !net.internal;
                for ep in st.network_endpoints(nid) {
                    let Some(owner) = st.containers.get(&ep.container_id) else { continue };
                    let mut addrs = Vec::new();
                    addrs.extend(ep.ipv4.map(|a| IpAddr::V4(a.addr())));
                    addrs.extend(ep.ipv6.map(|a| IpAddr::V6(a.addr())));
                    if addrs.is_empty() {
                        continue;
                    }
                    let mut names = vec![
                        owner.name.clone(),
                        format!("{}.{}", owner.name, net.name),
                        short_id(&owner.id).to_string(),
                    ];
                    if !owner.hostname.is_empty() && !names.contains(&owner.hostname) {
                        names.push(owner.hostname.clone());
                    }
                    for a in &ep.aliases {
                        names.push(a.clone());
                        names.push(format!("{a}.{}", net.name));
                    }
                    records.push(Record {
                        names: names.into_iter().map(|n| n.to_ascii_lowercase()).collect(),
                        addrs,
                        ptr_name: format!("{}.{}", owner.name, net.name),
                    });
                }
            }
            let upstreams = if forward { self.upstreams_for(c) } else { Vec::new() };
            sandboxes.insert(c.id.clone(), Arc::new(SandboxView::new(records, upstreams, forward)));
        }
        self.resolver.publish(Snapshot { sandboxes });
    }
}
