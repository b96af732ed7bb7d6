//! Running a process inside a running container (`docker exec`) through the OCI
//! runtime's `exec`, with the container's confinement (capabilities, seccomp,
//! `no_new_privs`; `exec --privileged` gets every capability, as in Docker).
//!
//! Without a terminal, the daemon runs `runc exec -p process.json` itself, with piped
//! stdio. With one, it runs `self_exe __netloom-exec <request>`: that helper has the
//! runtime create the terminal (`--console-socket`), relays its stdin/stdout to the
//! terminal, and exits with the process's status.

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::oci::Security;
use crate::runc::OciRuntime;
use crate::util::{close_fds_except, eprint_raw, status_code};
use crate::{EXEC_ARG, RuntimeError};

/// Exit code when the process could not be started (Docker's 126).
const CANNOT_RUN: i32 = 126;
/// Exit code when the command does not exist (Docker's 127).
const NOT_FOUND: i32 = 127;

/// An exec request.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct ExecOptions {
    /// The container's OCI runtime.
    pub runtime: OciRuntime,
    /// The container's ID.
    pub container_id: String,
    /// The container's init PID (its root is read through `/proc/<pid>/root`).
    pub init_pid: i32,
    /// Where the request's files go (`exec-<id>.json`, its log, its console socket).
    pub state_dir: PathBuf,
    /// The exec session's ID.
    pub exec_id: String,
    /// argv.
    pub args: Vec<String>,
    /// Environment (a default PATH is added when missing).
    pub env: Vec<String>,
    /// Working directory ("" = "/").
    pub working_dir: String,
    /// `uid[:gid]` or `name[:group]`; empty = root.
    pub user: String,
    /// Run on a pseudo-terminal.
    pub tty: bool,
    /// Initial terminal size `[rows, cols]`.
    pub console_size: Option<[u16; 2]>,
    /// The container's confinement.
    pub security: Security,
    /// `exec --privileged`: every capability.
    pub privileged: bool,
    /// Pipe stdin (implied by `tty`).
    pub stdin: bool,
}

/// A running exec: the child whose stdio carry the session, and the files to read
/// its outcome from.
pub struct ExecProcess {
    /// `runc exec` (no terminal) or the terminal helper.
    pub child: tokio::process::Child,
    log: PathBuf,
    process_json: PathBuf,
}

impl ExecProcess {
    /// Waits for the process; its exit code, with the runtime's own failures (the
    /// command does not exist, the working directory is missing) mapped to Docker's
    /// 127 / 126.
    pub async fn wait(&mut self) -> i32 {
        let code = match self.child.wait().await {
            Ok(s) => {
                use std::os::unix::process::ExitStatusExt;
                s.code()
                    .or_else(|| s.signal().map(|n| 128 + n))
                    .unwrap_or(-1)
            }
            Err(_) => -1,
        };
        let code = map_exit(code, crate::runc::last_error(&self.log).as_deref());
        let _ = std::fs::remove_file(&self.log);
        let _ = std::fs::remove_file(&self.process_json);
        code
    }
}

/// The exit code of an exec whose runtime logged `error` (runc exits 255 then).
fn map_exit(code: i32, error: Option<&str>) -> i32 {
    match error {
        Some(e) if code == 255 || code == CANNOT_RUN => {
            let missing = e.contains("no such file or directory") && !e.contains("chdir");
            if e.contains("executable file not found") || missing {
                NOT_FOUND
            } else {
                CANNOT_RUN
            }
        }
        _ => code,
    }
}

/// The process of an exec as the OCI runtime's `process.json`.
fn process_json(o: &ExecOptions) -> Result<oci_spec::runtime::Process, RuntimeError> {
    let caps = if o.privileged {
        crate::oci::kernel_caps()
            .into_iter()
            .map(str::to_string)
            .collect()
    } else {
        o.security.capabilities()?
    };
    let mut p = crate::oci::process(
        &o.args,
        &o.env,
        &o.working_dir,
        o.tty,
        o.console_size,
        &caps,
        o.security.no_new_privileges,
    );
    let root = crate::rootfs::open_root(Path::new(&format!("/proc/{}/root", o.init_pid)))?;
    let u = crate::rootfs::resolve_user(&root, &o.user)?;
    let mut user = oci_spec::runtime::User::default();
    user.set_uid(u.uid);
    user.set_gid(u.gid);
    user.set_additional_gids((!u.additional_gids.is_empty()).then_some(u.additional_gids));
    p.set_user(user);
    Ok(p)
}

/// Starts an exec (see the module docs). Must be called within a tokio runtime.
pub fn exec(o: &ExecOptions) -> Result<ExecProcess, RuntimeError> {
    if o.args.is_empty() {
        return Err(RuntimeError::InvalidSpec(format!(
            "exec in container {}: empty command",
            o.container_id
        )));
    }
    if o.init_pid <= 0 {
        return Err(RuntimeError::NoSuchProcess(o.init_pid));
    }
    let p = process_json(o)?;
    let process_path = o.state_dir.join(format!("exec-{}.json", o.exec_id));
    let log = o.state_dir.join(format!("exec-{}.log", o.exec_id));
    let data = serde_json::to_vec(&p).map_err(|source| RuntimeError::Json {
        path: process_path.clone(),
        source,
    })?;
    crate::util::write_atomic(&process_path, &data)?;
    let _ = std::fs::remove_file(&log);
    let child = if o.tty {
        let req = HelperRequest {
            runtime: o.runtime.clone(),
            container_id: o.container_id.clone(),
            process_json: process_path.clone(),
            log: log.clone(),
            dir: o.state_dir.clone(),
            socket: format!("exec-{}.sock", &o.exec_id[..o.exec_id.len().min(12)]),
        };
        let json = serde_json::to_string(&req).map_err(|source| RuntimeError::Json {
            path: "<exec request>".into(),
            source,
        })?;
        let exe = crate::self_exe()?;
        tokio::process::Command::new(&exe)
            .arg(EXEC_ARG)
            .arg(json)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| RuntimeError::Spawn { exe, source })?
    } else {
        tokio::process::Command::new(&o.runtime.path)
            .args(o.runtime.global_args())
            .arg("--log")
            .arg(&log)
            .arg("--log-format")
            .arg("json")
            .arg("exec")
            .arg("--process")
            .arg(&process_path)
            .arg(&o.container_id)
            .stdin(if o.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| RuntimeError::Spawn {
                exe: o.runtime.path.clone(),
                source,
            })?
    };
    tracing::debug!(container_id = %o.container_id, exec_id = %o.exec_id, tty = o.tty, "exec started");
    Ok(ExecProcess {
        child,
        log,
        process_json: process_path,
    })
}

/// What the terminal helper is asked to do.
#[derive(Serialize, Deserialize, Debug)]
struct HelperRequest {
    runtime: OciRuntime,
    container_id: String,
    process_json: PathBuf,
    log: PathBuf,
    /// Directory of the console socket (the helper's working directory).
    dir: PathBuf,
    /// The console socket's name in `dir`.
    socket: String,
}

/// Entry point of `__netloom-exec <json>`: a terminal exec session.
pub(crate) fn run_exec_helper(json: Option<OsString>) -> i32 {
    close_fds_except(&[]);
    let req: HelperRequest = match json
        .as_deref()
        .and_then(|j| j.to_str())
        .map(serde_json::from_str)
    {
        Some(Ok(r)) => r,
        _ => {
            eprint_raw("netloom exec: invalid request\n");
            return CANNOT_RUN;
        }
    };
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) only sets a flag on this process: the
    // exec'd process is re-parented to us when the runtime exits.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    match start_tty(&req) {
        Ok((pid, master)) => {
            relay(&master);
            drop(master);
            loop {
                match waitpid(Pid::from_raw(-1), None) {
                    Ok(st) if st.pid() == Some(Pid::from_raw(pid)) => {
                        if let Some(c) = status_code(st) {
                            return c;
                        }
                    }
                    Ok(_) | Err(nix::Error::EINTR) => {}
                    Err(_) => return CANNOT_RUN,
                }
            }
        }
        Err((msg, code)) => {
            // The session's only stream is the terminal's: say it there.
            let _ = write_all(1, format!("{msg}\r\n").as_bytes());
            code
        }
    }
}

/// Runs `exec --detach --tty` and returns the process's PID and the terminal.
fn start_tty(req: &HelperRequest) -> Result<(i32, OwnedFd), (String, i32)> {
    let fail = |e: &dyn std::fmt::Display| (format!("netloom exec: {e}"), CANNOT_RUN);
    std::env::set_current_dir(&req.dir).map_err(|e| fail(&e))?;
    let console = crate::console::ConsoleSocket::bind(&req.socket).map_err(|e| fail(&e))?;
    let pid_file = req.dir.join(format!("{}.pid", req.socket));
    let _ = std::fs::remove_file(&pid_file);
    let devnull = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/null")
        .map_err(|e| fail(&e))?;
    let mut cmd = req.runtime.command(&req.log);
    cmd.arg("exec")
        .arg("--detach")
        .arg("--tty")
        .arg("--console-socket")
        .arg(&req.socket)
        .arg("--pid-file")
        .arg(&pid_file)
        .arg("--process")
        .arg(&req.process_json)
        .arg(&req.container_id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(devnull));
    let mut child = cmd.spawn().map_err(|e| fail(&e))?;
    let master = console.receive(child.id() as i32);
    let status = child.wait().map_err(|e| fail(&e))?;
    let runtime_error = || {
        let e = crate::runc::last_error(&req.log).unwrap_or_else(|| "failed".to_string());
        let code = map_exit(255, Some(&e));
        (format!("OCI runtime exec failed: {e}"), code)
    };
    if !status.success() {
        return Err(runtime_error());
    }
    let master = master.map_err(|_| runtime_error())?;
    let pid = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .ok_or_else(|| fail(&"the OCI runtime wrote no pid file"))?;
    let _ = std::fs::remove_file(&pid_file);
    Ok((pid, master))
}

/// Copies stdin → `master` and `master` → stdout until the terminal closes (the
/// process and everything holding the terminal exited: reads give EIO).
fn relay(master: &OwnedFd) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::BorrowedFd;
    let m = master.as_raw_fd();
    let mut stdin_open = true;
    let mut buf = [0u8; 16 * 1024];
    loop {
        // SAFETY: fd 0 stays open for the life of this process.
        let stdin = unsafe { BorrowedFd::borrow_raw(0) };
        let mut fds = vec![PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        if stdin_open {
            fds.push(PollFd::new(stdin, PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::Error::EINTR) => continue,
            Err(_) => return,
        }
        let master_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        let stdin_ready = stdin_open
            && fds
                .get(1)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty());
        if master_ready {
            match nix::unistd::read(master, &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if write_all(1, &buf[..n]).is_err() {
                        return;
                    }
                }
            }
        }
        if stdin_ready {
            match nix::unistd::read(stdin, &mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    if write_all(m, &buf[..n]).is_err() {
                        return;
                    }
                }
            }
        }
    }
}

fn write_all(fd: i32, mut data: &[u8]) -> Result<(), ()> {
    while !data.is_empty() {
        // SAFETY: `fd` is an open descriptor of this process; the slice is valid.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n < 0 {
            if nix::Error::last() == nix::Error::EINTR {
                continue;
            }
            return Err(());
        }
        data = &data[n as usize..];
    }
    Ok(())
}

/// Sets the terminal size of a `tty` exec session whose helper is `helper_pid`:
/// `TIOCSWINSZ` on the session process's terminal (its stdin, opened through
/// `/proc`), which also sends it `SIGWINCH`. Waits up to two seconds for the process
/// to exist and hold the terminal.
pub async fn resize_exec(helper_pid: i32, rows: u16, cols: u16) -> Result<(), RuntimeError> {
    if helper_pid <= 0 {
        return Err(RuntimeError::NoSuchProcess(helper_pid));
    }
    let children = format!("/proc/{helper_pid}/task/{helper_pid}/children");
    for _ in 0..40 {
        let kids = std::fs::read_to_string(&children).unwrap_or_default();
        for child in kids.split_whitespace() {
            let tty = format!("/proc/{child}/fd/0");
            // The container process decides what its stdin is: pin it with O_PATH (no
            // open side effects), and open it for real only if it is a pty slave.
            let Ok(pinned) = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
                .open(&tty)
            else {
                continue;
            };
            let Ok(md) = pinned.metadata() else { continue };
            use std::os::unix::fs::{FileTypeExt, MetadataExt};
            // UNIX98 pty slaves: majors 136-143. Anything else is the runtime still
            // starting the process, or not ours.
            let major = libc::major(md.rdev());
            if !md.file_type().is_char_device() || !(136..=143).contains(&major) {
                continue;
            }
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(format!("/proc/self/fd/{}", pinned.as_raw_fd()))
                .map_err(RuntimeError::io("open terminal", &tty))?;
            match crate::attach::set_winsize(f.as_raw_fd(), rows, cols) {
                Err(nix::Error::ENOTTY) => {}
                r => return r.map_err(RuntimeError::sys("set terminal size", tty)),
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Err(RuntimeError::NoSuchProcess(helper_pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_failures_map_to_docker_codes() {
        let nf = "exec failed: unable to start container process: exec: \"x\": executable file not found in $PATH";
        assert_eq!(map_exit(255, Some(nf)), 127);
        assert_eq!(
            map_exit(
                255,
                Some(
                    "exec failed: unable to start container process: exec: \"/x\": stat /x: no such file or directory"
                )
            ),
            127
        );
        assert_eq!(
            map_exit(
                255,
                Some(
                    "exec failed: unable to start container process: exec: \"/etc\": permission denied"
                )
            ),
            126
        );
        // The process's own 255, with nothing logged.
        assert_eq!(map_exit(255, None), 255);
        assert_eq!(
            map_exit(
                255,
                Some(
                    "exec failed: unable to start container process: chdir to cwd (\"/n\") set in config.json failed: no such file or directory"
                )
            ),
            126
        );
        assert_eq!(map_exit(7, None), 7);
    }
}
