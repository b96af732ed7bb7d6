//! Unit tests across modules: the cost of an update, sharing of network views, and the
//! fast path checked against the general (hickory) path.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};

use crate::server::Step;
use crate::wire::{self, FastQuery};
use crate::{Record, Resolver, ResolverConfig};

fn rec(name: &str, net: &str, addrs: &[IpAddr]) -> Record {
    Record {
        names: vec![name.into(), format!("{name}.{net}"), format!("id-{name}")],
        addrs: addrs.to_vec(),
        ptr_name: format!("{name}.{net}"),
    }
}

fn v4(i: usize) -> IpAddr {
    let b = u32::try_from(i).unwrap().to_be_bytes();
    IpAddr::from([10, b[1], b[2], b[3]])
}

/// A host with `n` containers on one big network plus `n` networks with one container each;
/// every container has a sandbox.
fn host(n: usize) -> Arc<Resolver> {
    let r = Resolver::new(ResolverConfig::default());
    for i in 0..n {
        let c = format!("big{i}");
        r.set_records(&c, vec![("big".into(), rec(&c, "big", &[v4(i)]))]);
        r.set_sandbox(&c, &["big".into()], vec![], true);
        let s = format!("small{i}");
        let net = format!("net{i}");
        r.set_records(&s, vec![(net.clone(), rec(&s, &net, &[v4(100_000 + i)]))]);
        r.set_sandbox(&s, &[net], vec![], true);
    }
    r
}

/// The work of one change: a container starts on the big network and one small one,
/// moves address, then stops.
fn change_cost(r: &Resolver) -> u64 {
    let before = r.entries_built();
    let nets = vec!["big".to_string(), "net0".to_string()];
    let recs = |ip| {
        vec![
            ("big".into(), rec("newc", "big", &[ip])),
            ("net0".into(), rec("newc", "net0", &[ip])),
        ]
    };
    r.set_records("newc", recs(v4(900_000)));
    r.set_sandbox("newc", &nets, vec![], true);
    r.set_records("newc", recs(v4(900_001)));
    r.set_records("newc", Vec::new());
    r.remove_sandbox("newc");
    r.entries_built() - before
}

#[test]
fn per_change_work_does_not_grow_with_the_host() {
    let small = host(10);
    let large = host(1000);
    let (c10, c1000) = (change_cost(&small), change_cost(&large));
    assert!(c10 > 0);
    // Exactly the entries of the changed container, whatever the size of the host.
    assert_eq!(
        c1000,
        c10,
        "entries built for one change: {c10} at n=10, {c1000} at n=1000 (ratio {:.2})",
        c1000 as f64 / c10 as f64
    );
    // And no other network's view was replaced by it.
    let untouched = large.network_view("net500").unwrap();
    change_cost(&large);
    assert!(Arc::ptr_eq(
        &untouched,
        &large.network_view("net500").unwrap()
    ));
}

#[test]
fn sandboxes_share_their_network_view() {
    let r = host(10);
    let a = r.sandbox_view("big1").unwrap();
    let b = r.sandbox_view("big7").unwrap();
    let (va, vb) = (a.network_view(0).unwrap(), b.network_view(0).unwrap());
    assert!(
        Arc::ptr_eq(&va, &vb),
        "one view of network big, by reference"
    );
    assert_eq!(va.len(), 10);
    // A change to the network is seen by both at once, still shared.
    r.set_records("big3", Vec::new());
    let (va2, vb2) = (a.network_view(0).unwrap(), b.network_view(0).unwrap());
    assert!(Arc::ptr_eq(&va2, &vb2));
    assert!(!Arc::ptr_eq(&va, &va2));
    assert_eq!(va2.len(), 9);
    // Empty networks nothing refers to are forgotten.
    r.set_records("small4", Vec::new());
    r.remove_sandbox("small4");
    assert!(r.network_view("net4").is_none());
}

fn query(name: &str, t: RecordType, id: u16, edns: Option<u16>, rd: bool) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = id;
    m.metadata.recursion_desired = rd;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.edns = Some(e);
    }
    m.to_vec().unwrap()
}

/// The resolver of the equivalence test: two networks, one name on both.
fn rich() -> Arc<Resolver> {
    let r = Resolver::new(ResolverConfig::default());
    let v6: IpAddr = "fd00:18::2".parse().unwrap();
    r.set_records("c1", vec![("n1".into(), rec("c1", "n1", &[v4(2), v6]))]);
    r.set_records("c2", vec![("n1".into(), rec("c2", "n1", &[v4(3)]))]);
    let many: Vec<IpAddr> = (10..150).map(v4).collect();
    r.set_records("big", vec![("n1".into(), rec("big", "n1", &many))]);
    let many6: Vec<IpAddr> = (0..60u16)
        .map(|i| IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 1, i]))
        .collect();
    r.set_records("big6", vec![("n1".into(), rec("big6", "n1", &many6))]);
    r.set_records(
        "both",
        vec![
            ("n1".into(), rec("both", "n1", &[v4(20_000)])),
            ("n2".into(), rec("both", "n2", &[v4(30_000)])),
        ],
    );
    r.set_sandbox("sb", &["n1".into(), "n2".into()], vec![], true);
    r.set_sandbox(
        "int",
        &["n1".into()],
        vec!["192.0.2.1:53".parse().unwrap()],
        false,
    );
    r
}

/// Header, question and answers of a response, with the answers in a canonical order
/// (the round-robin position differs between two calls).
fn canonical(bytes: &[u8]) -> (Vec<u8>, Vec<String>, Option<u16>) {
    let m = Message::from_vec(bytes).unwrap();
    let mut answers: Vec<String> = m.answers.iter().map(|a| format!("{a}")).collect();
    answers.sort();
    let mut qend = 12;
    while bytes[qend] != 0 {
        qend += 1 + usize::from(bytes[qend]);
    }
    qend += 5;
    let mut head = bytes[..qend].to_vec();
    head[0] = 0;
    head[1] = 0;
    (head, answers, m.edns.map(|e| e.max_payload()))
}

#[test]
fn fast_path_answers_as_the_general_path() {
    let r = rich();
    let names = [
        "c1",
        "C1",
        "c1.n1.",
        "C1.N1",
        "id-c2",
        "c2",
        "big",
        "BIG.n1",
        "big6",
        "both",
        "2.0.0.10.in-addr.arpa.",
        "3.0.0.10.IN-ADDR.ARPA",
        "nope",
        "9.9.9.9.in-addr.arpa",
    ];
    let types = [
        RecordType::A,
        RecordType::AAAA,
        RecordType::ANY,
        RecordType::PTR,
        RecordType::MX,
    ];
    let mut fast = 0;
    let mut out = [0u8; crate::udp::BUF];
    for sb in ["sb", "int"] {
        let view = r.sandbox_view(sb).unwrap();
        for name in names {
            for t in types {
                for edns in [None, Some(512), Some(1232), Some(4096)] {
                    for tcp in [false, true] {
                        for rd in [false, true] {
                            let q = query(name, t, 0x5a5a, edns, rd);
                            let general = match r.prepare(Some(&view), sb, &q, tcp) {
                                Step::Done(Some(b)) => b,
                                _ => panic!("general path gave no answer to {name} {t}"),
                            };
                            let parsed = FastQuery::parse(&q).expect("a plain query parses");
                            let Some(n) = wire::answer(&view, &parsed, tcp, &mut out) else {
                                continue;
                            };
                            fast += 1;
                            let got = &out[..n];
                            let what = format!("{sb} {name} {t} edns={edns:?} tcp={tcp} rd={rd}");
                            assert_eq!(&got[..2], &q[..2], "{what}: id");
                            // hickory stops compressing names past some size: ours are
                            // never longer.
                            assert!(got.len() <= general.len(), "{what}: length");
                            let m = Message::from_vec(got).unwrap();
                            if m.metadata.truncation {
                                // Which prefix depends on the rotation: compare the rest.
                                let g = Message::from_vec(&general).unwrap();
                                assert_eq!(canonical(got).0, canonical(&general).0, "{what}");
                                assert_eq!(m.answers.len(), g.answers.len(), "{what}");
                            } else {
                                assert_eq!(canonical(got), canonical(&general), "{what}");
                            }
                            if m.answers.len() <= 1 {
                                assert_eq!(got, &general[..], "{what}: same bytes");
                            }
                        }
                    }
                }
            }
        }
    }
    // Everything but the name on two networks, and the names that are not local.
    assert!(fast > 800, "fast path used {fast} times");
}

#[test]
fn fast_path_declines_what_it_does_not_handle() {
    let r = rich();
    let view = r.sandbox_view("sb").unwrap();
    let mut out = [0u8; 4096];
    let ask = |q: &[u8], out: &mut [u8]| {
        FastQuery::parse(q).and_then(|p| wire::answer(&view, &p, false, out))
    };
    // On two networks: merged by the general path.
    assert!(ask(&query("both", RecordType::A, 1, None, true), &mut out).is_none());
    // Not local.
    assert!(ask(&query("nope", RecordType::A, 1, None, true), &mut out).is_none());
    let mut q = query("c1", RecordType::A, 1, None, true);
    assert!(ask(&q, &mut out).is_some());
    // Trailing garbage, a second question, a response, another opcode: not parsed here.
    q.push(0);
    assert!(FastQuery::parse(&q).is_none());
    q.pop();
    let mut resp = q.clone();
    resp[2] |= 0x80;
    assert!(FastQuery::parse(&resp).is_none());
    let mut notify = q.clone();
    notify[2] |= 4 << 3;
    assert!(FastQuery::parse(&notify).is_none());
    let mut two = q.clone();
    two[5] = 2;
    assert!(FastQuery::parse(&two).is_none());
    // EDNS version 1 goes to the general path.
    let mut v1 = query("c1", RecordType::A, 1, Some(1232), true);
    let at = v1.len() - 11 + 6;
    v1[at] = 1;
    assert!(FastQuery::parse(&v1).is_none());
    // A compressed question name.
    let mut ptr = q.clone();
    ptr[12] = 0xc0;
    assert!(FastQuery::parse(&ptr).is_none());
}

#[test]
fn link_aliases_resolve_in_their_sandbox_only() {
    let r = rich();
    let link = |alias: &str, target: &str, network: &str| crate::LinkAlias {
        alias: alias.into(),
        target: target.into(),
        network: network.into(),
    };
    r.set_sandbox_links(
        "linker",
        &["n1".into(), "n2".into()],
        &[
            link("db", "c2", "n1"),
            link("DB.n1", "c2.n1", "n1"),
            // The target is on n1, the link on n2: not found there, so no answer.
            link("wrong", "c2", "n2"),
            // An alias that shadows a name of the network.
            link("c1", "c2", "n1"),
        ],
        vec![],
        true,
    );
    let view = r.sandbox_view("linker").unwrap();
    let mut out = [0u8; crate::udp::BUF];
    let mut answers = |name: &str| -> (Vec<IpAddr>, Vec<IpAddr>) {
        let q = query(name, RecordType::A, 7, None, true);
        let general = match r.prepare(Some(&view), "linker", &q, false) {
            Step::Done(Some(b)) => crate::answer::answer_addrs(&Message::from_vec(&b).unwrap()),
            _ => Vec::new(),
        };
        let parsed = FastQuery::parse(&q).unwrap();
        let fast = wire::answer(&view, &parsed, false, &mut out)
            .map(|n| crate::answer::answer_addrs(&Message::from_vec(&out[..n]).unwrap()))
            .unwrap_or_default();
        (general, fast)
    };
    for name in ["db", "Db", "db.n1", "c1"] {
        assert_eq!(answers(name), (vec![v4(3)], vec![v4(3)]), "{name}");
    }
    assert_eq!(answers("wrong").1, Vec::<IpAddr>::new(), "no fast answer");
    // Other sandboxes on the same networks do not see the alias.
    let other = r.sandbox_view("sb").unwrap();
    let q = query("db", RecordType::A, 7, None, true);
    let parsed = FastQuery::parse(&q).unwrap();
    assert!(wire::answer(&other, &parsed, false, &mut out).is_none());
    assert!(!matches!(
        r.prepare(Some(&other), "sb", &q, false),
        Step::Done(Some(b)) if !crate::answer::answer_addrs(&Message::from_vec(&b).unwrap()).is_empty()
    ));
}
