//! Real outages: the backend is killed (SIGKILL) and started again while clients
//! keep working.

use std::time::{Duration, Instant};

use netloom_store::{Event, Expect, StoreError};

use super::{Fixture, apply_through_outage, next, put, quiet};

/// A writer on one client keeps writing through a kill and restart of the backend;
/// a watcher on another client sees every committed write exactly once, in order.
pub async fn watch_survives_a_backend_restart(f: &dyn Fixture) {
    let watcher = f.store();
    let writer = f.client().await;
    let start = watcher.revision().await.unwrap();
    let mut w = watcher.watch("d/", start).await.unwrap();
    let n = 60;
    let (tx, mut progress) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        for seq in 0..n {
            let op = put(&format!("d/{seq:03}"), &format!("{seq}"), Expect::Absent);
            apply_through_outage(writer.as_ref(), vec![op]).await;
            let _ = tx.send(seq);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    // read some events, then kill the backend mid-stream
    for _ in 0..10 {
        next(&mut w).await;
    }
    while progress.recv().await.is_some_and(|seq| seq < 20) {}
    f.kill();
    tokio::time::sleep(Duration::from_millis(800)).await;
    f.restart();
    task.await.unwrap();
    // the watcher resumes and delivers the rest: 10 read before, 50 after
    let mut keys = Vec::new();
    let mut last = 0;
    for _ in 10..n {
        let e = next(&mut w).await;
        assert!(matches!(e, Event::Put { .. }), "{e:?}");
        assert!(e.revision() > last, "out of order or repeated: {e:?}");
        last = e.revision();
        keys.push(e.key().to_string());
    }
    let want: Vec<String> = (10..n).map(|s| format!("d/{s:03}")).collect();
    assert_eq!(keys, want);
    assert!(
        quiet(&mut w, 500).await,
        "repeated events after the restart"
    );
    let listing = watcher.list("d/").await.unwrap();
    assert_eq!(listing.items.len(), n);
    assert_eq!(listing.items.last().map(|(_, v)| v.version), Some(last));
}

/// A watch whose backend stays away reports it after the resume window; it does
/// not go silent.
pub async fn watch_reports_when_it_cannot_resume(f: &dyn Fixture) {
    let (deadline, window) = f.deadlines();
    let s = f.store();
    let mut w = s.watch("gone/", s.revision().await.unwrap()).await.unwrap();
    f.kill();
    let started = Instant::now();
    let limit = window + deadline * 2 + Duration::from_secs(5);
    let got = tokio::time::timeout(limit, w.recv()).await;
    let took = started.elapsed();
    match got {
        Ok(Err(e @ StoreError::Unavailable { .. })) => {
            let msg = netloom_store_chain(&e);
            assert!(msg.contains(&s.describe()), "{msg}");
            assert!(msg.contains("resumed"), "{msg}");
            assert!(
                took >= window,
                "gave up after {took:?}, before the window {window:?}"
            );
        }
        Ok(other) => panic!("expected unavailable, got {other:?}"),
        Err(_) => panic!("watch went silent for {limit:?}"),
    }
    assert!(matches!(w.recv().await, Err(StoreError::WatchEnded { .. })));
    f.restart();
}

fn netloom_store_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Every call fails with `Unavailable` naming the store within the deadline while
/// the backend is down, and works again once it is back.
pub async fn unavailable_within_the_deadline_then_working_again(f: &dyn Fixture) {
    let (deadline, _) = f.deadlines();
    let s = f.store();
    s.apply(vec![put("u/before", "1", Expect::Absent)])
        .await
        .unwrap();
    let lease = s.grant_lease(Duration::from_secs(30)).await.unwrap();
    f.kill();
    let limit = deadline + Duration::from_secs(2);
    macro_rules! unavailable {
        ($what:expr, $call:expr) => {{
            let started = Instant::now();
            let r = tokio::time::timeout(limit * 2, $call).await;
            let took = started.elapsed();
            match r {
                Ok(Err(e @ StoreError::Unavailable { .. })) => {
                    let StoreError::Unavailable {
                        ref store,
                        ref hint,
                        ..
                    } = e
                    else {
                        unreachable!()
                    };
                    assert_eq!(store, &s.describe());
                    assert!(hint.contains("check that etcd at"), "{hint}");
                    assert!(e.is_unavailable());
                }
                Ok(Err(e)) => panic!("{}: expected unavailable, got {e:?}", $what),
                Ok(Ok(_)) => panic!("{}: succeeded with the backend down", $what),
                Err(_) => panic!("{}: hung for {:?}", $what, limit * 2),
            }
            assert!(
                took < limit,
                "{} took {took:?} (deadline {deadline:?})",
                $what
            );
        }};
    }
    unavailable!("get", s.get("u/before"));
    unavailable!("list", s.list("u/"));
    unavailable!("apply", s.apply(vec![put("u/during", "1", Expect::Absent)]));
    unavailable!("revision", s.revision());
    unavailable!("watch", s.watch("u/", 0));
    unavailable!("grant", s.grant_lease(Duration::from_secs(5)));
    unavailable!("keep-alive", s.keep_alive(lease));
    f.restart();
    // working again (the connection comes back by itself)
    let until = Instant::now() + Duration::from_secs(20);
    let r = loop {
        match s.apply(vec![put("u/after", "1", Expect::Absent)]).await {
            Ok(r) => break r,
            Err(e) if e.is_unavailable() && Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("not working again: {e:?}"),
        }
    };
    let listing = s.list("u/").await.unwrap();
    let keys: Vec<&str> = listing.items.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        ["u/after", "u/before"],
        "the failed write left nothing"
    );
    assert_eq!(listing.revision, r);
    s.keep_alive(lease).await.unwrap();

    // a frozen backend (connection open, no answer) is caught by the deadline
    f.pause();
    unavailable!("get (frozen)", s.get("u/before"));
    unavailable!(
        "apply (frozen)",
        s.apply(vec![put("u/frozen", "1", Expect::Absent)])
    );
    match s.get("u/before").await {
        Err(e) => assert!(
            netloom_store_chain(&e).contains("no answer within"),
            "{}",
            netloom_store_chain(&e)
        ),
        Ok(v) => panic!("answered while frozen: {v:?}"),
    }
    f.resume();
    let until = Instant::now() + Duration::from_secs(20);
    while let Err(e) = s.get("u/before").await {
        assert!(e.is_unavailable() && Instant::now() < until, "{e:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
