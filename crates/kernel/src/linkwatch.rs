//! Notifications of links that vanish from the calling process's network namespace
//! (rtnetlink's `RTNLGRP_LINK` multicast group), so a daemon can repair what someone
//! deleted by hand without polling. See rtnetlink(7).

use futures::{Stream, StreamExt};
use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{AsyncSocket, SocketAddr};

use crate::error::KernelError;
use crate::link::link_info;

/// The multicast group of link changes (`RTMGRP_LINK`).
const RTMGRP_LINK: u32 = 1;

/// What the kernel reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// The link of this name was deleted.
    Deleted(String),
    /// Notifications were lost (the socket's buffer overflowed, `ENOBUFS`): whatever
    /// the consumer cares about must be looked at again.
    Lost,
}

/// Receive buffer asked for, so that a burst (a thousand containers removed at once)
/// fits; the kernel caps it at `net.core.rmem_max`.
const RCVBUF: usize = 4 << 20;

/// A stream of link deletions in the current network namespace, from the moment of
/// the call. Must run inside tokio. The stream ends only if the socket fails.
pub fn link_deletions() -> Result<impl Stream<Item = LinkEvent> + Send + Unpin, KernelError> {
    let (mut conn, _handle, messages) =
        rtnetlink::new_connection().map_err(|source| KernelError::Netlink {
            op: "open netlink socket for link notifications".into(),
            source,
        })?;
    let sock = conn.socket_mut().socket_mut();
    sock.bind(&SocketAddr::new(0, RTMGRP_LINK))
        .map_err(|source| KernelError::Netlink {
            op: "join the link notification group".into(),
            source,
        })?;
    if let Err(e) = sock.set_rx_buf_sz(RCVBUF) {
        tracing::debug!(error = %e, "cannot enlarge the link notification buffer");
    }
    tokio::spawn(conn);
    Ok(messages.filter_map(|(msg, _)| {
        futures::future::ready(match msg.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(l)) => {
                Some(LinkEvent::Deleted(link_info(&l).name))
            }
            NetlinkPayload::Overrun(_) | NetlinkPayload::Error(_) => Some(LinkEvent::Lost),
            _ => None,
        })
    }))
}
