//! The conformance suite every [`Store`] backend must pass: one generic test per
//! property, run by `tests/{memory,embedded,etcd}.rs` through
//! [`conformance_tests!`] (and, for backends that can be stopped for real,
//! [`outage_tests!`]).
#![allow(dead_code)]

pub mod kv;
pub mod lease;
pub mod local;
pub mod outage;
pub mod watch;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use netloom_store::{Event, Expect, Op, Revision, Store, StoreError, Watch};

/// A backend under test.
#[async_trait::async_trait]
pub trait Fixture: Send + Sync {
    /// The store under test (empty at the start of a test).
    fn store(&self) -> Arc<dyn Store>;
    /// An independent client of the same data (etcd: its own connection; local
    /// backends: the same handle, as a second process cannot open them).
    async fn client(&self) -> Arc<dyn Store>;
    /// Makes the history stop reaching back to `upto`: afterwards a watch needs
    /// `after >= upto`.
    async fn compact(&self, upto: Revision);
    /// The history length when it is bounded by a count of revisions (local
    /// backends), so that a live watcher can fall behind it.
    fn bounded_history(&self) -> Option<u64>;
    /// Kills the backend like a crash (only for [`outage_tests!`]).
    fn kill(&self) {}
    /// Starts a killed backend again on the same data.
    fn restart(&self) {}
    /// Freezes the backend: connections stay open, nothing answers.
    fn pause(&self) {}
    /// Thaws a paused backend.
    fn resume(&self) {}
    /// The request deadline and the watch resume window of the store.
    fn deadlines(&self) -> (Duration, Duration) {
        (Duration::from_secs(3), Duration::from_secs(10))
    }
}

/// Generates one `#[tokio::test]` per common conformance test; `$fixture` is an
/// `async fn() -> Option<impl Fixture>` (`None`: skipped, it printed why).
#[macro_export]
macro_rules! conformance_tests {
    ($fixture:path) => {
        $crate::conformance_tests!(@each $fixture;
            kv::crud_and_revisions,
            kv::cas_conflict_writes_nothing,
            kv::create_if_absent_race_has_one_winner,
            kv::update_and_delete_if_version_race_has_one_winner,
            kv::counter_under_contention,
            kv::multi_key_transfers_keep_the_sum,
            kv::listing_pages_and_prefixes,
            watch::watch_from_revision_replays_history,
            watch::list_then_watch_under_concurrent_writes,
            watch::resume_from_last_delivered_revision,
            watch::transaction_events_share_a_revision,
            watch::slow_consumer_loses_nothing,
            watch::compaction_is_reported,
            lease::lease_expiry_deletes_keys,
            lease::keep_alive_keeps_keys,
            lease::revoke_deletes_keys,
            lease::election_recipe
        );
    };
    (@each $fixture:path; $($module:ident :: $name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(f) = $fixture().await else { return };
                conformance::$module::$name(&f).await;
            }
        )*
    };
}

/// Generates the tests that stop the backend for real.
#[macro_export]
macro_rules! outage_tests {
    ($fixture:path) => {
        $crate::conformance_tests!(@each $fixture;
            outage::watch_survives_a_backend_restart,
            outage::watch_reports_when_it_cannot_resume,
            outage::unavailable_within_the_deadline_then_working_again
        );
    };
}

/// Waits at most 15 s for the next event.
pub async fn next(w: &mut Watch) -> Event {
    match tokio::time::timeout(Duration::from_secs(15), w.recv()).await {
        Ok(Ok(e)) => e,
        Ok(Err(e)) => panic!("watch of {} failed: {e:?}", w.prefix()),
        Err(_) => panic!("no event on {} within 15s", w.prefix()),
    }
}

/// True if no event arrives within `ms` milliseconds.
pub async fn quiet(w: &mut Watch, ms: u64) -> bool {
    match tokio::time::timeout(Duration::from_millis(ms), w.recv()).await {
        Err(_) => true,
        Ok(Ok(e)) => {
            eprintln!("unexpected event {e:?}");
            false
        }
        Ok(Err(e)) => panic!("watch failed: {e:?}"),
    }
}

/// A put with no lease.
pub fn put(key: &str, value: &str, expect: Expect) -> Op {
    Op::put(key, value, expect)
}

/// A delete.
pub fn del(key: &str, expect: Expect) -> Op {
    Op::delete(key, expect)
}

/// The value of `key` as a string.
pub async fn value(store: &dyn Store, key: &str) -> Option<String> {
    store
        .get(key)
        .await
        .unwrap()
        .map(|v| String::from_utf8(v.value).unwrap())
}

/// key → (value, version) of everything under `prefix`.
pub async fn state(store: &dyn Store, prefix: &str) -> BTreeMap<String, (Vec<u8>, Revision)> {
    store
        .list(prefix)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|(k, v)| (k, (v.value, v.version)))
        .collect()
}

/// Applies `ops`, retrying while the backend is unavailable (for writers that
/// keep going through an outage). `Ok(None)`: an earlier attempt whose answer was
/// lost had committed it (create-if-absent now conflicts).
pub async fn apply_through_outage(store: &dyn Store, ops: Vec<Op>) -> Option<Revision> {
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match store.apply(ops.clone()).await {
            Ok(r) => return Some(r),
            Err(StoreError::Conflict { .. }) => return None,
            Err(e) if e.is_unavailable() && tokio::time::Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("apply failed: {e:?}"),
        }
    }
}

/// Expects `watch(prefix, after)` to report compaction, from `watch` or its first
/// `recv`; returns `(requested, oldest)`.
pub async fn expect_compacted(store: &dyn Store, prefix: &str, after: Revision) -> (u64, u64) {
    let err = match store.watch(prefix, after).await {
        Err(e) => e,
        Ok(mut w) => match tokio::time::timeout(Duration::from_secs(15), w.recv()).await {
            Ok(Err(e)) => e,
            Ok(Ok(e)) => panic!("watch from compacted revision {after} delivered {e:?}"),
            Err(_) => panic!("watch from compacted revision {after} went silent"),
        },
    };
    match err {
        StoreError::Compacted { requested, oldest } => (requested, oldest),
        other => panic!("expected compacted, got {other:?}"),
    }
}
