//! Safe unpacking of root-filesystem tarballs (plain or gzip), and of image layers
//! stacked on one another ([`apply_layer`]).
//!
//! Refused: absolute entry paths, `..` components, device/fifo entries, hard
//! links whose target is outside the tree, and any entry whose parent path
//! goes through a symlink (e.g. `link -> /etc` then `link/passwd`). Symlink
//! *targets* may be absolute: they resolve inside the container's root.
//!
//! A layer (a registry image's, or a `docker load` archive's) may also carry
//! whiteouts, as the OCI image spec defines them: `.wh.NAME` deletes `NAME` of
//! the layers below, `.wh..wh..opq` in a directory hides everything the layers
//! below put there; neither marker is written. A layer's fifos are made; its
//! device nodes are skipped with a warning (a container has no device cgroup to
//! confine them). <https://github.com/opencontainers/image-spec/blob/main/layer.md#whiteouts>

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};
use tar::EntryType;

use crate::RuntimeError;

/// Bytes charged per entry against the size limit (a tar header).
const ENTRY_COST: u64 = 512;

/// Result of [`unpack`] and [`apply_layer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unpacked {
    /// Total bytes of regular-file content written.
    pub size: u64,
    /// Lowercase hex sha256 of the input stream exactly as read (compressed
    /// bytes for a gzip input).
    pub digest: String,
    /// Lowercase hex sha256 of the uncompressed tar stream (a layer's DiffID);
    /// the same as `digest` for a plain tar.
    pub diff_id: String,
    /// Bytes of the uncompressed tar stream.
    pub tar_bytes: u64,
}

/// How entries are written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `docker import`: into an empty root, no whiteouts, no fifos or devices.
    Import,
    /// A layer over the layers below it.
    Layer,
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
    let mut hr = Counted::new(reader);
    let (size, inner) = {
        let mut br = BufReader::with_capacity(64 * 1024, &mut hr);
        let gzip = br.fill_buf().map_err(tar_err)?.starts_with(&[0x1f, 0x8b]);
        if gzip {
            let mut inner = Counted::new(flate2::read::MultiGzDecoder::new(&mut br));
            let size = extract(&mut inner, dest, max_bytes, Mode::Import)?;
            drain(&mut inner, max_bytes).map_err(tar_err)?;
            (size, Some(inner.finish()))
        } else {
            (extract(&mut br, dest, max_bytes, Mode::Import)?, None)
        }
    };
    // Hash the rest of the stream (tar padding after the end marker).
    drain(&mut hr, max_bytes).map_err(tar_err)?;
    let (digest, total) = hr.finish();
    let (diff_id, tar_bytes) = inner.unwrap_or_else(|| (digest.clone(), total));
    Ok(Unpacked {
        size,
        digest,
        diff_id,
        tar_bytes,
    })
}

/// Lowercase hex of bytes.
pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads (and discards) the rest of a stream, at most `max` bytes.
fn drain(r: &mut impl Read, max: u64) -> io::Result<u64> {
    io::copy(&mut r.take(max), &mut io::sink())
}

/// Hashes and counts everything read through it.
pub(crate) struct Counted<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> Counted<R> {
    /// Wraps a reader.
    pub(crate) fn new(inner: R) -> Self {
        Counted {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// The hex sha256 and the byte count of what was read.
    pub(crate) fn finish(self) -> (String, u64) {
        (hex(self.hasher.finalize().as_slice()), self.count)
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Applies one uncompressed layer tar onto `dest` (which holds the layers below it,
/// or nothing), with whiteouts. `max_bytes` bounds what this layer writes. On error
/// `dest` is left as it is: the caller unpacks into a work directory it removes.
///
/// Returns the layer's content size, and the sha256 and length of the tar stream read
/// (its DiffID), trailing padding included.
pub fn apply_layer(
    reader: impl Read,
    dest: &Path,
    max_bytes: u64,
) -> Result<Unpacked, RuntimeError> {
    let tar_err = |source: io::Error| RuntimeError::Tar {
        dest: dest.to_path_buf(),
        source,
    };
    fs::create_dir_all(dest).map_err(RuntimeError::io("create directory", dest))?;
    let mut c = Counted::new(reader);
    let size = extract(&mut c, dest, max_bytes, Mode::Layer)?;
    drain(&mut c, max_bytes).map_err(tar_err)?;
    let (diff_id, tar_bytes) = c.finish();
    Ok(Unpacked {
        size,
        digest: diff_id.clone(),
        diff_id,
        tar_bytes,
    })
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

/// Where an entry goes: for an import, `rel` itself once no parent is a symlink (else
/// refused); for a layer, `rel` with its parents resolved inside the root.
fn place(dest: &Path, rel: &Path, mode: Mode, create: bool) -> Result<PathBuf, String> {
    match mode {
        Mode::Import => check_parents(dest, rel, create).map(|()| rel.to_path_buf()),
        Mode::Layer => crate::whiteout::resolve_parents(dest, rel, create),
    }
}

/// Removes whatever is at `p` (not following symlinks), if anything.
pub(crate) fn remove_existing(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(md) if md.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn extract(r: impl Read, dest: &Path, max_bytes: u64, mode: Mode) -> Result<u64, RuntimeError> {
    let tar_err = |source: io::Error| RuntimeError::Tar {
        dest: dest.to_path_buf(),
        source,
    };
    let is_root = nix::unistd::geteuid().is_root();
    let mut archive = tar::Archive::new(r);
    let mut total: u64 = 0;
    let mut content: u64 = 0;
    let mut dirs: Vec<(PathBuf, u32)> = Vec::new();
    let mut written: std::collections::HashSet<PathBuf> = std::collections::HashSet::new();
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
        if mode == Mode::Layer
            && let Some(base) = rel.file_name().and_then(|n| n.to_str())
            && base.starts_with(crate::whiteout::WHITEOUT)
        {
            // `.wh..wh.*` other than the opaque marker is aufs metadata (`.wh..wh.plnk`).
            if base == crate::whiteout::OPAQUE || !base.starts_with(".wh..wh.") {
                crate::whiteout::whiteout(dest, &rel, base, &written).map_err(refuse)?;
            }
            continue;
        }
        total += ENTRY_COST;
        if total > max_bytes {
            return Err(RuntimeError::TooLarge {
                limit: max_bytes,
                dest: dest.to_path_buf(),
            });
        }
        let rel = place(dest, &rel, mode, true).map_err(refuse)?;
        let target = dest.join(&rel);
        if mode == Mode::Layer {
            written.insert(rel.clone());
        }
        let perm = entry.header().mode().map_err(tar_err)? & 0o7777;
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
                dirs.push((target, perm));
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
                f.set_permissions(fs::Permissions::from_mode(perm))
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
                let lrel = place(dest, &lrel, mode, false)
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
            EntryType::Fifo if mode == Mode::Layer => {
                remove_existing(&target).map_err(RuntimeError::io("remove", &target))?;
                nix::unistd::mkfifo(&target, nix::sys::stat::Mode::from_bits_truncate(perm))
                    .map_err(RuntimeError::sys("mkfifo", target.display()))?;
                chown(&target)?;
            }
            EntryType::Char | EntryType::Block if mode == Mode::Layer => {
                tracing::warn!(entry = %name, "image layer device node skipped");
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

    #[test]
    fn layers_stack_with_whiteouts() {
        let Ok(tmp) = tempfile::tempdir() else { return };
        let root = tmp.path().join("root");
        let lower = build(|b| {
            raw_entry(b, "a/", EntryType::Directory, "", b"");
            raw_entry(b, "a/x", EntryType::Regular, "", b"x");
            raw_entry(b, "a/sub/y", EntryType::Regular, "", b"y");
            raw_entry(b, "f", EntryType::Regular, "", b"f");
            raw_entry(b, "g", EntryType::Regular, "", b"g");
            raw_entry(b, "link", EntryType::Symlink, "/etc", b"");
        });
        let upper = build(|b| {
            raw_entry(b, ".wh.f", EntryType::Regular, "", b"");
            raw_entry(b, "a/z", EntryType::Regular, "", b"z");
            raw_entry(b, "a/.wh..wh..opq", EntryType::Regular, "", b"");
            raw_entry(b, "h", EntryType::Regular, "", b"h");
            raw_entry(b, ".wh.h", EntryType::Regular, "", b"");
            raw_entry(b, ".wh..wh.plnk", EntryType::Regular, "", b"");
            raw_entry(b, "g", EntryType::Regular, "", b"g2");
            raw_entry(b, "fifo", EntryType::Fifo, "", b"");
        });
        let l = apply_layer(&lower[..], &root, 1 << 20);
        assert!(l.is_ok(), "{l:?}");
        let u = apply_layer(&upper[..], &root, 1 << 20);
        assert!(u.is_ok(), "{u:?}");
        let mut names: Vec<String> = fs::read_dir(root.join("a"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        assert_eq!(names, vec!["z"], "opaque a/ keeps only this layer's z");
        assert!(!root.join("f").exists(), ".wh.f removes f");
        assert!(
            root.join("h").exists(),
            "a whiteout leaves its own layer's h"
        );
        assert_eq!(fs::read(root.join("g")).ok().as_deref(), Some(&b"g2"[..]));
        assert!(!root.join(".wh.f").exists() && !root.join("a/.wh..wh..opq").exists());
        assert!(!root.join(".wh..wh.plnk").exists());
        assert!(fs::symlink_metadata(root.join("fifo")).is_ok_and(|m| {
            use std::os::unix::fs::FileTypeExt;
            m.file_type().is_fifo()
        }));
        // Through a symlink, a layer writes and deletes inside the root only: `link`
        // points at /etc, which is the root's etc/ here, never the host's.
        let through = build(|b| {
            raw_entry(b, "link/netloom-test", EntryType::Regular, "", b"inside");
            raw_entry(b, "up", EntryType::Symlink, "../../../..", b"");
            raw_entry(b, "up/escaped", EntryType::Regular, "", b"clamped");
            raw_entry(b, "link/.wh.gone", EntryType::Regular, "", b"");
        });
        assert!(fs::create_dir_all(root.join("etc")).is_ok());
        assert!(fs::write(root.join("etc/gone"), b"x").is_ok());
        let t = apply_layer(&through[..], &root, 1 << 20);
        assert!(t.is_ok(), "{t:?}");
        assert_eq!(
            fs::read(root.join("etc/netloom-test")).ok().as_deref(),
            Some(&b"inside"[..])
        );
        assert!(!Path::new("/etc/netloom-test").exists());
        assert_eq!(
            fs::read(root.join("escaped")).ok().as_deref(),
            Some(&b"clamped"[..])
        );
        assert!(!root.join("etc/gone").exists());
        // The DiffID is the sha256 of the tar as read.
        let d = u.map(|u| u.diff_id).unwrap_or_default();
        assert_eq!(d, hex(Sha256::digest(&upper).as_slice()));
    }
}
