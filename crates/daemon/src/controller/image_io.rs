//! `docker load`, `docker save` and `docker history`.

use std::collections::HashSet;
use std::path::Path;

use netloom_model::Image;
use netloom_runtime::registry::{self as reg, ImageConfigFile, archive};
use serde_json::{Value, json};
use tracing::info;

use super::Controller;
use super::images::{
    MAX_IMAGE_BYTES, find_image, image_from_config, model_layers, model_to_stored, reg_err,
};
use crate::error::{CtlError, CtlResult};

/// What `load` stored: per image, its ID and the tags it got.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    /// The image ID.
    pub id: String,
    /// Tags pointed at it.
    pub tags: Vec<String>,
}

impl Controller {
    /// Loads every image of the archive saved at `tar` (`docker load`). All images are
    /// checked and unpacked before any is recorded: a bad archive stores nothing.
    pub async fn load_images(&self, tar: &Path) -> CtlResult<Vec<LoadedImage>> {
        let store = self.image_store()?;
        let have: HashSet<String> = self.state.lock().await.images.keys().cloned().collect();
        let path = tar.to_path_buf();
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let s = store.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            archive::load(&s, &path, &have, MAX_IMAGE_BYTES, &tx)
        })
        .await
        .map_err(|e| CtlError::internal(format!("load task: {e}")))?
        .map_err(|e| {
            let e = reg_err(e);
            if e.kind == netloom_model::ErrorKind::Internal {
                e
            } else {
                CtlError::invalid(e.message)
            }
        })?;
        let mut out = Vec::new();
        for l in loaded {
            let (layers, size) = match &l.pulled {
                Some(p) => (model_layers(&p.layers), p.size),
                None => (Vec::new(), 0),
            };
            let img = image_from_config(&l.id, &l.parsed, layers, size);
            let tags: Vec<String> = l.tags.iter().map(|t| t.familiar_tagged()).collect();
            let (img, _) = self.commit_image(l.pulled, img, &l.config, &tags).await?;
            info!(image = %img.id, tags = ?tags, "image loaded");
            self.emit("image", "load", &img.id, &[]);
            out.push(LoadedImage { id: img.id, tags });
        }
        Ok(out)
    }

    /// What `docker save NAMES...` writes: each named image (by tag: that tag; by ID:
    /// no tag, as Docker 25 does), refusing images netloom cannot export.
    pub async fn save_plan(&self, names: &[String]) -> CtlResult<Vec<archive::SaveImage>> {
        if names.is_empty() {
            return Err(CtlError::invalid(
                "no image to save: name at least one image (docker save IMAGE...)",
            ));
        }
        let store = self.image_store()?;
        let st = self.state.lock().await;
        let mut out: Vec<archive::SaveImage> = Vec::new();
        for n in names {
            let img = find_image(&st, n)?;
            let by_tag = img.tags.contains(&super::normalize_ref(n));
            if img.layers.is_empty() {
                return Err(CtlError::invalid(format!(
                    "image {n} was imported by an older netloom, which kept no layers: import or pull it again to save it"
                )));
            }
            let config = store.read_blob(&img.id).map_err(reg_err)?;
            let tag = by_tag.then(|| super::normalize_ref(n));
            match out.iter_mut().find(|s| s.id == img.id) {
                Some(s) => s.tags.extend(tag.filter(|t| !s.tags.contains(t))),
                None => out.push(archive::SaveImage {
                    id: img.id.clone(),
                    config,
                    tags: tag.into_iter().collect(),
                    layers: model_to_stored(&img.layers),
                }),
            }
        }
        for s in &out {
            self.emit("image", "save", &s.id, &[]);
        }
        Ok(out)
    }

    /// `GET /images/{name}/history`: newest step first, Docker's fields.
    pub async fn image_history(&self, name: &str) -> CtlResult<Vec<Value>> {
        let img = {
            let st = self.state.lock().await;
            find_image(&st, name)?.clone()
        };
        let store = self.image_store()?;
        let cfg: Option<ImageConfigFile> = store
            .read_blob(&img.id)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        Ok(history(&img, cfg.as_ref()))
    }
}

/// The history rows of an image: one per config history entry, non-empty entries
/// taking the layers' sizes in order; the top row carries the ID and tags.
fn history(img: &Image, cfg: Option<&ImageConfigFile>) -> Vec<Value> {
    let entries: Vec<reg::History> = match cfg {
        Some(c) if !c.history.is_empty() => c.history.clone(),
        _ => vec![reg::History {
            created: Some(img.created.clone()),
            comment: Some(img.comment.clone()),
            ..reg::History::default()
        }],
    };
    let mut layers = img.layers.iter();
    let mut rows: Vec<Value> = entries
        .iter()
        .map(|h| {
            let size = if h.empty_layer {
                0
            } else {
                layers.next().map(|l| l.tar_size).unwrap_or(0)
            };
            json!({
                "Id": "<missing>",
                "Created": super::created_unix(h.created.as_deref().unwrap_or("")),
                "CreatedBy": h.created_by.clone().unwrap_or_default(),
                "Tags": Value::Null,
                "Size": size,
                "Comment": h.comment.clone().unwrap_or_default(),
            })
        })
        .collect();
    rows.reverse();
    if let Some(top) = rows.first_mut() {
        top["Id"] = json!(img.id);
        top["Tags"] = if img.tags.is_empty() {
            Value::Null
        } else {
            json!(img.tags)
        };
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_rows() {
        let img = Image {
            id: "sha256:aa".into(),
            tags: vec!["x:latest".into()],
            layers: vec![
                netloom_model::ImageLayer {
                    tar_size: 10,
                    ..Default::default()
                },
                netloom_model::ImageLayer {
                    tar_size: 20,
                    ..Default::default()
                },
            ],
            ..Image::default()
        };
        let cfg: ImageConfigFile = serde_json::from_str(
            r#"{"history":[{"created":"2023-11-14T22:13:20Z","created_by":"ADD"},
                {"created_by":"ENV","empty_layer":true},{"created_by":"RUN"}]}"#,
        )
        .unwrap_or_default();
        let h = history(&img, Some(&cfg));
        assert_eq!(h.len(), 3);
        assert_eq!(h[0]["Id"], json!("sha256:aa"));
        assert_eq!(h[0]["CreatedBy"], json!("RUN"));
        assert_eq!(h[0]["Size"], json!(20));
        assert_eq!(h[1]["Size"], json!(0));
        assert_eq!(h[2]["Size"], json!(10));
        assert_eq!(h[2]["Id"], json!("<missing>"));
        assert_eq!(h[2]["Created"], json!(1700000000));
    }
}
