//! The second step of a pull: downloading missing layers (several at once, each
//! retried and verified) and stacking every layer into a new root, checking DiffIDs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use oci_client::errors::DigestError;
use oci_client::manifest::OciDescriptor;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc::UnboundedSender;

use super::RegistryError;
use super::endpoint::{Ctx, Endpoint};
use super::layer::{Compression, apply_blob};
use super::pull::{LayerInfo, LayerStatus, Progress, Resolved, StoredLayer};
use super::settings::{Credentials, RegistryConfig};
use super::store::{ImageStore, WorkDir};

/// A pulled (or loaded) image in its work directory, ready to commit.
pub struct Pulled {
    pub(crate) work: WorkDir,
    /// The layers, bottom first.
    pub layers: Vec<StoredLayer>,
    /// Bytes of file content in the root.
    pub size: u64,
    /// Blob files of the work directory to move into the store.
    pub(crate) blobs: Vec<(PathBuf, String)>,
}

impl Pulled {
    /// An image root unpacked into `work` (at `rootfs/` in it) by other means
    /// (`docker import`), with the blob files to store.
    pub fn from_parts(
        work: WorkDir,
        layers: Vec<StoredLayer>,
        size: u64,
        blobs: Vec<(PathBuf, String)>,
    ) -> Pulled {
        Pulled {
            work,
            layers,
            size,
            blobs,
        }
    }

    /// The root being built.
    pub fn rootfs(&self) -> PathBuf {
        self.work.path().join("rootfs")
    }

    /// Moves the layer blobs, `config` and the root into the store as image `id`.
    pub fn commit(self, store: &ImageStore, id: &str, config: &[u8]) -> Result<(), RegistryError> {
        for (path, digest) in &self.blobs {
            store.commit_blob(path, digest)?;
        }
        store.write_blob(config, Some(id))?;
        store.commit_rootfs(&self.rootfs(), id)
    }
}

/// The 12-digit short form of a digest.
pub fn short(digest: &str) -> String {
    digest
        .trim_start_matches("sha256:")
        .chars()
        .take(12)
        .collect()
}

/// One layer to stack: a blob file and what it must hash to.
pub(crate) struct StackInput {
    pub path: PathBuf,
    pub digest: String,
    pub media_type: String,
    pub compression: Option<Compression>,
    pub diff_id: String,
    /// Report `Pull complete` for it (not for a layer that already existed).
    pub report: bool,
}

/// Stacks layers (in order, as they arrive on `rx`) into `rootfs`, checking DiffIDs.
pub(crate) fn stack(
    rx: std::sync::mpsc::Receiver<StackInput>,
    rootfs: &Path,
    max_bytes: u64,
    progress: &UnboundedSender<Progress>,
) -> Result<(Vec<StoredLayer>, u64), RegistryError> {
    let mut out = Vec::new();
    let mut size = 0u64;
    let mut room = max_bytes;
    while let Ok(inp) = rx.recv() {
        let id = short(&inp.digest);
        let total = std::fs::metadata(&inp.path).map(|m| m.len()).unwrap_or(0);
        let p = progress.clone();
        let pid = id.clone();
        let mut last = Instant::now();
        let u = apply_blob(
            &inp.path,
            &inp.digest,
            inp.compression,
            rootfs,
            room,
            |current| {
                if last.elapsed() >= Duration::from_millis(100) {
                    last = Instant::now();
                    let _ = p.send(Progress {
                        layer: pid.clone(),
                        status: LayerStatus::Extracting { current, total },
                    });
                }
            },
        )?;
        let diff_id = format!("sha256:{}", u.diff_id);
        if !inp.diff_id.is_empty() && diff_id != inp.diff_id {
            return Err(RegistryError::DigestMismatch {
                what: "layer DiffID",
                expected: inp.diff_id,
                actual: diff_id,
            });
        }
        room = room.saturating_sub(u.size);
        size += u.size;
        if inp.report {
            let _ = progress.send(Progress {
                layer: id,
                status: LayerStatus::Complete,
            });
        }
        out.push(StoredLayer {
            digest: inp.digest,
            media_type: inp.media_type,
            size: total,
            diff_id,
            tar_size: u.tar_bytes,
        });
    }
    Ok((out, size))
}

/// Downloads what is missing and stacks every layer into a new root (see the module
/// doc). `max_bytes` bounds the unpacked image.
pub async fn fetch(
    res: &Resolved,
    store: &ImageStore,
    cfg: &RegistryConfig,
    progress: &UnboundedSender<Progress>,
    max_bytes: u64,
) -> Result<Pulled, RegistryError> {
    let work = store.work_dir()?;
    let rootfs = work.path().join("rootfs");
    let blob_dir = work.path().join("blobs");
    for d in [&rootfs, &blob_dir] {
        std::fs::create_dir_all(d).map_err(RegistryError::io("create directory", d))?;
    }
    // Layers already stored are linked into the work directory, so that an `rmi`
    // running meanwhile cannot take them away.
    let mut have = Vec::new();
    for l in &res.layers {
        let stored = store.blob_path(&l.digest)?;
        let link = blob_dir.join(short(&l.digest) + "-" + &l.digest[7..]);
        let exists = stored.is_file() && std::fs::hard_link(&stored, &link).is_ok();
        let _ = progress.send(Progress {
            layer: short(&l.digest),
            status: if exists {
                LayerStatus::Exists
            } else {
                LayerStatus::Waiting
            },
        });
        have.push(exists.then_some(link));
    }
    let (tx, rx) = std::sync::mpsc::channel::<StackInput>();
    let ex_rootfs = rootfs.clone();
    let ex_progress = progress.clone();
    let extractor =
        tokio::task::spawn_blocking(move || stack(rx, &ex_rootfs, max_bytes, &ex_progress));
    let mut blobs = Vec::new();
    type Item<'a> = Result<(&'a LayerInfo, PathBuf, bool), RegistryError>;
    // Boxed: an `async` block borrowing from a closure's arguments defeats the
    // compiler's `Send` proof of the caller's spawned task
    // <https://github.com/rust-lang/rust/issues/102211>.
    let jobs: Vec<futures::future::BoxFuture<'_, Item<'_>>> = res
        .layers
        .iter()
        .zip(have)
        .map(|(l, have)| {
            let blob_dir = blob_dir.clone();
            let f: futures::future::BoxFuture<'_, Item<'_>> = Box::pin(async move {
                match have {
                    Some(p) => Ok((l, p, false)),
                    None => download(res, l, &blob_dir, cfg, progress)
                        .await
                        .map(|p| (l, p, true)),
                }
            });
            f
        })
        .collect();
    let mut downloads =
        Box::pin(futures::stream::iter(jobs).buffered(cfg.max_concurrent_downloads.max(1)));
    let mut failed = None;
    while let Some(r) = downloads.next().await {
        match r {
            Ok((l, path, new)) => {
                if new {
                    blobs.push((path.clone(), l.digest.clone()));
                }
                let sent = tx.send(StackInput {
                    path,
                    digest: l.digest.clone(),
                    media_type: l.media_type.clone(),
                    compression: Some(l.compression),
                    diff_id: l.diff_id.clone(),
                    report: new,
                });
                if sent.is_err() {
                    break; // the extractor stopped: its error is the answer
                }
            }
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    // Cancels the downloads still running (after a failure) before waiting for the
    // extractor, so the work directory is idle when it is removed.
    drop(downloads);
    drop(tx);
    let stacked = extractor
        .await
        .map_err(|e| RegistryError::Invalid(format!("layer extraction task: {e}")))?;
    if let Some(e) = failed {
        return Err(e);
    }
    let (layers, size) = stacked?;
    Ok(Pulled {
        work,
        layers,
        size,
        blobs,
    })
}

/// Downloads one layer blob into `dir`, with retries; returns its file.
async fn download(
    res: &Resolved,
    l: &LayerInfo,
    dir: &Path,
    cfg: &RegistryConfig,
    progress: &UnboundedSender<Progress>,
) -> Result<PathBuf, RegistryError> {
    let path = dir.join(&l.digest[7..]);
    let id = short(&l.digest);
    let mut attempt = 1usize;
    loop {
        match download_once(res, l, &path, cfg, progress).await {
            Ok(()) => {
                let _ = progress.send(Progress {
                    layer: id.clone(),
                    status: LayerStatus::Verifying,
                });
                let _ = progress.send(Progress {
                    layer: id,
                    status: LayerStatus::Downloaded,
                });
                return Ok(path);
            }
            Err((e, retry)) if retry && attempt < cfg.max_download_attempts => {
                let seconds = attempt as u64;
                tracing::warn!(layer = %l.digest, attempt, error = %e, "layer download failed, retrying");
                let _ = progress.send(Progress {
                    layer: id.clone(),
                    status: LayerStatus::Retrying { seconds },
                });
                tokio::time::sleep(Duration::from_secs(seconds)).await;
                attempt += 1;
            }
            Err((e, _)) => {
                let _ = tokio::fs::remove_file(&path).await;
                return Err(e);
            }
        }
    }
}

async fn download_once(
    res: &Resolved,
    l: &LayerInfo,
    path: &Path,
    cfg: &RegistryConfig,
    progress: &UnboundedSender<Progress>,
) -> Result<(), (RegistryError, bool)> {
    let ep = Endpoint {
        host: res.registry.clone(),
        http: false,
        skip_verify: false,
        mirror: false,
    };
    let creds = Credentials::Anonymous;
    let ctx = Ctx {
        image: &res.image,
        ep: &ep,
        creds: &creds,
        timeout: cfg.timeout,
    };
    let what = format!("download layer {}", l.digest);
    let desc = OciDescriptor {
        media_type: l.media_type.clone(),
        digest: l.digest.clone(),
        size: i64::try_from(l.size).unwrap_or(i64::MAX),
        urls: l.urls.clone(),
        ..OciDescriptor::default()
    };
    let mut stream = res
        .client()
        .pull_blob_stream(res.reference(), &desc)
        .await
        .map_err(|e| {
            let f = ctx.classify(&what, e);
            let retry = matches!(f.err, RegistryError::Unreachable(_));
            (f.err, retry)
        })?;
    let io_err = |op, e| (RegistryError::io(op, path)(e), false);
    let mut f = tokio::fs::File::create(path)
        .await
        .map_err(|e| io_err("create", e))?;
    let mut h = Sha256::new();
    let mut n = 0u64;
    let mut last = Instant::now();
    let id = short(&l.digest);
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                if let Some(DigestError::VerificationError { actual, .. }) =
                    e.get_ref().and_then(|i| i.downcast_ref::<DigestError>())
                {
                    return Err((
                        RegistryError::DigestMismatch {
                            what: "layer",
                            expected: l.digest.clone(),
                            actual: actual.clone(),
                        },
                        false,
                    ));
                }
                return Err((
                    RegistryError::Unreachable(format!(
                        "{} after {n} of {} bytes",
                        ctx.transport(&what, &e),
                        l.size
                    )),
                    true,
                ));
            }
        };
        n += chunk.len() as u64;
        if n > l.size {
            return Err((
                RegistryError::Invalid(format!(
                    "{what}: the registry sent more than the {} bytes the manifest gives",
                    l.size
                )),
                false,
            ));
        }
        h.update(&chunk);
        f.write_all(&chunk).await.map_err(|e| io_err("write", e))?;
        if last.elapsed() >= Duration::from_millis(100) {
            last = Instant::now();
            let _ = progress.send(Progress {
                layer: id.clone(),
                status: LayerStatus::Downloading {
                    current: n,
                    total: l.size,
                },
            });
        }
    }
    f.flush().await.map_err(|e| io_err("write", e))?;
    if n != l.size {
        return Err((
            RegistryError::Unreachable(format!(
                "{what}: the registry {} ended the layer after {n} of its {} bytes",
                ep.url(),
                l.size
            )),
            true,
        ));
    }
    let actual = format!("sha256:{}", crate::image::hex(h.finalize().as_slice()));
    if actual != l.digest {
        return Err((
            RegistryError::DigestMismatch {
                what: "layer",
                expected: l.digest.clone(),
                actual,
            },
            false,
        ));
    }
    Ok(())
}
