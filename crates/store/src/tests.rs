use super::{
    EmbeddedStore, Event, Expect, KvStore, KvStoreExt, Op, StoreError, Versioned, WATCH_CAPACITY,
};
use serde::Deserialize;
use serde::Serialize;
use tokio::sync::broadcast;

fn put(key: &str, value: &str, expect: Expect) -> Op {
    Op::Put {
        key: key.into(),
        value: value.as_bytes().to_vec(),
        expect,
    }
}

fn del(key: &str, expect: Expect) -> Op {
    Op::Delete {
        key: key.into(),
        expect,
    }
}

fn open() -> (tempfile::TempDir, EmbeddedStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("netloom.db")).unwrap();
    (dir, store)
}

fn value(store: &EmbeddedStore, key: &str) -> Option<String> {
    store
        .get(key)
        .unwrap()
        .map(|v| String::from_utf8(v.value).unwrap())
}

#[test]
fn crud() {
    let (_dir, store) = open();
    assert_eq!(store.revision().unwrap(), 0);
    assert_eq!(store.get("network/a").unwrap(), None);

    let r1 = store
        .apply(vec![put("network/a", "A", Expect::Any)])
        .unwrap();
    assert_eq!(r1, 1);
    assert_eq!(
        store.get("network/a").unwrap(),
        Some(Versioned {
            value: b"A".to_vec(),
            version: 1
        })
    );

    let r2 = store
        .apply(vec![
            put("network/b", "B", Expect::Absent),
            put("endpoint/x", "X", Expect::Absent),
        ])
        .unwrap();
    assert_eq!(r2, 2);
    let r3 = store
        .apply(vec![put("network/a", "A2", Expect::Version(1))])
        .unwrap();
    assert_eq!(r3, 3);

    let list = store.list("network/").unwrap();
    let keys: Vec<(&str, u64)> = list.iter().map(|(k, v)| (k.as_str(), v.version)).collect();
    assert_eq!(keys, [("network/a", 3), ("network/b", 2)]);
    assert_eq!(store.list("").unwrap().len(), 3);
    assert_eq!(store.list("network/b").unwrap().len(), 1);
    assert!(store.list("nope").unwrap().is_empty());

    let r4 = store
        .apply(vec![del("network/a", Expect::Version(3))])
        .unwrap();
    assert_eq!(r4, 4);
    assert_eq!(value(&store, "network/a"), None);
    // deleting an absent key is fine
    assert_eq!(store.apply(vec![del("network/a", Expect::Any)]).unwrap(), 5);
    // empty value and empty batch
    store.apply(vec![put("empty", "", Expect::Any)]).unwrap();
    assert_eq!(value(&store, "empty").as_deref(), Some(""));
    assert_eq!(store.apply(vec![]).unwrap(), 6);
    assert_eq!(store.revision().unwrap(), 6);
}

#[test]
fn cas_conflict_writes_nothing() {
    let (_dir, store) = open();
    store
        .apply(vec![put("a", "1", Expect::Any), put("b", "1", Expect::Any)])
        .unwrap();
    let before = store.list("").unwrap();

    let cases = vec![
        // a's version is 1, not 7
        (
            vec![
                put("c", "new", Expect::Absent),
                put("a", "2", Expect::Version(7)),
            ],
            "a",
        ),
        // b exists
        (
            vec![
                put("a", "2", Expect::Version(1)),
                put("b", "2", Expect::Absent),
            ],
            "b",
        ),
        // d does not exist
        (
            vec![put("a", "2", Expect::Any), del("d", Expect::Version(1))],
            "d",
        ),
        (
            vec![del("a", Expect::Absent), put("c", "x", Expect::Any)],
            "a",
        ),
    ];
    for (ops, key) in cases {
        match store.apply(ops) {
            Err(StoreError::Conflict { key: k }) => assert_eq!(k, key),
            other => panic!("expected conflict on {key}, got {other:?}"),
        }
        assert_eq!(store.list("").unwrap(), before);
        assert_eq!(store.revision().unwrap(), 1);
    }

    match store.apply(vec![put("a", "1", Expect::Any), del("a", Expect::Any)]) {
        Err(StoreError::DuplicateKey { key }) => assert_eq!(key, "a"),
        other => panic!("expected duplicate key, got {other:?}"),
    }
    assert_eq!(store.revision().unwrap(), 1);

    // and the same batch with the right expectations goes through
    let r = store
        .apply(vec![
            put("c", "new", Expect::Absent),
            put("a", "2", Expect::Version(1)),
            del("b", Expect::Version(1)),
        ])
        .unwrap();
    assert_eq!(r, 2);
    assert_eq!(value(&store, "a").as_deref(), Some("2"));
    assert_eq!(value(&store, "b"), None);
    assert_eq!(store.get("c").unwrap().unwrap().version, 2);
}

#[test]
fn revision_is_monotonic_across_threads() {
    let (_dir, store) = open();
    let store = std::sync::Arc::new(store);
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut last = 0;
                for i in 0..25 {
                    let r = store
                        .apply(vec![put(&format!("t{t}/{i}"), "v", Expect::Absent)])
                        .unwrap();
                    assert!(r > last);
                    last = r;
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(store.revision().unwrap(), 100);
    let mut versions: Vec<u64> = store
        .list("")
        .unwrap()
        .iter()
        .map(|(_, v)| v.version)
        .collect();
    versions.sort();
    assert_eq!(versions, (1..=100).collect::<Vec<_>>());
}

#[test]
fn cas_loop_under_contention() {
    // increment a counter from several threads with compare-and-set retries
    let (_dir, store) = open();
    let store = std::sync::Arc::new(store);
    store.put_json("counter", &0u64, Expect::Absent).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                for _ in 0..25 {
                    loop {
                        let cur = store.get_json::<u64>("counter").unwrap().unwrap();
                        match store.put_json(
                            "counter",
                            &(cur.value + 1),
                            Expect::Version(cur.version),
                        ) {
                            Ok(_) => break,
                            Err(StoreError::Conflict { .. }) => continue,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(
        store.get_json::<u64>("counter").unwrap().unwrap().value,
        100
    );
}

#[tokio::test]
async fn watch_sees_its_prefix_only() {
    let (_dir, store) = open();
    store
        .apply(vec![put("network/old", "o", Expect::Any)])
        .unwrap();
    let mut networks = store.watch("network/");
    let mut all = store.watch("");
    store
        .apply(vec![
            put("endpoint/e1", "E", Expect::Any),
            put("network/n1", "N", Expect::Any),
        ])
        .unwrap();
    store
        .apply(vec![
            del("network/old", Expect::Any),
            del("network/never", Expect::Any),
        ])
        .unwrap();
    store
        .apply(vec![put("endpoint/e2", "E", Expect::Any)])
        .unwrap();

    assert_eq!(
        networks.recv().await.unwrap(),
        Event::Put {
            key: "network/n1".into(),
            value: b"N".to_vec(),
            version: 2
        }
    );
    assert_eq!(
        networks.recv().await.unwrap(),
        Event::Delete {
            key: "network/old".into(),
            version: 3
        }
    );
    assert!(matches!(
        networks.try_recv(),
        Err(broadcast::error::TryRecvError::Empty)
    ));
    assert_eq!(networks.prefix(), "network/");

    let mut seen = Vec::new();
    while let Ok(e) = all.try_recv() {
        seen.push((e.key().to_string(), e.version()));
    }
    assert_eq!(
        seen,
        [
            ("endpoint/e1".to_string(), 2),
            ("network/n1".to_string(), 2),
            ("network/old".to_string(), 3),
            ("endpoint/e2".to_string(), 4)
        ]
    );

    // a failed batch sends nothing
    let mut w = store.watch("network/");
    assert!(
        store
            .apply(vec![put("network/n1", "x", Expect::Absent)])
            .is_err()
    );
    assert!(w.try_recv().is_err());
}

#[tokio::test]
async fn lagging_watcher_gets_lagged() {
    let (_dir, store) = open();
    let mut w = store.watch("k/");
    let ops: Vec<Op> = (0..WATCH_CAPACITY + 10)
        .map(|i| put(&format!("k/{i:05}"), "v", Expect::Any))
        .collect();
    store.apply(ops).unwrap();
    assert!(matches!(
        w.recv().await,
        Err(broadcast::error::RecvError::Lagged(10))
    ));
    assert!(w.recv().await.is_ok());
}

#[test]
fn reopen_keeps_data_and_revision() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dirs/netloom.db");
    {
        let store = EmbeddedStore::open(&path).unwrap();
        store.apply(vec![put("a", "1", Expect::Any)]).unwrap();
        store
            .apply(vec![
                put("b", "2", Expect::Any),
                put("a", "3", Expect::Version(1)),
            ])
            .unwrap();
        assert_eq!(store.path(), path);
    }
    let store = EmbeddedStore::open(&path).unwrap();
    assert_eq!(store.revision().unwrap(), 2);
    assert_eq!(value(&store, "a").as_deref(), Some("3"));
    assert_eq!(store.get("b").unwrap().unwrap().version, 2);
    assert_eq!(store.apply(vec![put("c", "", Expect::Absent)]).unwrap(), 3);
}

#[test]
fn second_open_is_refused() {
    let (dir, _store) = open();
    let path = dir.path().join("netloom.db");
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

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Network {
    name: String,
    subnet: String,
}

#[test]
fn json_helpers() {
    let (_dir, store) = open();
    let a = Network {
        name: "a".into(),
        subnet: "172.18.0.0/16".into(),
    };
    let r = store.put_json("network/a", &a, Expect::Absent).unwrap();
    let op = Op::put_json(
        "network/b",
        &Network {
            name: "b".into(),
            subnet: "172.19.0.0/16".into(),
        },
        Expect::Absent,
    )
    .unwrap();
    assert_eq!(op.key(), "network/b");
    store
        .apply(vec![op, put("other", "not json", Expect::Any)])
        .unwrap();

    let got = store.get_json::<Network>("network/a").unwrap().unwrap();
    assert_eq!(
        got,
        Versioned {
            value: a,
            version: r
        }
    );
    assert!(store.get_json::<Network>("network/zz").unwrap().is_none());
    let list = store.list_json::<Network>("network/").unwrap();
    assert_eq!(
        list.iter()
            .map(|(k, v)| (k.as_str(), v.value.name.as_str()))
            .collect::<Vec<_>>(),
        [("network/a", "a"), ("network/b", "b")]
    );
    let err = store.get_json::<Network>("other").unwrap_err();
    assert!(matches!(err, StoreError::Decode { .. }));
    assert!(
        err.to_string()
            .starts_with("cannot decode value of key other"),
        "{err}"
    );
    assert!(store.list_json::<Network>("").is_err());

    // through a trait object too
    let dynstore: &dyn KvStore = &store;
    assert!(dynstore.get_json::<Network>("network/b").unwrap().is_some());

    // a map with non-string keys cannot be JSON
    let bad: std::collections::HashMap<(u8, u8), u8> = [((1, 2), 3)].into();
    let err = Op::put_json("bad", &bad, Expect::Any).unwrap_err();
    assert!(matches!(err, StoreError::Encode { .. }), "{err:?}");
}

#[test]
fn damaged_store_files_give_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.db");
    {
        let store = EmbeddedStore::open(&good).unwrap();
        for i in 0..50 {
            store
                .apply(vec![put(&format!("k/{i}"), &"v".repeat(500), Expect::Any)])
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
