//! Small helpers shared by the shim and the exec helper.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use crate::RuntimeError;

/// Writes all of `buf` to `fd`, retrying on EINTR and short writes.
pub(crate) fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> nix::Result<()> {
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Ok(0) => return Err(nix::Error::EIO),
            Ok(n) => buf = &buf[n..],
            Err(nix::Error::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes `msg` to stderr (fd 2) without buffering.
pub(crate) fn eprint_raw(msg: &str) {
    // Best effort: stderr may be closed.
    let _ = write_all(std::io::stderr().as_fd(), msg.as_bytes());
}

/// Closes every fd >= 3 except the ones listed (best effort).
pub(crate) fn close_fds_except(keep: &[i32]) {
    let mut keep: Vec<i32> = keep.iter().copied().filter(|&f| f >= 3).collect();
    keep.sort_unstable();
    let mut from: u32 = 3;
    for k in keep {
        let k = k as u32;
        if k > from {
            close_range(from, k - 1);
        }
        from = k + 1;
    }
    close_range(from, u32::MAX);
}

fn close_range(first: u32, last: u32) {
    // SAFETY: close_range only closes descriptors; callers own every fd in
    // the range (we run single-threaded in a freshly spawned helper).
    unsafe {
        libc::syscall(libc::SYS_close_range, first, last, 0);
    }
}

/// Exit code from a wait status: the code, or 128+signal.
pub(crate) fn status_code(st: nix::sys::wait::WaitStatus) -> Option<i32> {
    use nix::sys::wait::WaitStatus;
    match st {
        WaitStatus::Exited(_, c) => Some(c),
        WaitStatus::Signaled(_, s, _) => Some(128 + s as i32),
        _ => None,
    }
}

/// Creates a directory and its parents.
pub(crate) fn mkdir_p(p: &Path) -> Result<(), RuntimeError> {
    std::fs::create_dir_all(p).map_err(RuntimeError::io("create directory", p))
}

/// Writes `data` to `path` atomically (tmp file + rename).
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<(), RuntimeError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, data).map_err(RuntimeError::io("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(RuntimeError::io("rename", path))
}
