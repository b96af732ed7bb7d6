//! netloom's firewall, rendered as nftables text by pure code (golden-tested) and
//! applied by `netloom-kernel` as one `nft -f -` transaction.
//!
//! One `inet` table per daemon holds everything. Rules never grow with the number of
//! networks: each network only adds elements to named sets, so per-packet work is a
//! handful of set lookups whatever the size.
//!
//! Bridged traffic between two containers of one bridge reaches the `forward` hook
//! through `br_netfilter` with `iifname == oifname == <bridge>` (this is what Docker's
//! `-i docker0 -o docker0` ICC rule relies on), so the `intra`/`noicc` pair sets decide
//! inter-container communication on a bridge; routed traffic between two bridges is
//! dropped unless it answers an existing connection or was DNATed to a published port.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::net::IpAddr;

use ipnet::IpNet;
use netloom_model::ports::Proto;

use crate::bridge::config::valid_ifname;

/// What the firewall needs to know about one bridge network.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NetRules {
    /// Bridge interface.
    pub iface: String,
    /// Subnets of the network.
    pub subnets: Vec<IpNet>,
    /// `--internal`.
    pub internal: bool,
    /// `enable_icc`.
    pub icc: bool,
    /// `enable_ip_masquerade`.
    pub masquerade: bool,
}

/// One published port: traffic to `host_ip:host_port/proto` (any local address when
/// `host_ip` is None) goes to `ctr_ip:ctr_port`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortRule {
    /// `tcp`, `udp` or `sctp`.
    pub proto: Proto,
    /// Host address, None for all of the family of `ctr_ip`.
    pub host_ip: Option<IpAddr>,
    /// Host port.
    pub host_port: u16,
    /// Container address.
    pub ctr_ip: IpAddr,
    /// Container port.
    pub ctr_port: u16,
}

/// Everything the firewall programs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// Bridge networks.
    pub nets: Vec<NetRules>,
    /// Published ports.
    pub ports: Vec<PortRule>,
}

/// Errors of rendering.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FirewallError {
    /// A name that would reach the ruleset breaks the grammar.
    #[error("invalid name {0:?} for the firewall: only [a-zA-Z0-9_.-], at most 15 characters")]
    InvalidName(String),
    /// A published port mixes address families.
    #[error("published port {0}: host and container addresses are of different families")]
    MixedFamily(u16),
}

/// One element of a named set or map.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Elem {
    Bridge(String),
    Internal(String),
    Intra(String),
    NoIcc(String),
    Masq(IpNet),
    Dnat(PortRule),
}

impl Elem {
    fn set(&self) -> &'static str {
        match self {
            Elem::Bridge(_) => "bridges",
            Elem::Internal(_) => "internal",
            Elem::Intra(_) => "intra",
            Elem::NoIcc(_) => "noicc",
            Elem::Masq(IpNet::V4(_)) => "masq4",
            Elem::Masq(IpNet::V6(_)) => "masq6",
            Elem::Dnat(p) => match (p.ctr_ip.is_ipv4(), p.host_ip.is_some()) {
                (true, false) => "dnat4_any",
                (true, true) => "dnat4_ip",
                (false, false) => "dnat6_any",
                (false, true) => "dnat6_ip",
            },
        }
    }

    fn value(&self) -> String {
        match self {
            Elem::Bridge(i) | Elem::Internal(i) => format!("\"{i}\""),
            Elem::Intra(i) | Elem::NoIcc(i) => format!("\"{i}\" . \"{i}\""),
            Elem::Masq(n) => n.trunc().to_string(),
            Elem::Dnat(p) => {
                let key = match p.host_ip {
                    Some(h) => format!("{h} . {} . {}", p.proto.as_str(), p.host_port),
                    None => format!("{} . {}", p.proto.as_str(), p.host_port),
                };
                format!("{key} : {} . {}", p.ctr_ip, p.ctr_port)
            }
        }
    }
}

fn elements(d: &Desired) -> Result<BTreeSet<Elem>, FirewallError> {
    let mut out = BTreeSet::new();
    for n in &d.nets {
        if !valid_ifname(&n.iface) {
            return Err(FirewallError::InvalidName(n.iface.clone()));
        }
        out.insert(Elem::Bridge(n.iface.clone()));
        if n.internal {
            out.insert(Elem::Internal(n.iface.clone()));
        }
        if n.icc {
            out.insert(Elem::Intra(n.iface.clone()));
        } else {
            out.insert(Elem::NoIcc(n.iface.clone()));
        }
        if n.masquerade && !n.internal {
            for s in &n.subnets {
                out.insert(Elem::Masq(s.trunc()));
            }
        }
    }
    for p in &d.ports {
        if let Some(h) = p.host_ip
            && h.is_ipv4() != p.ctr_ip.is_ipv4()
        {
            return Err(FirewallError::MixedFamily(p.host_port));
        }
        out.insert(Elem::Dnat(p.clone()));
    }
    Ok(out)
}

/// The firewall of one daemon: its table name and what is currently applied.
#[derive(Debug, Clone)]
pub struct Firewall {
    table: String,
    applied: BTreeSet<Elem>,
}

/// Named sets and maps: (kind, name, type).
const SETS: &[(&str, &str, &str)] = &[
    ("set", "bridges", "type ifname;"),
    ("set", "internal", "type ifname;"),
    ("set", "intra", "type ifname . ifname;"),
    ("set", "noicc", "type ifname . ifname;"),
    ("set", "masq4", "type ipv4_addr; flags interval;"),
    ("set", "masq6", "type ipv6_addr; flags interval;"),
    (
        "map",
        "dnat4_any",
        "type inet_proto . inet_service : ipv4_addr . inet_service;",
    ),
    (
        "map",
        "dnat4_ip",
        "type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service;",
    ),
    (
        "map",
        "dnat6_any",
        "type inet_proto . inet_service : ipv6_addr . inet_service;",
    ),
    (
        "map",
        "dnat6_ip",
        "type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service;",
    ),
];

/// The packet mark bit netloom's `forward` chain sets on traffic it accepts. A host
/// `forward` chain at `policy drop` (ufw, firewalld, a hand-written ruleset) gets one
/// rule accepting packets that carry it (see [`Firewall::render_host_hook`]).
pub const ACCEPT_MARK: u32 = 0x1000_0000;

/// Comment of the rule netloom inserts into a host `forward` chain at `policy drop`.
pub const HOOK_COMMENT: &str = "netloom: accept what the netloom table accepted";

/// Base chains (name, hook spec) and regular chains (spec empty), with their rules.
/// The rule count is fixed: networks and ports only add set and map elements. The
/// `forward` chain runs just before the usual filter priority, so its mark is set by the
/// time a host chain looks at the packet.
const CHAINS: &[(&str, &str, &[&str])] = &[
    (
        "forward",
        "type filter hook forward priority filter - 5; policy accept;",
        &[
            "iifname != @bridges oifname != @bridges accept",
            "ct state established,related meta mark set meta mark or 0x10000000 accept",
            "iifname . oifname @noicc drop",
            "iifname . oifname @intra meta mark set meta mark or 0x10000000 accept",
            "ct status dnat jump user",
            "ct status dnat meta mark set meta mark or 0x10000000 accept",
            "iifname @internal drop",
            "oifname @internal drop",
            "iifname @bridges oifname @bridges drop",
            "oifname @bridges drop",
            "meta mark set meta mark or 0x10000000 accept",
        ],
    ),
    (
        "input",
        "type filter hook input priority filter; policy accept;",
        &["iifname @internal ct state new drop"],
    ),
    (
        "prerouting",
        "type nat hook prerouting priority dstnat; policy accept;",
        &["fib daddr type local jump published"],
    ),
    (
        "output",
        "type nat hook output priority -100; policy accept;",
        &["fib daddr type local jump published"],
    ),
    (
        "published",
        "",
        &[
            "dnat ip to ip daddr . meta l4proto . th dport map @dnat4_ip",
            "dnat ip to meta l4proto . th dport map @dnat4_any",
            "dnat ip6 to ip6 daddr . meta l4proto . th dport map @dnat6_ip",
            "dnat ip6 to meta l4proto . th dport map @dnat6_any",
        ],
    ),
    (
        "postrouting",
        "type nat hook postrouting priority srcnat; policy accept;",
        &[
            "oifname != @bridges ip saddr @masq4 masquerade",
            "oifname != @bridges ip6 saddr @masq6 masquerade",
            "ct status dnat oifname @bridges ip saddr 127.0.0.0/8 masquerade",
            "ct status dnat oifname @bridges ip saddr @masq4 masquerade",
            "ct status dnat oifname @bridges ip6 saddr @masq6 masquerade",
        ],
    ),
];

fn valid_nft_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

impl Firewall {
    /// A firewall owning `table` (an `inet` table). The name must match the grammar.
    pub fn new(table: &str) -> Result<Self, FirewallError> {
        if table.is_empty()
            || table.len() > 32
            || !table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(FirewallError::InvalidName(table.to_string()));
        }
        Ok(Firewall {
            table: table.to_string(),
            applied: BTreeSet::new(),
        })
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The chains of netloom's table (its own and the admin's `user` chain): if one is
    /// missing, the table must be rendered again.
    pub fn chain_names() -> impl Iterator<Item = &'static str> {
        CHAINS.iter().map(|(name, _, _)| *name).chain(["user"])
    }

    /// Renders the whole table as one transaction: creates what is missing, flushes
    /// netloom's chains, sets and maps, and fills them again. The admin's `user` chain
    /// (consulted before published-port traffic is accepted) is created empty once and
    /// never flushed.
    pub fn render_full(&self, d: &Desired) -> Result<String, FirewallError> {
        let elems = elements(d)?;
        let t = &self.table;
        let mut s = String::new();
        let _ = writeln!(s, "add table inet {t}");
        let _ = writeln!(s, "add chain inet {t} user");
        for (kind, name, ty) in SETS {
            let _ = writeln!(s, "add {kind} inet {t} {name} {{ {ty} }}");
        }
        // Re-create netloom's chains (not `user`): declaring, flushing and deleting them
        // first makes the batch work whether or not they exist, and lets a new version
        // change a chain's hook or priority. All of it is one transaction.
        for (name, _, _) in CHAINS {
            let _ = writeln!(s, "add chain inet {t} {name}");
        }
        for (name, _, _) in CHAINS {
            let _ = writeln!(s, "flush chain inet {t} {name}");
        }
        for (name, _, _) in CHAINS {
            let _ = writeln!(s, "delete chain inet {t} {name}");
        }
        for (name, spec, _) in CHAINS {
            if spec.is_empty() {
                let _ = writeln!(s, "add chain inet {t} {name}");
            } else {
                let _ = writeln!(s, "add chain inet {t} {name} {{ {spec} }}");
            }
        }
        for (kind, name, _) in SETS {
            let _ = writeln!(s, "flush {kind} inet {t} {name}");
        }
        for (name, _, rules) in CHAINS {
            for r in *rules {
                let _ = writeln!(s, "add rule inet {t} {name} {r}");
            }
        }
        for (_, name, _) in SETS {
            let items: Vec<String> = elems
                .iter()
                .filter(|e| e.set() == *name)
                .map(Elem::value)
                .collect();
            if !items.is_empty() {
                let _ = writeln!(s, "add element inet {t} {name} {{ {} }}", items.join(", "));
            }
        }
        Ok(s)
    }

    /// Renders only the element changes from what was applied to `d`
    /// (`None` when nothing changes).
    pub fn render_delta(&self, d: &Desired) -> Result<Option<String>, FirewallError> {
        let want = elements(d)?;
        let t = &self.table;
        let mut s = String::new();
        for e in self.applied.difference(&want) {
            let _ = writeln!(s, "delete element inet {t} {} {{ {} }}", e.set(), e.value());
        }
        for e in want.difference(&self.applied) {
            let _ = writeln!(s, "add element inet {t} {} {{ {} }}", e.set(), e.value());
        }
        Ok((!s.is_empty()).then_some(s))
    }

    /// Records that `d` is now what the kernel holds.
    pub fn mark_applied(&mut self, d: &Desired) -> Result<(), FirewallError> {
        self.applied = elements(d)?;
        Ok(())
    }

    /// Renders the one rule netloom adds to a host `forward` chain at `policy drop`:
    /// accept packets netloom's own `forward` chain accepted (they carry [`ACCEPT_MARK`]).
    /// Names come from `nft -j list chains` and are checked against a strict grammar.
    pub fn render_host_hook(
        family: &str,
        table: &str,
        chain: &str,
    ) -> Result<String, FirewallError> {
        if !matches!(family, "ip" | "ip6" | "inet") {
            return Err(FirewallError::InvalidName(family.to_string()));
        }
        for n in [table, chain] {
            if !valid_nft_name(n) {
                return Err(FirewallError::InvalidName(n.to_string()));
            }
        }
        Ok(format!(
            "insert rule {family} {table} {chain} meta mark and {ACCEPT_MARK:#x} == {ACCEPT_MARK:#x} accept comment \"{HOOK_COMMENT}\"\n"
        ))
    }

    /// Renders the removal of the table.
    pub fn render_delete(&self) -> String {
        format!("add table inet {0}\ndelete table inet {0}\n", self.table)
    }
}

#[cfg(test)]
mod tests;
