//! Parsing and checking the user's container options with Docker's rules and
//! messages: bind mounts (`-v`, `--mount`), tmpfs, ulimits, sysctls, security
//! options and cgroup resources. Pure functions: the daemon calls them when a
//! container is created, so that a bad option fails the create, not a later start.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::oci::{MountSpec, RLIMITS, Resources, Rlimit, SeccompMode};

/// What a refused option is: the message, ready for the user.
pub type OptError = String;

/// Bind propagation modes Docker accepts.
const PROPAGATIONS: &[&str] = &[
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];

fn must_be_absolute_dest(kind: &str, dest: &str) -> Result<(), OptError> {
    if !dest.starts_with('/') {
        return Err(format!(
            "invalid mount config for type \"{kind}\": invalid mount path: '{dest}' mount path must be absolute"
        ));
    }
    if Path::new(dest)
        .components()
        .all(|c| c == std::path::Component::RootDir)
    {
        return Err(format!(
            "invalid mount config for type \"{kind}\": invalid specification: destination can't be '/'"
        ));
    }
    if dest.split('/').any(|c| c == "..") {
        return Err(format!(
            "invalid mount config for type \"{kind}\": invalid mount path: '{dest}' must not contain '..'"
        ));
    }
    Ok(())
}

const NAMED_VOLUMES: &str =
    "named volumes are not supported yet: use a bind mount with an absolute host path";

/// Parses one `-v` / `HostConfig.Binds` entry: `/host:/ctr[:opts]`, with `opts` a
/// comma-separated list of `ro`, `rw`, `z`, `Z` and a propagation mode.
pub fn parse_bind(spec: &str) -> Result<MountSpec, OptError> {
    let bad = || format!("invalid volume specification: '{spec}'");
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dest, mode) = match parts.as_slice() {
        [dest] => {
            return Err(format!(
                "anonymous volumes are not supported yet ({dest}): use a bind mount with an absolute host path (-v /host/dir:{dest})"
            ));
        }
        [src, dest] => (*src, *dest, ""),
        [src, dest, mode] => (*src, *dest, *mode),
        _ => return Err(bad()),
    };
    if src.is_empty() || dest.is_empty() {
        return Err(bad());
    }
    if !src.starts_with('/') {
        return Err(format!("{NAMED_VOLUMES} (-v {spec})"));
    }
    must_be_absolute_dest("bind", dest).map_err(|e| format!("{}: {e}", bad()))?;
    let mut read_only = false;
    let mut propagation = String::new();
    let mut seen_rw = false;
    for m in mode.split(',').filter(|m| !m.is_empty()) {
        match m {
            "ro" | "rw" if seen_rw => return Err(format!("invalid mode: {mode}")),
            "ro" => {
                read_only = true;
                seen_rw = true;
            }
            "rw" => seen_rw = true,
            // SELinux relabelling: nothing to do without SELinux.
            "z" | "Z" => {}
            // macOS-only consistency hints, accepted and meaningless on Linux (Docker).
            "consistent" | "cached" | "delegated" => {}
            p if PROPAGATIONS.contains(&p) => {
                if !propagation.is_empty() {
                    return Err(format!("invalid mode: {mode}"));
                }
                propagation = p.to_string();
            }
            _ => return Err(format!("invalid mode: {mode}")),
        }
    }
    Ok(MountSpec::Bind {
        source: clean(src),
        destination: dest.to_string(),
        read_only,
        propagation,
        non_recursive: false,
    })
}

fn clean(p: &str) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in Path::new(p).components() {
        if let std::path::Component::Normal(n) = c {
            out.push(n);
        }
    }
    out
}

/// One `--mount` / `HostConfig.Mounts` entry, already split into its fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountRequest {
    /// `bind`, `tmpfs`, `volume`...
    pub typ: String,
    /// Host path (bind) or volume name.
    pub source: String,
    /// Container path.
    pub target: String,
    /// `readonly`.
    pub read_only: bool,
    /// `bind-propagation`.
    pub propagation: String,
    /// `bind-nonrecursive`.
    pub non_recursive: bool,
    /// `bind-create-mountpoint`: create a missing source.
    pub create_mountpoint: bool,
    /// `tmpfs-size`, bytes.
    pub tmpfs_size: i64,
    /// `tmpfs-mode`.
    pub tmpfs_mode: u32,
}

/// Checks a `--mount` entry. A bind source must exist (unlike `-v`), as in Docker.
pub fn parse_mount(m: &MountRequest) -> Result<MountSpec, OptError> {
    let kind = m.typ.as_str();
    match kind {
        "bind" => {
            if m.source.is_empty() {
                return Err(
                    "invalid mount config for type \"bind\": field Source must not be empty".into(),
                );
            }
            if m.target.is_empty() {
                return Err(
                    "invalid mount config for type \"bind\": field Target must not be empty".into(),
                );
            }
            if !m.source.starts_with('/') {
                return Err(format!(
                    "invalid mount config for type \"bind\": invalid mount path: '{}' mount path must be absolute",
                    m.source
                ));
            }
            must_be_absolute_dest(kind, &m.target)?;
            if m.tmpfs_size != 0 || m.tmpfs_mode != 0 {
                return Err(
                    "invalid mount config for type \"bind\": field TmpfsOptions must not be specified"
                        .into(),
                );
            }
            if !m.propagation.is_empty() && !PROPAGATIONS.contains(&m.propagation.as_str()) {
                return Err(format!(
                    "invalid mount config for type \"bind\": invalid propagation mode: {}",
                    m.propagation
                ));
            }
            if !m.create_mountpoint && std::fs::symlink_metadata(&m.source).is_err() {
                return Err(format!(
                    "invalid mount config for type \"bind\": bind source path does not exist: {}",
                    m.source
                ));
            }
            Ok(MountSpec::Bind {
                source: clean(&m.source),
                destination: m.target.clone(),
                read_only: m.read_only,
                propagation: m.propagation.clone(),
                non_recursive: m.non_recursive,
            })
        }
        "tmpfs" => {
            if !m.source.is_empty() {
                return Err(
                    "invalid mount config for type \"tmpfs\": field Source must not be specified"
                        .into(),
                );
            }
            if m.target.is_empty() {
                return Err(
                    "invalid mount config for type \"tmpfs\": field Target must not be empty"
                        .into(),
                );
            }
            must_be_absolute_dest(kind, &m.target)?;
            if !m.propagation.is_empty() || m.non_recursive {
                return Err(
                    "invalid mount config for type \"tmpfs\": field BindOptions must not be specified"
                        .into(),
                );
            }
            if m.tmpfs_size < 0 {
                return Err(format!(
                    "invalid mount config for type \"tmpfs\": invalid tmpfs size {}",
                    m.tmpfs_size
                ));
            }
            let mut options = Vec::new();
            if m.read_only {
                options.push("ro".to_string());
            }
            if m.tmpfs_size > 0 {
                options.push(format!("size={}", m.tmpfs_size));
            }
            if m.tmpfs_mode != 0 {
                options.push(format!("mode={:o}", m.tmpfs_mode & 0o7777));
            }
            Ok(MountSpec::Tmpfs {
                destination: m.target.clone(),
                options,
            })
        }
        "volume" => Err(format!(
            "{NAMED_VOLUMES} (--mount type=volume,source={})",
            m.source
        )),
        "" => Err("invalid mount config: mount type unknown: give type=bind or type=tmpfs".into()),
        other => Err(format!(
            "mount type {other:?} is not supported: netloom mounts type=bind and type=tmpfs"
        )),
    }
}

/// tmpfs options Docker passes on (and the mount flags runc knows).
const TMPFS_FLAGS: &[&str] = &[
    "rw",
    "ro",
    "exec",
    "noexec",
    "suid",
    "nosuid",
    "dev",
    "nodev",
    "sync",
    "async",
    "dirsync",
    "atime",
    "noatime",
    "diratime",
    "nodiratime",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
];
const TMPFS_VALUES: &[&str] = &[
    "size",
    "mode",
    "uid",
    "gid",
    "nr_inodes",
    "nr_blocks",
    "mpol",
];

/// One `--tmpfs PATH[:OPTS]` / `HostConfig.Tmpfs` entry.
pub fn parse_tmpfs(path: &str, opts: &str) -> Result<MountSpec, OptError> {
    must_be_absolute_dest("tmpfs", path)?;
    let mut options = Vec::new();
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        let key = o.split_once('=').map_or(o, |(k, _)| k);
        let ok = if o.contains('=') {
            TMPFS_VALUES.contains(&key)
        } else {
            TMPFS_FLAGS.contains(&key)
        };
        if !ok {
            return Err(format!(
                "invalid tmpfs option {o:?} for {path}: use size=, mode=, uid=, gid=, nr_inodes=, ro, rw, exec, noexec, suid, nosuid, dev, nodev"
            ));
        }
        options.push(o.to_string());
    }
    Ok(MountSpec::Tmpfs {
        destination: path.to_string(),
        options,
    })
}

/// Refuses two mounts on one container path.
pub fn check_duplicates(mounts: &[MountSpec]) -> Result<(), OptError> {
    let mut seen = BTreeSet::new();
    for m in mounts {
        let d = m.destination().trim_end_matches('/');
        if !seen.insert(d.to_string()) {
            return Err(format!("Duplicate mount point: {d}"));
        }
    }
    Ok(())
}

/// Parses `--ulimit NAME=SOFT[:HARD]` (the CLI's form).
pub fn parse_ulimit(s: &str) -> Result<Rlimit, OptError> {
    let Some((name, limits)) = s.split_once('=') else {
        return Err(format!("invalid ulimit argument: {s}"));
    };
    let (soft, hard) = match limits.split_once(':') {
        Some((a, b)) => (a, b),
        None => (limits, limits),
    };
    let num = |v: &str| -> Result<i64, OptError> {
        v.parse::<i64>()
            .map_err(|_| format!("invalid ulimit argument: {s}: {v:?} is not a number"))
    };
    check_ulimit(name, num(soft)?, num(hard)?)
}

/// Checks one ulimit (`HostConfig.Ulimits` entry); -1 means unlimited.
pub fn check_ulimit(name: &str, soft: i64, hard: i64) -> Result<Rlimit, OptError> {
    if !RLIMITS.iter().any(|(n, _)| *n == name) {
        return Err(format!("invalid ulimit type: {name}"));
    }
    let lim = |v: i64| if v < 0 { u64::MAX } else { v as u64 };
    let (s, h) = (lim(soft), lim(hard));
    if s > h {
        return Err(format!(
            "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        ));
    }
    Ok(Rlimit {
        name: name.to_string(),
        soft: s,
        hard: h,
    })
}

/// The IPC sysctls Docker allows in a container.
const IPC_SYSCTLS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// Checks a `--sysctl KEY=VALUE`: only namespaced ones (`net.*` in the container's
/// own network namespace, the IPC ones, `fs.mqueue.*`).
pub fn check_sysctl(key: &str, value: &str, host_network: bool) -> Result<(), OptError> {
    let allowed =
        IPC_SYSCTLS.contains(&key) || key.starts_with("fs.mqueue.") || key.starts_with("net.");
    if !allowed || key.contains('/') || key.contains("..") || key.ends_with('.') {
        return Err(format!(
            "sysctl '{key}={value}' is not whitelisted: only namespaced sysctls can be set in a container (net.*, fs.mqueue.*, kernel.msgmax, kernel.msgmnb, kernel.msgmni, kernel.sem, kernel.shmall, kernel.shmmax, kernel.shmmni, kernel.shm_rmid_forced)"
        ));
    }
    if host_network && key.starts_with("net.") {
        return Err(format!(
            "sysctl \"{key}\" not allowed in host network namespace"
        ));
    }
    if value.contains('\n') {
        return Err(format!("invalid value for sysctl {key}: {value:?}"));
    }
    Ok(())
}

/// The security options netloom honours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityOpts {
    /// `no-new-privileges`.
    pub no_new_privileges: bool,
    /// `seccomp=`.
    pub seccomp: SeccompMode,
    /// `systempaths=unconfined`: nothing masked or read-only in `/proc` and `/sys`.
    pub unmask_paths: bool,
}

/// Parses `--security-opt` values (`HostConfig.SecurityOpt`). A seccomp profile is
/// given as its JSON content (the CLI reads the file), or `unconfined`.
pub fn parse_security_opts(opts: &[String]) -> Result<SecurityOpts, OptError> {
    let mut out = SecurityOpts::default();
    for o in opts {
        // The legacy `key:value` form is still accepted by Docker.
        let (k, v) = match o.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => match o.split_once(':') {
                Some((k, v)) if k != "seccomp" || !v.starts_with('{') => (k, Some(v)),
                _ => (o.as_str(), None),
            },
        };
        match (k, v) {
            ("no-new-privileges", None) => out.no_new_privileges = true,
            ("no-new-privileges", Some(b)) => {
                out.no_new_privileges = match b {
                    "true" => true,
                    "false" => false,
                    _ => return Err(format!("invalid --security-opt 2: {o:?}")),
                }
            }
            ("seccomp", Some("unconfined")) => out.seccomp = SeccompMode::Unconfined,
            ("seccomp", Some("builtin")) | ("seccomp", Some("")) => {
                out.seccomp = SeccompMode::Default
            }
            ("seccomp", Some(json)) if json.trim_start().starts_with('{') => {
                crate::seccomp::Profile::from_json(json).map_err(|e| e.to_string())?;
                out.seccomp = SeccompMode::Profile(json.to_string());
            }
            ("seccomp", Some(p)) => {
                return Err(format!(
                    "decoding seccomp profile failed: {p:?} is not a JSON profile: give the profile's content (netloom and the docker CLI read the file for you)"
                ));
            }
            ("apparmor", Some("unconfined")) => {}
            ("apparmor", Some(p)) => {
                return Err(format!(
                    "AppArmor is not enabled on this host: remove --security-opt apparmor={p}"
                ));
            }
            ("label", Some("disable")) => {}
            ("label", Some(l)) => {
                return Err(format!(
                    "SELinux is not enabled on this host: remove --security-opt label={l}"
                ));
            }
            ("systempaths", Some("unconfined")) => out.unmask_paths = true,
            _ => return Err(format!("invalid --security-opt 2: {o:?}")),
        }
    }
    Ok(out)
}

/// Number of CPUs this host has online.
pub fn online_cpus() -> Vec<u32> {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|s| parse_cpu_list(s.trim()).ok())
        .unwrap_or_else(|| {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
            (0..n).collect()
        })
}

/// Parses a CPU list (`0-2,4`).
pub fn parse_cpu_list(s: &str) -> Result<Vec<u32>, OptError> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let bad = || format!("invalid value {s:?} for cpuset cpus: use a list such as 0-2,4");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (
                    a.parse::<u32>().map_err(|_| bad())?,
                    b.parse::<u32>().map_err(|_| bad())?,
                );
                if a > b || b > 4096 {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse::<u32>().map_err(|_| bad())?),
        }
    }
    Ok(out)
}

/// Checks cgroup limits with Docker's rules.
pub fn check_resources(r: &Resources) -> Result<(), OptError> {
    const MIN_MEMORY: i64 = 6 * 1024 * 1024;
    if r.memory < 0 {
        return Err(format!(
            "invalid memory limit {}: it must be positive",
            r.memory
        ));
    }
    if r.memory > 0 && r.memory < MIN_MEMORY {
        return Err("Minimum memory limit allowed is 6MB".into());
    }
    if r.memory_swap > 0 && r.memory == 0 {
        return Err(
            "You should always set the Memory limit when using Memoryswap limit, see usage".into(),
        );
    }
    if r.memory_swap > 0 && r.memory_swap < r.memory {
        return Err(
            "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
        );
    }
    if r.memory_swap < -1 {
        return Err(format!(
            "invalid memory-swap {}: use -1 for unlimited swap",
            r.memory_swap
        ));
    }
    let cpus = online_cpus();
    let n = cpus.len() as i64;
    if r.nano_cpus < 0
        || (r.nano_cpus > 0 && (r.nano_cpus < 10_000_000 || r.nano_cpus > n * 1_000_000_000))
    {
        return Err(format!(
            "Range of CPUs is from 0.01 to {n}.00, as there are only {n} CPUs available"
        ));
    }
    if r.cpu_shares < 0 {
        return Err(format!(
            "invalid CPU shares {}: it must be positive",
            r.cpu_shares
        ));
    }
    if !r.cpuset_cpus.is_empty() {
        let want = parse_cpu_list(&r.cpuset_cpus)?;
        if want.iter().any(|c| !cpus.contains(c)) {
            let avail = std::fs::read_to_string("/sys/devices/system/cpu/online")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| format!("0-{}", n - 1));
            return Err(format!(
                "Requested CPUs are not available - requested {}, available: {avail}",
                r.cpuset_cpus
            ));
        }
    }
    Ok(())
}

/// Parses a size as Docker's CLI does (`512m`, `1g`, `100000`; binary units).
pub fn parse_size(s: &str) -> Result<i64, OptError> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let v: f64 = num.parse().map_err(|_| {
        format!("invalid size: '{s}': use a number with an optional unit (b, k, m, g)")
    })?;
    if v < 0.0 {
        return Err(format!("invalid size: '{s}'"));
    }
    Ok((v * mult as f64) as i64)
}

#[cfg(test)]
mod tests;
