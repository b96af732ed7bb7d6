//! The controller's error type: a kind (mapped to an HTTP status in one place, the API
//! layer) and a message for the user that names the object and, where useful, the fix.

use netloom_model::{DriverError, ErrorKind};
use thiserror::Error;

/// An error from the controller.
#[derive(Debug, Error)]
#[error("{message}")]
pub struct CtlError {
    /// What kind of failure (→ HTTP status).
    pub kind: ErrorKind,
    /// The message shown to the user.
    pub message: String,
}

impl CtlError {
    /// A not-found error.
    pub fn not_found(m: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::NotFound,
            message: m.into(),
        }
    }
    /// An invalid-parameter error.
    pub fn invalid(m: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::InvalidParameter,
            message: m.into(),
        }
    }
    /// A conflict error.
    pub fn conflict(m: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Conflict,
            message: m.into(),
        }
    }
    /// A forbidden error.
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Forbidden,
            message: m.into(),
        }
    }
    /// An unavailable error.
    pub fn unavailable(m: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Unavailable,
            message: m.into(),
        }
    }
    /// A not-implemented error.
    pub fn not_implemented(m: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::NotImplemented,
            message: m.into(),
        }
    }
    /// An internal error.
    pub fn internal(m: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Internal,
            message: m.into(),
        }
    }
}

/// Formats an error with its whole source chain (`a: b: c`).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let cs = c.to_string();
        if !s.ends_with(&cs) {
            s.push_str(": ");
            s.push_str(&cs);
        }
        cur = c.source();
    }
    s
}

impl From<DriverError> for CtlError {
    fn from(e: DriverError) -> Self {
        CtlError {
            kind: e.kind(),
            message: chain(&e),
        }
    }
}

impl From<netloom_store::StoreError> for CtlError {
    fn from(e: netloom_store::StoreError) -> Self {
        use netloom_store::StoreError;
        match &e {
            // 503, naming the store and what to do (`... is unavailable: no answer
            // within 3s; check that etcd at http://... runs and can be reached, then retry`)
            StoreError::Unavailable { hint, .. } => {
                CtlError::unavailable(format!("{}; {hint}", chain(&e)))
            }
            StoreError::Conflict { .. } => CtlError::conflict(chain(&e)),
            _ => CtlError::internal(format!("store: {}", chain(&e))),
        }
    }
}

impl From<netloom_kernel::KernelError> for CtlError {
    fn from(e: netloom_kernel::KernelError) -> Self {
        CtlError::internal(chain(&e))
    }
}

impl From<netloom_runtime::RuntimeError> for CtlError {
    fn from(e: netloom_runtime::RuntimeError) -> Self {
        CtlError::internal(chain(&e))
    }
}

/// Result alias for the controller.
pub type CtlResult<T> = Result<T, CtlError>;
