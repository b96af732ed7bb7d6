//! Seccomp profiles in Docker's format, and netloom's default profile.
//!
//! A profile is a list of rules, each allowing (or failing) a set of system calls,
//! optionally only when the container holds (or lacks) a capability or runs on an
//! architecture. [`Profile::to_oci`] resolves those conditions for one container and
//! gives the OCI `linux.seccomp` section, which the OCI runtime compiles into a BPF
//! filter with libseccomp.
//!
//! [`Profile::docker_default`] has the same allow-list as Docker's default profile
//! (moby `profiles/seccomp/default.json`): everything not listed fails with `EPERM`;
//! namespace, mount, module, clock, reboot, `bpf`, `ptrace`... calls only pass with the
//! capability that makes them meaningful; `clone` may not create namespaces, and
//! `clone3` fails with `ENOSYS` (so that libcs fall back to `clone`) unless the container
//! holds `CAP_SYS_ADMIN`.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};
use serde::{Deserialize, Serialize};

use crate::RuntimeError;

/// A seccomp profile in Docker's JSON format (the format of
/// `--security-opt seccomp=PROFILE.json`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// Action for a call no rule matches.
    pub default_action: LinuxSeccompAction,
    /// Errno of `SCMP_ACT_ERRNO` as the default action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    /// Architectures to filter (old format).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<Arch>,
    /// Architectures with the sub-architectures that run on them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arch_map: Vec<ArchMap>,
    /// The rules.
    #[serde(default)]
    pub syscalls: Vec<Rule>,
}

/// An architecture and its sub-architectures (`archMap`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    /// The main architecture.
    pub architecture: Arch,
    /// Architectures whose binaries also run on it.
    #[serde(default)]
    pub sub_architectures: Option<Vec<Arch>>,
}

/// One rule of a profile.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// System calls the rule applies to.
    #[serde(default)]
    pub names: Vec<String>,
    /// Old format: one name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What happens.
    pub action: LinuxSeccompAction,
    /// Errno for `SCMP_ACT_ERRNO`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    /// Argument conditions (all must hold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<LinuxSeccompArg>>,
    /// The rule applies only when these hold.
    #[serde(default, skip_serializing_if = "Filter::is_empty")]
    pub includes: Filter,
    /// The rule does not apply when these hold.
    #[serde(default, skip_serializing_if = "Filter::is_empty")]
    pub excludes: Filter,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// Conditions of a rule: capabilities the container holds, the architecture
/// (Go's names: `amd64`, `arm64`...) and the kernel version.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    /// Capabilities (`CAP_SYS_ADMIN`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caps: Vec<String>,
    /// Architectures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arches: Vec<String>,
    /// Minimum kernel version (`4.8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_kernel: Option<String>,
}

impl Filter {
    fn is_empty(&self) -> bool {
        self.caps.is_empty() && self.arches.is_empty() && self.min_kernel.is_none()
    }
}

/// The architecture netloom runs on, in Go's spelling (what profiles use).
pub fn native_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "mips64" => "mips64",
        other => other,
    }
}

/// The running kernel's `major.minor`, if it can be read.
fn kernel_version() -> Option<(u32, u32)> {
    let rel = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    parse_version(rel.trim())
}

/// Whether this kernel can run binaries of sub-architecture `a` at all. x32 needs
/// `CONFIG_X86_X32_ABI`, which most distribution kernels leave out (then every x32
/// call already fails with ENOSYS): listing x32 in the filter anyway makes libseccomp
/// build the whole filter once more for it, about a fifth of `runc run`'s start-up
/// here. Probed once with a harmless x32 `getpid`.
/// <https://www.kernel.org/doc/html/latest/userspace-api/seccomp_filter.html>
fn kernel_runs(a: Arch) -> bool {
    match a {
        #[cfg(target_arch = "x86_64")]
        Arch::ScmpArchX32 => {
            static X32: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
            *X32.get_or_init(|| {
                const X32_SYSCALL_BIT: libc::c_long = 0x4000_0000;
                // SAFETY: getpid takes no arguments and has no side effect in any ABI.
                let r = unsafe { libc::syscall(X32_SYSCALL_BIT | libc::SYS_getpid) };
                r >= 0
            })
        }
        _ => true,
    }
}

fn parse_version(s: &str) -> Option<(u32, u32)> {
    let mut it = s.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

impl Profile {
    /// Parses a profile in Docker's JSON format.
    pub fn from_json(json: &str) -> Result<Profile, RuntimeError> {
        serde_json::from_str(json).map_err(|e| {
            RuntimeError::InvalidSpec(format!(
                "decoding seccomp profile failed: {e}: give a profile in Docker's JSON format"
            ))
        })
    }

    /// The OCI `linux.seccomp` section of this profile for a container holding the
    /// effective capabilities `caps` (`CAP_*` names) on architecture `arch` (Go's name).
    pub fn to_oci(&self, caps: &[String], arch: &str) -> LinuxSeccomp {
        let kernel = kernel_version();
        let mut arches: Vec<Arch> = Vec::new();
        if self.architectures.is_empty() {
            let native = native_oci_arch();
            for m in &self.arch_map {
                if Some(m.architecture) == native {
                    arches.push(m.architecture);
                    arches.extend(
                        m.sub_architectures
                            .iter()
                            .flatten()
                            .copied()
                            .filter(|a| kernel_runs(*a)),
                    );
                }
            }
        } else {
            arches.extend(self.architectures.iter().copied());
        }
        let holds = |f: &Filter| -> bool {
            f.caps.iter().all(|c| caps.contains(c))
                && (f.arches.is_empty() || f.arches.iter().any(|a| a == arch))
                && f.min_kernel
                    .as_deref()
                    .is_none_or(|v| match (parse_version(v), kernel) {
                        (Some(want), Some(have)) => have >= want,
                        _ => true,
                    })
        };
        let excluded = |f: &Filter| -> bool {
            (!f.caps.is_empty() && f.caps.iter().any(|c| caps.contains(c)))
                || (!f.arches.is_empty() && f.arches.iter().any(|a| a == arch))
        };
        let mut syscalls = Vec::new();
        for r in &self.syscalls {
            if !holds(&r.includes) || excluded(&r.excludes) {
                continue;
            }
            let mut names = r.names.clone();
            if let Some(n) = &r.name {
                names.push(n.clone());
            }
            if names.is_empty() {
                continue;
            }
            let mut s = LinuxSyscall::default();
            s.set_names(names);
            s.set_action(r.action);
            s.set_errno_ret(r.errno_ret);
            s.set_args(r.args.clone());
            syscalls.push(s);
        }
        let mut out = LinuxSeccomp::default();
        out.set_default_action(self.default_action);
        out.set_default_errno_ret(self.default_errno_ret);
        out.set_architectures((!arches.is_empty()).then_some(arches));
        out.set_syscalls(Some(syscalls));
        out
    }

    /// netloom's default profile: Docker's default allow-list.
    pub fn docker_default() -> Profile {
        let allow = |names: &[&str]| Rule {
            names: names.iter().map(|s| s.to_string()).collect(),
            action: LinuxSeccompAction::ScmpActAllow,
            ..Rule::default()
        };
        let with_cap = |names: &[&str], cap: &str| Rule {
            includes: Filter {
                caps: vec![cap.to_string()],
                ..Filter::default()
            },
            ..allow(names)
        };
        let on_arches = |names: &[&str], arches: &[&str]| Rule {
            includes: Filter {
                arches: arches.iter().map(|s| s.to_string()).collect(),
                ..Filter::default()
            },
            ..allow(names)
        };
        let arg = |index: usize, value: u64, op: LinuxSeccompOperator| {
            LinuxSeccompArgBuilder::default()
                .index(index)
                .value(value)
                .op(op)
                .build()
                .unwrap_or_default()
        };
        let mut rules = vec![allow(ALWAYS)];
        rules.push(Rule {
            includes: Filter {
                min_kernel: Some("4.8".into()),
                ..Filter::default()
            },
            ..allow(&["process_vm_readv", "process_vm_writev", "ptrace"])
        });
        // Any socket family but AF_VSOCK (40).
        rules.push(Rule {
            args: Some(vec![arg(0, 40, LinuxSeccompOperator::ScmpCmpNe)]),
            ..allow(&["socket"])
        });
        // personality(2) only with the harmless personas (PER_LINUX, UNAME26, PER_LINUX32,
        // UNAME26|PER_LINUX32, and the query 0xffffffff).
        for v in [0u64, 8, 0x20000, 0x20008, 0xffff_ffff] {
            rules.push(Rule {
                args: Some(vec![arg(0, v, LinuxSeccompOperator::ScmpCmpEq)]),
                ..allow(&["personality"])
            });
        }
        rules.push(on_arches(
            &["sync_file_range2", "swapcontext"],
            &["ppc64le"],
        ));
        rules.push(on_arches(
            &[
                "arm_fadvise64_64",
                "arm_sync_file_range",
                "sync_file_range2",
                "breakpoint",
                "cacheflush",
                "set_tls",
            ],
            &["arm", "arm64"],
        ));
        rules.push(on_arches(&["arch_prctl"], &["amd64", "x32"]));
        rules.push(on_arches(&["modify_ldt"], &["amd64", "x32", "x86"]));
        rules.push(on_arches(
            &[
                "s390_pci_mmio_read",
                "s390_pci_mmio_write",
                "s390_runtime_instr",
            ],
            &["s390", "s390x"],
        ));
        rules.push(on_arches(&["riscv_flush_icache"], &["riscv64"]));
        rules.push(with_cap(&["open_by_handle_at"], "CAP_DAC_READ_SEARCH"));
        rules.push(with_cap(SYS_ADMIN, "CAP_SYS_ADMIN"));
        // Without CAP_SYS_ADMIN, clone(2) may not create namespaces: none of the
        // CLONE_NEW{NS,CGROUP,UTS,IPC,USER,PID,NET} bits (0x7e020000) set. The flags are
        // the first argument, the second on s390.
        let ns_flags: u64 = 0x7e02_0000;
        rules.push(Rule {
            args: Some(vec![clone_mask(0, ns_flags)]),
            excludes: Filter {
                caps: vec!["CAP_SYS_ADMIN".into()],
                arches: vec!["s390".into(), "s390x".into()],
                ..Filter::default()
            },
            ..allow(&["clone"])
        });
        rules.push(Rule {
            args: Some(vec![clone_mask(1, ns_flags)]),
            includes: Filter {
                arches: vec!["s390".into(), "s390x".into()],
                ..Filter::default()
            },
            excludes: Filter {
                caps: vec!["CAP_SYS_ADMIN".into()],
                ..Filter::default()
            },
            comment: Some("s390 parameter ordering for clone is different".into()),
            ..allow(&["clone"])
        });
        // clone3 passes its flags in memory, out of seccomp's sight: ENOSYS makes the
        // libc fall back to clone, whose flags are checked above.
        rules.push(Rule {
            names: vec!["clone3".into()],
            action: LinuxSeccompAction::ScmpActErrno,
            errno_ret: Some(38),
            excludes: Filter {
                caps: vec!["CAP_SYS_ADMIN".into()],
                ..Filter::default()
            },
            ..Rule::default()
        });
        for (names, cap) in BY_CAP {
            rules.push(with_cap(names, cap));
        }
        Profile {
            default_action: LinuxSeccompAction::ScmpActErrno,
            default_errno_ret: Some(1),
            architectures: Vec::new(),
            arch_map: arch_map(),
            syscalls: rules,
        }
    }
}

/// `clone` allowed when `flags & mask == 0` for the flags in argument `index`.
fn clone_mask(index: usize, mask: u64) -> LinuxSeccompArg {
    // libseccomp's SCMP_CMP_MASKED_EQ compares (arg & value) with valueTwo.
    LinuxSeccompArgBuilder::default()
        .index(index)
        .value(mask)
        .value_two(0u64)
        .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
        .build()
        .unwrap_or_default()
}

fn native_oci_arch() -> Option<Arch> {
    Some(match std::env::consts::ARCH {
        "x86_64" => Arch::ScmpArchX86_64,
        "x86" => Arch::ScmpArchX86,
        "aarch64" => Arch::ScmpArchAarch64,
        "arm" => Arch::ScmpArchArm,
        "s390x" => Arch::ScmpArchS390x,
        "riscv64" => Arch::ScmpArchRiscv64,
        "powerpc64" => Arch::ScmpArchPpc64le,
        _ => return None,
    })
}

fn arch_map() -> Vec<ArchMap> {
    let m = |a: Arch, subs: &[Arch]| ArchMap {
        architecture: a,
        sub_architectures: Some(subs.to_vec()),
    };
    vec![
        m(
            Arch::ScmpArchX86_64,
            &[Arch::ScmpArchX86, Arch::ScmpArchX32],
        ),
        m(Arch::ScmpArchAarch64, &[Arch::ScmpArchArm]),
        m(
            Arch::ScmpArchMips64,
            &[Arch::ScmpArchMips, Arch::ScmpArchMips64n32],
        ),
        m(Arch::ScmpArchS390x, &[Arch::ScmpArchS390]),
        m(Arch::ScmpArchRiscv64, &[]),
    ]
}

/// Calls every container may make.
const ALWAYS: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_time64",
    "futex_waitv",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// Calls that need `CAP_SYS_ADMIN`.
const SYS_ADMIN: &[&str] = &[
    "bpf",
    "clone",
    "clone3",
    "fanotify_init",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "lookup_dcookie",
    "mount",
    "mount_setattr",
    "move_mount",
    "open_tree",
    "perf_event_open",
    "quotactl",
    "quotactl_fd",
    "setdomainname",
    "sethostname",
    "setns",
    "syslog",
    "umount",
    "umount2",
    "unshare",
];

/// Calls allowed with one capability each.
const BY_CAP: &[(&[&str], &str)] = &[
    (&["reboot"], "CAP_SYS_BOOT"),
    (&["chroot"], "CAP_SYS_CHROOT"),
    (
        &["delete_module", "init_module", "finit_module"],
        "CAP_SYS_MODULE",
    ),
    (&["acct"], "CAP_SYS_PACCT"),
    (
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
        "CAP_SYS_PTRACE",
    ),
    (&["iopl", "ioperm"], "CAP_SYS_RAWIO"),
    (
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
        "CAP_SYS_TIME",
    ),
    (&["vhangup"], "CAP_SYS_TTY_CONFIG"),
    (
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
        "CAP_SYS_NICE",
    ),
    (&["syslog"], "CAP_SYSLOG"),
    (&["bpf"], "CAP_BPF"),
    (&["perf_event_open"], "CAP_PERFMON"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &LinuxSeccomp, action: LinuxSeccompAction) -> Vec<String> {
        s.syscalls()
            .iter()
            .flatten()
            .filter(|r| r.action() == action && r.args().is_none())
            .flat_map(|r| r.names().clone())
            .collect()
    }

    fn default_caps() -> Vec<String> {
        crate::oci::DEFAULT_CAPS
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn default_profile_blocks_namespaces_and_keys() {
        let s = Profile::docker_default().to_oci(&default_caps(), "amd64");
        assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(s.default_errno_ret(), Some(1));
        let allowed = names(&s, LinuxSeccompAction::ScmpActAllow);
        for blocked in [
            "unshare", "setns", "mount", "keyctl", "add_key", "bpf", "reboot", "clone3",
        ] {
            assert!(!allowed.contains(&blocked.to_string()), "{blocked} allowed");
        }
        for ok in ["read", "execve", "arch_prctl", "chroot", "socketpair"] {
            assert!(allowed.contains(&ok.to_string()), "{ok} blocked");
        }
        // clone only without namespace flags; clone3 answers ENOSYS.
        let clone = s
            .syscalls()
            .iter()
            .flatten()
            .find(|r| r.names() == &["clone".to_string()])
            .and_then(|r| r.args().clone());
        let a = clone.unwrap_or_default();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].value(), 0x7e02_0000);
        assert_eq!(a[0].op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
        assert!(
            s.syscalls()
                .iter()
                .flatten()
                .any(|r| r.names() == &["clone3".to_string()] && r.errno_ret() == Some(38))
        );
        let arches = s.architectures().clone().unwrap_or_default();
        if std::env::consts::ARCH == "x86_64" {
            let mut want = vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86];
            if kernel_runs(Arch::ScmpArchX32) {
                want.push(Arch::ScmpArchX32);
            }
            assert_eq!(arches, want);
        }
    }

    #[test]
    fn sys_admin_unlocks_namespace_calls() {
        let mut caps = default_caps();
        caps.push("CAP_SYS_ADMIN".into());
        let s = Profile::docker_default().to_oci(&caps, "amd64");
        let allowed = names(&s, LinuxSeccompAction::ScmpActAllow);
        for c in ["unshare", "mount", "setns", "clone", "clone3"] {
            assert!(allowed.contains(&c.to_string()), "{c} blocked");
        }
        assert!(
            !s.syscalls()
                .iter()
                .flatten()
                .any(|r| r.action() == LinuxSeccompAction::ScmpActErrno)
        );
    }

    #[test]
    fn docker_format_round_trip() {
        let p = Profile::docker_default();
        let json = serde_json::to_string(&p).unwrap_or_default();
        assert!(json.contains("\"defaultAction\":\"SCMP_ACT_ERRNO\""));
        assert!(json.contains("\"includes\":{\"caps\":[\"CAP_SYS_ADMIN\"]}"));
        assert_eq!(Profile::from_json(&json).ok(), Some(p));
        // The old single-name format, and a bad profile.
        let old = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"keyctl","action":"SCMP_ACT_ERRNO"}]}"#;
        let s = Profile::from_json(old)
            .map(|p| p.to_oci(&[], "amd64"))
            .unwrap_or_default();
        assert_eq!(
            names(&s, LinuxSeccompAction::ScmpActErrno),
            vec!["keyctl".to_string()]
        );
        assert!(Profile::from_json("{\"defaultAction\":\"NOPE\"}").is_err());
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("6.18.44-fc-v1300"), Some((6, 18)));
        assert_eq!(parse_version("4.8"), Some((4, 8)));
        assert_eq!(parse_version("x"), None);
    }
}
