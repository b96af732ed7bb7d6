//! Safe unpacking of root-filesystem tarballs (plain or gzip).
//!
//! Refused: absolute entry paths, `..` components, device/fifo entries, hard
//! links whose target is outside the tree, and any entry whose parent path
//! goes through a symlink (e.g. `link -> /etc` then `link/passwd`). Symlink
//! *targets* may be absolute: they resolve inside the container's root.

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};
use tar::EntryType;

use crate::RuntimeError;

/// Bytes charged per entry against the size limit (a tar header).
const ENTRY_COST: u64 = 512;

/// Result of [`unpack`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unpacked {
    /// Total bytes of regular-file content written.
    pub size: u64,
    /// Lowercase hex sha256 of the input stream exactly as read (compressed
    /// bytes for a gzip input); used as the image id.
    pub digest: String,
}

/// Hashes everything read through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Safely unpacks a root-filesystem tarball (plain or gzip, detected by its
/// magic) into `dest`, which must not exist or be an empty directory.
///
/// `max_bytes` bounds the unpacked size (file content plus 512 bytes per
/// entry). On any error `dest` is removed entirely (unless it was a
/// pre-existing non-empty directory, which is refused untouched).
pub fn unpack(reader: impl Read, dest: &Path, max_bytes: u64) -> Result<Unpacked, RuntimeError> {
    match fs::read_dir(dest) {
        Ok(mut it) => {
            if it.next().is_some() {
                return Err(RuntimeError::DestNotEmpty(dest.to_path_buf()));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dest).map_err(RuntimeError::io("create directory", dest))?;
        }
        Err(e) => return Err(RuntimeError::io("read directory", dest)(e)),
    }
    let res = unpack_into(reader, dest, max_bytes);
    match &res {
        Ok(u) => {
            tracing::info!(dest = %dest.display(), size = u.size, digest = %u.digest, "image unpacked")
        }
        Err(e) => {
            tracing::warn!(dest = %dest.display(), error = %e, "image unpack failed, removing");
            if let Err(e) = fs::remove_dir_all(dest) {
                tracing::warn!(dest = %dest.display(), error = %e, "remove failed unpack");
            }
        }
    }
    res
}

fn unpack_into(reader: impl Read, dest: &Path, max_bytes: u64) -> Result<Unpacked, RuntimeError> {
    let tar_err = |source: io::Error| RuntimeError::Tar {
        dest: dest.to_path_buf(),
        source,
    };
    let mut hr = HashingReader {
        inner: reader,
        hasher: Sha256::new(),
    };
    let size = {
        let mut br = BufReader::with_capacity(64 * 1024, &mut hr);
        let gzip = br.fill_buf().map_err(tar_err)?.starts_with(&[0x1f, 0x8b]);
        if gzip {
            extract(flate2::read::GzDecoder::new(&mut br), dest, max_bytes)?
        } else {
            extract(&mut br, dest, max_bytes)?
        }
    };
    // Hash the rest of the stream (tar padding after the end marker).
    io::copy(&mut (&mut hr).take(max_bytes), &mut io::sink()).map_err(tar_err)?;
    let digest = hr
        .hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Unpacked { size, digest })
}

/// An entry path made relative and checked: no root, no `..`.
fn safe_rel(p: &Path) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err("absolute path".to_string());
            }
            Component::ParentDir => return Err("path contains '..'".to_string()),
        }
    }
    Ok(out)
}

/// Checks that no ancestor of `rel` under `dest` is a symlink or non-directory;
/// with `create`, missing ancestors are created.
fn check_parents(dest: &Path, rel: &Path, create: bool) -> Result<(), String> {
    let mut cur = dest.to_path_buf();
    let comps: Vec<_> = rel.components().collect();
    for c in comps.iter().take(comps.len().saturating_sub(1)) {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(md) if md.file_type().is_symlink() => {
                return Err(format!(
                    "would be written through symlink {}",
                    cur.strip_prefix(dest).unwrap_or(&cur).display()
                ));
            }
            Ok(md) if md.is_dir() => {}
            Ok(_) => {
                return Err(format!(
                    "parent {} is not a directory",
                    cur.strip_prefix(dest).unwrap_or(&cur).display()
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                fs::create_dir(&cur).map_err(|e| format!("create {}: {e}", cur.display()))?;
            }
            Err(e) => return Err(format!("stat {}: {e}", cur.display())),
        }
    }
    Ok(())
}

/// Removes whatever is at `p` (not following symlinks), if anything.
fn remove_existing(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(md) if md.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn extract(r: impl Read, dest: &Path, max_bytes: u64) -> Result<u64, RuntimeError> {
    let tar_err = |source: io::Error| RuntimeError::Tar {
        dest: dest.to_path_buf(),
        source,
    };
    let is_root = nix::unistd::geteuid().is_root();
    let mut archive = tar::Archive::new(r);
    let mut total: u64 = 0;
    let mut content: u64 = 0;
    let mut dirs: Vec<(PathBuf, u32)> = Vec::new();
    for entry in archive.entries().map_err(tar_err)? {
        let mut entry = entry.map_err(tar_err)?;
        let raw = entry.path().map_err(tar_err)?.into_owned();
        let name = raw.display().to_string();
        let refuse = |reason: String| RuntimeError::UnsafeEntry {
            entry: name.clone(),
            reason,
        };
        let kind = entry.header().entry_type();
        let rel = safe_rel(&raw).map_err(refuse)?;
        match kind {
            EntryType::XGlobalHeader | EntryType::XHeader => continue,
            EntryType::GNULongName | EntryType::GNULongLink => continue,
            _ => {}
        }
        if rel.as_os_str().is_empty() {
            // "./": the root itself.
            continue;
        }
        total += ENTRY_COST;
        if total > max_bytes {
            return Err(RuntimeError::TooLarge {
                limit: max_bytes,
                dest: dest.to_path_buf(),
            });
        }
        check_parents(dest, &rel, true).map_err(refuse)?;
        let target = dest.join(&rel);
        let mode = entry.header().mode().map_err(tar_err)? & 0o7777;
        let owner = match (entry.header().uid(), entry.header().gid()) {
            (Ok(u), Ok(g)) => u32::try_from(u).ok().zip(u32::try_from(g).ok()),
            _ => None,
        };
        let chown = |p: &Path| -> Result<(), RuntimeError> {
            if let (true, Some((u, g))) = (is_root, owner) {
                std::os::unix::fs::lchown(p, Some(u), Some(g))
                    .map_err(RuntimeError::io("chown", p))?;
            }
            Ok(())
        };
        match kind {
            EntryType::Directory => {
                match fs::symlink_metadata(&target) {
                    Ok(md) if md.is_dir() => {}
                    Ok(_) => {
                        remove_existing(&target).map_err(RuntimeError::io("remove", &target))?;
                        fs::create_dir(&target)
                            .map_err(RuntimeError::io("create directory", &target))?;
                    }
                    Err(_) => fs::create_dir(&target)
                        .map_err(RuntimeError::io("create directory", &target))?,
                }
                chown(&target)?;
                // Permissions last, so read-only dirs can still be filled.
                dirs.push((target, mode));
            }
            EntryType::Regular | EntryType::Continuous => {
                remove_existing(&target).map_err(RuntimeError::io("remove", &target))?;
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                    .open(&target)
                    .map_err(RuntimeError::io("create", &target))?;
                let room = max_bytes - total;
                let n = io::copy(&mut (&mut entry).take(room + 1), &mut f).map_err(tar_err)?;
                total += n;
                content += n;
                if total > max_bytes {
                    return Err(RuntimeError::TooLarge {
                        limit: max_bytes,
                        dest: dest.to_path_buf(),
                    });
                }
                chown(&target)?;
                f.set_permissions(fs::Permissions::from_mode(mode))
                    .map_err(RuntimeError::io("chmod", &target))?;
            }
            EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(tar_err)?
                    .ok_or_else(|| refuse("symlink without target".to_string()))?;
                remove_existing(&target).map_err(RuntimeError::io("remove", &target))?;
                std::os::unix::fs::symlink(&link, &target)
                    .map_err(RuntimeError::io("create symlink", &target))?;
                chown(&target)?;
            }
            EntryType::Link => {
                let link = entry
                    .link_name()
                    .map_err(tar_err)?
                    .ok_or_else(|| refuse("hard link without target".to_string()))?;
                let lrel = safe_rel(&link).map_err(|r| {
                    refuse(format!("hard link target {} outside: {r}", link.display()))
                })?;
                if lrel.as_os_str().is_empty() {
                    return Err(refuse("hard link to the root".to_string()));
                }
                check_parents(dest, &lrel, false)
                    .map_err(|r| refuse(format!("hard link target {}: {r}", link.display())))?;
                let src = dest.join(&lrel);
                match fs::symlink_metadata(&src) {
                    Ok(md) if !md.is_dir() => {}
                    _ => {
                        return Err(refuse(format!(
                            "hard link target {} missing or a directory",
                            link.display()
                        )));
                    }
                }
                if src != target {
                    remove_existing(&target).map_err(RuntimeError::io("remove", &target))?;
                    fs::hard_link(&src, &target)
                        .map_err(RuntimeError::io("create hard link", &target))?;
                }
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                return Err(refuse(
                    "device and fifo entries are not allowed".to_string(),
                ));
            }
            other => {
                return Err(refuse(format!("unsupported entry type {other:?}")));
            }
        }
    }
    for (dir, mode) in dirs.iter().rev() {
        fs::set_permissions(dir, fs::Permissions::from_mode(*mode))
            .map_err(RuntimeError::io("chmod", dir))?;
    }
    Ok(content)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tar::{Builder, Header};

    /// Appends an entry with a raw (unchecked) name.
    fn raw_entry(b: &mut Builder<Vec<u8>>, name: &str, kind: EntryType, link: &str, data: &[u8]) {
        let mut h = Header::new_gnu();
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(if kind == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_cksum();
        assert!(b.append(&h, data).is_ok());
    }

    fn build(f: impl FnOnce(&mut Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = Builder::new(Vec::new());
        f(&mut b);
        b.into_inner().unwrap_or_default()
    }

    fn expect_refused(tarball: Vec<u8>, what: &str) {
        let Ok(tmp) = tempfile::tempdir() else { return };
        let dest = tmp.path().join("rootfs");
        let res = unpack(&tarball[..], &dest, 1 << 30);
        match res {
            Err(RuntimeError::UnsafeEntry { entry, reason }) => {
                assert!(
                    entry.contains(what),
                    "entry {entry} ({reason}) should name {what}"
                );
            }
            other => panic!("expected refusal of {what}, got {other:?}"),
        }
        assert!(!dest.exists(), "dest must be removed after failure");
    }

    #[test]
    fn refuses_absolute_path() {
        expect_refused(
            build(|b| raw_entry(b, "/etc/passwd", EntryType::Regular, "", b"x")),
            "/etc/passwd",
        );
    }

    #[test]
    fn refuses_dotdot() {
        expect_refused(
            build(|b| {
                raw_entry(b, "a/", EntryType::Directory, "", b"");
                raw_entry(b, "a/../../evil", EntryType::Regular, "", b"x");
            }),
            "evil",
        );
    }

    #[test]
    fn refuses_devices_and_fifos() {
        expect_refused(
            build(|b| raw_entry(b, "dev/sda", EntryType::Block, "", b"")),
            "dev/sda",
        );
        expect_refused(
            build(|b| raw_entry(b, "null", EntryType::Char, "", b"")),
            "null",
        );
        expect_refused(
            build(|b| raw_entry(b, "fifo", EntryType::Fifo, "", b"")),
            "fifo",
        );
    }

    #[test]
    fn refuses_write_through_symlink() {
        expect_refused(
            build(|b| {
                raw_entry(b, "link", EntryType::Symlink, "/etc", b"");
                raw_entry(
                    b,
                    "link/passwd",
                    EntryType::Regular,
                    "",
                    b"root::0:0::/:/bin/sh\n",
                );
            }),
            "link/passwd",
        );
        // Relative symlink escaping upwards, then a directory through it.
        expect_refused(
            build(|b| {
                raw_entry(b, "up", EntryType::Symlink, "../../..", b"");
                raw_entry(b, "up/tmp/x/", EntryType::Directory, "", b"");
            }),
            "up/tmp/x",
        );
    }

    #[test]
    fn refuses_hardlink_escape() {
        expect_refused(
            build(|b| raw_entry(b, "shadow", EntryType::Link, "/etc/shadow", b"")),
            "shadow",
        );
        expect_refused(
            build(|b| raw_entry(b, "shadow", EntryType::Link, "../../etc/shadow", b"")),
            "shadow",
        );
        expect_refused(
            build(|b| {
                raw_entry(b, "link", EntryType::Symlink, "/etc", b"");
                raw_entry(b, "pw", EntryType::Link, "link/passwd", b"");
            }),
            "pw",
        );
    }

    #[test]
    fn refuses_oversize_and_nonempty_dest() {
        let Ok(tmp) = tempfile::tempdir() else { return };
        let dest = tmp.path().join("big");
        let t = build(|b| raw_entry(b, "f", EntryType::Regular, "", &[7u8; 4096]));
        assert!(matches!(
            unpack(&t[..], &dest, 2048),
            Err(RuntimeError::TooLarge { .. })
        ));
        assert!(!dest.exists());
        let full = tmp.path().join("full");
        assert!(fs::create_dir(&full).is_ok());
        assert!(fs::write(full.join("keep"), b"x").is_ok());
        assert!(matches!(
            unpack(&t[..], &full, 1 << 20),
            Err(RuntimeError::DestNotEmpty(_))
        ));
        assert!(full.join("keep").exists(), "pre-existing data untouched");
    }

    fn good_tree() -> Vec<u8> {
        build(|b| {
            raw_entry(b, "./", EntryType::Directory, "", b"");
            raw_entry(b, "bin/", EntryType::Directory, "", b"");
            raw_entry(b, "bin/busybox", EntryType::Regular, "", b"#!binary");
            raw_entry(b, "bin/sh", EntryType::Symlink, "/bin/busybox", b"");
            raw_entry(b, "bin/ls", EntryType::Link, "bin/busybox", b"");
            raw_entry(b, "etc/", EntryType::Directory, "", b"");
            raw_entry(b, "etc/mtab", EntryType::Symlink, "/proc/mounts", b"");
            raw_entry(
                b,
                "usr/lib/deep/file",
                EntryType::Regular,
                "",
                b"implicit parents",
            );
        })
    }

    #[test]
    fn unpacks_good_tree_plain_and_gzip() {
        let Ok(tmp) = tempfile::tempdir() else { return };
        let plain = good_tree();
        let dest = tmp.path().join("plain");
        let u = unpack(&plain[..], &dest, 1 << 20);
        assert!(u.is_ok(), "{u:?}");
        let u = u.unwrap_or_else(|_| unreachable!());
        assert_eq!(u.size, 8 + 16);
        assert_eq!(u.digest.len(), 64);
        assert_eq!(
            fs::read_link(dest.join("bin/sh")).ok(),
            Some(PathBuf::from("/bin/busybox"))
        );
        assert_eq!(
            fs::read(dest.join("bin/ls")).ok().as_deref(),
            Some(&b"#!binary"[..])
        );
        assert_eq!(
            fs::read(dest.join("usr/lib/deep/file")).ok().as_deref(),
            Some(&b"implicit parents"[..])
        );
        // Same digest for the same bytes; gzip input is detected.
        let again = unpack(&plain[..], &tmp.path().join("again"), 1 << 20);
        assert_eq!(again.ok().map(|a| a.digest), Some(u.digest.clone()));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        assert!(io::Write::write_all(&mut gz, &plain).is_ok());
        let gz = gz.finish().unwrap_or_default();
        let g = unpack(&gz[..], &tmp.path().join("gz"), 1 << 20);
        assert!(g.is_ok(), "{g:?}");
        let g = g.unwrap_or_else(|_| unreachable!());
        assert_eq!(g.size, u.size);
        assert_ne!(g.digest, u.digest);
        assert!(tmp.path().join("gz/bin/busybox").is_file());
    }
}
