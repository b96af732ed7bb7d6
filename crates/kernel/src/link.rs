//! Links, addresses and routes over rtnetlink, in one network namespace.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::path::Path;

use futures::TryStreamExt;
use ipnet::IpNet;
use netlink_packet_route::address::AddressHeaderFlags;
use netlink_packet_route::link::{InfoBridgePort, InfoData, InfoPortData, InfoPortKind, InfoVeth};
use netlink_packet_route::link::{
    InfoKind, LinkAttribute, LinkFlags, LinkInfo as NlLinkInfo, LinkMessage,
};
use netlink_packet_route::route::RouteAttribute;
use rtnetlink::{
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

use crate::error::KernelError;
use crate::netns;

/// What netloom needs to know about one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Link kind (`bridge`, `veth`, ...), empty for physical or unknown.
    pub kind: String,
    /// The interface alias (`ifalias`), used to tag netloom's own objects.
    pub alias: String,
    /// MTU.
    pub mtu: u32,
    /// Index of the bridge it is a port of.
    pub controller: Option<u32>,
    /// Administratively up.
    pub up: bool,
    /// MAC address.
    pub mac: Vec<u8>,
}

/// A netlink handle bound to one network namespace.
#[derive(Clone)]
pub struct Netlink {
    pub(crate) handle: Handle,
}

impl Netlink {
    /// A handle in the calling process's own network namespace. Must run inside tokio.
    pub fn current() -> Result<Self, KernelError> {
        let (conn, handle, _) =
            rtnetlink::new_connection().map_err(|source| KernelError::Netlink {
                op: "open netlink socket".into(),
                source,
            })?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    /// A handle inside the network namespace bound at `path`: the socket is opened on a
    /// thread that joined that namespace, then driven from tokio. Must run inside tokio.
    pub fn in_netns(path: &Path) -> Result<Self, KernelError> {
        let fd = netns::run_in(path, route_socket)?;
        Ok(Self::from_socket(fd))
    }

    /// A handle on an open `NETLINK_ROUTE` socket (which stays in the namespace it was
    /// opened in), driven from tokio. Must run inside tokio.
    pub fn from_socket(fd: OwnedFd) -> Netlink {
        // SAFETY: `fd` is a valid netlink socket we own; ownership moves into TokioSocket.
        let sock = unsafe { netlink_sys::TokioSocket::from_raw_fd(fd.into_raw_fd()) };
        let (conn, handle, _) = rtnetlink::from_socket(sock);
        tokio::spawn(conn);
        Netlink { handle }
    }

    /// The underlying rtnetlink handle (for sibling modules that add requests).
    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Looks up a link by name.
    pub async fn link(&self, name: &str) -> Result<Option<LinkInfo>, KernelError> {
        let mut req = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match req.try_next().await {
            Ok(Some(msg)) => Ok(Some(link_info(&msg))),
            Ok(None) => Ok(None),
            Err(e) => match KernelError::from_netlink(format!("look up link {name}"), name, e) {
                e if e.is_not_found() => Ok(None),
                e => Err(e),
            },
        }
    }

    /// Looks up a link by name; missing is an error.
    pub async fn require_link(&self, name: &str) -> Result<LinkInfo, KernelError> {
        self.link(name).await?.ok_or_else(|| KernelError::NotFound {
            what: format!("link {name}"),
        })
    }

    /// Lists all links.
    pub async fn links(&self) -> Result<Vec<LinkInfo>, KernelError> {
        let mut req = self.handle.link().get().execute();
        let mut out = Vec::new();
        while let Some(msg) = req
            .try_next()
            .await
            .map_err(|e| KernelError::from_netlink("list links".into(), "links", e))?
        {
            out.push(link_info(&msg));
        }
        Ok(out)
    }

    /// Creates a bridge (idempotent: an existing bridge of that name is reused), sets its
    /// MTU, MAC and alias, and brings it up.
    pub async fn ensure_bridge(
        &self,
        name: &str,
        mtu: u32,
        mac: [u8; 6],
        alias: &str,
    ) -> Result<LinkInfo, KernelError> {
        if let Some(l) = self.link(name).await? {
            if l.kind != "bridge" {
                return Err(KernelError::AlreadyExists {
                    what: format!("link {name} (a {} link, not a bridge)", kind_or(&l.kind)),
                });
            }
        } else {
            let msg = LinkBridge::new(name)
                .mtu(mtu)
                .address(mac.to_vec())
                .alias(alias)
                .build();
            match self.handle.link().add(msg).execute().await {
                Ok(()) => {}
                Err(e) => {
                    let e = KernelError::from_netlink(
                        format!("create bridge {name}"),
                        &format!("link {name}"),
                        e,
                    );
                    if !e.is_exists() {
                        return Err(e);
                    }
                }
            }
        }
        let l = self.require_link(name).await?;
        // The kernel ignores IFLA_IFALIAS in RTM_NEWLINK: set it with a change request.
        let msg = LinkUnspec::new_with_index(l.index)
            .alias(alias)
            .up()
            .build();
        self.set(msg, name).await?;
        Ok(l)
    }

    /// Removes every address of a link except `keep` and IPv6 link-local ones (so a
    /// reused bridge carries exactly the gateways it should).
    pub async fn retain_addresses(
        &self,
        index: u32,
        name: &str,
        keep: &[IpNet],
    ) -> Result<(), KernelError> {
        use netlink_packet_route::address::AddressAttribute;
        let mut req = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        let mut stale = Vec::new();
        while let Some(msg) = req
            .try_next()
            .await
            .map_err(|e| KernelError::from_netlink("list addresses".into(), "addresses", e))?
        {
            let addr = msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => IpNet::new(*ip, msg.header.prefix_len).ok(),
                _ => None,
            });
            let Some(addr) = addr else { continue };
            let link_local =
                matches!(addr.addr(), IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80);
            if !link_local && !keep.contains(&addr) {
                stale.push((addr, msg));
            }
        }
        for (addr, msg) in stale {
            if let Err(e) = self.handle.address().del(msg).execute().await {
                let e = KernelError::from_netlink(
                    format!("remove address {addr} from {name}"),
                    &format!("address {addr} on {name}"),
                    e,
                );
                if !e.is_not_found() {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Creates a veth pair whose peer is born inside the namespace bound at `ns_path`,
    /// already named `peer` and carrying `mac`; the host side `host` is attached to the
    /// bridge `controller` and brought up. Creating the peer in place avoids moving a
    /// device between namespaces, which waits for an RCU grace period (~20 ms).
    #[allow(clippy::too_many_arguments)]
    pub async fn create_veth_into(
        &self,
        host: &str,
        peer: &str,
        ns_path: &Path,
        mtu: u32,
        mac: Option<[u8; 6]>,
        controller: u32,
        alias: &str,
    ) -> Result<(), KernelError> {
        if let Some(old) = self.link(host).await? {
            self.delete_index(old.index, host).await?;
        }
        let ns = netns::open(ns_path)?;
        let mut pb = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer.to_string())
            .mtu(mtu)
            .setns_by_fd(ns.as_raw_fd());
        if let Some(m) = mac {
            pb = pb.address(m.to_vec());
        }
        // Created down: IPv6 goes off on the host side before the link comes up. A bridge
        // port forwards IPv6 frames without an IPv6 address of its own, and each port with
        // IPv6 adds three routes (fe80::/64, its link-local address, ff00::/8) to the
        // namespace's table, which the kernel walks whole on every link change
        // (rt6_sync_down_dev → fib6_clean_all): the cost of a start would grow with the
        // number of ports.
        // https://elixir.bootlin.com/linux/v6.1/source/net/ipv6/route.c#L4860
        let msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(host.to_string())
            .mtu(mtu)
            .alias(alias)
            .controller(controller)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(pb.build())))
            .build();
        self.handle.link().add(msg).execute().await.map_err(|e| {
            KernelError::from_netlink(
                format!("create veth pair {host}/{peer}"),
                &format!("link {host} or {peer} in {}", ns_path.display()),
                e,
            )
        })?;
        // Without IPv6 in the kernel (ipv6.disable=1) there is nothing to turn off.
        if let Err(e) = crate::sysctl::set_iface("ipv6", host, "disable_ipv6", "1") {
            tracing::debug!(link = host, error = %e, "cannot turn IPv6 off on a veth");
        }
        // The kernel ignores IFLA_IFALIAS in RTM_NEWLINK: set it with a change request,
        // which also brings the link up.
        let msg = LinkUnspec::new_with_name(host).alias(alias).up().build();
        self.set(msg, host).await?;
        // Hairpin mode lets a container reach itself through a published port: the
        // DNATed frame must leave by the bridge port it came in on.
        let h = self.require_link(host).await?;
        let msg = LinkUnspec::new_with_index(h.index)
            .set_port_kind(InfoPortKind::Bridge)
            .set_port_data(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
                true,
            )]))
            .build();
        self.handle
            .link()
            .set_port(msg)
            .execute()
            .await
            .map_err(|e| {
                KernelError::from_netlink(
                    format!("set hairpin mode on {host}"),
                    &format!("link {host}"),
                    e,
                )
            })
    }

    /// Moves the link `name` into the namespace bound at `ns_path`, renaming it to
    /// `new_name` there (remote drivers' `SrcName` → `DstPrefix<n>`, and back on leave).
    pub async fn move_to_netns(
        &self,
        name: &str,
        ns_path: &Path,
        new_name: &str,
    ) -> Result<(), KernelError> {
        let l = self.require_link(name).await?;
        let ns = netns::open(ns_path)?;
        let msg = LinkUnspec::new_with_index(l.index)
            .setns_by_fd(ns.as_raw_fd())
            .name(new_name.to_string())
            .build();
        self.set(msg, name).await
    }

    /// Sets the MAC address of a link.
    pub async fn set_mac(&self, index: u32, name: &str, mac: [u8; 6]) -> Result<(), KernelError> {
        let msg = LinkUnspec::new_with_index(index)
            .address(mac.to_vec())
            .build();
        self.set(msg, name).await
    }

    /// Adds (or replaces) a route to `dest` on link `index`: via `next_hop` when given,
    /// else directly connected.
    pub async fn add_route(
        &self,
        index: u32,
        dest: IpNet,
        next_hop: Option<IpAddr>,
    ) -> Result<(), KernelError> {
        let msg = match (dest, next_hop) {
            (IpNet::V4(d), hop) => {
                let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
                    .destination_prefix(d.addr(), d.prefix_len())
                    .output_interface(index);
                if let Some(IpAddr::V4(h)) = hop {
                    b = b.gateway(h);
                }
                b.build()
            }
            (IpNet::V6(d), hop) => {
                let mut b = RouteMessageBuilder::<Ipv6Addr>::new()
                    .destination_prefix(d.addr(), d.prefix_len())
                    .output_interface(index);
                if let Some(IpAddr::V6(h)) = hop {
                    b = b.gateway(h);
                }
                b.build()
            }
        };
        self.handle
            .route()
            .add(msg)
            .replace()
            .execute()
            .await
            .map_err(|e| KernelError::from_netlink(format!("add route to {dest}"), "route", e))
    }

    /// Brings a link up.
    pub async fn set_up(&self, index: u32, name: &str) -> Result<(), KernelError> {
        let msg = LinkUnspec::new_with_index(index).up().build();
        self.set(msg, name).await
    }

    /// Makes link `index` a port of the bridge `bridge_index` and brings it up.
    pub async fn set_controller(
        &self,
        index: u32,
        name: &str,
        bridge_index: u32,
    ) -> Result<(), KernelError> {
        let msg = LinkUnspec::new_with_index(index)
            .controller(bridge_index)
            .up()
            .build();
        self.set(msg, name).await
    }

    pub(crate) async fn set(&self, msg: LinkMessage, name: &str) -> Result<(), KernelError> {
        self.handle.link().set(msg).execute().await.map_err(|e| {
            KernelError::from_netlink(format!("change link {name}"), &format!("link {name}"), e)
        })
    }

    /// Deletes a link by name; missing is fine.
    pub async fn delete_link(&self, name: &str) -> Result<(), KernelError> {
        match self.link(name).await? {
            Some(l) => self.delete_index(l.index, name).await,
            None => Ok(()),
        }
    }

    pub(crate) async fn delete_index(&self, index: u32, name: &str) -> Result<(), KernelError> {
        match self.handle.link().del(index).execute().await {
            Ok(()) => Ok(()),
            Err(e) => match KernelError::from_netlink(
                format!("delete link {name}"),
                &format!("link {name}"),
                e,
            ) {
                e if e.is_not_found() => Ok(()),
                e => Err(e),
            },
        }
    }

    /// Adds an address (idempotent). IPv6 addresses skip duplicate address detection,
    /// so they are usable at once.
    pub async fn add_address(
        &self,
        index: u32,
        name: &str,
        addr: IpNet,
    ) -> Result<(), KernelError> {
        let mut req = self
            .handle
            .address()
            .add(index, addr.addr(), addr.prefix_len());
        if addr.addr().is_ipv6() {
            req.message_mut().header.flags |= AddressHeaderFlags::Nodad;
        }
        match req.execute().await {
            Ok(()) => Ok(()),
            Err(e) => match KernelError::from_netlink(
                format!("add address {addr} to {name}"),
                &format!("address {addr} on {name}"),
                e,
            ) {
                e if e.is_exists() => Ok(()),
                e => Err(e),
            },
        }
    }

    /// Lists the addresses of a link.
    pub async fn addresses(&self, index: u32) -> Result<Vec<IpNet>, KernelError> {
        use netlink_packet_route::address::AddressAttribute;
        let mut req = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        let mut out = Vec::new();
        while let Some(msg) = req
            .try_next()
            .await
            .map_err(|e| KernelError::from_netlink("list addresses".into(), "addresses", e))?
        {
            for a in &msg.attributes {
                if let AddressAttribute::Address(ip) = a
                    && let Ok(n) = IpNet::new(*ip, msg.header.prefix_len)
                {
                    out.push(n);
                }
            }
        }
        Ok(out)
    }

    /// Replaces the default route (IPv4 or IPv6 by the gateway's family) via `gateway` on `index`.
    pub async fn set_default_route(&self, index: u32, gateway: IpAddr) -> Result<(), KernelError> {
        let msg = match gateway {
            IpAddr::V4(gw) => RouteMessageBuilder::<Ipv4Addr>::new()
                .output_interface(index)
                .gateway(gw)
                .build(),
            IpAddr::V6(gw) => RouteMessageBuilder::<Ipv6Addr>::new()
                .output_interface(index)
                .gateway(gw)
                .build(),
        };
        self.handle
            .route()
            .add(msg)
            .replace()
            .execute()
            .await
            .map_err(|e| {
                KernelError::from_netlink(
                    format!("set default route via {gateway}"),
                    "default route",
                    e,
                )
            })
    }

    /// The output interface index of the IPv4 default route, if any.
    pub async fn default_route_link(&self) -> Result<Option<u32>, KernelError> {
        let msg = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let mut req = self.handle.route().get(msg).execute();
        while let Some(r) = req
            .try_next()
            .await
            .map_err(|e| KernelError::from_netlink("list routes".into(), "routes", e))?
        {
            if r.header.destination_prefix_length != 0 || r.header.table != 254 {
                continue;
            }
            for a in &r.attributes {
                if let RouteAttribute::Oif(i) = a {
                    return Ok(Some(*i));
                }
            }
        }
        Ok(None)
    }

    /// MTU of the link that carries the default route; `None` without a default route.
    pub async fn default_route_mtu(&self) -> Result<Option<u32>, KernelError> {
        let Some(idx) = self.default_route_link().await? else {
            return Ok(None);
        };
        let links = self.links().await?;
        Ok(links.into_iter().find(|l| l.index == idx).map(|l| l.mtu))
    }
}

fn kind_or(kind: &str) -> &str {
    if kind.is_empty() { "physical" } else { kind }
}

pub(crate) fn link_info(msg: &LinkMessage) -> LinkInfo {
    let mut info = LinkInfo {
        index: msg.header.index,
        name: String::new(),
        kind: String::new(),
        alias: String::new(),
        mtu: 0,
        controller: None,
        up: msg.header.flags.contains(LinkFlags::Up),
        mac: Vec::new(),
    };
    for a in &msg.attributes {
        match a {
            LinkAttribute::IfName(n) => info.name = n.clone(),
            LinkAttribute::IfAlias(n) => info.alias = n.clone(),
            LinkAttribute::Mtu(m) => info.mtu = *m,
            LinkAttribute::Controller(c) => info.controller = Some(*c),
            LinkAttribute::Address(m) => info.mac = m.clone(),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let NlLinkInfo::Kind(k) = i {
                        info.kind = match k {
                            InfoKind::Bridge => "bridge".into(),
                            InfoKind::Veth => "veth".into(),
                            InfoKind::Vxlan => "vxlan".into(),
                            InfoKind::MacVlan => "macvlan".into(),
                            InfoKind::IpVlan => "ipvlan".into(),
                            InfoKind::Vlan => "vlan".into(),
                            InfoKind::Dummy => "dummy".into(),
                            InfoKind::Tun => "tun".into(),
                            other => format!("{other:?}").to_lowercase(),
                        };
                    }
                }
            }
            _ => {}
        }
    }
    info
}

/// Opens a `NETLINK_ROUTE` socket in the calling thread's network namespace.
pub(crate) fn route_socket() -> Result<OwnedFd, KernelError> {
    let sock =
        netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_ROUTE).map_err(|source| {
            KernelError::Netlink {
                op: "open netlink socket".into(),
                source,
            }
        })?;
    // SAFETY: into_raw_fd hands over ownership of a valid, open socket fd.
    Ok(unsafe { OwnedFd::from_raw_fd(sock.into_raw_fd()) })
}
