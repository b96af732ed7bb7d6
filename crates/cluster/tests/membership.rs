//! SWIM membership on loopback UDP: members find each other from one announce, a
//! stopped member is seen down, a restarted one (same node ID) up again, and a
//! member without the cluster's key never counts.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use netloom_cluster::membership::{Membership, MembershipConfig};

async fn member(id: &str, key: [u8; 32]) -> Membership {
    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
    Membership::start(MembershipConfig {
        node_id: id.into(),
        bind,
        advertise: bind,
        key,
        cluster_size: 3,
    })
    .await
    .unwrap()
}

async fn until(timeout: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if f() {
            return Some(t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_down_and_back_up() {
    let key = [7u8; 32];
    let a = member("a", key).await;
    let b = member("b", key).await;
    let mut c = member("c", key).await;
    b.announce(a.local_addr());
    c.announce(a.local_addr());
    let all = |m: &Membership, n: usize| m.members().len() == n;
    assert!(
        until(Duration::from_secs(5), || all(&a, 2)
            && all(&b, 2)
            && all(&c, 2))
        .await
        .is_some(),
        "a={:?} b={:?} c={:?}",
        a.members(),
        b.members(),
        c.members()
    );

    // c dies without a word (as kill -9 would): both others see it down.
    let c_addr = c.local_addr();
    drop(c);
    let t = until(Duration::from_secs(10), || !a.is_up("c") && !b.is_up("c")).await;
    assert!(t.is_some(), "c not down within 10 s: a={:?}", a.members());
    eprintln!("down after {t:?}");

    // c comes back with the same node ID (a new incarnation) on the same port.
    c = Membership::start(MembershipConfig {
        node_id: "c".into(),
        bind: c_addr,
        advertise: c_addr,
        key,
        cluster_size: 3,
    })
    .await
    .unwrap();
    c.announce(a.local_addr());
    assert!(
        until(Duration::from_secs(10), || a.is_up("c")
            && b.is_up("c")
            && all(&c, 2))
        .await
        .is_some()
    );

    // A graceful leave is seen at once.
    c.leave().await;
    assert!(
        until(Duration::from_secs(3), || !a.is_up("c"))
            .await
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_without_the_key_never_counts() {
    let a = member("a", [1u8; 32]).await;
    let intruder = member("x", [2u8; 32]).await;
    intruder.announce(a.local_addr());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(a.members().is_empty(), "{:?}", a.members());
    assert!(intruder.members().is_empty());
}
