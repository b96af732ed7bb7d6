//! The cluster's root CA and node certificates (swarmkit's layout): the root is a
//! self-signed ECDSA P-256 certificate with CN `swarm-ca`; a node certificate has
//! CN = node ID, OU = role (`swarm-manager` / `swarm-worker`), O = cluster ID, and the
//! role and node ID as DNS names (a client reaching a manager checks the name
//! `swarm-manager`, so a worker's certificate cannot serve as a manager's).
//! The CA takes only the public key from a CSR: identity, role and validity always
//! come from the manager.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::token::{Role, ca_digest};
use crate::{ClusterError, Result};

/// CN of the root CA certificate.
pub const ROOT_CN: &str = "swarm-ca";
/// Validity of a root CA (swarmkit: 20 years).
pub const ROOT_VALIDITY: Duration = Duration::from_secs(20 * 365 * 24 * 3600);
/// Default validity of node certificates (Docker: 90 days, `--cert-expiry`).
pub const DEFAULT_NODE_CERT_EXPIRY: Duration = Duration::from_secs(90 * 24 * 3600);
/// The shortest node certificate validity accepted (Docker: 1 hour).
pub const MIN_NODE_CERT_EXPIRY: Duration = Duration::from_secs(3600);
/// How far back a certificate's validity starts, for clock skew (swarmkit: 1 hour).
pub const BACKDATE: Duration = Duration::from_secs(3600);
/// CN of the managers' etcd CA, an intermediate of the root (see [`RootCa::issue_etcd_ca`]).
pub const ETCD_CA_CN: &str = "swarm-etcd-ca";
/// OU of an etcd member certificate.
pub const ETCD_OU: &str = "swarm-etcd";

fn cert_err(what: &str) -> impl FnOnce(rcgen::Error) -> ClusterError + '_ {
    move |source| ClusterError::Certificate {
        what: what.to_string(),
        source,
    }
}

fn odt(t: SystemTime) -> OffsetDateTime {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn serial() -> SerialNumber {
    let mut b: [u8; 16] = rand::random();
    b[0] &= 0x7f; // positive
    SerialNumber::from_slice(&b)
}

/// A root CA: its certificate and, on managers, its signing key.
#[derive(Clone, Serialize, Deserialize)]
pub struct RootCa {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// The private key (PKCS#8 PEM); `None` on nodes that cannot sign.
    pub key_pem: Option<String>,
}

impl std::fmt::Debug for RootCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootCa")
            .field("digest", &crate::base36::encode(&self.digest(), 50))
            .field("can_sign", &self.key_pem.is_some())
            .finish()
    }
}

/// A node's certificate and private key.
#[derive(Clone, Serialize, Deserialize)]
pub struct NodeCert {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// The private key (PKCS#8 PEM).
    pub key_pem: String,
}

impl std::fmt::Debug for NodeCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCert").finish_non_exhaustive()
    }
}

/// What a node certificate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The node ID (CN).
    pub node_id: String,
    /// The role (OU).
    pub role: Role,
    /// The cluster ID (O).
    pub cluster_id: String,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
}

impl RootCa {
    /// A new root CA (ECDSA P-256, CN `swarm-ca`, valid 20 years).
    pub fn generate() -> Result<RootCa> {
        let key = KeyPair::generate().map_err(cert_err("generate the root CA key"))?;
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, ROOT_CN);
        p.distinguished_name = dn;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = SystemTime::now();
        p.not_before = odt(now - BACKDATE);
        p.not_after = odt(now + ROOT_VALIDITY);
        p.serial_number = Some(serial());
        let cert = p
            .self_signed(&key)
            .map_err(cert_err("sign the root CA certificate"))?;
        Ok(RootCa {
            cert_pem: cert.pem(),
            key_pem: Some(key.serialize_pem()),
        })
    }

    /// The SHA-256 digest the join tokens carry.
    pub fn digest(&self) -> [u8; 32] {
        ca_digest(&self.cert_pem)
    }

    /// The CA without its key (what non-managers keep).
    pub fn public(&self) -> RootCa {
        RootCa {
            cert_pem: self.cert_pem.clone(),
            key_pem: None,
        }
    }

    /// Signs a node certificate for the key in `csr_pem`, valid until `not_after`.
    /// Nothing but the public key is taken from the CSR.
    pub fn issue(
        &self,
        csr_pem: &str,
        node_id: &str,
        role: Role,
        cluster_id: &str,
        not_after: SystemTime,
    ) -> Result<String> {
        let issuer = self.issuer()?;
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(cert_err("read the certificate signing request"))?;
        let p = node_params(node_id, role, cluster_id, not_after)?;
        let cert = p
            .signed_by(&csr.public_key, &issuer)
            .map_err(cert_err("sign the node certificate"))?;
        Ok(cert.pem())
    }

    /// The managers' etcd CA: an intermediate CA (path length 0) signed by this root,
    /// with its own key, valid as long as the root. etcd trusts only this CA, not the
    /// root, so worker certificates (signed by the root) never reach etcd; it outlives
    /// root rotations (a trust anchor needs no valid issuer).
    pub fn issue_etcd_ca(&self) -> Result<RootCa> {
        let key = KeyPair::generate().map_err(cert_err("generate the etcd CA key"))?;
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, ETCD_CA_CN);
        p.distinguished_name = dn;
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = SystemTime::now();
        p.not_before = odt(now - BACKDATE);
        p.not_after = odt(now + ROOT_VALIDITY);
        p.serial_number = Some(serial());
        p.use_authority_key_identifier_extension = true;
        let issuer = self.issuer()?;
        let cert = p
            .signed_by(&key, &issuer)
            .map_err(cert_err("sign the etcd CA certificate"))?;
        Ok(RootCa {
            cert_pem: cert.pem(),
            key_pem: Some(key.serialize_pem()),
        })
    }

    /// Signs an etcd member's certificate for the key in `csr_pem` (server, client
    /// and peer use): CN = node ID, OU `swarm-etcd`, the node's IP addresses and ID
    /// as names. Called on the etcd CA.
    pub fn issue_etcd_member(
        &self,
        csr_pem: &str,
        node_id: &str,
        ips: &[std::net::IpAddr],
        not_after: SystemTime,
    ) -> Result<String> {
        let issuer = self.issuer()?;
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(cert_err("read the certificate signing request"))?;
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, node_id);
        dn.push(DnType::OrganizationalUnitName, ETCD_OU);
        p.distinguished_name = dn;
        let mut names: Vec<SanType> = ips.iter().map(|ip| SanType::IpAddress(*ip)).collect();
        names.push(SanType::DnsName(node_id.to_string().try_into().map_err(
            |e: rcgen::Error| ClusterError::Certificate {
                what: format!("use {node_id:?} as a certificate name"),
                source: e,
            },
        )?));
        p.subject_alt_names = names;
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let now = SystemTime::now();
        p.not_before = odt((now - BACKDATE).min(not_after - Duration::from_secs(60)));
        p.not_after = odt(not_after);
        p.serial_number = Some(serial());
        p.use_authority_key_identifier_extension = true;
        let cert = p
            .signed_by(&csr.public_key, &issuer)
            .map_err(cert_err("sign the etcd member certificate"))?;
        Ok(cert.pem())
    }

    fn issuer(&self) -> Result<Issuer<'_, KeyPair>> {
        let key_pem = self.key_pem.as_deref().ok_or_else(|| ClusterError::Parse {
            what: "CA".into(),
            detail: "this node holds no CA key and cannot sign certificates".into(),
        })?;
        let key = KeyPair::from_pem(key_pem).map_err(cert_err("load the CA key"))?;
        Issuer::from_ca_cert_pem(&self.cert_pem, key).map_err(cert_err("load the CA certificate"))
    }

    /// A new key and a certificate for it (for the node that signs its own, the first
    /// manager at `swarm init`).
    pub fn issue_new(
        &self,
        node_id: &str,
        role: Role,
        cluster_id: &str,
        not_after: SystemTime,
    ) -> Result<NodeCert> {
        let (csr, key_pem) = new_csr()?;
        let cert_pem = self.issue(&csr, node_id, role, cluster_id, not_after)?;
        Ok(NodeCert { cert_pem, key_pem })
    }
}

fn node_params(
    node_id: &str,
    role: Role,
    cluster_id: &str,
    not_after: SystemTime,
) -> Result<CertificateParams> {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, node_id);
    dn.push(DnType::OrganizationalUnitName, role.ou());
    dn.push(DnType::OrganizationName, cluster_id);
    p.distinguished_name = dn;
    let name = |s: &str| -> Result<SanType> {
        Ok(SanType::DnsName(s.to_string().try_into().map_err(
            |e: rcgen::Error| ClusterError::Certificate {
                what: format!("use {s:?} as a certificate name"),
                source: e,
            },
        )?))
    };
    p.subject_alt_names = vec![name(role.ou())?, name(node_id)?];
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let now = SystemTime::now();
    let start = (now - BACKDATE).min(not_after - Duration::from_secs(60));
    p.not_before = odt(start);
    p.not_after = odt(not_after);
    p.serial_number = Some(serial());
    p.use_authority_key_identifier_extension = true;
    Ok(p)
}

/// A new P-256 key and a CSR for it: `(csr_pem, key_pem)`.
pub fn new_csr() -> Result<(String, String)> {
    let key = KeyPair::generate().map_err(cert_err("generate a node key"))?;
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "swarm-node");
    p.distinguished_name = dn;
    let csr = p
        .serialize_request(&key)
        .map_err(cert_err("make a certificate signing request"))?;
    let pem = csr
        .pem()
        .map_err(cert_err("encode the certificate signing request"))?;
    Ok((pem, key.serialize_pem()))
}

/// The first certificate in `pem`, as DER.
pub fn cert_der(pem: &str) -> Result<CertificateDer<'static>> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| ClusterError::Parse {
        what: "certificate".into(),
        detail: e.to_string(),
    })
}

/// Reads a node certificate's identity and validity (PEM).
pub fn parse_cert(pem: &str) -> Result<CertInfo> {
    parse_cert_der(&cert_der(pem)?)
}

/// Reads a node certificate's identity and validity (DER).
pub fn parse_cert_der(der: &[u8]) -> Result<CertInfo> {
    let (_, c) = x509_parser::parse_x509_certificate(der).map_err(|e| ClusterError::Parse {
        what: "certificate".into(),
        detail: e.to_string(),
    })?;
    let subj = c.subject();
    let first = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue>| {
        it.next().and_then(|a| a.as_str().ok()).map(str::to_string)
    };
    let node_id = first(&mut subj.iter_common_name())
        .ok_or_else(|| ClusterError::NotNodeCert("no CN".into()))?;
    let ou = first(&mut subj.iter_organizational_unit())
        .ok_or_else(|| ClusterError::NotNodeCert("no OU".into()))?;
    let role = Role::from_ou(&ou)
        .ok_or_else(|| ClusterError::NotNodeCert(format!("OU {ou:?} is not a swarm role")))?;
    let cluster_id = first(&mut subj.iter_organization())
        .ok_or_else(|| ClusterError::NotNodeCert("no O".into()))?;
    let ts = |t: i64| UNIX_EPOCH + Duration::from_secs(u64::try_from(t).unwrap_or(0));
    Ok(CertInfo {
        node_id,
        role,
        cluster_id,
        not_before: ts(c.validity().not_before.timestamp()),
        not_after: ts(c.validity().not_after.timestamp()),
    })
}

/// When a certificate valid from `not_before` to `not_after` should be renewed:
/// 50–80 % into its life, at random (swarmkit's window, which spreads renewals out).
pub fn renew_at(not_before: SystemTime, not_after: SystemTime) -> SystemTime {
    let life = not_after.duration_since(not_before).unwrap_or_default();
    let frac = 0.5 + 0.3 * rand::random::<f64>();
    not_before + life.mul_f64(frac)
}

/// The subject (DER) and public key (DER `SubjectPublicKeyInfo`) of a certificate.
pub fn subject_and_key(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (_, c) = x509_parser::parse_x509_certificate(der).ok()?;
    Some((
        c.tbs_certificate.subject.as_raw().to_vec(),
        c.tbs_certificate.subject_pki.raw.to_vec(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_node_certs_with_identity_from_the_manager() {
        let ca = RootCa::generate().unwrap();
        assert!(ca.cert_pem.contains("BEGIN CERTIFICATE"));
        let exp = SystemTime::now() + DEFAULT_NODE_CERT_EXPIRY;
        let nc = ca
            .issue_new("node1", Role::Manager, "cluster1", exp)
            .unwrap();
        let info = parse_cert(&nc.cert_pem).unwrap();
        assert_eq!(info.node_id, "node1");
        assert_eq!(info.role, Role::Manager);
        assert_eq!(info.cluster_id, "cluster1");
        let d = info.not_after.duration_since(SystemTime::now()).unwrap();
        assert!(d > DEFAULT_NODE_CERT_EXPIRY - Duration::from_secs(5));
        // The CSR's own subject is ignored.
        let (csr, _) = new_csr().unwrap();
        let w = ca
            .issue(&csr, "node2", Role::Worker, "cluster1", exp)
            .unwrap();
        assert_eq!(parse_cert(&w).unwrap().role, Role::Worker);
        // A CA without its key cannot sign.
        assert!(
            ca.public()
                .issue(&csr, "n", Role::Worker, "c", exp)
                .is_err()
        );
        // The etcd CA is an intermediate of the root; its member certificates are
        // no node certificates.
        let etcd = ca.issue_etcd_ca().unwrap();
        let (csr, _) = new_csr().unwrap();
        let ip: std::net::IpAddr = "198.18.1.11".parse().unwrap();
        let m = etcd.issue_etcd_member(&csr, "node1", &[ip], exp).unwrap();
        let der = cert_der(&m).unwrap();
        let (_, c) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert_eq!(c.issuer().to_string(), format!("CN={ETCD_CA_CN}"));
        assert!(matches!(parse_cert(&m), Err(ClusterError::NotNodeCert(_))));
        assert!(ca.public().issue_etcd_ca().is_err());
        // The root itself is no node certificate.
        assert!(matches!(
            parse_cert(&ca.cert_pem),
            Err(ClusterError::NotNodeCert(_))
        ));
    }

    #[test]
    fn renewal_falls_in_the_window() {
        let a = UNIX_EPOCH + Duration::from_secs(1000);
        let b = a + Duration::from_secs(1000);
        for _ in 0..100 {
            let t = renew_at(a, b);
            assert!(t >= a + Duration::from_secs(500) && t <= a + Duration::from_secs(800));
        }
    }
}
