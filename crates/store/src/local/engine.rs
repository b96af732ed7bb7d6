//! The engine of the local backends: a redb database (a file, or memory) with the
//! keys, a bounded history of changes per revision, and in-process leases.
//!
//! Every write (an `apply`, a lease's end) is one redb write transaction, durable
//! when it returns on a file backend, made while holding `writer`, so revisions are
//! handed out in commit order and watchers are told of each commit after it is on
//! disk.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction};
use tokio::sync::watch;

use super::codec::{decode_events, encode_events, pack, unpack, version_of};
use super::reaper::Clock;
use crate::{Event, Expect, LeaseId, Listing, Op, Revision, StoreError, Versioned};

/// Key → 8-byte big-endian version followed by the value.
const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
/// Store-wide counters.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Revision → the events of that revision (see `codec::encode_events`).
const HISTORY: TableDefinition<u64, &[u8]> = TableDefinition::new("history");
/// Key → the lease it is attached to (only keys put with a lease).
const LEASE_KEYS: TableDefinition<&str, i64> = TableDefinition::new("lease_keys");
/// META: the revision of the last change.
const REVISION: &str = "revision";
/// META: history holds every revision after this one.
const OLDEST: &str = "oldest";
/// META: how many times the store was opened (the high half of lease ids).
const LEASE_EPOCH: &str = "lease_epoch";

/// Revisions read from history per step of a watch.
const WATCH_STEP: u64 = 256;

/// A lease held in this process.
struct Lease {
    ttl: Duration,
    deadline: Instant,
    keys: BTreeSet<String>,
}

/// State guarded by the writer lock.
struct Writer {
    leases: HashMap<LeaseId, Lease>,
    next_lease: i64,
}

pub(crate) struct Engine {
    db: Database,
    /// `embedded store /path` or `memory store`.
    name: String,
    /// The file, for corruption errors.
    path: Option<PathBuf>,
    /// Revisions of history kept.
    history: u64,
    writer: Mutex<Writer>,
    /// The last committed revision, for watchers to wait on.
    committed: watch::Sender<Revision>,
    clock: Arc<Clock>,
    reaper: OnceLock<()>,
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.clock.shut_down();
    }
}

/// The tables of one write transaction.
struct Tables<'t> {
    kv: Table<'t, &'static str, &'static [u8]>,
    meta: Table<'t, &'static str, u64>,
    history: Table<'t, u64, &'static [u8]>,
    lease_keys: Table<'t, &'static str, i64>,
}

/// How a committed batch moved keys between leases: (key, old lease, new lease).
type LeaseMoves = Vec<(String, Option<LeaseId>, Option<LeaseId>)>;

impl Engine {
    /// Sets up the tables of `db` and ends the leases of an earlier process.
    pub(crate) fn new(
        db: Database,
        name: String,
        path: Option<PathBuf>,
        history: u64,
    ) -> Result<Arc<Engine>, StoreError> {
        let mut engine = Engine {
            db,
            name,
            path,
            history: history.max(1),
            writer: Mutex::new(Writer {
                leases: HashMap::new(),
                next_lease: 0,
            }),
            committed: watch::channel(0).0,
            clock: Arc::new(Clock::default()),
            reaper: OnceLock::new(),
        };
        let (revision, epoch) = engine.init()?;
        engine.committed.send_replace(revision);
        let epoch = i64::try_from(epoch & 0x7fff_ffff).unwrap_or(1);
        engine
            .writer
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .next_lease = epoch << 32;
        Ok(Arc::new(engine))
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Creates missing tables, bumps the lease epoch and deletes every key of a lease
    /// of an earlier process (one revision). Returns the revision and the epoch.
    fn init(&self) -> Result<(Revision, u64), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.backend(e))?;
        let (revision, epoch) = {
            let mut t = self.tables(&txn)?;
            let revision = self.meta(&t.meta, REVISION)?;
            let epoch = match self.meta(&t.meta, LEASE_EPOCH)? {
                0 => 1,
                e => e.saturating_add(1),
            };
            t.meta
                .insert(LEASE_EPOCH, epoch)
                .map_err(|e| self.backend(e))?;
            if t.meta.get(OLDEST).map_err(|e| self.backend(e))?.is_none() {
                // a store written before history existed: history starts now
                t.meta
                    .insert(OLDEST, revision)
                    .map_err(|e| self.backend(e))?;
            }
            if t.meta.get(REVISION).map_err(|e| self.backend(e))?.is_none() {
                t.meta.insert(REVISION, 0).map_err(|e| self.backend(e))?;
            }
            let mut orphans = Vec::new();
            for item in t.lease_keys.iter().map_err(|e| self.backend(e))? {
                let (key, _) = item.map_err(|e| self.backend(e))?;
                orphans.push(key.value().to_string());
            }
            let mut events = Vec::new();
            let next = revision.saturating_add(1);
            for key in orphans {
                t.lease_keys
                    .remove(key.as_str())
                    .map_err(|e| self.backend(e))?;
                if t.kv
                    .remove(key.as_str())
                    .map_err(|e| self.backend(e))?
                    .is_some()
                {
                    events.push(Event::Delete {
                        key,
                        revision: next,
                    });
                }
            }
            let revision = if events.is_empty() {
                revision
            } else {
                tracing::info!(
                    store = %self.name,
                    keys = events.len(),
                    "deleted the keys of leases of an earlier process"
                );
                self.record(&mut t, next, &events)?;
                next
            };
            (revision, epoch)
        };
        txn.commit().map_err(|e| self.backend(e))?;
        Ok((revision, epoch))
    }

    fn tables<'t>(&self, txn: &'t WriteTransaction) -> Result<Tables<'t>, StoreError> {
        Ok(Tables {
            kv: txn.open_table(KV).map_err(|e| self.backend(e))?,
            meta: txn.open_table(META).map_err(|e| self.backend(e))?,
            history: txn.open_table(HISTORY).map_err(|e| self.backend(e))?,
            lease_keys: txn.open_table(LEASE_KEYS).map_err(|e| self.backend(e))?,
        })
    }

    fn meta(
        &self,
        meta: &impl ReadableTable<&'static str, u64>,
        key: &str,
    ) -> Result<u64, StoreError> {
        Ok(meta
            .get(key)
            .map_err(|e| self.backend(e))?
            .map_or(0, |v| v.value()))
    }

    /// Writes `events` as revision `revision`: history entry, trimming, counter.
    fn record(
        &self,
        t: &mut Tables<'_>,
        revision: Revision,
        events: &[Event],
    ) -> Result<(), StoreError> {
        t.history
            .insert(revision, encode_events(events).as_slice())
            .map_err(|e| self.backend(e))?;
        let oldest = self.meta(&t.meta, OLDEST)?;
        let keep_from = revision.saturating_sub(self.history);
        if keep_from > oldest {
            t.history
                .retain_in(..=keep_from, |_, _| false)
                .map_err(|e| self.backend(e))?;
            t.meta
                .insert(OLDEST, keep_from)
                .map_err(|e| self.backend(e))?;
        }
        t.meta
            .insert(REVISION, revision)
            .map_err(|e| self.backend(e))?;
        Ok(())
    }

    pub(crate) fn backend(&self, e: impl Into<redb::Error>) -> StoreError {
        match (e.into(), &self.path) {
            (redb::Error::Corrupted(detail), Some(path)) => StoreError::Corrupt {
                path: path.clone(),
                detail,
            },
            (source, _) => StoreError::Backend {
                store: self.name.clone(),
                source: Box::new(source),
            },
        }
    }

    fn lock(&self) -> MutexGuard<'_, Writer> {
        // A panic while holding the lock leaves no half-applied state behind (the
        // redb transaction aborts), so a poisoned lock is safe to keep using.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.backend(e))?;
        let table = txn.open_table(KV).map_err(|e| self.backend(e))?;
        let record = table.get(key).map_err(|e| self.backend(e))?;
        record.map(|r| unpack(key, r.value())).transpose()
    }

    pub(crate) fn list(&self, prefix: &str) -> Result<Listing, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.backend(e))?;
        let table = txn.open_table(KV).map_err(|e| self.backend(e))?;
        let meta = txn.open_table(META).map_err(|e| self.backend(e))?;
        let revision = self.meta(&meta, REVISION)?;
        let mut items = Vec::new();
        for item in table.range(prefix..).map_err(|e| self.backend(e))? {
            let (key, record) = item.map_err(|e| self.backend(e))?;
            let key = key.value();
            if !key.starts_with(prefix) {
                break;
            }
            items.push((key.to_string(), unpack(key, record.value())?));
        }
        Ok(Listing { items, revision })
    }

    pub(crate) fn revision(&self) -> Result<Revision, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.backend(e))?;
        let meta = txn.open_table(META).map_err(|e| self.backend(e))?;
        self.meta(&meta, REVISION)
    }

    pub(crate) fn apply(&self, ops: Vec<Op>) -> Result<Revision, StoreError> {
        crate::check_unique_keys(&ops)?;
        let mut writer = self.lock();
        let txn = self.db.begin_write().map_err(|e| self.backend(e))?;
        let mut moves: LeaseMoves = Vec::new();
        let revision = {
            let mut t = self.tables(&txn)?;
            // every expectation is checked before anything is written
            for op in &ops {
                let current = match t.kv.get(op.key()).map_err(|e| self.backend(e))? {
                    Some(record) => Some(version_of(op.key(), record.value())?),
                    None => None,
                };
                let holds = match (op.expect(), current) {
                    (Expect::Any, _) => true,
                    (Expect::Absent, current) => current.is_none(),
                    (Expect::Version(want), Some(have)) => want == have,
                    (Expect::Version(_), None) => false,
                };
                if !holds {
                    // dropping the transaction aborts it
                    return Err(StoreError::Conflict {
                        key: op.key().to_string(),
                    });
                }
            }
            let now = Instant::now();
            for op in &ops {
                if let Op::Put {
                    lease: Some(lease), ..
                } = op
                    && writer.leases.get(lease).is_none_or(|l| l.deadline <= now)
                {
                    return Err(StoreError::LeaseNotFound { lease: *lease });
                }
            }
            let current = self.meta(&t.meta, REVISION)?;
            let revision = current.saturating_add(1);
            let mut events = Vec::with_capacity(ops.len());
            for op in ops {
                match op {
                    Op::Put {
                        key, value, lease, ..
                    } => {
                        t.kv.insert(key.as_str(), pack(revision, &value).as_slice())
                            .map_err(|e| self.backend(e))?;
                        let old = self.move_lease(&mut t, &key, lease)?;
                        if old != lease {
                            moves.push((key.clone(), old, lease));
                        }
                        events.push(Event::Put {
                            key,
                            value,
                            revision,
                        });
                    }
                    Op::Delete { key, .. } => {
                        if t.kv
                            .remove(key.as_str())
                            .map_err(|e| self.backend(e))?
                            .is_some()
                        {
                            if let Some(old) = self.move_lease(&mut t, &key, None)? {
                                moves.push((key.clone(), Some(old), None));
                            }
                            events.push(Event::Delete { key, revision });
                        }
                    }
                    Op::Check { .. } => {}
                }
            }
            if events.is_empty() {
                // nothing changed: no revision, the transaction aborts
                return Ok(current);
            }
            self.record(&mut t, revision, &events)?;
            revision
        };
        // default durability: the commit is on disk when this returns
        txn.commit().map_err(|e| self.backend(e))?;
        for (key, old, new) in moves {
            if let Some(old) = old.and_then(|id| writer.leases.get_mut(&id)) {
                old.keys.remove(&key);
            }
            if let Some(new) = new.and_then(|id| writer.leases.get_mut(&id)) {
                new.keys.insert(key);
            }
        }
        self.committed.send_replace(revision);
        Ok(revision)
    }

    /// Records that `key` now belongs to `lease` (or none); returns its old lease.
    fn move_lease(
        &self,
        t: &mut Tables<'_>,
        key: &str,
        lease: Option<LeaseId>,
    ) -> Result<Option<LeaseId>, StoreError> {
        let old = match lease {
            Some(id) => t.lease_keys.insert(key, id.0),
            None => t.lease_keys.remove(key),
        }
        .map_err(|e| self.backend(e))?
        .map(|v| LeaseId(v.value()));
        Ok(old)
    }

    pub(crate) fn grant_lease(self: &Arc<Self>, ttl: Duration) -> LeaseId {
        let ttl = ttl.max(Duration::from_millis(1));
        let deadline = Instant::now() + ttl;
        let id = {
            let mut writer = self.lock();
            writer.next_lease = writer.next_lease.wrapping_add(1);
            let id = LeaseId(writer.next_lease);
            writer.leases.insert(
                id,
                Lease {
                    ttl,
                    deadline,
                    keys: BTreeSet::new(),
                },
            );
            id
        };
        self.reaper.get_or_init(|| {
            super::reaper::spawn(Arc::downgrade(self), self.clock.clone(), &self.name);
        });
        self.clock.wake_at(deadline);
        id
    }

    pub(crate) fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError> {
        let mut writer = self.lock();
        let now = Instant::now();
        match writer.leases.get_mut(&lease) {
            Some(l) if l.deadline > now => {
                l.deadline = now + l.ttl;
                Ok(l.ttl)
            }
            _ => Err(StoreError::LeaseNotFound { lease }),
        }
    }

    pub(crate) fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        let mut writer = self.lock();
        if let Some(l) = writer.leases.remove(&lease) {
            self.end_lease(lease, &l.keys)?;
        }
        Ok(())
    }

    /// Ends every lease whose deadline has passed; returns the next deadline.
    pub(crate) fn expire_due(&self) -> Option<Instant> {
        let mut writer = self.lock();
        let now = Instant::now();
        let due: Vec<LeaseId> = writer
            .leases
            .iter()
            .filter(|(_, l)| l.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(l) = writer.leases.remove(&id)
                && let Err(e) = self.end_lease(id, &l.keys)
            {
                // the keys stay recorded under the lease and go at the next open
                tracing::warn!(store = %self.name, lease = %id, error = %e, "cannot delete the keys of an expired lease");
            }
        }
        writer.leases.values().map(|l| l.deadline).min()
    }

    /// Deletes the keys still attached to `lease` in one revision. Called with the
    /// writer lock held.
    fn end_lease(&self, lease: LeaseId, keys: &BTreeSet<String>) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(|e| self.backend(e))?;
        let revision = {
            let mut t = self.tables(&txn)?;
            let revision = self.meta(&t.meta, REVISION)?.saturating_add(1);
            let mut events = Vec::new();
            for key in keys {
                let attached = t
                    .lease_keys
                    .get(key.as_str())
                    .map_err(|e| self.backend(e))?;
                if attached.map(|v| v.value()) != Some(lease.0) {
                    continue;
                }
                t.lease_keys
                    .remove(key.as_str())
                    .map_err(|e| self.backend(e))?;
                if t.kv
                    .remove(key.as_str())
                    .map_err(|e| self.backend(e))?
                    .is_some()
                {
                    events.push(Event::Delete {
                        key: key.clone(),
                        revision,
                    });
                }
            }
            if events.is_empty() {
                return Ok(());
            }
            self.record(&mut t, revision, &events)?;
            revision
        };
        txn.commit().map_err(|e| self.backend(e))?;
        self.committed.send_replace(revision);
        Ok(())
    }

    /// The smallest `after` a watch may start from now.
    pub(crate) fn oldest(&self) -> Result<Revision, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.backend(e))?;
        let meta = txn.open_table(META).map_err(|e| self.backend(e))?;
        self.meta(&meta, OLDEST)
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Revision> {
        self.committed.subscribe()
    }

    /// Reads the events under `prefix` of the revisions after `*cursor`, up to
    /// `upto` (at most `WATCH_STEP` revisions), into `out`, and advances `*cursor`.
    pub(crate) fn read_history(
        &self,
        prefix: &str,
        cursor: &mut Revision,
        upto: Revision,
        out: &mut impl Extend<Event>,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.backend(e))?;
        let meta = txn.open_table(META).map_err(|e| self.backend(e))?;
        let oldest = self.meta(&meta, OLDEST)?;
        if *cursor < oldest {
            return Err(StoreError::Compacted {
                requested: *cursor,
                oldest,
            });
        }
        let history = txn.open_table(HISTORY).map_err(|e| self.backend(e))?;
        let end = upto.min(cursor.saturating_add(WATCH_STEP));
        let from = cursor.saturating_add(1);
        for item in history.range(from..=end).map_err(|e| self.backend(e))? {
            let (revision, data) = item.map_err(|e| self.backend(e))?;
            decode_events(revision.value(), data.value(), prefix, out)?;
        }
        *cursor = end;
        Ok(())
    }
}

/// A watcher's view of the engine: held weakly, so a watch never keeps a store
/// (and its file lock) open.
pub(crate) type EngineRef = Weak<Engine>;
