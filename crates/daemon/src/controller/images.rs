//! Images: references, lookup, `docker import`, removal and tags. Every image has a
//! config blob in the store (its sha256 is the image ID, as in Docker) and its layer
//! blobs; pulls are in `pull.rs`, load / save / history in `image_io.rs`.

use std::collections::HashSet;
use std::path::Path;

use netloom_model::{Image, ImageLayer};
use netloom_runtime::registry::{
    self as reg, ImageConfigFile, ImageRef, ImageStore, Pulled, RegistryError,
};
use tracing::info;

use super::{Controller, State, del, keys, now, put};
use crate::error::{CtlError, CtlResult, chain};

/// Largest unpacked image accepted.
pub(crate) const MAX_IMAGE_BYTES: u64 = 8 << 30;

/// Normalizes a reference to the form tags are stored in: `busybox:latest`,
/// `127.0.0.1:5000/x:1` (Docker Hub's `docker.io/library/` dropped).
pub fn normalize_ref(r: &str) -> String {
    match ImageRef::parse(r) {
        Ok(i) if i.digest.is_none() => i.familiar_tagged(),
        Ok(i) => i.familiar(),
        Err(_) => {
            let last = r.rsplit('/').next().unwrap_or(r);
            if last.contains(':') {
                r.to_string()
            } else {
                format!("{r}:latest")
            }
        }
    }
}

/// Whether `r` is a valid image reference (Docker's grammar).
pub(crate) fn valid_ref(r: &str) -> bool {
    ImageRef::parse(r).is_ok()
}

/// The error of a registry operation, with its kind for the API.
pub(crate) fn reg_err(e: RegistryError) -> CtlError {
    let msg = chain(&e);
    match e {
        RegistryError::InvalidReference { .. }
        | RegistryError::InvalidPlatform { .. }
        | RegistryError::InvalidSetting(_) => CtlError::invalid(msg),
        RegistryError::NotFound(_) | RegistryError::NoMatchingManifest { .. } => {
            CtlError::not_found(msg)
        }
        RegistryError::Denied(_) => CtlError::forbidden(msg),
        RegistryError::Unreachable(_) => CtlError::unavailable(msg),
        RegistryError::Unsupported(_) => CtlError::invalid(msg),
        _ => CtlError::internal(msg),
    }
}

/// A container's environment: the image's, with the container's variables added or
/// replacing those of the same name (Docker's merge).
pub(crate) fn merge_env(image: &[String], container: &[String]) -> Vec<String> {
    let key = |e: &String| e.split('=').next().unwrap_or(e).to_string();
    let mut out: Vec<String> = image.to_vec();
    for e in container {
        let k = key(e);
        match out.iter_mut().find(|x| key(x) == k) {
            Some(x) => *x = e.clone(),
            None => out.push(e.clone()),
        }
    }
    out
}

/// Finds an image by `name[:tag]`, `name@digest`, full ID, `sha256:` ID, or unique
/// ID prefix.
pub(crate) fn find_image<'a>(st: &'a State, r: &str) -> CtlResult<&'a Image> {
    let want = normalize_ref(r);
    if let Ok(p) = ImageRef::parse(r) {
        if let Some(d) = &p.digest {
            let rd = p.familiar_digested(d);
            if let Some(i) = st.images.values().find(|i| i.repo_digests.contains(&rd)) {
                return Ok(i);
            }
        } else if let Some(i) = st.images.values().find(|i| i.tags.contains(&want)) {
            return Ok(i);
        }
    }
    let hex = r.strip_prefix("sha256:").unwrap_or(r);
    if hex.len() >= 4 && netloom_model::ids::is_hex(hex) {
        let m: Vec<&Image> = st
            .images
            .values()
            .filter(|i| i.id.trim_start_matches("sha256:").starts_with(hex))
            .collect();
        if m.len() == 1 {
            return Ok(m[0]);
        }
    }
    let shown = if netloom_model::ids::is_hex(hex) {
        r.to_string()
    } else {
        want
    };
    Err(CtlError::not_found(format!("No such image: {shown}")))
}

/// Applies `docker import --change` instructions we understand (CMD, ENV, EXPOSE,
/// HEALTHCHECK, STOPSIGNAL).
fn apply_changes(img: &mut Image, changes: &[String]) -> CtlResult<()> {
    for ch in changes {
        let (verb, rest) = ch
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((ch.trim(), ""));
        let rest = rest.trim();
        match verb.to_ascii_uppercase().as_str() {
            "CMD" => {
                img.cmd = if rest.starts_with('[') {
                    serde_json::from_str(rest)
                        .map_err(|e| CtlError::invalid(format!("invalid change {ch:?}: {e}")))?
                } else {
                    vec!["/bin/sh".into(), "-c".into(), rest.to_string()]
                }
            }
            "ENV" => img
                .env
                .push(rest.replacen(' ', "=", if rest.contains('=') { 0 } else { 1 })),
            "EXPOSE" => {
                for p in rest.split_whitespace() {
                    let (port, proto) = netloom_model::ports::parse_port_key(p)
                        .map_err(|e| CtlError::invalid(format!("invalid change {ch:?}: {e}")))?;
                    img.exposed_ports.push(format!("{port}/{}", proto.as_str()));
                }
            }
            "HEALTHCHECK" => img.healthcheck = Some(super::health::instruction(rest)?),
            "STOPSIGNAL" => img.stop_signal = rest.to_string(),
            _ => {
                return Err(CtlError::invalid(format!(
                    "invalid change {ch:?}: netloom supports CMD, ENV, EXPOSE, HEALTHCHECK and STOPSIGNAL"
                )));
            }
        }
    }
    Ok(())
}

/// The image record for a config.
pub(crate) fn image_from_config(
    id: &str,
    cfg: &ImageConfigFile,
    layers: Vec<ImageLayer>,
    size: u64,
) -> Image {
    let run = cfg.run();
    let mut exposed: Vec<String> = run
        .exposed_ports
        .clone()
        .unwrap_or_default()
        .into_keys()
        .collect();
    exposed.sort();
    Image {
        id: id.to_string(),
        tags: Vec::new(),
        created: cfg.created.clone().unwrap_or_else(now),
        size,
        cmd: run.cmd.unwrap_or_default(),
        env: run.env.unwrap_or_default(),
        exposed_ports: exposed,
        entrypoint: run.entrypoint.unwrap_or_default(),
        working_dir: run.working_dir.unwrap_or_default(),
        user: run.user.unwrap_or_default(),
        labels: run.labels.unwrap_or_default(),
        stop_signal: run.stop_signal.unwrap_or_default(),
        healthcheck: run.healthcheck,
        repo_digests: Vec::new(),
        architecture: cfg.architecture.clone(),
        os: cfg.os.clone(),
        variant: cfg.variant.clone().unwrap_or_default(),
        author: cfg.author.clone().unwrap_or_default(),
        comment: cfg
            .other
            .get("comment")
            .and_then(|c| c.as_str())
            .unwrap_or_default()
            .to_string(),
        layers,
    }
}

/// Store form of pulled layers.
pub(crate) fn model_layers(l: &[reg::StoredLayer]) -> Vec<ImageLayer> {
    l.iter()
        .map(|l| ImageLayer {
            digest: l.digest.clone(),
            media_type: l.media_type.clone(),
            size: l.size,
            diff_id: l.diff_id.clone(),
            tar_size: l.tar_size,
        })
        .collect()
}

/// The config `docker import` makes for a root-filesystem tarball.
fn import_config(img: &Image, diff_id: &str, comment: &str) -> CtlResult<Vec<u8>> {
    let mut run = serde_json::Map::new();
    run.insert("Env".into(), serde_json::json!(img.env));
    if !img.cmd.is_empty() {
        run.insert("Cmd".into(), serde_json::json!(img.cmd));
    }
    if !img.exposed_ports.is_empty() {
        let ports: serde_json::Map<String, serde_json::Value> = img
            .exposed_ports
            .iter()
            .map(|p| (p.clone(), serde_json::json!({})))
            .collect();
        run.insert("ExposedPorts".into(), ports.into());
    }
    if let Some(h) = &img.healthcheck {
        run.insert("Healthcheck".into(), h.clone());
    }
    if !img.stop_signal.is_empty() {
        run.insert("StopSignal".into(), serde_json::json!(img.stop_signal));
    }
    let v = serde_json::json!({
        "architecture": img.architecture,
        "comment": comment,
        "config": run,
        "created": img.created,
        "history": [{"created": img.created, "comment": comment}],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    });
    serde_json::to_vec(&v).map_err(|e| CtlError::internal(format!("encode image config: {e}")))
}

impl Controller {
    /// The image store (`<data-root>/images`).
    pub(crate) fn image_store(&self) -> CtlResult<ImageStore> {
        ImageStore::open(&self.paths.images).map_err(reg_err)
    }

    /// Removes image data no image references (left by a crash mid-pull, mid-load,
    /// or by images of an older layout); called at start-up.
    pub(crate) fn collect_image_garbage(&self, st: &State) {
        let Ok(store) = self.image_store() else {
            return;
        };
        let ids: HashSet<String> = st.images.keys().cloned().collect();
        let blobs = referenced_blobs(st.images.values());
        store.collect_garbage(&ids, &blobs);
    }

    /// Records an image (committing `pulled` into the store when new) and points
    /// `tags` at it; an image already stored gains the tags and repo digests only.
    /// Returns the image and whether anything changed (a new image, or a tag that
    /// did not name it before).
    pub(crate) async fn commit_image(
        &self,
        pulled: Option<Pulled>,
        mut img: Image,
        config: &[u8],
        tags: &[String],
    ) -> CtlResult<(Image, bool)> {
        let store = self.image_store()?;
        let mut st = self.state.lock().await;
        let mut changed = !st.images.contains_key(&img.id);
        if let Some(old) = st.images.get(&img.id) {
            let mut merged = old.clone();
            for d in img.repo_digests.drain(..) {
                if !merged.repo_digests.contains(&d) {
                    merged.repo_digests.push(d);
                }
            }
            img = merged;
        } else {
            match pulled {
                Some(p) => {
                    let id = img.id.clone();
                    let config = config.to_vec();
                    let s = store.clone();
                    tokio::task::spawn_blocking(move || p.commit(&s, &id, &config))
                        .await
                        .map_err(|e| CtlError::internal(format!("store image: {e}")))?
                        .map_err(reg_err)?;
                }
                None => {
                    return Err(CtlError::internal(format!(
                        "image {} has no unpacked root to store",
                        img.id
                    )));
                }
            }
        }
        let mut ops = Vec::new();
        for tag in tags {
            for other in st.images.values_mut() {
                if other.id != img.id && other.tags.contains(tag) {
                    other.tags.retain(|t| t != tag);
                    ops.push(put(format!("{}{}", keys::IMAGE, other.id), &*other)?);
                }
            }
            if !img.tags.contains(tag) {
                img.tags.push(tag.clone());
                changed = true;
            }
        }
        ops.push(put(format!("{}{}", keys::IMAGE, img.id), &img)?);
        self.commit(ops).await?;
        st.images.insert(img.id.clone(), img.clone());
        Ok((img, changed))
    }

    /// Imports a root-filesystem tarball (already saved at `tar`) as `reference`.
    pub async fn import_image(
        &self,
        tar: &Path,
        reference: Option<&str>,
        changes: &[String],
        message: Option<&str>,
    ) -> CtlResult<Image> {
        let tag = match reference {
            Some(r) => {
                let p = ImageRef::parse(r).map_err(reg_err)?;
                if p.digest.is_some() {
                    return Err(CtlError::invalid(format!(
                        "invalid reference format: {r} names a digest; an imported image gets a tag"
                    )));
                }
                Some(p.familiar_tagged())
            }
            None => None,
        };
        let store = self.image_store()?;
        let work = store.work_dir().map_err(reg_err)?;
        let rootfs = work.path().join("rootfs");
        let tar_path = tar.to_path_buf();
        let dest = rootfs.clone();
        let unpacked = tokio::task::spawn_blocking(move || {
            let f = std::fs::File::open(&tar_path)?;
            netloom_runtime::image::unpack(std::io::BufReader::new(f), &dest, MAX_IMAGE_BYTES)
                .map_err(|e| std::io::Error::other(chain(&e)))
        })
        .await
        .map_err(|e| CtlError::internal(format!("import task: {e}")))?
        .map_err(|e| CtlError::invalid(format!("invalid image tarball: {e}")))?;
        let blob_digest = format!("sha256:{}", unpacked.digest);
        let diff_id = format!("sha256:{}", unpacked.diff_id);
        let gzip = unpacked.digest != unpacked.diff_id;
        let mut img = Image {
            created: now(),
            size: unpacked.size,
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            architecture: reg::Platform::host().architecture,
            os: "linux".into(),
            layers: vec![ImageLayer {
                digest: blob_digest.clone(),
                media_type: if gzip {
                    reg::Compression::Gzip
                } else {
                    reg::Compression::None
                }
                .oci_media_type()
                .to_string(),
                size: std::fs::metadata(tar).map(|m| m.len()).unwrap_or(0),
                diff_id: diff_id.clone(),
                tar_size: unpacked.tar_bytes,
            }],
            comment: message
                .filter(|m| !m.is_empty())
                .unwrap_or("Imported from -")
                .to_string(),
            ..Image::default()
        };
        apply_changes(&mut img, changes)?;
        // The same tarball with the same changes is the same image (netloom does not
        // make a new one per import, as Docker does with a new creation time).
        let same = {
            let st = self.state.lock().await;
            st.images
                .values()
                .find(|i| {
                    i.layers.len() == 1
                        && i.layers[0].digest == blob_digest
                        && i.cmd == img.cmd
                        && i.env == img.env
                        && i.exposed_ports == img.exposed_ports
                        && i.healthcheck == img.healthcheck
                        && i.stop_signal == img.stop_signal
                        && i.comment == img.comment
                })
                .cloned()
        };
        let (img, config) = match same {
            Some(i) => {
                let config = store.read_blob(&i.id).unwrap_or_default();
                (i, config)
            }
            None => {
                let config = import_config(&img, &diff_id, &img.comment.clone())?;
                img.id = reg::sha256_digest(&config);
                (img, config)
            }
        };
        // The tarball is the image's one layer blob.
        let blob = work.path().join("layer");
        if std::fs::rename(tar, &blob).is_err() {
            std::fs::copy(tar, &blob)
                .map_err(|e| CtlError::internal(format!("store layer {}: {e}", blob.display())))?;
        }
        let pulled = Pulled::from_parts(
            work,
            model_to_stored(&img.layers),
            img.size,
            vec![(blob, blob_digest)],
        );
        let tags: Vec<String> = tag.into_iter().collect();
        let (img, _) = self.commit_image(Some(pulled), img, &config, &tags).await?;
        info!(image = %img.id, tags = ?img.tags, "image imported");
        self.emit("image", "import", &img.id, &[]);
        Ok(img)
    }

    /// Lists images.
    pub async fn list_images(&self) -> Vec<Image> {
        let st = self.state.lock().await;
        let mut v: Vec<Image> = st.images.values().cloned().collect();
        v.sort_by(|a, b| b.created.cmp(&a.created));
        v
    }

    /// Finds one image.
    pub async fn inspect_image(&self, r: &str) -> CtlResult<Image> {
        let st = self.state.lock().await;
        find_image(&st, r).cloned()
    }

    /// `create --platform`: an image present under `reference` must be of that
    /// platform (Docker's 404, which makes the docker CLI pull that platform's image).
    pub async fn check_image_platform(&self, reference: &str, platform: &str) -> CtlResult<()> {
        let want = reg::Platform::parse(platform).map_err(reg_err)?;
        let st = self.state.lock().await;
        let Ok(img) = find_image(&st, reference) else {
            return Ok(());
        };
        if img.architecture.is_empty() || want.matches(&img.os, &img.architecture, &img.variant) {
            return Ok(());
        }
        Err(CtlError::not_found(format!(
            "image with reference {reference} was found but does not match the specified platform: wanted {want}, actual: {}/{}{}",
            img.os,
            img.architecture,
            if img.variant.is_empty() {
                String::new()
            } else {
                format!("/{}", img.variant)
            }
        )))
    }

    /// `docker tag SOURCE TARGET`: `target` (`repo[:tag]`) names the image too.
    pub async fn tag_image(&self, source: &str, repo: &str, tag: &str) -> CtlResult<()> {
        let target = if tag.is_empty() {
            repo.to_string()
        } else {
            format!("{repo}:{tag}")
        };
        let p = ImageRef::parse(&target).map_err(reg_err)?;
        if p.digest.is_some() {
            return Err(CtlError::invalid(format!(
                "refusing to create a tag with a digest reference: {target}"
            )));
        }
        let t = p.familiar_tagged();
        let mut st = self.state.lock().await;
        let mut img = find_image(&st, source)?.clone();
        if img.tags.contains(&t) {
            return Ok(());
        }
        let mut ops = Vec::new();
        for other in st.images.values_mut() {
            if other.id != img.id && other.tags.contains(&t) {
                other.tags.retain(|x| x != &t);
                ops.push(put(format!("{}{}", keys::IMAGE, other.id), &*other)?);
            }
        }
        img.tags.push(t.clone());
        ops.push(put(format!("{}{}", keys::IMAGE, img.id), &img)?);
        self.commit(ops).await?;
        st.images.insert(img.id.clone(), img.clone());
        info!(image = %img.id, tag = %t, "image tagged");
        self.emit("image", "tag", &img.id, &[("name", t)]);
        Ok(())
    }

    /// Removes a tag, or the image when it was its last tag / referenced by ID.
    pub async fn remove_image(&self, r: &str, force: bool) -> CtlResult<Vec<(String, String)>> {
        let mut st = self.state.lock().await;
        let img = find_image(&st, r)?.clone();
        let by_tag = img.tags.contains(&normalize_ref(r));
        let mut out = Vec::new();
        let mut updated = img.clone();
        if by_tag && img.tags.len() > 1 {
            let t = normalize_ref(r);
            updated.tags.retain(|x| x != &t);
            self.commit(vec![put(format!("{}{}", keys::IMAGE, img.id), &updated)?])
                .await?;
            st.images.insert(img.id.clone(), updated);
            out.push(("Untagged".into(), t.clone()));
            self.emit("image", "untag", &img.id, &[("name", t)]);
            return Ok(out);
        }
        // A container being started (maybe waiting for a plugin) uses its image as a
        // running one does: even `-f` does not pull the image from under its start.
        if let Some(c) = st
            .containers
            .values()
            .find(|c| c.image_id == img.id && (!force || c.is_running() || self.is_starting(&c.id)))
        {
            return Err(CtlError::conflict(format!(
                "conflict: unable to remove repository reference \"{r}\" (must force) - container {} is using its referenced image {}",
                netloom_model::short_id(&c.id),
                netloom_model::short_id(img.id.trim_start_matches("sha256:"))
            )));
        }
        self.commit(vec![del(format!("{}{}", keys::IMAGE, img.id))])
            .await?;
        st.images.remove(&img.id);
        // Blobs only this image used go with it (under the lock: a pull commits under
        // it too, and holds links to the blobs it reuses meanwhile).
        let keep = referenced_blobs(st.images.values());
        let store = self.image_store()?;
        store.remove_image(&img.id);
        for d in img
            .layers
            .iter()
            .map(|l| l.digest.clone())
            .chain([img.id.clone()])
        {
            if !keep.contains(&d)
                && let Ok(p) = store.blob_path(&d)
            {
                let _ = std::fs::remove_file(p);
            }
        }
        drop(st);
        for t in &img.tags {
            out.push(("Untagged".into(), t.clone()));
        }
        for d in &img.repo_digests {
            out.push(("Untagged".into(), d.clone()));
        }
        out.push(("Deleted".into(), img.id.clone()));
        self.emit("image", "delete", &img.id, &[]);
        Ok(out)
    }
}

/// Blobs the images use: their configs and layers.
fn referenced_blobs<'a>(images: impl Iterator<Item = &'a Image>) -> HashSet<String> {
    let mut s = HashSet::new();
    for i in images {
        s.insert(i.id.clone());
        for l in &i.layers {
            s.insert(l.digest.clone());
        }
    }
    s
}

/// The runtime's form of stored layers.
pub(crate) fn model_to_stored(l: &[ImageLayer]) -> Vec<reg::StoredLayer> {
    l.iter()
        .map(|l| reg::StoredLayer {
            digest: l.digest.clone(),
            media_type: l.media_type.clone(),
            size: l.size,
            diff_id: l.diff_id.clone(),
            tar_size: l.tar_size,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_merges_as_docker() {
        let img = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        assert_eq!(
            merge_env(&img, &["A=2".into(), "B=3".into()]),
            vec!["PATH=/bin", "A=2", "B=3"]
        );
        assert_eq!(merge_env(&img, &[]), img);
    }

    #[test]
    fn refs() {
        assert_eq!(normalize_ref("busybox"), "busybox:latest");
        assert_eq!(normalize_ref("busybox:1"), "busybox:1");
        assert_eq!(normalize_ref("docker.io/library/busybox"), "busybox:latest");
        assert_eq!(
            normalize_ref("localhost:5000/busybox"),
            "localhost:5000/busybox:latest"
        );
        assert_eq!(
            normalize_ref("127.0.0.1:5000/a/b:v1"),
            "127.0.0.1:5000/a/b:v1"
        );
        assert!(valid_ref("busybox"));
        assert!(valid_ref("my/img:v1.2"));
        assert!(valid_ref("127.0.0.1:5000/x"));
        assert!(!valid_ref("Busybox"));
        assert!(!valid_ref("a b"));
        assert!(!valid_ref("x:"));
        assert!(!valid_ref("../x"));
    }
}
