//! The "limit" row of `bench/dns.sh`: the least a UDP DNS responder can do on this machine.
//!
//! One thread, a blocking socket, `recvmmsg(2)` of up to 32 queries, a canned answer to each
//! (the query's header and question, QR/AA set, one A record `10.0.0.1` pointing at the
//! question, any additional records dropped), one `sendmmsg(2)`. No lookup, no parsing
//! beyond finding the end of the question. What netloom's embedded DNS reaches, measured
//! against this with the same dnsperf in the same kind of namespace, is how close it is to
//! what the kernel allows here.
//!
//! Usage: `dns_limit [ADDR]` (default `127.0.0.11:53`); runs until killed.

use std::io;
use std::mem;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;

const BATCH: usize = 32;
const BUF: usize = 2048;
/// The canned answer record: pointer to the question, A, IN, TTL 600, 10.0.0.1.
const ANSWER: [u8; 16] = [0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x02, 0x58, 0, 4, 10, 0, 0, 1];

fn question_end(q: &[u8]) -> Option<usize> {
    let mut pos = 12;
    while *q.get(pos)? != 0 {
        pos += 1 + usize::from(q[pos]);
    }
    let end = pos + 5;
    (end <= q.len()).then_some(end)
}

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.11:53".into());
    let sock = UdpSocket::bind(&addr)?;
    eprintln!("dns_limit: answering on {addr}");
    let fd = sock.as_raw_fd();
    let mut rx = vec![0u8; BATCH * BUF];
    let mut tx = vec![0u8; BATCH * BUF];
    // SAFETY: all-zero bytes is a valid value of these plain C structs.
    let mut peers: Vec<libc::sockaddr_storage> = vec![unsafe { mem::zeroed() }; BATCH];
    // SAFETY: as above.
    let mut iov: Vec<libc::iovec> = vec![unsafe { mem::zeroed() }; BATCH];
    // SAFETY: as above.
    let mut hdrs: Vec<libc::mmsghdr> = vec![unsafe { mem::zeroed() }; BATCH];
    // SAFETY: as above.
    let mut out_iov: Vec<libc::iovec> = vec![unsafe { mem::zeroed() }; BATCH];
    // SAFETY: as above.
    let mut out: Vec<libc::mmsghdr> = vec![unsafe { mem::zeroed() }; BATCH];
    let storage_len = libc::socklen_t::try_from(mem::size_of::<libc::sockaddr_storage>())
        .unwrap_or(libc::socklen_t::MAX);
    loop {
        for i in 0..BATCH {
            iov[i] = libc::iovec {
                iov_base: rx[i * BUF..].as_mut_ptr().cast(),
                iov_len: BUF,
            };
            hdrs[i].msg_hdr.msg_name = (&raw mut peers[i]).cast();
            hdrs[i].msg_hdr.msg_namelen = storage_len;
            hdrs[i].msg_hdr.msg_iov = &raw mut iov[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: the headers point into rx, iov and peers, which live across the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        let mut m = 0usize;
        for i in 0..usize::try_from(n).unwrap_or(0) {
            let len = usize::try_from(hdrs[i].msg_len).unwrap_or(0).min(BUF);
            let q = &rx[i * BUF..i * BUF + len];
            let Some(qend) = question_end(q) else {
                continue;
            };
            if qend + ANSWER.len() > BUF {
                continue;
            }
            let a = &mut tx[m * BUF..];
            a[..qend].copy_from_slice(&q[..qend]);
            a[2] = 0x84 | (q[2] & 0x01);
            a[3] = 0;
            a[6..12].copy_from_slice(&[0, 1, 0, 0, 0, 0]);
            a[qend..qend + ANSWER.len()].copy_from_slice(&ANSWER);
            out_iov[m] = libc::iovec {
                iov_base: a.as_mut_ptr().cast(),
                iov_len: qend + ANSWER.len(),
            };
            out[m].msg_hdr.msg_name = (&raw mut peers[i]).cast();
            out[m].msg_hdr.msg_namelen = hdrs[i].msg_hdr.msg_namelen;
            out[m].msg_hdr.msg_iov = &raw mut out_iov[m];
            out[m].msg_hdr.msg_iovlen = 1;
            m += 1;
        }
        if m > 0 {
            // SAFETY: headers 0..m point into tx, out_iov and peers, alive across the call.
            unsafe {
                libc::sendmmsg(fd, out.as_mut_ptr(), m as libc::c_uint, 0);
            }
        }
    }
}
