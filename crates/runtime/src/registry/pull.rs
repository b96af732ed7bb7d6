//! Pulling an image from a registry, in two steps:
//!
//! 1. [`resolve`]: authenticate (anonymous, basic, or a Bearer token from the
//!    registry's token endpoint), fetch the manifest for the tag, choose this
//!    platform's entry when it is an index / manifest list, fetch the config. Nothing
//!    is written; an error here (unknown image, access denied, no such platform) is
//!    the request's answer.
//! 2. [`fetch`]: download the layers missing from the store into a work directory
//!    (several at once, each retried), verify each against its digest, and stack them
//!    into a new root, verifying each layer's DiffID against the config, while
//!    reporting [`Progress`]. The result is committed by [`Pulled::commit`]; dropped
//!    uncommitted, nothing of it remains.
//!
//! The protocol (token auth, manifest and blob requests, digest checks of manifests)
//! is `oci-client`'s; endpoints (Docker Hub mirrors, insecure registries tried over
//! unverified TLS then plain HTTP) and platform choice are netloom's, as dockerd does.

use oci_client::manifest::OciDescriptor;
use oci_client::{Client, Reference, RegistryOperation};

use super::RegistryError;
use super::config::{
    DOCKER_CONFIG, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, Descriptor, DocKind, ImageConfigFile,
    ManifestDoc, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, layer_compression,
};
use super::endpoint::{Ctx, Endpoint, Failure, client_for, endpoints, oci_auth};
use super::layer::Compression;
use super::platform::Platform;
use super::reference::ImageRef;
use super::settings::{Credentials, RegistryConfig};
use super::store::sha256_digest;

pub use super::endpoint::USER_AGENT;
pub use super::fetch::{Pulled, fetch, short};

const ACCEPT: &[&str] = &[
    OCI_INDEX,
    DOCKER_MANIFEST_LIST,
    OCI_MANIFEST,
    DOCKER_MANIFEST,
];
/// Largest config blob accepted.
const MAX_CONFIG: u64 = 8 << 20;

/// Where a layer of a pull stands (Docker's per-layer progress lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerStatus {
    /// `Pulling fs layer`: to be downloaded.
    Waiting,
    /// `Already exists`: in the store.
    Exists,
    /// `Downloading`: bytes so far of the blob's size.
    Downloading {
        /// Bytes received.
        current: u64,
        /// The blob's size.
        total: u64,
    },
    /// `Retrying in N seconds` after a failed attempt.
    Retrying {
        /// Seconds until the next attempt.
        seconds: u64,
    },
    /// `Verifying Checksum`.
    Verifying,
    /// `Download complete`.
    Downloaded,
    /// `Extracting`: compressed bytes unpacked so far.
    Extracting {
        /// Bytes consumed.
        current: u64,
        /// The blob's size.
        total: u64,
    },
    /// `Pull complete`: stacked into the root.
    Complete,
}

/// One progress report: a layer (by its 12-digit short digest) and its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The layer's short digest.
    pub layer: String,
    /// Its status.
    pub status: LayerStatus,
}

/// A layer of a resolved image.
#[derive(Debug, Clone)]
pub struct LayerInfo {
    /// The blob's digest.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Its size.
    pub size: u64,
    /// Its compression.
    pub compression: Compression,
    /// The DiffID the config gives for it.
    pub diff_id: String,
    /// Foreign-layer URLs.
    pub urls: Option<Vec<String>>,
}

/// A layer as stored with an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLayer {
    /// The blob's digest.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Its size.
    pub size: u64,
    /// Its DiffID (sha256 of the uncompressed tar).
    pub diff_id: String,
    /// Bytes of the uncompressed tar.
    pub tar_size: u64,
}

/// A tag resolved to one image: what [`fetch`] needs.
pub struct Resolved {
    client: Client,
    reference: Reference,
    /// The reference pulled, normalised.
    pub image: ImageRef,
    /// The registry that answered (`host[:port]`; a mirror's for Docker Hub).
    pub registry: String,
    /// Digest of what the tag points to (the index for a multi-platform image):
    /// the image's repo digest.
    pub repo_digest: String,
    /// Digest of the image manifest.
    pub manifest_digest: String,
    /// The config blob as stored (its digest is the image ID).
    pub config: Vec<u8>,
    /// The config's digest: the image ID.
    pub id: String,
    /// The config, parsed.
    pub parsed: ImageConfigFile,
    /// The layers, bottom first.
    pub layers: Vec<LayerInfo>,
}

fn descriptor(d: &Descriptor) -> OciDescriptor {
    OciDescriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: i64::try_from(d.size).unwrap_or(i64::MAX),
        urls: d.urls.clone(),
        ..OciDescriptor::default()
    }
}

impl Resolved {
    /// The registry client (authenticated).
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// The image manifest's reference, by digest.
    pub(crate) fn reference(&self) -> &Reference {
        &self.reference
    }
}

fn parse_doc(raw: &[u8], what: &str) -> Result<ManifestDoc, RegistryError> {
    let doc: ManifestDoc = serde_json::from_slice(raw)
        .map_err(|e| RegistryError::Invalid(format!("{what} is not valid JSON: {e}")))?;
    doc.kind()
        .map_err(|e| RegistryError::Unsupported(format!("{what}: {e}")))?;
    Ok(doc)
}

/// Chooses the index entry for `want`: the first entry of that OS and architecture
/// (and variant, when asked), as containerd's matcher orders them.
fn choose<'a>(entries: &'a [Descriptor], want: &Platform) -> Option<&'a Descriptor> {
    entries.iter().find(|e| {
        e.platform.as_ref().is_some_and(|p| {
            want.matches(&p.os, &p.architecture, p.variant.as_deref().unwrap_or(""))
        })
    })
}

/// Resolves `image` (tag or digest) to one image manifest and its config.
/// `platform` is the one asked for (`--platform`); `None` means this machine's, and
/// then a single-platform image of another architecture is taken as Docker takes it.
pub async fn resolve(
    cfg: &RegistryConfig,
    image: &ImageRef,
    platform: Option<&Platform>,
    creds: &Credentials,
) -> Result<Resolved, RegistryError> {
    let eps = endpoints(cfg, image).await;
    let n = eps.len();
    let mut last = None;
    for (i, ep) in eps.into_iter().enumerate() {
        match resolve_at(cfg, &ep, image, platform, creds).await {
            Ok(r) => return Ok(r),
            Err(f) => {
                let more = i + 1 < n;
                if more && (ep.mirror || f.connect) {
                    tracing::warn!(registry = %ep.url(), image = %image, error = %f.err, "registry endpoint failed, trying the next");
                    last = Some(f.err);
                    continue;
                }
                return Err(f.err);
            }
        }
    }
    Err(last
        .unwrap_or_else(|| RegistryError::Unreachable(format!("no registry endpoint for {image}"))))
}

async fn resolve_at(
    cfg: &RegistryConfig,
    ep: &Endpoint,
    image: &ImageRef,
    platform: Option<&Platform>,
    creds: &Credentials,
) -> Result<Resolved, Failure> {
    let ctx = Ctx {
        image,
        ep,
        creds,
        timeout: cfg.timeout,
    };
    let client = client_for(ep, cfg)?;
    let reference = match (&image.digest, &image.tag) {
        (Some(d), _) => Reference::with_digest(ep.host.clone(), image.path.clone(), d.clone()),
        (None, t) => Reference::with_tag(
            ep.host.clone(),
            image.path.clone(),
            t.clone()
                .unwrap_or_else(|| super::reference::DEFAULT_TAG.into()),
        ),
    };
    let auth = oci_auth(creds);
    client
        .auth(&reference, &auth, RegistryOperation::Pull)
        .await
        .map_err(|e| ctx.classify("authenticate", e))?;
    let (raw, repo_digest) = client
        .pull_manifest_raw(&reference, &auth, ACCEPT)
        .await
        .map_err(|e| ctx.classify("get manifest", e))?;
    let what = format!("the manifest of {}", image.familiar());
    let doc = parse_doc(&raw, &what)?;
    let (doc, manifest_digest) = if doc.kind() == Ok(DocKind::Index) {
        let want = platform.cloned().unwrap_or_else(Platform::host);
        let entries = doc.manifests.clone().unwrap_or_default();
        let entry = choose(&entries, &want).ok_or_else(|| RegistryError::NoMatchingManifest {
            platform: want.to_string(),
        })?;
        let by_digest = reference.clone_with_digest(entry.digest.clone());
        let (raw2, d2) = client
            .pull_manifest_raw(&by_digest, &auth, ACCEPT)
            .await
            .map_err(|e| ctx.classify("get platform manifest", e))?;
        if sha256_digest(&raw2) != entry.digest {
            return Err(RegistryError::DigestMismatch {
                what: "manifest",
                expected: entry.digest.clone(),
                actual: sha256_digest(&raw2),
            }
            .into());
        }
        let doc2 = parse_doc(
            &raw2,
            &format!("the {want} manifest of {}", image.familiar()),
        )?;
        if doc2.kind() != Ok(DocKind::Image) {
            return Err(RegistryError::Unsupported(format!(
                "the {want} entry of {} is an index, not an image manifest",
                image.familiar()
            ))
            .into());
        }
        (doc2, d2)
    } else {
        (doc, repo_digest.clone())
    };
    let config_desc = doc.config.clone().ok_or_else(|| {
        RegistryError::Invalid(format!(
            "the manifest of {} has no config",
            image.familiar()
        ))
    })?;
    if !matches!(config_desc.media_type.as_str(), DOCKER_CONFIG | OCI_CONFIG) {
        return Err(RegistryError::Unsupported(format!(
            "{} is not a container image: its config is of media type {:?}",
            image.familiar(),
            config_desc.media_type
        ))
        .into());
    }
    if config_desc.size > MAX_CONFIG {
        return Err(RegistryError::Invalid(format!(
            "the config of {} is {} bytes, more than the {MAX_CONFIG} netloom accepts",
            image.familiar(),
            config_desc.size
        ))
        .into());
    }
    let by_manifest = reference.clone_with_digest(manifest_digest.clone());
    let mut config = Vec::new();
    let got = client
        .pull_blob(&by_manifest, &descriptor(&config_desc), &mut config)
        .await;
    if let Err(e) = got {
        let mut f = ctx.classify("get config", e);
        if let RegistryError::DigestMismatch { what, .. } = &mut f.err {
            *what = "config";
        }
        return Err(f);
    }
    let actual = sha256_digest(&config);
    if actual != config_desc.digest {
        return Err(RegistryError::DigestMismatch {
            what: "config",
            expected: config_desc.digest,
            actual,
        }
        .into());
    }
    let parsed: ImageConfigFile = serde_json::from_slice(&config).map_err(|e| {
        RegistryError::Invalid(format!(
            "the config of {} is not valid: {e}",
            image.familiar()
        ))
    })?;
    if let Some(p) = platform {
        let variant = parsed.variant.clone().unwrap_or_default();
        if !p.matches(&parsed.os, &parsed.architecture, &variant) {
            return Err(RegistryError::NotFound(format!(
                "image with reference {} was found but does not match the specified platform: wanted {p}, actual: {}/{}{}",
                image.familiar(),
                parsed.os,
                parsed.architecture,
                if variant.is_empty() { String::new() } else { format!("/{variant}") }
            ))
            .into());
        }
    }
    let layer_descs = doc.layers.clone().unwrap_or_default();
    if layer_descs.len() != parsed.rootfs.diff_ids.len() {
        return Err(RegistryError::Invalid(format!(
            "layers from manifest don't match image configuration: {} has {} layers and its config {} DiffIDs",
            image.familiar(),
            layer_descs.len(),
            parsed.rootfs.diff_ids.len()
        ))
        .into());
    }
    let mut layers = Vec::new();
    for (d, diff_id) in layer_descs.iter().zip(&parsed.rootfs.diff_ids) {
        let compression = layer_compression(&d.media_type).ok_or_else(|| {
            RegistryError::Unsupported(format!(
                "{} has a layer of media type {:?}, which is not a filesystem layer netloom can unpack (tar, tar+gzip, tar+zstd)",
                image.familiar(),
                d.media_type
            ))
        })?;
        if !super::reference::valid_digest(&d.digest) {
            return Err(RegistryError::Unsupported(format!(
                "{} has a layer with digest {:?}: netloom verifies sha256 digests only",
                image.familiar(),
                d.digest
            ))
            .into());
        }
        layers.push(LayerInfo {
            digest: d.digest.clone(),
            media_type: d.media_type.clone(),
            size: d.size,
            compression,
            diff_id: diff_id.clone(),
            urls: d.urls.clone(),
        });
    }
    tracing::info!(image = %image, registry = %ep.url(), manifest = %manifest_digest, id = %actual, "image resolved");
    Ok(Resolved {
        client,
        reference: by_manifest,
        image: image.clone(),
        registry: ep.host.clone(),
        repo_digest,
        manifest_digest,
        config,
        id: actual,
        parsed,
        layers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::config::DescriptorPlatform;

    fn entry(arch: &str, variant: Option<&str>, d: &str) -> Descriptor {
        Descriptor {
            digest: d.into(),
            platform: Some(DescriptorPlatform {
                os: "linux".into(),
                architecture: arch.into(),
                variant: variant.map(str::to_string),
            }),
            ..Descriptor::default()
        }
    }

    #[test]
    fn chooses_platform_entries() {
        let es = vec![
            entry("amd64", None, "a"),
            entry("arm", Some("v6"), "b"),
            entry("arm", Some("v7"), "c"),
            entry("arm64", Some("v8"), "d"),
            Descriptor {
                digest: "att".into(),
                platform: Some(DescriptorPlatform {
                    os: "unknown".into(),
                    architecture: "unknown".into(),
                    variant: None,
                }),
                ..Descriptor::default()
            },
        ];
        let pick = |p: &str| {
            choose(&es, &Platform::parse(p).unwrap_or_else(|e| panic!("{e}")))
                .map(|e| e.digest.clone())
        };
        assert_eq!(pick("linux/amd64").as_deref(), Some("a"));
        assert_eq!(pick("linux/arm").as_deref(), Some("c"));
        assert_eq!(pick("linux/arm/v6").as_deref(), Some("b"));
        assert_eq!(pick("linux/arm64").as_deref(), Some("d"));
        assert_eq!(pick("linux/s390x"), None);
    }
}
