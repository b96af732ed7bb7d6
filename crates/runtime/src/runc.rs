//! The OCI runtime binary (runc, crun): how netloom calls it.
//!
//! Every call names the runtime's state directory (`--root`, under netloom's exec
//! root), so containers of this daemon are kept apart from any other runc user's.
//! Errors are read from the runtime's JSON log (`--log`, `--log-format json`), whose
//! last `error` entry is what a user needs to see.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::RuntimeError;

/// An OCI runtime as configured (`runtimes` in daemon.json), with its state dir.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct OciRuntime {
    /// The name containers ask for (`runc`).
    pub name: String,
    /// The binary.
    pub path: PathBuf,
    /// Extra global arguments (`runtimeArgs`).
    #[serde(default)]
    pub args: Vec<String>,
    /// The runtime's state directory (`--root`).
    pub root: PathBuf,
    /// Let the runtime manage cgroups through systemd (`--systemd-cgroup`).
    #[serde(default)]
    pub systemd_cgroup: bool,
    /// A directory of bind mounts the runtime never needs (netloom's sandboxes, one per
    /// container): the calls made from the daemon run in a mount namespace of their own
    /// without it, since the runtime reads `/proc/self/mountinfo` on every call.
    #[serde(default)]
    pub hide_mounts: Option<PathBuf>,
}

/// One line of the runtime's JSON log.
#[derive(Deserialize)]
struct LogLine {
    #[serde(default)]
    level: String,
    #[serde(default)]
    msg: String,
}

/// The last error the runtime logged in `log`, if any.
pub fn last_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<LogLine>(l).ok())
        .find(|l| l.level == "error" || l.level == "fatal")
        .map(|l| l.msg)
}

/// In a forked child: a mount namespace of its own (a slave copy, so nothing made or
/// removed here reaches the daemon's), without the mounts under `dir`. Best effort: on
/// any failure the command runs with the daemon's mounts, only slower.
fn hide_in_child(dir: &std::ffi::CStr) {
    // SAFETY: plain system calls on this process, with valid NUL-terminated strings.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return;
        }
        let root = c"/";
        let slave = libc::MS_REC | libc::MS_SLAVE;
        if libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            slave,
            std::ptr::null(),
        ) != 0
        {
            return;
        }
        for _ in 0..8 {
            if libc::umount2(dir.as_ptr(), libc::MNT_DETACH) != 0 {
                break;
            }
        }
    }
}

impl OciRuntime {
    /// The global arguments of every call: runtime args, `--root`, systemd cgroups.
    pub fn global_args(&self) -> Vec<std::ffi::OsString> {
        let mut a: Vec<std::ffi::OsString> = self.args.iter().map(Into::into).collect();
        a.push("--root".into());
        a.push(self.root.clone().into_os_string());
        if self.systemd_cgroup {
            a.push("--systemd-cgroup".into());
        }
        a
    }

    /// A command for `subcommand`, logging errors as JSON to `log`.
    pub fn command(&self, log: &Path) -> std::process::Command {
        let mut c = std::process::Command::new(&self.path);
        c.args(self.global_args())
            .arg("--log")
            .arg(log)
            .arg("--log-format")
            .arg("json");
        c
    }

    /// Whether the runtime holds state for container `id` (it was created and not
    /// deleted).
    pub fn has_state(&self, id: &str) -> bool {
        self.root.join(id).exists()
    }

    /// The IDs of the containers the runtime holds state for.
    pub fn list(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        rd.flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()
    }

    async fn call(&self, op: &'static str, id: &str, args: &[&str]) -> Result<(), RuntimeError> {
        self.call_with(op, id, args, false).await
    }

    /// Runs the runtime with `args`; with `idle`, at the `SCHED_IDLE` CPU policy, so
    /// that work off the critical path (the deletion of a container that is gone for
    /// good) does not take CPU from the containers being started meanwhile.
    async fn call_with(
        &self,
        op: &'static str,
        id: &str,
        args: &[&str],
        idle: bool,
    ) -> Result<(), RuntimeError> {
        let mut c = tokio::process::Command::new(&self.path);
        if let Some(dir) = self
            .hide_mounts
            .as_ref()
            .and_then(|d| std::ffi::CString::new(d.as_os_str().as_encoded_bytes()).ok())
        {
            // SAFETY: the closure runs in the forked child before exec and only makes
            // async-signal-safe system calls on itself, on a string allocated before
            // the fork.
            unsafe {
                c.pre_exec(move || {
                    hide_in_child(&dir);
                    Ok(())
                });
            }
        }
        if idle {
            // SAFETY: the closure runs in the forked child before exec and only makes
            // one async-signal-safe system call on itself (pid 0), allocating nothing.
            unsafe {
                c.pre_exec(|| {
                    let param = libc::sched_param { sched_priority: 0 };
                    // Best effort: a kernel that refuses it runs the command as usual.
                    libc::sched_setscheduler(0, libc::SCHED_IDLE, &param);
                    Ok(())
                });
            }
        }
        c.args(self.global_args())
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let out = c.output().await.map_err(|source| RuntimeError::Spawn {
            exe: self.path.clone(),
            source,
        })?;
        if out.status.success() {
            return Ok(());
        }
        let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
        // runc's text log lines: time="..." level=error msg="..."
        let msg = msg
            .rsplit_once("msg=")
            .map(|(_, m)| m.trim_matches('"').replace("\\\"", "\""))
            .unwrap_or(msg);
        Err(RuntimeError::Runtime {
            runtime: self.name.clone(),
            op,
            id: id.to_string(),
            message: msg,
        })
    }

    /// `kill <id> <signal>`: signals the container's init. A container that is not
    /// running is [`RuntimeError::NotRunning`].
    pub async fn kill(&self, id: &str, signal: i32) -> Result<(), RuntimeError> {
        let sig = signal.to_string();
        match self.call("kill", id, &["kill", id, &sig]).await {
            Err(RuntimeError::Runtime { message, .. })
                if message.contains("not running")
                    || message.contains("does not exist")
                    || message.contains("process already finished") =>
            {
                Err(RuntimeError::NotRunning(id.to_string()))
            }
            r => r,
        }
    }

    /// `delete [--force] <id>`: removes the container's state and cgroup (with
    /// `force`, killing it first). A container the runtime does not know is fine.
    pub async fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        self.delete_with(id, force, false).await
    }

    /// [`OciRuntime::delete`] at idle CPU priority (`SCHED_IDLE`): for the cleanup of a
    /// container that is gone for good, which no client waits for.
    pub async fn delete_idle(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        self.delete_with(id, force, true).await
    }

    async fn delete_with(&self, id: &str, force: bool, idle: bool) -> Result<(), RuntimeError> {
        let args: Vec<&str> = if force {
            vec!["delete", "--force", id]
        } else {
            vec!["delete", id]
        };
        match self.call_with("delete", id, &args, idle).await {
            Err(RuntimeError::Runtime { message, .. }) if message.contains("does not exist") => {
                Ok(())
            }
            r => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_and_log() {
        let r = OciRuntime {
            name: "runc".into(),
            path: "/usr/sbin/runc".into(),
            args: vec!["--debug".into()],
            root: "/run/x/runc".into(),
            systemd_cgroup: true,
            hide_mounts: None,
        };
        let a: Vec<String> = r
            .global_args()
            .into_iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        assert_eq!(a, ["--debug", "--root", "/run/x/runc", "--systemd-cgroup"]);
        let Ok(dir) = tempfile::tempdir() else { return };
        let log = dir.path().join("l.json");
        let _ = std::fs::write(
            &log,
            "{\"level\":\"warning\",\"msg\":\"w\"}\n{\"level\":\"error\",\"msg\":\"exec: \\\"x\\\": not found\"}\n{\"level\":\"info\",\"msg\":\"i\"}\n",
        );
        assert_eq!(last_error(&log).as_deref(), Some("exec: \"x\": not found"));
        assert_eq!(last_error(&dir.path().join("none")), None);
    }
}
