//! The on-disk image store under `<data-root>/images`:
//!
//! ```text
//! blobs/sha256/<hex>   content-addressed blobs: image configs, manifests, layers as pulled
//! <id-hex>/rootfs      an image's root: its layers stacked (the container's lower layer)
//! tmp/<name>/          work directories of pulls and loads in progress
//! ```
//!
//! Work happens in a [`WorkDir`], which is removed when dropped: a pull or load that
//! fails, or a daemon that dies half-way, leaves nothing under `blobs/` or `<id>/`. Only
//! a complete, verified result is moved into place ([`ImageStore::commit_blob`],
//! [`ImageStore::commit_rootfs`]); a rename within one filesystem is atomic.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::RegistryError;
use super::reference::valid_digest;

/// The image store.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
}

/// A work directory, removed (with everything in it) when dropped.
#[derive(Debug)]
pub struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "remove image work directory");
        }
    }
}

static WORK_SEQ: AtomicU64 = AtomicU64::new(0);

/// `sha256:<hex>` of bytes.
pub fn sha256_digest(b: &[u8]) -> String {
    format!("sha256:{}", crate::image::hex(Sha256::digest(b).as_slice()))
}

impl ImageStore {
    /// Opens (creating its directories) the store rooted at `root`.
    pub fn open(root: &Path) -> Result<ImageStore, RegistryError> {
        for d in [root.join("blobs/sha256"), root.join("tmp")] {
            fs::create_dir_all(&d).map_err(RegistryError::io("create directory", &d))?;
        }
        Ok(ImageStore {
            root: root.to_path_buf(),
        })
    }

    /// The store's root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of a blob (whether or not it exists); the digest must be valid.
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, RegistryError> {
        if !valid_digest(digest) {
            return Err(RegistryError::Invalid(format!(
                "invalid digest {digest:?}: netloom stores sha256 digests only"
            )));
        }
        Ok(self.root.join("blobs/sha256").join(&digest[7..]))
    }

    /// Whether a blob is stored.
    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.is_file())
    }

    /// Reads a (small) blob.
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, RegistryError> {
        let p = self.blob_path(digest)?;
        fs::read(&p).map_err(RegistryError::io("read blob", p))
    }

    /// Stores `data` as a blob (verifying it has `digest` when given); returns its digest.
    pub fn write_blob(&self, data: &[u8], digest: Option<&str>) -> Result<String, RegistryError> {
        let actual = sha256_digest(data);
        if let Some(d) = digest
            && d != actual
        {
            return Err(RegistryError::DigestMismatch {
                what: "blob",
                expected: d.to_string(),
                actual,
            });
        }
        let path = self.blob_path(&actual)?;
        if path.is_file() {
            return Ok(actual);
        }
        let work = self.work_dir()?;
        let tmp = work.path().join("blob");
        let mut f = fs::File::create(&tmp).map_err(RegistryError::io("create", &tmp))?;
        f.write_all(data)
            .map_err(RegistryError::io("write", &tmp))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(RegistryError::io("store blob", &path))?;
        Ok(actual)
    }

    /// Moves a verified blob file into the store (dropping it if already there).
    pub fn commit_blob(&self, file: &Path, digest: &str) -> Result<(), RegistryError> {
        let path = self.blob_path(digest)?;
        if path.is_file() {
            let _ = fs::remove_file(file);
            return Ok(());
        }
        fs::rename(file, &path).map_err(RegistryError::io("store blob", &path))
    }

    /// A fresh work directory under `tmp/`.
    pub fn work_dir(&self) -> Result<WorkDir, RegistryError> {
        let n = WORK_SEQ.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = self
            .root
            .join("tmp")
            .join(format!("{}-{n}-{nanos:x}", std::process::id()));
        fs::create_dir_all(&path).map_err(RegistryError::io("create directory", &path))?;
        Ok(WorkDir { path })
    }

    /// The directory of an image (`<id-hex>`), holding `rootfs/`.
    pub fn image_dir(&self, id: &str) -> PathBuf {
        self.root.join(id.trim_start_matches("sha256:"))
    }

    /// An image's root filesystem.
    pub fn rootfs(&self, id: &str) -> PathBuf {
        self.image_dir(id).join("rootfs")
    }

    /// Moves an unpacked root into place as image `id`'s (keeping an existing one).
    pub fn commit_rootfs(&self, rootfs: &Path, id: &str) -> Result<(), RegistryError> {
        let dir = self.image_dir(id);
        let dest = dir.join("rootfs");
        if dest.is_dir() {
            return Ok(());
        }
        fs::create_dir_all(&dir).map_err(RegistryError::io("create directory", &dir))?;
        fs::rename(rootfs, &dest).map_err(RegistryError::io("store image root", &dest))
    }

    /// Removes an image's directory.
    pub fn remove_image(&self, id: &str) {
        let dir = self.image_dir(id);
        if let Err(e) = fs::remove_dir_all(&dir)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %dir.display(), error = %e, "remove image directory");
        }
    }

    /// Removes what no image references: blobs not in `blobs`, image directories
    /// not in `ids`, and every work directory (none is in use when this runs).
    pub fn collect_garbage(&self, ids: &HashSet<String>, blobs: &HashSet<String>) {
        let hexes: HashSet<&str> = ids
            .iter()
            .map(|i| i.trim_start_matches("sha256:"))
            .collect();
        let blob_hexes: HashSet<&str> = blobs
            .iter()
            .map(|b| b.trim_start_matches("sha256:"))
            .collect();
        let rm = |p: &Path| {
            let r = if p.is_dir() {
                fs::remove_dir_all(p)
            } else {
                fs::remove_file(p)
            };
            match r {
                Ok(()) => tracing::info!(path = %p.display(), "removed unreferenced image data"),
                Err(e) => {
                    tracing::warn!(path = %p.display(), error = %e, "remove unreferenced image data")
                }
            }
        };
        if let Ok(rd) = fs::read_dir(self.root.join("blobs/sha256")) {
            for e in rd.flatten() {
                if !blob_hexes.contains(e.file_name().to_string_lossy().as_ref()) {
                    rm(&e.path());
                }
            }
        }
        if let Ok(rd) = fs::read_dir(self.root.join("tmp")) {
            for e in rd.flatten() {
                rm(&e.path());
            }
        }
        if let Ok(rd) = fs::read_dir(&self.root) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                let is_image = n.len() == 64 && n.chars().all(|c| c.is_ascii_hexdigit());
                // `tmp-*`: work directories of imports from before this store existed.
                if (is_image && !hexes.contains(n.as_str())) || n.starts_with("tmp-") {
                    rm(&e.path());
                }
            }
        }
    }
}
