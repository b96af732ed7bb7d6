//! Volume options with Docker's rules and messages: `-v NAME:/path[:opts]`,
//! `-v /path` (anonymous), `--mount type=volume,...`, volume names, and the `local`
//! driver's `type` / `device` / `o` options.

use std::collections::BTreeMap;

use super::{OptError, must_be_absolute_dest};

/// A volume a container asks for, before it is looked up or created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeRequest {
    /// The volume's name; empty for a new anonymous volume.
    pub name: String,
    /// Path in the container.
    pub destination: String,
    /// Read-only.
    pub read_only: bool,
    /// Do not copy the image's content into a new volume.
    pub nocopy: bool,
    /// The `-v` mode as given.
    pub mode: String,
    /// Labels for a volume created on first use (`--mount volume-label=`).
    pub labels: BTreeMap<String, String>,
    /// Driver for a volume created on first use (`--mount volume-driver=`).
    pub driver: String,
    /// Driver options for a volume created on first use (`--mount volume-opt=`).
    pub options: BTreeMap<String, String>,
}

/// Checks a volume name with the `local` driver's rule (Docker's message).
pub fn check_volume_name(name: &str) -> Result<(), OptError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if name.len() < 2 || !first_ok || !rest_ok {
        return Err(format!(
            "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        ));
    }
    Ok(())
}

/// A `-v` / `HostConfig.Binds` entry that names a volume (`NAME:/path[:opts]`) or
/// asks for an anonymous one (`/path`); `None` for a host bind (`/host:/path`).
pub fn parse_volume_bind(spec: &str) -> Result<Option<VolumeRequest>, OptError> {
    let bad = || format!("invalid volume specification: '{spec}'");
    let parts: Vec<&str> = spec.split(':').collect();
    let (name, dest, mode) = match parts.as_slice() {
        [dest] => ("", *dest, ""),
        [src, _] | [src, _, _] if src.starts_with('/') => return Ok(None),
        [src, dest] => (*src, *dest, ""),
        [src, dest, mode] => (*src, *dest, *mode),
        _ => return Err(bad()),
    };
    if dest.is_empty() || (parts.len() > 1 && name.is_empty()) {
        return Err(bad());
    }
    must_be_absolute_dest("volume", dest).map_err(|e| format!("{}: {e}", bad()))?;
    if !name.is_empty() {
        check_volume_name(name)?;
    }
    let mut req = VolumeRequest {
        name: name.to_string(),
        destination: dest.to_string(),
        mode: mode.to_string(),
        ..VolumeRequest::default()
    };
    let mut seen_rw = false;
    for m in mode.split(',').filter(|m| !m.is_empty()) {
        match m {
            "ro" | "rw" if seen_rw => return Err(format!("invalid mode: {mode}")),
            "ro" => {
                req.read_only = true;
                seen_rw = true;
            }
            "rw" => seen_rw = true,
            "nocopy" => req.nocopy = true,
            // SELinux relabelling and macOS consistency hints: nothing to do here.
            "z" | "Z" | "consistent" | "cached" | "delegated" => {}
            p if super::PROPAGATIONS.contains(&p) => {
                return Err(format!(
                    "invalid mode: {mode}: propagation ({p}) applies to bind mounts of host paths, not to volume {name}"
                ));
            }
            _ => return Err(format!("invalid mode: {mode}")),
        }
    }
    Ok(Some(req))
}

/// The fields of a `--mount type=volume` entry.
#[derive(Debug, Clone)]
pub struct VolumeMountFields<'a> {
    /// `source`: the volume's name, empty for an anonymous one.
    pub source: &'a str,
    /// `target`.
    pub target: &'a str,
    /// `readonly`.
    pub read_only: bool,
    /// `volume-nocopy`.
    pub nocopy: bool,
    /// Whether bind options were given (refused for a volume).
    pub has_bind_options: bool,
    /// Whether tmpfs options were given (refused for a volume).
    pub has_tmpfs_options: bool,
    /// `volume-label`s.
    pub labels: &'a BTreeMap<String, String>,
    /// `volume-driver`.
    pub driver: &'a str,
    /// `volume-opt`s.
    pub options: &'a BTreeMap<String, String>,
}

/// Checks a `--mount type=volume` entry (Docker's messages).
pub fn parse_volume_mount(m: &VolumeMountFields<'_>) -> Result<VolumeRequest, OptError> {
    if m.target.is_empty() {
        return Err(
            "invalid mount config for type \"volume\": field Target must not be empty".into(),
        );
    }
    must_be_absolute_dest("volume", m.target)?;
    if m.has_bind_options {
        return Err(
            "invalid mount config for type \"volume\": field BindOptions must not be specified"
                .into(),
        );
    }
    if m.has_tmpfs_options {
        return Err(
            "invalid mount config for type \"volume\": field TmpfsOptions must not be specified"
                .into(),
        );
    }
    if !m.source.is_empty() {
        check_volume_name(m.source)?;
    }
    check_driver(m.driver)?;
    check_local_options(m.options)?;
    Ok(VolumeRequest {
        name: m.source.to_string(),
        destination: m.target.to_string(),
        read_only: m.read_only,
        nocopy: m.nocopy,
        mode: String::new(),
        labels: m.labels.clone(),
        driver: m.driver.to_string(),
        options: m.options.clone(),
    })
}

/// Refuses a volume driver other than `local` (netloom has no volume plugins).
pub fn check_driver(driver: &str) -> Result<(), OptError> {
    match driver {
        "" | "local" => Ok(()),
        d => Err(format!(
            "error looking up volume plugin {d}: plugin \"{d}\" not found (netloom's volume driver: local)"
        )),
    }
}

/// Checks the `local` driver's options (moby's `validateOpts`): only `type`, `device`
/// and `o`, `type` and `device` together, `o` only with `device`.
pub fn check_local_options(opts: &BTreeMap<String, String>) -> Result<(), OptError> {
    for k in opts.keys() {
        match k.as_str() {
            "type" | "device" | "o" => {}
            "size" => {
                return Err(
                    "quota size requested but no quota support: netloom's local driver has no size option (for a tmpfs, use o=size=64m)"
                        .into(),
                );
            }
            _ => {
                return Err(format!(
                    "invalid option: {k:?} (the local driver takes type, device and o)"
                ));
            }
        }
    }
    for (opt, needs) in [("device", "type"), ("type", "device"), ("o", "device")] {
        if opts.contains_key(opt) && !opts.contains_key(needs) {
            return Err(format!("missing required option: {needs:?}"));
        }
    }
    if let Some(d) = opts.get("device")
        && opts.get("type").is_some_and(|t| t == "none")
        && !d.starts_with('/')
    {
        return Err(format!(
            "invalid device {d:?} for a bind volume (type=none): give an absolute host path"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_named_anonymous_or_host() {
        assert_eq!(parse_volume_bind("/h:/c:ro"), Ok(None));
        let v = parse_volume_bind("data:/srv:ro,nocopy").ok().flatten();
        let v = v.unwrap_or_default();
        assert_eq!((v.name.as_str(), v.destination.as_str()), ("data", "/srv"));
        assert!(v.read_only && v.nocopy);
        let a = parse_volume_bind("/cache")
            .ok()
            .flatten()
            .unwrap_or_default();
        assert_eq!((a.name.as_str(), a.destination.as_str()), ("", "/cache"));
        assert!(parse_volume_bind("da ta:/x").is_err_and(|e| e.contains("invalid characters")));
        assert!(parse_volume_bind("data:rel").is_err_and(|e| e.contains("must be absolute")));
        assert!(parse_volume_bind("data:/x:rshared").is_err_and(|e| e.contains("propagation")));
        assert!(parse_volume_bind("data:/x:bogus").is_err_and(|e| e == "invalid mode: bogus"));
        assert!(parse_volume_bind("a:b:c:d").is_err());
        assert!(parse_volume_bind(":/x").is_err());
    }

    #[test]
    fn local_options() {
        let o = |p: &[(&str, &str)]| -> BTreeMap<String, String> {
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(check_local_options(&o(&[])).is_ok());
        assert!(
            check_local_options(&o(&[
                ("type", "tmpfs"),
                ("device", "tmpfs"),
                ("o", "size=1m")
            ]))
            .is_ok()
        );
        assert!(
            check_local_options(&o(&[("type", "none"), ("device", "/srv"), ("o", "bind")])).is_ok()
        );
        assert!(
            check_local_options(&o(&[("type", "none"), ("device", "srv"), ("o", "bind")])).is_err()
        );
        assert!(
            check_local_options(&o(&[("type", "tmpfs")]))
                .is_err_and(|e| e == "missing required option: \"device\"")
        );
        assert!(
            check_local_options(&o(&[("o", "size=1m")])).is_err_and(|e| e.contains("\"device\""))
        );
        assert!(
            check_local_options(&o(&[("colour", "red")]))
                .is_err_and(|e| e.starts_with("invalid option: \"colour\""))
        );
        assert!(check_local_options(&o(&[("size", "1g")])).is_err_and(|e| e.contains("quota")));
        assert!(
            check_driver("nfsplugin").is_err_and(|e| e.contains("plugin \"nfsplugin\" not found"))
        );
    }
}
