//! Container port keys (`80/tcp`).

use crate::error::ModelError;

/// Transport protocol of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Proto {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }
}

impl std::str::FromStr for Proto {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            "sctp" => Ok(Proto::Sctp),
            _ => Err(()),
        }
    }
}

/// Parses a host port: `""` (ephemeral, None), `8080`, or a range `8000-8010`.
pub fn parse_host_port(s: &str) -> Result<Option<(u16, u16)>, ModelError> {
    let bad = |reason: &str| ModelError::InvalidPort {
        spec: s.to_string(),
        reason: reason.to_string(),
    };
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let num = |p: &str| -> Result<u16, ModelError> {
        match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(bad("host port must be a number between 1 and 65535")),
        }
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (num(a)?, num(b)?);
            if b < a {
                return Err(bad(
                    "the range is reversed: give start-end with start <= end",
                ));
            }
            Ok(Some((a, b)))
        }
        None => {
            let p = num(s)?;
            Ok(Some((p, p)))
        }
    }
}

/// Parses a container port key `80`, `80/tcp`, `53/udp` into (port, proto).
pub fn parse_port_key(key: &str) -> Result<(u16, Proto), ModelError> {
    let bad = |reason: &str| ModelError::InvalidPort {
        spec: key.to_string(),
        reason: reason.to_string(),
    };
    let (port, proto) = match key.split_once('/') {
        Some((p, proto)) => (p, proto),
        None => (key, "tcp"),
    };
    let proto = match proto.to_ascii_lowercase().as_str() {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        "sctp" => Proto::Sctp,
        _ => return Err(bad("protocol must be tcp, udp or sctp")),
    };
    let port: u16 = port
        .parse()
        .map_err(|_| bad("port must be a number between 1 and 65535"))?;
    if port == 0 {
        return Err(bad("port must be a number between 1 and 65535"));
    }
    Ok((port, proto))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(parse_port_key("80/tcp").ok(), Some((80, Proto::Tcp)));
        assert_eq!(parse_port_key("53/udp").ok(), Some((53, Proto::Udp)));
        assert_eq!(parse_port_key("80").ok(), Some((80, Proto::Tcp)));
        assert!(parse_port_key("0/tcp").is_err());
        assert!(parse_port_key("65536/tcp").is_err());
        assert!(parse_port_key("80/icmp").is_err());
        assert_eq!(parse_host_port("").ok(), Some(None));
        assert_eq!(parse_host_port("8080").ok(), Some(Some((8080, 8080))));
        assert_eq!(parse_host_port("8000-8010").ok(), Some(Some((8000, 8010))));
        assert!(parse_host_port("8010-8000").is_err());
        assert!(parse_host_port("0").is_err());
        assert!(parse_host_port("65536").is_err());
        assert!(parse_host_port("x").is_err());
    }
}
