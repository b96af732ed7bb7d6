//! Registry settings (daemon.json's `registry-mirrors`, `insecure-registries`,
//! `max-concurrent-downloads`, `max-download-attempts`) and credentials as the docker
//! CLI sends them (`X-Registry-Auth`).

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use ipnet::IpNet;
use serde::Deserialize;

use super::RegistryError;

/// A registry mirror for Docker Hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// `host[:port]`.
    pub host: String,
    /// Plain HTTP (`http://` mirror URL).
    pub http: bool,
}

/// An `insecure-registries` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Insecure {
    /// `host[:port]` as written.
    Host(String),
    /// Addresses (`127.0.0.0/8`).
    Net(IpNet),
}

/// How images are fetched.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Docker Hub mirrors, tried in order before Docker Hub.
    pub mirrors: Vec<Mirror>,
    /// Registries reached with unverified TLS or plain HTTP (127.0.0.0/8 always is,
    /// as in Docker).
    pub insecure: Vec<Insecure>,
    /// How long a registry may stay silent (connecting, or between two reads).
    pub timeout: Duration,
    /// Layers downloaded at once per pull.
    pub max_concurrent_downloads: usize,
    /// Tries per layer download before the pull fails.
    pub max_download_attempts: usize,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            mirrors: Vec::new(),
            insecure: vec![Insecure::Net(IpNet::V4(
                ipnet::Ipv4Net::new(std::net::Ipv4Addr::new(127, 0, 0, 0), 8).unwrap_or_default(),
            ))],
            timeout: Duration::from_secs(30),
            max_concurrent_downloads: 3,
            max_download_attempts: 5,
        }
    }
}

impl RegistryConfig {
    /// Parses a `registry-mirrors` entry: `http(s)://host[:port]` with no path.
    pub fn parse_mirror(s: &str) -> Result<Mirror, String> {
        let fix = "write it as https://host[:port] or http://host[:port]";
        let (http, rest) = if let Some(r) = s.strip_prefix("https://") {
            (false, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (true, r)
        } else {
            return Err(format!("invalid registry-mirrors entry {s:?}: {fix}"));
        };
        let host = rest.strip_suffix('/').unwrap_or(rest);
        if host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) {
            return Err(format!(
                "invalid registry-mirrors entry {s:?}: a mirror has no path, query or credentials: {fix}"
            ));
        }
        Ok(Mirror {
            host: host.to_string(),
            http,
        })
    }

    /// Parses an `insecure-registries` entry: `host[:port]` or a CIDR.
    pub fn parse_insecure(s: &str) -> Result<Insecure, String> {
        if s.contains("://") {
            return Err(format!(
                "invalid insecure-registries entry {s:?}: give host[:port] or a CIDR, without a scheme"
            ));
        }
        if let Ok(n) = s.parse::<IpNet>() {
            return Ok(Insecure::Net(n.trunc()));
        }
        if s.is_empty() || s.contains(['/', ' ', '?', '#', '@']) {
            return Err(format!(
                "invalid insecure-registries entry {s:?}: give host[:port] (e.g. registry.local:5000) or a CIDR (e.g. 10.0.0.0/8)"
            ));
        }
        Ok(Insecure::Host(s.to_string()))
    }

    /// Whether `host[:port]` is an insecure registry: named, or resolving into a CIDR.
    pub async fn is_insecure(&self, host: &str) -> bool {
        if self
            .insecure
            .iter()
            .any(|i| matches!(i, Insecure::Host(h) if h == host))
        {
            return true;
        }
        let nets: Vec<&IpNet> = self
            .insecure
            .iter()
            .filter_map(|i| match i {
                Insecure::Net(n) => Some(n),
                Insecure::Host(_) => None,
            })
            .collect();
        if nets.is_empty() {
            return false;
        }
        let name = host_only(host);
        let ips: Vec<IpAddr> = match name.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => match tokio::net::lookup_host((name, 0)).await {
                Ok(it) => it.map(|a| a.ip()).collect(),
                Err(_) => Vec::new(),
            },
        };
        ips.iter().any(|ip| nets.iter().any(|n| n.contains(ip)))
    }
}

/// The host of `host[:port]` (`[v6]:port` too).
fn host_only(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    }
}

/// Credentials for one pull.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// None.
    #[default]
    Anonymous,
    /// A username and password (basic auth, or exchanged for a token).
    Basic {
        /// Username.
        username: String,
        /// Password.
        password: String,
    },
    /// A registry bearer token (`registrytoken`).
    Token(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => write!(f, "Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credentials::Token(_) => write!(f, "Token(***)"),
        }
    }
}

/// The docker CLI's `AuthConfig`.
#[derive(Debug, Default, Deserialize)]
struct AuthConfig {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    auth: String,
    #[serde(default, rename = "identitytoken")]
    identity_token: String,
    #[serde(default, rename = "registrytoken")]
    registry_token: String,
}

fn b64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    [
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
    ]
    .iter()
    .find_map(|e| e.decode(s).ok())
}

impl Credentials {
    /// Reads an `X-Registry-Auth` header: base64url of the CLI's JSON `AuthConfig`.
    pub fn from_header(h: &str) -> Result<Credentials, RegistryError> {
        let bad = |why: &str| {
            RegistryError::InvalidSetting(format!(
                "invalid X-Registry-Auth header: {why} (it must be base64url-encoded JSON with username and password, as the docker CLI sends)"
            ))
        };
        if h.trim().is_empty() {
            return Ok(Credentials::Anonymous);
        }
        let raw = b64(h).ok_or_else(|| bad("not base64"))?;
        let a: AuthConfig = serde_json::from_slice(&raw).map_err(|_| bad("not a JSON object"))?;
        Credentials::from_config(a).map_err(|e| bad(&e))
    }

    /// Reads the body of `POST /auth` (the same JSON, not encoded).
    pub fn from_json(body: &[u8]) -> Result<Credentials, RegistryError> {
        let a: AuthConfig = serde_json::from_slice(body)
            .map_err(|e| RegistryError::InvalidSetting(format!("invalid login request: {e}")))?;
        Credentials::from_config(a).map_err(RegistryError::InvalidSetting)
    }

    fn from_config(a: AuthConfig) -> Result<Credentials, String> {
        if !a.identity_token.is_empty() {
            return Err(
                "identity tokens (an OAuth login) are not supported by netloom: log in with a username and password".into(),
            );
        }
        if !a.registry_token.is_empty() {
            return Ok(Credentials::Token(a.registry_token));
        }
        if !a.username.is_empty() || !a.password.is_empty() {
            return Ok(Credentials::Basic {
                username: a.username,
                password: a.password,
            });
        }
        if !a.auth.is_empty() {
            let raw = b64(&a.auth).ok_or("its auth field is not base64")?;
            let s = String::from_utf8(raw).map_err(|_| "its auth field is not UTF-8")?;
            let (u, p) = s
                .split_once(':')
                .ok_or("its auth field is not base64 of user:password")?;
            return Ok(Credentials::Basic {
                username: u.to_string(),
                password: p.to_string(),
            });
        }
        Ok(Credentials::Anonymous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x_registry_auth() {
        let enc = |j: &str| base64::engine::general_purpose::URL_SAFE.encode(j);
        assert_eq!(
            Credentials::from_header("").ok(),
            Some(Credentials::Anonymous)
        );
        assert_eq!(
            Credentials::from_header(&enc("{}")).ok(),
            Some(Credentials::Anonymous)
        );
        assert_eq!(
            Credentials::from_header(&enc(
                r#"{"username":"u","password":"p?>","serveraddress":"r"}"#
            ))
            .ok(),
            Some(Credentials::Basic {
                username: "u".into(),
                password: "p?>".into()
            })
        );
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3:cret");
        assert_eq!(
            Credentials::from_header(&enc(&format!(r#"{{"auth":"{auth}"}}"#))).ok(),
            Some(Credentials::Basic {
                username: "alice".into(),
                password: "s3:cret".into()
            })
        );
        assert_eq!(
            Credentials::from_header(&enc(r#"{"registrytoken":"t"}"#)).ok(),
            Some(Credentials::Token("t".into()))
        );
        let e = Credentials::from_header(&enc(r#"{"identitytoken":"x"}"#)).err();
        assert!(e.is_some_and(|e| e.to_string().contains("identity tokens")));
        assert!(Credentials::from_header("%%%").is_err());
        assert!(Credentials::from_header(&enc("[1]")).is_err());
    }

    #[test]
    fn settings() {
        assert_eq!(
            RegistryConfig::parse_mirror("http://127.0.0.1:5000/"),
            Ok(Mirror {
                host: "127.0.0.1:5000".into(),
                http: true
            })
        );
        assert!(RegistryConfig::parse_mirror("127.0.0.1:5000").is_err());
        assert!(RegistryConfig::parse_mirror("https://m/x").is_err());
        assert_eq!(
            RegistryConfig::parse_insecure("reg.local:5000"),
            Ok(Insecure::Host("reg.local:5000".into()))
        );
        assert!(matches!(
            RegistryConfig::parse_insecure("10.1.2.3/8"),
            Ok(Insecure::Net(_))
        ));
        assert!(RegistryConfig::parse_insecure("http://x").is_err());
    }

    #[tokio::test]
    async fn insecure_matching() {
        let c = RegistryConfig::default();
        assert!(c.is_insecure("127.0.0.1:5000").await);
        assert!(c.is_insecure("127.0.0.2").await);
        assert!(!c.is_insecure("198.18.0.1:5000").await);
        let mut c2 = RegistryConfig::default();
        c2.insecure.push(Insecure::Host("reg.test:443".into()));
        assert!(c2.is_insecure("reg.test:443").await);
        assert!(!c2.is_insecure("reg.test").await);
    }
}
