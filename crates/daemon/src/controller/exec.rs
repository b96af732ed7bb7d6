//! `exec`: extra processes inside a running container.

use std::sync::Arc;

use tokio::sync::watch;

use super::{Controller, new_id};
use crate::error::{CtlError, CtlResult};

/// An exec create request.
#[derive(Debug, Clone, Default)]
pub struct ExecConfig {
    /// Command.
    pub cmd: Vec<String>,
    /// Extra environment.
    pub env: Vec<String>,
    /// Working directory.
    pub working_dir: String,
    /// TTY requested.
    pub tty: bool,
    /// `-u`: user to run as (default: the container's).
    pub user: String,
    /// Send the process's stdout to the client.
    pub attach_stdout: bool,
    /// Send the process's stderr to the client.
    pub attach_stderr: bool,
    /// Copy the client's input to the process's stdin.
    pub attach_stdin: bool,
    /// Initial terminal size `[rows, cols]`.
    pub console_size: Option<[u16; 2]>,
    /// `--privileged`: every capability for this process.
    pub privileged: bool,
}

/// State of one exec session.
#[derive(Debug, Clone)]
pub(crate) struct ExecSession {
    pub container_id: String,
    pub config: ExecConfig,
    pub running: bool,
    pub exit_code: Option<i32>,
    pub pid: i32,
    pub done: watch::Sender<bool>,
}

/// What `GET /exec/{id}/json` shows.
#[derive(Debug, Clone)]
pub struct ExecInfo {
    /// Exec ID.
    pub id: String,
    /// Container ID.
    pub container_id: String,
    /// Running now.
    pub running: bool,
    /// Exit code once done.
    pub exit_code: Option<i32>,
    /// Command.
    pub cmd: Vec<String>,
    /// Host PID while running.
    pub pid: i32,
    /// Runs on a terminal.
    pub tty: bool,
    /// Its stdin comes from the client.
    pub attach_stdin: bool,
    /// Runs with every capability.
    pub privileged: bool,
}

impl Controller {
    /// Registers an exec session in a running container.
    pub async fn exec_create(&self, container: &str, cfg: ExecConfig) -> CtlResult<String> {
        let mut st = self.state.lock().await;
        let c = st.find_container(container)?;
        if !c.is_running() {
            return Err(CtlError::conflict(format!(
                "container {} is not running",
                c.id
            )));
        }
        if cfg.cmd.is_empty() {
            return Err(CtlError::invalid("no exec command specified"));
        }
        let id = new_id();
        let (done, _) = watch::channel(false);
        let cid = c.id.clone();
        st.execs.insert(
            id.clone(),
            ExecSession {
                container_id: cid,
                config: cfg,
                running: false,
                exit_code: None,
                pid: 0,
                done,
            },
        );
        Ok(id)
    }

    /// Starts an exec session; returns the child process (stdout/stderr piped).
    pub async fn exec_start(
        self: &Arc<Self>,
        id: &str,
    ) -> CtlResult<(netloom_runtime::ExecProcess, ExecConfig)> {
        let mut st = self.state.lock().await;
        let (cid, cfg) = {
            let s = st
                .execs
                .get(id)
                .ok_or_else(|| CtlError::not_found(format!("No such exec instance: {id}")))?;
            if s.running || s.exit_code.is_some() {
                return Err(CtlError::conflict(format!("exec {id} has already run")));
            }
            (s.container_id.clone(), s.config.clone())
        };
        let c = st
            .containers
            .get(&cid)
            .filter(|c| c.is_running())
            .ok_or_else(|| CtlError::conflict(format!("container {cid} is not running")))?
            .clone();
        let mut env = c.env.clone();
        env.extend(cfg.env.iter().cloned());
        let wd = if cfg.working_dir.is_empty() {
            c.working_dir.clone()
        } else {
            cfg.working_dir.clone()
        };
        let user = if cfg.user.is_empty() {
            c.user.clone()
        } else {
            cfg.user.clone()
        };
        let opts = netloom_runtime::ExecOptions {
            runtime: self.oci_runtime(&c)?,
            container_id: c.id.clone(),
            init_pid: c.state.pid,
            state_dir: self.paths.run.join(&c.id),
            exec_id: id.to_string(),
            args: cfg.cmd.clone(),
            env,
            working_dir: wd,
            user,
            tty: cfg.tty,
            console_size: cfg.console_size,
            security: self.container_security(&c)?,
            privileged: cfg.privileged,
            stdin: cfg.attach_stdin || cfg.tty,
        };
        let child = netloom_runtime::exec(&opts).map_err(|e| match e {
            netloom_runtime::RuntimeError::InvalidSpec(m) => CtlError::invalid(m),
            e => CtlError::internal(format!(
                "cannot exec in container {}: {}",
                c.name,
                crate::error::chain(&e)
            )),
        })?;
        if let Some(s) = st.execs.get_mut(id) {
            s.running = true;
            s.pid = child.child.id().map(|p| p as i32).unwrap_or(0);
        }
        Ok((child, cfg))
    }

    /// Records the end of an exec session.
    pub async fn exec_finished(&self, id: &str, code: i32) {
        let mut st = self.state.lock().await;
        if let Some(s) = st.execs.get_mut(id) {
            s.running = false;
            s.exit_code = Some(code);
            s.pid = 0;
            let _ = s.done.send(true);
        }
    }

    /// Inspects an exec session.
    pub async fn exec_inspect(&self, id: &str) -> CtlResult<ExecInfo> {
        let st = self.state.lock().await;
        let s = st
            .execs
            .get(id)
            .ok_or_else(|| CtlError::not_found(format!("No such exec instance: {id}")))?;
        Ok(ExecInfo {
            id: id.to_string(),
            container_id: s.container_id.clone(),
            running: s.running,
            exit_code: s.exit_code,
            cmd: s.config.cmd.clone(),
            pid: s.pid,
            tty: s.config.tty,
            attach_stdin: s.config.attach_stdin,
            privileged: s.config.privileged,
        })
    }
}
