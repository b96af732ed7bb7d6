//! The kernel crate's error type.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// Errors from kernel operations, with errno already classified.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KernelError {
    /// The object does not exist (ENOENT, ENODEV, ESRCH).
    #[error("{what} not found")]
    NotFound {
        /// The object.
        what: String,
    },
    /// The object already exists (EEXIST).
    #[error("{what} already exists")]
    AlreadyExists {
        /// The object.
        what: String,
    },
    /// The kernel lacks a feature (EOPNOTSUPP, "Unknown device type").
    #[error("the kernel does not support {what}")]
    NotSupported {
        /// The missing feature.
        what: String,
    },
    /// The object is busy (EBUSY).
    #[error("{what} is busy")]
    Busy {
        /// The object.
        what: String,
    },
    /// A kernel limit was reached (EXFULL: a bridge has no free port number).
    #[error("{what} is full")]
    Full {
        /// The object.
        what: String,
    },
    /// Any other netlink failure.
    #[error("{op} failed")]
    Netlink {
        /// What was being done.
        op: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A file or syscall operation failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// nft refused a batch (its stderr).
    #[error("nft: {0}")]
    Nft(String),
    /// A namespace operation failed.
    #[error("{0}")]
    Namespace(String),
}

impl KernelError {
    /// Classifies an rtnetlink error for operation `op` on object `what`.
    pub(crate) fn from_netlink(op: String, what: &str, err: rtnetlink::Error) -> Self {
        let io_err = match &err {
            rtnetlink::Error::NetlinkError(msg) => msg.to_io(),
            other => io::Error::other(other.to_string()),
        };
        match io_err.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ESRCH) => KernelError::NotFound {
                what: what.to_string(),
            },
            Some(libc::EEXIST) => KernelError::AlreadyExists {
                what: what.to_string(),
            },
            Some(libc::EOPNOTSUPP) => KernelError::NotSupported {
                what: what.to_string(),
            },
            Some(libc::EBUSY) => KernelError::Busy {
                what: what.to_string(),
            },
            // br_add_if: every port number of the bridge is taken (BR_MAX_PORTS):
            // https://elixir.bootlin.com/linux/v6.1/source/net/bridge/br_if.c#L407
            Some(libc::EXFULL) => KernelError::Full {
                what: what.to_string(),
            },
            _ => KernelError::Netlink { op, source: io_err },
        }
    }

    /// True for "does not exist" errors (teardown treats them as success).
    pub fn is_not_found(&self) -> bool {
        matches!(self, KernelError::NotFound { .. })
    }

    /// True for "already exists" errors.
    pub fn is_exists(&self) -> bool {
        matches!(self, KernelError::AlreadyExists { .. })
    }
}
