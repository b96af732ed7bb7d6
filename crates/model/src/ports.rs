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
    }
}
