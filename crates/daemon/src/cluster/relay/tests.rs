//! The relay over a real (in-memory) store: listings, events, resumption from a
//! position with nothing lost or repeated, multi-key revisions, compaction answered
//! with a re-list, answers cut on a revision boundary, refused prefixes.

use std::sync::Arc;
use std::time::Duration;

use netloom_store::{Expect, LocalOptions, MemoryStore, Op, Store};

use super::*;

const P: &str = "swarm/nodes/";

fn store(history: u64) -> (Arc<dyn Store>, SwarmStore) {
    let s: Arc<dyn Store> = Arc::new(MemoryStore::with_options(
        LocalOptions::default().with_history(history),
    ));
    (s.clone(), SwarmStore::new(s))
}

async fn put(s: &Arc<dyn Store>, k: &str, v: u64) {
    s.apply(vec![Op::put(format!("{P}{k}"), v.to_string(), Expect::Any)])
        .await
        .unwrap();
}

fn keys(r: &Relay) -> BTreeMap<String, u64> {
    let st = r.status();
    st[0]["Keys"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect()
}

async fn poll(r: &Relay, s: &SwarmStore, wait: Duration) -> Vec<WatchBatch> {
    let b = serve(s, Some("n1"), &r.positions(), wait).await.unwrap();
    r.apply(b.clone());
    b
}

#[tokio::test]
async fn resumes_from_its_position_with_nothing_lost_or_repeated() {
    let (raw, s) = store(1000);
    put(&raw, "a", 1).await;
    let r = Relay::new(&[P]);
    let mut sub = r.subscribe(P);
    let b = poll(&r, &s, Duration::from_secs(5)).await;
    assert!(b[0].reset.as_ref().is_some_and(|i| i.len() == 1), "{b:?}");
    assert!(matches!(sub.recv().await, Some(RelayUpdate::Reset { items, .. }) if items.len() == 1));

    // Changes while nobody asks, including one revision with two keys.
    put(&raw, "b", 2).await;
    raw.apply(vec![
        Op::put(format!("{P}c"), "3", Expect::Any),
        Op::put(format!("{P}d"), "4", Expect::Any),
    ])
    .await
    .unwrap();
    raw.apply(vec![Op::delete(format!("{P}a"), Expect::Any)])
        .await
        .unwrap();
    let before = r.positions();
    let b = poll(&r, &s, Duration::from_secs(5)).await;
    assert_eq!(b[0].events.len(), 4, "{b:?}");
    assert!(b[0].reset.is_none());
    // The same answer again (the node reconnected before it saw it): repeats only.
    let again = serve(&s, Some("n1"), &before, Duration::from_secs(5))
        .await
        .unwrap();
    r.apply(again);
    let st = r.status();
    assert_eq!(st[0]["Events"], 4);
    assert_eq!(st[0]["Duplicates"], 4);
    let want: BTreeMap<String, u64> = raw
        .list(P)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|(k, v)| (k, v.version))
        .collect();
    assert_eq!(keys(&r), want);
    assert_eq!(st[0]["Revision"], raw.revision().await.unwrap());
    match sub.recv().await {
        Some(RelayUpdate::Events { events, .. }) => assert_eq!(events.len(), 4),
        other => panic!("{other:?}"),
    }

    // A live change during the wait is answered at once.
    let raw2 = raw.clone();
    let t = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        put(&raw2, "e", 5).await;
    });
    let started = std::time::Instant::now();
    let b = poll(&r, &s, Duration::from_secs(10)).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(b[0].events.len(), 1);
    t.await.unwrap();
    // Nothing new: the answer comes after the wait, with the position unchanged.
    let pos = r.positions();
    let b = poll(&r, &s, Duration::from_millis(300)).await;
    assert!(b[0].events.is_empty() && b[0].reset.is_none());
    assert_eq!(r.positions(), pos);
}

#[tokio::test]
async fn a_compacted_position_is_answered_with_a_relist() {
    let (raw, s) = store(5);
    let r = Relay::new(&[P]);
    poll(&r, &s, Duration::from_secs(1)).await;
    for i in 0..20 {
        put(&raw, &format!("k{}", i % 3), i).await;
    }
    let b = poll(&r, &s, Duration::from_secs(1)).await;
    assert!(b[0].reset.is_some(), "{b:?}");
    assert_eq!(r.status()[0]["Resets"], 2);
    assert_eq!(keys(&r).len(), 3);
}

#[tokio::test]
async fn answers_end_on_a_revision_boundary() {
    let (raw, s) = store(10_000);
    let r = Relay::new(&[P]);
    poll(&r, &s, Duration::from_secs(1)).await;
    for i in 0..(MAX_EVENTS as u64 + 50) {
        put(&raw, &format!("k{i}"), i).await;
    }
    let b = poll(&r, &s, Duration::from_secs(1)).await;
    assert_eq!(b[0].events.len(), MAX_EVENTS);
    let b = poll(&r, &s, Duration::from_secs(1)).await;
    assert_eq!(b[0].events.len(), 50);
    assert_eq!(r.status()[0]["Duplicates"], 0);
    assert_eq!(keys(&r).len(), MAX_EVENTS + 50);
}

#[tokio::test]
async fn only_relayed_prefixes_are_served() {
    let (raw, s) = store(100);
    raw.apply(vec![Op::put("swarm/cluster", "{}", Expect::Any)])
        .await
        .unwrap();
    let r = Relay::new(&["swarm/"]);
    let b = poll(&r, &s, Duration::from_secs(1)).await;
    assert!(
        b[0].error
            .as_deref()
            .is_some_and(|e| e.contains("not relayed")),
        "{b:?}"
    );
    assert!(b[0].reset.is_none());
    assert!(r.status()[0]["Keys"].as_object().unwrap().is_empty());
    assert!(allowed("n1", "swarm/nodes/"));
    assert!(!allowed("n1", "swarm/cluster"));
}
