//! `docker load` and `docker save`: Docker's image archive (`manifest.json`, with
//! `repositories` and the layer tars) and OCI image layouts (`index.json`,
//! `oci-layout`, `blobs/sha256/*`).
//!
//! [`load`] reads either (as Docker 25 writes both, `manifest.json` wins); every layer
//! is checked against the config's DiffIDs (and, in a layout, against its blob
//! digest), stacked with whiteouts into a work directory, and handed back to commit.
//! [`save`] writes both at once, as Docker 25 does, with uncompressed layers whose
//! digests are their DiffIDs: Docker 20.10 reads `manifest.json`, newer tools read
//! `index.json`, and the image keeps its ID (its config is written byte for byte).

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc::UnboundedSender;

use super::config::{
    DocKind, ImageConfigFile, ManifestDoc, OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST,
};
use super::fetch::{Pulled, StackInput, stack};
use super::layer::{Compression, decompress};
use super::platform::Platform;
use super::reference::ImageRef;
use super::store::{ImageStore, sha256_digest};
use super::{Progress, RegistryError, StoredLayer};

/// One `manifest.json` entry of a Docker archive.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

/// An image read from an archive.
pub struct Loaded {
    /// The config's digest: the image ID.
    pub id: String,
    /// The config blob.
    pub config: Vec<u8>,
    /// The config, parsed.
    pub parsed: ImageConfigFile,
    /// Tags the archive gives it.
    pub tags: Vec<ImageRef>,
    /// The unpacked image, or `None` when the store already has this ID.
    pub pulled: Option<Pulled>,
}

fn bad(why: impl Into<String>) -> RegistryError {
    RegistryError::Invalid(format!("invalid image archive: {}", why.into()))
}

/// An archive unpacked into a directory: regular files, with its symlinks resolved
/// inside it (Docker's legacy format links shared layers).
struct Unpacked {
    root: PathBuf,
    links: BTreeMap<PathBuf, PathBuf>,
}

fn clean(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            _ => return None,
        }
    }
    Some(out)
}

impl Unpacked {
    fn read(tar: &Path, root: &Path, max_bytes: u64) -> Result<Unpacked, RegistryError> {
        let f = fs::File::open(tar).map_err(RegistryError::io("open", tar))?;
        let mut a = tar::Archive::new(BufReader::new(f));
        let mut links = BTreeMap::new();
        let mut total = 0u64;
        let entries = a
            .entries()
            .map_err(|e| bad(format!("not a tar archive: {e}")))?;
        for e in entries {
            let mut e = e.map_err(|e| bad(format!("not a tar archive: {e}")))?;
            let raw = e.path().map_err(|e| bad(e.to_string()))?.into_owned();
            let rel = clean(&raw)
                .filter(|r| !r.as_os_str().is_empty() || e.header().entry_type().is_dir())
                .ok_or_else(|| bad(format!("entry {} leaves the archive", raw.display())))?;
            if rel.as_os_str().is_empty() {
                continue;
            }
            let dest = root.join(&rel);
            match e.header().entry_type() {
                tar::EntryType::Directory => {
                    fs::create_dir_all(&dest).map_err(RegistryError::io("create", &dest))?
                }
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    if let Some(p) = dest.parent() {
                        fs::create_dir_all(p).map_err(RegistryError::io("create", p))?;
                    }
                    total += e.header().size().unwrap_or(0);
                    if total > max_bytes {
                        return Err(bad(format!("more than {max_bytes} bytes")));
                    }
                    let mut out =
                        fs::File::create(&dest).map_err(RegistryError::io("create", &dest))?;
                    io::copy(&mut e, &mut out).map_err(RegistryError::io("write", &dest))?;
                }
                tar::EntryType::Symlink => {
                    let target =
                        e.link_name().ok().flatten().ok_or_else(|| {
                            bad(format!("symlink {} has no target", raw.display()))
                        })?;
                    let base = rel.parent().unwrap_or(Path::new(""));
                    let t = clean(&base.join(&target)).ok_or_else(|| {
                        bad(format!(
                            "symlink {} points outside the archive",
                            raw.display()
                        ))
                    })?;
                    links.insert(rel, t);
                }
                tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => {}
                other => {
                    return Err(bad(format!(
                        "entry {} is of type {other:?}; an image archive holds files and directories",
                        raw.display()
                    )));
                }
            }
        }
        Ok(Unpacked {
            root: root.to_path_buf(),
            links,
        })
    }

    /// The file at `name` in the archive (following its symlinks).
    fn path(&self, name: &str) -> Result<PathBuf, RegistryError> {
        let mut rel = clean(Path::new(name))
            .ok_or_else(|| bad(format!("path {name:?} leaves the archive")))?;
        for _ in 0..16 {
            match self.links.get(&rel) {
                Some(t) => rel = t.clone(),
                None => break,
            }
        }
        let p = self.root.join(&rel);
        if !p.is_file() {
            return Err(bad(format!("{name} is missing")));
        }
        Ok(p)
    }

    fn read_file(&self, name: &str) -> Result<Vec<u8>, RegistryError> {
        let p = self.path(name)?;
        fs::read(&p).map_err(RegistryError::io("read", p))
    }
}

fn file_digest(p: &Path) -> Result<(String, Compression), RegistryError> {
    let mut f = fs::File::open(p).map_err(RegistryError::io("open", p))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut head = Vec::new();
    loop {
        let n = f.read(&mut buf).map_err(RegistryError::io("read", p))?;
        if n == 0 {
            break;
        }
        if head.len() < 8 {
            head.extend_from_slice(&buf[..n.min(8)]);
        }
        h.update(&buf[..n]);
    }
    Ok((
        format!("sha256:{}", crate::image::hex(h.finalize().as_slice())),
        Compression::sniff(&head),
    ))
}

/// Parses a tag of an archive (`busybox:latest`, `docker.io/library/x:1`).
fn tag_ref(t: &str) -> Result<ImageRef, RegistryError> {
    let r = ImageRef::parse(t)?;
    if r.tag.is_none() || r.digest.is_some() {
        return Err(bad(format!("tag {t:?} is not name:tag")));
    }
    Ok(r)
}

/// One image to read: its config path, layer paths (with digests to check, in a
/// layout) and tags.
struct Plan {
    config: Vec<u8>,
    layers: Vec<(PathBuf, Option<String>)>,
    tags: Vec<ImageRef>,
}

fn docker_plans(u: &Unpacked, manifest: &[u8]) -> Result<Vec<Plan>, RegistryError> {
    let entries: Vec<ArchiveEntry> =
        serde_json::from_slice(manifest).map_err(|e| bad(format!("manifest.json: {e}")))?;
    let mut out = Vec::new();
    for e in entries {
        let config = u.read_file(&e.config)?;
        let layers = e
            .layers
            .iter()
            .map(|l| u.path(l).map(|p| (p, None)))
            .collect::<Result<_, _>>()?;
        let tags = e
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|t| tag_ref(t))
            .collect::<Result<_, _>>()?;
        out.push(Plan {
            config,
            layers,
            tags,
        });
    }
    Ok(out)
}

fn blob_name(digest: &str) -> Result<String, RegistryError> {
    if !super::reference::valid_digest(digest) {
        return Err(bad(format!("digest {digest:?} is not sha256")));
    }
    Ok(format!("blobs/sha256/{}", &digest[7..]))
}

fn read_verified(u: &Unpacked, digest: &str) -> Result<Vec<u8>, RegistryError> {
    let b = u.read_file(&blob_name(digest)?)?;
    let actual = sha256_digest(&b);
    if actual != digest {
        return Err(RegistryError::DigestMismatch {
            what: "blob",
            expected: digest.to_string(),
            actual,
        });
    }
    Ok(b)
}

fn oci_plans(u: &Unpacked, index: &[u8]) -> Result<Vec<Plan>, RegistryError> {
    let idx: ManifestDoc =
        serde_json::from_slice(index).map_err(|e| bad(format!("index.json: {e}")))?;
    let mut by_manifest: BTreeMap<String, Plan> = BTreeMap::new();
    let host = Platform::host();
    for entry in idx.manifests.unwrap_or_default() {
        let ann = entry.annotations.clone().unwrap_or_default();
        let name = ann
            .get("io.containerd.image.name")
            .or_else(|| ann.get("org.opencontainers.image.ref.name"))
            .filter(|n| n.contains(':') || n.contains('/'))
            .map(|n| tag_ref(n))
            .transpose()?;
        let mut digest = entry.digest.clone();
        let mut doc: ManifestDoc = serde_json::from_slice(&read_verified(u, &digest)?)
            .map_err(|e| bad(format!("manifest {digest}: {e}")))?;
        if doc.kind().map_err(bad)? == DocKind::Index {
            let chosen = doc
                .manifests
                .clone()
                .unwrap_or_default()
                .into_iter()
                .find(|m| {
                    m.platform.as_ref().is_some_and(|p| {
                        host.matches(&p.os, &p.architecture, p.variant.as_deref().unwrap_or(""))
                    })
                })
                .ok_or_else(|| RegistryError::NoMatchingManifest {
                    platform: host.to_string(),
                })?;
            digest = chosen.digest.clone();
            doc = serde_json::from_slice(&read_verified(u, &digest)?)
                .map_err(|e| bad(format!("manifest {digest}: {e}")))?;
            if doc.kind().map_err(bad)? != DocKind::Image {
                return Err(bad(format!("{digest} is not an image manifest")));
            }
        }
        if let Some(p) = by_manifest.get_mut(&digest) {
            p.tags.extend(name);
            continue;
        }
        let cfg = doc
            .config
            .ok_or_else(|| bad(format!("manifest {digest} has no config")))?;
        let config = read_verified(u, &cfg.digest)?;
        let layers = doc
            .layers
            .unwrap_or_default()
            .iter()
            .map(|l| Ok((u.path(&blob_name(&l.digest)?)?, Some(l.digest.clone()))))
            .collect::<Result<_, RegistryError>>()?;
        by_manifest.insert(
            digest,
            Plan {
                config,
                layers,
                tags: name.into_iter().collect(),
            },
        );
    }
    Ok(by_manifest.into_values().collect())
}

/// Reads an archive (a `docker save` tar or a tarred OCI layout) at `tar`: each image
/// unpacked in a work directory of `store` unless `have` already holds its ID.
pub fn load(
    store: &ImageStore,
    tar: &Path,
    have: &HashSet<String>,
    max_bytes: u64,
    progress: &UnboundedSender<Progress>,
) -> Result<Vec<Loaded>, RegistryError> {
    let work = store.work_dir()?;
    let u = Unpacked::read(tar, &work.path().join("archive"), max_bytes)?;
    let plans = match u.read_file("manifest.json") {
        Ok(m) => docker_plans(&u, &m)?,
        Err(_) => match u.read_file("index.json") {
            Ok(i) => oci_plans(&u, &i)?,
            Err(_) => {
                return Err(bad(
                    "it has neither manifest.json (docker save) nor index.json (an OCI image layout)",
                ));
            }
        },
    };
    if plans.is_empty() {
        return Err(bad("it holds no image"));
    }
    let mut out = Vec::new();
    for plan in plans {
        let id = sha256_digest(&plan.config);
        let parsed: ImageConfigFile =
            serde_json::from_slice(&plan.config).map_err(|e| bad(format!("config {id}: {e}")))?;
        if parsed.rootfs.diff_ids.len() != plan.layers.len() {
            return Err(bad(format!(
                "image {id} lists {} layers and its config {} DiffIDs",
                plan.layers.len(),
                parsed.rootfs.diff_ids.len()
            )));
        }
        let pulled = if have.contains(&id) {
            None
        } else {
            Some(unpack_plan(store, &plan, &parsed, max_bytes, progress)?)
        };
        out.push(Loaded {
            id,
            config: plan.config,
            parsed,
            tags: plan.tags,
            pulled,
        });
    }
    drop(work);
    Ok(out)
}

fn unpack_plan(
    store: &ImageStore,
    plan: &Plan,
    parsed: &ImageConfigFile,
    max_bytes: u64,
    progress: &UnboundedSender<Progress>,
) -> Result<Pulled, RegistryError> {
    let work = store.work_dir()?;
    let rootfs = work.path().join("rootfs");
    let blob_dir = work.path().join("blobs");
    for d in [&rootfs, &blob_dir] {
        fs::create_dir_all(d).map_err(RegistryError::io("create directory", d))?;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let mut blobs = Vec::new();
    for ((path, want), diff_id) in plan.layers.iter().zip(&parsed.rootfs.diff_ids) {
        let (digest, compression) = file_digest(path)?;
        if let Some(w) = want
            && *w != digest
        {
            return Err(RegistryError::DigestMismatch {
                what: "layer",
                expected: w.clone(),
                actual: digest,
            });
        }
        let dest = blob_dir.join(&digest[7..]);
        if !dest.exists() {
            // A copy, not a rename: a shared layer may be named twice.
            fs::copy(path, &dest).map_err(RegistryError::io("copy layer", &dest))?;
            blobs.push((dest.clone(), digest.clone()));
        }
        let _ = tx.send(StackInput {
            path: dest,
            digest,
            media_type: compression.oci_media_type().to_string(),
            compression: Some(compression),
            diff_id: diff_id.clone(),
            report: true,
        });
    }
    drop(tx);
    let (layers, size) = stack(rx, &rootfs, max_bytes, progress)?;
    Ok(Pulled {
        work,
        layers,
        size,
        blobs,
    })
}

/// An image to save.
pub struct SaveImage {
    /// Its ID (the config's digest).
    pub id: String,
    /// Its config blob.
    pub config: Vec<u8>,
    /// Tags to record (`name:tag`), possibly none.
    pub tags: Vec<String>,
    /// Its layers, bottom first.
    pub layers: Vec<StoredLayer>,
}

/// Checks a layer's uncompressed stream against its DiffID and length as it is read.
struct Verify<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
    want: u64,
    diff_id: String,
}

impl<R: Read> Read for Verify<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let room = usize::try_from(self.want - self.read).unwrap_or(usize::MAX);
        let len = buf.len().min(room);
        let n = self.inner.read(&mut buf[..len])?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        if n == 0 || self.read == self.want {
            let h = format!(
                "sha256:{}",
                crate::image::hex(self.hasher.clone().finalize().as_slice())
            );
            if self.read != self.want || h != self.diff_id {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "stored layer {} is damaged ({} of {} bytes, sha256 {h})",
                        self.diff_id, self.read, self.want
                    ),
                ));
            }
        }
        Ok(n)
    }
}

fn header(path: &str, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    let _ = h.set_path(path);
    h.set_cksum();
    h
}

fn add(b: &mut tar::Builder<impl Write>, path: &str, data: &[u8]) -> Result<(), RegistryError> {
    b.append(&header(path, data.len() as u64), data)
        .map_err(RegistryError::io("write archive", path))
}

/// Writes `images` as one archive (see the module doc) to `out`.
pub fn save(
    store: &ImageStore,
    images: &[SaveImage],
    out: impl Write,
) -> Result<(), RegistryError> {
    let mut b = tar::Builder::new(out);
    let mut written: HashSet<String> = HashSet::new();
    let mut docker = Vec::new();
    let mut index = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for img in images {
        for l in &img.layers {
            if !written.insert(l.diff_id.clone()) {
                continue;
            }
            let blob = store.blob_path(&l.digest)?;
            let f = fs::File::open(&blob).map_err(RegistryError::io("open layer", &blob))?;
            let c = super::config::layer_compression(&l.media_type).unwrap_or(Compression::None);
            let r = decompress(f, c).map_err(RegistryError::io("read layer", &blob))?;
            let v = Verify {
                inner: r,
                hasher: Sha256::new(),
                read: 0,
                want: l.tar_size,
                diff_id: l.diff_id.clone(),
            };
            let name = blob_name(&l.diff_id)?;
            b.append(&header(&name, l.tar_size), v)
                .map_err(RegistryError::io("write archive", &name))?;
        }
        let cfg_name = blob_name(&img.id)?;
        if written.insert(img.id.clone()) {
            add(&mut b, &cfg_name, &img.config)?;
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": img.id, "size": img.config.len()},
            "layers": img.layers.iter().map(|l| json!({
                "mediaType": OCI_LAYER, "digest": l.diff_id, "size": l.tar_size,
            })).collect::<Vec<_>>(),
        });
        let mbytes = serde_json::to_vec(&manifest)
            .map_err(|e| RegistryError::Invalid(format!("encode manifest: {e}")))?;
        let mdigest = sha256_digest(&mbytes);
        if written.insert(mdigest.clone()) {
            add(&mut b, &blob_name(&mdigest)?, &mbytes)?;
        }
        let desc = |ann: Option<serde_json::Value>| {
            let mut d = json!({"mediaType": OCI_MANIFEST, "digest": mdigest, "size": mbytes.len()});
            if let Some(a) = ann {
                d["annotations"] = a;
            }
            d
        };
        if img.tags.is_empty() {
            index.push(desc(None));
        }
        for t in &img.tags {
            let r = tag_ref(t)?;
            let tag = r.tag.clone().unwrap_or_default();
            index.push(desc(Some(json!({
                "io.containerd.image.name": r.to_string(),
                "org.opencontainers.image.ref.name": tag,
            }))));
            if let Some(top) = img.layers.last() {
                repositories
                    .entry(r.familiar_name())
                    .or_default()
                    .insert(tag, top.diff_id.trim_start_matches("sha256:").to_string());
            }
        }
        docker.push(ArchiveEntry {
            config: cfg_name,
            repo_tags: Some(img.tags.clone()),
            layers: img
                .layers
                .iter()
                .map(|l| blob_name(&l.diff_id))
                .collect::<Result<_, _>>()?,
        });
    }
    let enc = |v: &serde_json::Value| {
        serde_json::to_vec(v).map_err(|e| RegistryError::Invalid(format!("encode archive: {e}")))
    };

    add(
        &mut b,
        "index.json",
        &enc(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index}))?,
    )?;
    add(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&docker)
            .map_err(|e| RegistryError::Invalid(format!("encode archive: {e}")))?,
    )?;
    add(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    if !repositories.is_empty() {
        add(&mut b, "repositories", &enc(&json!(repositories))?)?;
    }
    b.into_inner()
        .and_then(|mut w| w.flush())
        .map_err(RegistryError::io("write archive", "(end)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_paths_stay_inside() {
        assert_eq!(clean(Path::new("a/./b")), Some(PathBuf::from("a/b")));
        assert_eq!(clean(Path::new("a/../b")), Some(PathBuf::from("b")));
        assert_eq!(clean(Path::new("../x")), None);
        assert_eq!(clean(Path::new("/etc/passwd")), None);
    }
}
