//! Mutual TLS 1.3 between swarm nodes (rustls with the ring provider; TLS 1.2 and
//! plain TCP are refused).
//!
//! - A manager serves with its node certificate and asks every client for one: a
//!   certificate that is presented must chain to a trusted root, be within its
//!   validity and not belong to a removed node ([`Revocations`]), otherwise the
//!   handshake fails. A client without a certificate is let through only so that it
//!   can fetch the CA and join; the daemon serves nothing else to it.
//! - A client checks that the server's certificate chains to the trusted roots and
//!   carries the name `swarm-manager`, which only managers' certificates have.
//! - The one exception is [`bootstrap_client_config`]: a joining node does not know
//!   the CA yet, so it fetches it over a connection that checks nothing, and then
//!   checks the CA against the join token's digest before it sends anything secret.
//!
//! During a root rotation both roots are trusted (`trusted` holds both), so nodes
//! with certificates of either root keep talking until every node has renewed.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName,
    RootCertStore, ServerConfig, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::ca::{CertInfo, NodeCert, cert_der, parse_cert_der};
use crate::{ClusterError, Result};

/// The TLS server name clients expect of managers (a DNS name in managers' certificates).
pub const MANAGER_SERVER_NAME: &str = "swarm-manager";

/// Node IDs whose certificates are refused from now on (nodes removed from the swarm).
#[derive(Debug, Clone, Default)]
pub struct Revocations(Arc<RwLock<HashSet<String>>>);

impl Revocations {
    /// Refuses `node_id`'s certificates from now on.
    pub fn revoke(&self, node_id: &str) {
        if let Ok(mut s) = self.0.write() {
            s.insert(node_id.to_string());
        }
    }

    /// Replaces the whole set.
    pub fn set(&self, ids: impl IntoIterator<Item = String>) {
        if let Ok(mut s) = self.0.write() {
            *s = ids.into_iter().collect();
        }
    }

    /// Whether `node_id` was removed.
    pub fn is_revoked(&self, node_id: &str) -> bool {
        self.0.read().map(|s| s.contains(node_id)).unwrap_or(true)
    }
}

/// The crypto provider of every swarm TLS configuration (ring).
pub fn provider() -> Arc<CryptoProvider> {
    // ring, not aws-lc-rs (research/stack.md: no C build of aws-lc-sys). rustls 0.23.48
    // deprecates it for lacking post-quantum key exchange; ECDHE (X25519, P-256) between
    // our own nodes is what swarmkit's Go TLS uses too.
    #[allow(deprecated)]
    let p = rustls::crypto::ring::default_provider();
    Arc::new(p)
}

fn tls_err(what: &str) -> impl FnOnce(rustls::Error) -> ClusterError + '_ {
    move |source| ClusterError::Tls {
        what: what.to_string(),
        source,
    }
}

fn roots(trusted: &[String]) -> Result<Arc<RootCertStore>> {
    let mut store = RootCertStore::empty();
    for pem in trusted {
        for der in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let der = der.map_err(|e| ClusterError::Parse {
                what: "trusted root CA".into(),
                detail: e.to_string(),
            })?;
            store.add(der).map_err(tls_err("the trusted root CAs"))?;
        }
    }
    if store.is_empty() {
        return Err(ClusterError::Parse {
            what: "trusted root CAs".into(),
            detail: "no certificate".into(),
        });
    }
    Ok(Arc::new(store))
}

fn identity(me: &NodeCert) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let chain = vec![cert_der(&me.cert_pem)?];
    let key =
        PrivateKeyDer::from_pem_slice(me.key_pem.as_bytes()).map_err(|e| ClusterError::Parse {
            what: "node key".into(),
            detail: e.to_string(),
        })?;
    Ok((chain, key))
}

/// The server side of a manager: TLS 1.3, its node certificate, client certificates
/// verified against `trusted` and `revoked` when presented.
pub fn server_config(
    trusted: &[String],
    me: &NodeCert,
    revoked: Revocations,
) -> Result<Arc<ServerConfig>> {
    let p = provider();
    let inner = WebPkiClientVerifier::builder_with_provider(roots(trusted)?, p.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| ClusterError::Tls {
            what: "client certificate verification".into(),
            source: rustls::Error::General(e.to_string()),
        })?;
    let verifier = Arc::new(CheckRevoked { inner, revoked });
    let (chain, key) = identity(me)?;
    let cfg = ServerConfig::builder_with_provider(p)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err("the cluster server"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(tls_err("the cluster server"))?;
    Ok(Arc::new(cfg))
}

/// The client side towards managers: TLS 1.3, servers checked against `trusted` and
/// the name `swarm-manager`; `me` is presented when given.
pub fn client_config(trusted: &[String], me: Option<&NodeCert>) -> Result<Arc<ClientConfig>> {
    let b = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err("the cluster client"))?
        .with_root_certificates(roots(trusted)?);
    let cfg = match me {
        Some(me) => {
            let (chain, key) = identity(me)?;
            b.with_client_auth_cert(chain, key)
                .map_err(tls_err("the cluster client"))?
        }
        None => b.with_no_client_auth(),
    };
    Ok(Arc::new(cfg))
}

/// A client that checks nothing of the server: only for fetching the CA before a join,
/// whose digest the caller then checks against the token ([`crate::JoinToken::check_ca`]).
pub fn bootstrap_client_config() -> Result<Arc<ClientConfig>> {
    let p = provider();
    let cfg = ClientConfig::builder_with_provider(p.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err("the bootstrap client"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(p)))
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// The server name to connect to managers with.
pub fn manager_name() -> ServerName<'static> {
    ServerName::DnsName(
        rustls_pki_types::DnsName::try_from(MANAGER_SERVER_NAME)
            .unwrap_or_else(|_| unreachable!("constant DNS name"))
            .to_owned(),
    )
}

/// The identity of a verified peer, from its certificate chain.
pub fn peer_identity(certs: Option<&[CertificateDer<'_>]>) -> Option<CertInfo> {
    certs
        .and_then(|c| c.first())
        .and_then(|c| parse_cert_der(c).ok())
}

/// A user-facing sentence for a failed TLS connection to a manager (`io` is what
/// tokio-rustls returned).
pub fn explain(io: &std::io::Error) -> String {
    let Some(e) = io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) else {
        return io.to_string();
    };
    match e {
        rustls::Error::AlertReceived(AlertDescription::CertificateRevoked) => {
            "the manager refused this node's certificate: the node was removed from the swarm (docker swarm leave, then join again)".into()
        }
        rustls::Error::AlertReceived(AlertDescription::CertificateExpired) => {
            "the manager refused this node's certificate: it has expired (leave the swarm and join again)".into()
        }
        rustls::Error::AlertReceived(
            AlertDescription::UnknownCA | AlertDescription::BadCertificate | AlertDescription::DecryptError,
        ) => "the manager refused this node's certificate: it was not issued by this swarm's CA".into(),
        rustls::Error::AlertReceived(AlertDescription::ProtocolVersion) => {
            "the manager accepts TLS 1.3 only".into()
        }
        // Every root is named `swarm-ca`: another swarm's manager shows as a bad signature.
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => {
            "the manager's certificate was not issued by this swarm's CA".into()
        }
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => "the remote node is not a manager of this swarm".into(),
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => "the manager's certificate has expired".into(),
        other => format!("TLS: {other}"),
    }
}

#[derive(Debug)]
struct CheckRevoked {
    inner: Arc<dyn ClientCertVerifier>,
    revoked: Revocations,
}

impl ClientCertVerifier for CheckRevoked {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let info = parse_cert_der(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if self.revoked.is_revoked(&info.node_id) {
            tracing::info!(node = %info.node_id, "refused the certificate of a removed node");
            return Err(rustls::Error::InvalidCertificate(CertificateError::Revoked));
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Accepts any server certificate (the handshake signature is still checked).
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
