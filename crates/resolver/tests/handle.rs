//! Local answers through `Resolver::handle` (no root, no network).

mod common;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{addrs, parse, query};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use netloom_resolver::{FlatSandbox, Record, Resolver, ResolverConfig, Snapshot};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn records() -> Vec<Record> {
    vec![
        Record {
            names: vec![
                "c1".into(),
                "c1.localnet".into(),
                "web".into(),
                "3f2a1b4c5d6e".into(),
                "myhost".into(),
            ],
            addrs: vec![ip("172.18.0.2"), ip("fd00:18::2")],
            ptr_name: "c1.localnet".into(),
        },
        Record {
            names: vec!["c2".into(), "c2.localnet".into(), "web".into()],
            addrs: vec![ip("172.18.0.3")],
            ptr_name: "c2.localnet".into(),
        },
        Record {
            names: vec!["big".into()],
            addrs: (1..=100u8).map(|i| IpAddr::from([10, 1, 0, i])).collect(),
            ptr_name: "big.localnet".into(),
        },
    ]
}

fn resolver() -> Arc<Resolver> {
    let r = Resolver::new(ResolverConfig::default());
    let mut sandboxes = HashMap::new();
    // forward enabled but no upstream: non-local names get NXDOMAIN.
    sandboxes.insert("sb1".to_owned(), FlatSandbox::new(records(), vec![], true));
    // internal network: an upstream is configured but must never be used.
    sandboxes.insert(
        "internal".to_owned(),
        FlatSandbox::new(records(), vec!["192.0.2.1:53".parse().unwrap()], false),
    );
    r.publish(Snapshot { sandboxes });
    r
}

async fn ask(r: &Resolver, sb: &str, name: &str, t: RecordType) -> hickory_proto::op::Message {
    let resp = r
        .handle(sb, &query(name, t, 0x4242, None), false)
        .await
        .unwrap();
    let m = parse(&resp);
    assert_eq!(m.metadata.id, 0x4242);
    m
}

#[tokio::test]
async fn a_record() {
    let r = resolver();
    let m = ask(&r, "sb1", "c1.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert_eq!(addrs(&m), vec![ip("172.18.0.2")]);
    assert_eq!(m.answers[0].ttl, 600);
    assert_eq!(m.queries[0].name().to_ascii(), "c1.");
    for alias in ["c1.localnet.", "3f2a1b4c5d6e.", "myhost"] {
        let m = ask(&r, "sb1", alias, RecordType::A).await;
        assert_eq!(addrs(&m), vec![ip("172.18.0.2")], "{alias}");
    }
}

#[tokio::test]
async fn aaaa_record() {
    let r = resolver();
    let m = ask(&r, "sb1", "c1.localnet.", RecordType::AAAA).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addrs(&m), vec![ip("fd00:18::2")]);
}

#[tokio::test]
async fn alias_with_several_addresses_rotates() {
    let r = resolver();
    let mut firsts = Vec::new();
    for _ in 0..4 {
        let m = ask(&r, "sb1", "web.", RecordType::A).await;
        let mut got = addrs(&m);
        firsts.push(got[0]);
        got.sort();
        assert_eq!(got, vec![ip("172.18.0.2"), ip("172.18.0.3")]);
    }
    assert_ne!(firsts[0], firsts[1]);
    assert_eq!(firsts[0], firsts[2]);
}

#[tokio::test]
async fn ptr_v4_and_v6() {
    let r = resolver();
    let m = ask(&r, "sb1", "2.0.18.172.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    let RData::PTR(p) = &m.answers[0].data else {
        panic!("not a PTR: {m:?}");
    };
    assert_eq!(p.0.to_ascii(), "c1.localnet.");

    let v6 = "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.1.0.0.0.0.d.f.ip6.arpa.";
    let m = ask(&r, "sb1", v6, RecordType::PTR).await;
    let RData::PTR(p) = &m.answers[0].data else {
        panic!("not a PTR: {m:?}");
    };
    assert_eq!(p.0.to_ascii(), "c1.localnet.");

    // Unknown reverse name: not local; no upstream here, so NXDOMAIN.
    let m = ask(&r, "sb1", "9.9.9.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
}

#[tokio::test]
async fn case_insensitive() {
    let r = resolver();
    let m = ask(&r, "sb1", "C1.LocalNET.", RecordType::A).await;
    assert_eq!(addrs(&m), vec![ip("172.18.0.2")]);
    // The question is echoed with the client's spelling.
    assert_eq!(m.queries[0].name().to_ascii(), "C1.LocalNET.");
}

#[tokio::test]
async fn name_without_aaaa_is_nodata() {
    let r = resolver();
    let m = ask(&r, "sb1", "c2", RecordType::AAAA).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    // Other types for a local name: NODATA too, not forwarded.
    let m = ask(&r, "internal", "c2", RecordType::MX).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
}

#[tokio::test]
async fn unknown_sandbox_refused() {
    let r = resolver();
    let m = ask(&r, "nope", "c1", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
}

#[tokio::test]
async fn forward_disabled_is_nxdomain() {
    let r = resolver();
    let t = Instant::now();
    let m = ask(&r, "internal", "example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(!m.metadata.recursion_available);
    assert!(t.elapsed() < Duration::from_millis(500), "must not forward");
    // Local names still answer on internal networks.
    let m = ask(&r, "internal", "c1", RecordType::A).await;
    assert_eq!(addrs(&m), vec![ip("172.18.0.2")]);
}

#[tokio::test]
async fn publish_replaces_view() {
    let r = resolver();
    let mut sandboxes = HashMap::new();
    sandboxes.insert(
        "sb1".to_owned(),
        FlatSandbox::new(
            vec![Record {
                names: vec!["c9".into()],
                addrs: vec![ip("172.18.0.9")],
                ptr_name: "c9".into(),
            }],
            vec![],
            false,
        ),
    );
    r.publish(Snapshot { sandboxes });
    let m = ask(&r, "sb1", "c9", RecordType::A).await;
    assert_eq!(addrs(&m), vec![ip("172.18.0.9")]);
    let m = ask(&r, "sb1", "c1", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
}

#[tokio::test]
async fn truncation_and_tcp() {
    let r = resolver();
    let q = query("big", RecordType::A, 7, None);
    let udp = r.handle("sb1", &q, false).await.unwrap();
    assert!(udp.len() <= 512);
    let m = parse(&udp);
    assert!(m.metadata.truncation);
    assert!(!m.answers.is_empty() && m.answers.len() < 100);

    // EDNS 4096: everything fits; our OPT is echoed.
    let q = query("big", RecordType::A, 7, Some(4096));
    let m = parse(&r.handle("sb1", &q, false).await.unwrap());
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 100);
    assert!(m.edns.is_some());

    let q = query("big", RecordType::A, 7, None);
    let m = parse(&r.handle("sb1", &q, true).await.unwrap());
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 100);
}

#[tokio::test]
async fn malformed_dropped() {
    let r = resolver();
    assert!(r.handle("sb1", b"", false).await.is_none());
    assert!(r.handle("sb1", b"\x12\x34", false).await.is_none());
    assert!(r.handle("sb1", &[0xffu8; 40], false).await.is_none());
    // A response is not a query.
    let resp = r
        .handle("sb1", &query("c1", RecordType::A, 1, None), false)
        .await
        .unwrap();
    assert!(r.handle("sb1", &resp, false).await.is_none());
}

/// xorshift64*: deterministic, dependency-free.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[tokio::test]
async fn random_bytes_never_panic() {
    let r = resolver();
    let seeds = [
        query("c1.localnet", RecordType::A, 1, Some(1232)),
        query("2.0.18.172.in-addr.arpa", RecordType::PTR, 2, None),
        query("big", RecordType::ANY, 3, None),
    ];
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let start = Instant::now();
    let mut answered = 0usize;
    for i in 0..100_000u32 {
        let buf: Vec<u8> = if i % 2 == 0 {
            // Pure noise, 0..600 bytes.
            let len = (rng.next() % 600) as usize;
            (0..len).map(|_| rng.next() as u8).collect()
        } else {
            // Mutated valid queries reach deeper code.
            let mut b = seeds[(rng.next() % 3) as usize].clone();
            for _ in 0..(1 + rng.next() % 4) {
                let pos = (rng.next() as usize) % b.len();
                b[pos] = rng.next() as u8;
            }
            if rng.next().is_multiple_of(4) {
                let cut = (rng.next() as usize) % b.len();
                b.truncate(cut);
            }
            b
        };
        let sb = if i % 3 == 0 { "internal" } else { "sb1" };
        if let Some(resp) = r.handle(sb, &buf, i % 5 == 0).await {
            answered += 1;
            assert!(resp.len() >= 12);
            if i % 5 != 0 {
                assert!(resp.len() <= 4096, "UDP answer over any EDNS limit");
            }
        }
    }
    assert!(
        answered > 1000,
        "mutations should produce answers: {answered}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(120),
        "fuzz loop too slow: {:?}",
        start.elapsed()
    );
}
