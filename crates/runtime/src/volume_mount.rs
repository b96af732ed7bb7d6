//! The host side of volumes: the `local` driver's mount on a volume's directory
//! (`type` / `device` / `o`, as `mount -t TYPE -o O DEVICE DIR`), whether it is
//! mounted, its unmount, and copying an image's content into a new volume.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use nix::mount::{MntFlags, MsFlags};

use crate::RuntimeError;

/// Splits `mount -o` options into the flags mount(2) takes and the filesystem's own
/// data (`size=64m,uid=1000`), as `mount(8)` and moby's `mount.Mount` do.
pub fn split_options(o: &str) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for opt in o.split(',').filter(|s| !s.is_empty()) {
        let (set, clear) = match opt {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            // mount(8)'s defaults: nothing to set.
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            other => {
                data.push(other);
                continue;
            }
        };
        flags.insert(set);
        flags.remove(clear);
    }
    (flags, data.join(","))
}

/// Mounts `device` (of filesystem `typ`, with options `o`) on `target`.
pub fn mount_local(typ: &str, device: &str, o: &str, target: &Path) -> Result<(), RuntimeError> {
    let (flags, data) = split_options(o);
    let sys = |source| RuntimeError::Sys {
        op: "mount local volume on",
        what: format!("{} (type={typ}, device={device}, o={o})", target.display()),
        source,
    };
    let data = (!data.is_empty()).then_some(data.as_str());
    let bind = flags.contains(MsFlags::MS_BIND);
    // A bind mount ignores MS_RDONLY on its first mount(2): it is remounted read-only.
    // <https://man7.org/linux/man-pages/man2/mount.2.html> ("Creating a bind mount")
    let first = if bind {
        flags - MsFlags::MS_RDONLY
    } else {
        flags
    };
    nix::mount::mount(Some(device), target, Some(typ), first, data).map_err(sys)?;
    if bind && flags.contains(MsFlags::MS_RDONLY) {
        let again = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | flags;
        nix::mount::mount(None::<&str>, target, None::<&str>, again, None::<&str>).map_err(sys)?;
    }
    Ok(())
}

/// Whether `path` is a mount point (listed in `/proc/self/mountinfo`).
pub fn is_mounted(path: &Path) -> bool {
    let Ok(mi) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    mi.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| unescape(m) == want)
}

/// mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unmounts `path` (lazily: a process still inside lets go later).
pub fn unmount(path: &Path) -> Result<(), RuntimeError> {
    match nix::mount::umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(RuntimeError::Sys {
            op: "unmount volume",
            what: path.display().to_string(),
            source: e,
        }),
    }
}

/// Whether a directory is empty (or missing).
pub fn is_empty_dir(path: &Path) -> bool {
    std::fs::read_dir(path).map_or(true, |mut d| d.next().is_none())
}

/// Copies the tree at `src` into the directory `dst` (Docker's copy of an image's
/// content into a new volume): files, directories and symlinks with their modes and
/// owners; `dst` itself takes `src`'s mode and owner.
pub fn copy_up(src: &Path, dst: &Path) -> Result<(), RuntimeError> {
    let io = |op, path: &Path| {
        let path = path.to_path_buf();
        move |source| RuntimeError::Io { op, path, source }
    };
    let meta = std::fs::symlink_metadata(src).map_err(io("stat", src))?;
    if !meta.is_dir() {
        return Ok(());
    }
    copy_dir(src, dst, &meta)?;
    Ok(())
}

fn copy_dir(src: &Path, dst: &Path, meta: &std::fs::Metadata) -> Result<(), RuntimeError> {
    let io = |op, path: &Path| {
        let path = path.to_path_buf();
        move |source| RuntimeError::Io { op, path, source }
    };
    std::fs::create_dir_all(dst).map_err(io("create directory", dst))?;
    set_owner_mode(dst, meta)?;
    for e in std::fs::read_dir(src).map_err(io("read directory", src))? {
        let e = e.map_err(io("read directory", src))?;
        let from = e.path();
        let to = dst.join(e.file_name());
        let m = std::fs::symlink_metadata(&from).map_err(io("stat", &from))?;
        let ft = m.file_type();
        if ft.is_dir() {
            copy_dir(&from, &to, &m)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&from).map_err(io("read link", &from))?;
            std::os::unix::fs::symlink(&target, &to).map_err(io("create symlink", &to))?;
            let _ = std::os::unix::fs::lchown(&to, Some(m.uid()), Some(m.gid()));
        } else if ft.is_file() {
            std::fs::copy(&from, &to).map_err(io("copy", &from))?;
            set_owner_mode(&to, &m)?;
        }
        // Devices, sockets and fifos are not copied (Docker's copy skips them too).
    }
    Ok(())
}

fn set_owner_mode(path: &Path, m: &std::fs::Metadata) -> Result<(), RuntimeError> {
    let io = |op| {
        let path = path.to_path_buf();
        move |source| RuntimeError::Io { op, path, source }
    };
    std::os::unix::fs::chown(path, Some(m.uid()), Some(m.gid())).map_err(io("chown"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(m.mode() & 0o7777))
        .map_err(io("chmod"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_and_data() {
        let (f, d) = split_options("size=64m,uid=1000,noexec,ro");
        assert_eq!(d, "size=64m,uid=1000");
        assert!(f.contains(MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY));
        let (f, d) = split_options("bind");
        assert_eq!((f, d.as_str()), (MsFlags::MS_BIND, ""));
        let (f, _) = split_options("ro,rw");
        assert!(!f.contains(MsFlags::MS_RDONLY));
        assert_eq!(unescape("/a\\040b"), "/a b");
    }
}
