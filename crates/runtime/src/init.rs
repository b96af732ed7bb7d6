//! The container's init: PID 1 of the container's PID namespace.
//!
//! It builds the mount namespace, pivots into the overlay root, forks the
//! main process, forwards signals to it, reaps every child and exits with the
//! main process's status (code, or 128+signal).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, symlink};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};

use crate::error::chain;
use crate::spec::container_path;
use crate::util::{eprint_raw, exec_command, mkdir_p, reset_signals, status_code, write_all};
use crate::{ContainerSpec, RuntimeError};

/// Host devices bind-mounted into the container's `/dev`.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];
/// Signals init forwards to the main process.
const FORWARDED: [Signal; 7] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];
/// Where the old root is parked during setup (inside the new root).
const OLD_ROOT: &str = ".netloom-oldroot";

/// Descriptors handed from the shim to init.
pub(crate) struct InitFds {
    /// Write end of the stdout pipe.
    pub out_w: OwnedFd,
    /// Write end of the stderr pipe.
    pub err_w: OwnedFd,
    /// Setup result channel: 'K', or 'E' + message.
    pub sync_w: OwnedFd,
    /// /dev/null for stdin.
    pub devnull: OwnedFd,
    /// Read end of the main process's stdin pipe (`OpenStdin` without a terminal).
    pub stdin_r: Option<OwnedFd>,
}

fn exit_now(code: i32) -> ! {
    // SAFETY: _exit ends the process immediately without running atexit
    // handlers or flushing state duplicated from the parent by fork.
    unsafe { libc::_exit(code) }
}

/// Runs init in the freshly forked child; never returns.
pub(crate) fn run_init(spec: &ContainerSpec, fds: InitFds) -> ! {
    let InitFds {
        out_w,
        err_w,
        sync_w,
        devnull,
        stdin_r,
    } = fds;
    // stdio: stdin /dev/null, stdout/stderr the log pipes (init's own errors
    // end up in the container log too).
    let _ = nix::unistd::dup2_stdin(&devnull);
    let _ = nix::unistd::dup2_stdout(&out_w);
    let _ = nix::unistd::dup2_stderr(&err_w);
    drop((out_w, err_w, devnull));
    // If the shim dies, take the container down with it.
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    let _ = nix::sys::prctl::set_name(c"netloom-init");

    let fail = |msg: String| -> ! {
        let mut m = b"E".to_vec();
        m.extend_from_slice(msg.as_bytes());
        let _ = write_all(sync_w.as_fd(), &m);
        exit_now(1)
    };
    if let Err(e) = setup(spec) {
        fail(chain(&e));
    }

    // Block everything so signals queue for sigwait; pid 1 would otherwise
    // drop signals it has no handler for.
    let all = SigSet::all();
    if let Err(e) = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&all), None) {
        fail(format!("block signals: {e}"));
    }
    let env = spec.full_env();
    // With a terminal: a pair from the container's own devpts (mounted by setup).
    let pty = if spec.tty {
        let [rows, cols] = spec.console_size.unwrap_or([24, 80]);
        let ws = nix::pty::Winsize {
            ws_row: if rows == 0 { 24 } else { rows },
            ws_col: if cols == 0 { 80 } else { cols },
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        match nix::pty::openpty(Some(&ws), None) {
            Ok(p) => Some(p),
            Err(e) => fail(format!("allocate a terminal: {e}")),
        }
    } else {
        None
    };
    // SAFETY: init is single-threaded; the child only execs or _exits.
    let main = match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => {
            if let Some(p) = &pty {
                let _ = nix::unistd::setsid();
                let slave = p.slave.as_raw_fd();
                // SAFETY: TIOCSCTTY on a terminal fd we own: it becomes our controlling tty.
                unsafe { libc::ioctl(slave, libc::TIOCSCTTY, 0) };
                let _ = nix::unistd::dup2_stdin(&p.slave);
                let _ = nix::unistd::dup2_stdout(&p.slave);
                let _ = nix::unistd::dup2_stderr(&p.slave);
            } else if let Some(r) = &stdin_r {
                let _ = nix::unistd::dup2_stdin(r);
            }
            reset_signals();
            crate::util::close_fds_except(&[]);
            let (msg, code) = match crate::util::apply_user(&spec.user) {
                Ok(()) => exec_command(&spec.args, &env),
                Err(e) => e,
            };
            eprint_raw(&format!("{msg}\n"));
            exit_now(code)
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => fail(format!("fork main process: {e}")),
    };
    drop(stdin_r);
    match pty {
        Some(p) => {
            drop(p.slave);
            // Hand the master to the shim with the ready message.
            let fds = [p.master.as_raw_fd()];
            let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
            let iov = [std::io::IoSlice::new(b"K")];
            let _ = nix::sys::socket::sendmsg::<()>(
                sync_w.as_raw_fd(),
                &iov,
                &cmsg,
                nix::sys::socket::MsgFlags::empty(),
                None,
            );
        }
        None => {
            let _ = write_all(sync_w.as_fd(), b"K");
        }
    }
    drop(sync_w);
    exit_now(supervise(main))
}

/// Forwards signals to `main` and reaps children until `main` exits.
fn supervise(main: Pid) -> i32 {
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    for s in FORWARDED {
        set.add(s);
    }
    loop {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => break,
                Ok(st) => {
                    if st.pid() == Some(main)
                        && let Some(code) = status_code(st)
                    {
                        return code;
                    }
                }
                Err(nix::Error::EINTR) => {}
                // ECHILD: nothing left (cannot happen while main lives).
                Err(_) => return 255,
            }
        }
        match set.wait() {
            Ok(Signal::SIGCHLD) | Err(_) => {}
            Ok(sig) => {
                let _ = nix::sys::signal::kill(main, sig);
            }
        }
    }
}

fn sys(op: &'static str, what: impl AsRef<Path>) -> impl FnOnce(nix::Error) -> RuntimeError {
    let what = what.as_ref().display().to_string();
    RuntimeError::sys(op, what)
}

/// Opens a host path as an O_PATH fd, to bind-mount it after pivot_root via
/// `/proc/self/fd/N` (host symlinks resolve on the host, not in the container).
fn open_path(p: &Path) -> Result<OwnedFd, RuntimeError> {
    nix::fcntl::open(p, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(sys("open bind source", p))
}

fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Builds the container's mount namespace and root, then sets hostname and cwd.
fn setup(spec: &ContainerSpec) -> Result<(), RuntimeError> {
    nix::sched::unshare(CloneFlags::CLONE_NEWNS).map_err(sys("unshare mount namespace", "/"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(sys("make mounts private", "/"))?;

    // Open every host-side source now, while host paths still resolve.
    let mut devices = Vec::new();
    for d in DEVICES {
        let p = Path::new("/dev").join(d);
        match open_path(&p) {
            Ok(fd) => devices.push((d, fd)),
            Err(e) => eprint_raw(&format!(
                "netloom-init: skipping {}: {}\n",
                p.display(),
                chain(&e)
            )),
        }
    }
    let mut binds = Vec::new();
    for (host, target) in &spec.bind_files {
        binds.push((open_path(host)?, container_path(target)?));
    }

    let upper = spec.layer_dir.join("upper");
    let work = spec.layer_dir.join("work");
    let merged = spec.layer_dir.join("merged");
    for d in [&upper, &work, &merged] {
        mkdir_p(d)?;
    }
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
    .map_err(sys("mount overlay", &merged))?;

    // pivot_root into merged, old root parked at /.netloom-oldroot.
    let put_old = merged.join(OLD_ROOT);
    match std::fs::symlink_metadata(&put_old) {
        Ok(md) if md.is_dir() => {}
        Ok(_) => {
            return Err(RuntimeError::InvalidSpec(format!(
                "{} exists and is not a directory",
                put_old.display()
            )));
        }
        Err(_) => {
            std::fs::create_dir(&put_old).map_err(RuntimeError::io("create directory", &put_old))?
        }
    }
    nix::unistd::pivot_root(&merged, &put_old).map_err(sys("pivot_root", &merged))?;
    nix::unistd::chdir("/").map_err(sys("chdir", "/"))?;
    let old_root = Path::new("/").join(OLD_ROOT);

    mount_basics(&devices)?;
    for (fd, rel) in &binds {
        bind_file(fd, &Path::new("/").join(rel))?;
    }
    drop(devices);
    drop(binds);

    umount2(&old_root, MntFlags::MNT_DETACH).map_err(sys("detach old root", &old_root))?;
    std::fs::remove_dir(&old_root).map_err(RuntimeError::io("remove", &old_root))?;

    nix::unistd::sethostname(&spec.hostname).map_err(sys("sethostname", &spec.hostname))?;
    set_domainname(&spec.domainname)?;

    let wd = if spec.working_dir.is_empty() {
        PathBuf::from("/")
    } else {
        Path::new("/").join(container_path(&spec.working_dir)?)
    };
    mkdir_p(&wd)?;
    nix::unistd::chdir(&wd).map_err(sys("chdir", &wd))?;
    Ok(())
}

fn set_domainname(name: &str) -> Result<(), RuntimeError> {
    // SAFETY: the pointer/length pair describes `name`'s bytes, which live
    // across the call; the kernel copies them.
    let r = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    if r != 0 {
        return Err(RuntimeError::sys("setdomainname", name)(nix::Error::last()));
    }
    Ok(())
}

/// Mounts /proc, /dev (+ devices, pts, shm, symlinks) and /sys inside the new root.
fn mount_basics(devices: &[(&str, OwnedFd)]) -> Result<(), RuntimeError> {
    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mkdir_p(Path::new("/proc"))?;
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        nosuid_nodev_noexec,
        None::<&str>,
    )
    .map_err(sys("mount proc", "/proc"))?;

    mkdir_p(Path::new("/dev"))?;
    mount(
        Some("tmpfs"),
        "/dev",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )
    .map_err(sys("mount tmpfs", "/dev"))?;
    for (name, fd) in devices {
        let target = Path::new("/dev").join(name);
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o666)
            .open(&target)
            .map_err(RuntimeError::io("create", &target))?;
        mount(
            Some(&fd_path(fd)),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(sys("bind mount device", &target))?;
    }
    mkdir_p(Path::new("/dev/pts"))?;
    mount(
        Some("devpts"),
        "/dev/pts",
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )
    .map_err(sys("mount devpts", "/dev/pts"))?;
    mkdir_p(Path::new("/dev/shm"))?;
    mount(
        Some("shm"),
        "/dev/shm",
        Some("tmpfs"),
        nosuid_nodev_noexec,
        Some("mode=1777,size=65536k"),
    )
    .map_err(sys("mount tmpfs", "/dev/shm"))?;
    for (link, target) in [
        ("/dev/ptmx", "pts/ptmx"),
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        symlink(target, link).map_err(RuntimeError::io("create symlink", link))?;
    }

    mkdir_p(Path::new("/sys"))?;
    mount(
        Some("sysfs"),
        "/sys",
        Some("sysfs"),
        nosuid_nodev_noexec | MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .map_err(sys("mount sysfs", "/sys"))?;
    Ok(())
}

/// Bind-mounts the host file behind `fd` onto `target` (inside the new root),
/// creating the target file and its parents if missing.
fn bind_file(fd: &OwnedFd, target: &Path) -> Result<(), RuntimeError> {
    if let Some(parent) = target.parent() {
        mkdir_p(parent)?;
    }
    match std::fs::symlink_metadata(target) {
        Ok(md) if md.file_type().is_symlink() => {
            // e.g. an image's /etc/resolv.conf -> ../run/...: replace it.
            std::fs::remove_file(target).map_err(RuntimeError::io("remove", target))?;
        }
        _ => {}
    }
    if std::fs::symlink_metadata(target).is_err() {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(target)
            .map_err(RuntimeError::io("create", target))?;
    }
    mount(
        Some(&fd_path(fd)),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(sys("bind mount", target))
}
