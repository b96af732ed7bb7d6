//! Building responses: local answers from a [`SandboxView`], error responses, and encoding
//! with truncation to the client's size limit.

use hickory_proto::op::{Edns, Message, MessageType, Metadata, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{DNSClass, RData, Record, RecordType};

use crate::view::{SandboxView, query_key, reverse_addr};

/// UDP payload size we advertise in our EDNS OPT record (the DNS flag day 2020 value).
pub(crate) const OUR_UDP_PAYLOAD: u16 = 1232;
/// Classic DNS-over-UDP limit without EDNS.
pub(crate) const CLASSIC_UDP_LIMIT: usize = 512;
/// Largest message that fits the 2-byte TCP length prefix.
pub(crate) const TCP_LIMIT: usize = u16::MAX as usize;

/// The response size limit of a client: 512 bytes on UDP without EDNS, the EDNS payload size
/// (at least 512) with it, 65535 bytes on TCP.
pub(crate) fn client_limit(req: &Message, tcp: bool) -> usize {
    if tcp {
        TCP_LIMIT
    } else {
        req.edns
            .as_ref()
            .map_or(CLASSIC_UDP_LIMIT, |e| usize::from(e.max_payload()))
            .max(CLASSIC_UDP_LIMIT)
    }
}

/// An empty response to `req` with the given code: ID, opcode, RD, CD and the question
/// copied, an EDNS OPT record if the query had one.
pub(crate) fn response_to(req: &Message, rcode: ResponseCode) -> Message {
    let mut msg = Message::new(req.metadata.id, MessageType::Response, req.metadata.op_code);
    msg.metadata = Metadata::response_from_request(&req.metadata);
    msg.metadata.response_code = rcode;
    msg.queries = req.queries.clone();
    if req.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(OUR_UDP_PAYLOAD);
        msg.edns = Some(edns);
    }
    msg
}

/// The authoritative local answer to the (single) question of `req`, or `None` when the
/// name is not local to the sandbox (the caller then forwards or returns NXDOMAIN).
///
/// The sandbox's networks are looked up in order: a reverse name takes the first network
/// that knows the address; a name found on several networks resolves to all its
/// addresses there (deduplicated, in network order), rotating with the first one's
/// counter. A local name asked for a type it has no data for gets NOERROR with no answers
/// (NODATA), never a forward: the name exists here and only here.
pub(crate) fn local_answer(view: &SandboxView, req: &Message, ttl: u32) -> Option<Message> {
    let query = req.queries.first()?;
    if query.query_class() != DNSClass::IN && query.query_class() != DNSClass::ANY {
        return None;
    }
    let qname = query.name();
    let qtype = query.query_type();
    let mut answers = Vec::new();
    let nets: Vec<_> = view.networks.iter().map(|s| s.load_full()).collect();

    if let Some(addr) = reverse_addr(qname) {
        // Unknown reverse names fall through (and are usually forwarded).
        let ptr = nets.iter().find_map(|n| n.ptr(&addr))?;
        if matches!(qtype, RecordType::PTR | RecordType::ANY) {
            answers.push(Record::from_rdata(
                qname.clone(),
                ttl,
                RData::PTR(PTR(ptr.name.clone())),
            ));
        }
    } else {
        let key = query_key(qname)?;
        // A link alias of this sandbox: its target on the link's network only.
        let linked = view
            .link(&key)
            .and_then(|(target, i)| nets.get(i).and_then(|n| n.lookup(target)));
        let entries: Vec<_> = match linked {
            Some(e) => vec![e],
            None => nets.iter().filter_map(|n| n.lookup(&key)).collect(),
        };
        let first = entries.first()?;
        let want_a = matches!(qtype, RecordType::A | RecordType::ANY);
        let want_aaaa = matches!(qtype, RecordType::AAAA | RecordType::ANY);
        if want_a || want_aaaa {
            let rot = first.next_rotation();
            let mut v4 = Vec::new();
            let mut v6 = Vec::new();
            for e in &entries {
                v4.extend(
                    e.v4.iter()
                        .filter(|a| !v4.contains(*a))
                        .copied()
                        .collect::<Vec<_>>(),
                );
                v6.extend(
                    e.v6.iter()
                        .filter(|a| !v6.contains(*a))
                        .copied()
                        .collect::<Vec<_>>(),
                );
            }
            if want_a {
                for a in rotated(&v4, rot) {
                    answers.push(Record::from_rdata(qname.clone(), ttl, RData::A(A(*a))));
                }
            }
            if want_aaaa {
                for a in rotated(&v6, rot) {
                    answers.push(Record::from_rdata(
                        qname.clone(),
                        ttl,
                        RData::AAAA(AAAA(*a)),
                    ));
                }
            }
        }
    }

    let mut msg = response_to(req, ResponseCode::NoError);
    msg.metadata.authoritative = true;
    msg.metadata.recursion_available = view.can_forward();
    msg.answers = answers;
    Some(msg)
}

/// The items of `v` starting at `rot % len`, wrapping around.
fn rotated<T>(v: &[T], rot: usize) -> impl Iterator<Item = &T> {
    let start = if v.is_empty() { 0 } else { rot % v.len() };
    v[start..].iter().chain(v[..start].iter())
}

/// Encode `msg`; if it is longer than `limit`, set TC=1, drop the authority and additional
/// sections and keep the longest prefix of the answers that fits.
pub(crate) fn encode(mut msg: Message, limit: usize) -> Option<Vec<u8>> {
    let full = msg.to_vec().ok()?;
    if full.len() <= limit {
        return Some(full);
    }
    msg.metadata.truncation = true;
    msg.authorities.clear();
    msg.additionals.clear();
    msg.signature = None;
    let answers = std::mem::take(&mut msg.answers);
    let mut best = msg.to_vec().ok()?;
    if best.len() > limit {
        // Not even the question fits (a huge name with a tiny limit cannot happen with
        // limit >= 512, but stay safe): header only.
        msg.queries.clear();
        msg.edns = None;
        return msg.to_vec().ok();
    }
    // Binary search for the number of answers that fits.
    let (mut lo, mut hi) = (0usize, answers.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        msg.answers = answers[..mid].to_vec();
        let bytes = msg.to_vec().ok()?;
        if bytes.len() <= limit {
            lo = mid;
            best = bytes;
        } else {
            hi = mid - 1;
        }
    }
    Some(best)
}

/// Addresses in an answer section, for tests and logs.
#[cfg(test)]
pub(crate) fn answer_addrs(msg: &Message) -> Vec<std::net::IpAddr> {
    use std::net::IpAddr;
    msg.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;

    #[test]
    fn rotation_wraps() {
        let v = [1, 2, 3];
        assert_eq!(rotated(&v, 4).copied().collect::<Vec<_>>(), vec![2, 3, 1]);
        assert_eq!(rotated::<u8>(&[], 7).count(), 0);
    }

    #[test]
    fn truncation_keeps_prefix() {
        let mut req = Message::query();
        req.add_query(Query::query(Name::from_ascii("x.").unwrap(), RecordType::A));
        let mut msg = response_to(&req, ResponseCode::NoError);
        for i in 0..100u8 {
            msg.answers.push(Record::from_rdata(
                Name::from_ascii("x.").unwrap(),
                600,
                RData::A(A::new(10, 0, 0, i)),
            ));
        }
        let bytes = encode(msg, 512).unwrap();
        assert!(bytes.len() <= 512);
        let back = Message::from_vec(&bytes).unwrap();
        assert!(back.metadata.truncation);
        let n = answer_addrs(&back).len();
        assert!(n > 10 && n < 100, "{n}");
    }
}
