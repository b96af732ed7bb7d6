//! Crash safety: a child process commits numbered batches in a loop and is
//! SIGKILLed; after reopening, every batch is whole and every batch the child
//! reported as committed is there.
//!
//! The child is this test binary itself, re-run on the `crash_child_writer`
//! test with `NETLOOM_STORE_CRASH_CHILD` set to the store path.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netloom_store::{EmbeddedStore, Expect, Op, Store, StoreError};

const CHILD_ENV: &str = "NETLOOM_STORE_CRASH_CHILD";

/// Runs a store call to completion (the tests here are synchronous).
fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn batch_key(i: u64, part: &str) -> String {
    format!("batch/{i:08}/{part}")
}

/// The child: commits batches {a, b, last} numbered from `last + 1` on,
/// printing each number once committed, until killed.
#[test]
fn crash_child_writer() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return; // only meaningful as a child of `killed_writer_leaves_whole_batches`
    };
    let store = EmbeddedStore::open(Path::new(&path)).unwrap();
    let mut i = match block(store.get("last")).unwrap() {
        Some(v) => String::from_utf8(v.value).unwrap().parse::<u64>().unwrap(),
        None => 0,
    };
    let payload = vec![0xabu8; 3000];
    loop {
        i += 1;
        block(store.apply(vec![
            Op::put(batch_key(i, "a"), payload.clone(), Expect::Absent),
            Op::put(batch_key(i, "b"), payload.clone(), Expect::Absent),
            Op::put("last", i.to_string(), Expect::Any),
        ]))
        .unwrap();
        println!("committed {i}");
    }
}

/// Checks the store: batches 1..=last all whole, nothing beyond `last`,
/// and at least `reported` batches there.
fn check(path: &Path, reported: u64) -> u64 {
    let store = EmbeddedStore::open(path).unwrap();
    let last = match block(store.get("last")).unwrap() {
        Some(v) => String::from_utf8(v.value).unwrap().parse::<u64>().unwrap(),
        None => 0,
    };
    assert!(
        last >= reported,
        "batch {reported} reported committed but store ends at {last}"
    );
    let keys = block(store.list("batch/")).unwrap().items;
    assert_eq!(keys.len() as u64, 2 * last, "torn or extra batches");
    for i in 1..=last {
        let a = block(store.get(&batch_key(i, "a"))).unwrap();
        let b = block(store.get(&batch_key(i, "b"))).unwrap();
        match (a, b) {
            (Some(a), Some(b)) => {
                assert_eq!(a.version, b.version, "batch {i} split across revisions");
                assert_eq!(a.value.len(), 3000);
                assert_eq!(b.value.len(), 3000);
            }
            (a, b) => panic!(
                "batch {i} torn: a present {}, b present {}",
                a.is_some(),
                b.is_some()
            ),
        }
    }
    assert_eq!(
        block(store.revision()).unwrap(),
        last,
        "revision out of step"
    );
    last
}

#[test]
fn killed_writer_leaves_whole_batches() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("netloom.db");
    let exe = std::env::current_exe().unwrap();
    let mut total = 0;
    // kill after a varying number of commits, several times over the same file
    for (round, kill_after) in [5u64, 37, 120, 11, 64].into_iter().enumerate() {
        let mut child = Command::new(&exe)
            .args([
                "crash_child_writer",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut reported = 0;
        let mut seen = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        // keep the pipe open until the child is dead, so it dies by SIGKILL
        // (possibly mid-commit), not by a broken pipe after a commit
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(n) = line.strip_prefix("committed ") {
                reported = n.trim().parse().unwrap();
                seen += 1;
                if seen >= kill_after {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "child too slow");
        }
        assert_eq!(seen, kill_after, "child stopped early (round {round})");
        // a second process cannot open the store the child holds
        match EmbeddedStore::open(&path) {
            Err(e @ StoreError::InUse { .. }) => assert_eq!(
                e.to_string(),
                format!("store {} is in use by another process", path.display())
            ),
            other => panic!("expected in use, got {other:?}"),
        }
        // std's Child::kill sends SIGKILL on Unix
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(9), "child not killed: {status}");
        drop(lines);
        let last = check(&path, reported);
        assert!(last >= total + kill_after);
        total = last;
    }
}
