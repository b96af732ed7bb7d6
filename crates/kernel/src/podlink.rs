//! Links born directly inside another network namespace, and routes: the requests the
//! CNI plugin (`netloom-cni`) needs on top of [`Netlink`]'s basics.
//!
//! Every creation here passes the target namespace's file descriptor in the
//! `RTM_NEWLINK` request (`IFLA_NET_NS_FD`), so the container-side device is created in
//! place, already named and up: no move between namespaces, no RCU grace period.

use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use ipnet::IpNet;
use netlink_packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind, InfoVeth, MacVlanMode,
};
use rtnetlink::{LinkMacVlan, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::error::KernelError;
use crate::link::{LinkInfo, Netlink};

pub use crate::sublink::MacvlanMode;

pub(crate) fn macvlan_mode_nl(m: MacvlanMode) -> MacVlanMode {
    match m {
        MacvlanMode::Bridge => MacVlanMode::Bridge,
        MacvlanMode::Private => MacVlanMode::Private,
        MacvlanMode::Vepa => MacVlanMode::Vepa,
        MacvlanMode::Passthru => MacVlanMode::Passthrough,
    }
}

impl Netlink {
    /// Looks up a link by index.
    pub async fn link_by_index(&self, index: u32) -> Result<Option<LinkInfo>, KernelError> {
        use futures::TryStreamExt;
        let mut req = self.handle().link().get().match_index(index).execute();
        match req.try_next().await {
            Ok(Some(msg)) => Ok(Some(crate::link::link_info(&msg))),
            Ok(None) => Ok(None),
            Err(e) => match KernelError::from_netlink(
                format!("look up link #{index}"),
                &format!("link #{index}"),
                e,
            ) {
                e if e.is_not_found() => Ok(None),
                e => Err(e),
            },
        }
    }

    /// Creates a veth pair: `host` in this handle's namespace, attached to the bridge
    /// `controller` and up; its peer `peer` born inside the namespace `ns` (an open
    /// namespace file), down (the kernel cannot open a veth before it is paired), with
    /// `peer_mac` if given; `host_mac` sets the host end's MAC. Unlike
    /// [`Netlink::create_veth_into`], an existing `host` link is never removed: a name
    /// clash is [`KernelError::AlreadyExists`].
    #[allow(clippy::too_many_arguments)]
    pub async fn create_veth_pair_in(
        &self,
        host: &str,
        peer: &str,
        ns: &std::fs::File,
        mtu: u32,
        peer_mac: Option<[u8; 6]>,
        host_mac: Option<[u8; 6]>,
        controller: u32,
    ) -> Result<(), KernelError> {
        let mut pb = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer.to_string())
            .mtu(mtu)
            .setns_by_fd(ns.as_raw_fd());
        if let Some(m) = peer_mac {
            pb = pb.address(m.to_vec());
        }
        let mut hb = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(host.to_string())
            .mtu(mtu)
            .controller(controller)
            .up();
        if let Some(m) = host_mac {
            hb = hb.address(m.to_vec());
        }
        let msg = hb
            .set_info_data(InfoData::Veth(InfoVeth::Peer(pb.build())))
            .build();
        self.handle().link().add(msg).execute().await.map_err(|e| {
            KernelError::from_netlink(
                format!("create veth pair {host}/{peer}"),
                &format!("link {host} or {peer}"),
                e,
            )
        })
    }

    /// Turns hairpin mode of the bridge port `name` on or off.
    pub async fn set_hairpin(&self, name: &str, on: bool) -> Result<(), KernelError> {
        let msg = LinkUnspec::new_with_name(name)
            .set_port_kind(InfoPortKind::Bridge)
            .set_port_data(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
                on,
            )]))
            .build();
        self.handle()
            .link()
            .set_port(msg)
            .execute()
            .await
            .map_err(|e| {
                KernelError::from_netlink(
                    format!("set hairpin mode on {name}"),
                    &format!("link {name}"),
                    e,
                )
            })
    }

    /// Creates a macvlan link `name` on the parent `master` (an index in this handle's
    /// namespace), born inside the namespace `ns` and up.
    pub async fn create_macvlan_in(
        &self,
        name: &str,
        master: u32,
        mode: MacvlanMode,
        ns: &std::fs::File,
        mtu: Option<u32>,
        mac: Option<[u8; 6]>,
    ) -> Result<(), KernelError> {
        let mut b = LinkMacVlan::new(name, master, macvlan_mode_nl(mode))
            .up()
            .setns_by_fd(ns.as_raw_fd());
        if let Some(m) = mtu {
            b = b.mtu(m);
        }
        if let Some(m) = mac {
            b = b.address(m.to_vec());
        }
        self.handle()
            .link()
            .add(b.build())
            .execute()
            .await
            .map_err(|e| {
                KernelError::from_netlink(
                    format!("create macvlan {name} on link #{master}"),
                    &format!("link {name}"),
                    e,
                )
            })
    }

    /// Adds (or replaces) a route to `dst` out of link `index`, via `gateway` if given
    /// (otherwise on-link).
    pub async fn replace_route(
        &self,
        index: u32,
        dst: IpNet,
        gateway: Option<IpAddr>,
    ) -> Result<(), KernelError> {
        fn bad(e: impl std::fmt::Debug) -> KernelError {
            KernelError::NotSupported {
                what: format!("this route ({e:?})"),
            }
        }
        let mut b = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(dst.addr(), dst.prefix_len())
            .map_err(bad)?
            .output_interface(index);
        if let Some(gw) = gateway {
            b = b.gateway(gw).map_err(bad)?;
        }
        self.handle()
            .route()
            .add(b.build())
            .replace()
            .execute()
            .await
            .map_err(|e| KernelError::from_netlink(format!("add route to {dst}"), "route", e))
    }
}

/// Deletes the link `name` of the namespace bound at `ns_path` without waiting for it.
///
/// Unregistering a network device waits for an RCU barrier inside the kernel (about
/// 20 ms), in the context of the `RTM_DELLINK` request. Here that request is sent by a
/// detached grandchild process (double fork, no exec): this call returns once the
/// intermediate child has exited (well under a millisecond). The grandchild closes every
/// inherited descriptor except the namespace file (so a caller reading our pipes is not
/// held up), joins the namespace, opens a netlink socket, sends the request and exits.
/// Only async-signal-safe calls run after the fork, on a message built before it, so
/// this is safe in a multi-threaded process. A link that is already gone is not an
/// error (nothing is reported back); if the grandchild is killed first, the link stays
/// until its namespace is destroyed.
pub fn delete_link_detached(ns_path: &std::path::Path, name: &str) -> Result<(), KernelError> {
    use netlink_packet_core::{NLM_F_REQUEST, NetlinkMessage};
    use netlink_packet_route::RouteNetlinkMessage;
    use netlink_packet_route::link::{LinkAttribute, LinkMessage};

    let ns = crate::netns::open(ns_path)?;
    let mut lm = LinkMessage::default();
    lm.attributes.push(LinkAttribute::IfName(name.to_string()));
    let mut msg = NetlinkMessage::from(RouteNetlinkMessage::DelLink(lm));
    msg.header.flags = NLM_F_REQUEST;
    msg.header.sequence_number = 1;
    msg.finalize();
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut buf);
    let nsfd = ns.as_raw_fd();
    // SAFETY: after fork the children only call async-signal-safe functions (fork,
    // setsid, close_range and setns via syscall, socket, send, _exit) on memory prepared
    // before the fork.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(KernelError::Netlink {
            op: format!("fork to delete link {name}"),
            source: std::io::Error::last_os_error(),
        }),
        0 => {
            // SAFETY: see above; `buf` and `nsfd` stay valid in the child's copy.
            unsafe {
                if libc::fork() == 0 {
                    libc::setsid();
                    if nsfd > 0 {
                        libc::syscall(libc::SYS_close_range, 0u32, (nsfd - 1) as u32, 0u32);
                    }
                    libc::syscall(libc::SYS_close_range, (nsfd + 1) as u32, u32::MAX, 0u32);
                    if libc::setns(nsfd, libc::CLONE_NEWNET) == 0 {
                        let sock = libc::socket(
                            libc::AF_NETLINK,
                            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                            libc::NETLINK_ROUTE,
                        );
                        if sock >= 0 {
                            libc::send(sock, buf.as_ptr().cast(), buf.len(), 0);
                        }
                    }
                }
                libc::_exit(0)
            }
        }
        child => {
            let mut status = 0;
            // SAFETY: waits for our own child, which exits right after its fork.
            unsafe { libc::waitpid(child, &mut status, 0) };
            Ok(())
        }
    }
}

/// Opens a `NETLINK_ROUTE` socket inside the namespace bound at `ns_path` by moving the
/// *calling thread* there and straight back, without a helper thread (whose start and
/// join cost scheduling round trips). Only for a single-threaded program before any async
/// runtime starts (a CLI such as the CNI plugin); async code uses [`Netlink::in_netns`].
/// If the thread cannot return to its own namespace, the error says so and the caller
/// must exit.
pub fn netlink_socket_in(ns_path: &std::path::Path) -> Result<OwnedFd, KernelError> {
    use nix::sched::{CloneFlags, setns};

    let target = crate::netns::open(ns_path)?;
    let home_path = std::path::Path::new("/proc/thread-self/ns/net");
    let home = crate::netns::open(home_path)?;
    setns(&target, CloneFlags::CLONE_NEWNET).map_err(|e| {
        KernelError::Namespace(format!(
            "enter network namespace {}: {e}",
            ns_path.display()
        ))
    })?;
    let sock = crate::link::route_socket();
    setns(&home, CloneFlags::CLONE_NEWNET).map_err(|e| {
        KernelError::Namespace(format!(
            "return to the original network namespace after opening a socket in {}: {e}",
            ns_path.display()
        ))
    })?;
    sock
}
