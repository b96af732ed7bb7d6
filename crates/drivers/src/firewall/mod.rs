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

use ipnet::IpNet;

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

/// Errors of rendering.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FirewallError {
    /// A name that would reach the ruleset breaks the grammar.
    #[error("invalid name {0:?} for the firewall: only [a-zA-Z0-9_.-], at most 15 characters")]
    InvalidName(String),
}

/// One element of a named set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Elem {
    Bridge(String),
    Internal(String),
    Intra(String),
    NoIcc(String),
    Masq(IpNet),
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
        }
    }

    fn value(&self) -> String {
        match self {
            Elem::Bridge(i) | Elem::Internal(i) => format!("\"{i}\""),
            Elem::Intra(i) | Elem::NoIcc(i) => format!("\"{i}\" . \"{i}\""),
            Elem::Masq(n) => n.trunc().to_string(),
        }
    }
}

fn elements(nets: &[NetRules]) -> Result<BTreeSet<Elem>, FirewallError> {
    let mut out = BTreeSet::new();
    for n in nets {
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
    Ok(out)
}

/// The firewall of one daemon: its table name and what is currently applied.
#[derive(Debug, Clone)]
pub struct Firewall {
    table: String,
    applied: BTreeSet<Elem>,
}

const SETS: &[(&str, &str)] = &[
    ("bridges", "type ifname;"),
    ("internal", "type ifname;"),
    ("intra", "type ifname . ifname;"),
    ("noicc", "type ifname . ifname;"),
    ("masq4", "type ipv4_addr; flags interval;"),
    ("masq6", "type ipv6_addr; flags interval;"),
];

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

    /// Renders the whole table, replacing any previous one atomically (the first two
    /// lines make sure the table exists, then delete it, in the same transaction).
    pub fn render_full(&self, nets: &[NetRules]) -> Result<String, FirewallError> {
        let elems = elements(nets)?;
        let t = &self.table;
        let mut s = String::new();
        let _ = writeln!(s, "table inet {t} {{}}");
        let _ = writeln!(s, "delete table inet {t}");
        let _ = writeln!(s, "table inet {t} {{");
        for (name, ty) in SETS {
            let items: Vec<String> = elems
                .iter()
                .filter(|e| e.set() == *name)
                .map(Elem::value)
                .collect();
            if items.is_empty() {
                let _ = writeln!(s, "  set {name} {{ {ty} }}");
            } else {
                let _ = writeln!(
                    s,
                    "  set {name} {{ {ty} elements = {{ {} }} }}",
                    items.join(", ")
                );
            }
        }
        s.push_str(CHAINS);
        s.push_str("}\n");
        Ok(s)
    }

    /// Renders only the element changes from what was applied to `nets`
    /// (`None` when nothing changes).
    pub fn render_delta(&self, nets: &[NetRules]) -> Result<Option<String>, FirewallError> {
        let want = elements(nets)?;
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

    /// Records that `nets` is now what the kernel holds.
    pub fn mark_applied(&mut self, nets: &[NetRules]) -> Result<(), FirewallError> {
        self.applied = elements(nets)?;
        Ok(())
    }

    /// Renders the removal of the table.
    pub fn render_delete(&self) -> String {
        format!("table inet {0} {{}}\ndelete table inet {0}\n", self.table)
    }
}

/// The chains: a fixed set of rules whose count never depends on the networks.
const CHAINS: &str = "  chain forward {
    type filter hook forward priority filter; policy accept;
    ct state established,related accept
    iifname . oifname @noicc drop
    iifname . oifname @intra accept
    ct status dnat accept
    iifname @internal drop
    oifname @internal drop
    iifname @bridges oifname @bridges drop
  }
  chain input {
    type filter hook input priority filter; policy accept;
    iifname @internal ct state new drop
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname != @bridges ip saddr @masq4 masquerade
    oifname != @bridges ip6 saddr @masq6 masquerade
  }
";

#[cfg(test)]
mod tests;
