//! The data the resolver answers from: one immutable view per network, shared by the
//! sandboxes on it, with the answers pre-encoded when the view changes.
//!
//! A [`NetworkView`] holds persistent (HAMT) maps, so a change clones the view in O(1) and
//! rebuilds only the names and reverse entries of the owners it concerns: the work of an
//! update is proportional to the update, never to the number of networks or sandboxes.
//! A sandbox's view is the ordered list of its networks' slots, looked up in order; the
//! slots are swapped atomically (`ArcSwap`), so the query path takes no lock.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::{ArcSwap, ArcSwapOption};
use hickory_proto::rr::Name;

/// One container (endpoint) as published on one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Names that resolve to `addrs`, e.g. `["c1", "c1.localnet", "web", "3f2a1b4c5d6e"]`.
    /// Matched case-insensitively; a trailing dot is ignored.
    pub names: Vec<String>,
    /// The container's addresses on the network.
    pub addrs: Vec<IpAddr>,
    /// The name returned for reverse (PTR) queries of `addrs`, e.g. `c1.localnet`.
    pub ptr_name: String,
}

/// Size of one pre-encoded A record: name pointer, type, class, TTL, rdlength, address.
pub(crate) const A_RR_LEN: usize = 16;
/// Size of one pre-encoded AAAA record.
pub(crate) const AAAA_RR_LEN: usize = 28;

/// Addresses of one name on one network, with their pre-encoded answer records and the
/// round-robin counter.
#[derive(Debug, Default)]
pub(crate) struct NameEntry {
    /// Owners contributing to the name, in the order they were published.
    owners: Vec<Arc<str>>,
    pub(crate) v4: Vec<Ipv4Addr>,
    pub(crate) v6: Vec<Ipv6Addr>,
    /// `v4` as answer records whose owner name points at the question (offset 12).
    pub(crate) a_rrs: Box<[u8]>,
    /// `v6` as answer records, likewise.
    pub(crate) aaaa_rrs: Box<[u8]>,
    rr: Arc<AtomicUsize>,
}

impl NameEntry {
    /// Next rotation offset (round-robin across queries).
    pub(crate) fn next_rotation(&self) -> usize {
        self.rr.fetch_add(1, Ordering::Relaxed)
    }
}

/// The reverse name of one address on one network (the first owner that claims it wins).
#[derive(Debug)]
pub(crate) struct PtrEntry {
    owners: Vec<(Arc<str>, Arc<PtrTarget>)>,
}

/// A PTR target, parsed and pre-encoded as an answer record.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct PtrTarget {
    pub(crate) name: Name,
    /// The answer record (owner name points at the question).
    pub(crate) rr: Box<[u8]>,
}

impl PtrEntry {
    pub(crate) fn target(&self) -> Option<&PtrTarget> {
        self.owners.first().map(|(_, t)| t.as_ref())
    }
}

/// A record after normalisation: lowercase names without trailing dot, deduplicated.
#[derive(Debug, PartialEq, Eq)]
struct Normalized {
    names: Vec<Box<str>>,
    addrs: Vec<IpAddr>,
    ptr: Option<Arc<PtrTarget>>,
}

type Map<K, V> = imbl::HashMap<K, V>;

/// The published names of one network: immutable once built, shared by reference between
/// every sandbox on the network.
#[derive(Clone, Default)]
pub struct NetworkView {
    records: Map<Arc<str>, Arc<Normalized>>,
    names: Map<Box<str>, Arc<NameEntry>>,
    ptrs: Map<IpAddr, Arc<PtrEntry>>,
}

impl fmt::Debug for NetworkView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetworkView")
            .field("records", &self.records.len())
            .field("names", &self.names.len())
            .field("ptrs", &self.ptrs.len())
            .finish()
    }
}

impl NetworkView {
    /// Number of owners (containers) published on the network.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether nothing is published on the network.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub(crate) fn lookup(&self, key: &str) -> Option<&Arc<NameEntry>> {
        self.names.get(key)
    }

    pub(crate) fn ptr(&self, addr: &IpAddr) -> Option<&PtrTarget> {
        self.ptrs.get(addr).and_then(|p| p.target())
    }

    /// Publish `rec` for `owner`, replacing what it had; returns how many entries (the
    /// record, names, reverse entries) were built or dropped (0 when nothing changed).
    pub(crate) fn upsert(&mut self, owner: &str, rec: &Record, ttl: u32) -> usize {
        let norm = normalize_record(rec, ttl);
        if self.records.get(owner).is_some_and(|old| **old == norm) {
            return 0;
        }
        let mut built = self.remove(owner, ttl) + 1;
        let owner: Arc<str> = owner.into();
        let norm = Arc::new(norm);
        self.records.insert(Arc::clone(&owner), Arc::clone(&norm));
        for key in &norm.names {
            let mut owners = self
                .names
                .get(key.as_ref())
                .map(|e| e.owners.clone())
                .unwrap_or_default();
            owners.push(Arc::clone(&owner));
            let rr = self.names.get(key.as_ref()).map(|e| Arc::clone(&e.rr));
            let entry = self.build_entry(owners, rr, ttl);
            self.names.insert(key.clone(), Arc::new(entry));
            built += 1;
        }
        if let Some(target) = &norm.ptr {
            for addr in &norm.addrs {
                let mut owners = self
                    .ptrs
                    .get(addr)
                    .map(|p| p.owners.clone())
                    .unwrap_or_default();
                owners.push((Arc::clone(&owner), Arc::clone(target)));
                self.ptrs.insert(*addr, Arc::new(PtrEntry { owners }));
                built += 1;
            }
        }
        built
    }

    /// Withdraw everything `owner` published; returns how many entries were rebuilt or
    /// dropped, counting the record itself (0 when the owner had nothing here).
    pub(crate) fn remove(&mut self, owner: &str, ttl: u32) -> usize {
        let Some(old) = self.records.remove(owner) else {
            return 0;
        };
        // The record itself, then each entry rebuilt or dropped.
        let mut built = 1;
        for key in &old.names {
            let Some(entry) = self.names.get(key.as_ref()) else {
                continue;
            };
            let owners: Vec<Arc<str>> = entry
                .owners
                .iter()
                .filter(|o| o.as_ref() != owner)
                .cloned()
                .collect();
            built += 1;
            if owners.is_empty() {
                self.names.remove(key.as_ref());
            } else {
                let rr = Some(Arc::clone(&entry.rr));
                let entry = self.build_entry(owners, rr, ttl);
                self.names.insert(key.clone(), Arc::new(entry));
            }
        }
        for addr in &old.addrs {
            let Some(p) = self.ptrs.get(addr) else {
                continue;
            };
            let owners: Vec<_> = p
                .owners
                .iter()
                .filter(|(o, _)| o.as_ref() != owner)
                .cloned()
                .collect();
            built += 1;
            if owners.is_empty() {
                self.ptrs.remove(addr);
            } else {
                self.ptrs.insert(*addr, Arc::new(PtrEntry { owners }));
            }
        }
        built
    }

    /// An entry from its owners' current records: addresses deduplicated, in owner order.
    fn build_entry(
        &self,
        owners: Vec<Arc<str>>,
        rr: Option<Arc<AtomicUsize>>,
        ttl: u32,
    ) -> NameEntry {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for o in &owners {
            let Some(rec) = self.records.get(o.as_ref()) else {
                continue;
            };
            for addr in &rec.addrs {
                match addr {
                    IpAddr::V4(a) if !v4.contains(a) => v4.push(*a),
                    IpAddr::V6(a) if !v6.contains(a) => v6.push(*a),
                    _ => {}
                }
            }
        }
        let a_rrs = v4
            .iter()
            .flat_map(|a| encode_rr(1, ttl, &a.octets()))
            .collect();
        let aaaa_rrs = v6
            .iter()
            .flat_map(|a| encode_rr(28, ttl, &a.octets()))
            .collect();
        NameEntry {
            owners,
            v4,
            v6,
            a_rrs,
            aaaa_rrs,
            rr: rr.unwrap_or_default(),
        }
    }
}

/// One answer record whose owner name is a compression pointer to the question.
fn encode_rr(rtype: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
    let mut rr = Vec::with_capacity(12 + rdata.len());
    rr.extend_from_slice(&[0xc0, 0x0c]);
    rr.extend_from_slice(&rtype.to_be_bytes());
    rr.extend_from_slice(&1u16.to_be_bytes());
    rr.extend_from_slice(&ttl.to_be_bytes());
    // rdata is at most 255 + a few bytes (a domain name or an address).
    rr.extend_from_slice(&u16::try_from(rdata.len()).unwrap_or(0).to_be_bytes());
    rr.extend_from_slice(rdata);
    rr
}

fn normalize_record(rec: &Record, ttl: u32) -> Normalized {
    let mut names: Vec<Box<str>> = Vec::with_capacity(rec.names.len());
    for raw in &rec.names {
        let key = normalize(raw);
        if !key.is_empty() && !names.iter().any(|n| n.as_ref() == key) {
            names.push(key.into());
        }
    }
    let mut addrs = Vec::with_capacity(rec.addrs.len());
    for a in &rec.addrs {
        if !addrs.contains(a) {
            addrs.push(*a);
        }
    }
    let ptr = ptr_target(&rec.ptr_name, ttl).map(Arc::new);
    Normalized { names, addrs, ptr }
}

fn ptr_target(raw: &str, ttl: u32) -> Option<PtrTarget> {
    let ptr = normalize(raw);
    if ptr.is_empty() {
        return None;
    }
    let Ok(mut name) = Name::from_ascii(&ptr) else {
        tracing::warn!(ptr_name = %raw, "ignoring invalid PTR name");
        return None;
    };
    name.set_fqdn(true);
    let mut wire = Vec::with_capacity(ptr.len() + 2);
    for label in name.iter() {
        wire.push(u8::try_from(label.len()).ok()?);
        wire.extend_from_slice(label);
    }
    wire.push(0);
    let rr = encode_rr(12, ttl, &wire).into();
    Some(PtrTarget { name, rr })
}

/// The current view of one network, swapped atomically on every change.
pub(crate) type NetworkSlot = ArcSwap<NetworkView>;

/// A name one sandbox resolves as another name on one of its networks: Docker's
/// endpoint-scoped alias of `--link NAME:ALIAS` on a user-defined network. Only the
/// sandbox it is given to sees it; the target's addresses are looked up at query time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkAlias {
    /// The name asked for (`ALIAS`, or `ALIAS.NETWORK`).
    pub alias: String,
    /// The name it stands for on `network` (`NAME`, or `NAME.NETWORK`).
    pub target: String,
    /// The network (one of the sandbox's) the target is looked up on.
    pub network: String,
}

/// A [`LinkAlias`] as looked up: (alias key, target key, index in the sandbox's networks).
type LinkKey = (Box<str>, Box<str>, usize);

/// Everything one sandbox's resolver needs: its networks' views in lookup order, and how
/// to forward what is not local.
pub struct SandboxView {
    pub(crate) networks: Vec<Arc<NetworkSlot>>,
    pub(crate) network_ids: Vec<Arc<str>>,
    /// Link aliases; usually empty.
    links: Box<[LinkKey]>,
    upstreams: Arc<[SocketAddr]>,
    forward: bool,
}

impl SandboxView {
    pub(crate) fn new(
        networks: Vec<(Arc<str>, Arc<NetworkSlot>)>,
        links: &[LinkAlias],
        upstreams: Vec<SocketAddr>,
        forward: bool,
    ) -> Self {
        let (network_ids, networks): (Vec<Arc<str>>, Vec<_>) = networks.into_iter().unzip();
        let key = |n: &str| {
            n.trim_end_matches('.')
                .to_ascii_lowercase()
                .into_boxed_str()
        };
        let links = links
            .iter()
            .filter_map(|l| {
                let i = network_ids.iter().position(|n| n.as_ref() == l.network)?;
                Some((key(&l.alias), key(&l.target), i))
            })
            .collect();
        Self {
            networks,
            network_ids,
            links,
            upstreams: upstreams.into(),
            forward,
        }
    }

    /// The link alias `key` (a lookup key) stands for: the target's key and the index of
    /// the network it is looked up on.
    pub(crate) fn link(&self, key: &str) -> Option<(&str, usize)> {
        self.links
            .iter()
            .find(|(a, _, _)| a.as_ref() == key)
            .map(|(_, t, i)| (t.as_ref(), *i))
    }

    /// The upstream servers of this sandbox, in order of preference.
    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// Whether non-local names are forwarded.
    pub fn forward(&self) -> bool {
        self.forward
    }

    /// IDs of the networks whose names this sandbox sees, in lookup order.
    pub fn network_ids(&self) -> impl Iterator<Item = &str> {
        self.network_ids.iter().map(AsRef::as_ref)
    }

    /// The current view of the `i`-th network (for tests that check sharing).
    pub fn network_view(&self, i: usize) -> Option<Arc<NetworkView>> {
        self.networks.get(i).map(|s| s.load_full())
    }

    /// Whether forwarding is possible (enabled and at least one upstream).
    pub(crate) fn can_forward(&self) -> bool {
        self.forward && !self.upstreams.is_empty()
    }

    pub(crate) fn upstreams_arc(&self) -> &Arc<[SocketAddr]> {
        &self.upstreams
    }
}

impl fmt::Debug for SandboxView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxView")
            .field("networks", &self.network_ids)
            .field("links", &self.links)
            .field("upstreams", &self.upstreams)
            .field("forward", &self.forward)
            .finish()
    }
}

/// The current view of one sandbox (`None` = not published: queries are refused).
pub(crate) type SandboxSlot = ArcSwapOption<SandboxView>;

/// A sandbox whose names are given as a flat record list (see [`crate::Resolver::publish`]).
#[derive(Debug, Clone, Default)]
pub struct FlatSandbox {
    /// What the sandbox resolves.
    pub records: Vec<Record>,
    /// Upstream servers, in order of preference.
    pub upstreams: Vec<SocketAddr>,
    /// Whether non-local names are forwarded (false for internal networks).
    pub forward: bool,
}

impl FlatSandbox {
    /// A sandbox description. Several records carrying the same name resolve to all their
    /// addresses (deduplicated, in record order). `forward == false` (internal networks)
    /// or an empty `upstreams` disables forwarding: non-local names then get NXDOMAIN.
    pub fn new(records: Vec<Record>, upstreams: Vec<SocketAddr>, forward: bool) -> Self {
        Self {
            records,
            upstreams,
            forward,
        }
    }
}

/// Every sandbox of the daemon as flat record lists, published as a whole (tests and
/// simple embedders; the daemon publishes per network instead).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Sandbox id → what it resolves.
    pub sandboxes: std::collections::HashMap<String, FlatSandbox>,
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

/// The address of a full reverse name (`d.c.b.a.in-addr.arpa`, 32 nibbles + `ip6.arpa`),
/// given as its labels.
pub(crate) fn reverse_addr_labels(labels: &[&[u8]]) -> Option<IpAddr> {
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

/// The address of a full reverse name.
pub(crate) fn reverse_addr(name: &Name) -> Option<IpAddr> {
    let labels: Vec<&[u8]> = name.iter().collect();
    reverse_addr_labels(&labels)
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

    fn rec(names: &[&str], addrs: &[&str], ptr: &str) -> Record {
        Record {
            names: names.iter().map(|s| s.to_string()).collect(),
            addrs: addrs.iter().map(|s| s.parse().unwrap()).collect(),
            ptr_name: ptr.into(),
        }
    }

    #[test]
    fn view_merges_names() {
        let mut v = NetworkView::default();
        v.upsert("a", &rec(&["web", "A."], &["10.0.0.2"], "a.net"), 600);
        v.upsert("b", &rec(&["WEB"], &["10.0.0.3", "10.0.0.2"], "b.net"), 600);
        assert_eq!(v.lookup("web").unwrap().v4.len(), 2);
        assert_eq!(v.lookup("web").unwrap().a_rrs.len(), 2 * A_RR_LEN);
        assert_eq!(v.lookup("a").unwrap().v4.len(), 1);
        assert_eq!(
            v.ptr(&"10.0.0.2".parse().unwrap()).unwrap().name.to_ascii(),
            "a.net."
        );
        // Withdrawing a keeps b's addresses (10.0.0.2 included: b claims it too).
        v.remove("a", 600);
        assert!(v.lookup("a").is_none());
        assert_eq!(v.lookup("web").unwrap().v4.len(), 2);
        assert_eq!(
            v.ptr(&"10.0.0.2".parse().unwrap()).unwrap().name.to_ascii(),
            "b.net."
        );
        v.remove("b", 600);
        assert!(v.is_empty() && v.lookup("web").is_none());
        assert!(v.ptr(&"10.0.0.2".parse().unwrap()).is_none());
    }

    #[test]
    fn same_record_again_rebuilds_nothing() {
        let mut v = NetworkView::default();
        let r = rec(&["c1", "c1.net"], &["10.0.0.2"], "c1.net");
        assert_eq!(v.upsert("c1", &r, 600), 4);
        assert_eq!(v.upsert("c1", &r, 600), 0);
        let moved = rec(&["c1", "c1.net"], &["10.0.0.9"], "c1.net");
        assert!(v.upsert("c1", &moved, 600) > 0);
        assert_eq!(v.lookup("c1").unwrap().v4, vec![Ipv4Addr::new(10, 0, 0, 9)]);
        assert!(v.ptr(&"10.0.0.2".parse().unwrap()).is_none());
    }
}
