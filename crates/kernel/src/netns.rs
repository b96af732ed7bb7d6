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

/// Makes `dir` (where namespaces are bound) a shared mount point, as `ip netns` does for
/// `/run/netns`: if it is not a mount point yet, it is bind-mounted onto itself first
/// (recursively, so namespaces already bound there are kept). Namespace mounts made
/// under it then propagate to every mount namespace that holds a peer of it (a mount
/// namespace copied from this one later with shared propagation), and their removal
/// propagates to the slave copies that containers' shims hold.
/// See <https://www.kernel.org/doc/Documentation/filesystems/sharedsubtree.txt>.
pub fn share_dir(dir: &Path) -> Result<(), KernelError> {
    std::fs::create_dir_all(dir).map_err(|source| KernelError::Io {
        op: "create directory",
        path: dir.to_path_buf(),
        source,
    })?;
    let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
    let make_shared = || mount(None::<&str>, dir, None::<&str>, shared, None::<&str>);
    match make_shared() {
        Ok(()) => return Ok(()),
        // EINVAL: not a mount point yet.
        Err(nix::errno::Errno::EINVAL) => {}
        Err(e) => {
            return Err(KernelError::Namespace(format!(
                "make {} a shared mount: {e}",
                dir.display()
            )));
        }
    }
    mount(
        Some(dir),
        dir,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| {
        KernelError::Namespace(format!("bind-mount {} onto itself: {e}", dir.display()))
    })?;
    make_shared()
        .map_err(|e| KernelError::Namespace(format!("make {} a shared mount: {e}", dir.display())))
}

/// Binds the network namespace of process `pid` at `path`, for a sandbox whose bind
/// mount this mount namespace does not see (made by a daemon that ran in another mount
/// namespace: `ip netns exec` gives each start a fresh one, whose mounts do not
/// propagate back). A namespace already bound at `path` is kept.
pub fn adopt(path: &Path, pid: i32) -> Result<(), KernelError> {
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
    if std::fs::symlink_metadata(path).is_err() {
        File::create(path).map_err(|source| KernelError::Io {
            op: "create netns file",
            path: path.to_path_buf(),
            source,
        })?;
    }
    let source = PathBuf::from(format!("/proc/{pid}/ns/net"));
    mount(
        Some(&source),
        path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| {
        KernelError::Namespace(format!(
            "bind-mount {} on {}: {e}",
            source.display(),
            path.display()
        ))
    })
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
