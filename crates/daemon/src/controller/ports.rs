//! Published ports (`-p`, `-P`): choosing host ports, refusing conflicts with a clear
//! owner, and the firewall rules that carry them (kernel DNAT, no userland proxy).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use netloom_drivers::firewall::PortRule;
use netloom_model::ports::{Proto, parse_host_port, parse_port_key};
use netloom_model::{Container, Endpoint, PublishedPort};

use super::{Controller, State};
use crate::error::{CtlError, CtlResult};

/// A (proto, host address or None for any, port) already in use by netloom.
type Slot = (String, Option<IpAddr>, u16);

fn clash(taken: &BTreeSet<Slot>, proto: &str, ip: Option<IpAddr>, port: u16, v6: bool) -> bool {
    taken.iter().any(|(p, h, n)| {
        p == proto
            && *n == port
            && match (h, ip) {
                (None, None) => true,
                (Some(a), Some(b)) => *a == b,
                (Some(a), None) => a.is_ipv6() == v6,
                (None, Some(b)) => b.is_ipv6() == v6,
            }
    })
}

/// Finds the process holding a local port, from /proc (the daemon's namespace).
fn holder(proto: &str, port: u16) -> Option<String> {
    let files: &[&str] = if proto == "udp" {
        &["/proc/net/udp", "/proc/net/udp6"]
    } else {
        &["/proc/net/tcp", "/proc/net/tcp6"]
    };
    let mut inodes = BTreeSet::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 10 {
                continue;
            }
            let local_port = cols[1]
                .rsplit(':')
                .next()
                .and_then(|h| u16::from_str_radix(h, 16).ok());
            let listening = proto == "udp" || cols[3] == "0A";
            if local_port == Some(port) && listening {
                inodes.insert(format!("socket:[{}]", cols[9]));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for p in std::fs::read_dir("/proc").ok()?.flatten() {
        let pid = p.file_name().to_string_lossy().to_string();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(t) = std::fs::read_link(fd.path())
                && inodes.contains(&t.to_string_lossy().to_string())
            {
                let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
                return Some(format!("process {pid} ({})", comm.trim()));
            }
        }
    }
    Some("another process".into())
}

/// Tries to bind the port as a listener would; Err(reason) if the host cannot give it.
fn probe(proto: &str, ip: IpAddr, port: u16) -> Result<(), String> {
    let addr = SocketAddr::new(ip, port);
    let res = match proto {
        "udp" => std::net::UdpSocket::bind(addr).map(drop),
        _ => std::net::TcpListener::bind(addr).map(drop),
    };
    match res {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(format!(
            "port {port}/{proto} on {ip} is already in use by {}",
            holder(proto, port).unwrap_or_else(|| "another process".into())
        )),
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
            Err(format!("host address {ip} is not an address of this host"))
        }
        Err(e) => Err(format!("cannot use port {port}/{proto} on {ip}: {e}")),
    }
}

fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().filter_map(|x| x.parse::<u16>().ok());
            Some((it.next()?, it.next()?))
        })
        .unwrap_or((49153, 65535))
}

impl Controller {
    /// Chooses host ports for every published port of a container about to start.
    /// All or nothing: any conflict fails the whole start with the port and its holder.
    pub(crate) fn allocate_ports(
        &self,
        st: &State,
        ctr: &Container,
        eps: &[Endpoint],
    ) -> CtlResult<Vec<PublishedPort>> {
        let mut wanted: Vec<(String, Vec<netloom_model::PortBinding>)> = ctr
            .port_bindings
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if ctr.publish_all {
            for p in &ctr.exposed_ports {
                if !ctr.port_bindings.contains_key(p) {
                    wanted.push((p.clone(), vec![Default::default()]));
                }
            }
        }
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        // The endpoint that carries published ports: the first bridge network that is
        // not internal (as Docker does; host/none have nothing to publish), else the
        // gateway leg of a container on overlays (Docker publishes those through
        // docker_gwbridge).
        let target = ctr
            .network_order
            .iter()
            .find_map(|nid| {
                let net = st.networks.get(nid)?;
                if !st.caps(net).host_firewall || net.internal {
                    return None;
                }
                eps.iter().find(|e| &e.network_id == nid)
            })
            .or_else(|| eps.iter().find(|e| Self::is_gateway_leg(st, e)));
        let Some(ep) = target else {
            return Ok(Vec::new());
        };
        let v4 = ep.ipv4.map(|a| IpAddr::V4(a.addr()));
        let v6 = ep.ipv6.map(|a| IpAddr::V6(a.addr()));
        let mut taken: BTreeSet<Slot> = BTreeSet::new();
        for c in st
            .containers
            .values()
            .filter(|c| c.is_running() && c.id != ctr.id)
        {
            for p in &c.state.ports {
                taken.insert((p.proto.clone(), p.host_ip.parse().ok(), p.host_port));
            }
        }
        let (eph_lo, eph_hi) = ephemeral_range();
        let mut out = Vec::new();
        for (key, bindings) in wanted {
            let (cport, proto) =
                parse_port_key(&key).map_err(|e| CtlError::invalid(e.to_string()))?;
            let proto = proto.as_str().to_string();
            let bindings = if bindings.is_empty() {
                vec![Default::default()]
            } else {
                bindings
            };
            for b in bindings {
                let hip = b
                    .host_ip
                    .trim()
                    .trim_start_matches('[')
                    .trim_end_matches(']');
                let targets: Vec<(Option<IpAddr>, IpAddr)> = match hip {
                    "" => v4
                        .map(|c| (None, c))
                        .into_iter()
                        .chain(v6.map(|c| (None, c)))
                        .collect(),
                    "0.0.0.0" => v4.map(|c| (None, c)).into_iter().collect(),
                    "::" => v6.map(|c| (None, c)).into_iter().collect(),
                    h => {
                        let ip: IpAddr = h.parse().map_err(|_| {
                            CtlError::invalid(format!(
                                "invalid host IP {h:?} in published port {key}"
                            ))
                        })?;
                        let c = if ip.is_ipv4() { v4 } else { v6 };
                        c.map(|c| (Some(ip), c)).into_iter().collect()
                    }
                };
                if targets.is_empty() {
                    return Err(CtlError::invalid(format!(
                        "cannot publish {key} on {}: the container has no address of that family",
                        if hip.is_empty() { "all addresses" } else { hip }
                    )));
                }
                let range =
                    parse_host_port(&b.host_port).map_err(|e| CtlError::invalid(e.to_string()))?;
                let (lo, hi, ephemeral) = match range {
                    Some((a, z)) => (a, z, false),
                    None => (eph_lo, eph_hi, true),
                };
                // One host port for all targets of this binding (v4 and v6 alike).
                let mut chosen = None;
                let mut last_err = String::new();
                for port in lo..=hi {
                    let mut ok = true;
                    for (h, c) in &targets {
                        let is_v6 = c.is_ipv6();
                        if clash(&taken, &proto, *h, port, is_v6) {
                            let owner = st
                                .containers
                                .values()
                                .find(|o| {
                                    o.is_running()
                                        && o.state
                                            .ports
                                            .iter()
                                            .any(|p| p.proto == proto && p.host_port == port)
                                })
                                .map(|o| format!("container {}", o.name))
                                .unwrap_or_else(|| "this container".into());
                            last_err = format!(
                                "Bind for {}:{port} failed: port is already allocated by {owner}",
                                h.map(|i| i.to_string()).unwrap_or_else(|| if is_v6 {
                                    "[::]".into()
                                } else {
                                    "0.0.0.0".into()
                                })
                            );
                            ok = false;
                            break;
                        }
                        let probe_ip = h.unwrap_or(if is_v6 {
                            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
                        } else {
                            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
                        });
                        if let Err(e) = probe(&proto, probe_ip, port) {
                            last_err = e;
                            ok = false;
                            break;
                        }
                    }
                    if ok {
                        chosen = Some(port);
                        break;
                    }
                    if !ephemeral && lo == hi {
                        break;
                    }
                }
                let Some(port) = chosen else {
                    return Err(CtlError::conflict(if ephemeral {
                        format!("no free host port for {key} in {eph_lo}-{eph_hi}: {last_err}")
                    } else if lo == hi {
                        format!("{last_err}; choose another host port for {key}")
                    } else {
                        format!("no free host port for {key} in {lo}-{hi}: {last_err}")
                    }));
                };
                for (h, c) in targets {
                    taken.insert((proto.clone(), h, port));
                    out.push(PublishedPort {
                        proto: proto.clone(),
                        host_ip: h.map(|i| i.to_string()).unwrap_or_default(),
                        host_port: port,
                        container_port: cport,
                        container_ip: c.to_string(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Firewall rules of every running container's published ports.
    pub(crate) fn port_rules(st: &State) -> Vec<PortRule> {
        let mut v = Vec::new();
        for c in st.containers.values().filter(|c| c.is_running()) {
            for p in &c.state.ports {
                let (Ok(proto), Ok(ctr_ip)) =
                    (p.proto.parse::<Proto>(), p.container_ip.parse::<IpAddr>())
                else {
                    continue;
                };
                v.push(PortRule {
                    proto,
                    host_ip: p.host_ip.parse().ok(),
                    host_port: p.host_port,
                    ctr_ip,
                    ctr_port: p.container_port,
                });
            }
        }
        v
    }
}
