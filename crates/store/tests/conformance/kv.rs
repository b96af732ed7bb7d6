//! Reads, writes, compare-and-set and transactions.

use std::sync::Arc;

use netloom_store::{Expect, Op, Store, StoreError, Versioned};

use super::{Fixture, del, put, value};

pub async fn crud_and_revisions(f: &dyn Fixture) {
    let store = f.store();
    let s = store.as_ref();
    let r0 = s.revision().await.unwrap();
    assert_eq!(s.get("network/a").await.unwrap(), None);

    let r1 = s
        .apply(vec![put("network/a", "A", Expect::Any)])
        .await
        .unwrap();
    assert!(r1 > r0);
    assert_eq!(
        s.get("network/a").await.unwrap(),
        Some(Versioned {
            value: b"A".to_vec(),
            version: r1
        })
    );
    let r2 = s
        .apply(vec![
            put("network/b", "B", Expect::Absent),
            put("endpoint/x", "X", Expect::Absent),
        ])
        .await
        .unwrap();
    assert_eq!(r2, r1 + 1, "one batch is one revision");
    let r3 = s
        .apply(vec![put("network/a", "A2", Expect::Version(r1))])
        .await
        .unwrap();
    assert_eq!(r3, r2 + 1);
    assert_eq!(s.revision().await.unwrap(), r3);

    let list = s.list("network/").await.unwrap();
    let keys: Vec<(&str, u64)> = list
        .items
        .iter()
        .map(|(k, v)| (k.as_str(), v.version))
        .collect();
    assert_eq!(keys, [("network/a", r3), ("network/b", r2)]);
    assert_eq!(list.revision, r3);
    assert_eq!(s.list("").await.unwrap().items.len(), 3);
    assert_eq!(s.list("network/b").await.unwrap().items.len(), 1);
    assert!(s.list("nope").await.unwrap().items.is_empty());

    let r4 = s
        .apply(vec![del("network/a", Expect::Version(r3))])
        .await
        .unwrap();
    assert_eq!(r4, r3 + 1);
    assert_eq!(value(s, "network/a").await, None);
    // deleting an absent key is allowed and changes nothing: no new revision
    assert_eq!(
        s.apply(vec![del("network/a", Expect::Any)]).await.unwrap(),
        r4
    );
    // a check alone writes nothing
    let check = Op::Check {
        key: "network/b".into(),
        expect: Expect::Version(r2),
    };
    assert_eq!(s.apply(vec![check]).await.unwrap(), r4);
    // empty value and empty batch
    let r5 = s.apply(vec![put("empty", "", Expect::Any)]).await.unwrap();
    assert_eq!(value(s, "empty").await.as_deref(), Some(""));
    assert_eq!(s.apply(vec![]).await.unwrap(), r5);
    assert_eq!(s.revision().await.unwrap(), r5);
    // a put of the same value is still a change
    let r6 = s.apply(vec![put("empty", "", Expect::Any)]).await.unwrap();
    assert_eq!(r6, r5 + 1);

    // JSON helpers
    let op = Op::put_json("json/n", &serde_json::json!({"Name": "n"}), Expect::Absent).unwrap();
    s.apply(vec![op]).await.unwrap();
    let got = s.get("json/n").await.unwrap().unwrap();
    let v: Versioned<serde_json::Value> = got.decode_json("json/n").unwrap();
    assert_eq!(v.value["Name"], "n");
    let err = s
        .get("empty")
        .await
        .unwrap()
        .unwrap()
        .decode_json::<serde_json::Value>("empty")
        .unwrap_err();
    assert!(matches!(err, StoreError::Decode { .. }), "{err:?}");
    assert!(!s.describe().is_empty());
}

pub async fn cas_conflict_writes_nothing(f: &dyn Fixture) {
    let store = f.store();
    let s = store.as_ref();
    let r1 = s
        .apply(vec![put("a", "1", Expect::Any), put("b", "1", Expect::Any)])
        .await
        .unwrap();
    let before = s.list("").await.unwrap().items;
    let cases = vec![
        (
            vec![
                put("c", "new", Expect::Absent),
                put("a", "2", Expect::Version(r1 + 7)),
            ],
            "a",
        ),
        (
            vec![
                put("a", "2", Expect::Version(r1)),
                put("b", "2", Expect::Absent),
            ],
            "b",
        ),
        (
            vec![put("a", "2", Expect::Any), del("d", Expect::Version(r1))],
            "d",
        ),
        (
            vec![del("a", Expect::Absent), put("c", "x", Expect::Any)],
            "a",
        ),
        (
            vec![
                put("c", "x", Expect::Any),
                Op::Check {
                    key: "b".into(),
                    expect: Expect::Version(r1 + 1),
                },
            ],
            "b",
        ),
    ];
    for (ops, key) in cases {
        match s.apply(ops).await {
            Err(StoreError::Conflict { key: k }) => assert_eq!(k, key),
            other => panic!("expected conflict on {key}, got {other:?}"),
        }
        assert_eq!(s.list("").await.unwrap().items, before);
        assert_eq!(s.revision().await.unwrap(), r1);
    }
    match s
        .apply(vec![put("a", "1", Expect::Any), del("a", Expect::Any)])
        .await
    {
        Err(StoreError::DuplicateKey { key }) => assert_eq!(key, "a"),
        other => panic!("expected duplicate key, got {other:?}"),
    }
    assert_eq!(s.revision().await.unwrap(), r1);
    // the same batch with the right expectations goes through, as one revision
    let r = s
        .apply(vec![
            put("c", "new", Expect::Absent),
            put("a", "2", Expect::Version(r1)),
            del("b", Expect::Version(r1)),
        ])
        .await
        .unwrap();
    assert_eq!(r, r1 + 1);
    assert_eq!(value(s, "a").await.as_deref(), Some("2"));
    assert_eq!(value(s, "b").await, None);
    assert_eq!(s.get("c").await.unwrap().unwrap().version, r);
}

/// Clients of the fixture: the main one and an independent one, alternately.
async fn clients(f: &dyn Fixture) -> [Arc<dyn Store>; 2] {
    [f.store(), f.client().await]
}

pub async fn create_if_absent_race_has_one_winner(f: &dyn Fixture) {
    let clients = clients(f).await;
    for round in 0..10 {
        let key = format!("race/{round}");
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let s = clients[t % 2].clone();
                let key = key.clone();
                tokio::spawn(async move {
                    let r = s
                        .apply(vec![put(&key, &format!("t{t}"), Expect::Absent)])
                        .await;
                    (t, r)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                (t, Ok(_)) => winners.push(t),
                (_, Err(StoreError::Conflict { key: k })) => assert_eq!(k, key),
                (_, Err(e)) => panic!("unexpected {e:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let got = value(clients[1].as_ref(), &key).await;
        assert_eq!(got, Some(format!("t{}", winners[0])));
    }
}

pub async fn update_and_delete_if_version_race_has_one_winner(f: &dyn Fixture) {
    let clients = clients(f).await;
    let mut version = clients[0]
        .apply(vec![put("ver", "0", Expect::Absent)])
        .await
        .unwrap();
    for round in 0..8 {
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let s = clients[t % 2].clone();
                tokio::spawn(async move {
                    s.apply(vec![put(
                        "ver",
                        &format!("{round}-{t}"),
                        Expect::Version(version),
                    )])
                    .await
                })
            })
            .collect();
        let mut won = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(r) => won.push(r),
                Err(StoreError::Conflict { key }) => assert_eq!(key, "ver"),
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        assert_eq!(won.len(), 1, "round {round}");
        version = won[0];
        assert_eq!(
            clients[0].get("ver").await.unwrap().unwrap().version,
            version
        );
    }
    let tasks: Vec<_> = (0..6)
        .map(|t| {
            let s = clients[t % 2].clone();
            tokio::spawn(async move { s.apply(vec![del("ver", Expect::Version(version))]).await })
        })
        .collect();
    let mut deleted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => deleted += 1,
            Err(StoreError::Conflict { .. }) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(deleted, 1);
    assert_eq!(value(clients[0].as_ref(), "ver").await, None);
}

pub async fn counter_under_contention(f: &dyn Fixture) {
    let clients = clients(f).await;
    clients[0]
        .apply(vec![
            Op::put_json("counter", &0u64, Expect::Absent).unwrap(),
        ])
        .await
        .unwrap();
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let s = clients[t % 2].clone();
            tokio::spawn(async move {
                for _ in 0..15 {
                    loop {
                        let cur = s.get("counter").await.unwrap().unwrap();
                        let n: Versioned<u64> = cur.decode_json("counter").unwrap();
                        let op =
                            Op::put_json("counter", &(n.value + 1), Expect::Version(n.version))
                                .unwrap();
                        match s.apply(vec![op]).await {
                            Ok(_) => break,
                            Err(StoreError::Conflict { .. }) => continue,
                            Err(e) => panic!("{e:?}"),
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let n: Versioned<u64> = clients[0]
        .get("counter")
        .await
        .unwrap()
        .unwrap()
        .decode_json("counter")
        .unwrap();
    assert_eq!(n.value, 60);
}

pub async fn multi_key_transfers_keep_the_sum(f: &dyn Fixture) {
    let clients = clients(f).await;
    let accounts = ["acct/a", "acct/b", "acct/c"];
    clients[0]
        .apply(
            accounts
                .iter()
                .map(|a| Op::put_json(*a, &100i64, Expect::Absent).unwrap())
                .collect(),
        )
        .await
        .unwrap();
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let s = clients[t % 2].clone();
            tokio::spawn(async move {
                for i in 0..12 {
                    let from = accounts[(t + i) % 3];
                    let to = accounts[(t + i + 1) % 3];
                    loop {
                        let a: Versioned<i64> = s
                            .get(from)
                            .await
                            .unwrap()
                            .unwrap()
                            .decode_json(from)
                            .unwrap();
                        let b: Versioned<i64> =
                            s.get(to).await.unwrap().unwrap().decode_json(to).unwrap();
                        let ops = vec![
                            Op::put_json(from, &(a.value - 7), Expect::Version(a.version)).unwrap(),
                            Op::put_json(to, &(b.value + 7), Expect::Version(b.version)).unwrap(),
                        ];
                        match s.apply(ops).await {
                            Ok(_) => break,
                            Err(StoreError::Conflict { .. }) => continue,
                            Err(e) => panic!("{e:?}"),
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let listing = clients[1].list("acct/").await.unwrap();
    let sum: i64 = listing
        .items
        .iter()
        .map(|(k, v)| v.decode_json::<i64>(k).unwrap().value)
        .sum();
    assert_eq!(sum, 300, "a transfer was half applied");
}

pub async fn listing_pages_and_prefixes(f: &dyn Fixture) {
    let store = f.store();
    let s = store.as_ref();
    // more keys than one etcd page, in batches below etcd's 128 operations per txn
    for batch in 0..25 {
        let ops = (0..50)
            .map(|i| put(&format!("many/{:04}", batch * 50 + i), "v", Expect::Absent))
            .collect();
        s.apply(ops).await.unwrap();
    }
    s.apply(vec![
        put("many0", "not under many/", Expect::Any),
        put("man", "no", Expect::Any),
    ])
    .await
    .unwrap();
    let listing = s.list("many/").await.unwrap();
    assert_eq!(listing.items.len(), 1250);
    let keys: Vec<&str> = listing.items.iter().map(|(k, _)| k.as_str()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "sorted by key");
    assert_eq!(keys.first(), Some(&"many/0000"));
    assert_eq!(keys.last(), Some(&"many/1249"));
    assert_eq!(listing.revision, s.revision().await.unwrap());
    assert_eq!(s.list("many").await.unwrap().items.len(), 1251);
}
