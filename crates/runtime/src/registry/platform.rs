//! Platforms (`linux/amd64`, `linux/arm64/v8`) and how an index entry is chosen for
//! one, as containerd's default matcher does: same OS and architecture, and the
//! variant when one is asked for (`arm64` means `v8`, `arm` means `v7`).

use std::fmt;

use super::RegistryError;

/// An OS / architecture / variant triple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, `arm`, ... (Go's GOARCH names).
    pub architecture: String,
    /// `v8`, `v7`, ...; empty when not given.
    pub variant: String,
}

fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let a = arch.to_ascii_lowercase();
    let v = variant.to_ascii_lowercase();
    match a.as_str() {
        "x86_64" | "x86-64" | "amd64" => ("amd64".into(), v),
        "aarch64" | "arm64" => (
            "arm64".into(),
            if v == "8" || v == "v8" {
                String::new()
            } else {
                v
            },
        ),
        "armhf" => ("arm".into(), "v7".into()),
        "armel" => ("arm".into(), "v6".into()),
        "arm" => (
            "arm".into(),
            match v.as_str() {
                "" | "7" => "v7".into(),
                "5" | "6" | "8" => format!("v{v}"),
                _ => v,
            },
        ),
        "i386" | "i686" | "x86" | "386" => ("386".into(), v),
        _ => (a, v),
    }
}

impl Platform {
    /// This machine's platform.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        let (architecture, variant) = normalize_arch(arch, "");
        Platform {
            os: "linux".into(),
            architecture,
            variant,
        }
    }

    /// Parses `os[/arch[/variant]]` or a bare architecture (`arm64`).
    pub fn parse(s: &str) -> Result<Platform, RegistryError> {
        let bad = |why: &str| RegistryError::InvalidPlatform {
            platform: s.to_string(),
            reason: why.to_string(),
        };
        let parts: Vec<&str> = s.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) || parts.len() > 3 {
            return Err(bad(
                "use os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8",
            ));
        }
        let (os, arch, variant) = match parts.as_slice() {
            [one] if one.eq_ignore_ascii_case("linux") => {
                ("linux", Platform::host().architecture, "")
            }
            [one] => ("linux", one.to_string(), ""),
            [os, arch] => (*os, arch.to_string(), ""),
            [os, arch, v] => (*os, arch.to_string(), *v),
            _ => return Err(bad("use os/arch[/variant]")),
        };
        if !os.eq_ignore_ascii_case("linux") {
            return Err(bad("netloom runs only linux containers"));
        }
        if !arch
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(bad("the architecture must be letters and digits"));
        }
        let (architecture, variant) = normalize_arch(&arch, variant);
        Ok(Platform {
            os: "linux".into(),
            architecture,
            variant,
        })
    }

    /// Whether an image of `os`/`arch`/`variant` runs as this platform.
    pub fn matches(&self, os: &str, arch: &str, variant: &str) -> bool {
        let (a, v) = normalize_arch(arch, variant);
        os.eq_ignore_ascii_case(&self.os)
            && a == self.architecture
            && (self.variant.is_empty() || v == self.variant)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_match() {
        let p = Platform::parse("linux/arm64/v8").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.to_string(), "linux/arm64");
        assert!(p.matches("linux", "arm64", "v8"));
        assert!(p.matches("linux", "arm64", ""));
        assert!(!p.matches("linux", "amd64", ""));
        let arm = Platform::parse("linux/arm").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(arm.to_string(), "linux/arm/v7");
        assert!(arm.matches("linux", "arm", "v7"));
        assert!(!arm.matches("linux", "arm", "v6"));
        assert_eq!(
            Platform::parse("amd64")
                .map(|p| p.to_string())
                .ok()
                .as_deref(),
            Some("linux/amd64")
        );
        assert!(Platform::parse("windows/amd64").is_err());
        assert!(Platform::parse("linux//x").is_err());
        assert!(Platform::parse("a/b/c/d").is_err());
        assert!(Platform::host().matches("linux", &Platform::host().architecture, ""));
    }
}
