//! `docker pull` (and `run` of a missing image): resolve the reference at the
//! registry, then download and stack the layers, then record the image. The first
//! step's errors are the request's answer; the second one reports progress.

use netloom_runtime::registry::{self as reg, Credentials, ImageRef, Platform, Progress, Resolved};
use tokio::sync::mpsc::UnboundedSender;
use tracing::info;

use super::Controller;
use super::images::{MAX_IMAGE_BYTES, image_from_config, model_layers, reg_err};
use crate::error::{CtlError, CtlResult};

/// A pull request.
#[derive(Debug, Clone)]
pub struct PullRequest {
    /// What to pull (normalised; a tag or a digest).
    pub image: ImageRef,
    /// `--platform`, if given.
    pub platform: Option<Platform>,
    /// Credentials (`X-Registry-Auth`).
    pub creds: Credentials,
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct PullOutcome {
    /// False when the image was stored under this name already ("Image is up to date").
    pub new: bool,
    /// The repo digest (`name@sha256:…`).
    pub repo_digest: String,
}

impl Controller {
    /// `docker login`: checks credentials at a registry (nothing is stored: the docker
    /// CLI keeps them and sends them with each pull).
    pub async fn login(&self, server: &str, creds: &Credentials) -> CtlResult<()> {
        reg::login::login(&self.cfg.registry, server, creds)
            .await
            .map_err(reg_err)
    }

    /// Step 1: finds the image at the registry; nothing is stored.
    pub async fn resolve_pull(&self, req: &PullRequest) -> CtlResult<Resolved> {
        reg::pull::resolve(
            &self.cfg.registry,
            &req.image,
            req.platform.as_ref(),
            &req.creds,
        )
        .await
        .map_err(reg_err)
    }

    /// Step 2: downloads and stacks what is missing, then records the image under
    /// the pulled tag (and repo digest).
    pub async fn finish_pull(
        &self,
        res: Resolved,
        progress: &UnboundedSender<Progress>,
    ) -> CtlResult<PullOutcome> {
        let store = self.image_store()?;
        let have = self.state.lock().await.images.contains_key(&res.id);
        let pulled = if have {
            for l in &res.layers {
                let _ = progress.send(Progress {
                    layer: reg::pull::short(&l.digest),
                    status: reg::LayerStatus::Exists,
                });
            }
            None
        } else {
            Some(
                reg::pull::fetch(&res, &store, &self.cfg.registry, progress, MAX_IMAGE_BYTES)
                    .await
                    .map_err(reg_err)?,
            )
        };
        let (layers, size) = match &pulled {
            Some(p) => (model_layers(&p.layers), p.size),
            None => (Vec::new(), 0),
        };
        let mut img = image_from_config(&res.id, &res.parsed, layers, size);
        let repo_digest = res.image.familiar_digested(&res.repo_digest);
        img.repo_digests = vec![repo_digest.clone()];
        let tags: Vec<String> = if res.image.digest.is_none() {
            vec![res.image.familiar_tagged()]
        } else {
            Vec::new()
        };
        let (image, new) = self.commit_image(pulled, img, &res.config, &tags).await?;
        if image.layers.is_empty() {
            return Err(CtlError::internal(format!(
                "image {} was stored without its layers",
                image.id
            )));
        }
        info!(image = %image.id, reference = %res.image, new, "image pulled");
        self.emit(
            "image",
            "pull",
            &res.image.familiar(),
            &[("name", res.image.familiar())],
        );
        Ok(PullOutcome { new, repo_digest })
    }
}
