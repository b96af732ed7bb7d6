//! The local backends: [`EmbeddedStore`] (a redb file) and [`MemoryStore`] (the
//! same engine on redb's in-memory backend), so both have exactly one
//! implementation of transactions, history, watches and leases.

mod codec;
mod engine;
mod reaper;
mod watch;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use redb::Database;

use self::engine::Engine;
use crate::{LeaseId, Listing, Op, Revision, Store, StoreError, Versioned, Watch};

/// Default number of revisions of history a local store keeps.
pub const DEFAULT_HISTORY: u64 = 4096;

/// Options of the local backends.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LocalOptions {
    /// Revisions of history kept for watches ([`DEFAULT_HISTORY`]): a watch from an
    /// older revision gets [`StoreError::Compacted`].
    pub history: u64,
}

impl Default for LocalOptions {
    fn default() -> Self {
        LocalOptions {
            history: DEFAULT_HISTORY,
        }
    }
}

impl LocalOptions {
    /// Keeps `revisions` revisions of history (at least 1).
    pub fn with_history(mut self, revisions: u64) -> Self {
        self.history = revisions.max(1);
        self
    }
}

/// The local store: one redb file, one durable transaction per [`Store::apply`]
/// (after a crash, a batch is either wholly there or not at all), history and
/// watches in the file, leases in the process (see the crate docs).
pub struct EmbeddedStore {
    engine: Arc<Engine>,
    path: PathBuf,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens the store file at `path` (conventionally `<data-root>/netloom.db`),
    /// creating it and its parent directories if needed, with default options.
    ///
    /// Fails with [`StoreError::InUse`] when another process (or another handle in
    /// this one) has it open, and [`StoreError::Corrupt`] when the file is not a
    /// redb database. Keys attached to leases of an earlier process are deleted.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, LocalOptions::default())
    }

    /// [`EmbeddedStore::open`] with options.
    pub fn open_with(path: &Path, options: LocalOptions) -> Result<Self, StoreError> {
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
        let name = format!("embedded store {}", path.display());
        let engine = Engine::new(db, name, Some(path.clone()), options.history)?;
        Ok(EmbeddedStore { engine, path })
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// An in-memory store with the semantics of [`EmbeddedStore`], for tests; nothing
/// survives the value.
pub struct MemoryStore {
    engine: Arc<Engine>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// A new, empty store with default options.
    pub fn new() -> Self {
        Self::with_options(LocalOptions::default())
    }

    /// A new, empty store with `options` (a short history to test compaction).
    pub fn with_options(options: LocalOptions) -> Self {
        let name = "memory store".to_string();
        let opened = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| StoreError::Backend {
                store: name.clone(),
                source: Box::new(e.into()),
            })
            .and_then(|db| Engine::new(db, name, None, options.history));
        match opened {
            Ok(engine) => MemoryStore { engine },
            // Only an allocation failure can fail on an empty in-memory database.
            Err(e) => panic!("cannot create an in-memory store: {e}"),
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs a write of the engine. On a file, off the async worker (it fsyncs); in
/// memory, inline.
async fn write<T: Send + 'static>(
    engine: &Arc<Engine>,
    offload: bool,
    f: impl FnOnce(&Engine) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    if !offload {
        return f(engine);
    }
    let e = engine.clone();
    // spawn_blocking works on every runtime flavour (block_in_place would panic on
    // a current-thread runtime). A cancelled caller does not cancel the commit.
    match tokio::task::spawn_blocking(move || f(&e)).await {
        Ok(r) => r,
        Err(source) => Err(StoreError::Worker {
            store: engine.name().to_string(),
            source,
        }),
    }
}

async fn watch_engine(
    engine: &Arc<Engine>,
    prefix: &str,
    after: Revision,
) -> Result<Watch, StoreError> {
    let oldest = engine.oldest()?;
    if after < oldest {
        return Err(StoreError::Compacted {
            requested: after,
            oldest,
        });
    }
    let source = watch::LocalWatch {
        engine: Arc::downgrade(engine),
        store: engine.name().to_string(),
        prefix: prefix.to_string(),
        cursor: after,
        buf: VecDeque::new(),
        committed: engine.subscribe(),
    };
    Ok(Watch::new(
        prefix,
        engine.name().to_string(),
        Box::new(source),
    ))
}

macro_rules! local_store {
    ($t:ty, $offload:expr) => {
        #[async_trait::async_trait]
        impl Store for $t {
            fn describe(&self) -> String {
                self.engine.name().to_string()
            }

            async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
                self.engine.get(key)
            }

            async fn list(&self, prefix: &str) -> Result<Listing, StoreError> {
                self.engine.list(prefix)
            }

            async fn apply(&self, ops: Vec<Op>) -> Result<Revision, StoreError> {
                write(&self.engine, $offload, move |e| e.apply(ops)).await
            }

            async fn revision(&self) -> Result<Revision, StoreError> {
                self.engine.revision()
            }

            async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch, StoreError> {
                watch_engine(&self.engine, prefix, after).await
            }

            async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
                Ok(self.engine.grant_lease(ttl))
            }

            async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError> {
                self.engine.keep_alive(lease)
            }

            async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
                write(&self.engine, $offload, move |e| e.revoke_lease(lease)).await
            }
        }
    };
}

local_store!(EmbeddedStore, true);
local_store!(MemoryStore, false);

/// Opens (or creates) the redb file and verifies it.
///
/// Every page's checksum is verified now, so a damaged file is reported here,
/// clearly, instead of failing on some later read; the store is small, so this is
/// cheap. redb 4 can panic (an internal `unreachable!`) on some damaged files
/// instead of returning an error; such a panic is caught and reported as
/// [`StoreError::Corrupt`] too.
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
            store: format!("embedded store {}", path.display()),
            source: Box::new(other.into()),
        },
    }
}
