//! Shared helpers for the resolver's integration tests.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

/// A query for `name`/`qtype` with the given ID, optionally with EDNS(0) `payload`.
pub fn query(name: &str, qtype: RecordType, id: u16, edns: Option<u16>) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = id;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(p) = edns {
        let mut e = Edns::new();
        e.set_max_payload(p);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

/// Parse a response.
pub fn parse(bytes: &[u8]) -> Message {
    Message::from_vec(bytes).expect("response parses")
}

/// Addresses in the answer section, in order.
pub fn addrs(m: &Message) -> Vec<IpAddr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

/// How a fake upstream behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Answer every A query with `answers` records 10.9.9.<i> (TTL 60); names starting
    /// with `nx` get NXDOMAIN with an SOA (minimum 30).
    Answer { answers: u8 },
    /// Receive but never answer.
    Silent,
    /// UDP: TC=1 with no answers; TCP (same port): the full answer.
    Truncate { answers: u8 },
}

/// A fake upstream DNS server on 127.0.0.1 (random port), counting the queries it saw.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    pub udp_queries: Arc<AtomicUsize>,
    pub tcp_queries: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl FakeUpstream {
    pub fn udp_count(&self) -> usize {
        self.udp_queries.load(Ordering::SeqCst)
    }
    pub fn tcp_count(&self) -> usize {
        self.tcp_queries.load(Ordering::SeqCst)
    }
}

fn craft(query: &[u8], answers: u8, truncate: bool) -> Option<Vec<u8>> {
    let req = Message::from_vec(query).ok()?;
    let q = req.queries.first()?.clone();
    let mut resp = Message::response(req.metadata.id, OpCode::Query);
    resp.metadata.recursion_desired = req.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    resp.add_query(q.clone());
    if truncate {
        resp.metadata.truncation = true;
    } else if q.name().to_ascii().starts_with("nx") {
        resp.metadata.response_code = ResponseCode::NXDomain;
        let root = Name::root();
        resp.add_authority(Record::from_rdata(
            root.clone(),
            300,
            RData::SOA(SOA::new(root.clone(), root, 1, 1, 1, 1, 30)),
        ));
    } else if q.query_type() == RecordType::A {
        for i in 0..answers {
            resp.add_answer(Record::from_rdata(
                q.name().clone(),
                60,
                RData::A(A::new(10, 9, 9, i + 1)),
            ));
        }
    }
    assert_eq!(resp.metadata.message_type, MessageType::Response);
    resp.to_vec().ok()
}

/// Start a fake upstream.
pub async fn fake_upstream(mode: Mode) -> FakeUpstream {
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = udp.local_addr().unwrap();
    let udp_queries = Arc::new(AtomicUsize::new(0));
    let tcp_queries = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    let count = Arc::clone(&udp_queries);
    tasks.push(tokio::spawn(async move {
        let mut buf = vec![0u8; 65535];
        loop {
            let Ok((n, peer)) = udp.recv_from(&mut buf).await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let resp = match mode {
                Mode::Silent => None,
                Mode::Answer { answers } => craft(&buf[..n], answers, false),
                Mode::Truncate { .. } => craft(&buf[..n], 0, true),
            };
            if let Some(r) = resp {
                let _ = udp.send_to(&r, peer).await;
            }
        }
    }));
    if let Mode::Truncate { answers } = mode {
        let tcp = TcpListener::bind(addr).await.unwrap();
        let count = Arc::clone(&tcp_queries);
        tasks.push(tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = tcp.accept().await else {
                    return;
                };
                let count = Arc::clone(&count);
                tokio::spawn(async move {
                    let mut len = [0u8; 2];
                    if s.read_exact(&mut len).await.is_err() {
                        return;
                    }
                    let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
                    if s.read_exact(&mut q).await.is_err() {
                        return;
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                    if let Some(r) = craft(&q, answers, false) {
                        let mut out = (r.len() as u16).to_be_bytes().to_vec();
                        out.extend_from_slice(&r);
                        let _ = s.write_all(&out).await;
                    }
                });
            }
        }));
    }
    FakeUpstream {
        addr,
        udp_queries,
        tcp_queries,
        tasks,
    }
}
