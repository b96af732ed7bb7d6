//! Batched UDP I/O: `recvmmsg(2)` / `sendmmsg(2)` on a non-blocking socket, with buffers
//! that live in a thread-local [`Batch`] (allocated once per worker thread, reused for
//! every round, so the query path does not allocate).

use std::cell::RefCell;
use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Datagrams received (and answers sent) per system call.
pub(crate) const BATCH: usize = 32;
/// Size of each receive and send buffer. A larger query is dropped as malformed (no DNS
/// client sends one over UDP); a larger answer is sent on its own.
pub(crate) const BUF: usize = 4096;

/// Receive and send buffers for one round.
pub(crate) struct Batch {
    rx: Box<[u8]>,
    rx_len: [usize; BATCH],
    rx_trunc: [bool; BATCH],
    peers: Box<[libc::sockaddr_storage]>,
    peer_len: [libc::socklen_t; BATCH],
    tx: Box<[u8]>,
    tx_len: [usize; BATCH],
    /// The rx index whose peer each answer goes to.
    tx_to: [usize; BATCH],
    tx_n: usize,
    iov: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
}

thread_local! {
    static BATCH_BUFFERS: RefCell<Option<Box<Batch>>> = const { RefCell::new(None) };
}

/// Run `f` with this thread's batch buffers.
pub(crate) fn with_batch<R>(f: impl FnOnce(&mut Batch) -> R) -> R {
    BATCH_BUFFERS.with(|cell| {
        let mut slot = cell.borrow_mut();
        let batch = slot.get_or_insert_with(|| Box::new(Batch::new()));
        f(batch)
    })
}

impl Batch {
    fn new() -> Self {
        // SAFETY: sockaddr_storage, iovec and mmsghdr are plain C structs for which all
        // zero bytes is a valid value (null pointers, zero lengths).
        let zero_storage = unsafe { mem::zeroed::<libc::sockaddr_storage>() };
        // SAFETY: as above.
        let zero_iov = unsafe { mem::zeroed::<libc::iovec>() };
        // SAFETY: as above.
        let zero_hdr = unsafe { mem::zeroed::<libc::mmsghdr>() };
        Self {
            rx: vec![0u8; BATCH * BUF].into_boxed_slice(),
            rx_len: [0; BATCH],
            rx_trunc: [false; BATCH],
            peers: vec![zero_storage; BATCH].into_boxed_slice(),
            peer_len: [0; BATCH],
            tx: vec![0u8; BATCH * BUF].into_boxed_slice(),
            tx_len: [0; BATCH],
            tx_to: [0; BATCH],
            tx_n: 0,
            iov: vec![zero_iov; BATCH].into_boxed_slice(),
            hdrs: vec![zero_hdr; BATCH].into_boxed_slice(),
        }
    }

    /// Receive up to [`BATCH`] datagrams without blocking; `WouldBlock` when none is queued.
    pub(crate) fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.tx_n = 0;
        for i in 0..BATCH {
            self.iov[i] = libc::iovec {
                iov_base: self.rx[i * BUF..].as_mut_ptr().cast(),
                iov_len: BUF,
            };
            let hdr = &mut self.hdrs[i];
            hdr.msg_hdr.msg_name = (&raw mut self.peers[i]).cast();
            hdr.msg_hdr.msg_namelen = socklen::<libc::sockaddr_storage>();
            hdr.msg_hdr.msg_iov = &raw mut self.iov[i];
            hdr.msg_hdr.msg_iovlen = 1;
            hdr.msg_hdr.msg_control = std::ptr::null_mut();
            hdr.msg_hdr.msg_controllen = 0;
            hdr.msg_hdr.msg_flags = 0;
            hdr.msg_len = 0;
        }
        // SAFETY: `hdrs` holds BATCH initialised headers whose name and iovec pointers point
        // into `peers`, `iov` and `rx`, which are owned by `self`, outlive the call and are
        // not otherwise borrowed during it; the kernel writes at most the given lengths.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = usize::try_from(n).unwrap_or(0).min(BATCH);
        for i in 0..n {
            let hdr = &self.hdrs[i];
            self.rx_len[i] = usize::try_from(hdr.msg_len).unwrap_or(0).min(BUF);
            self.rx_trunc[i] = hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            self.peer_len[i] = hdr.msg_hdr.msg_namelen;
        }
        Ok(n)
    }

    /// The `i`-th datagram received, or `None` if it was larger than [`BUF`].
    pub(crate) fn datagram(&self, i: usize) -> Option<&[u8]> {
        (!self.rx_trunc[i]).then(|| &self.rx[i * BUF..i * BUF + self.rx_len[i]])
    }

    /// The `i`-th datagram and the next free answer buffer, to write an answer in place.
    pub(crate) fn datagram_and_answer(&mut self, i: usize) -> Option<(&[u8], &mut [u8])> {
        if self.rx_trunc[i] || self.tx_n >= BATCH {
            return None;
        }
        let j = self.tx_n;
        Some((
            &self.rx[i * BUF..i * BUF + self.rx_len[i]],
            &mut self.tx[j * BUF..(j + 1) * BUF],
        ))
    }

    /// Queue the answer just written by [`Batch::datagram_and_answer`] (`len` bytes) for
    /// the sender of datagram `i`.
    pub(crate) fn commit_answer(&mut self, i: usize, len: usize) {
        let j = self.tx_n;
        self.tx_len[j] = len.min(BUF);
        self.tx_to[j] = i;
        self.tx_n += 1;
    }

    /// Queue `bytes` for the sender of datagram `i`; `false` when it does not fit a buffer.
    pub(crate) fn queue_answer(&mut self, i: usize, bytes: &[u8]) -> bool {
        if bytes.len() > BUF || self.tx_n >= BATCH {
            return false;
        }
        let j = self.tx_n;
        self.tx[j * BUF..j * BUF + bytes.len()].copy_from_slice(bytes);
        self.commit_answer(i, bytes.len());
        true
    }

    /// The sender of datagram `i`.
    pub(crate) fn peer(&self, i: usize) -> Option<SocketAddr> {
        sockaddr_to_std(&self.peers[i], self.peer_len[i])
    }

    /// Send the queued answers. Those the socket cannot take now (`EAGAIN`) are returned
    /// to the caller to be sent later; others that fail are reported through `on_error`.
    pub(crate) fn send(
        &mut self,
        fd: RawFd,
        mut on_error: impl FnMut(io::Error),
        mut spill: impl FnMut(Vec<u8>, SocketAddr),
    ) {
        let n = self.tx_n;
        for j in 0..n {
            let i = self.tx_to[j];
            self.iov[j] = libc::iovec {
                iov_base: self.tx[j * BUF..].as_mut_ptr().cast(),
                iov_len: self.tx_len[j],
            };
            let hdr = &mut self.hdrs[j];
            hdr.msg_hdr.msg_name = (&raw mut self.peers[i]).cast();
            hdr.msg_hdr.msg_namelen = self.peer_len[i];
            hdr.msg_hdr.msg_iov = &raw mut self.iov[j];
            hdr.msg_hdr.msg_iovlen = 1;
            hdr.msg_hdr.msg_control = std::ptr::null_mut();
            hdr.msg_hdr.msg_controllen = 0;
            hdr.msg_hdr.msg_flags = 0;
            hdr.msg_len = 0;
        }
        let mut sent = 0usize;
        while sent < n {
            // SAFETY: headers sent..n are initialised above and point into `peers`, `iov`
            // and `tx`, owned by `self` and not otherwise borrowed during the call.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    self.hdrs[sent..].as_mut_ptr(),
                    (n - sent) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if r > 0 {
                sent += usize::try_from(r).unwrap_or(1);
                continue;
            }
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::WouldBlock {
                for j in sent..n {
                    if let Some(peer) = self.peer(self.tx_to[j]) {
                        spill(self.tx[j * BUF..j * BUF + self.tx_len[j]].to_vec(), peer);
                    }
                }
                break;
            }
            if err.kind() != io::ErrorKind::Interrupted {
                // This one datagram cannot be sent (e.g. an unreachable peer): skip it.
                on_error(err);
                sent += 1;
            }
        }
        self.tx_n = 0;
    }
}

fn socklen<T>() -> libc::socklen_t {
    libc::socklen_t::try_from(mem::size_of::<T>()).unwrap_or(libc::socklen_t::MAX)
}

fn sockaddr_to_std(ss: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    match libc::c_int::from(ss.ss_family) {
        libc::AF_INET if len >= socklen::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, which is smaller than
            // sockaddr_storage and has no stricter alignment.
            let sin = unsafe { &*(std::ptr::from_ref(ss).cast::<libc::sockaddr_in>()) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= socklen::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &*(std::ptr::from_ref(ss).cast::<libc::sockaddr_in6>()) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn batch_round_trip() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_nonblocking(true).unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let fd = server.as_raw_fd();
        let mut b = Batch::new();
        assert_eq!(b.recv(fd).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        for i in 0..5u8 {
            client
                .send_to(&[i; 3], server.local_addr().unwrap())
                .unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        let n = b.recv(fd).unwrap();
        assert_eq!(n, 5);
        for i in 0..n {
            assert_eq!(b.peer(i), Some(client.local_addr().unwrap()));
            let echo = b.datagram(i).unwrap().to_vec();
            assert!(b.queue_answer(i, &echo));
        }
        b.send(fd, |e| panic!("{e}"), |_, _| panic!("spilled"));
        let mut buf = [0u8; 16];
        for i in 0..5u8 {
            let (len, _) = client.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..len], &[i; 3]);
        }
    }
}
