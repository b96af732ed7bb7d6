//! The OCI runtime spec (`config.json`) of a container, with Docker's defaults.
//!
//! [`build_spec`] turns netloom's [`RunOptions`] into an [`oci_spec::runtime::Spec`]:
//! Docker's default capability set, masked and read-only `/proc` and `/sys` paths,
//! default mounts and device rules, the default seccomp profile, and what the user
//! asked for (`--cap-add`, `--privileged`, bind mounts, tmpfs, rlimits, sysctls,
//! cgroup resources). The network namespace is netloom's sandbox, passed by path.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capability, Linux, LinuxCapabilities, LinuxCpu, LinuxDevice, LinuxDeviceCgroup,
    LinuxDeviceType, LinuxMemory, LinuxNamespace, LinuxNamespaceType, LinuxPids, LinuxResources,
    Mount, PosixRlimit, PosixRlimitBuilder, PosixRlimitType, Process, Root, Spec, User,
};
use serde::{Deserialize, Serialize};

use crate::RuntimeError;
use crate::seccomp::Profile;

/// Docker's default capabilities (CapEff `00000000a80425fb`).
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability, in kernel order (bit number = index).
pub const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Paths Docker hides from containers (an empty file or tmpfs over them).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths Docker makes read-only in containers.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Every capability a container can get: those this kernel knows
/// (`/proc/sys/kernel/cap_last_cap`) that netloom's own bounding set holds (a
/// process cannot grant what it lacks).
pub fn kernel_caps() -> Vec<&'static str> {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(ALL_CAPS.len() - 1);
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    ALL_CAPS
        .iter()
        .enumerate()
        .take(last + 1)
        .filter(|(bit, _)| bounding & (1u64 << bit) != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// Normalizes a capability name as Docker does (`net_admin`, `NET_ADMIN` and
/// `CAP_NET_ADMIN` are one; `ALL` stays `ALL`).
pub fn normalize_cap(name: &str) -> Result<String, RuntimeError> {
    let up = name.trim().to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let full = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    if ALL_CAPS.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(RuntimeError::InvalidSpec(format!(
            "unknown capability: {name:?}: use a name from capabilities(7), such as NET_ADMIN, or ALL"
        )))
    }
}

/// Which seccomp profile confines the container.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SeccompMode {
    /// netloom's default profile (Docker's allow-list).
    #[default]
    Default,
    /// No seccomp filter (`seccomp=unconfined`).
    Unconfined,
    /// A profile in Docker's JSON format.
    Profile(String),
}

/// The container's confinement (Docker's `--privileged`, `--cap-add`, `--cap-drop`,
/// `--security-opt`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Security {
    /// `--privileged`: every capability and device, no seccomp, no masked paths,
    /// writable `/sys`.
    #[serde(default)]
    pub privileged: bool,
    /// `--cap-add` (normalized names or `ALL`).
    #[serde(default)]
    pub cap_add: Vec<String>,
    /// `--cap-drop`.
    #[serde(default)]
    pub cap_drop: Vec<String>,
    /// `--security-opt no-new-privileges`.
    #[serde(default)]
    pub no_new_privileges: bool,
    /// `--security-opt seccomp=...`.
    #[serde(default)]
    pub seccomp: SeccompMode,
    /// `--security-opt systempaths=unconfined`: nothing masked or read-only.
    #[serde(default)]
    pub unmask_paths: bool,
}

impl Security {
    /// The capability set of the container's processes, Docker's way: privileged →
    /// all; `--cap-add ALL` → all but the dropped ones; `--cap-drop ALL` → only the
    /// added ones; else the defaults minus the dropped plus the added ones.
    pub fn capabilities(&self) -> Result<Vec<String>, RuntimeError> {
        let all: Vec<String> = kernel_caps().iter().map(|s| s.to_string()).collect();
        if self.privileged {
            return Ok(all);
        }
        let norm = |v: &[String]| -> Result<Vec<String>, RuntimeError> {
            v.iter().map(|c| normalize_cap(c)).collect()
        };
        let (adds, drops) = (norm(&self.cap_add)?, norm(&self.cap_drop)?);
        let has_all = |v: &[String]| v.iter().any(|c| c == "ALL");
        let mut caps: Vec<String> = if has_all(&adds) {
            all.into_iter().filter(|c| !drops.contains(c)).collect()
        } else if has_all(&drops) {
            adds.clone()
        } else {
            let mut c: Vec<String> = DEFAULT_CAPS
                .iter()
                .map(|s| s.to_string())
                .filter(|c| !drops.contains(c))
                .collect();
            for a in &adds {
                if !c.contains(a) {
                    c.push(a.clone());
                }
            }
            c
        };
        caps.retain(|c| c != "ALL");
        caps.sort_by_key(|c| ALL_CAPS.iter().position(|x| x == c));
        caps.dedup();
        Ok(caps)
    }

    /// The seccomp profile to apply, if any, for a container with capabilities `caps`.
    pub fn seccomp_profile(&self) -> Result<Option<Profile>, RuntimeError> {
        if self.privileged {
            return Ok(None);
        }
        match &self.seccomp {
            SeccompMode::Default => Ok(Some(Profile::docker_default())),
            SeccompMode::Unconfined => Ok(None),
            SeccompMode::Profile(json) => Profile::from_json(json).map(Some),
        }
    }
}

/// A bind mount or tmpfs the container asked for (`-v`, `--mount`, `--tmpfs`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum MountSpec {
    /// A host path bind-mounted into the container.
    Bind {
        /// Absolute host path.
        source: PathBuf,
        /// Absolute path in the container.
        destination: String,
        /// Read-only.
        #[serde(default)]
        read_only: bool,
        /// `rprivate` (default), `private`, `rslave`, `slave`, `rshared`, `shared`.
        #[serde(default)]
        propagation: String,
        /// Bind only the source, not the mounts below it (`bind-nonrecursive`).
        #[serde(default)]
        non_recursive: bool,
    },
    /// A tmpfs.
    Tmpfs {
        /// Absolute path in the container.
        destination: String,
        /// Mount options (`size=64m`, `mode=1777`, `noexec`...).
        #[serde(default)]
        options: Vec<String>,
    },
}

impl MountSpec {
    /// Where it is mounted in the container.
    pub fn destination(&self) -> &str {
        match self {
            MountSpec::Bind { destination, .. } | MountSpec::Tmpfs { destination, .. } => {
                destination
            }
        }
    }
}

/// One `--ulimit` (`nofile=1024:2048`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Rlimit {
    /// Docker's name (`nofile`, `nproc`, `core`...).
    pub name: String,
    /// Soft limit.
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

/// The rlimit names Docker accepts and their OCI types.
pub const RLIMITS: &[(&str, PosixRlimitType)] = &[
    ("as", PosixRlimitType::RlimitAs),
    ("core", PosixRlimitType::RlimitCore),
    ("cpu", PosixRlimitType::RlimitCpu),
    ("data", PosixRlimitType::RlimitData),
    ("fsize", PosixRlimitType::RlimitFsize),
    ("locks", PosixRlimitType::RlimitLocks),
    ("memlock", PosixRlimitType::RlimitMemlock),
    ("msgqueue", PosixRlimitType::RlimitMsgqueue),
    ("nice", PosixRlimitType::RlimitNice),
    ("nofile", PosixRlimitType::RlimitNofile),
    ("nproc", PosixRlimitType::RlimitNproc),
    ("rss", PosixRlimitType::RlimitRss),
    ("rtprio", PosixRlimitType::RlimitRtprio),
    ("rttime", PosixRlimitType::RlimitRttime),
    ("sigpending", PosixRlimitType::RlimitSigpending),
    ("stack", PosixRlimitType::RlimitStack),
];

/// cgroup limits (`-m`, `--memory-swap`, `--cpus`, `--cpu-shares`, `--cpuset-cpus`,
/// `--pids-limit`); 0 / empty means "not set".
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// Memory limit, bytes.
    #[serde(default)]
    pub memory: i64,
    /// Memory + swap limit, bytes; -1 unlimited swap.
    #[serde(default)]
    pub memory_swap: i64,
    /// CPU limit in units of 1e-9 CPUs.
    #[serde(default)]
    pub nano_cpus: i64,
    /// Relative CPU weight.
    #[serde(default)]
    pub cpu_shares: i64,
    /// CPUs the container may run on (`0-1`, `0,2`).
    #[serde(default)]
    pub cpuset_cpus: String,
    /// Maximum number of processes; 0 or less: unlimited.
    #[serde(default)]
    pub pids_limit: i64,
}

/// Everything [`build_spec`] needs.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct RunOptions {
    /// The root filesystem (the mounted overlay).
    pub rootfs: PathBuf,
    /// `--read-only`.
    pub read_only: bool,
    /// Hostname.
    pub hostname: String,
    /// NIS domain name.
    pub domainname: String,
    /// Environment `K=V` (a default PATH is added when missing).
    pub env: Vec<String>,
    /// argv.
    pub args: Vec<String>,
    /// Working directory ("" = "/").
    pub cwd: String,
    /// Give the process a terminal.
    pub tty: bool,
    /// Initial terminal size `[rows, cols]`.
    pub console_size: Option<[u16; 2]>,
    /// The sandbox's network namespace; `None`: the host's.
    pub netns: Option<PathBuf>,
    /// Confinement.
    pub security: Security,
    /// Generated files (`/etc/hosts`...) bind-mounted into the container.
    pub bind_files: Vec<(PathBuf, String)>,
    /// User mounts.
    pub mounts: Vec<MountSpec>,
    /// `--ulimit`.
    pub rlimits: Vec<Rlimit>,
    /// `--sysctl`.
    pub sysctls: BTreeMap<String, String>,
    /// cgroup limits.
    pub resources: Resources,
    /// The runtime's `cgroupsPath` (`/netloom/<id>`, or `slice:prefix:name` for systemd).
    pub cgroups_path: String,
    /// Make a private cgroup namespace (cgroup v2 hosts, as Docker).
    pub cgroupns: bool,
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(dest));
    m.set_typ(Some(typ.to_string()));
    m.set_source(Some(PathBuf::from(source)));
    m.set_options(Some(options.iter().map(|s| s.to_string()).collect()));
    m
}

fn caps_set(names: &[String]) -> HashSet<Capability> {
    names
        .iter()
        .filter_map(|n| serde_json::from_value(serde_json::Value::String(n.clone())).ok())
        .collect()
}

/// The capability sets of a process with capabilities `caps` (bounding, effective and
/// permitted; no inheritable or ambient ones, as Docker since CVE-2022-24769).
pub fn linux_capabilities(caps: &[String]) -> LinuxCapabilities {
    let set = caps_set(caps);
    let mut c = LinuxCapabilities::default();
    c.set_bounding(Some(set.clone()));
    c.set_effective(Some(set.clone()));
    c.set_permitted(Some(set));
    c.set_inheritable(None);
    c.set_ambient(None);
    c
}

/// The process section: argv, environment, terminal, capabilities, rlimits.
pub fn process(
    args: &[String],
    env: &[String],
    cwd: &str,
    tty: bool,
    console_size: Option<[u16; 2]>,
    caps: &[String],
    no_new_privileges: bool,
) -> Process {
    let mut p = Process::default();
    p.set_terminal(Some(tty));
    if tty && let Some([rows, cols]) = console_size.filter(|[r, c]| *r > 0 && *c > 0) {
        let b = oci_spec::runtime::BoxBuilder::default()
            .height(u64::from(rows))
            .width(u64::from(cols))
            .build()
            .unwrap_or_default();
        p.set_console_size(Some(b));
    } else {
        p.set_console_size(None);
    }
    p.set_user(User::default());
    p.set_args(Some(args.to_vec()));
    p.set_env(Some(crate::spec::with_default_path(env)));
    p.set_cwd(PathBuf::from(if cwd.is_empty() { "/" } else { cwd }));
    p.set_capabilities(Some(linux_capabilities(caps)));
    p.set_no_new_privileges(Some(no_new_privileges));
    p.set_oom_score_adj(Some(0));
    // An exec gets the container's default open-file limit too: runc's own would be
    // handed on otherwise (see `child_nofile_rlimit`).
    p.set_rlimits(crate::child_nofile_rlimit().and_then(|r| posix_rlimits(&[r]).ok().flatten()));
    p.set_apparmor_profile(None);
    p
}

/// Docker's `--ulimit`s as OCI rlimits (`None` for none).
fn posix_rlimits(list: &[Rlimit]) -> Result<Option<Vec<PosixRlimit>>, RuntimeError> {
    if list.is_empty() {
        return Ok(None);
    }
    list.iter()
        .map(|r| {
            let Some((_, typ)) = RLIMITS.iter().find(|(n, _)| *n == r.name) else {
                return Err(RuntimeError::InvalidSpec(format!(
                    "invalid ulimit type: {}",
                    r.name
                )));
            };
            PosixRlimitBuilder::default()
                .typ(*typ)
                .soft(r.soft)
                .hard(r.hard)
                .build()
                .map_err(|e| RuntimeError::InvalidSpec(format!("ulimit {}: {e}", r.name)))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Builds the container's `config.json`.
pub fn build_spec(o: &RunOptions) -> Result<Spec, RuntimeError> {
    let caps = o.security.capabilities()?;
    let privileged = o.security.privileged;
    let mut spec = Spec::default();
    spec.set_version("1.0.2-dev".to_string());
    let mut root = Root::default();
    root.set_path(o.rootfs.clone());
    root.set_readonly(Some(o.read_only));
    spec.set_root(Some(root));
    spec.set_hostname(Some(o.hostname.clone()));
    spec.set_domainname((!o.domainname.is_empty()).then(|| o.domainname.clone()));
    spec.set_hooks(None);
    spec.set_annotations(None);

    let mut p = process(
        &o.args,
        &o.env,
        &o.cwd,
        o.tty,
        o.console_size,
        &caps,
        o.security.no_new_privileges,
    );
    let mut rlimits = o.rlimits.clone();
    if let Some(own) = crate::child_nofile_rlimit()
        && !rlimits.iter().any(|r| r.name == "nofile")
    {
        rlimits.push(own);
    }
    if let Some(rl) = posix_rlimits(&rlimits)? {
        p.set_rlimits(Some(rl));
    }
    spec.set_process(Some(p));

    // Docker's default mounts, then the generated files, then the user's mounts with
    // parents before children.
    let sys_ro = if privileged { "rw" } else { "ro" };
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", sys_ro],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", sys_ro],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
    ];
    for (host, target) in &o.bind_files {
        crate::spec::container_path(target)?;
        let src = host.to_string_lossy();
        mounts.push(mount(target, "bind", &src, &["rbind", "rprivate"]));
    }
    let mut user: Vec<&MountSpec> = o.mounts.iter().collect();
    user.sort_by_key(|m| Path::new(m.destination()).components().count());
    for m in user {
        crate::spec::container_path(m.destination())?;
        match m {
            MountSpec::Bind {
                source,
                destination,
                read_only,
                propagation,
                non_recursive,
            } => {
                let src = source.to_string_lossy();
                let prop = if propagation.is_empty() {
                    "rprivate"
                } else {
                    propagation.as_str()
                };
                let bind = if *non_recursive { "bind" } else { "rbind" };
                let rw = if *read_only { "ro" } else { "rw" };
                mounts.push(mount(destination, "bind", &src, &[bind, prop, rw]));
            }
            MountSpec::Tmpfs {
                destination,
                options,
            } => {
                // Docker's defaults; the user's options come after and win.
                let mut opts: Vec<&str> = vec!["noexec", "nosuid", "nodev"];
                opts.extend(options.iter().map(String::as_str));
                mounts.push(mount(destination, "tmpfs", "tmpfs", &opts));
            }
        }
    }
    spec.set_mounts(Some(mounts));

    let mut linux = Linux::default();
    let mut nss = Vec::new();
    for t in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ] {
        let mut ns = LinuxNamespace::default();
        ns.set_typ(t);
        nss.push(ns);
    }
    if o.cgroupns {
        let mut ns = LinuxNamespace::default();
        ns.set_typ(LinuxNamespaceType::Cgroup);
        nss.push(ns);
    }
    if let Some(path) = &o.netns {
        let mut ns = LinuxNamespace::default();
        ns.set_typ(LinuxNamespaceType::Network);
        ns.set_path(Some(path.clone()));
        nss.push(ns);
    }
    linux.set_namespaces(Some(nss));
    linux.set_uid_mappings(None);
    linux.set_gid_mappings(None);
    linux.set_cgroups_path((!o.cgroups_path.is_empty()).then(|| PathBuf::from(&o.cgroups_path)));
    if !o.sysctls.is_empty() {
        linux.set_sysctl(Some(
            o.sysctls
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<HashMap<_, _>>(),
        ));
    } else {
        linux.set_sysctl(None);
    }
    linux.set_resources(Some(resources(&o.resources, privileged)));
    if privileged {
        linux.set_masked_paths(None);
        linux.set_readonly_paths(None);
        linux.set_devices(Some(host_devices()));
        linux.set_seccomp(None);
    } else {
        let list = |l: &[&str]| {
            (!o.security.unmask_paths).then(|| l.iter().map(|s| s.to_string()).collect())
        };
        linux.set_masked_paths(list(MASKED_PATHS));
        linux.set_readonly_paths(list(READONLY_PATHS));
        linux.set_devices(None);
        linux.set_seccomp(
            o.security
                .seccomp_profile()?
                .map(|p| p.to_oci(&caps, crate::seccomp::native_arch())),
        );
    }
    linux.set_rootfs_propagation(None);
    spec.set_linux(Some(linux));
    Ok(spec)
}

fn device_rule(
    allow: bool,
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut d = LinuxDeviceCgroup::default();
    d.set_allow(allow);
    d.set_typ(Some(typ));
    d.set_major(major);
    d.set_minor(minor);
    d.set_access(Some(access.to_string()));
    d
}

/// Docker's device cgroup rules: nothing but the standard devices, a terminal and tun.
fn device_rules(privileged: bool) -> Vec<LinuxDeviceCgroup> {
    use LinuxDeviceType::{A, B, C};
    if privileged {
        return vec![device_rule(true, A, None, None, "rwm")];
    }
    vec![
        device_rule(false, A, None, None, "rwm"),
        device_rule(true, C, None, None, "m"),
        device_rule(true, B, None, None, "m"),
        device_rule(true, C, Some(1), Some(3), "rwm"),
        device_rule(true, C, Some(1), Some(8), "rwm"),
        device_rule(true, C, Some(1), Some(7), "rwm"),
        device_rule(true, C, Some(5), Some(0), "rwm"),
        device_rule(true, C, Some(1), Some(5), "rwm"),
        device_rule(true, C, Some(1), Some(9), "rwm"),
        device_rule(true, C, Some(136), None, "rwm"),
        device_rule(true, C, Some(5), Some(2), "rwm"),
        device_rule(true, C, Some(10), Some(200), "rwm"),
    ]
}

fn resources(r: &Resources, privileged: bool) -> LinuxResources {
    let mut res = LinuxResources::default();
    res.set_devices(Some(device_rules(privileged)));
    if r.memory > 0 || r.memory_swap != 0 {
        let mut m = LinuxMemory::default();
        if r.memory > 0 {
            m.set_limit(Some(r.memory));
            // Docker: without --memory-swap, swap may double the memory limit.
            m.set_swap(Some(match r.memory_swap {
                0 => r.memory * 2,
                s => s,
            }));
        }
        res.set_memory(Some(m));
    }
    if r.nano_cpus > 0 || r.cpu_shares > 0 || !r.cpuset_cpus.is_empty() {
        let mut c = LinuxCpu::default();
        if r.nano_cpus > 0 {
            let period: u64 = 100_000;
            c.set_period(Some(period));
            c.set_quota(Some(r.nano_cpus * period as i64 / 1_000_000_000));
        }
        if r.cpu_shares > 0 {
            c.set_shares(Some(r.cpu_shares as u64));
        }
        if !r.cpuset_cpus.is_empty() {
            c.set_cpus(Some(r.cpuset_cpus.clone()));
        }
        res.set_cpu(Some(c));
    }
    if r.pids_limit != 0 {
        let mut p = LinuxPids::default();
        p.set_limit(if r.pids_limit > 0 { r.pids_limit } else { -1 });
        res.set_pids(Some(p));
    }
    res
}

/// The host's devices, for `--privileged` (as Docker: every node under /dev but the
/// pseudo-terminals, which the container gets its own of).
fn host_devices() -> Vec<LinuxDevice> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::from("/dev")];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let path = e.path();
            let Ok(md) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let ft = md.file_type();
            if ft.is_dir() {
                let name = e.file_name();
                if !matches!(
                    name.to_str(),
                    Some("pts" | "shm" | "mqueue" | ".lxc" | ".lxd-mounts")
                ) {
                    stack.push(path);
                }
                continue;
            }
            let typ = if ft.is_char_device() {
                LinuxDeviceType::C
            } else if ft.is_block_device() {
                LinuxDeviceType::B
            } else {
                continue;
            };
            if path == Path::new("/dev/console") || path == Path::new("/dev/ptmx") {
                continue;
            }
            let rdev = md.rdev();
            let mut d = LinuxDevice::default();
            d.set_path(path);
            d.set_typ(typ);
            d.set_major(libc::major(rdev) as i64);
            d.set_minor(libc::minor(rdev) as i64);
            d.set_file_mode(Some(md.mode() & 0o7777));
            d.set_uid(Some(md.uid()));
            d.set_gid(Some(md.gid()));
            out.push(d);
        }
    }
    out.sort_by(|a, b| a.path().cmp(b.path()));
    out
}

#[cfg(test)]
mod tests;
