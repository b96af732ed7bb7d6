//! Watches: history, list-then-watch, resuming, slow consumers, compaction.

use std::collections::{BTreeMap, BTreeSet};

use netloom_store::{Event, Expect, Revision, StoreError};

use super::{Fixture, del, expect_compacted, next, put, quiet, state};

pub async fn watch_from_revision_replays_history(f: &dyn Fixture) {
    let store = f.store();
    let s = store.as_ref();
    let r0 = s
        .apply(vec![put("network/old", "o", Expect::Any)])
        .await
        .unwrap();
    let r1 = s
        .apply(vec![
            put("endpoint/e1", "E", Expect::Any),
            put("network/n1", "N", Expect::Any),
        ])
        .await
        .unwrap();
    let r2 = s
        .apply(vec![
            del("network/old", Expect::Any),
            del("network/never", Expect::Any),
        ])
        .await
        .unwrap();
    let r3 = s
        .apply(vec![put("endpoint/e2", "E", Expect::Any)])
        .await
        .unwrap();

    let mut networks = s.watch("network/", r0).await.unwrap();
    assert_eq!(networks.prefix(), "network/");
    assert_eq!(
        next(&mut networks).await,
        Event::Put {
            key: "network/n1".into(),
            value: b"N".to_vec(),
            revision: r1
        }
    );
    assert_eq!(
        next(&mut networks).await,
        Event::Delete {
            key: "network/old".into(),
            revision: r2
        }
    );
    assert!(quiet(&mut networks, 300).await);

    // from the start, everything
    let mut all = s.watch("", 0).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..5 {
        let e = next(&mut all).await;
        seen.push((e.key().to_string(), e.revision()));
    }
    assert_eq!(
        seen,
        [
            ("network/old".to_string(), r0),
            ("endpoint/e1".to_string(), r1),
            ("network/n1".to_string(), r1),
            ("network/old".to_string(), r2),
            ("endpoint/e2".to_string(), r3)
        ]
    );
    // then live changes; a failed batch sends nothing
    assert!(
        s.apply(vec![put("network/n1", "x", Expect::Absent)])
            .await
            .is_err()
    );
    let r4 = s
        .apply(vec![put("network/n2", "2", Expect::Absent)])
        .await
        .unwrap();
    assert_eq!(next(&mut networks).await.revision(), r4);
    assert_eq!(next(&mut all).await.revision(), r4);
    // a watch from the current revision sees only what comes later
    let mut later = s.watch("network/", r4).await.unwrap();
    assert!(quiet(&mut later, 200).await);
    let r5 = s
        .apply(vec![del("network/n2", Expect::Version(r4))])
        .await
        .unwrap();
    assert_eq!(
        next(&mut later).await,
        Event::Delete {
            key: "network/n2".into(),
            revision: r5
        }
    );
}

/// Writers change keys under `lw/` from two clients while the test lists and then
/// watches from the listing's revision: replaying the events on the listing gives
/// exactly the final state, and no event is older than the listing or repeated.
pub async fn list_then_watch_under_concurrent_writes(f: &dyn Fixture) {
    let clients = [f.store(), f.client().await];
    // the writers meet the test after 20 writes each (then writes race the listing)
    // and again after 40 (so later writes surely follow it)
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(3));
    let writers: Vec<_> = (0..2)
        .map(|t| {
            let s = clients[t].clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                for i in 0..80usize {
                    if i == 20 || i == 40 {
                        barrier.wait().await;
                    }
                    let op = if i % 7 == 6 {
                        // the key written just before: it exists, so this deletes
                        del(&format!("lw/{t}/{}", (i - 1) % 10), Expect::Any)
                    } else {
                        put(&format!("lw/{t}/{}", i % 10), &format!("{i}"), Expect::Any)
                    };
                    s.apply(vec![op]).await.unwrap();
                }
            })
        })
        .collect();
    // list while the writers run on
    barrier.wait().await;
    let listing = clients[0].list("lw/").await.unwrap();
    barrier.wait().await;
    let mut w = clients[0].watch("lw/", listing.revision).await.unwrap();
    for t in writers {
        t.await.unwrap();
    }
    let fin = clients[1].list("lw/").await.unwrap();
    let mut replay: BTreeMap<String, (Vec<u8>, Revision)> = listing
        .items
        .into_iter()
        .map(|(k, v)| (k, (v.value, v.version)))
        .collect();
    let mut seen = BTreeSet::new();
    let mut last = listing.revision;
    while last < fin.revision {
        let e = next(&mut w).await;
        assert!(
            e.revision() > listing.revision,
            "event older than the listing: {e:?}"
        );
        assert!(e.revision() >= last, "out of order: {e:?} after {last}");
        assert!(
            seen.insert((e.revision(), e.key().to_string())),
            "repeated: {e:?}"
        );
        last = e.revision();
        match e {
            Event::Put {
                key,
                value,
                revision,
            } => {
                replay.insert(key, (value, revision));
            }
            Event::Delete { key, .. } => {
                assert!(replay.remove(&key).is_some(), "delete of unknown {key}");
            }
        }
    }
    assert!(
        !seen.is_empty(),
        "no write after the listing: the test proves nothing"
    );
    let want: BTreeMap<_, _> = fin
        .items
        .into_iter()
        .map(|(k, v)| (k, (v.value, v.version)))
        .collect();
    assert_eq!(replay, want);
    assert!(quiet(&mut w, 300).await, "events after the last write");
}

pub async fn resume_from_last_delivered_revision(f: &dyn Fixture) {
    let store = f.store();
    let s = store.as_ref();
    let start = s.revision().await.unwrap();
    for i in 0..10 {
        s.apply(vec![put(&format!("r/{i}"), "v", Expect::Absent)])
            .await
            .unwrap();
    }
    let mut w = s.watch("r/", start).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(next(&mut w).await);
    }
    drop(w);
    // more changes while nobody watches
    for i in 10..15 {
        s.apply(vec![put(&format!("r/{i}"), "v", Expect::Absent)])
            .await
            .unwrap();
    }
    let last = got.last().map(Event::revision).unwrap();
    let mut w = s.watch("r/", last).await.unwrap();
    for _ in 4..15 {
        got.push(next(&mut w).await);
    }
    let keys: Vec<String> = got.iter().map(|e| e.key().to_string()).collect();
    assert_eq!(keys, (0..15).map(|i| format!("r/{i}")).collect::<Vec<_>>());
    assert!(quiet(&mut w, 200).await);
}

pub async fn transaction_events_share_a_revision(f: &dyn Fixture) {
    let store = f.store();
    let s = store.as_ref();
    let start = s.revision().await.unwrap();
    let mut w = s.watch("tx/", start).await.unwrap();
    let r = s
        .apply(vec![
            put("tx/a", "1", Expect::Absent),
            put("tx/b", "2", Expect::Absent),
            put("other/c", "3", Expect::Absent),
        ])
        .await
        .unwrap();
    let a = next(&mut w).await;
    let b = next(&mut w).await;
    assert_eq!((a.key(), a.revision()), ("tx/a", r));
    assert_eq!((b.key(), b.revision()), ("tx/b", r));
    assert!(quiet(&mut w, 200).await);
}

/// A watcher that reads nothing while many changes are made still gets every one,
/// in order, once it reads.
pub async fn slow_consumer_loses_nothing(f: &dyn Fixture) {
    let store = f.store();
    let s = store.as_ref();
    let start = s.revision().await.unwrap();
    let mut w = s.watch("slow/", start).await.unwrap();
    // within a bounded history (local backends), else enough to fill buffers
    let n = f.bounded_history().map_or(600, |h| h.min(600) as usize - 6);
    for i in 0..n {
        s.apply(vec![put(
            &format!("slow/{}", i % 50),
            &format!("{i}"),
            Expect::Any,
        )])
        .await
        .unwrap();
    }
    let mut last = start;
    for i in 0..n {
        match next(&mut w).await {
            Event::Put {
                key,
                value,
                revision,
            } => {
                assert_eq!(key, format!("slow/{}", i % 50));
                assert_eq!(value, format!("{i}").into_bytes());
                assert!(revision > last);
                last = revision;
            }
            e => panic!("unexpected {e:?}"),
        }
    }
    assert!(quiet(&mut w, 200).await);
    // a local backend's watcher that falls behind its bounded history is told so
    let Some(history) = f.bounded_history() else {
        return;
    };
    let at = s.revision().await.unwrap();
    let mut behind = s.watch("slow/", at).await.unwrap();
    for i in 0..history + 3 {
        s.apply(vec![put("slow/x", &format!("{i}"), Expect::Any)])
            .await
            .unwrap();
    }
    match behind.recv().await {
        Err(StoreError::Compacted { requested, oldest }) => {
            assert_eq!(requested, at);
            assert!(oldest > at);
        }
        other => panic!("expected compacted, got {other:?}"),
    }
    assert!(matches!(
        behind.recv().await,
        Err(StoreError::WatchEnded { .. })
    ));
}

pub async fn compaction_is_reported(f: &dyn Fixture) {
    let store = f.store();
    let s = store.as_ref();
    let mut revs = Vec::new();
    for i in 0..5 {
        revs.push(
            s.apply(vec![put(&format!("c/{i}"), "v", Expect::Absent)])
                .await
                .unwrap(),
        );
    }
    f.compact(revs[3]).await;
    let (requested, oldest) = expect_compacted(s, "c/", revs[0]).await;
    assert_eq!(requested, revs[0]);
    assert!(oldest >= revs[3], "oldest {oldest} < {}", revs[3]);
    let err = StoreError::Compacted { requested, oldest };
    assert!(err.to_string().contains("list again"), "{err}");
    // from `oldest` on, nothing is lost: the kept writes, then live ones
    let mut w = s.watch("c/", oldest).await.unwrap();
    for (i, r) in revs.iter().enumerate() {
        if *r > oldest {
            let e = next(&mut w).await;
            assert_eq!((e.key(), e.revision()), (format!("c/{i}").as_str(), *r));
        }
    }
    let r = s
        .apply(vec![put("c/new", "v", Expect::Absent)])
        .await
        .unwrap();
    let e = next(&mut w).await;
    assert_eq!((e.key(), e.revision()), ("c/new", r));
    // the listing is the way back: list, then watch from its revision
    let listing = s.list("c/").await.unwrap();
    assert_eq!(listing.items.len(), 6);
    let mut w = s.watch("c/", listing.revision).await.unwrap();
    assert!(quiet(&mut w, 200).await);
    assert_eq!(state(s, "c/").await.len(), 6);
}
