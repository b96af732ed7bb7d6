//! Forwarding against fake upstreams on 127.0.0.1 (no root).

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Mode, addrs, fake_upstream, parse, query};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use netloom_resolver::{FlatSandbox, Record, Resolver, ResolverConfig, Snapshot};

fn resolver_with(cfg: ResolverConfig, sandboxes: &[(&str, Vec<SocketAddr>)]) -> Arc<Resolver> {
    let r = Resolver::new(cfg);
    let mut map = HashMap::new();
    for (id, ups) in sandboxes {
        let rec = Record {
            names: vec!["c1".into()],
            addrs: vec!["172.18.0.2".parse().unwrap()],
            ptr_name: "c1.localnet".into(),
        };
        map.insert(
            (*id).to_owned(),
            FlatSandbox::new(vec![rec], ups.clone(), true),
        );
    }
    r.publish(Snapshot { sandboxes: map });
    r
}

fn cfg(budget_ms: u64) -> ResolverConfig {
    ResolverConfig {
        upstream_timeout: Duration::from_millis(budget_ms),
        ..ResolverConfig::default()
    }
}

#[tokio::test]
async fn relays_with_client_id() {
    let up = fake_upstream(Mode::Answer { answers: 2 }).await;
    let r = resolver_with(cfg(2000), &[("sb", vec![up.addr])]);
    let resp = r
        .handle(
            "sb",
            &query("Example.COM.", RecordType::A, 0xbeef, None),
            false,
        )
        .await
        .unwrap();
    let m = parse(&resp);
    assert_eq!(m.metadata.id, 0xbeef);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addrs(&m).len(), 2);
    assert_eq!(m.queries[0].name().to_ascii(), "Example.COM.");
    assert_eq!(up.udp_count(), 1);

    // Local names never reach the upstream.
    let m = parse(
        &r.handle("sb", &query("c1", RecordType::A, 1, None), false)
            .await
            .unwrap(),
    );
    assert_eq!(
        addrs(&m),
        vec!["172.18.0.2".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(up.udp_count(), 1);

    // Unknown reverse names are forwarded.
    let m = parse(
        &r.handle(
            "sb",
            &query("9.9.9.10.in-addr.arpa.", RecordType::PTR, 2, None),
            false,
        )
        .await
        .unwrap(),
    );
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(up.udp_count(), 2);
}

#[tokio::test]
async fn cache_hit_patches_id() {
    let up = fake_upstream(Mode::Answer { answers: 1 }).await;
    let r = resolver_with(cfg(2000), &[("sb", vec![up.addr])]);
    let a = parse(
        &r.handle(
            "sb",
            &query("cached.example.", RecordType::A, 100, None),
            false,
        )
        .await
        .unwrap(),
    );
    let b = parse(
        &r.handle(
            "sb",
            &query("CACHED.example.", RecordType::A, 200, None),
            false,
        )
        .await
        .unwrap(),
    );
    assert_eq!(up.udp_count(), 1, "second query must be a cache hit");
    assert_eq!(a.metadata.id, 100);
    assert_eq!(b.metadata.id, 200);
    assert_eq!(b.queries[0].name().to_ascii(), "CACHED.example.");
    assert_eq!(addrs(&a), addrs(&b));

    // Negative answers are cached too.
    for id in [1, 2] {
        let m = parse(
            &r.handle("sb", &query("nx.example.", RecordType::A, id, None), false)
                .await
                .unwrap(),
        );
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(m.metadata.id, id);
    }
    assert_eq!(up.udp_count(), 2);
}

#[tokio::test]
async fn truncated_upstream_retried_over_tcp() {
    let up = fake_upstream(Mode::Truncate { answers: 5 }).await;
    let r = resolver_with(cfg(2000), &[("sb", vec![up.addr])]);
    let m = parse(
        &r.handle("sb", &query("tc.example.", RecordType::A, 9, None), false)
            .await
            .unwrap(),
    );
    assert_eq!(m.metadata.id, 9);
    assert!(!m.metadata.truncation);
    assert_eq!(addrs(&m).len(), 5);
    assert_eq!(up.udp_count(), 1);
    assert_eq!(up.tcp_count(), 1);
}

#[tokio::test]
async fn big_upstream_answer_truncated_for_udp_client() {
    // 60 A records (~1 KB) do not fit a 512-byte client.
    let up = fake_upstream(Mode::Truncate { answers: 60 }).await;
    let r = resolver_with(cfg(2000), &[("sb", vec![up.addr])]);
    let resp = r
        .handle("sb", &query("big.example.", RecordType::A, 3, None), false)
        .await
        .unwrap();
    assert!(resp.len() <= 512);
    let m = parse(&resp);
    assert!(m.metadata.truncation);
    // The client retries over TCP and gets everything (from the cache).
    let m = parse(
        &r.handle("sb", &query("big.example.", RecordType::A, 4, None), true)
            .await
            .unwrap(),
    );
    assert_eq!(addrs(&m).len(), 60);
    assert_eq!(m.metadata.id, 4);
    assert_eq!(up.tcp_count(), 1);
}

#[tokio::test]
async fn dead_server_is_backed_off() {
    let dead = fake_upstream(Mode::Silent).await;
    let alive = fake_upstream(Mode::Answer { answers: 1 }).await;
    let r = resolver_with(cfg(1000), &[("sb", vec![dead.addr, alive.addr])]);

    let t = Instant::now();
    let m = parse(
        &r.handle("sb", &query("one.example.", RecordType::A, 1, None), false)
            .await
            .unwrap(),
    );
    let first = t.elapsed();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(
        first >= Duration::from_millis(400),
        "dead server got its share: {first:?}"
    );
    assert!(first < Duration::from_millis(1000), "{first:?}");

    let t = Instant::now();
    let m = parse(
        &r.handle("sb", &query("two.example.", RecordType::A, 2, None), false)
            .await
            .unwrap(),
    );
    let second = t.elapsed();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(
        second < Duration::from_millis(300),
        "backed-off server skipped: {second:?}"
    );
    assert_eq!(dead.udp_count(), 1);
    assert_eq!(alive.udp_count(), 2);
}

#[tokio::test]
async fn all_dead_servfail_within_budget() {
    let d1 = fake_upstream(Mode::Silent).await;
    let d2 = fake_upstream(Mode::Silent).await;
    let r = resolver_with(cfg(600), &[("sb", vec![d1.addr, d2.addr])]);
    let t = Instant::now();
    let m = parse(
        &r.handle("sb", &query("x.example.", RecordType::A, 77, None), false)
            .await
            .unwrap(),
    );
    let took = t.elapsed();
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(m.metadata.id, 77);
    assert!(took < Duration::from_millis(900), "over budget: {took:?}");
    assert_eq!((d1.udp_count(), d2.udp_count()), (1, 1));

    // Both backed off: they are still tried (nothing else is available), within budget.
    let t = Instant::now();
    let m = parse(
        &r.handle("sb", &query("y.example.", RecordType::A, 78, None), false)
            .await
            .unwrap(),
    );
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(t.elapsed() < Duration::from_millis(900));
}

#[tokio::test]
async fn per_sandbox_inflight_limit() {
    let dead = fake_upstream(Mode::Silent).await;
    let alive = fake_upstream(Mode::Answer { answers: 1 }).await;
    let cfg = ResolverConfig {
        per_sandbox_inflight: 2,
        ..cfg(1500)
    };
    let r = resolver_with(
        cfg,
        &[("flood", vec![dead.addr]), ("calm", vec![alive.addr])],
    );
    let mut pending = Vec::new();
    for i in 0..2u16 {
        let r = Arc::clone(&r);
        pending.push(tokio::spawn(async move {
            r.handle(
                "flood",
                &query(&format!("f{i}.example."), RecordType::A, i, None),
                false,
            )
            .await
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Third concurrent forward of the flooding sandbox: SERVFAIL at once.
    let t = Instant::now();
    let m = parse(
        &r.handle(
            "flood",
            &query("f3.example.", RecordType::A, 3, None),
            false,
        )
        .await
        .unwrap(),
    );
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(
        t.elapsed() < Duration::from_millis(250),
        "not immediate: {:?}",
        t.elapsed()
    );
    // Another sandbox is not starved.
    let m = parse(
        &r.handle("calm", &query("ok.example.", RecordType::A, 4, None), false)
            .await
            .unwrap(),
    );
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    for p in pending {
        let m = parse(&p.await.unwrap().unwrap());
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    }
}

#[tokio::test]
async fn global_inflight_limit() {
    let dead = fake_upstream(Mode::Silent).await;
    let cfg = ResolverConfig {
        max_inflight: 1,
        ..cfg(800)
    };
    let r = resolver_with(cfg, &[("a", vec![dead.addr]), ("b", vec![dead.addr])]);
    let r2 = Arc::clone(&r);
    let first = tokio::spawn(async move {
        r2.handle("a", &query("g1.example.", RecordType::A, 1, None), false)
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    let m = parse(
        &r.handle("b", &query("g2.example.", RecordType::A, 2, None), false)
            .await
            .unwrap(),
    );
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(
        t.elapsed() < Duration::from_millis(250),
        "not immediate: {:?}",
        t.elapsed()
    );
    assert!(first.await.unwrap().is_some());
}
