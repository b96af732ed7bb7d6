//! Image references as Docker reads them: `[domain[:port]/]path[:tag][@digest]`, with
//! Docker Hub's normalisation (`busybox` is `docker.io/library/busybox:latest`) and its
//! "familiar" short form for display (`busybox:latest`, `127.0.0.1:5000/x:1`).
//!
//! The grammar is distribution's `reference` package: lowercase path components
//! separated by `.`, `_`, `__` or dashes; a tag of up to 128 `[A-Za-z0-9_.-]`
//! characters not starting with `.` or `-`; a `sha256:` digest of 64 hex digits.

use std::fmt;

use super::RegistryError;

/// Docker Hub's domain in canonical references.
pub const DOCKER_HUB: &str = "docker.io";
/// The tag used when none is given.
pub const DEFAULT_TAG: &str = "latest";

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// Registry host, with its port (`docker.io`, `127.0.0.1:5000`).
    pub domain: String,
    /// Repository path (`library/busybox`, `team/app`).
    pub path: String,
    /// Tag, if one was given.
    pub tag: Option<String>,
    /// Digest (`sha256:<hex>`), if one was given.
    pub digest: Option<String>,
}

fn invalid(reference: &str, reason: impl Into<String>) -> RegistryError {
    RegistryError::InvalidReference {
        reference: reference.to_string(),
        reason: reason.into(),
    }
}

fn is_domain_component(c: &str) -> bool {
    !c.is_empty()
        && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
        && !c.starts_with('-')
        && !c.ends_with('-')
}

fn valid_domain(d: &str) -> bool {
    if let Some(rest) = d.strip_prefix('[') {
        // [ipv6]:port
        let Some((addr, tail)) = rest.split_once(']') else {
            return false;
        };
        let port_ok = tail.is_empty()
            || tail
                .strip_prefix(':')
                .is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
        return addr.parse::<std::net::Ipv6Addr>().is_ok() && port_ok;
    }
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    if let Some(p) = port
        && (p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()))
    {
        return false;
    }
    host.split('.').all(is_domain_component)
}

/// One path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.chars().all(|ch| ch == '-');
        if !ok {
            return false;
        }
    }
    true
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn valid_tag(t: &str) -> bool {
    let mut chars = t.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && t.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A `sha256:<64 hex>` digest.
pub fn valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    })
}

impl ImageRef {
    /// Parses and normalises a reference, as `docker pull` and `docker run` read one.
    pub fn parse(s: &str) -> Result<ImageRef, RegistryError> {
        if s.is_empty() {
            return Err(invalid(s, "it is empty"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                if !valid_digest(d) {
                    return Err(invalid(
                        s,
                        format!("digest {d:?} is not sha256: followed by 64 lowercase hex digits"),
                    ));
                }
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        // A ':' after the last '/' starts the tag (an earlier one is a port).
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(t) = tag
            && !valid_tag(t)
        {
            return Err(invalid(
                s,
                format!(
                    "tag {t:?} must be 1-128 characters of [A-Za-z0-9_.-], not starting with '.' or '-'"
                ),
            ));
        }
        if name.is_empty() {
            return Err(invalid(s, "the repository name is empty"));
        }
        if name.len() > 255 {
            return Err(invalid(
                s,
                "the repository name is longer than 255 characters",
            ));
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                if !valid_domain(first) {
                    return Err(invalid(
                        s,
                        format!("registry {first:?} is not a valid host[:port]"),
                    ));
                }
                (first.to_string(), rest.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let path = if domain == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(invalid(
                s,
                format!("repository name ({path}) must be lowercase"),
            ));
        }
        if let Some(bad) = path.split('/').find(|c| !valid_component(c)) {
            return Err(invalid(
                s,
                format!(
                    "repository path component {bad:?} must be lowercase letters and digits, separated by '.', '_', '__' or '-'"
                ),
            ));
        }
        Ok(ImageRef {
            domain,
            path,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// The same reference with the default tag when it has neither tag nor digest.
    pub fn with_default_tag(mut self) -> ImageRef {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some(DEFAULT_TAG.to_string());
        }
        self
    }

    /// The repository as Docker shows it: `busybox`, `team/app`, `127.0.0.1:5000/x`.
    pub fn familiar_name(&self) -> String {
        if self.domain == DOCKER_HUB {
            match self.path.strip_prefix("library/") {
                Some(p) if !p.contains('/') => p.to_string(),
                _ => self.path.clone(),
            }
        } else {
            format!("{}/{}", self.domain, self.path)
        }
    }

    /// `name:tag` (default tag `latest`), the form image tags are stored in.
    pub fn familiar_tagged(&self) -> String {
        format!(
            "{}:{}",
            self.familiar_name(),
            self.tag.as_deref().unwrap_or(DEFAULT_TAG)
        )
    }

    /// `name@digest` for a digest.
    pub fn familiar_digested(&self, digest: &str) -> String {
        format!("{}@{digest}", self.familiar_name())
    }

    /// The whole reference in familiar form (`busybox:latest`, `x@sha256:…`).
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }

    /// The tag or digest being pulled, as Docker's progress shows it (`latest`).
    pub fn tag_or_digest(&self) -> String {
        self.digest
            .clone()
            .or_else(|| self.tag.clone())
            .unwrap_or_else(|| DEFAULT_TAG.to_string())
    }

    /// Whether this reference names Docker Hub (where registry mirrors apply).
    pub fn is_docker_hub(&self) -> bool {
        self.domain == DOCKER_HUB
    }
}

impl fmt::Display for ImageRef {
    /// The canonical form: `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn normalises_like_docker() {
        let r = p("busybox");
        assert_eq!(
            (r.domain.as_str(), r.path.as_str()),
            ("docker.io", "library/busybox")
        );
        assert_eq!(r.clone().with_default_tag().familiar(), "busybox:latest");
        assert_eq!(
            r.with_default_tag().to_string(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(p("docker.io/library/busybox:1").familiar(), "busybox:1");
        assert_eq!(p("library/busybox").familiar_tagged(), "busybox:latest");
        assert_eq!(p("team/app:v1.2").familiar(), "team/app:v1.2");
        let r = p("127.0.0.1:5000/test/bb:multi");
        assert_eq!(r.domain, "127.0.0.1:5000");
        assert_eq!(r.familiar(), "127.0.0.1:5000/test/bb:multi");
        assert_eq!(p("localhost/x").domain, "localhost");
        assert_eq!(
            p("localhost:5000/x").familiar_tagged(),
            "localhost:5000/x:latest"
        );
        assert_eq!(p("[::1]:5000/x").domain, "[::1]:5000");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = p(&format!("busybox@{d}"));
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert_eq!(r.tag_or_digest(), d);
        assert_eq!(r.familiar(), format!("busybox@{d}"));
        assert_eq!(p("a__b/c-d---e.f_g").path, "a__b/c-d---e.f_g");
    }

    #[test]
    fn refuses_what_docker_refuses() {
        for bad in [
            "",
            "Busybox",
            "a b",
            "x:",
            "../x",
            "x/",
            "/x",
            "a/.b",
            "x:-tag",
            "a___b",
            "x@sha256:abc",
            "bad host:5000/x",
            "x:y:z",
            "a/B",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} accepted");
        }
        let e = ImageRef::parse("Busybox").err().map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("must be lowercase")),
            "{e:?}"
        );
    }
}
