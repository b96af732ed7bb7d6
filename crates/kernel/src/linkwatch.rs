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

/// A stream of the names of links deleted from the current network namespace, from
/// the moment of the call. Must run inside tokio. The kernel drops notifications when
/// the socket's buffer overflows (`ENOBUFS`), so a consumer that must not miss one
/// also re-checks what it cares about now and then.
pub fn link_deletions() -> Result<impl Stream<Item = String> + Send + Unpin, KernelError> {
    let (mut conn, _handle, messages) =
        rtnetlink::new_connection().map_err(|source| KernelError::Netlink {
            op: "open netlink socket for link notifications".into(),
            source,
        })?;
    conn.socket_mut()
        .socket_mut()
        .bind(&SocketAddr::new(0, RTMGRP_LINK))
        .map_err(|source| KernelError::Netlink {
            op: "join the link notification group".into(),
            source,
        })?;
    tokio::spawn(conn);
    Ok(messages.filter_map(|(msg, _)| {
        futures::future::ready(match msg.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(l)) => {
                Some(link_info(&l).name)
            }
            _ => None,
        })
    }))
}
