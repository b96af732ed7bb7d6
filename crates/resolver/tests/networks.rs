//! Names published per network (`set_records` / `set_sandbox`) through `Resolver::handle`,
//! for what pre-encoded answers could get wrong (no root, no network).

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use common::{addrs, parse, query};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use netloom_resolver::{Record, Resolver, ResolverConfig};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn rec(name: &str, net: &str, addrs: &[IpAddr], aliases: &[&str]) -> Record {
    let mut names = vec![name.to_string(), format!("{name}.{net}")];
    for a in aliases {
        names.push(a.to_string());
        names.push(format!("{a}.{net}"));
    }
    Record {
        names,
        addrs: addrs.to_vec(),
        ptr_name: format!("{name}.{net}"),
    }
}

async fn ask(r: &Resolver, sb: &str, name: &str, t: RecordType, edns: Option<u16>) -> Message {
    let bytes = r
        .handle(sb, &query(name, t, 0x1234, edns), false)
        .await
        .expect("an answer");
    let m = parse(&bytes);
    assert_eq!(m.metadata.id, 0x1234);
    m
}

/// Two networks with a container of the same name and alias on each.
fn twins() -> Arc<Resolver> {
    let r = Resolver::new(ResolverConfig::default());
    r.set_records(
        "x1",
        vec![("n1".into(), rec("db", "n1", &[ip("10.1.0.2")], &["store"]))],
    );
    r.set_records(
        "x2",
        vec![("n2".into(), rec("db", "n2", &[ip("10.2.0.2")], &["store"]))],
    );
    r.set_records(
        "c1",
        vec![("n1".into(), rec("c1", "n1", &[ip("10.1.0.3")], &[]))],
    );
    r.set_records(
        "c2",
        vec![("n2".into(), rec("c2", "n2", &[ip("10.2.0.3")], &[]))],
    );
    r.set_sandbox("c1", &["n1".into()], vec![], true);
    r.set_sandbox("c2", &["n2".into()], vec![], true);
    r
}

#[tokio::test]
async fn same_name_answers_each_sandbox_with_its_own_network() {
    let r = twins();
    for round in 0..3 {
        for name in ["db", "DB", "store", "db.n1", "Store.N1"] {
            let m = ask(&r, "c1", name, RecordType::A, None).await;
            assert_eq!(addrs(&m), vec![ip("10.1.0.2")], "c1 {name} round {round}");
        }
        for name in ["db", "dB", "store", "db.n2"] {
            let m = ask(&r, "c2", name, RecordType::A, None).await;
            assert_eq!(addrs(&m), vec![ip("10.2.0.2")], "c2 {name} round {round}");
        }
        // The other network's qualified name is not visible.
        let m = ask(&r, "c2", "db.n1", RecordType::A, None).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    }
}

#[tokio::test]
async fn changed_address_is_answered_right_after_the_change() {
    let r = twins();
    assert_eq!(
        addrs(&ask(&r, "c1", "db", RecordType::A, None).await),
        vec![ip("10.1.0.2")]
    );
    r.set_records(
        "x1",
        vec![("n1".into(), rec("db", "n1", &[ip("10.1.0.9")], &["store"]))],
    );
    for name in ["db", "store", "db.n1"] {
        let m = ask(&r, "c1", name, RecordType::A, None).await;
        assert_eq!(addrs(&m), vec![ip("10.1.0.9")], "{name} after the move");
    }
    // The reverse entry moved too.
    let m = ask(&r, "c1", "9.0.1.10.in-addr.arpa", RecordType::PTR, None).await;
    let RData::PTR(p) = &m.answers[0].data else {
        panic!("{m:?}");
    };
    assert_eq!(p.0.to_ascii(), "db.n1.");
    let m = ask(&r, "c1", "2.0.1.10.in-addr.arpa", RecordType::PTR, None).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    // Withdrawn: gone at once, the other network untouched.
    r.set_records("x1", Vec::new());
    let m = ask(&r, "c1", "db", RecordType::A, None).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(
        addrs(&ask(&r, "c2", "db", RecordType::A, None).await),
        vec![ip("10.2.0.2")]
    );
    // A sandbox connected to a second network sees its names, first network first.
    r.set_sandbox("c1", &["n1".into(), "n2".into()], vec![], true);
    assert_eq!(
        addrs(&ask(&r, "c1", "c2", RecordType::A, None).await),
        vec![ip("10.2.0.3")]
    );
    r.set_sandbox("c1", &["n1".into()], vec![], true);
    let m = ask(&r, "c1", "c2", RecordType::A, None).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
}

#[tokio::test]
async fn name_on_two_shared_networks_gives_both_addresses() {
    let r = twins();
    r.set_sandbox("both", &["n1".into(), "n2".into()], vec![], true);
    let m = ask(&r, "both", "store", RecordType::A, None).await;
    let got: BTreeSet<IpAddr> = addrs(&m).into_iter().collect();
    assert_eq!(got, [ip("10.1.0.2"), ip("10.2.0.2")].into());
}

#[tokio::test]
async fn edns_and_upper_case_and_tcp() {
    let r = twins();
    let m = ask(&r, "c1", "DB.N1.", RecordType::A, Some(1232)).await;
    assert_eq!(addrs(&m), vec![ip("10.1.0.2")]);
    assert_eq!(
        m.queries[0].name().to_ascii(),
        "DB.N1.",
        "question echoed as asked"
    );
    assert_eq!(
        m.answers[0].name.to_ascii(),
        "DB.N1.",
        "answer named as asked"
    );
    let edns = m.edns.expect("an OPT record answers an OPT record");
    assert_eq!(edns.max_payload(), 1232);
    assert!(m.metadata.authoritative && m.metadata.recursion_desired);
    let m = ask(&r, "c1", "db", RecordType::A, None).await;
    assert!(m.edns.is_none(), "no OPT record without one in the query");
    // TCP through the same path.
    let bytes = r
        .handle("c1", &query("Store", RecordType::A, 9, None), true)
        .await
        .unwrap();
    let m = parse(&bytes);
    assert_eq!((m.metadata.id, addrs(&m)), (9, vec![ip("10.1.0.2")]));
}

#[tokio::test]
async fn big_round_robin_sets_truncate_and_still_rotate() {
    let r = Resolver::new(ResolverConfig::default());
    let n = 300usize;
    for i in 0..n {
        let a = IpAddr::from([10, 3, (i / 250) as u8, (i % 250 + 1) as u8]);
        r.set_records(
            &format!("w{i}"),
            vec![("n".into(), rec(&format!("w{i}"), "n", &[a], &["web"]))],
        );
    }
    r.set_sandbox("sb", &["n".into()], vec![], true);
    // Without EDNS: 512 bytes, TC=1, as many whole records as fit.
    let q = query("web", RecordType::A, 1, None);
    let mut firsts = BTreeSet::new();
    for _ in 0..5 {
        let bytes = r.handle("sb", &q, false).await.unwrap();
        assert!(bytes.len() <= 512);
        let m = parse(&bytes);
        assert!(m.metadata.truncation);
        assert_eq!(m.answers.len(), (512 - 12 - 9) / 16);
        firsts.insert(addrs(&m)[0]);
    }
    assert_eq!(firsts.len(), 5, "the truncated prefix rotates");
    // EDNS 1232: more, still truncated; TCP: all of them.
    let m = ask(&r, "sb", "web", RecordType::A, Some(1232)).await;
    assert!(m.metadata.truncation);
    assert_eq!(m.answers.len(), (1232 - 12 - 9 - 11) / 16);
    let bytes = r.handle("sb", &q, true).await.unwrap();
    let m = parse(&bytes);
    assert!(!m.metadata.truncation);
    let all: BTreeSet<IpAddr> = addrs(&m).into_iter().collect();
    assert_eq!(all.len(), n);
    // A client announcing 65535 gets everything over UDP too (built by the general path
    // when it exceeds the fast path's buffer).
    let m = ask(&r, "sb", "web", RecordType::A, Some(65535)).await;
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), n);
}
