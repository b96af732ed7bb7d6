//! [`EtcdConfig`]: where the etcd store is and how long to wait for it, parsed from
//! `etcd://HOST:PORT[,HOST:PORT…][/PREFIX]`.

use std::time::Duration;

use crate::StoreError;

/// How the etcd backend reaches its cluster.
///
/// Built from a URL with [`EtcdConfig::parse`] or from endpoints with
/// [`EtcdConfig::new`], then adjusted with the `with_*` methods. The struct is
/// `#[non_exhaustive]` so that further settings can be added as `with_*` options
/// without breaking callers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EtcdConfig {
    /// gRPC endpoints, `http://HOST:PORT` (`https://` with [`EtcdConfig::tls`]).
    pub endpoints: Vec<String>,
    /// The etcd key prefix every netloom key is stored under (`/netloom/`).
    pub prefix: String,
    /// How long one request may take before it fails with
    /// [`StoreError::Unavailable`]; also the connect timeout.
    pub deadline: Duration,
    /// How long a watch keeps trying to resume after its connection broke before
    /// it reports [`StoreError::Unavailable`].
    pub watch_resume: Duration,
    /// Mutual TLS towards etcd: the CA that signed etcd's certificates and this
    /// client's certificate ([`EtcdConfig::with_tls`]); `None`: plain HTTP.
    pub tls: Option<EtcdTls>,
}

/// Mutual TLS towards etcd (etcd's `--client-cert-auth`): every PEM in memory.
#[derive(Clone, PartialEq, Eq)]
pub struct EtcdTls {
    /// The CA certificate etcd's server certificates chain to (PEM).
    pub ca_pem: String,
    /// This client's certificate (PEM), signed by a CA etcd trusts.
    pub cert_pem: String,
    /// This client's private key (PEM).
    pub key_pem: String,
}

impl std::fmt::Debug for EtcdTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdTls").finish_non_exhaustive()
    }
}

/// Default request deadline of the etcd backend.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(3);
/// Default resume window of an etcd watch.
pub const DEFAULT_WATCH_RESUME: Duration = Duration::from_secs(10);
/// Default etcd key prefix.
pub const DEFAULT_PREFIX: &str = "/netloom/";
const DEFAULT_PORT: u16 = 2379;

const FORM: &str = "use etcd://HOST:PORT[,HOST:PORT...][/PREFIX], e.g. etcd://127.0.0.1:2379";

impl EtcdConfig {
    /// Endpoints given as `HOST:PORT` or `http://HOST:PORT`, with the default prefix
    /// and deadlines.
    pub fn new<S: Into<String>>(endpoints: impl IntoIterator<Item = S>) -> Self {
        EtcdConfig {
            endpoints: endpoints
                .into_iter()
                .map(|e| {
                    let e = e.into();
                    if e.starts_with("http://") || e.starts_with("https://") {
                        e
                    } else {
                        format!("http://{e}")
                    }
                })
                .collect(),
            prefix: DEFAULT_PREFIX.to_string(),
            deadline: DEFAULT_DEADLINE,
            watch_resume: DEFAULT_WATCH_RESUME,
            tls: None,
        }
    }

    /// Parses `etcd://HOST:PORT[,HOST:PORT…][/PREFIX]` (the form of Docker's old
    /// `--cluster-store`). The port defaults to 2379, the prefix to `netloom`.
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let bad = |reason: String| StoreError::InvalidUrl {
            url: url.to_string(),
            reason,
        };
        let Some(rest) = url.strip_prefix("etcd://") else {
            let scheme = url.split_once("://").map_or("", |(s, _)| s);
            return Err(bad(match scheme {
                "" => format!("no scheme: {FORM}"),
                "http" | "https" | "etcds" => {
                    format!("the scheme is etcd:// (TLS is not supported yet): {FORM}")
                }
                other => format!("{other}:// stores are not supported, only etcd: {FORM}"),
            }));
        };
        if let Some(c) = rest.chars().find(|c| matches!(c, '@' | '?' | '#')) {
            return Err(bad(format!(
                "{c:?} is not allowed (credentials and options are not supported): {FORM}"
            )));
        }
        let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
        let mut endpoints = Vec::new();
        for host in hosts.split(',') {
            endpoints.push(endpoint(host).map_err(|reason| bad(format!("{reason}: {FORM}")))?);
        }
        let path = path.trim_matches('/');
        let prefix = if path.is_empty() {
            DEFAULT_PREFIX.to_string()
        } else {
            if let Some(c) = path
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')))
            {
                return Err(bad(format!(
                    "the key prefix {path:?} has {c:?}; use letters, digits, '-', '_', '.' and '/'"
                )));
            }
            if path.split('/').any(str::is_empty) {
                return Err(bad(format!("the key prefix {path:?} has an empty part")));
            }
            format!("/{path}/")
        };
        Ok(EtcdConfig {
            prefix,
            ..EtcdConfig::new(endpoints)
        })
    }

    /// Stores keys under `prefix` (made to start and end with `/`).
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        let p = prefix.trim_matches('/');
        self.prefix = if p.is_empty() {
            "/".to_string()
        } else {
            format!("/{p}/")
        };
        self
    }

    /// Sets the request deadline.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Sets the watch resume window.
    pub fn with_watch_resume(mut self, window: Duration) -> Self {
        self.watch_resume = window;
        self
    }

    /// Speaks mutual TLS to etcd: the endpoints become `https://`.
    pub fn with_tls(mut self, tls: EtcdTls) -> Self {
        for e in &mut self.endpoints {
            if let Some(rest) = e.strip_prefix("http://") {
                *e = format!("https://{rest}");
            }
        }
        self.tls = Some(tls);
        self
    }

    /// `etcd store http://a:2379,http://b:2379`, with the prefix when it is not the
    /// default.
    pub fn describe(&self) -> String {
        let mut s = format!("etcd store {}", self.endpoints.join(","));
        if self.prefix != DEFAULT_PREFIX {
            s.push_str(&format!(" (keys under {})", self.prefix));
        }
        s
    }
}

/// `host[:port]` or `[v6][:port]` → `http://host:port`.
fn endpoint(host: &str) -> Result<String, String> {
    if host.is_empty() {
        return Err("an endpoint is empty".to_string());
    }
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("endpoint {host:?} has no closing ']'"))?;
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("endpoint {host:?} is not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("endpoint {host:?}: expected ':PORT' after ']'"))?,
            ),
        };
        (format!("[{v6}]"), port)
    } else {
        match host.split_once(':') {
            Some((n, p)) => (n.to_string(), Some(p)),
            None => (host.to_string(), None),
        }
    };
    if !name.starts_with('[')
        && (name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-')))
    {
        return Err(format!("endpoint {host:?} is not a host name or address"));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Err(format!("endpoint {host:?} has an invalid port")),
        },
    };
    Ok(format!("http://{name}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let c = EtcdConfig::parse("etcd://127.0.0.1:2379").unwrap();
        assert_eq!(c.endpoints, ["http://127.0.0.1:2379"]);
        assert_eq!(c.prefix, "/netloom/");
        assert_eq!(c.deadline, DEFAULT_DEADLINE);
        assert_eq!(c.describe(), "etcd store http://127.0.0.1:2379");
        let c = EtcdConfig::parse("etcd://a.example:1,b,[::1]:3,[fd00::2]/swarm/one/").unwrap();
        assert_eq!(
            c.endpoints,
            [
                "http://a.example:1",
                "http://b:2379",
                "http://[::1]:3",
                "http://[fd00::2]:2379"
            ]
        );
        assert_eq!(c.prefix, "/swarm/one/");
        assert_eq!(
            c.describe(),
            "etcd store http://a.example:1,http://b:2379,http://[::1]:3,http://[fd00::2]:2379 (keys under /swarm/one/)"
        );
        assert_eq!(
            EtcdConfig::parse("etcd://h:9/").unwrap().prefix,
            "/netloom/"
        );
    }

    #[test]
    fn refuses_bad_urls() {
        for (url, want) in [
            ("127.0.0.1:2379", "no scheme"),
            ("http://127.0.0.1:2379", "the scheme is etcd://"),
            ("consul://h:8500", "consul:// stores are not supported"),
            ("etcd://", "an endpoint is empty"),
            ("etcd://a,,b", "an endpoint is empty"),
            ("etcd://h:0", "invalid port"),
            ("etcd://h:99999", "invalid port"),
            ("etcd://h:x", "invalid port"),
            ("etcd://user:pw@h:1", "credentials"),
            ("etcd://h:1?x=1", "options"),
            ("etcd://[::1", "closing"),
            ("etcd://[zz]:1", "not an IPv6"),
            ("etcd://h_1:2", "not a host name"),
            ("etcd://h:1/a b", "the key prefix"),
            ("etcd://h:1/a//b", "empty part"),
        ] {
            let e = EtcdConfig::parse(url).unwrap_err();
            let msg = e.to_string();
            assert!(matches!(e, StoreError::InvalidUrl { .. }), "{url}: {e:?}");
            assert!(msg.contains(want), "{url}: {msg}");
            assert!(
                msg.starts_with(&format!("invalid cluster store {url:?}")),
                "{msg}"
            );
        }
    }

    #[test]
    fn builder() {
        let c = EtcdConfig::new(["127.0.0.1:1", "http://h:2"])
            .with_prefix("x/y")
            .with_deadline(Duration::from_millis(500))
            .with_watch_resume(Duration::from_secs(1));
        assert_eq!(c.endpoints, ["http://127.0.0.1:1", "http://h:2"]);
        assert_eq!(c.prefix, "/x/y/");
        assert_eq!(c.deadline, Duration::from_millis(500));
        assert_eq!(c.watch_resume, Duration::from_secs(1));
        let t = c.with_tls(EtcdTls {
            ca_pem: "ca".into(),
            cert_pem: "cert".into(),
            key_pem: "secret".into(),
        });
        assert_eq!(t.endpoints, ["https://127.0.0.1:1", "https://h:2"]);
        assert!(!format!("{t:?}").contains("secret"));
    }
}
