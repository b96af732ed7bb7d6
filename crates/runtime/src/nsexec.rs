//! Running a process inside a running container (`docker exec`).

use std::ffi::OsString;
use std::os::fd::OwnedFd;
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
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| RuntimeError::Spawn { exe, source })
}

/// Entry point of `__netloom-nsexec <json>`.
pub(crate) fn run_nsexec(json: Option<OsString>) -> i32 {
    close_fds_except(&[]);
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
