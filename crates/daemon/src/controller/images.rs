//! Images: root filesystems imported from tarballs (`docker import`).

use std::path::Path;

use netloom_model::Image;
use tracing::info;

use super::{Controller, State, del, keys, new_id, now, put};
use crate::error::{CtlError, CtlResult, chain};

/// Largest unpacked image accepted.
const MAX_IMAGE_BYTES: u64 = 8 << 30;

/// Normalizes `name[:tag]` to `name:tag` (default tag `latest`).
pub fn normalize_ref(r: &str) -> String {
    let last = r.rsplit('/').next().unwrap_or(r);
    if last.contains(':') {
        r.to_string()
    } else {
        format!("{r}:latest")
    }
}

pub(crate) fn valid_ref(r: &str) -> bool {
    let (name, tag) = match r.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, t),
        _ => (r, "latest"),
    };
    !name.is_empty()
        && name.len() <= 255
        && name.split('/').all(|c| {
            c.chars()
                .next()
                .is_some_and(|ch| ch.is_ascii_alphanumeric())
                && c.chars().all(|ch| {
                    ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-')
                })
        })
        && !tag.is_empty()
        && tag.len() <= 128
        && tag
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'))
}

/// Finds an image by `name[:tag]`, full ID, `sha256:` ID, or unique ID prefix.
pub(crate) fn find_image<'a>(st: &'a State, r: &str) -> CtlResult<&'a Image> {
    let want = normalize_ref(r);
    if let Some(i) = st.images.values().find(|i| i.tags.contains(&want)) {
        return Ok(i);
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

/// Applies `docker import --change` instructions we understand (CMD, ENV, EXPOSE).
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
            _ => {
                return Err(CtlError::invalid(format!(
                    "invalid change {ch:?}: netloom supports CMD, ENV and EXPOSE"
                )));
            }
        }
    }
    Ok(())
}

impl Controller {
    /// Imports a root-filesystem tarball (already saved at `tar`) as `reference`.
    pub async fn import_image(
        &self,
        tar: &Path,
        reference: Option<&str>,
        changes: &[String],
    ) -> CtlResult<Image> {
        if let Some(r) = reference
            && !valid_ref(r)
        {
            return Err(CtlError::invalid(format!(
                "invalid reference format: repository name {r:?} must be lowercase [a-z0-9._-] components, with an optional :tag"
            )));
        }
        let staging = self.paths.images.join(format!("tmp-{}", &new_id()[..12]));
        let rootfs = staging.join("rootfs");
        let tar_path = tar.to_path_buf();
        let dest = rootfs.clone();
        let unpacked = tokio::task::spawn_blocking(move || {
            let f = std::fs::File::open(&tar_path)?;
            netloom_runtime::image::unpack(std::io::BufReader::new(f), &dest, MAX_IMAGE_BYTES)
                .map_err(|e| std::io::Error::other(chain(&e)))
        })
        .await
        .map_err(|e| CtlError::internal(format!("import task: {e}")))?;
        let unpacked = match unpacked {
            Ok(u) => u,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(CtlError::invalid(format!("invalid image tarball: {e}")));
            }
        };
        let id = format!("sha256:{}", unpacked.digest);
        let mut st = self.state.lock().await;
        let final_dir = self.paths.images.join(&unpacked.digest);
        let mut img = match st.images.get(&id) {
            Some(i) => {
                let _ = std::fs::remove_dir_all(&staging);
                i.clone()
            }
            None => {
                if final_dir.exists() {
                    let _ = std::fs::remove_dir_all(&final_dir);
                }
                std::fs::rename(&staging, &final_dir).map_err(|e| {
                    let _ = std::fs::remove_dir_all(&staging);
                    CtlError::internal(format!("store image {}: {e}", final_dir.display()))
                })?;
                Image {
                    id: id.clone(),
                    tags: Vec::new(),
                    created: now(),
                    size: unpacked.size,
                    cmd: Vec::new(),
                    env: vec![
                        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                    ],
                    exposed_ports: Vec::new(),
                }
            }
        };
        apply_changes(&mut img, changes)?;
        let mut ops = Vec::new();
        if let Some(r) = reference {
            let tag = normalize_ref(r);
            for other in st.images.values_mut() {
                if other.id != id && other.tags.contains(&tag) {
                    other.tags.retain(|t| t != &tag);
                    ops.push(put(format!("{}{}", keys::IMAGE, other.id), &*other)?);
                }
            }
            if !img.tags.contains(&tag) {
                img.tags.push(tag);
            }
        }
        ops.push(put(format!("{}{}", keys::IMAGE, img.id), &img)?);
        self.commit(ops).await?;
        st.images.insert(img.id.clone(), img.clone());
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
            out.push(("Untagged".into(), t));
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
        let dir = self.paths.images.join(img.id.trim_start_matches("sha256:"));
        tokio::task::spawn_blocking(move || {
            let _ = std::fs::remove_dir_all(dir);
        });
        for t in &img.tags {
            out.push(("Untagged".into(), t.clone()));
        }
        out.push(("Deleted".into(), img.id.clone()));
        self.emit("image", "delete", &img.id, &[]);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs() {
        assert_eq!(normalize_ref("busybox"), "busybox:latest");
        assert_eq!(normalize_ref("busybox:1"), "busybox:1");
        assert_eq!(
            normalize_ref("localhost:5000/busybox"),
            "localhost:5000/busybox:latest"
        );
        assert!(valid_ref("busybox"));
        assert!(valid_ref("my/img:v1.2"));
        assert!(!valid_ref("Busybox"));
        assert!(!valid_ref("a b"));
        assert!(!valid_ref("x:"));
        assert!(!valid_ref("../x"));
    }
}
