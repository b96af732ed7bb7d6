//! Running a process inside a running container (`docker exec`).

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::process::Stdio;

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::ForkResult;
use serde::{Deserialize, Serialize};

use crate::spec::with_default_path;
use crate::util::{close_fds_except, eprint_raw, exec_command, reset_signals, status_code};
use crate::{NSEXEC_ARG, RuntimeError};

/// Exit code of the helper when it cannot enter the container.
const HELPER_FAILED: i32 = 126;

/// What `__netloom-nsexec` is asked to do.
#[derive(Serialize, Deserialize, Debug)]
struct NsExecRequest {
    pid: i32,
    args: Vec<String>,
    env: Vec<String>,
    working_dir: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    tty: bool,
    #[serde(default)]
    console_size: Option<[u16; 2]>,
}

/// Starts a process inside a running container (all its namespaces + root).
///
/// Spawns `self_exe __netloom-nsexec <json>` with stdout/stderr piped and
/// stdin null. The helper joins `/proc/<init_pid>/ns/{ipc,uts,net,pid,mnt}`
/// and the container root, forks (so the child is inside the pid namespace),
/// and the child chdirs to `working_dir` ("" = "/") and executes `args` with
/// `env` (default PATH added). The helper exits with the child's exit code
/// (128+signal if signalled; 126/127 with a Docker-like message on stderr if
/// the command cannot be executed). Must be called within a tokio runtime.
pub fn exec(
    init_pid: i32,
    args: &[String],
    env: &[String],
    working_dir: &str,
    user: &str,
) -> Result<tokio::process::Child, RuntimeError> {
    exec_with(init_pid, args, env, working_dir, user, false)
}

/// Like [`exec`]; with `tty` the process gets a pseudo-terminal inside the container
/// (its controlling terminal, 80x24) and the helper's stdin is piped: the caller writes
/// the user's keystrokes there and reads the terminal's output from stdout.
pub fn exec_with(
    init_pid: i32,
    args: &[String],
    env: &[String],
    working_dir: &str,
    user: &str,
    tty: bool,
) -> Result<tokio::process::Child, RuntimeError> {
    let opts = ExecOptions {
        tty,
        stdin: tty,
        console_size: None,
    };
    exec_opts(init_pid, args, env, working_dir, user, opts)
}

/// Terminal and stdin options of [`exec_opts`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ExecOptions {
    /// Run the process on a pseudo-terminal.
    pub tty: bool,
    /// Pipe the helper's stdin (implied by `tty`); without a terminal it becomes the
    /// process's stdin (`docker exec -i`).
    pub stdin: bool,
    /// Initial terminal size `[rows, cols]` (default 24x80).
    pub console_size: Option<[u16; 2]>,
}

/// Like [`exec_with`], with every option.
pub fn exec_opts(
    init_pid: i32,
    args: &[String],
    env: &[String],
    working_dir: &str,
    user: &str,
    opts: ExecOptions,
) -> Result<tokio::process::Child, RuntimeError> {
    let ExecOptions {
        tty,
        stdin,
        console_size,
    } = opts;
    if args.is_empty() {
        return Err(RuntimeError::InvalidSpec(format!(
            "exec in container init {init_pid}: empty command"
        )));
    }
    if init_pid <= 0 {
        return Err(RuntimeError::NoSuchProcess(init_pid));
    }
    let req = NsExecRequest {
        pid: init_pid,
        args: args.to_vec(),
        env: with_default_path(env),
        working_dir: working_dir.to_string(),
        user: user.to_string(),
        tty,
        console_size: console_size.filter(|[h, w]| *h > 0 && *w > 0),
    };
    let json = serde_json::to_string(&req).map_err(|source| RuntimeError::Json {
        path: "<exec request>".into(),
        source,
    })?;
    let exe = crate::self_exe()?;
    tracing::debug!(init_pid, exe = %exe.display(), "spawning exec helper");
    tokio::process::Command::new(&exe)
        .arg(NSEXEC_ARG)
        .arg(json)
        .envs(crate::child_nofile_env())
        .stdin(if tty || stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| RuntimeError::Spawn { exe, source })
}

/// Entry point of `__netloom-nsexec <json>`.
pub(crate) fn run_nsexec(json: Option<OsString>) -> i32 {
    close_fds_except(&[]);
    crate::apply_child_nofile();
    let req: NsExecRequest = match json
        .as_deref()
        .and_then(|j| j.to_str())
        .map(serde_json::from_str)
    {
        Some(Ok(r)) => r,
        _ => {
            eprint_raw("netloom exec: invalid request\n");
            return HELPER_FAILED;
        }
    };
    if let Err(msg) = enter(req.pid) {
        eprint_raw(&format!("netloom exec: {msg}\n"));
        return HELPER_FAILED;
    }
    if req.tty {
        return run_tty(&req);
    }
    // SAFETY: this helper process is single-threaded; the child only
    // execs or _exits.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => {
            let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
            reset_signals();
            let wd = if req.working_dir.is_empty() {
                "/"
            } else {
                req.working_dir.as_str()
            };
            let (msg, code) = if let Err(e) = nix::unistd::chdir(wd) {
                (format!("chdir to cwd ({wd:?}) failed: {e}"), 126)
            } else {
                match crate::util::apply_user(&req.user) {
                    Ok(()) => exec_command(&req.args, &req.env),
                    Err(e) => e,
                }
            };
            eprint_raw(&format!("{msg}\n"));
            // SAFETY: _exit skips atexit handlers duplicated by fork.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => loop {
            match waitpid(child, None) {
                Ok(st) => {
                    if let Some(c) = status_code(st) {
                        return c;
                    }
                }
                Err(nix::Error::EINTR) => {}
                Err(e) => {
                    eprint_raw(&format!("netloom exec: wait: {e}\n"));
                    return HELPER_FAILED;
                }
            }
        },
        Err(e) => {
            eprint_raw(&format!("netloom exec: fork: {e}\n"));
            HELPER_FAILED
        }
    }
}

/// The child's side of an exec: working directory, user, then the command. Never returns.
fn exec_child(req: &NsExecRequest) -> ! {
    let wd = if req.working_dir.is_empty() {
        "/"
    } else {
        req.working_dir.as_str()
    };
    let (msg, code) = if let Err(e) = nix::unistd::chdir(wd) {
        (format!("chdir to cwd ({wd:?}) failed: {e}"), 126)
    } else {
        match crate::util::apply_user(&req.user) {
            Ok(()) => exec_command(&req.args, &req.env),
            Err(e) => e,
        }
    };
    eprint_raw(&format!("{msg}\n"));
    // SAFETY: _exit skips atexit handlers duplicated by fork.
    unsafe { libc::_exit(code) }
}

/// `exec -t`: a pseudo-terminal from the container's devpts (the helper already joined
/// its mount namespace), the child in a new session with it as controlling terminal, and
/// the helper relaying stdin → terminal and terminal → stdout until the child is gone.
fn run_tty(req: &NsExecRequest) -> i32 {
    let [rows, cols] = req.console_size.unwrap_or([24, 80]);
    let ws = nix::pty::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = match nix::pty::openpty(Some(&ws), None) {
        Ok(p) => p,
        Err(e) => {
            eprint_raw(&format!("netloom exec: allocate a terminal: {e}\n"));
            return HELPER_FAILED;
        }
    };
    // SAFETY: this helper process is single-threaded; the child only execs or _exits.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => {
            let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
            reset_signals();
            drop(pty.master);
            let _ = nix::unistd::setsid();
            let slave = pty.slave.as_raw_fd();
            // SAFETY: TIOCSCTTY on a terminal fd we own; makes it our controlling tty.
            unsafe { libc::ioctl(slave, libc::TIOCSCTTY, 0) };
            for fd in 0..3 {
                // SAFETY: dup2 onto the standard descriptors of this child process.
                unsafe { libc::dup2(slave, fd) };
            }
            drop(pty.slave);
            exec_child(req)
        }
        Ok(ForkResult::Parent { child }) => {
            drop(pty.slave);
            relay(&pty.master);
            loop {
                match waitpid(child, None) {
                    Ok(st) => {
                        if let Some(c) = status_code(st) {
                            return c;
                        }
                    }
                    Err(nix::Error::EINTR) => {}
                    Err(_) => return HELPER_FAILED,
                }
            }
        }
        Err(e) => {
            eprint_raw(&format!("netloom exec: fork: {e}\n"));
            HELPER_FAILED
        }
    }
}

/// Copies stdin → `master` and `master` → stdout until the terminal closes (the child
/// and everything holding the terminal exited: reads give EIO).
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

/// Joins the namespaces and root of `pid`.
fn enter(pid: i32) -> Result<(), String> {
    let open = |p: String, flags: OFlag| -> Result<OwnedFd, String> {
        nix::fcntl::open(p.as_str(), flags | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| format!("open {p}: {e}"))
    };
    // Open everything first: after joining the mount namespace /proc differs.
    let mut nss = Vec::new();
    for (name, flag) in [
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ] {
        nss.push((
            name,
            flag,
            open(format!("/proc/{pid}/ns/{name}"), OFlag::O_RDONLY)?,
        ));
    }
    let root = open(
        format!("/proc/{pid}/root"),
        OFlag::O_PATH | OFlag::O_DIRECTORY,
    )?;
    for (name, flag, fd) in &nss {
        nix::sched::setns(fd, *flag).map_err(|e| format!("join {name} namespace of {pid}: {e}"))?;
    }
    nix::unistd::fchdir(&root).map_err(|e| format!("enter root of {pid}: {e}"))?;
    nix::unistd::chroot(".").map_err(|e| format!("chroot into root of {pid}: {e}"))?;
    nix::unistd::chdir("/").map_err(|e| format!("chdir /: {e}"))?;
    Ok(())
}

/// Sets the terminal size of a `tty` exec session whose helper is `helper_pid`:
/// `TIOCSWINSZ` on the session process's terminal (its stdin, opened through
/// `/proc`), which also sends it `SIGWINCH`. Waits up to two seconds for the helper
/// to have forked the process and for that process to hold the terminal.
pub async fn resize_exec(helper_pid: i32, rows: u16, cols: u16) -> Result<(), RuntimeError> {
    if helper_pid <= 0 {
        return Err(RuntimeError::NoSuchProcess(helper_pid));
    }
    let children = format!("/proc/{helper_pid}/task/{helper_pid}/children");
    for _ in 0..40 {
        let child = std::fs::read_to_string(&children)
            .ok()
            .and_then(|s| s.split_whitespace().next().map(str::to_string));
        if let Some(child) = child {
            let tty = format!("/proc/{child}/fd/0");
            // The container process decides what its stdin is: pin it with O_PATH (no
            // open side effects), and open it for real only if it is a pty slave.
            let pinned = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
                .open(&tty)
                .map_err(RuntimeError::io("look at terminal", &tty))?;
            let md = pinned
                .metadata()
                .map_err(RuntimeError::io("look at terminal", &tty))?;
            use std::os::unix::fs::{FileTypeExt, MetadataExt};
            // UNIX98 pty slaves: majors 136-143. Anything else is either a child just
            // forked that has not put the terminal on its stdin yet (wait), or not ours.
            let major = libc::major(md.rdev());
            if !md.file_type().is_char_device() || !(136..=143).contains(&major) {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
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
