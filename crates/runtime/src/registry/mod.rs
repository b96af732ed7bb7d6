//! Images from OCI distribution registries (`docker pull`), Docker's image archives
//! and OCI image layouts (`docker load` / `docker save`), and the store they go to.
//!
//! * [`ImageRef`] reads references as Docker does (`busybox` is
//!   `docker.io/library/busybox:latest`).
//! * [`pull::resolve`] and [`pull::fetch`] pull an image: token or basic auth,
//!   manifest lists / OCI indexes resolved to a [`Platform`], Docker schema 2 and OCI
//!   manifests, gzip / zstd / plain layers stacked with whiteouts, every digest
//!   verified, Docker Hub mirrors and insecure registries ([`RegistryConfig`]).
//! * [`archive`] reads and writes `docker save` archives.
//! * [`ImageStore`] keeps blobs and image roots; work happens in a [`WorkDir`] that
//!   vanishes unless committed, so a failed pull or load stores nothing.

pub mod archive;
mod config;
mod endpoint;
mod error;
mod fetch;
mod layer;
pub mod login;
mod platform;
pub mod pull;
mod reference;
mod settings;
mod store;

pub use config::{
    Descriptor, DescriptorPlatform, History, ImageConfigFile, ManifestDoc, RootFs, RunConfig,
};
pub use error::RegistryError;
pub use layer::Compression;
pub use platform::Platform;
pub use pull::{LayerStatus, Progress, Pulled, Resolved, StoredLayer};
pub use reference::{DEFAULT_TAG, ImageRef, valid_digest, valid_tag};
pub use settings::{Credentials, Insecure, Mirror, RegistryConfig};
pub use store::{ImageStore, WorkDir, sha256_digest};
