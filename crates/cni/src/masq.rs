//! `ipMasq`: source NAT for container traffic that leaves its network's subnets, in
//! netloom-cni's own nftables table (`inet netloom_cni`) of the runtime's namespace.
//!
//! Layout (one `nft -f -` transaction per command, so concurrent ADD/DELs never see a
//! half-made table):
//!
//! ```text
//! table inet netloom_cni {
//!   map masq4 { type ifname . ipv4_addr : verdict }   # bridge . container address -> chain
//!   map masq6 { type ifname . ipv6_addr : verdict }
//!   chain postrouting { type nat hook postrouting priority srcnat
//!     iifname . ip saddr vmap @masq4
//!     iifname . ip6 saddr vmap @masq6 }
//!   chain masq-<hash of network name and subnets> {
//!     ip daddr 10.22.0.0/16 return             # the network's own subnets
//!     ip daddr 224.0.0.0/4 return              # multicast (ff00::/8 for IPv6)
//!     masquerade }
//! }
//! ```
//!
//! The key carries the bridge, so the same address on two bridges (overlapping subnets)
//! is two elements. ADD adds one element per container address; DEL and GC remove them.
//! The fixed rules are flushed and rewritten by every ADD, which keeps ADD idempotent
//! without a read of the ruleset first. Nothing outside this table is touched.

use std::net::IpAddr;

use ipnet::IpNet;
use netloom_kernel::KernelError;

use crate::error::CniError;

/// The table's name (family `inet`).
pub const TABLE: &str = "netloom_cni";

/// The chain for a network with these subnets: `masq-` and 16 hex digits of the FNV-1a
/// hash of the network name and subnets (names may hold characters nft identifiers
/// cannot; the hash is stable across builds, unlike std's hasher). Containers given
/// other ranges (`runtimeConfig.ipRanges`) get a chain of their own.
pub fn chain(network: &str, subnets: &[IpNet]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(network.as_bytes());
    for n in subnets {
        eat(b"|");
        eat(n.trunc().to_string().as_bytes());
    }
    format!("masq-{h:016x}")
}

fn map_of(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() { "masq4" } else { "masq6" }
}

/// ADD: masquerade what `addrs` (on `bridge`) send outside `subnets` (and outside
/// multicast).
pub fn add(
    network: &str,
    bridge: &str,
    subnets: &[IpNet],
    addrs: &[IpAddr],
) -> Result<(), CniError> {
    let c = chain(network, subnets);
    let mut s = format!(
        "add table inet {TABLE}\n\
         add map inet {TABLE} masq4 {{ type ifname . ipv4_addr : verdict; }}\n\
         add map inet {TABLE} masq6 {{ type ifname . ipv6_addr : verdict; }}\n\
         add chain inet {TABLE} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}\n\
         flush chain inet {TABLE} postrouting\n\
         add rule inet {TABLE} postrouting iifname . ip saddr vmap @masq4\n\
         add rule inet {TABLE} postrouting iifname . ip6 saddr vmap @masq6\n\
         add chain inet {TABLE} {c}\n\
         flush chain inet {TABLE} {c}\n"
    );
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
            "add element inet {TABLE} {} {{ \"{bridge}\" . {a} : jump {c} }}\n",
            map_of(a)
        ));
    }
    apply(&s).map_err(CniError::kernel(format!(
        "add masquerading (ipMasq) for {} in nftables table inet {TABLE}",
        list(addrs)
    )))
}

/// DEL / GC: stop masquerading `addrs` on `bridge`. Creates nothing: addresses (or a
/// table) that are not there are fine. One transaction when every element exists;
/// otherwise each element is deleted on its own and a missing one is skipped.
pub fn remove(bridge: &str, addrs: &[IpAddr]) -> Result<(), CniError> {
    if addrs.is_empty() {
        return Ok(());
    }
    let del = |a: &IpAddr| {
        format!(
            "delete element inet {TABLE} {} {{ \"{bridge}\" . {a} }}\n",
            map_of(a)
        )
    };
    let all: String = addrs.iter().map(del).collect();
    let Err(first) = apply(&all) else {
        return Ok(());
    };
    let mut failed = Vec::new();
    for a in addrs {
        match apply(&del(a)) {
            Ok(()) => {}
            Err(KernelError::Nft(msg)) if msg.contains("No such file or directory") => {}
            Err(e) => failed.push((*a, e)),
        }
    }
    match failed.into_iter().next() {
        None => {
            tracing::debug!(error = %first, "some masquerade elements were already gone");
            Ok(())
        }
        Some((a, e)) => Err(CniError::kernel(format!(
            "remove masquerading (ipMasq) for {a} from nftables table inet {TABLE}"
        ))(e)),
    }
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
        let n: Vec<IpNet> = vec!["10.77.0.0/24".parse().unwrap()];
        assert_eq!(chain("nlcnet", &n), chain("nlcnet", &n));
        assert_ne!(chain("a", &n), chain("b", &n));
        let other: Vec<IpNet> = vec!["10.78.0.0/24".parse().unwrap()];
        assert_ne!(
            chain("a", &n),
            chain("a", &other),
            "other ranges, other chain"
        );
        let c = chain("my net/with:odd chars", &n);
        assert_eq!(c.len(), 5 + 16);
        assert!(c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-'));
        // FNV-1a of the empty input is the offset basis.
        assert_eq!(chain("", &[]), "masq-cbf29ce484222325");
    }
}
