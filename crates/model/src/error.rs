//! Error kinds shared by every layer, and the model's own errors.

use thiserror::Error;

/// What kind of failure an error is; the API maps each to one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The object does not exist (404).
    NotFound,
    /// The request is malformed or names impossible values (400).
    InvalidParameter,
    /// The request conflicts with existing state (409).
    Conflict,
    /// The operation is not allowed on this object (403).
    Forbidden,
    /// A resource is exhausted or temporarily unavailable (503).
    Unavailable,
    /// The operation is not implemented (501).
    NotImplemented,
    /// Anything else (500).
    Internal,
}

/// Validation errors of model values.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModelError {
    /// A container or network name breaks Docker's naming rule.
    #[error("invalid name {0:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    InvalidName(String),
    /// A port specification could not be parsed.
    #[error("invalid port specification {spec:?}: {reason}")]
    InvalidPort {
        /// The text given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Errors a network driver returns.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DriverError {
    /// A driver option is unknown or has a bad value.
    #[error("{0}")]
    InvalidOption(String),
    /// The driver or the kernel cannot do this (e.g. a missing kernel feature).
    #[error("{0}")]
    NotSupported(String),
    /// The request conflicts with an existing kernel object.
    #[error("{0}")]
    Conflict(String),
    /// A remote driver plugin answered with an error, or did not answer in time
    /// (the message is the plugin's text, prefixed `remote: ` as Docker does).
    #[error("{0}")]
    Plugin(String),
    /// A kernel operation failed.
    #[error("{op}")]
    Kernel {
        /// What the driver was doing, naming the object.
        op: String,
        /// The kernel error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl DriverError {
    /// The error kind for the API.
    pub fn kind(&self) -> ErrorKind {
        match self {
            DriverError::InvalidOption(_) => ErrorKind::InvalidParameter,
            DriverError::NotSupported(_) => ErrorKind::InvalidParameter,
            DriverError::Conflict(_) => ErrorKind::Conflict,
            DriverError::Plugin(_) => ErrorKind::Internal,
            DriverError::Kernel { .. } => ErrorKind::Internal,
        }
    }

    /// Wraps a kernel error with what the driver was doing.
    pub fn kernel(
        op: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        DriverError::Kernel {
            op: op.into(),
            source: Box::new(source),
        }
    }
}
