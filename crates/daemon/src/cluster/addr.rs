//! Docker's swarm address options: `--listen-addr`, `--advertise-addr`,
//! `--data-path-addr`, `--data-path-port`, `--default-addr-pool` and
//! `--default-addr-pool-mask-length`, resolved and validated as dockerd does.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ipnet::Ipv4Net;

use crate::error::CtlError;

/// Docker's cluster management port.
pub const DEFAULT_PORT: u16 = 2377;
/// Docker's default VXLAN port.
pub const DEFAULT_DATA_PATH_PORT: u16 = 4789;

/// The IPv4 address of interface `name`, if it has one.
fn iface_addr(name: &str) -> Option<IpAddr> {
    nix::ifaddrs::getifaddrs().ok()?.find_map(|i| {
        if i.interface_name != name {
            return None;
        }
        i.address
            .and_then(|a| a.as_sockaddr_in().map(|s| IpAddr::V4(s.ip())))
    })
}

/// Parses `HOST`, `HOST:PORT`, `:PORT` or an interface name; `host` is `None` for
/// `:PORT`.
fn split(s: &str, what: &str, default_port: u16) -> Result<(Option<IpAddr>, u16), CtlError> {
    let s = s.trim();
    let bad = || {
        CtlError::invalid(format!(
            "invalid {what} {s:?}: give an IP address or interface, optionally with :PORT (e.g. 198.18.1.11:2377)"
        ))
    };
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok((Some(sa.ip()), sa.port()));
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok((Some(ip), default_port));
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
        None => (s, default_port),
    };
    if port == 0 {
        return Err(bad());
    }
    if host.is_empty() {
        return Ok((None, port));
    }
    if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Ok((Some(ip), port));
    }
    match iface_addr(host) {
        Some(ip) => Ok((Some(ip), port)),
        None => Err(CtlError::invalid(format!(
            "invalid {what} {s:?}: no IP address or interface named {host:?} on this node"
        ))),
    }
}

/// The listen address: default `0.0.0.0:2377`.
pub fn listen(s: &str) -> Result<SocketAddr, CtlError> {
    if s.is_empty() {
        return Ok(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            DEFAULT_PORT,
        ));
    }
    let (ip, port) = split(s, "listen address", DEFAULT_PORT)?;
    Ok(SocketAddr::new(
        ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        port,
    ))
}

/// The address of the interface that holds the default route.
fn default_route_addr() -> Option<IpAddr> {
    let routes = std::fs::read_to_string("/proc/net/route").ok()?;
    let iface = routes.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 2 && f[1] == "00000000").then(|| f[0].to_string())
    })?;
    iface_addr(&iface)
}

/// The advertise address (`IP:PORT`): given, else the listen IP when specific, else
/// the address of the default-route interface.
pub fn advertise(s: &str, listen: SocketAddr) -> Result<SocketAddr, CtlError> {
    if !s.is_empty() {
        let (ip, port) = split(s, "advertise address", listen.port())?;
        let ip = match ip {
            Some(ip) if !ip.is_unspecified() => ip,
            _ => {
                return Err(CtlError::invalid(format!(
                    "advertise address must be a non-zero IP address or network interface (with optional port number): {s:?}"
                )));
            }
        };
        return Ok(SocketAddr::new(ip, port));
    }
    if !listen.ip().is_unspecified() {
        return Ok(listen);
    }
    default_route_addr()
        .map(|ip| SocketAddr::new(ip, listen.port()))
        .ok_or_else(|| {
            CtlError::invalid(
                "could not choose an IP address to advertise since this system has no default route: specify one with --advertise-addr",
            )
        })
}

/// The data-path address: empty, an IP or an interface.
pub fn data_path(s: &str) -> Result<String, CtlError> {
    if s.is_empty() {
        return Ok(String::new());
    }
    match split(s, "data path address", 0) {
        Ok((Some(ip), 0)) if !ip.is_unspecified() => Ok(ip.to_string()),
        _ => Err(CtlError::invalid(format!(
            "invalid data path address {s:?}: give an IP address or interface, without a port"
        ))),
    }
}

/// `--data-path-port`: 0 for 4789, else 1024–49151 (Docker's range).
pub fn data_path_port(p: u32) -> Result<u16, CtlError> {
    if p == 0 {
        return Ok(DEFAULT_DATA_PATH_PORT);
    }
    match u16::try_from(p) {
        Ok(p) if (1024..=49151).contains(&p) => Ok(p),
        _ => Err(CtlError::invalid(format!(
            "data path port {p} is out of range: use a port from 1024 to 49151 (default 4789)"
        ))),
    }
}

/// `--default-addr-pool` and `--default-addr-pool-mask-length`: IPv4 pools that do
/// not overlap, each larger than the subnet size (default `10.0.0.0/8` in /24s).
pub fn pools(pools: &[String], subnet_size: u32) -> Result<(Vec<String>, u32), CtlError> {
    let size = if subnet_size == 0 { 24 } else { subnet_size };
    if pools.is_empty() {
        if subnet_size != 0 && subnet_size != 24 {
            return Err(CtlError::invalid(
                "--default-addr-pool-mask-length needs --default-addr-pool",
            ));
        }
        return Ok((vec!["10.0.0.0/8".into()], 24));
    }
    if !(1..=29).contains(&size) {
        return Err(CtlError::invalid(format!(
            "invalid default address pool mask length {size}: use 1 to 29"
        )));
    }
    let mut nets: Vec<Ipv4Net> = Vec::new();
    for p in pools {
        let n: Ipv4Net = p.trim().parse().map_err(|_| {
            CtlError::invalid(format!(
                "invalid default address pool {p:?}: give an IPv4 CIDR such as 10.20.0.0/16"
            ))
        })?;
        if n.trunc() != n {
            return Err(CtlError::invalid(format!(
                "invalid default address pool {p}: host bits are set (did you mean {}?)",
                n.trunc()
            )));
        }
        if u32::from(n.prefix_len()) > size {
            return Err(CtlError::invalid(format!(
                "invalid default address pool {p}: its prefix is longer than the mask length {size}; use a larger pool or a longer --default-addr-pool-mask-length"
            )));
        }
        if let Some(o) = nets.iter().find(|o| o.contains(&n) || n.contains(*o)) {
            return Err(CtlError::invalid(format!(
                "default address pools {o} and {n} overlap"
            )));
        }
        nets.push(n);
    }
    Ok((nets.iter().map(ToString::to_string).collect(), size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_as_docker_reads_them() {
        assert_eq!(listen("").unwrap().to_string(), "0.0.0.0:2377");
        assert_eq!(listen("198.18.1.5").unwrap().to_string(), "198.18.1.5:2377");
        assert_eq!(listen(":4000").unwrap().to_string(), "0.0.0.0:4000");
        assert_eq!(
            listen("198.18.1.5:4000").unwrap().to_string(),
            "198.18.1.5:4000"
        );
        assert!(listen("198.18.1.5:x").is_err());
        assert!(
            listen("no-such-iface0")
                .unwrap_err()
                .message
                .contains("no IP address or interface")
        );
        let l = listen("0.0.0.0:2377").unwrap();
        assert_eq!(
            advertise("198.18.1.5", l).unwrap().to_string(),
            "198.18.1.5:2377"
        );
        assert!(advertise("0.0.0.0", l).is_err());
        assert_eq!(data_path_port(0).unwrap(), 4789);
        assert!(data_path_port(80).is_err());
        assert_eq!(data_path("198.18.1.5").unwrap(), "198.18.1.5");
        assert!(data_path("198.18.1.5:99").is_err());
    }

    #[test]
    fn pools_are_validated() {
        assert_eq!(pools(&[], 0).unwrap(), (vec!["10.0.0.0/8".to_string()], 24));
        assert_eq!(pools(&["10.20.0.0/16".into()], 26).unwrap().1, 26);
        assert!(
            pools(&["10.20.0.1/16".into()], 24)
                .unwrap_err()
                .message
                .contains("host bits")
        );
        assert!(
            pools(&["10.20.0.0/16".into(), "10.20.1.0/24".into()], 24)
                .unwrap_err()
                .message
                .contains("overlap")
        );
        assert!(pools(&["10.20.0.0/25".into()], 24).is_err());
        assert!(pools(&["fd00::/8".into()], 24).is_err());
        assert!(pools(&[], 26).is_err());
        assert!(pools(&["10.0.0.0/8".into()], 30).is_err());
    }
}
