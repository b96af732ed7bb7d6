//! Process liveness and signals.

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::RuntimeError;

/// State letter and start time (field 22) parsed from `/proc/<pid>/stat`.
pub(crate) fn parse_stat(stat: &str) -> Option<(char, u64)> {
    // comm (field 2) may contain spaces and parentheses: split at the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // `rest` starts at field 3 (state); field 22 is 19 further on.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

fn read_stat(pid: i32) -> Option<(char, u64)> {
    if pid <= 0 {
        return None;
    }
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&s)
}

/// Start time (field 22 of `/proc/<pid>/stat`, clock ticks after boot) of a process.
pub fn proc_start_time(pid: i32) -> Option<u64> {
    read_stat(pid).map(|(_, t)| t)
}

/// True if the process with that pid exists, is not a zombie and has that start time.
pub fn is_alive(pid: i32, start_time: u64) -> bool {
    matches!(read_stat(pid), Some((state, t)) if t == start_time && state != 'Z' && state != 'X' && state != 'x')
}

/// Sends `signal` to a process directly: netloom's own (a shim), or a container's
/// init when its OCI runtime cannot be run. Containers are normally signalled through
/// their runtime ([`crate::runc::OciRuntime::kill`]).
pub fn kill_process(init_pid: i32, signal: i32) -> Result<(), RuntimeError> {
    if init_pid <= 0 {
        return Err(RuntimeError::NoSuchProcess(init_pid));
    }
    let sig = Signal::try_from(signal).map_err(|_| RuntimeError::InvalidSignal(signal))?;
    match nix::sys::signal::kill(Pid::from_raw(init_pid), sig) {
        Ok(()) => Ok(()),
        Err(nix::Error::ESRCH) => Err(RuntimeError::NoSuchProcess(init_pid)),
        Err(e) => Err(RuntimeError::sys("kill", format!("pid {init_pid}"))(e)),
    }
}

/// Sends `signal` to a container's init `pid` through a pidfd, if it is still the
/// process that started at `start_time` (checked after the pidfd is open, so a reused
/// PID is never signalled). `Ok(false)`: that process is gone. This is what `runc kill`
/// does for a container's init, without starting the runtime: `rm -f` of many
/// containers would otherwise start one runtime process per container at once.
pub fn kill_init(pid: i32, start_time: u64, signal: i32) -> Result<bool, RuntimeError> {
    if pid <= 0 {
        return Ok(false);
    }
    let fd = crate::shim::pidfd_open(pid)
        .ok_or_else(|| RuntimeError::sys("pidfd_open", format!("pid {pid}"))(nix::Error::last()))?;
    if !is_alive(pid, start_time) {
        return Ok(false);
    }
    use std::os::fd::AsRawFd;
    // SAFETY: pidfd_send_signal on an open pidfd, with no siginfo and no flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc == 0 {
        return Ok(true);
    }
    match nix::Error::last() {
        nix::Error::ESRCH => Ok(false),
        e => Err(RuntimeError::sys("pidfd_send_signal", format!("pid {pid}"))(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_handles_odd_comm() {
        let s = "42 (a) b) (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 1000 10";
        assert_eq!(parse_stat(s), Some(('S', 123456)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn self_is_alive() {
        let pid = std::process::id() as i32;
        let t = proc_start_time(pid);
        assert!(t.is_some());
        assert!(is_alive(pid, t.unwrap_or_default()));
        assert!(!is_alive(pid, t.unwrap_or_default() + 1));
        assert!(!is_alive(-5, 0));
    }
}
