//! The image configuration (OCI `application/vnd.oci.image.config.v1+json`, the same
//! document as Docker's `application/vnd.docker.container.image.v1+json`), and the
//! manifest / index documents, as far as netloom reads them.
//!
//! The config blob is stored byte for byte (its sha256 is the image ID); these types
//! only read it, and build one for `docker import`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An image configuration document.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageConfigFile {
    /// When the image was built (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Who built it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// CPU architecture (`amd64`).
    #[serde(default)]
    pub architecture: String,
    /// OS (`linux`).
    #[serde(default)]
    pub os: String,
    /// Architecture variant (`v8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// What a container of this image runs by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<RunConfig>,
    /// The layers' uncompressed digests, bottom first.
    #[serde(default)]
    pub rootfs: RootFs,
    /// How each layer was made, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    /// Docker's build fields (`docker_version`, `comment`, ...), kept as given.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// The `config` object: defaults for containers of the image.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    /// `User`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `ExposedPorts`: `"80/tcp": {}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    /// `Env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// `Entrypoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// `Cmd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// `Volumes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, Value>>,
    /// `WorkingDir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// `Labels`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// `StopSignal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// `Healthcheck` (Docker's extension), kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Value>,
    /// Anything else (`OnBuild`, `Shell`, `ArgsEscaped`, ...), kept as given.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// `rootfs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type", default = "layers")]
    pub kind: String,
    /// `sha256:` digests of the uncompressed layer tars, bottom first.
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

fn layers() -> String {
    "layers".into()
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs {
            kind: layers(),
            diff_ids: Vec::new(),
        }
    }
}

/// One `history` entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct History {
    /// When (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The build step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// True when the step made no layer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// A content descriptor (in manifests and indexes).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type.
    #[serde(default)]
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Alternative download locations (foreign layers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    /// Platform (index entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<DescriptorPlatform>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// The platform of an index entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DescriptorPlatform {
    /// CPU architecture.
    #[serde(default)]
    pub architecture: String,
    /// OS.
    #[serde(default)]
    pub os: String,
    /// Variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An image manifest (Docker schema 2 or OCI), or an index / manifest list: the
/// registry's answer for a tag, told apart by `mediaType` or by its fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestDoc {
    /// Always 2.
    #[serde(default)]
    pub schema_version: i64,
    /// The document's media type (optional in OCI documents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Image manifest: the config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Descriptor>,
    /// Image manifest: the layers, bottom first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<Descriptor>>,
    /// Index: the entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifests: Option<Vec<Descriptor>>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Docker schema 2 image manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// OCI uncompressed layer.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// Docker schema 1 (refused, as Docker 28 does).
pub const DOCKER_SCHEMA1: &[&str] = &[
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// What a manifest document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocKind {
    /// An image manifest.
    Image,
    /// An index or manifest list.
    Index,
}

impl ManifestDoc {
    /// Tells an image manifest from an index, refusing anything else.
    pub fn kind(&self) -> Result<DocKind, String> {
        match self.media_type.as_deref() {
            Some(DOCKER_MANIFEST | OCI_MANIFEST) => Ok(DocKind::Image),
            Some(DOCKER_MANIFEST_LIST | OCI_INDEX) => Ok(DocKind::Index),
            Some(m) if DOCKER_SCHEMA1.contains(&m) => Err(
                "it is a Docker Image manifest version 2, schema 1, which Docker removed and netloom does not support: push the image again with a current tool".to_string(),
            ),
            Some(m) if !m.is_empty() => Err(format!("unsupported manifest media type {m}")),
            _ if self.manifests.is_some() => Ok(DocKind::Index),
            _ if self.config.is_some() && self.layers.is_some() => Ok(DocKind::Image),
            _ if self.schema_version == 1 => Err(
                "it is a Docker Image manifest version 2, schema 1, which netloom does not support".to_string(),
            ),
            _ => Err("the document is neither an image manifest nor an index".to_string()),
        }
    }
}

/// Media types of filesystem layers netloom unpacks, with their compression.
pub fn layer_compression(media_type: &str) -> Option<crate::registry::Compression> {
    use crate::registry::Compression::*;
    Some(match media_type {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar"
        | "application/vnd.docker.image.rootfs.diff.tar" => None,
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Gzip,
        "application/vnd.oci.image.layer.v1.tar+zstd"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => Zstd,
        _ => return Option::None,
    })
}

impl ImageConfigFile {
    /// The run config, or an empty one.
    pub fn run(&self) -> RunConfig {
        self.config.clone().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_docker_config_and_keeps_unknown_fields() {
        let raw = r#"{"architecture":"amd64","os":"linux","docker_version":"20.10",
            "config":{"Env":["A=1"],"Cmd":["sh"],"Entrypoint":null,"WorkingDir":"/w",
            "ExposedPorts":{"80/tcp":{}},"User":"1000","Labels":{"a":"b"},
            "Healthcheck":{"Test":["CMD","true"]},"OnBuild":null},
            "rootfs":{"type":"layers","diff_ids":["sha256:aa"]},
            "history":[{"created_by":"x"},{"created_by":"y","empty_layer":true}]}"#;
        let c: ImageConfigFile = serde_json::from_str(raw).unwrap_or_else(|e| panic!("{e}"));
        let r = c.run();
        assert_eq!(r.env.as_deref(), Some(&["A=1".to_string()][..]));
        assert!(r.entrypoint.is_none());
        assert_eq!(r.working_dir.as_deref(), Some("/w"));
        assert!(r.healthcheck.is_some());
        assert!(r.other.contains_key("OnBuild"));
        assert!(c.other.contains_key("docker_version"));
        assert_eq!(c.rootfs.diff_ids.len(), 1);
        assert!(c.history[1].empty_layer);
    }

    #[test]
    fn tells_manifests_from_indexes() {
        let m: ManifestDoc = serde_json::from_str(
            r#"{"schemaVersion":2,"config":{"digest":"sha256:a","size":1},"layers":[]}"#,
        )
        .unwrap_or_default();
        assert_eq!(m.kind(), Ok(DocKind::Image));
        let i: ManifestDoc =
            serde_json::from_str(r#"{"schemaVersion":2,"manifests":[]}"#).unwrap_or_default();
        assert_eq!(i.kind(), Ok(DocKind::Index));
        let s1: ManifestDoc = serde_json::from_str(
            r#"{"schemaVersion":1,"mediaType":"application/vnd.docker.distribution.manifest.v1+prettyjws"}"#,
        )
        .unwrap_or_default();
        assert!(s1.kind().is_err_and(|e| e.contains("schema 1")));
    }
}
