//! Network namespaces bound to files (the `ip netns` convention).
//!
//! A namespace is created on a dedicated thread (`unshare(CLONE_NEWNET)`), bound
//! to a file with a bind mount of `/proc/thread-self/ns/net`, and the thread exits:
//! the mount keeps the namespace alive. `rtnetlink`'s own helper forks the process,
//! which is unsafe in a multi-threaded daemon, so it is not used.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

use crate::error::KernelError;

/// Creates a new network namespace bound at `path` (parent directories are created).
/// If `path` already holds a namespace, it is kept (idempotent).
pub fn create(path: &Path) -> Result<(), KernelError> {
    if is_netns(path) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| KernelError::Io {
            op: "create directory",
            path: dir.to_path_buf(),
            source,
        })?;
    }
    File::create(path).map_err(|source| KernelError::Io {
        op: "create netns file",
        path: path.to_path_buf(),
        source,
    })?;
    let target = path.to_path_buf();
    let res = std::thread::spawn(move || -> Result<(), KernelError> {
        unshare(CloneFlags::CLONE_NEWNET)
            .map_err(|e| KernelError::Namespace(format!("unshare network namespace: {e}")))?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| {
            KernelError::Namespace(format!("bind-mount namespace on {}: {e}", target.display()))
        })
    })
    .join()
    .map_err(|_| KernelError::Namespace("namespace thread panicked".into()))?;
    if res.is_err() {
        let _ = std::fs::remove_file(path);
    }
    res
}

/// True if `path` is a bind-mounted network namespace.
pub fn is_netns(path: &Path) -> bool {
    // A bind-mounted nsfs file has a different device than its directory.
    use std::os::unix::fs::MetadataExt;
    let (Ok(f), Some(dir)) = (std::fs::metadata(path), path.parent()) else {
        return false;
    };
    match std::fs::metadata(dir) {
        Ok(d) => f.dev() != d.dev(),
        Err(_) => false,
    }
}

/// Removes the namespace bound at `path` (missing is fine).
pub fn remove(path: &Path) -> Result<(), KernelError> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => {
            return Err(KernelError::Namespace(format!(
                "unmount namespace {}: {e}",
                path.display()
            )));
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(KernelError::Io {
            op: "remove netns file",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Lists namespace files in `dir`.
pub fn list(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok().map(|e| e.path())).collect()
}

/// Opens the namespace file.
pub fn open(path: &Path) -> Result<File, KernelError> {
    File::open(path).map_err(|source| KernelError::Io {
        op: "open netns",
        path: path.to_path_buf(),
        source,
    })
}

/// Runs `f` on a fresh thread that has joined the network namespace at `path`, and
/// returns its result. Used to create sockets that must live in that namespace and to
/// write per-namespace sysctls. The thread ends when `f` returns; nothing leaks into
/// the caller's threads.
pub fn run_in<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> Result<T, KernelError> + Send + 'static,
) -> Result<T, KernelError> {
    let ns = open(path)?;
    let display = path.display().to_string();
    std::thread::spawn(move || -> Result<T, KernelError> {
        setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| {
            KernelError::Namespace(format!("enter network namespace {display}: {e}"))
        })?;
        f()
    })
    .join()
    .map_err(|_| KernelError::Namespace("namespace thread panicked".into()))?
}
