//! netloom runtime: containers run by an OCI runtime (runc by default), supervised
//! by netloom's shim.
//!
//! A container is an OCI bundle — `config.json` built with Docker's security
//! defaults ([`oci::build_spec`]), the image's root filesystem under a per-container
//! overlay — run by the OCI runtime binary, inside the network namespace netloom's
//! controller made for it (passed by path). The moving parts:
//!
//! * [`start`] (daemon side) writes `spec.json` and runs
//!   `self_exe __netloom-shim <spec.json>`. That process forks the long-lived
//!   **shim** and exits at once, so the shim is not the daemon's child and
//!   survives a daemon crash. The shim reports `{"ok":Spawned}` or
//!   `{"err":"..."}` on its stdout, then detaches.
//! * The **shim** (what conmon is to Podman) mounts the overlay root in a mount
//!   namespace of its own, writes `config.json`, and runs `runc run --detach` with
//!   its pipes (or, for `-t`, a console socket that receives the terminal) as the
//!   container's stdio. As a child subreaper it then waits for the container's
//!   init, copies the output into the json-file log and to attached clients
//!   ([`attach`]), and writes `exit.json`.
//! * [`exec::exec`] runs `runc exec` with a `process.json` carrying the same
//!   confinement; with a terminal through the `__netloom-exec` helper.
//! * [`runc::OciRuntime`] signals (`kill`) and removes (`delete`) containers.
//!
//! The binary must call [`maybe_run_internal`] first thing in `main()`.
//!
//! This crate depends on no other netloom crate.

#![warn(missing_docs)]

pub mod attach;
mod console;
mod error;
pub mod exec;
pub mod image;
pub mod logs;
pub mod oci;
pub mod options;
mod proc;
pub mod registry;
pub mod rootfs;
pub mod runc;
pub mod seccomp;
mod shim;
mod spec;
pub mod stats;
mod util;
pub mod volume_mount;
mod whiteout;

pub use error::RuntimeError;
pub use exec::{ExecOptions, ExecProcess, exec, resize_exec};
pub use oci_spec;
pub use proc::{is_alive, kill_init, kill_process, proc_start_time};
pub use shim::{clear_exit, read_exit, start, wait_exit};
pub use spec::{ContainerSpec, ExitInfo, Spawned};

use std::path::PathBuf;
use std::sync::OnceLock;

/// argv\[1\] of the hidden shim mode.
pub const SHIM_ARG: &str = "__netloom-shim";
/// argv\[1\] of the hidden terminal-exec helper mode.
pub const EXEC_ARG: &str = "__netloom-exec";

static SELF_EXE: OnceLock<PathBuf> = OnceLock::new();
static CHILD_NOFILE: OnceLock<u64> = OnceLock::new();

/// Sets the soft `RLIMIT_NOFILE` that the containers [`start`] and the commands
/// [`exec`] runs get (through their OCI spec), for a daemon
/// that raised its own soft limit: they keep the limit the daemon was started with.
/// Returns false if it was already set.
pub fn set_child_nofile(soft: u64) -> bool {
    CHILD_NOFILE.set(soft).is_ok()
}

/// The `nofile` rlimit a container gets without `--ulimit nofile=…`: the soft limit of
/// [`set_child_nofile`] and the daemon's hard limit. Written into the spec because the
/// OCI runtime would otherwise hand on its own: Go programs such as runc raise their
/// soft limit to the hard one at start (<https://github.com/golang/go/issues/46279>),
/// and runc's `exec` inherits the container's rlimits.
pub(crate) fn child_nofile_rlimit() -> Option<oci::Rlimit> {
    let soft = *CHILD_NOFILE.get()?;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the valid, exclusively borrowed `lim`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    Some(oci::Rlimit {
        name: "nofile".into(),
        soft: soft.min(lim.rlim_max),
        hard: lim.rlim_max,
    })
}

/// Overrides the executable that [`start`] and [`exec()`] re-run in their
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
/// `__netloom-exec`) it runs that mode and returns `Some(exit_code)`, which
/// `main()` should pass to [`std::process::exit`]; otherwise it returns `None`
/// and does nothing.
pub fn maybe_run_internal() -> Option<i32> {
    let mut args = std::env::args_os().skip(1);
    let mode = args.next()?;
    if mode == SHIM_ARG {
        let spec = args.next();
        Some(shim::run_shim(spec.map(PathBuf::from)))
    } else if mode == EXEC_ARG {
        let json = args.next();
        Some(exec::run_exec_helper(json))
    } else {
        None
    }
}
