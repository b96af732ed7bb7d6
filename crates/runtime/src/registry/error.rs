//! The registry module's error type.

use std::path::PathBuf;

use crate::RuntimeError;

/// What can go wrong pulling, loading or saving an image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The reference does not follow Docker's grammar.
    #[error("invalid reference format: {reason}: {reference}")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The `--platform` value cannot be read.
    #[error("invalid platform {platform:?}: {reason}")]
    InvalidPlatform {
        /// The value given.
        platform: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A setting (daemon.json, credentials) is unusable; the text names it and the fix.
    #[error("{0}")]
    InvalidSetting(String),
    /// The registry has no such repository, tag or digest (Docker's wording).
    #[error("{0}")]
    NotFound(String),
    /// The registry refused access (Docker's wording).
    #[error("{0}")]
    Denied(String),
    /// The registry could not be reached, did not answer in time, or broke off.
    #[error("{0}")]
    Unreachable(String),
    /// Content did not match its digest: nothing of it is stored.
    #[error(
        "{what} {expected} failed verification: the registry sent content whose digest is {actual}"
    )]
    DigestMismatch {
        /// `manifest`, `config`, `layer`.
        what: &'static str,
        /// The digest asked for.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// The index has no entry for the platform.
    #[error("no matching manifest for {platform} in the manifest list entries")]
    NoMatchingManifest {
        /// The platform wanted.
        platform: String,
    },
    /// The image exists but is of a kind netloom cannot use (the text says which).
    #[error("{0}")]
    Unsupported(String),
    /// A registry answer or an archive is malformed (the text says how).
    #[error("{0}")]
    Invalid(String),
    /// A local file operation failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A layer could not be unpacked into the image's root.
    #[error("unpack layer {digest}")]
    Unpack {
        /// The layer's digest.
        digest: String,
        /// Why.
        #[source]
        source: RuntimeError,
    },
}

impl RegistryError {
    /// Shorthand for [`RegistryError::Io`].
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| RegistryError::Io { op, path, source }
    }
}
