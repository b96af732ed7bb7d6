//! netloom runtime: the minimal real container runtime behind `netloomd`.
//!
//! A container is a process tree in its own PID, mount, UTS and IPC
//! namespaces (plus, optionally, a pre-made network namespace), rooted in an
//! overlay of an unpacked image. The moving parts:
//!
//! * [`start`] (daemon side) writes `spec.json` and runs
//!   `self_exe __netloom-shim <spec.json>`. That process forks the long-lived
//!   **shim** and exits at once, so the shim is not the daemon's child and
//!   survives a daemon crash. The shim reports `{"ok":Spawned}` or
//!   `{"err":"..."}` on its stdout, then detaches.
//! * The **shim** forks the container **init** (PID 1 of the new PID
//!   namespace), copies the container's stdout/stderr into the json-file log,
//!   waits for init and writes `exit.json` atomically.
//! * **init** sets up the mount namespace (overlay root, `/proc`, `/dev`,
//!   `/sys`, bind files), pivots into the root, forks the main process,
//!   forwards signals to it, reaps zombies and exits with its status.
//! * [`exec`] runs `self_exe __netloom-nsexec <json>`, which joins the
//!   namespaces of a running container and runs a command there.
//!
//! The binary must call [`maybe_run_internal`] first thing in `main()`.
//!
//! This crate depends on no other netloom crate; it only needs the kernel.

#![warn(missing_docs)]

pub mod attach;
mod error;
pub mod image;
mod init;
pub mod logs;
mod nsexec;
mod proc;
mod shim;
mod spec;
mod util;

pub use error::RuntimeError;
pub use nsexec::{ExecOptions, exec, exec_opts, exec_with, resize_exec};
pub use proc::{is_alive, kill, proc_start_time};
pub use shim::{clear_exit, read_exit, start, wait_exit};
pub use spec::{ContainerSpec, ExitInfo, Spawned};

use std::path::PathBuf;
use std::sync::OnceLock;

/// argv\[1\] of the hidden shim mode.
pub const SHIM_ARG: &str = "__netloom-shim";
/// argv\[1\] of the hidden exec-in-container mode.
pub const NSEXEC_ARG: &str = "__netloom-nsexec";

static SELF_EXE: OnceLock<PathBuf> = OnceLock::new();
static CHILD_NOFILE: OnceLock<u64> = OnceLock::new();

/// Environment variable that carries [`set_child_nofile`]'s limit to the helpers.
const NOFILE_ENV: &str = "NETLOOM_CHILD_NOFILE";

/// Sets the soft `RLIMIT_NOFILE` that the processes [`start`] and [`exec`] run (shims,
/// containers, exec'd commands) get, for a daemon that raised its own soft limit: they
/// keep the limit the daemon was started with. Returns false if it was already set.
pub fn set_child_nofile(soft: u64) -> bool {
    CHILD_NOFILE.set(soft).is_ok()
}

/// The environment a helper process is started with for [`set_child_nofile`].
pub(crate) fn child_nofile_env() -> Option<(&'static str, String)> {
    CHILD_NOFILE.get().map(|n| (NOFILE_ENV, n.to_string()))
}

/// In a helper (shim, exec): lowers the soft `RLIMIT_NOFILE` to the one the daemon
/// was started with, if it said so; the hard limit stays.
pub(crate) fn apply_child_nofile() {
    let Some(soft) = std::env::var(NOFILE_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return;
    };
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the valid, exclusively borrowed `lim`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 || soft >= lim.rlim_cur {
        return;
    }
    lim.rlim_cur = soft;
    // SAFETY: setrlimit reads one valid rlimit; lowering the soft limit always works.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
}

/// Overrides the executable that [`start`] and [`exec`] re-run in their
/// hidden modes (default: [`std::env::current_exe`]). Meant for tests and
/// embedders whose own binary cannot host the internal modes; the executable
/// must call [`maybe_run_internal`] first thing in `main()`.
/// Returns false if it was already set.
pub fn set_self_exe(path: PathBuf) -> bool {
    SELF_EXE.set(path).is_ok()
}

/// The executable re-run for the internal modes.
pub(crate) fn self_exe() -> Result<PathBuf, RuntimeError> {
    if let Some(p) = SELF_EXE.get() {
        return Ok(p.clone());
    }
    std::env::current_exe().map_err(RuntimeError::SelfExe)
}

/// Must be the FIRST thing `main()` of the `netloomd` binary calls (before
/// tokio, before any thread is started).
///
/// If argv\[1\] is one of the hidden internal modes (`__netloom-shim`,
/// `__netloom-nsexec`) it runs that mode and returns `Some(exit_code)`, which
/// `main()` should pass to [`std::process::exit`]; otherwise it returns `None`
/// and does nothing.
pub fn maybe_run_internal() -> Option<i32> {
    let mut args = std::env::args_os().skip(1);
    let mode = args.next()?;
    if mode == SHIM_ARG {
        let spec = args.next();
        Some(shim::run_shim(spec.map(PathBuf::from)))
    } else if mode == NSEXEC_ARG {
        let json = args.next();
        Some(nsexec::run_nsexec(json))
    } else {
        None
    }
}
