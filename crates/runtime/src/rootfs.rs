//! Reading and preparing a container's root filesystem from the host side, without
//! following its symlinks out of it (`openat2(RESOLVE_IN_ROOT)`): the container owns
//! its files, so `/etc/passwd -> /etc/shadow` must resolve inside the container.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use crate::RuntimeError;

/// A resolved user: what the OCI spec's `process.user` carries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResolvedUser {
    /// User ID.
    pub uid: u32,
    /// Primary group ID.
    pub gid: u32,
    /// Supplementary groups (from the container's `/etc/group`).
    pub additional_gids: Vec<u32>,
}

/// Opens the directory `root` as the base of in-root lookups.
pub fn open_root(root: &Path) -> Result<OwnedFd, RuntimeError> {
    nix::fcntl::open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(RuntimeError::sys("open container root", root.display()))
}

fn open_in(root: &OwnedFd, rel: &str, flags: OFlag) -> nix::Result<OwnedFd> {
    let rel = rel.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    nix::fcntl::openat2(root.as_fd(), rel, how)
}

/// Reads a small file of the container (at most 4 MiB), `None` if it does not exist.
fn read_in(root: &OwnedFd, rel: &str) -> Option<String> {
    let fd = open_in(root, rel, OFlag::O_RDONLY).ok()?;
    let mut s = String::new();
    std::fs::File::from(fd)
        .take(4 << 20)
        .read_to_string(&mut s)
        .ok()?;
    Some(s)
}

/// Resolves `user` (`uid`, `uid:gid`, `name`, `name:group`; empty = root) against the
/// container's `/etc/passwd` and `/etc/group`, as Docker does. The error is Docker's.
pub fn resolve_user(root: &OwnedFd, user: &str) -> Result<ResolvedUser, RuntimeError> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = read_in(root, "/etc/passwd").unwrap_or_default();
    let group = read_in(root, "/etc/group").unwrap_or_default();
    let fields = |l: &str| l.split(':').map(str::to_string).collect::<Vec<_>>();
    let u = if u.is_empty() { "0" } else { u };
    let entry = passwd
        .lines()
        .map(fields)
        .find(|f| f.len() >= 4 && (f[0] == u || f[2] == u));
    let (uid, name, primary) = match (u.parse::<u32>(), &entry) {
        (Ok(n), e) => (
            n,
            e.as_ref().map(|f| f[0].clone()),
            e.as_ref().and_then(|f| f[3].parse::<u32>().ok()),
        ),
        (Err(_), Some(f)) => match f[2].parse::<u32>() {
            Ok(n) => (n, Some(f[0].clone()), f[3].parse::<u32>().ok()),
            Err(_) => return Err(no_user(u)),
        },
        (Err(_), None) => return Err(no_user(u)),
    };
    let gid = match g {
        None | Some("") => primary.unwrap_or(if uid == 0 { 0 } else { uid }),
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group
                .lines()
                .map(fields)
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse::<u32>().ok())
                .ok_or_else(|| {
                    RuntimeError::InvalidSpec(format!(
                        "unable to find group {g}: no matching entries in group file"
                    ))
                })?,
        },
    };
    let mut additional_gids = Vec::new();
    if let Some(name) = name {
        for f in group.lines().map(fields).filter(|f| f.len() >= 4) {
            if f[3].split(',').any(|m| m == name)
                && let Ok(id) = f[2].parse::<u32>()
                && id != gid
                && !additional_gids.contains(&id)
            {
                additional_gids.push(id);
            }
        }
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
    })
}

fn no_user(u: &str) -> RuntimeError {
    RuntimeError::InvalidSpec(format!(
        "unable to find user {u}: no matching entries in passwd file"
    ))
}

/// Creates directory `rel` (and its parents) inside the root, as Docker creates a
/// missing working directory; symlinks resolve inside the root.
pub fn mkdir_in(root: &OwnedFd, rel: &str) -> Result<(), RuntimeError> {
    let mut done = String::new();
    for c in Path::new(rel).components() {
        let Component::Normal(name) = c else {
            continue;
        };
        let parent = open_in(root, &done, OFlag::O_PATH | OFlag::O_DIRECTORY)
            .map_err(RuntimeError::sys("open directory in container", &done))?;
        done.push('/');
        done.push_str(&name.to_string_lossy());
        match nix::sys::stat::mkdirat(parent.as_fd(), name, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(nix::Error::EEXIST) => {}
            Err(e) => return Err(RuntimeError::sys("create directory in container", &done)(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_groups() {
        let Ok(dir) = tempfile::tempdir() else { return };
        let etc = dir.path().join("etc");
        assert!(std::fs::create_dir_all(&etc).is_ok());
        let _ = std::fs::write(
            etc.join("passwd"),
            "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33::/var/www:/bin/false\n",
        );
        let _ = std::fs::write(
            etc.join("group"),
            "root:x:0:\nwww:x:33:\nweb:x:80:www,bob\n",
        );
        let Ok(root) = open_root(dir.path()) else {
            return;
        };
        let r = |u: &str| resolve_user(&root, u).map_err(|e| e.to_string());
        assert_eq!(r(""), Ok(ResolvedUser::default()));
        assert_eq!(
            r("www"),
            Ok(ResolvedUser {
                uid: 33,
                gid: 33,
                additional_gids: vec![80]
            })
        );
        assert_eq!(r("33:web").map(|u| (u.uid, u.gid)), Ok((33, 80)));
        assert_eq!(r("1000").map(|u| (u.uid, u.gid)), Ok((1000, 1000)));
        assert_eq!(r("1000:5").map(|u| (u.uid, u.gid)), Ok((1000, 5)));
        assert!(r("nobody").is_err_and(|e| e.contains("unable to find user nobody")));
        assert!(r("www:nogroup").is_err_and(|e| e.contains("unable to find group nogroup")));
        // A symlink out of the root resolves inside it.
        let _ = std::fs::remove_file(etc.join("passwd"));
        let _ = std::os::unix::fs::symlink("/etc/passwd", etc.join("passwd"));
        assert!(r("www").is_err());
        assert!(mkdir_in(&root, "/a/b/c").is_ok());
        assert!(dir.path().join("a/b/c").is_dir());
    }
}
