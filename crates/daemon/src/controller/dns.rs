//! Service discovery: which names each sandbox may resolve through the embedded DNS
//! server at 127.0.0.11 (netloom-resolver).
//!
//! Names are published per network: a running container has one [`Record`] on each of
//! its DNS networks, and its sandbox sees the ordered list of those networks' views. A
//! change to one container (start, stop, connect, disconnect) republishes that container
//! only — its records and its sandbox — so its cost follows the container's networks, not
//! the number of containers on the host. A full resync runs only at daemon start.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use netloom_model::{Container, Endpoint, short_id};
use netloom_resolver::Record;

use super::{Controller, State};

/// True for networks whose containers get the embedded DNS: user-defined networks with
/// interfaces (the default `bridge` network has none, as in Docker).
fn has_dns(st: &State, net_id: &str) -> bool {
    st.networks
        .get(net_id)
        .map(|n| !n.predefined && st.caps(n).has_sandbox_interfaces)
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
        self.publish_dns_for(st, &c.id, false);
        if !Self::uses_embedded_dns(st, c) {
            return;
        }
        if let Some(sb) = self.sandbox_path(c)
            && let Err(e) = self.resolver.attach(&c.id, &sb)
        {
            tracing::warn!(container = %c.name, error = %e, "cannot start the embedded DNS server");
        }
    }

    /// Stops serving a container's sandbox and republishes it.
    pub(crate) fn dns_detach(&self, st: &State, c: &Container) {
        self.resolver.detach(&c.id);
        self.publish_dns_for(st, &c.id, false);
    }

    /// Republishes every container and drops what belongs to no live container (a full
    /// resync, O(containers): daemon start only).
    pub(crate) fn publish_dns(&self, st: &State) {
        self.publish_dns_with(st, None);
    }

    /// With `starting = Some(id)`: publishes container `id`, whose endpoints exist but
    /// whose process is about to start (so its first query is answered). With `None`:
    /// the full resync of [`Controller::publish_dns`].
    pub(crate) fn publish_dns_with(&self, st: &State, starting: Option<&str>) {
        if let Some(id) = starting {
            self.publish_dns_for(st, id, true);
            return;
        }
        let mut eps: HashMap<&str, Vec<&Endpoint>> = HashMap::new();
        for ep in st.endpoints.values() {
            eps.entry(ep.container_id.as_str()).or_default().push(ep);
        }
        for c in st.containers.values() {
            let mine = eps.get(c.id.as_str()).map_or(&[][..], Vec::as_slice);
            self.publish_container(st, c, c.is_running(), mine);
        }
        self.resolver
            .retain(|id| st.containers.get(id).is_some_and(Container::is_running));
    }

    /// Republishes one container after a change to it: its records on its DNS networks
    /// (withdrawn when it does not run, unless `starting`) and its sandbox's view. Costs
    /// the container's endpoints, never the other containers.
    pub(crate) fn publish_dns_for(&self, st: &State, id: &str, starting: bool) {
        match st.containers.get(id) {
            Some(c) => {
                let live = starting || c.is_running();
                self.publish_container(st, c, live, &st.container_endpoints(id));
            }
            None => {
                self.resolver.set_records(id, Vec::new());
                self.resolver.remove_sandbox(id);
            }
        }
    }

    /// Publishes container `c` with its endpoints `eps` (withdraws it unless `live`).
    fn publish_container(&self, st: &State, c: &Container, live: bool, eps: &[&Endpoint]) {
        if !live {
            self.resolver.set_records(&c.id, Vec::new());
            self.resolver.remove_sandbox(&c.id);
            return;
        }
        let mut records = Vec::new();
        let mut networks = Vec::new();
        let mut forward = false;
        let dns_nets = || c.networks.keys().filter(|n| has_dns(st, n));
        for ep in eps {
            let Some(net) = st.networks.get(&ep.network_id) else {
                continue;
            };
            if !has_dns(st, &net.id) || !c.networks.contains_key(&net.id) {
                continue;
            }
            let mut addrs = Vec::new();
            addrs.extend(ep.ipv4.map(|a| IpAddr::V4(a.addr())));
            addrs.extend(ep.ipv6.map(|a| IpAddr::V6(a.addr())));
            if addrs.is_empty() {
                continue;
            }
            let mut names = vec![
                c.name.clone(),
                format!("{}.{}", c.name, net.name),
                short_id(&c.id).to_string(),
            ];
            if !c.hostname.is_empty() && !names.contains(&c.hostname) {
                names.push(c.hostname.clone());
            }
            for a in &ep.aliases {
                names.push(a.clone());
                names.push(format!("{a}.{}", net.name));
            }
            records.push((
                net.id.clone(),
                Record {
                    names: names.into_iter().map(|n| n.to_ascii_lowercase()).collect(),
                    addrs,
                    ptr_name: format!("{}.{}", c.name, net.name),
                },
            ));
        }
        self.resolver.set_records(&c.id, records);
        if !Self::uses_embedded_dns(st, c) {
            self.resolver.remove_sandbox(&c.id);
            return;
        }
        for nid in dns_nets() {
            if let Some(net) = st.networks.get(nid) {
                forward |= !net.internal;
                networks.push(nid.clone());
            }
        }
        let upstreams = if forward {
            self.upstreams_for(c)
        } else {
            Vec::new()
        };
        let links = self.link_aliases(st, c, &networks);
        self.resolver
            .set_sandbox_links(&c.id, &networks, &links, upstreams, forward);
    }
}
