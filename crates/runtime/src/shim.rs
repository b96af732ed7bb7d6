//! The daemon side of starting a container ([`start`], [`wait_exit`]) and
//! the shim process that supervises it.
//!
//! Process tree: daemon → `self_exe __netloom-shim spec.json` (P1, exits right
//! after forking) → shim (P2, `setsid`, long-lived) → init (PID 1 of the
//! container) → main process.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::stat::Mode;
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

pub(crate) fn pidfd_open(pid: i32) -> Option<OwnedFd> {
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
    /// The container's init (our child once the runtime has exited: we are a subreaper).
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
    // Orphans of the container's process tree (its init, once the runtime that
    // started it exits) are re-parented to us, so we can wait for them.
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) only sets a flag on this process.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let listener = match crate::attach::bind(&spec.state_dir) {
        Ok(l) => Some(l),
        Err(e) if spec.tty() || spec.open_stdin => {
            report(&ShimReport::Err(chain(&e)));
            return 1;
        }
        Err(_) => None,
    };
    let running = match spawn_container(spec) {
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
    let code = wait_for(init);
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

/// Reaps children until `pid` is reaped; its exit code (128+signal if killed).
fn wait_for(pid: Pid) -> i32 {
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(st) if st.pid() == Some(pid) => {
                if let Some(c) = status_code(st) {
                    return c;
                }
            }
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(_) => return LOST_EXIT_CODE,
        }
    }
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

/// Mounts the container's root in a mount namespace of our own, so that it needs no
/// cleanup on the host: it goes away with the shim and the container.
fn mount_rootfs(spec: &ContainerSpec) -> Result<(), RuntimeError> {
    use nix::mount::{MsFlags, mount};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(RuntimeError::sys("unshare mount namespace", &spec.id))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(RuntimeError::sys("make mounts slaves", "/"))?;
    hide_other_sandboxes(spec)?;
    let (upper, work, merged) = (
        spec.layer_dir.join("upper"),
        spec.layer_dir.join("work"),
        spec.rootfs(),
    );
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        spec.image_rootfs.display(),
        upper.display(),
        work.display()
    );
    mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(opts.as_str()),
    )
    .map_err(RuntimeError::sys("mount overlay", merged.display()))
}

/// Leaves only this container's sandbox in the shim's mount namespace. The daemon binds
/// every sandbox under one shared directory, and a slave copy of it would hold (and
/// receive) one mount per container on the host: every OCI runtime call made here reads
/// `/proc/self/mountinfo` (runc does several times per create), so the n-th container
/// would cost O(n). The directory's own mount (the daemon's self-bind) is detached here,
/// which drops every sandbox from this namespace and stops their propagation into it,
/// and this container's sandbox is bound again from an open descriptor at the same path,
/// so the runtime spec is unchanged. A directory that is not a mount point is left as is.
fn hide_other_sandboxes(spec: &ContainerSpec) -> Result<(), RuntimeError> {
    use nix::mount::{MntFlags, MsFlags, mount, umount2};
    use oci_spec::runtime::LinuxNamespaceType;
    let Some(path) = spec
        .oci
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .and_then(|nss| {
            nss.iter()
                .find(|n| n.typ() == LinuxNamespaceType::Network)
                .and_then(|n| n.path().clone())
        })
    else {
        return Ok(());
    };
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    // Opened before the detach, which makes the path an empty file here.
    let ns = nix::fcntl::open(&path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(RuntimeError::sys("open sandbox", path.display()))?;
    let mut detached = false;
    // Self-binds can stack (a bind made by each daemon start in a fresh namespace).
    for _ in 0..8 {
        if umount2(dir, MntFlags::MNT_DETACH).is_err() {
            break;
        }
        detached = true;
    }
    if detached {
        let src = format!("/proc/self/fd/{}", ns.as_raw_fd());
        mount(
            Some(src.as_str()),
            &path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(RuntimeError::sys("bind sandbox", path.display()))?;
    }
    Ok(())
}

/// The spec with the user resolved in the container's root, and the working
/// directory created there, as Docker does.
fn finish_spec(spec: &ContainerSpec) -> Result<oci_spec::runtime::Spec, RuntimeError> {
    let root = crate::rootfs::open_root(&spec.rootfs())?;
    let mut oci = spec.oci.clone();
    if let Some(p) = oci.process_mut() {
        let u = crate::rootfs::resolve_user(&root, &spec.user)?;
        let mut user = oci_spec::runtime::User::default();
        user.set_uid(u.uid);
        user.set_gid(u.gid);
        user.set_additional_gids((!u.additional_gids.is_empty()).then_some(u.additional_gids));
        p.set_user(user);
        let cwd = p.cwd().to_string_lossy().into_owned();
        crate::rootfs::mkdir_in(&root, &cwd)?;
    }
    Ok(oci)
}

/// Mounts the root, writes `config.json`, and has the OCI runtime create and start
/// the container (`run --detach`) with our pipes (or a terminal) as its stdio.
/// Returns once the container's process runs.
fn spawn_container(spec: &ContainerSpec) -> Result<Running, RuntimeError> {
    mount_rootfs(spec)?;
    let oci = finish_spec(spec)?;
    let config = spec.state_dir.join("config.json");
    let json = serde_json::to_vec(&oci).map_err(|source| RuntimeError::Json {
        path: config.clone(),
        source,
    })?;
    write_atomic(&config, &json)?;

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
    let tty = spec.tty();
    let (stdin_r, stdin_w) = if spec.open_stdin && !tty {
        let (r, w) = pipe()?;
        (Some(r), Some(w))
    } else {
        (None, None)
    };
    // The runtime resolves relative paths (the console socket) in the bundle, which
    // is its working directory: short socket paths whatever the state dir's length.
    std::env::set_current_dir(&spec.state_dir)
        .map_err(RuntimeError::io("enter bundle", &spec.state_dir))?;
    let console = if tty {
        Some(crate::console::ConsoleSocket::bind(CONSOLE_SOCKET)?)
    } else {
        None
    };
    // A record left by an earlier run of this container (its exit was not handled).
    if spec.runtime.has_state(&spec.id) {
        let _ = spec
            .runtime
            .command(&spec.state_dir.join("delete.log"))
            .args(["delete", "--force", &spec.id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let runtime_log = spec.state_dir.join("runtime.log");
    let _ = std::fs::remove_file(&runtime_log);
    let pid_file = spec.state_dir.join("init.pid");
    let _ = std::fs::remove_file(&pid_file);
    let mut cmd = spec.runtime.command(&runtime_log);
    cmd.arg("run")
        .arg("--detach")
        .arg("--pid-file")
        .arg(&pid_file)
        .arg("--bundle")
        .arg(&spec.state_dir);
    if console.is_some() {
        cmd.arg("--console-socket").arg(CONSOLE_SOCKET);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        drop((out_w, err_w));
    } else {
        cmd.stdin(match stdin_r {
            Some(r) => Stdio::from(r),
            None => Stdio::null(),
        })
        .stdout(Stdio::from(out_w))
        .stderr(Stdio::from(err_w));
    }
    cmd.arg(&spec.id);
    let mut child = cmd.spawn().map_err(|source| RuntimeError::Spawn {
        exe: spec.runtime.path.clone(),
        source,
    })?;
    // Our copies of the container's ends of the pipes go with the command.
    drop(cmd);
    let master = match &console {
        Some(c) => match c.receive(child.id() as i32) {
            Ok(m) => Some(m),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(runtime_failed(spec, &runtime_log, Some(e)));
            }
        },
        None => None,
    };
    drop(console);
    let status = child
        .wait()
        .map_err(RuntimeError::io("wait for", &spec.runtime.path))?;
    if !status.success() {
        return Err(runtime_failed(spec, &runtime_log, None));
    }
    let pid = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .filter(|p| *p > 0)
        .ok_or_else(|| {
            RuntimeError::InvalidSpec(format!("{} wrote no pid file", spec.runtime.name))
        })?;
    let _ = std::env::set_current_dir("/");
    Ok(Running {
        init: Pid::from_raw(pid),
        out_r,
        err_r,
        master,
        stdin_w,
        log,
    })
}

/// The console socket's name in the bundle.
const CONSOLE_SOCKET: &str = "console.sock";

/// The error of a failed `run`: the runtime's own last words.
fn runtime_failed(spec: &ContainerSpec, log: &Path, e: Option<RuntimeError>) -> RuntimeError {
    let message = crate::runc::last_error(log)
        .or_else(|| e.map(|e| chain(&e)))
        .unwrap_or_else(|| "exited without saying why".to_string());
    RuntimeError::Runtime {
        runtime: spec.runtime.name.clone(),
        op: "run",
        id: spec.id.clone(),
        message,
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
