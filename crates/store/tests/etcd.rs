//! The conformance suite on [`EtcdStore`], against a real etcd that each test
//! starts on free loopback ports with a throwaway data directory (and kills and
//! restarts for the outage tests). Without an `etcd` binary the tests print
//! `SKIP: etcd not installed`, or fail when `NETLOOM_REQUIRE_PRIV=1`.

mod conformance;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use netloom_store::testing::{Etcd, etcd_or_skip};
use netloom_store::{EtcdConfig, EtcdStore, Expect, Op, Revision, Store, StoreError};

const DEADLINE: Duration = Duration::from_secs(2);
const RESUME: Duration = Duration::from_secs(5);

struct EtcdFixture {
    etcd: Mutex<Etcd>,
    cfg: EtcdConfig,
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Option<EtcdFixture> {
    let dir = tempfile::tempdir().unwrap();
    let etcd = etcd_or_skip(dir.path())?;
    let cfg = EtcdConfig::new([etcd.endpoint()])
        .with_deadline(DEADLINE)
        .with_watch_resume(RESUME);
    let store = EtcdStore::connect(cfg.clone()).await.unwrap();
    Some(EtcdFixture {
        etcd: Mutex::new(etcd),
        cfg,
        store: Arc::new(store),
        _dir: dir,
    })
}

impl EtcdFixture {
    fn etcd(&self) -> std::sync::MutexGuard<'_, Etcd> {
        self.etcd.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait::async_trait]
impl conformance::Fixture for EtcdFixture {
    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    async fn client(&self) -> Arc<dyn Store> {
        Arc::new(EtcdStore::connect(self.cfg.clone()).await.unwrap())
    }

    async fn compact(&self, upto: Revision) {
        let endpoint = self.etcd().endpoint();
        let mut c = etcd_client::Client::connect([endpoint], None)
            .await
            .unwrap();
        c.compact(i64::try_from(upto).unwrap(), None).await.unwrap();
    }

    fn bounded_history(&self) -> Option<u64> {
        None
    }

    fn kill(&self) {
        self.etcd().kill();
    }

    fn restart(&self) {
        self.etcd().restart();
    }

    fn pause(&self) {
        self.etcd().pause();
    }

    fn resume(&self) {
        self.etcd().resume();
    }

    fn deadlines(&self) -> (Duration, Duration) {
        (DEADLINE, RESUME)
    }
}

conformance_tests!(fixture);
outage_tests!(fixture);

/// Two stores with different key prefixes on one etcd do not see each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_keep_stores_apart() {
    let Some(f) = fixture().await else { return };
    let other = EtcdStore::connect(f.cfg.clone().with_prefix("other/place"))
        .await
        .unwrap();
    assert!(
        other.describe().ends_with("(keys under /other/place/)"),
        "{}",
        other.describe()
    );
    f.store
        .apply(vec![Op::put("network/a", "A", Expect::Absent)])
        .await
        .unwrap();
    other
        .apply(vec![Op::put("network/a", "other", Expect::Absent)])
        .await
        .unwrap();
    let mine = f.store.list("").await.unwrap();
    assert_eq!(mine.items.len(), 1);
    assert_eq!(mine.items[0].0, "network/a");
    assert_eq!(mine.items[0].1.value, b"A");
    assert_eq!(
        other.get("network/a").await.unwrap().unwrap().value,
        b"other"
    );
    // and the raw etcd keys are where the docs say
    let endpoint = f.etcd().endpoint();
    let mut c = etcd_client::Client::connect([endpoint], None)
        .await
        .unwrap();
    let raw = c
        .get(
            "/",
            Some(
                etcd_client::GetOptions::new()
                    .with_prefix()
                    .with_keys_only(),
            ),
        )
        .await
        .unwrap();
    let keys: Vec<String> = raw
        .kvs()
        .iter()
        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
        .collect();
    assert_eq!(keys, ["/netloom/network/a", "/other/place/network/a"]);
}

/// Connecting to an etcd that is not there fails within the deadline, naming it.
#[tokio::test]
async fn connect_to_a_missing_etcd_is_unavailable() {
    // a port nothing listens on
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = EtcdConfig::parse(&format!("etcd://127.0.0.1:{port}"))
        .unwrap()
        .with_deadline(Duration::from_millis(800));
    let started = Instant::now();
    let err = EtcdStore::connect(cfg).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    match &err {
        StoreError::Unavailable { store, hint, .. } => {
            assert_eq!(store, &format!("etcd store http://127.0.0.1:{port}"));
            assert_eq!(
                hint,
                &format!(
                    "check that etcd at http://127.0.0.1:{port} runs and can be reached, then retry"
                )
            );
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!("etcd store http://127.0.0.1:{port} is unavailable")
    );
}

#[tokio::test]
async fn members_are_added_as_learners_and_removed() {
    let Some(f) = fixture().await else { return };
    let etcd = EtcdStore::connect(f.cfg.clone()).await.unwrap();
    let before = etcd.members().await.unwrap();
    assert_eq!(before.len(), 1, "{before:?}");
    assert!(!before[0].is_learner);
    assert_eq!(before[0].name, "netloom-test");
    // A learner that never starts: the cluster keeps its quorum (it does not vote).
    let (learner, after) = etcd.add_learner("http://127.0.0.1:1").await.unwrap();
    assert!(learner.is_learner && learner.name.is_empty(), "{learner:?}");
    assert_eq!(after.len(), 2);
    f.store
        .apply(vec![Op::put("k", "v", Expect::Any)])
        .await
        .unwrap();
    // etcd refuses to promote a learner that has not caught up.
    let e = etcd.promote_member(learner.id).await.unwrap_err();
    assert!(
        e.etcd_message().is_some_and(|m| m.contains("learner")),
        "{e:?}"
    );
    etcd.remove_member(learner.id).await.unwrap();
    assert_eq!(etcd.members().await.unwrap(), before);
    let e = etcd.remove_member(learner.id).await.unwrap_err();
    assert!(
        e.etcd_message()
            .is_some_and(|m| m.contains("member not found")),
        "{e:?}"
    );
}
