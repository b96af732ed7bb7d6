//! Join tokens in Docker's form: `SWMTKN-1-<digest>-<secret>`, where the digest is the
//! SHA-256 of the root CA certificate (PEM) in base 36, 50 characters, and the secret
//! 128 random bits in base 36, 25 characters (swarmkit's `ca.GenerateJoinToken`).
//! A joining node checks the manager's CA against the digest before it sends anything
//! secret; the manager tells the role from which of its two secrets was presented.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{ClusterError, Result, base36};

/// Width of the CA digest in a token (ceil(log36(2^256))).
pub const DIGEST_LEN: usize = 50;
/// Width of the secret in a token (ceil(log36(2^128))).
pub const SECRET_LEN: usize = 25;

/// A node's role in the swarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Runs work; holds no cluster state.
    Worker,
    /// Holds the cluster state and answers the cluster API.
    Manager,
}

impl Role {
    /// The certificate OU of the role (`swarm-worker`, `swarm-manager`).
    pub fn ou(self) -> &'static str {
        match self {
            Role::Worker => "swarm-worker",
            Role::Manager => "swarm-manager",
        }
    }

    /// The role of a certificate OU.
    pub fn from_ou(ou: &str) -> Option<Role> {
        match ou {
            "swarm-worker" => Some(Role::Worker),
            "swarm-manager" => Some(Role::Manager),
            _ => None,
        }
    }

    /// Docker's name: `worker` or `manager`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Worker => "worker",
            Role::Manager => "manager",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The SHA-256 digest of a root CA certificate (its PEM text, as swarmkit hashes it).
pub fn ca_digest(ca_pem: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, ca_pem.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// A parsed join token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinToken {
    /// SHA-256 of the root CA certificate the token was made for.
    pub digest: [u8; 32],
    /// The secret, 25 base-36 characters.
    pub secret: String,
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never log the secret.
        write!(
            f,
            "JoinToken(SWMTKN-1-{}-…)",
            base36::encode(&self.digest, DIGEST_LEN)
        )
    }
}

impl JoinToken {
    /// A new token with a fresh random secret for the CA `ca_pem`.
    pub fn generate(ca_pem: &str) -> JoinToken {
        let secret: [u8; 16] = rand::random();
        JoinToken {
            digest: ca_digest(ca_pem),
            secret: base36::encode(&secret, SECRET_LEN),
        }
    }

    /// The same secret for another CA (after a root rotation the tokens name the new
    /// root, as swarmkit's do).
    pub fn for_ca(&self, ca_pem: &str) -> JoinToken {
        JoinToken {
            digest: ca_digest(ca_pem),
            secret: self.secret.clone(),
        }
    }

    /// Parses `SWMTKN-1-<50 base-36 digits>-<25 base-36 digits>`.
    pub fn parse(s: &str) -> Result<JoinToken> {
        let parts: Vec<&str> = s.trim().split('-').collect();
        let [p0, p1, digest, secret] = parts.as_slice() else {
            return Err(ClusterError::InvalidToken);
        };
        if *p0 != "SWMTKN" || *p1 != "1" || digest.len() != DIGEST_LEN || secret.len() != SECRET_LEN
        {
            return Err(ClusterError::InvalidToken);
        }
        let d = base36::decode(digest, 32).ok_or(ClusterError::InvalidToken)?;
        base36::decode(secret, 16).ok_or(ClusterError::InvalidToken)?;
        let mut out = [0u8; 32];
        out.copy_from_slice(&d);
        Ok(JoinToken {
            digest: out,
            secret: secret.to_ascii_lowercase(),
        })
    }

    /// The digest in base 36 (for messages).
    pub fn digest_text(&self) -> String {
        base36::encode(&self.digest, DIGEST_LEN)
    }

    /// Checks that `ca_pem` is the CA this token names.
    pub fn check_ca(&self, ca_pem: &str) -> Result<()> {
        let actual = ca_digest(ca_pem);
        if constant_time_eq(&actual, &self.digest) {
            Ok(())
        } else {
            Err(ClusterError::CaMismatch {
                expected: self.digest_text(),
                actual: base36::encode(&actual, DIGEST_LEN),
            })
        }
    }

    /// Whether `other` carries the same secret (compared in constant time).
    pub fn secret_matches(&self, other: &JoinToken) -> bool {
        constant_time_eq(self.secret.as_bytes(), other.secret.as_bytes())
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SWMTKN-1-{}-{}", self.digest_text(), self.secret)
    }
}

/// Equality whose time does not depend on where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trip_and_form() {
        let t = JoinToken::generate("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n");
        let s = t.to_string();
        assert!(s.starts_with("SWMTKN-1-"));
        assert_eq!(s.len(), "SWMTKN-1-".len() + DIGEST_LEN + 1 + SECRET_LEN);
        assert_eq!(JoinToken::parse(&s).unwrap(), t);
        assert!(!format!("{t:?}").contains(&t.secret));
    }

    #[test]
    fn bad_tokens_are_refused() {
        for s in [
            "",
            "SWMTKN-1-abc-def",
            "SWMTKN-2-00000000000000000000000000000000000000000000000000-0000000000000000000000000",
            "XWMTKN-1-00000000000000000000000000000000000000000000000000-0000000000000000000000000",
            "SWMTKN-1-0000000000000000000000000000000000000000000000000!-0000000000000000000000000",
            "SWMTKN-1-zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-0000000000000000000000000",
        ] {
            assert!(
                matches!(JoinToken::parse(s), Err(ClusterError::InvalidToken)),
                "{s}"
            );
        }
    }

    #[test]
    fn ca_check_names_both_digests() {
        let t = JoinToken::generate("ca one");
        assert!(t.check_ca("ca one").is_ok());
        let e = t.check_ca("ca two").unwrap_err().to_string();
        assert!(e.contains("remote CA does not match fingerprint"), "{e}");
        assert!(e.contains(&t.digest_text()), "{e}");
    }
}
