//! Restart policies, as Docker's restart manager applies them.
//!
//! When a container's process exits ([`Controller::after_exit`], right after the exit
//! was handled), its policy decides: `always` restarts it, `unless-stopped` too unless
//! a user stopped it, `on-failure[:N]` when it exited non-zero (at most N times). The
//! container is then `restarting` and starts again after a back-off delay: 100 ms,
//! doubled at each restart up to one minute, and back to 100 ms once a run lasted 10 s.
//! `RestartCount` counts those restarts until a user starts it again.
//!
//! A user's `stop` or `kill` cancels the policy for the current run (Docker's
//! `ExitOnNext`) and records the container as manually stopped: an `always` container
//! then stays stopped until it is started again or the daemon restarts, an
//! `unless-stopped` one even across daemon restarts ([`Controller::resume_supervision`]).
//! The policy, the count and that mark are part of the container's record, so they
//! survive a daemon restart; the back-off delay does not (as in Docker).
//!
//! The user-facing operations (`start`, `stop`, `kill`, `restart`, `rm`) go through
//! the `*_by_user` functions here, which apply that and the container's `StopSignal`
//! and `StopTimeout`, then call the lifecycle operations themselves.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use netloom_model::{Container, ContainerStatus, short_id};
use tracing::{info, warn};

use super::containers::StartOutcome;
use super::{Controller, keys, put};
use crate::error::{CtlError, CtlResult};

/// The first back-off delay.
const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The longest back-off delay.
const MAX_DELAY: Duration = Duration::from_secs(60);
/// A run at least this long resets the back-off delay.
const RESET_AFTER: Duration = Duration::from_secs(10);
/// How long a user's operation waits for a restart in progress to finish.
const SETTLE_WAIT: Duration = Duration::from_secs(60);

/// The in-memory part of every container's restart policy (Docker's restart managers):
/// back-off delays, cancellations and the pending restarts.
#[derive(Default)]
pub(crate) struct Supervisor {
    managers: std::sync::Mutex<HashMap<String, Manager>>,
}

#[derive(Default)]
struct Manager {
    /// The last back-off delay (zero: none yet).
    delay: Duration,
    /// A user stopped or killed the container: no restart until a user starts it.
    canceled: bool,
    /// Bumped to cancel a pending restart.
    generation: u64,
    /// Wakes a pending restart up (to see it was canceled).
    wake: Arc<tokio::sync::Notify>,
}

impl Supervisor {
    fn with<T>(&self, id: &str, f: impl FnOnce(&mut Manager) -> T) -> T {
        let mut m = self
            .managers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(m.entry(id.to_string()).or_default())
    }

    /// Forgets a removed container.
    pub(crate) fn forget(&self, id: &str) {
        self.managers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id);
    }

    /// Cancels the policy for the current run and any pending restart.
    fn cancel(&self, id: &str) {
        self.with(id, |m| {
            m.canceled = true;
            m.generation += 1;
            m.wake.notify_one();
        });
    }

    /// A start by a user: the policy applies again, from the first delay.
    fn reset(&self, id: &str) {
        self.with(id, |m| {
            m.canceled = false;
            m.delay = Duration::ZERO;
            m.generation += 1;
            m.wake.notify_one();
        });
    }
}

/// Whether `policy` restarts a container that exited with `code` after `restarts`
/// restarts; `manually_stopped`: a user stopped it (Docker's `ShouldRestart`).
pub(crate) fn policy_restarts(c: &Container, code: i32) -> bool {
    let p = &c.lifecycle.restart_policy;
    match p.name.as_str() {
        "always" => true,
        "unless-stopped" => !c.supervision.manually_stopped,
        "on-failure" => {
            code != 0
                && (p.maximum_retry_count <= 0
                    || i64::from(c.supervision.restart_count) < p.maximum_retry_count)
        }
        _ => false,
    }
}

/// Parses a signal as Docker does: a number, or a name with or without `SIG`, in any
/// case (`15`, `TERM`, `sigterm`, `SIGRTMIN+3`).
pub(crate) fn parse_signal(s: &str) -> CtlResult<i32> {
    let bad = || CtlError::invalid(format!("Invalid signal: {s}"));
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=64).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let up = s.trim().to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if let Some(rest) = name.strip_prefix("RTMIN") {
        let off = match rest.strip_prefix('+') {
            Some(n) => n.parse::<i32>().map_err(|_| bad())?,
            None if rest.is_empty() => 0,
            None => return Err(bad()),
        };
        let n = libc::SIGRTMIN() + off;
        return if n <= libc::SIGRTMAX() {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    name.parse::<nix::sys::signal::Signal>()
        .or_else(|_| format!("SIG{name}").parse::<nix::sys::signal::Signal>())
        .map(|sig| sig as i32)
        .map_err(|_| bad())
}

/// How long a run lasted, from the record's start and finish times.
fn run_time(c: &Container) -> Duration {
    let t = |s: &str| humantime::parse_rfc3339_weak(s).ok();
    match (t(&c.state.started_at), t(&c.state.finished_at)) {
        (Some(a), Some(b)) => b.duration_since(a).unwrap_or_default(),
        _ => Duration::ZERO,
    }
}

/// Checks the lifecycle settings of a container being created (Docker's messages).
pub(crate) fn check_create(c: &Container) -> CtlResult<()> {
    let p = &c.lifecycle.restart_policy;
    match p.name.as_str() {
        // As Docker: clients before Docker 25 send an empty name (`no`) with any count.
        "" => {}
        "no" | "always" | "unless-stopped" => {
            if p.maximum_retry_count != 0 {
                let mut m = "invalid restart policy: maximum retry count can only be used with 'on-failure'".to_string();
                if p.maximum_retry_count < 0 {
                    m.push_str(" and cannot be negative");
                }
                return Err(CtlError::invalid(m));
            }
        }
        "on-failure" => {
            if p.maximum_retry_count < 0 {
                return Err(CtlError::invalid(
                    "invalid restart policy: maximum retry count cannot be negative",
                ));
            }
        }
        other => {
            return Err(CtlError::invalid(format!(
                "invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
            )));
        }
    }
    if c.auto_remove && !p.is_none() {
        return Err(CtlError::invalid(
            "can't create 'AutoRemove' container with restart policy: use either --rm or --restart",
        ));
    }
    super::health::check_config(c.lifecycle.healthcheck.as_ref())?;
    if c.lifecycle.annotations.contains_key("") {
        return Err(CtlError::invalid(
            "invalid Annotations: the empty string is not permitted as an annotation key",
        ));
    }
    if !c.lifecycle.stop_signal.is_empty() {
        parse_signal(&c.lifecycle.stop_signal)?;
    }
    Ok(())
}

impl Controller {
    /// Applies the restart policy once the exit of container `id` was handled (see
    /// the module doc). Called by the container's exit monitor.
    pub(crate) async fn after_exit(self: &Arc<Self>, id: &str) {
        let _ctr_lock = self.container_lock(id).await;
        let mut st = self.state.lock().await;
        let Some(mut c) = st.containers.get(id).cloned() else {
            drop(st);
            drop(_ctr_lock);
            self.forget_container_lock(id);
            self.supervisor.forget(id);
            return;
        };
        // Started again (or being removed) meanwhile: nothing to decide.
        if c.state.status != ContainerStatus::Exited {
            return;
        }
        let code = c.state.exit_code;
        let ran = run_time(&c);
        let delay = self.supervisor.with(id, |m| {
            if m.canceled || !policy_restarts(&c, code) {
                return None;
            }
            if ran >= RESET_AFTER {
                m.delay = Duration::ZERO;
            }
            m.delay = if m.delay.is_zero() {
                FIRST_DELAY
            } else {
                (m.delay * 2).min(MAX_DELAY)
            };
            Some((m.delay, m.generation))
        });
        let Some((delay, generation)) = delay else {
            return;
        };
        c.supervision.restart_count += 1;
        c.state.status = ContainerStatus::Restarting;
        match put(format!("{}{}", keys::CONTAINER, id), &c) {
            Ok(op) => {
                if let Err(e) = self.commit(vec![op]).await {
                    warn!(container = %c.name, error = %e, "cannot record the restart");
                }
            }
            Err(e) => warn!(container = %c.name, error = %e, "cannot record the restart"),
        }
        info!(container = %c.name, exit_code = code, restart_count = c.supervision.restart_count, delay_ms = delay.as_millis() as u64, "restarting container (restart policy)");
        st.containers.insert(id.to_string(), c);
        self.schedule_restart(id, delay, generation);
    }

    /// Starts container `id` again after `delay`, unless the restart is canceled first.
    fn schedule_restart(self: &Arc<Self>, id: &str, delay: Duration, generation: u64) {
        let ctl = Arc::clone(self);
        let id = id.to_string();
        let wake = self.supervisor.with(&id, |m| Arc::clone(&m.wake));
        tokio::spawn(async move {
            let current =
                |ctl: &Controller| ctl.supervisor.with(&id, |m| m.generation) == generation;
            let deadline = tokio::time::Instant::now() + delay;
            while current(&ctl) && tokio::time::Instant::now() < deadline {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => {}
                    _ = wake.notified() => {}
                }
            }
            if !current(&ctl) {
                ctl.end_restart(&id, None).await;
                return;
            }
            match ctl.start_container(&id).await {
                Ok(_) => {}
                // Removed meanwhile.
                Err(e) if e.kind == netloom_model::ErrorKind::NotFound => {}
                Err(e) => {
                    warn!(container = %short_id(&id), error = %e.message, "restart policy: the container could not start again");
                    ctl.end_restart(&id, Some(e.message)).await;
                }
            }
        });
    }

    /// A container still `restarting` becomes `exited` (its restart was canceled, or
    /// could not start: `error`).
    async fn end_restart(&self, id: &str, error: Option<String>) {
        let _ctr_lock = self.container_lock(id).await;
        let mut st = self.state.lock().await;
        let Some(mut c) = st.containers.get(id).cloned() else {
            return;
        };
        if c.state.status != ContainerStatus::Restarting {
            return;
        }
        c.state.status = ContainerStatus::Exited;
        if let Some(e) = error {
            c.state.error = e;
        }
        if let Ok(op) = put(format!("{}{}", keys::CONTAINER, id), &c)
            && let Err(e) = self.commit(vec![op]).await
        {
            warn!(container = %c.name, error = %e, "cannot record the end of a restart");
        }
        st.containers.insert(id.to_string(), c);
    }

    /// At daemon start (after reconciliation): starts the containers whose policy
    /// restarts them — exited while the daemon was down, left `restarting`, or (for
    /// `always`) stopped by a user — as Docker's daemon does when it restores them.
    pub(crate) fn resume_supervision(self: &Arc<Self>) {
        let ctl = Arc::clone(self);
        tokio::spawn(async move {
            let candidates: Vec<Container> = {
                let st = ctl.state.lock().await;
                st.containers
                    .values()
                    .filter(|c| {
                        matches!(
                            c.state.status,
                            ContainerStatus::Exited | ContainerStatus::Restarting
                        ) && !c.state.started_at.is_empty()
                    })
                    .cloned()
                    .collect()
            };
            for c in candidates {
                if !policy_restarts(&c, c.state.exit_code) {
                    if c.state.status == ContainerStatus::Restarting {
                        ctl.end_restart(&c.id, None).await;
                    }
                    continue;
                }
                info!(container = %c.name, policy = %c.lifecycle.restart_policy.display_name(), "starting container after the daemon restart (restart policy)");
                if let Err(e) = ctl.start_by_user(&c.id).await {
                    warn!(container = %c.name, error = %e.message, "restart policy: cannot start the container after the daemon restart");
                    ctl.end_restart(&c.id, Some(e.message)).await;
                }
            }
        });
    }

    /// Clears what the policy remembers of earlier runs (a start by a user).
    async fn reset_supervision(&self, id: &str) -> CtlResult<()> {
        self.supervisor.reset(id);
        let _ctr_lock = self.container_lock(id).await;
        let mut st = self.state.lock().await;
        let Some(c) = st.containers.get_mut(id) else {
            return Ok(());
        };
        if c.supervision.restart_count == 0 && !c.supervision.manually_stopped {
            return Ok(());
        }
        c.supervision.restart_count = 0;
        c.supervision.manually_stopped = false;
        let op = put(format!("{}{}", keys::CONTAINER, id), &*c)?;
        self.commit(vec![op]).await
    }

    /// Records a stop or kill by a user: the policy does not restart the current run;
    /// `manually` also marks it for `unless-stopped`.
    async fn stopped_by_user(&self, id: &str, cancel: bool) -> CtlResult<()> {
        if cancel {
            self.supervisor.cancel(id);
        }
        let mut st = self.state.lock().await;
        let Some(c) = st.containers.get_mut(id) else {
            return Ok(());
        };
        if c.supervision.manually_stopped {
            return Ok(());
        }
        c.supervision.manually_stopped = true;
        let op = put(format!("{}{}", keys::CONTAINER, id), &*c)?;
        self.commit(vec![op]).await
    }

    /// The container's ID and record.
    async fn find(&self, key: &str) -> CtlResult<Container> {
        let st = self.state.lock().await;
        Ok(st.find_container(key)?.clone())
    }

    /// Waits until container `id` is no longer `restarting` (its pending restart ends
    /// it or starts it); returns its status then.
    async fn settle_restart(&self, id: &str) -> CtlResult<Option<ContainerStatus>> {
        let deadline = tokio::time::Instant::now() + SETTLE_WAIT;
        loop {
            let status = {
                let st = self.state.lock().await;
                st.containers.get(id).map(|c| c.state.status)
            };
            if status != Some(ContainerStatus::Restarting) {
                return Ok(status);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(CtlError::internal(format!(
                    "container {} is still restarting after {}s: see the daemon log",
                    short_id(id),
                    SETTLE_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `POST /containers/{id}/start`: a start by a user resets the restart count and
    /// the manual-stop mark; a `restarting` container is left to its pending restart
    /// (304, as Docker answers).
    pub async fn start_by_user(self: &Arc<Self>, key: &str) -> CtlResult<StartOutcome> {
        let c = self.find(key).await?;
        if c.state.status == ContainerStatus::Restarting {
            return Ok(StartOutcome::AlreadyRunning);
        }
        if !c.is_running() {
            self.reset_supervision(&c.id).await?;
        }
        self.start_container(&c.id).await
    }

    /// `POST /containers/{id}/stop`: the container's `StopSignal` and `StopTimeout`
    /// unless the request gives them; the restart policy does not restart it. A
    /// `restarting` container just stays stopped. Returns false if it was not running.
    pub async fn stop_by_user(
        &self,
        key: &str,
        timeout: Option<u64>,
        signal: Option<i32>,
    ) -> CtlResult<bool> {
        let c = self.find(key).await?;
        let restarting = c.state.status == ContainerStatus::Restarting;
        if !c.is_running() && !restarting && !self.is_starting(&c.id) {
            return Ok(false);
        }
        self.stopped_by_user(&c.id, true).await?;
        if restarting && self.settle_restart(&c.id).await? != Some(ContainerStatus::Running) {
            self.emit("container", "stop", &c.id, &[("name", c.name.clone())]);
            return Ok(true);
        }
        let signal = match signal {
            Some(s) => Some(s),
            None if !c.lifecycle.stop_signal.is_empty() => {
                Some(parse_signal(&c.lifecycle.stop_signal)?)
            }
            None => None,
        };
        let timeout = timeout.or_else(|| {
            c.lifecycle
                .stop_timeout
                // -1: wait for ever (as long as a u64 of seconds goes).
                .map(|t| u64::try_from(t).unwrap_or(u64::MAX / 4))
        });
        self.stop_container(&c.id, timeout, signal).await
    }

    /// `POST /containers/{id}/kill`: as Docker, the stop signal (or any signal when the
    /// container has no `StopSignal`, and SIGKILL always) ends the restart policy for
    /// this run, and every signal marks the container as stopped by a user.
    pub async fn kill_by_user(&self, key: &str, signal: i32) -> CtlResult<()> {
        let c = self.find(key).await?;
        let cancel = signal == libc::SIGKILL
            || c.lifecycle.stop_signal.is_empty()
            || parse_signal(&c.lifecycle.stop_signal).ok() == Some(signal);
        if c.state.status == ContainerStatus::Restarting {
            self.stopped_by_user(&c.id, cancel).await?;
            if self.settle_restart(&c.id).await? != Some(ContainerStatus::Running) {
                return Ok(());
            }
        } else if c.is_running() {
            self.stopped_by_user(&c.id, cancel).await?;
        }
        self.kill_container(&c.id, signal).await
    }

    /// `POST /containers/{id}/restart`: stop (the policy does not restart it), then a
    /// start by a user; sends Docker's `restart` event.
    pub async fn restart_by_user(
        self: &Arc<Self>,
        key: &str,
        timeout: Option<u64>,
        signal: Option<i32>,
    ) -> CtlResult<()> {
        let c = self.find(key).await?;
        self.stop_by_user(&c.id, timeout, signal).await?;
        self.start_by_user(&c.id).await?;
        self.emit("container", "restart", &c.id, &[("name", c.name.clone())]);
        Ok(())
    }

    /// `DELETE /containers/{id}`: a `restarting` container is refused without force
    /// (Docker's message); with force its pending restart is canceled first.
    pub async fn remove_by_user(&self, key: &str, force: bool) -> CtlResult<()> {
        let c = self.find(key).await?;
        if c.state.status == ContainerStatus::Restarting {
            if !force {
                return Err(CtlError::conflict(format!(
                    "cannot remove container \"/{}\": container is restarting: stop the container before removing or force remove",
                    c.name
                )));
            }
            self.supervisor.cancel(&c.id);
            self.settle_restart(&c.id).await?;
        } else if force {
            self.supervisor.cancel(&c.id);
        }
        self.remove_container(&c.id, force).await?;
        self.supervisor.forget(&c.id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netloom_model::RestartPolicy;

    fn ctr(policy: &str, max: i64, count: u32, stopped: bool) -> Container {
        let mut c: Container = serde_json::from_value(serde_json::json!({
            "id": "a", "name": "a", "image": "i", "image_id": "i", "created": "",
            "hostname": "h", "network_mode": "bridge"
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        c.lifecycle.restart_policy = RestartPolicy {
            name: policy.into(),
            maximum_retry_count: max,
        };
        c.supervision.restart_count = count;
        c.supervision.manually_stopped = stopped;
        c
    }

    #[test]
    fn policies_decide_as_docker() {
        assert!(!policy_restarts(&ctr("no", 0, 0, false), 1));
        assert!(!policy_restarts(&ctr("", 0, 0, false), 1));
        assert!(policy_restarts(&ctr("always", 0, 7, true), 0));
        assert!(policy_restarts(&ctr("unless-stopped", 0, 0, false), 0));
        assert!(!policy_restarts(&ctr("unless-stopped", 0, 0, true), 0));
        assert!(!policy_restarts(&ctr("on-failure", 0, 0, false), 0));
        assert!(policy_restarts(&ctr("on-failure", 0, 100, false), 3));
        assert!(policy_restarts(&ctr("on-failure", 2, 1, false), 3));
        assert!(!policy_restarts(&ctr("on-failure", 2, 2, false), 3));
    }

    #[test]
    fn restart_policies_checked() {
        let ok = |p: &str, n: i64, rm: bool| {
            let mut c = ctr(p, n, 0, false);
            c.auto_remove = rm;
            check_create(&c).map_err(|e| e.message)
        };
        assert!(ok("on-failure", 3, false).is_ok());
        assert!(ok("no", 0, true).is_ok());
        assert!(
            ok("always", 1, false).is_err_and(|m| m.contains("only be used with 'on-failure'"))
        );
        assert!(ok("on-failure", -1, false).is_err_and(|m| m.contains("cannot be negative")));
        assert!(ok("sometimes", 0, false).is_err_and(|m| m.contains("unknown policy 'sometimes'")));
        assert!(ok("always", 0, true).is_err_and(|m| m.contains("AutoRemove")));
    }

    #[test]
    fn signals() {
        assert_eq!(parse_signal("15").ok(), Some(libc::SIGTERM));
        assert_eq!(parse_signal("sigusr1").ok(), Some(libc::SIGUSR1));
        assert_eq!(parse_signal("HUP").ok(), Some(libc::SIGHUP));
        assert_eq!(parse_signal("SIGRTMIN+1").ok(), Some(libc::SIGRTMIN() + 1));
        assert!(parse_signal("SIGNOPE").is_err_and(|e| e.message == "Invalid signal: SIGNOPE"));
        assert!(parse_signal("0").is_err());
    }

    #[tokio::test]
    async fn backoff_doubles_and_cancel_wins() {
        let s = Supervisor::default();
        s.cancel("x");
        assert!(s.with("x", |m| m.canceled));
        s.reset("x");
        assert!(!s.with("x", |m| m.canceled));
        assert_eq!(s.with("x", |m| m.delay), Duration::ZERO);
    }
}
