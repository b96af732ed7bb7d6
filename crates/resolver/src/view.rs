//! The data the resolver answers from: per-sandbox views, precomputed when published.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hickory_proto::rr::Name;

/// One container (endpoint) as seen from a sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Names that resolve to `addrs`, e.g. `["c1", "c1.localnet", "web", "3f2a1b4c5d6e"]`.
    /// Matched case-insensitively; a trailing dot is ignored.
    pub names: Vec<String>,
    /// The container's addresses on the networks shared with the sandbox.
    pub addrs: Vec<IpAddr>,
    /// The name returned for reverse (PTR) queries of `addrs`, e.g. `c1.localnet`.
    pub ptr_name: String,
}

/// Addresses of one name, with its round-robin counter.
#[derive(Debug, Default)]
pub(crate) struct NameEntry {
    pub(crate) v4: Vec<Ipv4Addr>,
    pub(crate) v6: Vec<Ipv6Addr>,
    rr: AtomicUsize,
}

impl NameEntry {
    /// Next rotation offset (round-robin across queries).
    pub(crate) fn next_rotation(&self) -> usize {
        self.rr.fetch_add(1, Ordering::Relaxed)
    }
}

/// Everything one sandbox's resolver needs, precomputed from its [`Record`]s.
///
/// Immutable once built (except the round-robin counters), so it can be shared through
/// an `Arc` and swapped atomically by [`crate::Resolver::publish`].
pub struct SandboxView {
    names: HashMap<String, NameEntry>,
    ptrs: HashMap<IpAddr, Name>,
    upstreams: Arc<[SocketAddr]>,
    forward: bool,
}

impl SandboxView {
    /// Build a view. Several records carrying the same name resolve to all their
    /// addresses (deduplicated, in record order). `forward == false` (internal networks)
    /// or an empty `upstreams` disables forwarding: non-local names then get NXDOMAIN
    /// (not REFUSED: stub resolvers then stop at once instead of trying other servers).
    pub fn new(records: Vec<Record>, upstreams: Vec<SocketAddr>, forward: bool) -> Self {
        let mut names: HashMap<String, NameEntry> = HashMap::new();
        let mut ptrs: HashMap<IpAddr, Name> = HashMap::new();
        for rec in records {
            for raw in &rec.names {
                let key = normalize(raw);
                if key.is_empty() {
                    continue;
                }
                let entry = names.entry(key).or_default();
                for addr in &rec.addrs {
                    match addr {
                        IpAddr::V4(a) if !entry.v4.contains(a) => entry.v4.push(*a),
                        IpAddr::V6(a) if !entry.v6.contains(a) => entry.v6.push(*a),
                        _ => {}
                    }
                }
            }
            let ptr = normalize(&rec.ptr_name);
            if ptr.is_empty() {
                continue;
            }
            let Ok(mut ptr_name) = Name::from_ascii(&ptr) else {
                tracing::warn!(ptr_name = %rec.ptr_name, "ignoring invalid PTR name");
                continue;
            };
            ptr_name.set_fqdn(true);
            for addr in &rec.addrs {
                ptrs.entry(*addr).or_insert_with(|| ptr_name.clone());
            }
        }
        Self {
            names,
            ptrs,
            upstreams: upstreams.into(),
            forward,
        }
    }

    /// The upstream servers of this sandbox, in order of preference.
    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// Whether non-local names are forwarded.
    pub fn forward(&self) -> bool {
        self.forward
    }

    /// Whether forwarding is possible (enabled and at least one upstream).
    pub(crate) fn can_forward(&self) -> bool {
        self.forward && !self.upstreams.is_empty()
    }

    pub(crate) fn upstreams_arc(&self) -> &Arc<[SocketAddr]> {
        &self.upstreams
    }

    pub(crate) fn lookup(&self, key: &str) -> Option<&NameEntry> {
        self.names.get(key)
    }

    pub(crate) fn ptr(&self, addr: &IpAddr) -> Option<&Name> {
        self.ptrs.get(addr)
    }
}

impl fmt::Debug for SandboxView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxView")
            .field("names", &self.names.len())
            .field("ptrs", &self.ptrs.len())
            .field("upstreams", &self.upstreams)
            .field("forward", &self.forward)
            .finish()
    }
}

/// All sandboxes' views, keyed by sandbox id; published as a whole.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Sandbox id → its view.
    pub sandboxes: HashMap<String, Arc<SandboxView>>,
}

/// Lowercase, without trailing dot.
fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Lookup key of a query name: lowercase dotted labels, or `None` if a label holds bytes
/// that cannot appear in a local name (dots, spaces, non-ASCII…).
pub(crate) fn query_key(name: &Name) -> Option<String> {
    let mut key = String::with_capacity(name.len());
    for label in name.iter() {
        if label.is_empty() || !label.iter().all(|b| b.is_ascii_graphic() && *b != b'.') {
            return None;
        }
        if !key.is_empty() {
            key.push('.');
        }
        key.extend(label.iter().map(|b| char::from(b.to_ascii_lowercase())));
    }
    (!key.is_empty()).then_some(key)
}

/// The address of a full reverse name (`d.c.b.a.in-addr.arpa`, 32 nibbles + `ip6.arpa`).
pub(crate) fn reverse_addr(name: &Name) -> Option<IpAddr> {
    let labels: Vec<&[u8]> = name.iter().collect();
    let (suffix, body) = match labels.len() {
        6 => (&labels[4..], &labels[..4]),
        34 => (&labels[32..], &labels[..32]),
        _ => return None,
    };
    if !suffix[1].eq_ignore_ascii_case(b"arpa") {
        return None;
    }
    if body.len() == 4 && suffix[0].eq_ignore_ascii_case(b"in-addr") {
        let mut octets = [0u8; 4];
        for (i, label) in body.iter().enumerate() {
            if label.is_empty() || label.len() > 3 || !label.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let text = std::str::from_utf8(label).ok()?;
            octets[3 - i] = text.parse().ok()?;
        }
        return Some(IpAddr::V4(Ipv4Addr::from(octets)));
    }
    if body.len() == 32 && suffix[0].eq_ignore_ascii_case(b"ip6") {
        let mut value: u128 = 0;
        for label in body.iter().rev() {
            let [nibble] = label else { return None };
            let digit = char::from(*nibble).to_digit(16)?;
            value = (value << 4) | u128::from(digit);
        }
        return Some(IpAddr::V6(Ipv6Addr::from(value)));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[test]
    fn reverse_v4() {
        assert_eq!(
            reverse_addr(&name("5.0.18.172.In-Addr.Arpa.")),
            Some("172.18.0.5".parse().unwrap())
        );
        assert_eq!(reverse_addr(&name("0.18.172.in-addr.arpa.")), None);
        assert_eq!(reverse_addr(&name("256.0.18.172.in-addr.arpa.")), None);
        assert_eq!(reverse_addr(&name("x.0.18.172.in-addr.arpa.")), None);
    }

    #[test]
    fn reverse_v6() {
        let ip: Ipv6Addr = "fd00:1::a".parse().unwrap();
        let mut s = String::new();
        for b in ip.octets().iter().rev() {
            s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
        }
        s.push_str("ip6.arpa.");
        assert_eq!(reverse_addr(&name(&s)), Some(IpAddr::V6(ip)));
        assert_eq!(reverse_addr(&name("1.ip6.arpa.")), None);
    }

    #[test]
    fn keys() {
        assert_eq!(
            query_key(&name("C1.LocalNet.")).as_deref(),
            Some("c1.localnet")
        );
        assert_eq!(query_key(&name(".")), None);
        assert_eq!(query_key(&name("a\\.b.c")), None);
    }

    #[test]
    fn view_merges_names() {
        let v = SandboxView::new(
            vec![
                Record {
                    names: vec!["web".into(), "A.".into()],
                    addrs: vec!["10.0.0.2".parse().unwrap()],
                    ptr_name: "a.net".into(),
                },
                Record {
                    names: vec!["WEB".into()],
                    addrs: vec!["10.0.0.3".parse().unwrap(), "10.0.0.2".parse().unwrap()],
                    ptr_name: "b.net".into(),
                },
            ],
            vec![],
            true,
        );
        assert_eq!(v.lookup("web").unwrap().v4.len(), 2);
        assert_eq!(v.lookup("a").unwrap().v4.len(), 1);
        assert_eq!(
            v.ptr(&"10.0.0.2".parse().unwrap()).unwrap().to_ascii(),
            "a.net."
        );
        assert!(!v.can_forward());
    }
}
