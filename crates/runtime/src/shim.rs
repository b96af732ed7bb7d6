//! The daemon side of starting a container ([`start`], [`wait_exit`]) and
//! the shim process that supervises it.
//!
//! Process tree: daemon → `self_exe __netloom-shim spec.json` (P1, exits right
//! after forking) → shim (P2, `setsid`, long-lived) → init (PID 1 of the
//! container) → main process.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sched::CloneFlags;
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid};
use serde::{Deserialize, Serialize};

use crate::error::chain;
use crate::proc::proc_start_time;
use crate::util::{close_fds_except, mkdir_p, status_code, write_all, write_atomic};
use crate::{ContainerSpec, ExitInfo, RuntimeError, SHIM_ARG, Spawned};

/// How long [`start`] waits for the shim's report.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Exit code reported when the shim died without writing `exit.json`
/// (init is killed with SIGKILL when the shim dies).
const LOST_EXIT_CODE: i32 = 137;

/// The one line the shim writes to the daemon.
#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "lowercase")]
enum ShimReport {
    Ok(Spawned),
    Err(String),
}

fn exit_path(state_dir: &Path) -> PathBuf {
    state_dir.join("exit.json")
}

/// Removes a stale `exit.json` before a restart ([`start`] does it too).
pub fn clear_exit(state_dir: &Path) -> Result<(), RuntimeError> {
    let p = exit_path(state_dir);
    match std::fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RuntimeError::io("remove", p)(e)),
    }
}

/// Exit record written by the shim, if the container has exited
/// (reads `<state_dir>/exit.json`).
pub fn read_exit(state_dir: &Path) -> Option<ExitInfo> {
    let data = std::fs::read(exit_path(state_dir)).ok()?;
    serde_json::from_slice(&data).ok()
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
}

/// Starts the container and returns once its init process exists.
///
/// Writes `<state_dir>/spec.json`, spawns `self_exe __netloom-shim
/// <spec.json>`, reads the shim's one-line report (10 s timeout) and reaps the
/// intermediate process; the long-lived shim is not our child. Setup failures
/// (mounts, pivot_root, namespaces) are errors; a command that cannot be
/// executed is not: it shows up as exit code 127/126 in `exit.json`.
/// Synchronous: call it from `spawn_blocking`.
pub fn start(spec: &ContainerSpec) -> Result<Spawned, RuntimeError> {
    spec.validate()?;
    mkdir_p(&spec.state_dir)?;
    for sub in ["upper", "work", "merged"] {
        mkdir_p(&spec.layer_dir.join(sub))?;
    }
    if let Some(parent) = spec.log_path.parent() {
        mkdir_p(parent)?;
    }
    clear_exit(&spec.state_dir)?;
    let spec_path = spec.state_dir.join("spec.json");
    let json = serde_json::to_vec_pretty(spec).map_err(|source| RuntimeError::Json {
        path: spec_path.clone(),
        source,
    })?;
    write_atomic(&spec_path, &json)?;

    let exe = crate::self_exe()?;
    tracing::debug!(container_id = %spec.id, exe = %exe.display(), "spawning shim");
    let mut child = Command::new(&exe)
        .arg(SHIM_ARG)
        .arg(&spec_path)
        .envs(crate::child_nofile_env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|source| RuntimeError::Spawn {
            exe: exe.clone(),
            source,
        })?;
    let line = match child.stdout.take() {
        Some(out) => read_line_timeout(out.into(), START_TIMEOUT),
        None => Err("shim stdout not captured".to_string()),
    };
    if line.is_err() {
        let _ = child.kill();
    }
    // Reap the intermediate process (it exits right after forking the shim).
    let _ = child.wait();
    let shim_err = |message: String| RuntimeError::Shim {
        id: spec.id.clone(),
        message,
    };
    let line = line.map_err(shim_err)?;
    match serde_json::from_str::<ShimReport>(line.trim()) {
        Ok(ShimReport::Ok(spawned)) => {
            tracing::info!(container_id = %spec.id, init_pid = spawned.init_pid, shim_pid = spawned.shim_pid, "container started");
            Ok(spawned)
        }
        Ok(ShimReport::Err(message)) => Err(shim_err(message)),
        Err(e) => Err(shim_err(format!("bad shim report {line:?}: {e}"))),
    }
}

/// Reads up to the first newline from `fd`, giving up after `timeout`.
fn read_line_timeout(fd: OwnedFd, timeout: Duration) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if buf.contains(&b'\n') || buf.len() > 1 << 20 {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("timed out waiting for the shim".to_string());
        }
        let ms = u16::try_from(left.as_millis().min(10_000)).unwrap_or(10_000);
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) | Err(nix::Error::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(format!("poll shim pipe: {e}")),
        }
        match nix::unistd::read(fd.as_fd(), &mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(nix::Error::EINTR | nix::Error::EAGAIN) => {}
            Err(e) => return Err(format!("read shim pipe: {e}")),
        }
    }
    if buf.is_empty() {
        return Err("shim exited without reporting".to_string());
    }
    let end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    Ok(String::from_utf8_lossy(&buf[..end]).into_owned())
}

/// Resolves when the shim process exits (pidfd + tokio `AsyncFd`, works for
/// non-children), then returns [`read_exit`]; if the shim died without
/// writing one, an [`ExitInfo`] with exit code 137. A process that is already
/// gone (or whose pid was reused, per `shim_start_time`; 0 skips that check)
/// resolves at once.
pub async fn wait_exit(shim_pid: i32, shim_start_time: u64, state_dir: &Path) -> ExitInfo {
    let pidfd = pidfd_open(shim_pid);
    if pidfd.is_none() && shim_start_time != 0 {
        // No pidfd (the daemon is out of descriptors, or the kernel predates 5.3): the
        // shim may well be alive, so watch /proc instead of declaring it gone.
        if crate::is_alive(shim_pid, shim_start_time) {
            tracing::warn!(shim_pid, "cannot open a pidfd on the shim, polling /proc");
        }
        while crate::is_alive(shim_pid, shim_start_time) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    if let Some(fd) = pidfd {
        let same = shim_start_time == 0 || proc_start_time(shim_pid) == Some(shim_start_time);
        if same {
            // SAFETY: `fd` is an OwnedFd moved into the AsyncFd: it stays open
            // and refers to the same pidfd for the AsyncFd's whole lifetime.
            let registered = unsafe {
                tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
            };
            match registered {
                Ok(afd) => {
                    if let Err(e) = afd.readable().await {
                        tracing::warn!(shim_pid, error = %e, "waiting on shim pidfd failed");
                    }
                }
                Err(e) => {
                    tracing::warn!(shim_pid, error = %e, "pidfd not pollable, polling /proc");
                    while crate::is_alive(shim_pid, shim_start_time) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
    }
    read_exit(state_dir).unwrap_or_else(|| {
        tracing::warn!(shim_pid, state_dir = %state_dir.display(), "shim exited without exit.json");
        ExitInfo {
            exit_code: LOST_EXIT_CODE,
            finished_at: now_rfc3339(),
            oom_killed: false,
        }
    })
}

fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    use std::os::fd::FromRawFd;
    if pid <= 0 {
        return None;
    }
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, libc::PIDFD_NONBLOCK) };
    if fd < 0 {
        return None;
    }
    let fd = i32::try_from(fd).ok()?;
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Writes the report line to fd 1.
fn report(r: &ShimReport) {
    let mut line = serde_json::to_vec(r).unwrap_or_else(|_| br#"{"err":"encode report"}"#.to_vec());
    line.push(b'\n');
    let _ = write_all(std::io::stdout().as_fd(), &line);
}

/// Entry point of `__netloom-shim <spec.json>` (the intermediate process P1).
pub(crate) fn run_shim(spec_path: Option<PathBuf>) -> i32 {
    close_fds_except(&[]);
    crate::apply_child_nofile();
    let spec = match load_spec(spec_path) {
        Ok(s) => s,
        Err(e) => {
            report(&ShimReport::Err(chain(&e)));
            return 1;
        }
    };
    // SAFETY: this process is single-threaded (maybe_run_internal runs
    // before any thread is started), so the child may do anything.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Parent { .. }) => 0,
        Ok(ForkResult::Child) => shim_main(&spec),
        Err(e) => {
            report(&ShimReport::Err(format!("fork shim: {e}")));
            1
        }
    }
}

fn load_spec(path: Option<PathBuf>) -> Result<ContainerSpec, RuntimeError> {
    let path = path.ok_or_else(|| RuntimeError::InvalidSpec("missing spec path".into()))?;
    let data = std::fs::read(&path).map_err(RuntimeError::io("read", &path))?;
    let spec: ContainerSpec =
        serde_json::from_slice(&data).map_err(|source| RuntimeError::Json { path, source })?;
    spec.validate()?;
    Ok(spec)
}

/// The running container as seen by the shim.
struct Running {
    init: Pid,
    out_r: OwnedFd,
    err_r: OwnedFd,
    master: Option<OwnedFd>,
    stdin_w: Option<OwnedFd>,
    log: std::fs::File,
}

/// The long-lived shim (P2).
fn shim_main(spec: &ContainerSpec) -> i32 {
    let _ = nix::unistd::setsid();
    let _ = std::env::set_current_dir("/");
    let listener = match crate::attach::bind(&spec.state_dir) {
        Ok(l) => Some(l),
        Err(e) if spec.tty || spec.open_stdin => {
            report(&ShimReport::Err(chain(&e)));
            return 1;
        }
        Err(_) => None,
    };
    let running = match spawn_init(spec) {
        Ok(r) => r,
        Err(e) => {
            report(&ShimReport::Err(chain(&e)));
            return 1;
        }
    };
    let spawned = Spawned {
        shim_pid: std::process::id() as i32,
        init_pid: running.init.as_raw(),
        init_start_time: proc_start_time(running.init.as_raw()).unwrap_or(0),
        shim_start_time: proc_start_time(std::process::id() as i32).unwrap_or(0),
    };
    report(&ShimReport::Ok(spawned));
    detach_stdio();

    let Running {
        init,
        out_r,
        err_r,
        master,
        stdin_w,
        log,
    } = running;
    crate::attach::run_loop(
        crate::attach::ShimIo {
            out_r,
            err_r,
            master,
            stdin_w,
            listener,
            stdin_once: spec.stdin_once,
            wait_attach: spec.wait_attach,
        },
        &log,
    );
    let _ = std::fs::remove_file(crate::attach::socket_path(&spec.state_dir));
    let code = loop {
        match waitpid(init, None) {
            Ok(st) => {
                if let Some(c) = status_code(st) {
                    break c;
                }
            }
            Err(nix::Error::EINTR) => {}
            Err(_) => break LOST_EXIT_CODE,
        }
    };
    let info = ExitInfo {
        exit_code: code,
        finished_at: now_rfc3339(),
        oom_killed: false,
    };
    if let Ok(data) = serde_json::to_vec(&info) {
        let _ = write_atomic(&exit_path(&spec.state_dir), &data);
    }
    0
}

fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
        let _ = nix::unistd::dup2_stderr(&null);
    }
}

/// Opens the log and pipes, enters the namespaces and forks init; returns
/// once init has finished its setup.
fn spawn_init(spec: &ContainerSpec) -> Result<Running, RuntimeError> {
    let log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .custom_flags(libc::O_CLOEXEC)
        .open(&spec.log_path)
        .map_err(RuntimeError::io("open log", &spec.log_path))?;
    let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(RuntimeError::sys("pipe", "shim"));
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (sync_r, sync_w) = nix::sys::socket::socketpair(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::SeqPacket,
        None,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
    )
    .map_err(RuntimeError::sys("socketpair", "shim"))?;
    let (stdin_r, stdin_w) = if spec.open_stdin && !spec.tty {
        let (r, w) = pipe()?;
        (Some(r), Some(w))
    } else {
        (None, None)
    };
    let devnull = std::fs::OpenOptions::new()
        .read(true)
        .open("/dev/null")
        .map_err(RuntimeError::io("open", "/dev/null"))?;

    if let Some(ns) = &spec.netns {
        let f = std::fs::File::open(ns).map_err(RuntimeError::io("open netns", ns))?;
        nix::sched::setns(&f, CloneFlags::CLONE_NEWNET)
            .map_err(RuntimeError::sys("join netns", ns.display()))?;
    }
    nix::sched::unshare(
        CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC,
    )
    .map_err(RuntimeError::sys(
        "unshare pid/uts/ipc namespaces",
        &spec.id,
    ))?;

    // SAFETY: the shim is single-threaded; the child runs init and never
    // returns into our code.
    let init =
        match unsafe { nix::unistd::fork() }.map_err(RuntimeError::sys("fork init", &spec.id))? {
            ForkResult::Child => {
                drop((out_r, err_r, sync_r, log, stdin_w));
                crate::init::run_init(
                    spec,
                    crate::init::InitFds {
                        out_w,
                        err_w,
                        sync_w,
                        devnull: devnull.into(),
                        stdin_r,
                    },
                )
            }
            ForkResult::Parent { child } => child,
        };
    drop((out_w, err_w, sync_w, devnull, stdin_r));

    // init sends 'K' when ready (with the terminal's master attached), or 'E' + message.
    let (msg, master, read) = recv_ready(&sync_r);
    if msg.first() == Some(&b'K') && (master.is_some() || !spec.tty) {
        // The main process holds a copy of the (close-on-exec) socket until its exec:
        // wait for EOF, so the container's command runs when `start` returns.
        let mut rest = [0u8; 256];
        loop {
            match nix::unistd::read(&sync_r, &mut rest) {
                Ok(0) => break,
                Ok(_) | Err(nix::Error::EINTR) => {}
                Err(_) => break,
            }
        }
        return Ok(Running {
            init,
            out_r,
            err_r,
            master,
            stdin_w,
            log,
        });
    }
    // Setup failed: reap init, report.
    let _ = waitpid(init, None);
    let message = match (msg.first(), read) {
        (Some(b'E'), _) => String::from_utf8_lossy(&msg[1..]).into_owned(),
        (_, Err(e)) => format!("read init status: {e}"),
        _ => "container init exited during setup".to_string(),
    };
    Err(RuntimeError::Shim {
        id: spec.id.clone(),
        message,
    })
}

/// Receives init's one message on the sync socket: its bytes, a terminal
/// master passed along with it, and the read error if any.
fn recv_ready(sock: &OwnedFd) -> (Vec<u8>, Option<OwnedFd>, std::io::Result<()>) {
    use std::os::fd::{AsRawFd, FromRawFd};
    let mut buf = vec![0u8; 64 * 1024];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    loop {
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        match nix::sys::socket::recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(m) => {
                let n = m.bytes;
                let mut master = None;
                if let Ok(cmsgs) = m.cmsgs() {
                    for c in cmsgs {
                        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
                            for fd in fds {
                                // SAFETY: the kernel just installed this fd in our table
                                // for us; nothing else owns it.
                                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                                if master.is_none() {
                                    master = Some(owned);
                                }
                            }
                        }
                    }
                }
                buf.truncate(n);
                return (buf, master, Ok(()));
            }
            Err(nix::Error::EINTR) => {}
            Err(e) => return (Vec::new(), None, Err(std::io::Error::from(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_exit_on_gone_process() {
        let Ok(dir) = tempfile::tempdir() else { return };
        // No such process and no exit.json: the "lost" record.
        let e = wait_exit(i32::MAX, 1, dir.path()).await;
        assert_eq!(e.exit_code, LOST_EXIT_CODE);
        let rec = ExitInfo {
            exit_code: 3,
            finished_at: now_rfc3339(),
            oom_killed: false,
        };
        let data = serde_json::to_vec(&rec).unwrap_or_default();
        assert!(write_atomic(&exit_path(dir.path()), &data).is_ok());
        assert_eq!(wait_exit(i32::MAX, 1, dir.path()).await, rec);
        assert!(clear_exit(dir.path()).is_ok());
        assert!(read_exit(dir.path()).is_none());
        assert!(clear_exit(dir.path()).is_ok());
    }

    #[tokio::test]
    async fn wait_exit_on_real_child() {
        let Ok(dir) = tempfile::tempdir() else { return };
        let Ok(mut child) = std::process::Command::new("sleep").arg("0.2").spawn() else {
            return;
        };
        let pid = child.id() as i32;
        let start = proc_start_time(pid).unwrap_or(0);
        let t0 = Instant::now();
        let e = wait_exit(pid, start, dir.path()).await;
        assert!(t0.elapsed() >= Duration::from_millis(150));
        assert_eq!(e.exit_code, LOST_EXIT_CODE);
        let _ = child.wait();
    }

    #[test]
    fn report_wire_format() {
        let ok = ShimReport::Ok(Spawned {
            shim_pid: 1,
            init_pid: 2,
            init_start_time: 3,
            shim_start_time: 4,
        });
        assert_eq!(
            serde_json::to_string(&ok).unwrap_or_default(),
            r#"{"ok":{"shim_pid":1,"init_pid":2,"init_start_time":3,"shim_start_time":4}}"#
        );
        assert_eq!(
            serde_json::to_string(&ShimReport::Err("x".into())).unwrap_or_default(),
            r#"{"err":"x"}"#
        );
    }
}
