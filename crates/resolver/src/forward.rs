//! Relaying queries to upstream servers from the daemon's own namespace.
//!
//! The client's raw query is sent with a fresh random ID from a fresh socket (random source
//! port); the reply must come from the server, carry that ID and repeat the question. Each
//! server gets an equal share of what is left of the total budget; TC=1 is retried over
//! TCP on the same server; a server that timed out or failed is backed off.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, timeout_at};

use crate::ratelimit::LogLimiter;

/// A validated upstream response.
pub(crate) struct Upstream {
    /// Raw bytes as received (the ID is ours, not the client's).
    pub(crate) bytes: Vec<u8>,
    /// The same, parsed.
    pub(crate) parsed: Message,
}

/// Why one server did not give a usable answer.
#[derive(Debug)]
enum Failure {
    /// No answer in time, or a network error: back the server off.
    Dead(io::Error),
    /// The server answered SERVFAIL/REFUSED/…: it is alive, try the next one.
    Rcode(ResponseCode),
}

/// Upstream relay state shared by all sandboxes.
#[derive(Debug)]
pub(crate) struct Forwarder {
    budget: Duration,
    backoff_for: Duration,
    /// Server → instant until which it is skipped.
    down_until: Mutex<HashMap<SocketAddr, Instant>>,
    ids: RandomState,
    id_counter: AtomicU64,
    log: LogLimiter,
}

impl Forwarder {
    pub(crate) fn new(budget: Duration, backoff_for: Duration) -> Self {
        Self {
            budget,
            backoff_for,
            down_until: Mutex::new(HashMap::new()),
            ids: RandomState::new(),
            id_counter: AtomicU64::new(0),
            log: LogLimiter::new(1000),
        }
    }

    fn random_id(&self) -> u16 {
        let mut h = self.ids.build_hasher();
        h.write_u64(self.id_counter.fetch_add(1, Ordering::Relaxed));
        // Truncation intended: any 16 bits of the SipHash output are uniform.
        (h.finish() & 0xffff) as u16
    }

    /// Servers to try, in order: those not backed off; all of them if every one is.
    fn candidates(&self, upstreams: &[SocketAddr]) -> Vec<SocketAddr> {
        let now = Instant::now();
        let mut down = self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        down.retain(|_, until| *until > now);
        let alive: Vec<SocketAddr> = upstreams
            .iter()
            .copied()
            .filter(|s| !down.contains_key(s))
            .collect();
        if alive.is_empty() {
            upstreams.to_vec()
        } else {
            alive
        }
    }

    fn mark(&self, server: SocketAddr, dead: bool) {
        let mut down = self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if dead {
            down.insert(server, Instant::now() + self.backoff_for);
        } else {
            down.remove(&server);
        }
    }

    /// Relay `query` (a well-formed single-question query) to `upstreams`; `None` when no
    /// server gave a usable answer within the budget.
    pub(crate) async fn resolve(
        &self,
        sandbox_id: &str,
        query: &[u8],
        upstreams: &[SocketAddr],
    ) -> Option<Upstream> {
        let deadline = Instant::now() + self.budget;
        let servers = self.candidates(upstreams);
        let mut out = query.to_vec();
        for (i, server) in servers.iter().enumerate() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let left = u32::try_from(servers.len() - i).unwrap_or(u32::MAX);
            let server_deadline = now + (deadline - now) / left;
            let id = self.random_id();
            out[..2].copy_from_slice(&id.to_be_bytes());
            match self.try_server(*server, &out, server_deadline).await {
                Ok(up) => {
                    self.mark(*server, false);
                    return Some(up);
                }
                Err(Failure::Rcode(rcode)) => {
                    self.mark(*server, false);
                    tracing::debug!(sandbox_id, %server, %rcode, "upstream answered with an error, trying the next one");
                }
                Err(Failure::Dead(err)) => {
                    self.mark(*server, true);
                    if let Some(suppressed) = self.log.check() {
                        tracing::warn!(sandbox_id, %server, error = %err, suppressed, "upstream DNS server failed, backing it off");
                    }
                }
            }
        }
        None
    }

    async fn try_server(
        &self,
        server: SocketAddr,
        query: &[u8],
        deadline: Instant,
    ) -> Result<Upstream, Failure> {
        let udp = query_udp(server, query, deadline)
            .await
            .map_err(Failure::Dead)?;
        let up = if udp.parsed.metadata.truncation {
            match query_tcp(server, query, deadline).await {
                Ok(tcp) => tcp,
                Err(err) => {
                    // The truncated answer is still an answer; the client may retry over TCP.
                    tracing::debug!(%server, error = %err, "TCP retry after TC=1 failed");
                    udp
                }
            }
        } else {
            udp
        };
        match up.parsed.metadata.response_code {
            ResponseCode::ServFail | ResponseCode::Refused | ResponseCode::NotImp => {
                Err(Failure::Rcode(up.parsed.metadata.response_code))
            }
            _ => Ok(up),
        }
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "no answer within the time budget")
}

async fn query_udp(server: SocketAddr, query: &[u8], deadline: Instant) -> io::Result<Upstream> {
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(local).await?;
    // connect() makes the kernel drop datagrams from other sources and report ICMP errors.
    sock.connect(server).await?;
    sock.send(query).await?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = timeout_at(deadline, sock.recv(&mut buf))
            .await
            .map_err(|_| timed_out())??;
        if let Some(up) = validate(query, &buf[..n]) {
            return Ok(up);
        }
        // Not our answer (stale, spoofed or garbage): keep waiting until the deadline.
    }
}

async fn query_tcp(server: SocketAddr, query: &[u8], deadline: Instant) -> io::Result<Upstream> {
    let io = async {
        let mut stream = TcpStream::connect(server).await?;
        let len = u16::try_from(query.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "query too long"))?;
        let mut framed = Vec::with_capacity(query.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(query);
        stream.write_all(&framed).await?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut buf).await?;
        validate(query, &buf).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "mismatched or malformed answer")
        })
    };
    timeout_at(deadline, io).await.map_err(|_| timed_out())?
}

/// The end offset of the question section of a message with one question, if the name is
/// uncompressed (always the case in a query, and for the first name of a response).
fn question_end(msg: &[u8]) -> Option<usize> {
    let mut pos = 12usize;
    loop {
        let len = usize::from(*msg.get(pos)?);
        if len == 0 {
            pos += 1;
            break;
        }
        if len & 0xc0 != 0 {
            return None;
        }
        pos += 1 + len;
    }
    let end = pos + 4;
    (end <= msg.len()).then_some(end)
}

/// Check that `resp` answers `query`: same ID, QR=1, same question (case-insensitively),
/// parseable. Servers answering FORMERR/NOTIMP may omit the question: accepted as errors.
fn validate(query: &[u8], resp: &[u8]) -> Option<Upstream> {
    if resp.len() < 12 || resp[..2] != query[..2] {
        return None;
    }
    let parsed = Message::from_vec(resp).ok()?;
    if parsed.metadata.message_type != MessageType::Response {
        return None;
    }
    if parsed.queries.is_empty() {
        if parsed.metadata.response_code == ResponseCode::NoError {
            return None;
        }
    } else {
        let q_end = question_end(query)?;
        let r_end = question_end(resp)?;
        if parsed.queries.len() != 1
            || q_end != r_end
            || !resp[12..r_end].eq_ignore_ascii_case(&query[12..q_end])
        {
            return None;
        }
    }
    Some(Upstream {
        bytes: resp.to_vec(),
        parsed,
    })
}

/// Re-emit an upstream (or cached) response for a client: its query ID, and its spelling
/// of the question name (clients using 0x20 case randomisation compare it).
pub(crate) fn patch_response(resp: &mut [u8], client_query: &[u8]) {
    if resp.len() < 12 || client_query.len() < 12 {
        return;
    }
    resp[..2].copy_from_slice(&client_query[..2]);
    if let (Some(q_end), Some(r_end)) = (question_end(client_query), question_end(resp))
        && q_end == r_end
        && resp[12..r_end].eq_ignore_ascii_case(&client_query[12..q_end])
    {
        resp[12..r_end].copy_from_slice(&client_query[12..q_end]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::{Name, RecordType};

    fn query(name: &str, id: u16) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = id;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        m.to_vec().unwrap()
    }

    #[test]
    fn patches_id_and_case() {
        let client = query("WwW.Example.COM.", 0x1234);
        let mut up = Message::from_vec(&query("www.example.com.", 0x9999)).unwrap();
        up.metadata.message_type = MessageType::Response;
        let mut bytes = up.to_vec().unwrap();
        patch_response(&mut bytes, &client);
        let back = Message::from_vec(&bytes).unwrap();
        assert_eq!(back.metadata.id, 0x1234);
        assert_eq!(back.queries[0].name().to_ascii(), "WwW.Example.COM.");
    }

    #[test]
    fn validate_rejects_mismatch() {
        let q = query("a.example.", 7);
        let mut r = Message::from_vec(&q).unwrap();
        r.metadata.message_type = MessageType::Response;
        let good = r.to_vec().unwrap();
        assert!(validate(&q, &good).is_some());
        assert!(validate(&q, &query("b.example.", 7)).is_none());
        let mut other_id = good.clone();
        other_id[1] ^= 1;
        assert!(validate(&q, &other_id).is_none());
        assert!(validate(&q, &q).is_none(), "a query is not an answer");
        assert!(validate(&q, &good[..11]).is_none());
    }

    #[test]
    fn ids_vary() {
        let f = Forwarder::new(Duration::from_secs(1), Duration::from_secs(1));
        let ids: std::collections::HashSet<u16> = (0..100).map(|_| f.random_id()).collect();
        assert!(ids.len() > 90);
    }
}
