//! Where a pull asks (endpoints: Docker Hub mirrors, insecure registries over
//! unverified TLS then plain HTTP), the `oci-client` client for each, and what a
//! failed request means for the user (Docker's wording where Docker has one).

use std::time::Duration;

use oci_client::Client;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;

use super::RegistryError;
use super::reference::ImageRef;
use super::settings::{Credentials, RegistryConfig};

/// The `User-Agent` of registry requests.
pub const USER_AGENT: &str = concat!("netloom/", env!("CARGO_PKG_VERSION"));

pub(crate) fn ensure_crypto_provider() {
    // reqwest is built without a provider of its own (`rustls-no-provider`): ring is
    // installed once, process-wide (research/stack.md: no aws-lc).
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Deprecated in rustls 0.23.48 for lacking post-quantum key exchange; ring
        // is still the choice of research/stack.md (aws-lc is a large C build).
        #[allow(deprecated)]
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// One place to ask for the image.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub host: String,
    pub http: bool,
    pub skip_verify: bool,
    pub mirror: bool,
}

impl Endpoint {
    pub(crate) fn url(&self) -> String {
        let host = if self.host == super::reference::DOCKER_HUB {
            "index.docker.io"
        } else {
            &self.host
        };
        format!("{}://{host}", if self.http { "http" } else { "https" })
    }
}

/// The endpoints of a registry host (Docker Hub: its mirrors are for pulls, not here).
pub(crate) async fn endpoints_for_host(cfg: &RegistryConfig, host: &str) -> Vec<Endpoint> {
    let insecure = host != super::reference::DOCKER_HUB && cfg.is_insecure(host).await;
    let mut v = vec![Endpoint {
        host: host.to_string(),
        http: false,
        skip_verify: insecure,
        mirror: false,
    }];
    if insecure {
        v.push(Endpoint {
            host: host.to_string(),
            http: true,
            skip_verify: false,
            mirror: false,
        });
    }
    v
}

pub(crate) async fn endpoints(cfg: &RegistryConfig, r: &ImageRef) -> Vec<Endpoint> {
    let mut v = Vec::new();
    let add = |v: &mut Vec<Endpoint>, host: &str, insecure: bool, mirror: bool| {
        v.push(Endpoint {
            host: host.to_string(),
            http: false,
            skip_verify: insecure,
            mirror,
        });
        if insecure {
            v.push(Endpoint {
                host: host.to_string(),
                http: true,
                skip_verify: false,
                mirror,
            });
        }
    };
    if r.is_docker_hub() {
        for m in &cfg.mirrors {
            if m.http {
                v.push(Endpoint {
                    host: m.host.clone(),
                    http: true,
                    skip_verify: false,
                    mirror: true,
                });
            } else {
                add(&mut v, &m.host, cfg.is_insecure(&m.host).await, true);
            }
        }
        add(&mut v, super::reference::DOCKER_HUB, false, false);
    } else {
        add(&mut v, &r.domain, cfg.is_insecure(&r.domain).await, false);
    }
    v
}

pub(crate) fn client_for(ep: &Endpoint, cfg: &RegistryConfig) -> Result<Client, RegistryError> {
    ensure_crypto_provider();
    let cc = ClientConfig {
        protocol: if ep.http {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        accept_invalid_certificates: ep.skip_verify,
        platform_resolver: None,
        read_timeout: Some(cfg.timeout),
        connect_timeout: Some(cfg.timeout),
        user_agent: USER_AGENT,
        max_concurrent_download: cfg.max_concurrent_downloads.max(1),
        ..ClientConfig::default()
    };
    Client::try_from(cc).map_err(|e| {
        RegistryError::InvalidSetting(format!("make a registry client for {}: {e}", ep.host))
    })
}

pub(crate) fn oci_auth(c: &Credentials) -> RegistryAuth {
    match c {
        Credentials::Anonymous => RegistryAuth::Anonymous,
        Credentials::Basic { username, password } => {
            RegistryAuth::Basic(username.clone(), password.clone())
        }
        Credentials::Token(t) => RegistryAuth::Bearer(t.clone()),
    }
}

/// The whole `source()` chain of an error, without repeats.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let cs = c.to_string();
        if !s.contains(&cs) {
            s.push_str(": ");
            s.push_str(&cs);
        }
        cur = c.source();
    }
    s
}

/// Whether an error chain holds a timeout.
pub(crate) fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(r) = c.downcast_ref::<reqwest::Error>()
            && r.is_timeout()
        {
            return true;
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        cur = c.source();
    }
    false
}

/// What a failed request means for the user, and whether another endpoint may help.
pub(crate) struct Failure {
    pub err: RegistryError,
    /// The registry could not be reached at all (connect, TLS): try the next endpoint.
    pub connect: bool,
}

impl From<RegistryError> for Failure {
    fn from(err: RegistryError) -> Self {
        Failure {
            err,
            connect: false,
        }
    }
}

/// Context of a registry request, for messages.
pub(crate) struct Ctx<'a> {
    pub image: &'a ImageRef,
    pub ep: &'a Endpoint,
    pub creds: &'a Credentials,
    pub timeout: Duration,
}

impl Ctx<'_> {
    pub(crate) fn transport(
        &self,
        what: &str,
        e: &(dyn std::error::Error + 'static),
    ) -> RegistryError {
        if is_timeout(e) {
            RegistryError::Unreachable(format!(
                "registry {} did not answer within {}s ({what}): the registry hangs or the network drops packets",
                self.ep.url(),
                self.timeout.as_secs_f64()
            ))
        } else {
            RegistryError::Unreachable(format!("{what} at {}: {}", self.ep.url(), chain(e)))
        }
    }

    pub(crate) fn denied(&self, detail: &str) -> RegistryError {
        match self.creds {
            Credentials::Anonymous => RegistryError::Denied(format!(
                "pull access denied for {}, repository does not exist or may require 'docker login': {detail}",
                self.image.familiar_name()
            )),
            _ => RegistryError::Denied(format!(
                "unauthorized: the credentials given for {} were refused: {detail}",
                self.ep.host
            )),
        }
    }

    pub(crate) fn classify(&self, what: &str, e: OciDistributionError) -> Failure {
        let err = match e {
            OciDistributionError::RegistryError { envelope, .. } => {
                let Some(first) = envelope.errors.first() else {
                    return RegistryError::Invalid(format!(
                        "{what}: the registry answered an empty error list"
                    ))
                    .into();
                };
                let msg = &first.message;
                match first.code {
                    OciErrorCode::ManifestUnknown => RegistryError::NotFound(format!(
                        "manifest for {} not found: manifest unknown: {msg}",
                        self.image.familiar()
                    )),
                    OciErrorCode::NameUnknown => RegistryError::NotFound(format!(
                        "repository {} not found: name unknown: {msg}",
                        self.image.familiar_name()
                    )),
                    OciErrorCode::BlobUnknown => {
                        RegistryError::NotFound(format!("{what}: blob unknown: {msg}"))
                    }
                    OciErrorCode::Denied => self.denied(&format!("denied: {msg}")),
                    OciErrorCode::Unauthorized => self.denied(&format!("unauthorized: {msg}")),
                    OciErrorCode::Toomanyrequests => {
                        RegistryError::Unreachable(format!("{what}: toomanyrequests: {msg}"))
                    }
                    _ => RegistryError::Invalid(format!("{what}: {:?}: {msg}", first.code)),
                }
            }
            OciDistributionError::UnauthorizedError { .. } => {
                self.denied("unauthorized: authentication required")
            }
            OciDistributionError::AuthenticationFailure(reason) => {
                let reason = reason.trim();
                self.denied(&format!(
                    "the token endpoint refused: {}",
                    if reason.is_empty() {
                        "no reason given"
                    } else {
                        reason
                    }
                ))
            }
            OciDistributionError::ServerError { code, message, .. } => match code {
                404 => RegistryError::NotFound(format!(
                    "manifest for {} not found: {what}: {}",
                    self.image.familiar(),
                    message.trim()
                )),
                401 | 403 => self.denied(message.trim()),
                _ => RegistryError::Unreachable(format!(
                    "{what}: registry {} answered {code}: {}",
                    self.ep.url(),
                    message.trim()
                )),
            },
            OciDistributionError::DigestError(DigestError::VerificationError {
                expected,
                actual,
            }) => RegistryError::DigestMismatch {
                what: "manifest",
                expected,
                actual,
            },
            OciDistributionError::RequestError(r) => {
                let connect = r.is_connect() || (r.is_timeout() && r.is_request());
                return Failure {
                    err: self.transport(what, &r),
                    connect,
                };
            }
            OciDistributionError::IoError(io) => self.transport(what, &io),
            other => RegistryError::Invalid(format!("{what}: {}", chain(&other))),
        };
        err.into()
    }
}
