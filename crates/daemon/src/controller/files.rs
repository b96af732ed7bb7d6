//! Files generated per container and bind-mounted in: `/etc/hosts`,
//! `/etc/hostname`, `/etc/resolv.conf`.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use netloom_model::Container;

use super::{Controller, State};
use crate::error::{CtlError, CtlResult};

/// Parsed resolver settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    /// `nameserver` lines.
    pub nameservers: Vec<String>,
    /// `search` domains.
    pub search: Vec<String>,
    /// `options`.
    pub options: Vec<String>,
}

impl ResolvConf {
    /// Parses resolv.conf text.
    pub fn parse(text: &str) -> Self {
        let mut r = ResolvConf::default();
        for line in text.lines() {
            let mut w = line.split_whitespace();
            match w.next() {
                Some("nameserver") => r.nameservers.extend(w.next().map(str::to_string)),
                Some("search") | Some("domain") => r.search = w.map(str::to_string).collect(),
                Some("options") => r.options.extend(w.map(str::to_string)),
                _ => {}
            }
        }
        r
    }

    /// Renders resolv.conf text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for n in &self.nameservers {
            s.push_str(&format!("nameserver {n}\n"));
        }
        if !self.search.is_empty() {
            s.push_str(&format!("search {}\n", self.search.join(" ")));
        }
        if !self.options.is_empty() {
            s.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        s
    }
}

fn is_loopback(s: &str) -> bool {
    s.parse::<IpAddr>()
        .map(|a| a.is_loopback())
        .unwrap_or(false)
}

/// Writes `content` into `path` in place (truncate + write), so a bind mount of the file
/// inside a running container sees the change.
fn write_in_place(path: &Path, content: &str) -> CtlResult<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|e| CtlError::internal(format!("write {}: {e}", path.display())))?;
    f.write_all(content.as_bytes())
        .map_err(|e| CtlError::internal(format!("write {}: {e}", path.display())))
}

impl Controller {
    /// Legacy `--link NAME[:ALIAS]` targets that run on the default bridge with the
    /// container: (alias, linked container, its address there).
    pub(crate) fn links_of<'a>(
        &self,
        st: &'a State,
        c: &Container,
    ) -> Vec<(String, &'a Container, std::net::Ipv4Addr)> {
        let mut out = Vec::new();
        let Some(bridge) = st.networks.values().find(|n| n.is_default_bridge()) else {
            return out;
        };
        let Some(req) = c.networks.get(&bridge.id) else {
            return out;
        };
        for l in &req.links {
            let (name, alias) = l.split_once(':').unwrap_or((l, l));
            let Ok(linked) = st.find_container(name) else {
                continue;
            };
            let ip = st
                .container_endpoints(&linked.id)
                .into_iter()
                .find(|e| e.network_id == bridge.id)
                .and_then(|e| e.ipv4)
                .map(|a| a.addr());
            if let Some(ip) = ip {
                out.push((alias.to_string(), linked, ip));
            }
        }
        out
    }

    /// Docker's link environment variables (`ALIAS_PORT_80_TCP=tcp://ip:80`, ...).
    pub(crate) fn link_env(&self, st: &State, c: &Container) -> Vec<String> {
        let mut env = Vec::new();
        for (alias, linked, ip) in self.links_of(st, c) {
            let a: String = alias
                .chars()
                .map(|ch| {
                    if ch.is_ascii_alphanumeric() {
                        ch.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            env.push(format!("{a}_NAME=/{}/{alias}", c.name));
            let mut ports = linked.exposed_ports.clone();
            ports.sort();
            for (i, p) in ports.iter().enumerate() {
                let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
                let prefix = format!("{a}_PORT_{num}_{}", proto.to_ascii_uppercase());
                if i == 0 {
                    env.push(format!("{a}_PORT={proto}://{ip}:{num}"));
                }
                env.push(format!("{prefix}={proto}://{ip}:{num}"));
                env.push(format!("{prefix}_ADDR={ip}"));
                env.push(format!("{prefix}_PORT={num}"));
                env.push(format!("{prefix}_PROTO={proto}"));
            }
            for e in &linked.env {
                if let Some((k, v)) = e.split_once('=')
                    && k != "PATH"
                    && k != "HOME"
                    && k != "HOSTNAME"
                {
                    env.push(format!("{a}_ENV_{k}={v}"));
                }
            }
        }
        env
    }

    /// The resolver settings a container gets: its own `--dns*` flags first, then the
    /// daemon's, then the host's `/etc/resolv.conf` without loopback servers.
    pub(crate) fn resolv_for(&self, c: &Container) -> ResolvConf {
        let host = std::fs::read_to_string("/etc/resolv.conf")
            .map(|t| ResolvConf::parse(&t))
            .unwrap_or_default();
        let nameservers = if !c.dns.is_empty() {
            c.dns.clone()
        } else if !self.cfg.dns.is_empty() {
            self.cfg.dns.iter().map(|a| a.to_string()).collect()
        } else {
            host.nameservers
                .iter()
                .filter(|n| !is_loopback(n))
                .cloned()
                .collect()
        };
        let search = if !c.dns_search.is_empty() {
            c.dns_search.clone()
        } else if !self.cfg.dns_search.is_empty() {
            self.cfg.dns_search.clone()
        } else {
            host.search.clone()
        };
        let options = if !c.dns_options.is_empty() {
            c.dns_options.clone()
        } else if !self.cfg.dns_opts.is_empty() {
            self.cfg.dns_opts.clone()
        } else {
            host.options.clone()
        };
        ResolvConf {
            nameservers,
            search,
            options,
        }
    }

    /// Writes the container's hosts, hostname and resolv.conf; returns the bind mounts.
    pub(crate) fn write_container_files(
        &self,
        st: &State,
        c: &Container,
    ) -> CtlResult<Vec<(PathBuf, String)>> {
        if let Some(files) = self.joined_files(st, c) {
            return Ok(files);
        }
        let dir = self.container_dir(&c.id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| CtlError::internal(format!("create {}: {e}", dir.display())))?;
        let mut hosts = String::from(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::\tip6-localnet\nff00::\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
        );
        for h in &c.extra_hosts {
            hosts.extend(self.extra_host_line(st, h));
        }
        for (alias, linked, ip) in self.links_of(st, c) {
            // Docker's line: the alias, the linked container's hostname, and its name
            // unless that is the alias.
            hosts.push_str(&format!("{ip}\t{alias} {}", linked.hostname));
            if alias != linked.name {
                hosts.push_str(&format!(" {}", linked.name));
            }
            hosts.push('\n');
        }
        let fqdn = if c.domainname.is_empty() {
            c.hostname.clone()
        } else {
            format!("{}.{} {}", c.hostname, c.domainname, c.hostname)
        };
        if c.network_mode != "host" {
            // The gateway leg is no network of the container's: no name of it.
            for ep in st
                .container_endpoints(&c.id)
                .into_iter()
                .filter(|e| !Self::is_gateway_leg(st, e))
            {
                if let Some(a) = ep.ipv4 {
                    hosts.push_str(&format!("{}\t{fqdn}\n", a.addr()));
                }
                if let Some(a) = ep.ipv6 {
                    hosts.push_str(&format!("{}\t{fqdn}\n", a.addr()));
                }
            }
        }
        let hosts_path = dir.join("hosts");
        let hostname_path = dir.join("hostname");
        let resolv_path = dir.join("resolv.conf");
        write_in_place(&hosts_path, &hosts)?;
        write_in_place(&hostname_path, &format!("{}\n", c.hostname))?;
        let mut resolv = self.resolv_for(c);
        if Self::uses_embedded_dns(st, c) {
            // The embedded server answers container names and forwards the rest to the
            // upstreams this container would otherwise have used.
            resolv.nameservers = vec!["127.0.0.11".into()];
            if !resolv.options.iter().any(|o| o.starts_with("ndots:")) {
                resolv.options.insert(0, "ndots:0".into());
            }
        }
        write_in_place(&resolv_path, &resolv.render())?;
        Ok(vec![
            (hosts_path, "/etc/hosts".into()),
            (hostname_path, "/etc/hostname".into()),
            (resolv_path, "/etc/resolv.conf".into()),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_roundtrip() {
        let r = ResolvConf::parse(
            "# x\nnameserver 10.0.0.1\nnameserver 127.0.0.53\nsearch a.example b.example\noptions ndots:2 edns0\n",
        );
        assert_eq!(r.nameservers, vec!["10.0.0.1", "127.0.0.53"]);
        assert_eq!(r.search, vec!["a.example", "b.example"]);
        assert_eq!(r.options, vec!["ndots:2", "edns0"]);
        assert_eq!(ResolvConf::parse(&r.render()), r);
        assert!(is_loopback("127.0.0.53"));
        assert!(!is_loopback("10.0.0.1"));
    }
}
