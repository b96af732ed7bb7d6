//! `ipMasq`: source NAT for container traffic that leaves its network's subnets, in
//! netloom-cni's own nftables table (`inet netloom_cni`) of the runtime's namespace.
//!
//! Layout (one `nft -f -` transaction per command, so concurrent ADD/DELs never see a
//! half-made table):
//!
//! ```text
//! table inet netloom_cni {
//!   map masq4 { type ipv4_addr : verdict }     # container address -> its network's chain
//!   map masq6 { type ipv6_addr : verdict }
//!   chain postrouting { type nat hook postrouting priority srcnat
//!     ip saddr vmap @masq4
//!     ip6 saddr vmap @masq6 }
//!   chain masq-<hash of the network name> {
//!     ip daddr 10.22.0.0/16 return             # the network's own subnets
//!     ip daddr 224.0.0.0/4 return              # multicast (ff00::/8 for IPv6)
//!     masquerade }
//! }
//! ```
//!
//! ADD adds one map element per container address; DEL and GC remove them. The fixed
//! rules are flushed and rewritten by every ADD, which keeps ADD idempotent without a
//! read of the ruleset first. Nothing outside this table is touched.

use std::net::IpAddr;

use ipnet::IpNet;
use netloom_kernel::KernelError;

use crate::error::CniError;

/// The table's name (family `inet`).
pub const TABLE: &str = "netloom_cni";

/// The per-network chain: `masq-` and 16 hex digits of the FNV-1a hash of the network
/// name (names may hold characters nft identifiers cannot; the hash is stable across
/// builds, unlike std's hasher).
pub fn chain(network: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in network.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("masq-{h:016x}")
}

fn map_of(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() { "masq4" } else { "masq6" }
}

/// The statements that create the table, maps and hook chain if missing.
fn base(script: &mut String) {
    script.push_str(&format!(
        "add table inet {TABLE}\n\
         add map inet {TABLE} masq4 {{ type ipv4_addr : verdict; }}\n\
         add map inet {TABLE} masq6 {{ type ipv6_addr : verdict; }}\n\
         add chain inet {TABLE} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}\n"
    ));
}

/// ADD: masquerade what `addrs` send outside `subnets` (and outside multicast).
pub fn add(network: &str, subnets: &[IpNet], addrs: &[IpAddr]) -> Result<(), CniError> {
    let c = chain(network);
    let mut s = String::new();
    base(&mut s);
    s.push_str(&format!(
        "flush chain inet {TABLE} postrouting\n\
         add rule inet {TABLE} postrouting ip saddr vmap @masq4\n\
         add rule inet {TABLE} postrouting ip6 saddr vmap @masq6\n\
         add chain inet {TABLE} {c}\n\
         flush chain inet {TABLE} {c}\n"
    ));
    for n in subnets {
        let fam = if n.addr().is_ipv4() { "ip" } else { "ip6" };
        s.push_str(&format!(
            "add rule inet {TABLE} {c} {fam} daddr {} return\n",
            n.trunc()
        ));
    }
    s.push_str(&format!(
        "add rule inet {TABLE} {c} ip daddr 224.0.0.0/4 return\n\
         add rule inet {TABLE} {c} ip6 daddr ff00::/8 return\n\
         add rule inet {TABLE} {c} masquerade\n"
    ));
    for a in addrs {
        s.push_str(&format!(
            "add element inet {TABLE} {} {{ {a} : jump {c} }}\n",
            map_of(a)
        ));
    }
    apply(&s).map_err(CniError::kernel(format!(
        "add masquerading (ipMasq) for {} in nftables table inet {TABLE}",
        list(addrs)
    )))
}

/// DEL / GC: stop masquerading `addrs`. Addresses that have no element are fine (each
/// element is added, then deleted, in one transaction).
pub fn remove(network: &str, addrs: &[IpAddr]) -> Result<(), CniError> {
    if addrs.is_empty() {
        return Ok(());
    }
    let c = chain(network);
    let mut s = String::new();
    base(&mut s);
    s.push_str(&format!("add chain inet {TABLE} {c}\n"));
    for a in addrs {
        let m = map_of(a);
        s.push_str(&format!(
            "add element inet {TABLE} {m} {{ {a} : jump {c} }}\n\
             delete element inet {TABLE} {m} {{ {a} }}\n"
        ));
    }
    apply(&s).map_err(CniError::kernel(format!(
        "remove masquerading (ipMasq) for {} from nftables table inet {TABLE}",
        list(addrs)
    )))
}

fn list(addrs: &[IpAddr]) -> String {
    addrs
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs `nft -f -` with `script` (blocking: DEL has no async runtime with I/O).
fn apply(script: &str) -> Result<(), KernelError> {
    netloom_kernel::nft::apply_blocking(script)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_are_stable_valid_identifiers() {
        assert_eq!(chain("nlcnet"), chain("nlcnet"));
        assert_ne!(chain("a"), chain("b"));
        let c = chain("my net/with:odd chars");
        assert_eq!(c.len(), 5 + 16);
        assert!(c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-'));
        // FNV-1a of the empty string is the offset basis.
        assert_eq!(chain(""), "masq-cbf29ce484222325");
    }
}
