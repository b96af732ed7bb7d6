//! The plugin's error type and its mapping onto CNI error codes.

use netloom_kernel::KernelError;
use thiserror::Error;

/// Everything that can make a CNI command fail. [`CniError::code`] gives the CNI error
/// code written in the error object on stdout.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CniError {
    /// Code 1: the config's `cniVersion` is not one this plugin speaks.
    #[error("incompatible CNI versions")]
    IncompatibleVersion {
        /// The version the config asked for.
        requested: String,
    },
    /// Code 2: a field or value this plugin does not implement.
    #[error("unsupported field {field}")]
    Unsupported {
        /// The field (and value) refused.
        field: String,
        /// Why, and what to do instead.
        details: String,
    },
    /// Code 3: the container is unknown.
    #[error("{0}")]
    UnknownContainer(String),
    /// Code 4: a `CNI_*` environment variable is missing or malformed.
    #[error("{0}")]
    InvalidEnv(String),
    /// Code 5: a file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path involved.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Code 6: stdin is not valid JSON.
    #[error("error decoding network config: {0}")]
    Decode(String),
    /// Code 7: the network config is well-formed JSON but invalid.
    #[error("{0}")]
    InvalidConfig(String),
    /// Code 11: transient; the runtime should retry.
    #[error("{0}")]
    TryLater(String),
    /// Code 50 (STATUS): the plugin cannot serve ADD right now.
    #[error("{0}")]
    NotReady(String),
    /// Code 100: a netlink or namespace operation failed.
    #[error("{msg}")]
    Kernel {
        /// What was being done.
        msg: String,
        /// The kernel error.
        #[source]
        source: KernelError,
    },
    /// Code 101: no free address is left in a range set.
    #[error("{0}")]
    Exhausted(String),
    /// Code 102: a requested address cannot be given.
    #[error("{0}")]
    AddressUnavailable(String),
    /// Code 103: the container already has this interface or an allocation.
    #[error("{0}")]
    AlreadyExists(String),
    /// Code 104: CHECK found the container's networking not as configured.
    #[error("{0}")]
    CheckFailed(String),
}

impl CniError {
    /// The CNI error code.
    pub fn code(&self) -> u32 {
        match self {
            CniError::IncompatibleVersion { .. } => 1,
            CniError::Unsupported { .. } => 2,
            CniError::UnknownContainer(_) => 3,
            CniError::InvalidEnv(_) => 4,
            CniError::Io { .. } => 5,
            CniError::Decode(_) => 6,
            CniError::InvalidConfig(_) => 7,
            CniError::TryLater(_) => 11,
            CniError::NotReady(_) => 50,
            CniError::Kernel { .. } => 100,
            CniError::Exhausted(_) => 101,
            CniError::AddressUnavailable(_) => 102,
            CniError::AlreadyExists(_) => 103,
            CniError::CheckFailed(_) => 104,
        }
    }

    /// The long explanation (`details` in the error object), if any.
    pub fn details(&self) -> Option<String> {
        match self {
            CniError::IncompatibleVersion { requested } => Some(format!(
                "config is {requested:?}, plugin supports {:?}",
                crate::SUPPORTED_VERSIONS
            )),
            CniError::Unsupported { details, .. } => Some(details.clone()),
            CniError::Kernel { source, .. } => {
                let mut s = source.to_string();
                let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(source);
                while let Some(e) = cur {
                    s.push_str(": ");
                    s.push_str(&e.to_string());
                    cur = e.source();
                }
                Some(s)
            }
            _ => None,
        }
    }

    /// Wraps a kernel error with what was being done.
    pub fn kernel(msg: impl Into<String>) -> impl FnOnce(KernelError) -> CniError {
        let msg = msg.into();
        move |source| CniError::Kernel { msg, source }
    }

    /// Wraps an I/O error with the operation and path.
    pub fn io(op: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> CniError {
        let path = path.display().to_string();
        move |source| CniError::Io { op, path, source }
    }
}
