//! The allocation-free fast path: parse a plain query by hand and assemble the answer for
//! a local name from the records pre-encoded in the network views.
//!
//! Only what is certain is answered here: one question, no answer/authority records, at
//! most one additional record that is a version-0 OPT, uncompressed name, class IN or ANY,
//! and a name that exists on exactly one of the sandbox's networks. Everything else
//! (malformed packets, names on several networks, non-local names, forwarding) goes to
//! the general path in `answer.rs`, which gives the same answers through hickory and
//! which the tests use as the reference for this one.

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::Guard;

use crate::answer::{CLASSIC_UDP_LIMIT, OUR_UDP_PAYLOAD, TCP_LIMIT};
use crate::view::{
    A_RR_LEN, AAAA_RR_LEN, NameEntry, NetworkView, PtrTarget, SandboxView, reverse_addr_labels,
};

const T_A: u16 = 1;
const T_PTR: u16 = 12;
const T_AAAA: u16 = 28;
const T_OPT: u16 = 41;
const T_ANY: u16 = 255;
const C_IN: u16 = 1;
const C_ANY: u16 = 255;
/// Most labels a name we answer can have (a full `ip6.arpa` name has 34).
const MAX_LABELS: usize = 34;
/// Most networks a sandbox may have for the fast path (more: general path).
const MAX_FAST_NETS: usize = 4;
/// Our OPT record in responses: root name, type 41, payload 1232, no flags, no options.
const OUR_OPT: [u8; 11] = {
    let p = OUR_UDP_PAYLOAD.to_be_bytes();
    [0, 0, 41, p[0], p[1], 0, 0, 0, 0, 0, 0]
};

/// A plain query, parsed without allocating.
pub(crate) struct FastQuery<'a> {
    raw: &'a [u8],
    /// End of the question section.
    qend: usize,
    qtype: u16,
    /// The client's EDNS UDP payload size, if it sent an OPT record.
    edns: Option<u16>,
    /// Lowercase dotted name (the lookup key).
    key: [u8; 255],
    key_len: usize,
    /// Offsets into `raw` of the labels (start, len), when there are at most MAX_LABELS.
    labels: [(u16, u8); MAX_LABELS],
    n_labels: usize,
}

impl<'a> FastQuery<'a> {
    /// `None` for anything the fast path does not handle (the general path decides).
    pub(crate) fn parse(raw: &'a [u8]) -> Option<Self> {
        if raw.len() < 12 || raw.len() > usize::from(u16::MAX) {
            return None;
        }
        // QR=0, OPCODE=0 (QUERY).
        if raw[2] & 0xf8 != 0 {
            return None;
        }
        let count = |i: usize| u16::from_be_bytes([raw[i], raw[i + 1]]);
        let (qd, an, ns, ar) = (count(4), count(6), count(8), count(10));
        if qd != 1 || an != 0 || ns != 0 || ar > 1 {
            return None;
        }
        let mut q = FastQuery {
            raw,
            qend: 0,
            qtype: 0,
            edns: None,
            key: [0; 255],
            key_len: 0,
            labels: [(0, 0); MAX_LABELS],
            n_labels: 0,
        };
        let mut pos = 12usize;
        loop {
            let len = usize::from(*raw.get(pos)?);
            if len == 0 {
                pos += 1;
                break;
            }
            if len & 0xc0 != 0 || pos - 12 + 1 + len > 254 {
                return None;
            }
            let label = raw.get(pos + 1..pos + 1 + len)?;
            if q.key_len > 0 {
                q.key[q.key_len] = b'.';
                q.key_len += 1;
            }
            for &b in label {
                if !b.is_ascii_graphic() || b == b'.' {
                    return None;
                }
                q.key[q.key_len] = b.to_ascii_lowercase();
                q.key_len += 1;
            }
            if q.n_labels < MAX_LABELS {
                // pos < 65535 and len < 64: both fit.
                q.labels[q.n_labels] = (u16::try_from(pos + 1).ok()?, u8::try_from(len).ok()?);
            }
            q.n_labels += 1;
            pos += 1 + len;
        }
        if q.key_len == 0 {
            return None;
        }
        let fixed = raw.get(pos..pos + 4)?;
        q.qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let qclass = u16::from_be_bytes([fixed[2], fixed[3]]);
        if qclass != C_IN && qclass != C_ANY {
            return None;
        }
        pos += 4;
        q.qend = pos;
        if ar == 1 {
            // Root name, type OPT, class = payload, TTL = ext-rcode, version, flags.
            let opt = raw.get(pos..pos + 11)?;
            if opt[0] != 0 || u16::from_be_bytes([opt[1], opt[2]]) != T_OPT {
                return None;
            }
            if opt[5] != 0 || opt[6] != 0 {
                return None; // extended RCODE or EDNS version other than 0
            }
            let rdlen = usize::from(u16::from_be_bytes([opt[9], opt[10]]));
            pos += 11;
            let end = pos + rdlen;
            // Options: code, length, data; they must frame the rdata exactly.
            while pos < end {
                let head = raw.get(pos..pos + 4)?;
                pos += 4 + usize::from(u16::from_be_bytes([head[2], head[3]]));
            }
            if pos != end {
                return None;
            }
            q.edns = Some(u16::from_be_bytes([opt[3], opt[4]]));
        }
        (pos == raw.len()).then_some(q)
    }

    fn key(&self) -> Option<&str> {
        std::str::from_utf8(&self.key[..self.key_len]).ok()
    }

    fn reverse(&self) -> Option<IpAddr> {
        if self.n_labels != 6 && self.n_labels != 34 {
            return None;
        }
        let mut labels: [&[u8]; MAX_LABELS] = [&[]; MAX_LABELS];
        for (i, (start, len)) in self.labels[..self.n_labels].iter().enumerate() {
            let start = usize::from(*start);
            labels[i] = &self.raw[start..start + usize::from(*len)];
        }
        reverse_addr_labels(&labels[..self.n_labels])
    }

    fn limit(&self, tcp: bool) -> usize {
        if tcp {
            TCP_LIMIT
        } else {
            self.edns
                .map_or(CLASSIC_UDP_LIMIT, usize::from)
                .max(CLASSIC_UDP_LIMIT)
        }
    }
}

/// What a local name found on one network answers with.
enum Found<'v> {
    Name(&'v NameEntry),
    Ptr(&'v PtrTarget),
}

/// Write the authoritative answer to `q` into `out` and return its length, or `None` when
/// the general path must decide (not local, on several networks, does not fit `out`).
pub(crate) fn answer(
    view: &SandboxView,
    q: &FastQuery<'_>,
    tcp: bool,
    out: &mut [u8],
) -> Option<usize> {
    if view.networks.len() > MAX_FAST_NETS {
        return None;
    }
    let guards: [Option<Guard<Arc<NetworkView>>>; MAX_FAST_NETS] =
        std::array::from_fn(|i| view.networks.get(i).map(|s| s.load()));
    let mut found: Option<Found<'_>> = None;
    if let Some(addr) = q.reverse() {
        for g in guards.iter().flatten() {
            if let Some(t) = g.ptr(&addr) {
                found = Some(Found::Ptr(t));
                break;
            }
        }
    } else {
        let key = q.key()?;
        // A link alias of this sandbox: its target on the link's network only.
        if let Some((target, i)) = view.link(key)
            && let Some(e) = guards
                .get(i)
                .and_then(Option::as_ref)
                .and_then(|g| g.lookup(target))
        {
            found = Some(Found::Name(e));
        } else {
            for g in guards.iter().flatten() {
                if let Some(e) = g.lookup(key) {
                    if found.is_some() {
                        return None; // on several networks: merged by the general path
                    }
                    found = Some(Found::Name(e));
                }
            }
        }
    }
    let found = found?;
    let limit = q.limit(tcp);
    let qlen = q.qend - 12;
    let opt_len = if q.edns.is_some() { OUR_OPT.len() } else { 0 };
    let base = 12 + qlen + opt_len;
    if base > limit || base > out.len() {
        return None;
    }
    let room = limit.min(out.len()) - base;
    let mut body = 12 + qlen;
    let mut n_answers = 0usize;
    let mut truncated = false;
    match found {
        Found::Ptr(t) => {
            if matches!(q.qtype, T_PTR | T_ANY) {
                if t.rr.len() > room {
                    truncated = true;
                } else {
                    out[body..body + t.rr.len()].copy_from_slice(&t.rr);
                    body += t.rr.len();
                    n_answers = 1;
                }
            }
        }
        Found::Name(e) => {
            let want_a = matches!(q.qtype, T_A | T_ANY);
            let want_aaaa = matches!(q.qtype, T_AAAA | T_ANY);
            if want_a || want_aaaa {
                let rot = e.next_rotation();
                let mut left = room;
                let sections: [(&[u8], usize, bool); 2] = [
                    (&e.a_rrs, A_RR_LEN, want_a),
                    (&e.aaaa_rrs, AAAA_RR_LEN, want_aaaa),
                ];
                for (blob, stride, wanted) in sections {
                    if !wanted || truncated {
                        continue;
                    }
                    let count = blob.len() / stride;
                    let take = count.min(left / stride);
                    if take < count {
                        truncated = true;
                    }
                    if count > 0 && take > 0 {
                        let start = (rot % count) * stride;
                        let bytes = take * stride;
                        let first = (blob.len() - start).min(bytes);
                        out[body..body + first].copy_from_slice(&blob[start..start + first]);
                        out[body + first..body + bytes].copy_from_slice(&blob[..bytes - first]);
                        body += bytes;
                        left -= bytes;
                        n_answers += take;
                    }
                }
            }
        }
    }
    if truncated && limit > out.len() {
        // The client would take more than our buffer holds: let the general path build it.
        return None;
    }
    let raw = q.raw;
    out[0] = raw[0];
    out[1] = raw[1];
    // QR, AA, TC and the client's RD; RA when we forward; the client's CD; RCODE 0.
    out[2] = 0x80 | 0x04 | if truncated { 0x02 } else { 0 } | (raw[2] & 0x01);
    out[3] = if view.can_forward() { 0x80 } else { 0 } | (raw[3] & 0x10);
    out[4..6].copy_from_slice(&1u16.to_be_bytes());
    out[6..8].copy_from_slice(&u16::try_from(n_answers).ok()?.to_be_bytes());
    out[8..10].copy_from_slice(&[0, 0]);
    out[10..12].copy_from_slice(&u16::from(q.edns.is_some()).to_be_bytes());
    out[12..12 + qlen].copy_from_slice(&raw[12..q.qend]);
    if opt_len > 0 {
        out[body..body + opt_len].copy_from_slice(&OUR_OPT);
        body += opt_len;
    }
    Some(body)
}
