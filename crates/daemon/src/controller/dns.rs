//! Service discovery: which names each sandbox may resolve through the embedded DNS
//! server at 127.0.0.11 (netloom-resolver), computed from the controller's state and
//! published to the resolver as one immutable snapshot after every change.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use netloom_model::{Container, short_id};
use netloom_resolver::{Record, SandboxView, Snapshot};

use super::{Controller, State};

/// True for networks whose containers get the embedded DNS: user-defined networks with
/// interfaces (the default `bridge` network has none, as in Docker).
fn has_dns(st: &State, net_id: &str) -> bool {
    st.networks
        .get(net_id)
        .map(|n| !n.predefined && !matches!(n.driver.as_str(), "host" | "null"))
        .unwrap_or(false)
}

impl Controller {
    /// Whether a container's resolv.conf points at the embedded DNS server.
    pub(crate) fn uses_embedded_dns(st: &State, c: &Container) -> bool {
        c.network_mode != "host" && c.networks.keys().any(|n| has_dns(st, n))
    }

    /// Upstream servers of a container: `--dns`, else the daemon's `dns`, else the
    /// host's resolv.conf. Forwarding leaves from the daemon's namespace, so a host
    /// resolver on loopback (127.0.0.53) works too.
    pub(crate) fn upstreams_for(&self, c: &Container) -> Vec<SocketAddr> {
        let servers: Vec<String> = if !c.dns.is_empty() {
            c.dns.clone()
        } else if !self.cfg.dns.is_empty() {
            self.cfg.dns.iter().map(|a| a.to_string()).collect()
        } else {
            std::fs::read_to_string("/etc/resolv.conf")
                .map(|t| super::files::ResolvConf::parse(&t).nameservers)
                .unwrap_or_default()
        };
        servers
            .iter()
            .filter_map(|n| n.parse::<IpAddr>().ok())
            .map(|a| SocketAddr::new(a, 53))
            .collect()
    }

    /// Serves DNS in a started container's sandbox (after publishing its view).
    pub(crate) fn dns_attach(&self, st: &State, c: &Container) {
        self.publish_dns(st);
        if !Self::uses_embedded_dns(st, c) {
            return;
        }
        if let Some(sb) = self.sandbox_path(c)
            && let Err(e) = self.resolver.attach(&c.id, &sb)
        {
            tracing::warn!(container = %c.name, error = %e, "cannot start the embedded DNS server");
        }
    }

    /// Stops serving a container's sandbox and republishes.
    pub(crate) fn dns_detach(&self, st: &State, c: &Container) {
        self.resolver.detach(&c.id);
        self.publish_dns(st);
    }

    /// Computes every sandbox's view and hands it to the resolver.
    pub(crate) fn publish_dns(&self, st: &State) {
        self.publish_dns_with(st, None);
    }

    /// Like `publish_dns`, also giving a view to `starting`, a container whose endpoints
    /// exist but whose process is about to start (so its first query is answered).
    pub(crate) fn publish_dns_with(&self, st: &State, starting: Option<&str>) {
        let mut sandboxes = HashMap::new();
        let live = |c: &Container| c.is_running() || Some(c.id.as_str()) == starting;
        for c in st
            .containers
            .values()
            .filter(|c| live(c) && Self::uses_embedded_dns(st, c))
        {
            let mut records = Vec::new();
            let mut forward = false;
            for nid in c.networks.keys().filter(|n| has_dns(st, n)) {
                let Some(net) = st.networks.get(nid) else {
                    continue;
                };
                forward |= !net.internal;
                for ep in st.network_endpoints(nid) {
                    let Some(owner) = st.containers.get(&ep.container_id) else {
                        continue;
                    };
                    if !live(owner) {
                        continue;
                    }
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
            let upstreams = if forward {
                self.upstreams_for(c)
            } else {
                Vec::new()
            };
            sandboxes.insert(
                c.id.clone(),
                Arc::new(SandboxView::new(records, upstreams, forward)),
            );
        }
        self.resolver.publish(Snapshot { sandboxes });
    }
}
