//! The conformance suite on [`EmbeddedStore`], and what only a file store has:
//! reopening (data, revision, history, leases of a dead process), refusing a
//! second opener, and clear errors for damaged or unreachable files.

mod conformance;

use std::sync::Arc;
use std::time::Duration;

use conformance::local::{HISTORY, Local};
use conformance::{next, put, quiet};
use netloom_store::{EmbeddedStore, Event, Expect, LocalOptions, Op, Store, StoreError};

async fn fixture() -> Option<Local> {
    let dir = tempfile::tempdir().unwrap();
    let options = LocalOptions::default().with_history(HISTORY);
    let store = EmbeddedStore::open_with(&dir.path().join("netloom.db"), options).unwrap();
    Some(Local {
        store: Arc::new(store),
        _dir: Some(dir),
    })
}

conformance_tests!(fixture);

#[tokio::test]
async fn reopen_keeps_data_revision_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dirs/netloom.db");
    let (r1, r2) = {
        let store = EmbeddedStore::open(&path).unwrap();
        assert_eq!(store.path(), path);
        assert_eq!(
            store.describe(),
            format!("embedded store {}", path.display())
        );
        let r1 = store.apply(vec![put("a", "1", Expect::Any)]).await.unwrap();
        let r2 = store
            .apply(vec![
                put("b", "2", Expect::Any),
                put("a", "3", Expect::Version(r1)),
            ])
            .await
            .unwrap();
        (r1, r2)
    };
    let store = EmbeddedStore::open(&path).unwrap();
    assert_eq!(store.revision().await.unwrap(), r2);
    assert_eq!(store.get("a").await.unwrap().unwrap().value, b"3");
    assert_eq!(store.get("b").await.unwrap().unwrap().version, r2);
    // a watch started in a new process replays the history of the old one
    let mut w = store.watch("", r1).await.unwrap();
    assert_eq!(next(&mut w).await.revision(), r2);
    assert_eq!(next(&mut w).await.revision(), r2);
    assert!(quiet(&mut w, 100).await);
    let r3 = store
        .apply(vec![put("c", "", Expect::Absent)])
        .await
        .unwrap();
    assert_eq!(r3, r2 + 1);
    assert_eq!(next(&mut w).await.key(), "c");
}

/// Keys of a lease live only as long as the process that renews it: a new process
/// deletes them on open, with delete events in the history.
#[tokio::test]
async fn reopen_deletes_keys_of_leases_of_the_previous_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("netloom.db");
    let before = {
        let store = EmbeddedStore::open(&path).unwrap();
        let lease = store.grant_lease(Duration::from_secs(3600)).await.unwrap();
        store
            .apply(vec![
                Op::put_leased("node/me", "alive", Expect::Absent, lease),
                put("network/n", "kept", Expect::Absent),
            ])
            .await
            .unwrap()
    };
    let store = EmbeddedStore::open(&path).unwrap();
    assert_eq!(store.get("node/me").await.unwrap(), None);
    assert!(store.get("network/n").await.unwrap().is_some());
    let mut w = store.watch("node/", before).await.unwrap();
    assert_eq!(
        next(&mut w).await,
        Event::Delete {
            key: "node/me".into(),
            revision: before + 1
        }
    );
    // and leases of the new process get ids of their own
    let lease = store.grant_lease(Duration::from_secs(60)).await.unwrap();
    store
        .apply(vec![Op::put_leased(
            "node/me",
            "again",
            Expect::Absent,
            lease,
        )])
        .await
        .unwrap();
    drop(w);
    drop(store);
    let store = EmbeddedStore::open(&path).unwrap();
    assert_eq!(store.get("node/me").await.unwrap(), None);
}

#[tokio::test]
async fn a_watch_does_not_keep_the_store_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("netloom.db");
    let store = EmbeddedStore::open(&path).unwrap();
    let lease = store.grant_lease(Duration::from_secs(60)).await.unwrap();
    store
        .apply(vec![Op::put_leased("k", "v", Expect::Any, lease)])
        .await
        .unwrap();
    let mut w = store.watch("", 0).await.unwrap();
    drop(store);
    // the file is free at once (the lease's key goes with the old process)
    let reopened = EmbeddedStore::open(&path).unwrap();
    assert_eq!(reopened.get("k").await.unwrap(), None);
    match w.recv().await {
        Err(StoreError::WatchEnded { store }) => assert!(store.contains("embedded store")),
        other => panic!("expected ended, got {other:?}"),
    }
    drop(reopened);
}

#[test]
fn second_open_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("netloom.db");
    let _store = EmbeddedStore::open(&path).unwrap();
    let err = EmbeddedStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::InUse { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("store {} is in use by another process", path.display())
    );
}

#[test]
fn garbage_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("netloom.db");
    std::fs::write(&path, vec![0x5a; 64 * 1024]).unwrap();
    let err = EmbeddedStore::open(&path).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
}

#[test]
fn unwritable_location_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    // the parent "directory" is a file
    let path = file.join("netloom.db");
    let err = EmbeddedStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(err.to_string().starts_with("cannot open store "), "{err}");
}

#[tokio::test]
async fn damaged_store_files_give_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.db");
    {
        let store = EmbeddedStore::open(&good).unwrap();
        for i in 0..50 {
            store
                .apply(vec![put(&format!("k/{i}"), &"v".repeat(500), Expect::Any)])
                .await
                .unwrap();
        }
    }
    let bytes = std::fs::read(&good).unwrap();
    let len = bytes.len();
    let variants: Vec<(&str, Vec<u8>)> = vec![
        ("truncated header", bytes[..100].to_vec()),
        ("truncated body", bytes[..len / 2].to_vec()),
        ("zeroed header", {
            let mut b = bytes.clone();
            b[..512].fill(0);
            b
        }),
        ("garbage body", {
            let mut b = bytes.clone();
            for x in &mut b[4096..] {
                *x = 0x5a;
            }
            b
        }),
    ];
    for (what, content) in variants {
        let path = dir.path().join(format!("{}.db", what.replace(' ', "-")));
        std::fs::write(&path, content).unwrap();
        let err = EmbeddedStore::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{what}: {err:?}");
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("store {} is corrupt", path.display())),
            "{msg}"
        );
    }
}

/// An apply on a current-thread runtime (what unit tests use) works: the fsync
/// runs on a blocking thread, not through `block_in_place`.
#[test]
fn apply_on_a_current_thread_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("netloom.db")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = rt
        .block_on(store.apply(vec![put("a", "1", Expect::Absent)]))
        .unwrap();
    assert_eq!(r, 1);
}
