//! Leases: expiry, keep-alive, revoke, and the election recipe of the crate docs.

use std::time::{Duration, Instant};

use netloom_store::{Event, Expect, Op, StoreError};

use super::{Fixture, next, put, quiet, value};

/// The TTL used: etcd's minimum (it rounds shorter ones up to about 2 s).
const TTL: Duration = Duration::from_secs(2);

/// Waits until `key` is gone (at most `limit`); returns how long it took.
async fn gone_within(s: &dyn netloom_store::Store, key: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    while value(s, key).await.is_some() {
        assert!(start.elapsed() < limit, "{key} still there after {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    start.elapsed()
}

pub async fn lease_expiry_deletes_keys(f: &dyn Fixture) {
    let store = f.store();
    let s = store.as_ref();
    let lease = s.grant_lease(TTL).await.unwrap();
    let r = s
        .apply(vec![
            Op::put_leased("node/a", "alive", Expect::Absent, lease),
            Op::put_leased("node/b", "alive", Expect::Absent, lease),
            put("node/static", "stays", Expect::Absent),
        ])
        .await
        .unwrap();
    let mut w = s.watch("node/", r).await.unwrap();
    gone_within(s, "node/a", TTL * 4).await;
    let mut deleted = vec![next(&mut w).await, next(&mut w).await];
    deleted.sort_by(|a, b| a.key().cmp(b.key()));
    match deleted.as_slice() {
        [
            Event::Delete {
                key: a,
                revision: ra,
            },
            Event::Delete {
                key: b,
                revision: rb,
            },
        ] => {
            assert_eq!((a.as_str(), b.as_str()), ("node/a", "node/b"));
            assert_eq!(ra, rb, "a lease's keys go in one revision");
            assert!(*ra > r);
        }
        other => panic!("expected two deletes, got {other:?}"),
    }
    assert!(quiet(&mut w, 200).await);
    assert_eq!(value(s, "node/static").await.as_deref(), Some("stays"));
    // the lease is gone for good
    match s.keep_alive(lease).await {
        Err(StoreError::LeaseNotFound { lease: l }) => assert_eq!(l, lease),
        other => panic!("expected lease not found, got {other:?}"),
    }
    let before = s.revision().await.unwrap();
    match s
        .apply(vec![
            put("node/c", "x", Expect::Absent),
            Op::put_leased("node/d", "x", Expect::Absent, lease),
        ])
        .await
    {
        Err(StoreError::LeaseNotFound { lease: l }) => assert_eq!(l, lease),
        other => panic!("expected lease not found, got {other:?}"),
    }
    assert_eq!(s.revision().await.unwrap(), before, "nothing written");
    assert_eq!(value(s, "node/c").await, None);
}

pub async fn keep_alive_keeps_keys(f: &dyn Fixture) {
    let store = f.store();
    let s = store.as_ref();
    let lease = s.grant_lease(TTL).await.unwrap();
    s.apply(vec![Op::put_leased("live/n", "up", Expect::Absent, lease)])
        .await
        .unwrap();
    let until = Instant::now() + TTL * 3;
    while Instant::now() < until {
        let ttl = s.keep_alive(lease).await.unwrap();
        assert!(ttl >= TTL, "renewed for {ttl:?}");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert_eq!(value(s, "live/n").await.as_deref(), Some("up"));
    // stop renewing: gone after the TTL
    let waited = gone_within(s, "live/n", TTL * 4).await;
    assert!(waited >= TTL / 2, "gone after {waited:?}, before its TTL");
}

pub async fn revoke_deletes_keys(f: &dyn Fixture) {
    let store = f.store();
    let s = store.as_ref();
    let lease = s.grant_lease(Duration::from_secs(60)).await.unwrap();
    let r = s
        .apply(vec![
            Op::put_leased("rv/a", "1", Expect::Absent, lease),
            Op::put_leased("rv/moved", "1", Expect::Absent, lease),
        ])
        .await
        .unwrap();
    // a later put without the lease detaches the key from it
    let r = s
        .apply(vec![put("rv/moved", "2", Expect::Version(r))])
        .await
        .unwrap();
    let mut w = s.watch("rv/", r).await.unwrap();
    s.revoke_lease(lease).await.unwrap();
    assert_eq!(value(s, "rv/a").await, None, "revoke deletes at once");
    assert_eq!(value(s, "rv/moved").await.as_deref(), Some("2"));
    match next(&mut w).await {
        Event::Delete { key, .. } => assert_eq!(key, "rv/a"),
        e => panic!("unexpected {e:?}"),
    }
    assert!(quiet(&mut w, 300).await);
    // revoking again is not an error
    s.revoke_lease(lease).await.unwrap();
    assert!(matches!(
        s.keep_alive(lease).await,
        Err(StoreError::LeaseNotFound { .. })
    ));
}

/// The recipe of the crate docs, with two candidates on two clients.
pub async fn election_recipe(f: &dyn Fixture) {
    let a = f.store();
    let b = f.client().await;
    let la = a.grant_lease(Duration::from_secs(30)).await.unwrap();
    let lb = b.grant_lease(Duration::from_secs(30)).await.unwrap();
    let campaign = |s: std::sync::Arc<dyn netloom_store::Store>, who: &'static str, l| async move {
        s.apply(vec![Op::put_leased(
            "election/leader",
            who,
            Expect::Absent,
            l,
        )])
        .await
    };
    let ra = campaign(a.clone(), "a", la).await.unwrap();
    match campaign(b.clone(), "b", lb).await {
        Err(StoreError::Conflict { key }) => assert_eq!(key, "election/leader"),
        other => panic!("b should follow, got {other:?}"),
    }
    // b follows: reads who leads and watches for the end of that leadership
    let seen = b.list("election/leader").await.unwrap();
    assert_eq!(seen.items[0].1.value, b"a");
    let mut w = b.watch("election/leader", seen.revision).await.unwrap();
    // a fences its writes on its leadership
    let fence = |rev| Op::Check {
        key: "election/leader".into(),
        expect: Expect::Version(rev),
    };
    a.apply(vec![put("election/work", "by a", Expect::Any), fence(ra)])
        .await
        .unwrap();
    // a resigns
    a.revoke_lease(la).await.unwrap();
    loop {
        if let Event::Delete { key, .. } = next(&mut w).await {
            assert_eq!(key, "election/leader");
            break;
        }
    }
    let rb = campaign(b.clone(), "b", lb).await.unwrap();
    assert_eq!(
        value(b.as_ref(), "election/leader").await.as_deref(),
        Some("b")
    );
    // the deposed leader's fenced write fails and writes nothing
    match a
        .apply(vec![put("election/work", "late a", Expect::Any), fence(ra)])
        .await
    {
        Err(StoreError::Conflict { key }) => assert_eq!(key, "election/leader"),
        other => panic!("fenced write went through: {other:?}"),
    }
    b.apply(vec![put("election/work", "by b", Expect::Any), fence(rb)])
        .await
        .unwrap();
    assert_eq!(
        value(a.as_ref(), "election/work").await.as_deref(),
        Some("by b")
    );
    b.revoke_lease(lb).await.unwrap();
}
