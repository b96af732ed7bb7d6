//! VXLAN links and the static forwarding state an overlay programs on them: bridge FDB
//! entries (MAC → remote VTEP) and permanent neighbour entries (IP → MAC), each with an
//! idempotent "ensure", a removal that treats "already gone" as done, and a listing for
//! reconciliation.
//!
//! Where a VXLAN device's UDP socket lives: in the namespace of the netlink socket that
//! created the device (the kernel's `src_net`, reported as the link's `link-netns`), not
//! in the namespace the device ends up in. So a device made from a socket *inside* an
//! overlay sandbox listens and sends in the sandbox, which has no underlay, and silently
//! never reaches a peer; the `local` address is not even checked against that namespace.
//! Docker creates the device in the host namespace and then moves it into the network's
//! namespace (moby `libnetwork/drivers/overlay/ov_network.go`, `setupSubnetSandbox`:
//! `createVxlan` then `sbox.AddInterface`). [`Netlink::create_vxlan_in`] sends one
//! `RTM_NEWLINK` from the underlay namespace's socket carrying the sandbox's namespace
//! fd (`IFLA_NET_NS_FD`): the device is born in the sandbox with its socket in the
//! underlay, without a temporary name in the host namespace and without the RCU grace
//! period a move between namespaces costs. See `vxlan_newlink()` and `vxlan_dev_configure()`
//! in the kernel's `drivers/net/vxlan/vxlan_core.c`
//! (<https://github.com/torvalds/linux/blob/master/drivers/net/vxlan/vxlan_core.c>).

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::link::{InfoData, InfoVxlan, LinkAttribute, LinkInfo as NlLinkInfo};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::{LinkUnspec, LinkVxlan};

use crate::error::KernelError;
use crate::link::{LinkInfo, Netlink, link_info};

/// How a VXLAN device is set up: static forwarding only (learning off), ARP and
/// neighbour solicitations answered from the neighbour table (`proxy`), no miss
/// notifications, no default destination (so no flooding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanSpec {
    /// Interface name (≤ 15 characters).
    pub name: String,
    /// The VXLAN network identifier (24 bits).
    pub vni: u32,
    /// UDP destination port (4789 by default).
    pub port: u16,
    /// Source address of the encapsulated packets (the node's data-path address).
    pub local: IpAddr,
    /// MTU of the device.
    pub mtu: u32,
}

/// A VXLAN link as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanInfo {
    /// The link.
    pub link: LinkInfo,
    /// Its VNI.
    pub vni: Option<u32>,
    /// Its UDP port.
    pub port: Option<u16>,
    /// Its source address.
    pub local: Option<IpAddr>,
    /// Whether it learns remote MACs from received packets.
    pub learning: bool,
    /// Whether it answers ARP / neighbour solicitations itself.
    pub proxy: bool,
    /// Whether its socket lives in another namespace than the device (`link-netns`).
    pub socket_elsewhere: bool,
}

impl VxlanInfo {
    /// True if the device is exactly what `spec` asks for, apart from MTU, controller
    /// and state (which can be changed in place).
    pub fn matches(&self, spec: &VxlanSpec) -> bool {
        self.link.kind == "vxlan"
            && self.vni == Some(spec.vni)
            && self.port == Some(spec.port)
            && self.local == Some(spec.local)
            && !self.learning
            && self.proxy
            && self.socket_elsewhere
    }
}

/// A static FDB entry of a VXLAN device: frames to `mac` go to the VTEP `dst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FdbEntry {
    /// The remote endpoint's MAC.
    pub mac: [u8; 6],
    /// The remote node's VTEP (data-path) address.
    pub dst: IpAddr,
}

/// A permanent neighbour entry: `ip` is at `mac`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NeighEntry {
    /// The remote endpoint's address.
    pub ip: IpAddr,
    /// Its MAC.
    pub mac: [u8; 6],
}

fn fmt_mac(m: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

fn mac6(v: &[u8]) -> Option<[u8; 6]> {
    v.try_into().ok()
}

/// The address of a neighbour attribute. In `AF_BRIDGE` (FDB) messages the parser does
/// not know the destination's family and hands over raw bytes: 4 are IPv4, 16 IPv6.
fn neigh_ip(a: &NeighbourAddress) -> Option<IpAddr> {
    match a {
        NeighbourAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        NeighbourAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        NeighbourAddress::Other(b) => match b.len() {
            4 => <[u8; 4]>::try_from(b.as_slice()).ok().map(IpAddr::from),
            16 => <[u8; 16]>::try_from(b.as_slice()).ok().map(IpAddr::from),
            _ => None,
        },
        _ => None,
    }
}

fn neigh_addr(ip: IpAddr) -> NeighbourAddress {
    match ip {
        IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
        IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
    }
}

/// Treats "not found" as success (teardown of something already gone).
fn gone_ok(r: Result<(), KernelError>) -> Result<(), KernelError> {
    match r {
        Err(e) if e.is_not_found() => Ok(()),
        r => r,
    }
}

impl Netlink {
    /// Creates the VXLAN device `spec` inside the namespace `ns` (an open namespace
    /// file), from this handle's namespace, which must be the one holding the underlay
    /// and `spec.local`: the device's UDP socket stays here (see the module docs). The
    /// device is born down and without a controller; [`Netlink::attach_up`] finishes it
    /// from a handle in `ns`. A VNI already used on this port by another device whose
    /// socket is in this namespace is [`KernelError::AlreadyExists`].
    pub async fn create_vxlan_in(&self, spec: &VxlanSpec, ns: &File) -> Result<(), KernelError> {
        let mut b = LinkVxlan::new(&spec.name, spec.vni)
            .port(spec.port)
            .learning(false)
            .proxy(true)
            .l2miss(false)
            .l3miss(false)
            .mtu(spec.mtu)
            .setns_by_fd(ns.as_raw_fd());
        b = match spec.local {
            IpAddr::V4(v4) => b.local(v4),
            IpAddr::V6(v6) => b.local6(v6),
        };
        self.handle()
            .link()
            .add(b.build())
            .execute()
            .await
            .map_err(|e| {
                KernelError::from_netlink(
                    format!("create VXLAN device {} (VNI {})", spec.name, spec.vni),
                    &format!(
                        "VXLAN device {} or VNI {} on UDP port {}",
                        spec.name, spec.vni, spec.port
                    ),
                    e,
                )
            })
    }

    /// Looks up a link by name and, if it is a VXLAN device, its VXLAN settings.
    pub async fn vxlan(&self, name: &str) -> Result<Option<VxlanInfo>, KernelError> {
        let mut req = self
            .handle()
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        let msg = match req.try_next().await {
            Ok(Some(msg)) => msg,
            Ok(None) => return Ok(None),
            Err(e) => {
                return match KernelError::from_netlink(format!("look up link {name}"), name, e) {
                    e if e.is_not_found() => Ok(None),
                    e => Err(e),
                };
            }
        };
        let mut info = VxlanInfo {
            link: link_info(&msg),
            vni: None,
            port: None,
            local: None,
            learning: false,
            proxy: false,
            socket_elsewhere: false,
        };
        for a in &msg.attributes {
            match a {
                LinkAttribute::LinkNetNsId(_) => info.socket_elsewhere = true,
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        let NlLinkInfo::Data(InfoData::Vxlan(vx)) = i else {
                            continue;
                        };
                        for v in vx {
                            match v {
                                InfoVxlan::Id(id) => info.vni = Some(*id),
                                InfoVxlan::Port(p) => info.port = Some(*p),
                                InfoVxlan::Local(l) => info.local = Some(IpAddr::V4(*l)),
                                InfoVxlan::Local6(l) => info.local = Some(IpAddr::V6(*l)),
                                InfoVxlan::Learning(l) => info.learning = *l,
                                InfoVxlan::Proxy(p) => info.proxy = *p,
                                _ => {}
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(Some(info))
    }

    /// Sets the MTU of link `index`, makes it a port of the bridge `controller` and
    /// brings it up, in one request.
    pub async fn attach_up(
        &self,
        index: u32,
        name: &str,
        mtu: u32,
        controller: u32,
    ) -> Result<(), KernelError> {
        let msg = LinkUnspec::new_with_index(index)
            .mtu(mtu)
            .controller(controller)
            .up()
            .build();
        self.set(msg, name).await
    }

    /// Deletes link `index` (named `name` in errors); a link already gone is fine.
    pub async fn delete_link_index(&self, index: u32, name: &str) -> Result<(), KernelError> {
        self.delete_index(index, name).await
    }

    /// Makes sure frames to `mac` leave the VXLAN device `index` towards `dst`
    /// (`bridge fdb replace MAC dev DEV dst DST self permanent`): created if missing,
    /// its destination corrected if it pointed elsewhere.
    pub async fn ensure_fdb(
        &self,
        index: u32,
        dev: &str,
        entry: FdbEntry,
    ) -> Result<(), KernelError> {
        self.handle()
            .neighbours()
            .add_bridge(index, &entry.mac)
            .destination(entry.dst)
            .flags(NeighbourFlags::Own)
            .state(NeighbourState::Permanent)
            .replace()
            .execute()
            .await
            .map_err(|e| {
                KernelError::from_netlink(
                    format!(
                        "add FDB entry {} dst {} on {dev}",
                        fmt_mac(&entry.mac),
                        entry.dst
                    ),
                    &format!("FDB entry {} on {dev}", fmt_mac(&entry.mac)),
                    e,
                )
            })
    }

    /// Removes the FDB entry `entry` of the VXLAN device `index`; missing is fine.
    pub async fn remove_fdb(
        &self,
        index: u32,
        dev: &str,
        entry: FdbEntry,
    ) -> Result<(), KernelError> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Bridge;
        msg.header.ifindex = index;
        msg.header.flags = NeighbourFlags::Own;
        msg.header.state = NeighbourState::Permanent;
        msg.attributes
            .push(NeighbourAttribute::LinkLayerAddress(entry.mac.to_vec()));
        msg.attributes
            .push(NeighbourAttribute::Destination(neigh_addr(entry.dst)));
        let r = self
            .handle()
            .neighbours()
            .del(msg)
            .execute()
            .await
            .map_err(|e| {
                KernelError::from_netlink(
                    format!("remove FDB entry {} on {dev}", fmt_mac(&entry.mac)),
                    &format!("FDB entry {} on {dev}", fmt_mac(&entry.mac)),
                    e,
                )
            });
        gone_ok(r)
    }

    /// The static FDB entries (with a remote destination) of the VXLAN device `index`.
    pub async fn fdb_entries(&self, index: u32) -> Result<Vec<FdbEntry>, KernelError> {
        let mut req = self
            .handle()
            .neighbours()
            .get()
            .set_address_family(AddressFamily::Bridge)
            .execute();
        let mut out = Vec::new();
        while let Some(msg) = req
            .try_next()
            .await
            .map_err(|e| KernelError::from_netlink("list FDB entries".into(), "FDB", e))?
        {
            if msg.header.ifindex != index || !msg.header.flags.contains(NeighbourFlags::Own) {
                continue;
            }
            let mut mac = None;
            let mut dst = None;
            for a in &msg.attributes {
                match a {
                    NeighbourAttribute::LinkLayerAddress(m) => mac = mac6(m),
                    NeighbourAttribute::Destination(d) => dst = neigh_ip(d),
                    _ => {}
                }
            }
            if let (Some(mac), Some(dst)) = (mac, dst) {
                out.push(FdbEntry { mac, dst });
            }
        }
        Ok(out)
    }

    /// Makes sure `entry.ip` resolves to `entry.mac` on link `index`, permanently
    /// (`ip neigh replace IP lladdr MAC dev DEV nud permanent`).
    pub async fn ensure_neighbour(
        &self,
        index: u32,
        dev: &str,
        entry: NeighEntry,
    ) -> Result<(), KernelError> {
        self.handle()
            .neighbours()
            .add(index, entry.ip)
            .link_layer_address(&entry.mac)
            .state(NeighbourState::Permanent)
            .replace()
            .execute()
            .await
            .map_err(|e| {
                KernelError::from_netlink(
                    format!(
                        "add neighbour {} lladdr {} on {dev}",
                        entry.ip,
                        fmt_mac(&entry.mac)
                    ),
                    &format!("neighbour {} on {dev}", entry.ip),
                    e,
                )
            })
    }

    /// Removes the neighbour entry of `ip` on link `index`; missing is fine.
    pub async fn remove_neighbour(
        &self,
        index: u32,
        dev: &str,
        ip: IpAddr,
    ) -> Result<(), KernelError> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = match ip {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        msg.header.ifindex = index;
        msg.attributes
            .push(NeighbourAttribute::Destination(neigh_addr(ip)));
        let r = self
            .handle()
            .neighbours()
            .del(msg)
            .execute()
            .await
            .map_err(|e| {
                KernelError::from_netlink(
                    format!("remove neighbour {ip} on {dev}"),
                    &format!("neighbour {ip} on {dev}"),
                    e,
                )
            });
        gone_ok(r)
    }

    /// The permanent neighbour entries (IPv4 and IPv6) of link `index`.
    pub async fn neighbours(&self, index: u32) -> Result<Vec<NeighEntry>, KernelError> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut req = self
                .handle()
                .neighbours()
                .get()
                .set_address_family(family)
                .execute();
            while let Some(msg) = req
                .try_next()
                .await
                .map_err(|e| KernelError::from_netlink("list neighbours".into(), "neighbours", e))?
            {
                if msg.header.ifindex != index || msg.header.state != NeighbourState::Permanent {
                    continue;
                }
                let mut mac = None;
                let mut ip = None;
                for a in &msg.attributes {
                    match a {
                        NeighbourAttribute::LinkLayerAddress(m) => mac = mac6(m),
                        NeighbourAttribute::Destination(d) => ip = neigh_ip(d),
                        _ => {}
                    }
                }
                if let (Some(mac), Some(ip)) = (mac, ip) {
                    out.push(NeighEntry { ip, mac });
                }
            }
        }
        Ok(out)
    }

    /// The link that holds the address `addr` (e.g. the node's data-path address: the
    /// underlay interface whose MTU an overlay derives its own from).
    pub async fn link_with_address(&self, addr: IpAddr) -> Result<Option<LinkInfo>, KernelError> {
        use netlink_packet_route::address::AddressAttribute;
        let mut req = self.handle().address().get().execute();
        let mut index = None;
        while let Some(msg) = req
            .try_next()
            .await
            .map_err(|e| KernelError::from_netlink("list addresses".into(), "addresses", e))?
        {
            let holds = msg.attributes.iter().any(|a| match a {
                AddressAttribute::Address(ip) | AddressAttribute::Local(ip) => *ip == addr,
                _ => false,
            });
            // Read the dump to its end (rtnetlink expects it); the first match wins.
            if holds && index.is_none() {
                index = Some(msg.header.index);
            }
        }
        match index {
            Some(i) => self.link_by_index(i).await,
            None => Ok(None),
        }
    }
}
