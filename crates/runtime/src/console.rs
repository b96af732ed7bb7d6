//! The console socket of `--console-socket`: the OCI runtime creates the container's
//! pseudo-terminal inside the container and sends its master end over this Unix
//! socket (SCM_RIGHTS), so that the shim (or an exec helper) holds it.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use crate::RuntimeError;

/// A bound console socket, removed when dropped.
pub(crate) struct ConsoleSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ConsoleSocket {
    /// Binds `path` (relative to the working directory, to keep `sun_path` short).
    pub(crate) fn bind(path: &str) -> Result<ConsoleSocket, RuntimeError> {
        let _ = std::fs::remove_file(path);
        let listener =
            UnixListener::bind(path).map_err(RuntimeError::io("bind console socket", path))?;
        let path = std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| PathBuf::from(path));
        Ok(ConsoleSocket { listener, path })
    }

    /// Waits for the runtime (process `runtime_pid`, our child) to connect and send
    /// the terminal's master; fails if the runtime exits first.
    pub(crate) fn receive(&self, runtime_pid: i32) -> Result<OwnedFd, RuntimeError> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let pidfd = crate::shim::pidfd_open(runtime_pid);
        loop {
            let mut fds = vec![PollFd::new(self.listener.as_fd(), PollFlags::POLLIN)];
            if let Some(p) = &pidfd {
                fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::from(30_000u16)) {
                Ok(0) => {
                    return Err(RuntimeError::InvalidSpec(
                        "the OCI runtime did not send the terminal within 30s".into(),
                    ));
                }
                Ok(_) => {}
                Err(nix::Error::EINTR) => continue,
                Err(e) => {
                    return Err(RuntimeError::sys("wait for the terminal", "console socket")(e));
                }
            }
            if fds[0].revents().is_some_and(|r| !r.is_empty()) {
                break;
            }
            if fds
                .get(1)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty())
            {
                return Err(RuntimeError::InvalidSpec(
                    "the OCI runtime exited before sending the terminal".into(),
                ));
            }
        }
        let (stream, _) = self
            .listener
            .accept()
            .map_err(RuntimeError::io("accept on console socket", &self.path))?;
        recv_fd(stream.as_raw_fd())
            .ok_or_else(|| RuntimeError::InvalidSpec("the OCI runtime sent no terminal".into()))
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Receives one file descriptor passed with SCM_RIGHTS.
fn recv_fd(sock: std::os::fd::RawFd) -> Option<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    loop {
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        match nix::sys::socket::recvmsg::<()>(
            sock,
            &mut iov,
            Some(&mut cmsg),
            nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(m) => {
                let mut out = None;
                for c in m.cmsgs().ok()? {
                    if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
                        for fd in fds {
                            // SAFETY: the kernel just installed this fd in our table
                            // for us; nothing else owns it.
                            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                            if out.is_none() {
                                out = Some(owned);
                            }
                        }
                    }
                }
                return out;
            }
            Err(nix::Error::EINTR) => {}
            Err(_) => return None,
        }
    }
}
