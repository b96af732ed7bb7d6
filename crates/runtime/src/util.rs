//! Small helpers shared by the shim, init and nsexec.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal};

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

/// Unblocks all signals and resets every handler to its default (for a
/// process about to exec a container command).
pub(crate) fn reset_signals() {
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    for sig in Signal::iterator() {
        if sig == Signal::SIGKILL || sig == Signal::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL runs no code of ours in signal context.
        let _ = unsafe { nix::sys::signal::signal(sig, SigHandler::SigDfl) };
    }
}

/// Converts strings to C strings, refusing interior NULs.
pub(crate) fn cstrings(items: &[String]) -> Result<Vec<CString>, String> {
    items
        .iter()
        .map(|s| CString::new(s.as_bytes()).map_err(|_| format!("argument {s:?} contains NUL")))
        .collect()
}

/// Outcome of resolving a command like Docker does.
pub(crate) enum Resolved {
    /// Path to execve.
    Found(PathBuf),
    /// Not found / not executable: message and exit code (127/126).
    Failed(String, i32),
}

/// Resolves `cmd` against PATH from `env` (not from our own environment).
pub(crate) fn resolve_command(cmd: &str, env: &[String]) -> Resolved {
    use std::os::unix::fs::PermissionsExt;
    if cmd.contains('/') {
        return Resolved::Found(PathBuf::from(cmd));
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = Path::new(dir).join(cmd);
        if let Ok(md) = std::fs::metadata(&cand)
            && md.is_file()
            && md.permissions().mode() & 0o111 != 0
        {
            return Resolved::Found(cand);
        }
    }
    Resolved::Failed(
        format!("exec: \"{cmd}\": executable file not found in $PATH"),
        127,
    )
}

/// execve()s `args` with `env`; returns only on failure, with a Docker-like
/// message and exit code (127 not found, 126 not executable).
pub(crate) fn exec_command(args: &[String], env: &[String]) -> (String, i32) {
    let Some(cmd) = args.first() else {
        return ("exec: no command".to_string(), 127);
    };
    let path = match resolve_command(cmd, env) {
        Resolved::Found(p) => p,
        Resolved::Failed(m, c) => return (m, c),
    };
    let (cargs, cenv) = match (cstrings(args), cstrings(env)) {
        (Ok(a), Ok(e)) => (a, e),
        (Err(m), _) | (_, Err(m)) => return (format!("exec: {m}"), 126),
    };
    let Ok(cpath) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return (format!("exec: \"{cmd}\": invalid path"), 126);
    };
    let err = match nix::unistd::execve(&cpath, &cargs, &cenv) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let code = match err {
        nix::Error::ENOENT | nix::Error::ENOTDIR => 127,
        _ => 126,
    };
    (
        format!(
            "exec: \"{cmd}\": {}",
            std::io::Error::from_raw_os_error(err as i32)
        ),
        code,
    )
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

/// Switches the calling process to `user` (`uid`, `uid:gid`, `name` or `name:group`,
/// names looked up in the container's /etc/passwd and /etc/group). Empty = root.
/// Called in the child, after entering the container's root, right before exec.
pub(crate) fn apply_user(user: &str) -> Result<(), (String, i32)> {
    if user.is_empty() {
        return Ok(());
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let lookup = |file: &str, name: &str| -> Option<(u32, Option<u32>)> {
        let text = std::fs::read_to_string(file).ok()?;
        text.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 || f[0] != name {
                return None;
            }
            let id = f[2].parse::<u32>().ok()?;
            Some((id, f.get(3).and_then(|x| x.parse::<u32>().ok())))
        })
    };
    let (uid, primary_gid) = match u.parse::<u32>() {
        Ok(n) => (n, None),
        Err(_) => match lookup("/etc/passwd", u) {
            Some((id, gid)) => (id, gid),
            None => {
                return Err((
                    format!("unable to find user {u}: no matching entries in passwd file"),
                    126,
                ));
            }
        },
    };
    let gid = match g {
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => match lookup("/etc/group", g) {
                Some((id, _)) => id,
                None => {
                    return Err((
                        format!("unable to find group {g}: no matching entries in group file"),
                        126,
                    ));
                }
            },
        },
        None => primary_gid.unwrap_or(uid),
    };
    let fail = |what: &str, e: nix::Error| (format!("{what}: {e}"), 126);
    nix::unistd::setgroups(&[]).map_err(|e| fail("setgroups", e))?;
    nix::unistd::setgid(nix::unistd::Gid::from_raw(gid)).map_err(|e| fail("setgid", e))?;
    nix::unistd::setuid(nix::unistd::Uid::from_raw(uid)).map_err(|e| fail("setuid", e))?;
    Ok(())
}
