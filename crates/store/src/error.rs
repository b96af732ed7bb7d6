//! The store's error type.

use std::path::PathBuf;
use std::time::Duration;

use crate::{LeaseId, Revision};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A compare-and-set expectation did not hold; nothing was written.
    #[error("key {key} was changed concurrently (compare-and-set failed), nothing written")]
    Conflict {
        /// The first key whose expectation failed.
        key: String,
    },
    /// The same key appears twice in one batch.
    #[error("key {key} appears more than once in one batch")]
    DuplicateKey {
        /// The repeated key.
        key: String,
    },
    /// The lease does not exist: it expired, was revoked, or was never granted.
    #[error("lease {lease} does not exist (it expired or was revoked)")]
    LeaseNotFound {
        /// The lease.
        lease: LeaseId,
    },
    /// The history no longer reaches back to the revision a watch asked for; list
    /// again and watch from the listing's revision.
    #[error(
        "store history was compacted: changes after revision {requested} are no longer kept (oldest watchable revision is {oldest}), list again"
    )]
    Compacted {
        /// The revision the watch asked to follow (or had reached).
        requested: Revision,
        /// The smallest `after` revision a watch may start from now.
        oldest: Revision,
    },
    /// The backend cannot be reached, or did not answer within the deadline.
    #[error("{store} is unavailable")]
    Unavailable {
        /// The store ([`crate::Store::describe`]).
        store: String,
        /// What a user should do about it.
        hint: String,
        /// Why: no answer in time, or the transport's error.
        #[source]
        cause: Unreachable,
    },
    /// The watch ended earlier with an error (or its store was closed); start a new one.
    #[error("watch of {store} has ended; list again and start a new watch")]
    WatchEnded {
        /// The store.
        store: String,
    },
    /// A cluster-store URL is malformed or names something not supported.
    #[error("invalid cluster store {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong and how to write it.
        reason: String,
    },
    /// etcd refused or failed a request.
    #[error("{store} failed the request")]
    Etcd {
        /// The store.
        store: String,
        /// etcd's error.
        #[source]
        source: Box<etcd_client::Error>,
    },
    /// Another process holds the store file open.
    #[error("store {} is in use by another process", path.display())]
    InUse {
        /// The store file.
        path: PathBuf,
    },
    /// The store file is not a readable redb database.
    #[error("store {} is corrupt or not a netloom store: {detail}", path.display())]
    Corrupt {
        /// The store file.
        path: PathBuf,
        /// What redb reported.
        detail: String,
    },
    /// The store file or its directory could not be opened or created.
    #[error("cannot open store {}", path.display())]
    Open {
        /// The store file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A database operation of a local backend failed.
    #[error("{store} failed")]
    Backend {
        /// The store.
        store: String,
        /// The underlying error.
        #[source]
        source: Box<redb::Error>,
    },
    /// The worker thread of a local backend's write failed.
    #[error("{store}: the write worker failed")]
    Worker {
        /// The store.
        store: String,
        /// The task's error.
        #[source]
        source: tokio::task::JoinError,
    },
    /// A stored record is malformed.
    #[error("value of key {key} is corrupt in the store")]
    CorruptValue {
        /// The key whose record is malformed.
        key: String,
    },
    /// A value could not be encoded as JSON.
    #[error("cannot encode value of key {key} as json")]
    Encode {
        /// The key being written.
        key: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A stored value is not the JSON expected.
    #[error("cannot decode value of key {key} from json")]
    Decode {
        /// The key being read.
        key: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

impl StoreError {
    /// True when the backend could not be reached (retry later; HTTP 503).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

/// Why a backend is [`StoreError::Unavailable`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Unreachable {
    /// No answer within the deadline.
    #[error("no answer within {}", seconds(*.0))]
    Timeout(Duration),
    /// The connection failed or the backend said it cannot serve now.
    #[error("{0}")]
    Transport(EtcdFailure),
    /// A watch could not be resumed within its resume window.
    #[error("watch could not be resumed within {}", seconds(*.window))]
    Resume {
        /// The resume window.
        window: Duration,
        /// The last error seen while trying.
        #[source]
        last: Box<StoreError>,
    },
}

/// `3s`, `1.5s`, `250ms`.
pub(crate) fn seconds(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{}ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// An etcd client error, shown by its root cause (`Connection refused (os error
/// 111)`, `etcdserver: no leader`) rather than by tonic's debug dump; the whole
/// error is kept in [`EtcdFailure::error`].
#[derive(Debug)]
pub struct EtcdFailure(pub Box<etcd_client::Error>);

impl EtcdFailure {
    /// The etcd client's error.
    pub fn error(&self) -> &etcd_client::Error {
        &self.0
    }
}

impl std::fmt::Display for EtcdFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (what, mut cause): (String, Option<&(dyn std::error::Error + 'static)>) =
            match self.0.as_ref() {
                etcd_client::Error::GRpcStatus(s) => {
                    (s.message().to_string(), std::error::Error::source(s))
                }
                etcd_client::Error::TransportError(e) => {
                    ("transport error".to_string(), std::error::Error::source(e))
                }
                other => (other.to_string(), None),
            };
        // the deepest cause says what happened (refused, reset, timed out)
        let mut deepest = None;
        while let Some(c) = cause {
            deepest = Some(c);
            cause = c.source();
        }
        match deepest {
            Some(d) if !what.is_empty() => write!(f, "{what}: {d}"),
            Some(d) => write!(f, "{d}"),
            None => write!(f, "{what}"),
        }
    }
}

impl std::error::Error for EtcdFailure {}
