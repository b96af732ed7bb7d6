//! netloom store: a versioned key/value store with compare-and-set and watch.
//!
//! Keys are strings such as `network/<id>`, values are bytes (the daemon
//! stores JSON; see [`KvStoreExt`] and [`Op::put_json`]). Every committed
//! batch bumps a global revision; every key remembers the revision at which
//! it was last modified (its version), as etcd does, so that an etcd backend
//! can implement the same [`KvStore`] trait.
//!
//! The local backend, [`EmbeddedStore`], is a single redb file
//! (`<data-root>/netloom.db`). Each [`KvStore::apply`] is one durable redb
//! write transaction: after a crash, a batch is either wholly there or not at
//! all.
#![warn(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;

/// Key → 8-byte big-endian version followed by the value.
const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
/// Store-wide counters.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The META key holding the global revision.
const REVISION: &str = "revision";
/// Events buffered per watcher before it lags.
const WATCH_CAPACITY: usize = 4096;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
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
    #[error("cannot open store {}: {source}", path.display())]
    Open {
        /// The store file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A database operation failed.
    #[error("store {} failed: {source}", path.display())]
    Backend {
        /// The store file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: Box<redb::Error>,
    },
    /// A stored record is malformed.
    #[error("value of key {key} is corrupt in the store")]
    CorruptValue {
        /// The key whose record is malformed.
        key: String,
    },
    /// A value could not be encoded as JSON.
    #[error("cannot encode value of key {key} as json: {source}")]
    Encode {
        /// The key being written.
        key: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A stored value is not the JSON expected.
    #[error("cannot decode value of key {key} from json: {source}")]
    Decode {
        /// The key being read.
        key: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

/// A value with the revision at which its key was last modified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T = Vec<u8>> {
    /// The value (bytes, or decoded JSON for the `*_json` helpers).
    pub value: T,
    /// The revision of the last modification of the key.
    pub version: u64,
}

/// A compare-and-set expectation on a key, checked before a batch is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The key must not exist.
    Absent,
    /// The key must exist with exactly this version.
    Version(u64),
    /// No condition.
    Any,
}

/// One operation of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: Vec<u8>,
        /// The condition on the key's current state.
        expect: Expect,
    },
    /// Remove `key` (removing an absent key is allowed, and changes nothing).
    Delete {
        /// The key.
        key: String,
        /// The condition on the key's current state.
        expect: Expect,
    },
}

impl Op {
    /// A put of `value` encoded as JSON.
    pub fn put_json<T: Serialize + ?Sized>(
        key: impl Into<String>,
        value: &T,
        expect: Expect,
    ) -> Result<Op, StoreError> {
        let key = key.into();
        match serde_json::to_vec(value) {
            Ok(value) => Ok(Op::Put { key, value, expect }),
            Err(source) => Err(StoreError::Encode { key, source }),
        }
    }

    /// The key the operation is about.
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete { key, .. } => key,
        }
    }

    fn expect(&self) -> Expect {
        match self {
            Op::Put { expect, .. } | Op::Delete { expect, .. } => *expect,
        }
    }
}

/// A change committed to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `key` was set to `value` at revision `version`.
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: Vec<u8>,
        /// The revision of the batch.
        version: u64,
    },
    /// `key` was removed at revision `version`.
    Delete {
        /// The key.
        key: String,
        /// The revision of the batch.
        version: u64,
    },
}

impl Event {
    /// The key the event is about.
    pub fn key(&self) -> &str {
        match self {
            Event::Put { key, .. } | Event::Delete { key, .. } => key,
        }
    }

    /// The revision of the batch that made the change.
    pub fn version(&self) -> u64 {
        match self {
            Event::Put { version, .. } | Event::Delete { version, .. } => *version,
        }
    }
}

/// A subscription to the changes of keys under a prefix.
///
/// Wraps a [`broadcast::Receiver`] and skips events of other keys. A watcher
/// that falls more than a few thousand events behind gets
/// [`broadcast::error::RecvError::Lagged`] and should re-read the keys it
/// cares about.
#[derive(Debug)]
pub struct Watch {
    prefix: String,
    rx: broadcast::Receiver<Event>,
}

impl Watch {
    /// A watch over `rx` keeping only keys starting with `prefix` (for other
    /// [`KvStore`] backends built on a broadcast channel).
    pub fn new(prefix: impl Into<String>, rx: broadcast::Receiver<Event>) -> Watch {
        Watch {
            prefix: prefix.into(),
            rx,
        }
    }

    /// The prefix watched.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Waits for the next event under the prefix.
    pub async fn recv(&mut self) -> Result<Event, broadcast::error::RecvError> {
        loop {
            let event = self.rx.recv().await?;
            if event.key().starts_with(&self.prefix) {
                return Ok(event);
            }
        }
    }

    /// The next event under the prefix, if one is already there.
    pub fn try_recv(&mut self) -> Result<Event, broadcast::error::TryRecvError> {
        loop {
            let event = self.rx.try_recv()?;
            if event.key().starts_with(&self.prefix) {
                return Ok(event);
            }
        }
    }

    /// Blocks the thread until the next event under the prefix (not for use
    /// inside an async runtime).
    pub fn blocking_recv(&mut self) -> Result<Event, broadcast::error::RecvError> {
        loop {
            let event = self.rx.blocking_recv()?;
            if event.key().starts_with(&self.prefix) {
                return Ok(event);
            }
        }
    }
}

/// A versioned key/value store with compare-and-set batches and watches.
pub trait KvStore: Send + Sync {
    /// The value of `key` with its version, `None` when absent.
    fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError>;

    /// Every key starting with `prefix`, sorted by key.
    fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, StoreError>;

    /// All-or-nothing batch: every [`Expect`] is checked first against the
    /// state before the batch; any mismatch → [`StoreError::Conflict`] and
    /// nothing is written. A key may appear only once per batch. Returns the
    /// new revision (the current one for an empty batch, which writes
    /// nothing).
    fn apply(&self, ops: Vec<Op>) -> Result<u64, StoreError>;

    /// Events for keys under `prefix` committed after this call, in commit
    /// order.
    fn watch(&self, prefix: &str) -> Watch;

    /// The revision of the last committed batch (0 for a new store).
    fn revision(&self) -> Result<u64, StoreError>;
}

/// The asynchronous store interface the daemon uses. Every backend implements it;
/// the controller never holds a lock of its own across one of these calls longer
/// than the call itself.
///
/// This trait grows with the control-plane work (watch from a revision, leases);
/// see `ARCHITECTURE.md`.
#[async_trait::async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// What the store is, for error messages and `/info` (`embedded /path`, `etcd ...`).
    fn describe(&self) -> String;

    /// Reads one key.
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError>;

    /// Reads every key under `prefix`, in key order.
    async fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, StoreError>;

    /// Checks every expectation of the batch, then writes it atomically; returns the
    /// new revision. A failed expectation is [`StoreError::Conflict`] and writes nothing.
    async fn apply(&self, ops: Vec<Op>) -> Result<u64, StoreError>;

    /// The current revision.
    async fn revision(&self) -> Result<u64, StoreError>;
}

#[async_trait::async_trait]
impl Store for EmbeddedStore {
    fn describe(&self) -> String {
        format!("embedded store {}", self.path.display())
    }

    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        KvStore::get(self, key)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, StoreError> {
        KvStore::list(self, prefix)
    }

    async fn apply(&self, ops: Vec<Op>) -> Result<u64, StoreError> {
        KvStore::apply(self, ops)
    }

    async fn revision(&self) -> Result<u64, StoreError> {
        KvStore::revision(self)
    }
}

/// JSON helpers over any [`KvStore`].
pub trait KvStoreExt: KvStore {
    /// Writes `value` as JSON under `key` if `expect` holds; returns the new
    /// revision.
    fn put_json<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        expect: Expect,
    ) -> Result<u64, StoreError> {
        self.apply(vec![Op::put_json(key, value, expect)?])
    }

    /// Reads and decodes the JSON value of `key`.
    fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<Versioned<T>>, StoreError> {
        self.get(key)?.map(|v| decode(key, v)).transpose()
    }

    /// Reads and decodes every JSON value under `prefix`, sorted by key.
    fn list_json<T: DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, Versioned<T>)>, StoreError> {
        self.list(prefix)?
            .into_iter()
            .map(|(key, v)| {
                let v = decode(&key, v)?;
                Ok((key, v))
            })
            .collect()
    }
}

impl<S: KvStore + ?Sized> KvStoreExt for S {}

fn decode<T: DeserializeOwned>(key: &str, v: Versioned) -> Result<Versioned<T>, StoreError> {
    match serde_json::from_slice(&v.value) {
        Ok(value) => Ok(Versioned {
            value,
            version: v.version,
        }),
        Err(source) => Err(StoreError::Decode {
            key: key.to_string(),
            source,
        }),
    }
}

/// The local store: one redb file, durable commits, in-process watches.
pub struct EmbeddedStore {
    db: Database,
    path: PathBuf,
    events: broadcast::Sender<Event>,
    /// Held from the start of a write transaction until its events are sent,
    /// so events go out in commit order.
    writer: Mutex<()>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens the store file at `path` (conventionally
    /// `<data-root>/netloom.db`), creating it and its parent directories if
    /// needed.
    ///
    /// Fails with [`StoreError::InUse`] when another process (or another
    /// handle in this one) has it open, and [`StoreError::Corrupt`] when the
    /// file is not a redb database.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let path = path.to_path_buf();
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?;
        }
        let db = open_checked(&path)?;
        let store = EmbeddedStore {
            db,
            path,
            events: broadcast::channel(WATCH_CAPACITY).0,
            writer: Mutex::new(()),
        };
        store.init()?;
        Ok(store)
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the tables of a new store.
    fn init(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.backend(e))?;
        {
            txn.open_table(KV).map_err(|e| self.backend(e))?;
            let mut meta = txn.open_table(META).map_err(|e| self.backend(e))?;
            let revision = meta
                .get(REVISION)
                .map_err(|e| self.backend(e))?
                .map(|v| v.value());
            if revision.is_none() {
                meta.insert(REVISION, 0).map_err(|e| self.backend(e))?;
            }
        }
        txn.commit().map_err(|e| self.backend(e))
    }

    fn backend(&self, e: impl Into<redb::Error>) -> StoreError {
        let source = e.into();
        match source {
            redb::Error::Corrupted(detail) => StoreError::Corrupt {
                path: self.path.clone(),
                detail,
            },
            source => StoreError::Backend {
                path: self.path.clone(),
                source: Box::new(source),
            },
        }
    }
}

/// Opens (or creates) the redb file and verifies it.
///
/// Every page's checksum is verified now, so a damaged file is reported here,
/// clearly, instead of failing on some later read; the store is small, so
/// this is cheap. redb 4 can panic (an internal `unreachable!`) on some
/// damaged files instead of returning an error; such a panic is caught and
/// reported as [`StoreError::Corrupt`] too.
fn open_checked(path: &Path) -> Result<Database, StoreError> {
    let opened = std::panic::catch_unwind(|| {
        let mut db = Database::create(path)?;
        let intact = db.check_integrity()?;
        Ok::<_, redb::DatabaseError>((db, intact))
    });
    match opened {
        Ok(Ok((db, intact))) => {
            if !intact {
                tracing::warn!(
                    path = %path.display(),
                    "store was damaged and has been repaired to its last good commit"
                );
            }
            Ok(db)
        }
        Ok(Err(e)) => Err(open_error(path, e)),
        Err(panic) => {
            let detail = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unreadable database".to_string());
            Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                detail: format!("redb failed on the file: {detail}"),
            })
        }
    }
}

fn open_error(path: &Path, e: redb::DatabaseError) -> StoreError {
    let path = path.to_path_buf();
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen | redb::DatabaseError::LockProtocolMismatch => {
            StoreError::InUse { path }
        }
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(detail)) => {
            StoreError::Corrupt { path, detail }
        }
        redb::DatabaseError::Storage(redb::StorageError::Io(source))
            if matches!(
                source.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            StoreError::Corrupt {
                path,
                detail: source.to_string(),
            }
        }
        redb::DatabaseError::Storage(redb::StorageError::Io(source)) => {
            StoreError::Open { path, source }
        }
        redb::DatabaseError::UpgradeRequired(version) => StoreError::Corrupt {
            path,
            detail: format!("file format {version} needs an upgrade"),
        },
        other => StoreError::Backend {
            path,
            source: Box::new(other.into()),
        },
    }
}

/// Splits a stored record into version and value.
fn unpack(key: &str, record: &[u8]) -> Result<Versioned, StoreError> {
    match record.split_first_chunk::<8>() {
        Some((version, value)) => Ok(Versioned {
            value: value.to_vec(),
            version: u64::from_be_bytes(*version),
        }),
        None => Err(StoreError::CorruptValue {
            key: key.to_string(),
        }),
    }
}

fn pack(version: u64, value: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(8 + value.len());
    record.extend_from_slice(&version.to_be_bytes());
    record.extend_from_slice(value);
    record
}

impl KvStore for EmbeddedStore {
    fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.backend(e))?;
        let table = txn.open_table(KV).map_err(|e| self.backend(e))?;
        let record = table.get(key).map_err(|e| self.backend(e))?;
        record.map(|r| unpack(key, r.value())).transpose()
    }

    fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.backend(e))?;
        let table = txn.open_table(KV).map_err(|e| self.backend(e))?;
        let mut out = Vec::new();
        for item in table.range(prefix..).map_err(|e| self.backend(e))? {
            let (key, record) = item.map_err(|e| self.backend(e))?;
            let key = key.value();
            if !key.starts_with(prefix) {
                break;
            }
            out.push((key.to_string(), unpack(key, record.value())?));
        }
        Ok(out)
    }

    fn apply(&self, ops: Vec<Op>) -> Result<u64, StoreError> {
        if ops.is_empty() {
            return KvStore::revision(self);
        }
        let mut seen = std::collections::HashSet::new();
        for op in &ops {
            if !seen.insert(op.key()) {
                return Err(StoreError::DuplicateKey {
                    key: op.key().to_string(),
                });
            }
        }
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let txn = self.db.begin_write().map_err(|e| self.backend(e))?;
        let mut events = Vec::with_capacity(ops.len());
        let revision = {
            let mut meta = txn.open_table(META).map_err(|e| self.backend(e))?;
            let mut kv = txn.open_table(KV).map_err(|e| self.backend(e))?;
            // check every expectation before writing anything
            for op in &ops {
                let current = match kv.get(op.key()).map_err(|e| self.backend(e))? {
                    Some(record) => Some(unpack(op.key(), record.value())?.version),
                    None => None,
                };
                let ok = match (op.expect(), current) {
                    (Expect::Any, _) => true,
                    (Expect::Absent, current) => current.is_none(),
                    (Expect::Version(want), Some(have)) => want == have,
                    (Expect::Version(_), None) => false,
                };
                if !ok {
                    // dropping the transaction aborts it
                    return Err(StoreError::Conflict {
                        key: op.key().to_string(),
                    });
                }
            }
            let previous = meta
                .get(REVISION)
                .map_err(|e| self.backend(e))?
                .map_or(0, |v| v.value());
            let revision = previous.saturating_add(1);
            for op in ops {
                match op {
                    Op::Put { key, value, .. } => {
                        kv.insert(key.as_str(), pack(revision, &value).as_slice())
                            .map_err(|e| self.backend(e))?;
                        events.push(Event::Put {
                            key,
                            value,
                            version: revision,
                        });
                    }
                    Op::Delete { key, .. } => {
                        let removed = kv.remove(key.as_str()).map_err(|e| self.backend(e))?;
                        if removed.is_some() {
                            events.push(Event::Delete {
                                key,
                                version: revision,
                            });
                        }
                    }
                }
            }
            meta.insert(REVISION, revision)
                .map_err(|e| self.backend(e))?;
            revision
        };
        // default durability: the commit is on disk when this returns
        txn.commit().map_err(|e| self.backend(e))?;
        for event in events {
            // no receivers is fine
            let _ = self.events.send(event);
        }
        Ok(revision)
    }

    fn watch(&self, prefix: &str) -> Watch {
        Watch::new(prefix, self.events.subscribe())
    }

    fn revision(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.backend(e))?;
        let meta = txn.open_table(META).map_err(|e| self.backend(e))?;
        let revision = meta.get(REVISION).map_err(|e| self.backend(e))?;
        Ok(revision.map_or(0, |v| v.value()))
    }
}

#[cfg(test)]
mod tests;
