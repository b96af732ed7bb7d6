//! The container spec and the records exchanged with the daemon.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use oci_spec::runtime::Spec;

use crate::RuntimeError;
use crate::runc::OciRuntime;

/// PATH used when the spec's environment has none.
pub(crate) const DEFAULT_PATH: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything the shim needs to start one container.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ContainerSpec {
    /// 64-hex container id (also the OCI runtime's container id).
    pub id: String,
    /// Unpacked image root (read-only overlay lower layer, never modified).
    pub image_rootfs: PathBuf,
    /// Per-container dir (persists across stop/start) holding the overlay
    /// `upper/`, `work/` and `merged/` dirs (created if missing).
    pub layer_dir: PathBuf,
    /// Per-container runtime state dir and OCI bundle (`spec.json`, `config.json`,
    /// `exit.json`, the attach socket); created if missing.
    pub state_dir: PathBuf,
    /// json-file log, appended to.
    pub log_path: PathBuf,
    /// The OCI runtime that runs the container.
    pub runtime: OciRuntime,
    /// The runtime spec; its root is `<layer_dir>/merged`. The shim fills in
    /// `process.user` from [`ContainerSpec::user`].
    pub oci: Spec,
    /// `uid[:gid]` or `name[:group]` to run as, resolved in the container's
    /// `/etc/passwd`; empty = root.
    #[serde(default)]
    pub user: String,
    /// Give the main process a stdin pipe fed from the attach socket (`OpenStdin`);
    /// otherwise its stdin is `/dev/null` (a terminal is always writable).
    #[serde(default)]
    pub open_stdin: bool,
    /// Close the main process's stdin when the attached client closes its input.
    #[serde(default)]
    pub stdin_once: bool,
    /// A client is about to attach: the shim holds output back until it
    /// connects (at most 5 s), so the first bytes reach it.
    #[serde(default)]
    pub wait_attach: bool,
}

/// What [`crate::start`] returns once the container's init exists.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Spawned {
    /// Pid of the long-lived shim (daemon's pid namespace).
    pub shim_pid: i32,
    /// Pid of the container's init (daemon's pid namespace).
    pub init_pid: i32,
    /// Field 22 of `/proc/<init_pid>/stat`, to detect pid reuse.
    pub init_start_time: u64,
    /// Field 22 of `/proc/<shim_pid>/stat`, for [`crate::wait_exit`].
    #[serde(default)]
    pub shim_start_time: u64,
}

/// The exit record written by the shim to `<state_dir>/exit.json`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ExitInfo {
    /// Exit code of the main process, or 128+signal.
    pub exit_code: i32,
    /// RFC3339 UTC time with nanoseconds.
    pub finished_at: String,
    /// The kernel's OOM killer ended it.
    pub oom_killed: bool,
}

impl ContainerSpec {
    /// Whether the main process runs on a terminal.
    pub fn tty(&self) -> bool {
        self.oci
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false)
    }

    /// Where the overlay is mounted: the container's root.
    pub fn rootfs(&self) -> PathBuf {
        self.layer_dir.join("merged")
    }

    /// Checks what the runtime relies on.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        let bad = |m: String| Err(RuntimeError::InvalidSpec(m));
        if self.id.is_empty() || !self.id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return bad(format!("container id {:?} must be non-empty hex", self.id));
        }
        let args = self
            .oci
            .process()
            .as_ref()
            .and_then(|p| p.args().clone())
            .unwrap_or_default();
        if args.first().is_none_or(|a| a.is_empty()) {
            return bad(format!("container {}: empty command", self.id));
        }
        for (name, p) in [
            ("image_rootfs", &self.image_rootfs),
            ("layer_dir", &self.layer_dir),
            ("state_dir", &self.state_dir),
            ("log_path", &self.log_path),
            ("runtime root", &self.runtime.root),
        ] {
            if !p.is_absolute() {
                return bad(format!("{name} {} must be absolute", p.display()));
            }
        }
        // overlayfs options are comma/colon separated.
        for p in [&self.image_rootfs, &self.layer_dir] {
            let s = p.to_string_lossy();
            if s.contains(',') || s.contains(':') {
                return bad(format!("path {s} must not contain ',' or ':'"));
            }
        }
        if self.oci.root().as_ref().map(|r| r.path().clone()) != Some(self.rootfs()) {
            return bad(format!(
                "container {}: the spec's root must be {}",
                self.id,
                self.rootfs().display()
            ));
        }
        Ok(())
    }
}

/// Adds the default PATH when `env` has none.
pub(crate) fn with_default_path(env: &[String]) -> Vec<String> {
    let mut out = env.to_vec();
    if !out.iter().any(|e| e.starts_with("PATH=")) {
        out.push(DEFAULT_PATH.to_string());
    }
    out
}

/// Validates an absolute in-container path without `..` and returns it relative to "/".
pub(crate) fn container_path(p: &str) -> Result<PathBuf, RuntimeError> {
    let path = Path::new(p);
    if !path.is_absolute() {
        return Err(RuntimeError::InvalidSpec(format!(
            "container path {p} must be absolute"
        )));
    }
    let mut rel = PathBuf::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => rel.push(n),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(RuntimeError::InvalidSpec(format!(
                    "container path {p} must not contain '..'"
                )));
            }
        }
    }
    Ok(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_path_added_once() {
        let env = with_default_path(&["A=1".to_string()]);
        assert_eq!(env.len(), 2);
        assert!(env[1].starts_with("PATH="));
        let env = with_default_path(&["PATH=/x".to_string()]);
        assert_eq!(env, vec!["PATH=/x".to_string()]);
    }

    #[test]
    fn container_paths() {
        assert_eq!(
            container_path("/etc/hosts").ok(),
            Some(PathBuf::from("etc/hosts"))
        );
        assert!(container_path("etc/hosts").is_err());
        assert!(container_path("/etc/../../x").is_err());
    }
}
