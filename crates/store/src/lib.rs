//! netloom store: the versioned key/value store that holds netloom's intent.
//!
//! The daemon reaches every backend through one async trait, [`Store`]. The store
//! crate knows nothing of CNM: keys are strings such as `network/<id>`, values are
//! bytes (the daemon writes JSON; see [`Op::put_json`] and [`Versioned::decode_json`]).
//!
//! # Backends
//!
//! | backend | what | for |
//! |---|---|---|
//! | [`EmbeddedStore`] | one redb file (`<data-root>/netloom.db`), durable commits | one host, the default: nothing to install |
//! | [`MemoryStore`] | the same engine on an in-memory redb backend | tests, controller unit tests |
//! | [`EtcdStore`] | an etcd v3 cluster (etcd 3.4 and later) | many hosts (`--cluster-store etcd://HOST:PORT`) |
//!
//! All three pass one conformance suite (`crates/store/tests/conformance`).
//!
//! # The model
//!
//! - **Revisions.** The store has one global revision, a counter that every
//!   [`Store::apply`] that changes something bumps by exactly one; an `apply`
//!   whose checks pass but that changes nothing (deleting absent keys) returns the
//!   current revision and bumps nothing, as in etcd. A new store is at revision 0.
//! - **Versions.** Every key remembers the revision of its last modification, its
//!   *version* ([`Versioned::version`], etcd's `mod_revision`). Compare-and-set is on
//!   that version: [`Expect::Absent`] (create-if-absent), [`Expect::Version`]
//!   (update or delete only if nobody changed the key since it was read) and
//!   [`Expect::Any`] (unconditional). One `apply` is a transaction over many keys:
//!   every expectation is checked against the state before the batch; if one fails,
//!   nothing is written and the error is [`StoreError::Conflict`] naming the key.
//!   [`Op::Check`] states an expectation on a key without writing it (fencing).
//! - **Listings.** [`Store::list`] returns the keys under a prefix together with the
//!   revision of the snapshot it read ([`Listing::revision`]).
//! - **Watches.** [`Store::watch`]`(prefix, after)` delivers, in revision order,
//!   every change under `prefix` with a revision greater than `after`, then live
//!   changes: [`Event::Put`] with the value, [`Event::Delete`] (also for deletes
//!   caused by a lease's expiry). `list` then `watch(prefix, listing.revision)`
//!   misses nothing and repeats nothing. A watch on the etcd backend survives a
//!   dropped connection or a restarted etcd: it resumes from the last revision it
//!   received; if it cannot within its resume window, [`Watch::recv`] returns
//!   [`StoreError::Unavailable`] instead of going silent. Any error ends a watch.
//! - **Compaction.** History is bounded: the local backends keep the last
//!   [`LocalOptions::history`] revisions, etcd keeps what its compaction leaves. A
//!   watch from a revision the history no longer reaches gets
//!   [`StoreError::Compacted`]`{ requested, oldest }` (from `watch` or from the first
//!   `recv`); a watcher that falls so far behind that history moves past it gets the
//!   same error from `recv` — events are never dropped silently. The caller then
//!   lists again and watches from the listing's revision.
//! - **Unavailable.** A remote backend that cannot be reached, or does not answer
//!   within its deadline, gives [`StoreError::Unavailable`] naming the store, never
//!   a hang. When that happens to an `apply` that was already sent, its outcome is
//!   unknown: etcd may still commit it once it answers again. Callers that must
//!   know write with expectations ([`Expect::Absent`], [`Expect::Version`]) and,
//!   after an `Unavailable`, read back or retry the same batch: a retry of a
//!   committed create-if-absent fails with [`StoreError::Conflict`].
//! - **Leases.** [`Store::grant_lease`] returns a lease with a time to live; a put
//!   may attach a key to a lease ([`Op::Put::lease`]); [`Store::keep_alive`] renews
//!   it; when a lease expires or is revoked ([`Store::revoke_lease`]), its keys are
//!   deleted (one revision, with delete events on watches). The local backends track
//!   leases in the process: when a store file is opened again, every key that was
//!   attached to a lease of an earlier process is deleted at once, because the owner
//!   that would have renewed it is gone.
//!
//! # Leader election with a lease
//!
//! A put-if-absent under a lease is all an election needs:
//!
//! 1. `let lease = store.grant_lease(ttl).await?;` and renew it with
//!    `store.keep_alive(lease)` every `ttl / 3` from a task of its own.
//! 2. Campaign: `store.apply(vec![Op::put_leased("leader", my_id, Expect::Absent, lease)])`.
//!    `Ok(rev)`: this node leads; remember `rev`, the version of the `leader` key.
//!    `Err(StoreError::Conflict { .. })`: someone else leads.
//! 3. A follower reads `leader` (who leads) and watches `leader` from the revision of
//!    that read; on its [`Event::Delete`] (resignation or expiry) it campaigns again.
//! 4. The leader stops leading the moment `keep_alive` fails with
//!    [`StoreError::LeaseNotFound`] (the lease expired: another node may lead now),
//!    or when it cannot renew for longer than the TTL. It resigns with
//!    `revoke_lease(lease)`.
//! 5. Fencing: a leader's writes carry `Op::Check { key: "leader", expect:
//!    Expect::Version(rev) }`, so a deposed leader that has not noticed yet cannot
//!    write.
#![warn(missing_docs)]

mod error;
mod etcd;
mod local;
mod watch;

#[cfg(feature = "test-support")]
pub mod testing;

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use error::{EtcdFailure, StoreError, Unreachable};
pub use etcd::{
    DEFAULT_DEADLINE, DEFAULT_PREFIX, DEFAULT_WATCH_RESUME, EtcdConfig, EtcdStore, EtcdTls, Member,
};
pub use local::{DEFAULT_HISTORY, EmbeddedStore, LocalOptions, MemoryStore};
pub use watch::Watch;

/// A revision of the store (see the crate docs): 0 for a new store.
pub type Revision = u64;

/// The identity of a lease granted by [`Store::grant_lease`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseId(pub i64);

impl std::fmt::Display for LeaseId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

/// A value with the revision at which its key was last modified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T = Vec<u8>> {
    /// The value (bytes, or decoded JSON after [`Versioned::decode_json`]).
    pub value: T,
    /// The revision of the last modification of the key (etcd's `mod_revision`).
    pub version: Revision,
}

impl Versioned {
    /// Decodes the value as JSON; `key` names the record in the error.
    pub fn decode_json<T: DeserializeOwned>(&self, key: &str) -> Result<Versioned<T>, StoreError> {
        match serde_json::from_slice(&self.value) {
            Ok(value) => Ok(Versioned {
                value,
                version: self.version,
            }),
            Err(source) => Err(StoreError::Decode {
                key: key.to_string(),
                source,
            }),
        }
    }
}

/// The keys under a prefix, read from one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Listing {
    /// Every key under the prefix with its value and version, sorted by key.
    pub items: Vec<(String, Versioned)>,
    /// The revision of the snapshot: watch from here to see every later change.
    pub revision: Revision,
}

/// A compare-and-set expectation on a key, checked before a batch is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The key must not exist (create-if-absent).
    Absent,
    /// The key must exist with exactly this version (update/delete-if-version).
    Version(Revision),
    /// No condition.
    Any,
}

/// One operation of a batch given to [`Store::apply`].
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
        /// The lease the key is attached to: the key is deleted when the lease
        /// expires or is revoked. `None` detaches the key from any lease.
        lease: Option<LeaseId>,
    },
    /// Remove `key` (removing an absent key with [`Expect::Any`] is allowed and
    /// changes nothing).
    Delete {
        /// The key.
        key: String,
        /// The condition on the key's current state.
        expect: Expect,
    },
    /// Write nothing, but fail the batch unless `expect` holds for `key`.
    Check {
        /// The key.
        key: String,
        /// The condition on the key's current state.
        expect: Expect,
    },
}

impl Op {
    /// A put of `value` under `key`, attached to no lease.
    pub fn put(key: impl Into<String>, value: impl Into<Vec<u8>>, expect: Expect) -> Op {
        Op::Put {
            key: key.into(),
            value: value.into(),
            expect,
            lease: None,
        }
    }

    /// A put of `value` under `key`, attached to `lease`.
    pub fn put_leased(
        key: impl Into<String>,
        value: impl Into<Vec<u8>>,
        expect: Expect,
        lease: LeaseId,
    ) -> Op {
        Op::Put {
            key: key.into(),
            value: value.into(),
            expect,
            lease: Some(lease),
        }
    }

    /// A delete of `key`.
    pub fn delete(key: impl Into<String>, expect: Expect) -> Op {
        Op::Delete {
            key: key.into(),
            expect,
        }
    }

    /// A put of `value` encoded as JSON, attached to no lease.
    pub fn put_json<T: Serialize + ?Sized>(
        key: impl Into<String>,
        value: &T,
        expect: Expect,
    ) -> Result<Op, StoreError> {
        let key = key.into();
        match serde_json::to_vec(value) {
            Ok(value) => Ok(Op::put(key, value, expect)),
            Err(source) => Err(StoreError::Encode { key, source }),
        }
    }

    /// The key the operation is about.
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete { key, .. } | Op::Check { key, .. } => key,
        }
    }

    /// The expectation on the key.
    pub fn expect(&self) -> Expect {
        match self {
            Op::Put { expect, .. } | Op::Delete { expect, .. } | Op::Check { expect, .. } => {
                *expect
            }
        }
    }
}

/// Refuses a batch that names a key twice (etcd refuses such a transaction too).
pub(crate) fn check_unique_keys(ops: &[Op]) -> Result<(), StoreError> {
    let mut seen = std::collections::HashSet::new();
    for op in ops {
        if !seen.insert(op.key()) {
            return Err(StoreError::DuplicateKey {
                key: op.key().to_string(),
            });
        }
    }
    Ok(())
}

/// A change committed to the store, as a watch delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `key` was set to `value` at `revision` (the key's new version).
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: Vec<u8>,
        /// The revision of the change.
        revision: Revision,
    },
    /// `key` was removed at `revision` (by a delete, or by its lease's end).
    Delete {
        /// The key.
        key: String,
        /// The revision of the change.
        revision: Revision,
    },
}

impl Event {
    /// The key the event is about.
    pub fn key(&self) -> &str {
        match self {
            Event::Put { key, .. } | Event::Delete { key, .. } => key,
        }
    }

    /// The revision of the change.
    pub fn revision(&self) -> Revision {
        match self {
            Event::Put { revision, .. } | Event::Delete { revision, .. } => *revision,
        }
    }
}

/// The store interface the daemon uses; every backend implements it (see the crate
/// docs for the model: revisions, versions, watches, compaction, leases).
///
/// Calls that reach a remote backend give up after the backend's deadline with
/// [`StoreError::Unavailable`]; none hangs.
#[async_trait::async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// What the store is, for messages: `embedded store /var/lib/netloom/netloom.db`,
    /// `etcd store http://127.0.0.1:2379`.
    fn describe(&self) -> String;

    /// Reads one key; `None` when absent.
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError>;

    /// Reads every key under `prefix` from one snapshot, sorted by key, with the
    /// snapshot's revision.
    async fn list(&self, prefix: &str) -> Result<Listing, StoreError>;

    /// Checks every expectation of the batch, then writes it atomically; returns the
    /// revision of the write (the current revision when nothing changed). A failed
    /// expectation is [`StoreError::Conflict`] and writes nothing; a key named twice
    /// is [`StoreError::DuplicateKey`]; a put under a lease that does not exist (any
    /// more) is [`StoreError::LeaseNotFound`]. After [`StoreError::Unavailable`] the
    /// batch may or may not have been applied (see the crate docs).
    async fn apply(&self, ops: Vec<Op>) -> Result<Revision, StoreError>;

    /// The current revision.
    async fn revision(&self) -> Result<Revision, StoreError>;

    /// Watches the keys under `prefix`: every change with a revision greater than
    /// `after`, in revision order, then live changes. [`StoreError::Compacted`] when
    /// history no longer reaches back to `after`.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch, StoreError>;

    /// Grants a lease that lives `ttl` unless renewed. A backend may round the TTL up
    /// (etcd: to whole seconds, at least its minimum of about 2 s).
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError>;

    /// Renews `lease` for its full TTL again; returns that TTL.
    /// [`StoreError::LeaseNotFound`] when it has expired or was revoked.
    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError>;

    /// Ends `lease` now and deletes its keys. Revoking a lease that is already gone
    /// is not an error.
    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError>;
}
