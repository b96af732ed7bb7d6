//! Links stacked on a parent interface: macvlan, ipvlan, 802.1q VLAN, and the dummy
//! links that stand in for a missing parent; plus a side-effect-free probe that tells
//! whether the running kernel can create a link kind at all.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use netlink_packet_route::link::{IpVlanFlags, IpVlanMode, MacVlanMode};
use rtnetlink::{LinkDummy, LinkIpVlan, LinkMacVlan, LinkUnspec, LinkVeth, LinkVlan};

use crate::error::KernelError;
use crate::link::{LinkInfo, Netlink};
use crate::netns;

/// Macvlan modes (`macvlan_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacvlanMode {
    /// Endpoints on one parent talk to each other directly.
    Bridge,
    /// Endpoints on one parent cannot talk to each other.
    Private,
    /// Traffic between endpoints hairpins through the external switch.
    Vepa,
    /// One endpoint takes over the parent.
    Passthru,
}

impl MacvlanMode {
    /// Parses the iproute2 / Docker / CNI spelling (`bridge`, `private`, `vepa`, `passthru`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "bridge" => Some(Self::Bridge),
            "private" => Some(Self::Private),
            "vepa" => Some(Self::Vepa),
            "passthru" => Some(Self::Passthru),
            _ => None,
        }
    }
}

/// Ipvlan modes (`ipvlan_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpvlanMode {
    /// Layer 2: endpoints share the parent's MAC and see its broadcast domain.
    L2,
    /// Layer 3: the parent routes to the endpoints; no broadcast or multicast.
    L3,
    /// Layer 3 with the parent's netfilter hooks applied.
    L3s,
}

/// Ipvlan flags (`ipvlan_flag`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpvlanFlag {
    /// Endpoints may talk to each other (the default).
    Bridge,
    /// Endpoints on one parent cannot talk to each other.
    Private,
    /// Traffic between endpoints goes through the external switch.
    Vepa,
}

/// A link created on a parent for one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubLink {
    /// A macvlan link with its own MAC address.
    Macvlan(MacvlanMode),
    /// An ipvlan link sharing the parent's MAC address.
    Ipvlan(IpvlanMode, IpvlanFlag),
}

/// Link kinds whose support [`Netlink::probe`] can check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// macvlan (`CONFIG_MACVLAN`).
    Macvlan,
    /// ipvlan (`CONFIG_IPVLAN`).
    Ipvlan,
    /// 802.1q VLAN sub-interfaces (`CONFIG_VLAN_8021Q`).
    Vlan,
    /// dummy links (`CONFIG_DUMMY`).
    Dummy,
}

impl LinkKind {
    /// The feature as a user would look it up: name and kernel module.
    pub fn feature(self) -> &'static str {
        match self {
            LinkKind::Macvlan => "macvlan links (kernel module macvlan, CONFIG_MACVLAN)",
            LinkKind::Ipvlan => "ipvlan links (kernel module ipvlan, CONFIG_IPVLAN)",
            LinkKind::Vlan => "802.1q VLAN links (kernel module 8021q, CONFIG_VLAN_8021Q)",
            LinkKind::Dummy => "dummy links (kernel module dummy, CONFIG_DUMMY)",
        }
    }
}

fn unsupported(kind: LinkKind) -> impl FnOnce(KernelError) -> KernelError {
    move |e| match e {
        KernelError::NotSupported { .. } => KernelError::NotSupported {
            what: kind.feature().to_string(),
        },
        e => e,
    }
}

impl Netlink {
    /// Checks that the kernel can create links of `kind`, without touching any existing
    /// interface: the test link is made in a private, throwaway network namespace (on a
    /// veth parent there) that vanishes with the probe. A missing feature is
    /// [`KernelError::NotSupported`] naming it.
    pub async fn probe(kind: LinkKind) -> Result<(), KernelError> {
        let fd: OwnedFd = std::thread::spawn(|| -> Result<OwnedFd, KernelError> {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| KernelError::Namespace(format!("create probe namespace: {e}")))?;
            crate::link::route_socket()
        })
        .join()
        .map_err(|_| KernelError::Namespace("probe thread panicked".into()))??;
        let nl = Netlink::from_socket(fd);
        // Dropping the handle ends its connection task and closes the socket: the
        // namespace (and everything made in it) goes with it.
        nl.probe_here(kind).await
    }

    async fn probe_here(&self, kind: LinkKind) -> Result<(), KernelError> {
        if kind == LinkKind::Dummy {
            let msg = LinkDummy::new("probe0").build();
            return self
                .add(msg, "dummy link probe0")
                .await
                .map_err(unsupported(kind));
        }
        let msg = LinkVeth::new("probe0", "probe1").build();
        self.add(msg, "veth pair probe0/probe1").await?;
        let parent = self.require_link("probe0").await?;
        let msg = match kind {
            LinkKind::Macvlan => LinkMacVlan::new("probe2", parent.index, MacVlanMode::Bridge),
            LinkKind::Ipvlan => {
                let msg = LinkIpVlan::new("probe2", parent.index, IpVlanMode::L2).build();
                return self.add(msg, "probe2").await.map_err(unsupported(kind));
            }
            LinkKind::Vlan => {
                let msg = LinkVlan::new("probe2", parent.index, 100).build();
                return self.add(msg, "probe2").await.map_err(unsupported(kind));
            }
            LinkKind::Dummy => return Ok(()),
        }
        .build();
        self.add(msg, "probe2").await.map_err(unsupported(kind))
    }

    async fn add(
        &self,
        msg: netlink_packet_route::link::LinkMessage,
        what: &str,
    ) -> Result<(), KernelError> {
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(|e| KernelError::from_netlink(format!("create {what}"), what, e))
    }

    /// Creates a macvlan or ipvlan link on the parent `parent` (an index in this
    /// handle's namespace), born inside the namespace bound at `ns_path` already named
    /// `name`, so it never clashes with a host interface. `mac` applies to macvlan only.
    pub async fn create_sublink_into(
        &self,
        kind: SubLink,
        parent: u32,
        name: &str,
        ns_path: &Path,
        mtu: u32,
        mac: Option<[u8; 6]>,
    ) -> Result<(), KernelError> {
        let ns = netns::open(ns_path)?;
        let (msg, probe) = match kind {
            SubLink::Macvlan(mode) => {
                let mut b = LinkMacVlan::new(name, parent, crate::podlink::macvlan_mode_nl(mode))
                    .mtu(mtu)
                    .setns_by_fd(ns.as_raw_fd());
                if let Some(m) = mac {
                    b = b.address(m.to_vec());
                }
                (b.build(), LinkKind::Macvlan)
            }
            SubLink::Ipvlan(mode, flag) => {
                let mode = match mode {
                    IpvlanMode::L2 => IpVlanMode::L2,
                    IpvlanMode::L3 => IpVlanMode::L3,
                    IpvlanMode::L3s => IpVlanMode::L3S,
                };
                let flag = match flag {
                    IpvlanFlag::Bridge => IpVlanFlags::empty(),
                    IpvlanFlag::Private => IpVlanFlags::Private,
                    IpvlanFlag::Vepa => IpVlanFlags::Vepa,
                };
                let b = LinkIpVlan::new(name, parent, mode)
                    .flag(flag)
                    .mtu(mtu)
                    .setns_by_fd(ns.as_raw_fd());
                (b.build(), LinkKind::Ipvlan)
            }
        };
        self.add(msg, &format!("link {name} in {}", ns_path.display()))
            .await
            .map_err(unsupported(probe))
    }

    /// Makes sure the 802.1q sub-interface `name` (VLAN `id` on `parent`) exists and is up.
    /// Returns it and whether this call created it (then it carries `alias`).
    pub async fn ensure_vlan(
        &self,
        name: &str,
        parent: u32,
        id: u16,
        alias: &str,
    ) -> Result<(LinkInfo, bool), KernelError> {
        if let Some(l) = self.link(name).await? {
            return Ok((l, false));
        }
        let msg = LinkVlan::new(name, parent, id).up().build();
        self.add(msg, &format!("vlan link {name}"))
            .await
            .map_err(unsupported(LinkKind::Vlan))?;
        self.tag_new_link(name, alias).await?;
        Ok((self.require_link(name).await?, true))
    }

    /// Makes sure the dummy link `name` exists, carries `alias` and is up.
    pub async fn ensure_dummy(&self, name: &str, alias: &str) -> Result<LinkInfo, KernelError> {
        if self.link(name).await?.is_none() {
            let msg = LinkDummy::new(name).up().build();
            self.add(msg, &format!("dummy link {name}"))
                .await
                .map_err(unsupported(LinkKind::Dummy))?;
            self.tag_new_link(name, alias).await?;
        }
        self.require_link(name).await
    }

    /// Sets `alias` on a link just created; if that fails the link is deleted again, so
    /// that no untagged link (which nobody would ever remove) is left behind.
    async fn tag_new_link(&self, name: &str, alias: &str) -> Result<(), KernelError> {
        // The kernel ignores IFLA_IFALIAS in RTM_NEWLINK: set it with a change request.
        let msg = LinkUnspec::new_with_name(name).alias(alias).build();
        if let Err(e) = self.set(msg, name).await {
            let _ = self.delete_link(name).await;
            return Err(e);
        }
        Ok(())
    }
}

impl Netlink {
    /// Replaces the IPv4 (or IPv6, when `v6`) default route with a device route out of
    /// `index` — for layer-3 links (ipvlan l3/l3s) that have no gateway.
    pub async fn set_default_dev_route(&self, index: u32, v6: bool) -> Result<(), KernelError> {
        use netlink_packet_route::route::RouteScope;
        use rtnetlink::RouteMessageBuilder;
        use std::net::{Ipv4Addr, Ipv6Addr};
        let msg = if v6 {
            RouteMessageBuilder::<Ipv6Addr>::new()
                .output_interface(index)
                .build()
        } else {
            RouteMessageBuilder::<Ipv4Addr>::new()
                .output_interface(index)
                .scope(RouteScope::Link)
                .build()
        };
        self.handle
            .route()
            .add(msg)
            .replace()
            .execute()
            .await
            .map_err(|e| {
                KernelError::from_netlink(
                    format!("set default device route on link {index}"),
                    "default route",
                    e,
                )
            })
    }
}
