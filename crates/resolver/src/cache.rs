//! Cache of upstream responses, keyed by question and upstream set.
//!
//! Entries are raw responses; a hit is re-emitted with the client's ID and question
//! spelling (see [`crate::forward::patch_response`]). TTLs inside the cached message are
//! not decremented: a client may therefore keep an answer for up to twice its TTL, which
//! is acceptable for a stub-facing forwarder (Docker's embedded DNS does not cache at all).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RData;

/// Upper bound for any cache lifetime.
const MAX_CACHE_TTL: u32 = 3600;
/// Lifetime of a negative answer without SOA.
const DEFAULT_NEGATIVE_TTL: u32 = 30;

/// What identifies a cacheable question.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct CacheKey {
    /// Lowercase ASCII presentation of the name.
    pub(crate) name: String,
    pub(crate) qtype: u16,
    pub(crate) qclass: u16,
    /// The DO bit changes what an upstream returns (RRSIGs).
    pub(crate) dnssec_ok: bool,
    /// Different sandboxes may use different upstreams with different views.
    pub(crate) upstreams: Arc<[SocketAddr]>,
}

impl CacheKey {
    /// The key of the first question of `req`, if any.
    pub(crate) fn of(req: &Message, upstreams: &Arc<[SocketAddr]>) -> Option<Self> {
        let q = req.queries.first()?;
        Some(Self {
            name: q.name().to_lowercase().to_ascii(),
            qtype: u16::from(q.query_type()),
            qclass: u16::from(q.query_class()),
            dnssec_ok: req.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok),
            upstreams: Arc::clone(upstreams),
        })
    }
}

#[derive(Debug)]
struct Entry {
    response: Arc<[u8]>,
    expires: Instant,
}

/// A bounded map of responses with expiry.
#[derive(Debug)]
pub(crate) struct Cache {
    map: Mutex<HashMap<CacheKey, Entry>>,
    capacity: usize,
}

impl Cache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// A live cached response for `key`.
    pub(crate) fn get(&self, key: &CacheKey) -> Option<Arc<[u8]>> {
        if self.capacity == 0 {
            return None;
        }
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = map.get(key)?;
        if entry.expires > Instant::now() {
            return Some(Arc::clone(&entry.response));
        }
        map.remove(key);
        None
    }

    /// Store `response` (already validated as `parsed`) if it is cacheable.
    pub(crate) fn insert(&self, key: CacheKey, response: &[u8], parsed: &Message) {
        if self.capacity == 0 {
            return;
        }
        let Some(ttl) = cache_ttl(parsed) else {
            return;
        };
        if ttl == 0 {
            return;
        }
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= self.capacity && !map.contains_key(&key) {
            map.retain(|_, e| e.expires > now);
            if map.len() >= self.capacity {
                // Still full of live entries: drop an arbitrary eighth (HashMap order is
                // randomised), which keeps inserts amortised O(1) under a flood.
                let drop_n = (self.capacity / 8).max(1);
                let victims: Vec<CacheKey> = map.keys().take(drop_n).cloned().collect();
                for v in victims {
                    map.remove(&v);
                }
            }
        }
        map.insert(
            key,
            Entry {
                response: response.into(),
                expires: now + Duration::from_secs(u64::from(ttl)),
            },
        );
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Cache lifetime of a response: the minimum answer TTL for positive answers; for NXDOMAIN
/// and NODATA the SOA minimum (bounded by the SOA's own TTL, RFC 2308) or 30 s without SOA.
/// `None` = not cacheable (truncated, SERVFAIL, REFUSED…).
pub(crate) fn cache_ttl(msg: &Message) -> Option<u32> {
    if msg.metadata.truncation {
        return None;
    }
    let rcode = msg.metadata.response_code;
    let ttl = if rcode == ResponseCode::NoError && !msg.answers.is_empty() {
        msg.answers.iter().map(|r| r.ttl).min()?
    } else if rcode == ResponseCode::NoError || rcode == ResponseCode::NXDomain {
        msg.authorities
            .iter()
            .find_map(|r| match &r.data {
                RData::SOA(soa) => Some(soa.minimum.min(r.ttl)),
                _ => None,
            })
            .unwrap_or(DEFAULT_NEGATIVE_TTL)
    } else {
        return None;
    };
    Some(ttl.min(MAX_CACHE_TTL))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::rdata::{A, SOA};
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    fn key(i: usize) -> CacheKey {
        CacheKey {
            name: format!("n{i}."),
            qtype: 1,
            qclass: 1,
            dnssec_ok: false,
            upstreams: Arc::from(Vec::new()),
        }
    }

    fn answer(ttl: u32) -> Message {
        let name = Name::from_ascii("x.").unwrap();
        let mut m = Message::response(1, hickory_proto::op::OpCode::Query);
        m.add_query(Query::query(name.clone(), RecordType::A));
        m.add_answer(Record::from_rdata(name, ttl, RData::A(A::new(1, 2, 3, 4))));
        m
    }

    #[test]
    fn ttls() {
        assert_eq!(cache_ttl(&answer(42)), Some(42));
        assert_eq!(cache_ttl(&answer(999_999)), Some(MAX_CACHE_TTL));
        let mut nx = Message::response(1, hickory_proto::op::OpCode::Query);
        nx.metadata.response_code = ResponseCode::NXDomain;
        assert_eq!(cache_ttl(&nx), Some(DEFAULT_NEGATIVE_TTL));
        let root = Name::root();
        nx.add_authority(Record::from_rdata(
            root.clone(),
            100,
            RData::SOA(SOA::new(root.clone(), root, 1, 1, 1, 1, 7)),
        ));
        assert_eq!(cache_ttl(&nx), Some(7));
        nx.metadata.response_code = ResponseCode::ServFail;
        assert_eq!(cache_ttl(&nx), None);
    }

    #[test]
    fn capacity_bounded() {
        let c = Cache::new(16);
        let msg = answer(60);
        for i in 0..100 {
            c.insert(key(i), b"abc", &msg);
            assert!(c.len() <= 16);
        }
        assert!(c.get(&key(99)).is_some());
    }
}
