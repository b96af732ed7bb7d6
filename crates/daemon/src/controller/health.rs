//! Health checks, as Docker runs them: the container's `Healthcheck` (its own or the
//! image's `HEALTHCHECK`) is run through the OCI runtime's `exec`, every `Interval`
//! (every `StartInterval` while it is still starting within its `StartPeriod`), each
//! run at most `Timeout`. Exit 0 is healthy; `Retries` failures in a row (failures in
//! the start period do not count) make it unhealthy. `State.Health` keeps the status,
//! the failing streak and the last 5 results; a change of status sends Docker's
//! `health_status: healthy|unhealthy` event.
//!
//! The checks of a run start with it ([`Controller::watch_health`], from the exit
//! monitor that every start and every daemon restart sets up) and stop with it; a
//! stopped container reports `unhealthy`, as Docker's does.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use netloom_model::{Container, HealthConfig, HealthResult, HealthState, Image, Lifecycle};
use tokio::io::AsyncReadExt;
use tracing::{debug, warn};

use super::{Controller, keys, new_id, now, put};
use crate::error::{CtlError, CtlResult};

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_RETRIES: i64 = 3;
/// Results kept in `State.Health.Log`.
const MAX_LOG: usize = 5;
/// Bytes of a probe's output kept.
const MAX_OUTPUT: usize = 4096;

/// A duration field in nanoseconds, or `default` for 0.
fn dur(ns: i64, default: Duration) -> Duration {
    if ns <= 0 {
        default
    } else {
        Duration::from_nanos(ns.unsigned_abs())
    }
}

/// A duration as Go prints it (`30s`, `500ms`, `1m30s`), for Docker's messages.
pub(crate) fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000_000_000 {
        let trim = |v: f64, unit: &str| {
            let s = format!("{v:.6}");
            let s = s.trim_end_matches('0').trim_end_matches('.');
            format!("{s}{unit}")
        };
        return if ns < 1_000 {
            format!("{ns}ns")
        } else if ns < 1_000_000 {
            trim(ns as f64 / 1e3, "µs")
        } else {
            trim(ns as f64 / 1e6, "ms")
        };
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let frac = d.subsec_nanos();
    let mut sec = s.to_string();
    if frac > 0 {
        let f = format!("{frac:09}");
        sec.push('.');
        sec.push_str(f.trim_end_matches('0'));
    }
    match (h, m) {
        (0, 0) => format!("{sec}s"),
        (0, m) => format!("{m}m{sec}s"),
        (h, m) => format!("{h}h{m}m{sec}s"),
    }
}

/// Checks a health check configuration (Docker's messages).
pub(crate) fn check_config(h: Option<&HealthConfig>) -> CtlResult<()> {
    let Some(h) = h else { return Ok(()) };
    let min = 1_000_000; // 1 ms
    for (name, v) in [
        ("Interval", h.interval),
        ("Timeout", h.timeout),
        ("StartPeriod", h.start_period),
        ("StartInterval", h.start_interval),
    ] {
        if v != 0 && v < min {
            return Err(CtlError::invalid(format!(
                "{name} in Healthcheck cannot be less than 1ms"
            )));
        }
    }
    if h.retries < 0 {
        return Err(CtlError::invalid(
            "Retries in Healthcheck cannot be negative",
        ));
    }
    match h.test.first().map(String::as_str) {
        None | Some("NONE") => {}
        Some("CMD" | "CMD-SHELL") if h.test.len() > 1 => {}
        Some("CMD" | "CMD-SHELL") => {
            return Err(CtlError::invalid(
                "invalid Healthcheck.Test: give a command after CMD or CMD-SHELL",
            ));
        }
        Some(other) => {
            return Err(CtlError::invalid(format!(
                "invalid Healthcheck.Test: unknown type {other:?}: use [\"CMD\", args...], [\"CMD-SHELL\", command] or [\"NONE\"]"
            )));
        }
    }
    Ok(())
}

/// A Dockerfile `HEALTHCHECK` instruction's arguments (`--interval=1s CMD test -f x`,
/// `NONE`) as an image config's `Healthcheck` JSON.
pub(crate) fn instruction(rest: &str) -> CtlResult<serde_json::Value> {
    let bad = |why: &str| CtlError::invalid(format!("invalid HEALTHCHECK {rest:?}: {why}"));
    let mut cfg = serde_json::Map::new();
    let mut words = rest.trim();
    while let Some(opt) = words.strip_prefix("--") {
        let (flag, tail) = opt.split_once(char::is_whitespace).unwrap_or((opt, ""));
        let (k, v) = flag
            .split_once('=')
            .ok_or_else(|| bad("options are --name=value"))?;
        let key = match k {
            "interval" => "Interval",
            "timeout" => "Timeout",
            "start-period" => "StartPeriod",
            "start-interval" => "StartInterval",
            "retries" => "Retries",
            _ => return Err(bad(&format!("unknown option --{k}"))),
        };
        let n = if key == "Retries" {
            v.parse::<i64>()
                .map_err(|_| bad("--retries takes a number"))?
        } else {
            let d = humantime::parse_duration(v).map_err(|e| bad(&e.to_string()))?;
            i64::try_from(d.as_nanos()).map_err(|_| bad("duration too long"))?
        };
        cfg.insert(key.into(), serde_json::json!(n));
        words = tail.trim_start();
    }
    let (verb, cmd) = words.split_once(char::is_whitespace).unwrap_or((words, ""));
    let test: Vec<String> = match verb.to_ascii_uppercase().as_str() {
        "NONE" => vec!["NONE".into()],
        "CMD" if cmd.trim_start().starts_with('[') => {
            let args: Vec<String> =
                serde_json::from_str(cmd.trim()).map_err(|e| bad(&e.to_string()))?;
            std::iter::once("CMD".to_string()).chain(args).collect()
        }
        "CMD" if !cmd.trim().is_empty() => vec!["CMD-SHELL".into(), cmd.trim().to_string()],
        _ => return Err(bad("use [OPTIONS] CMD command, or NONE")),
    };
    cfg.insert("Test".into(), serde_json::json!(test));
    Ok(serde_json::Value::Object(cfg))
}

/// The image's `Healthcheck` (its config's JSON) as a configuration.
fn image_healthcheck(v: &serde_json::Value) -> Option<HealthConfig> {
    let n = |k: &str| v.get(k).and_then(serde_json::Value::as_i64).unwrap_or(0);
    let test: Vec<String> = v
        .get("Test")
        .and_then(serde_json::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Some(HealthConfig {
        test,
        interval: n("Interval"),
        timeout: n("Timeout"),
        start_period: n("StartPeriod"),
        start_interval: n("StartInterval"),
        retries: n("Retries"),
    })
}

/// The container's lifecycle settings completed with its image's, as Docker merges
/// them: an unset health check field takes the image's `HEALTHCHECK` value, an unset
/// stop signal the image's `STOPSIGNAL`.
pub(crate) fn with_image(l: &Lifecycle, image: &Image) -> Lifecycle {
    let mut out = l.clone();
    if let Some(img) = image.healthcheck.as_ref().and_then(image_healthcheck) {
        out.healthcheck = Some(match l.healthcheck.clone() {
            None => img,
            Some(mut h) => {
                if h.test.is_empty() {
                    h.test = img.test;
                }
                for (mine, theirs) in [
                    (&mut h.interval, img.interval),
                    (&mut h.timeout, img.timeout),
                    (&mut h.start_period, img.start_period),
                    (&mut h.start_interval, img.start_interval),
                    (&mut h.retries, img.retries),
                ] {
                    if *mine == 0 {
                        *mine = theirs;
                    }
                }
                h
            }
        });
    }
    if out.stop_signal.is_empty() {
        out.stop_signal = image.stop_signal.clone();
    }
    out
}

/// `State.Health` as a user sees it: `starting` from each start until the first
/// result, `unhealthy` once the container stopped; None without a health check (or
/// before the first start).
pub fn current(c: &Container) -> Option<HealthState> {
    c.lifecycle.healthcheck.as_ref().filter(|h| h.probes())?;
    let stored = c.supervision.health.clone();
    if c.is_running() {
        return Some(match stored {
            Some(h) if h.run == c.state.started_at => h,
            other => HealthState {
                status: "starting".into(),
                failing_streak: 0,
                log: other.map(|h| h.log).unwrap_or_default(),
                run: c.state.started_at.clone(),
            },
        });
    }
    stored.map(|h| HealthState {
        status: "unhealthy".into(),
        ..h
    })
}

/// The health status for `docker ps` filters: `none` without a health check.
pub fn status_of(c: &Container) -> String {
    current(c).map_or_else(|| "none".to_string(), |h| h.status)
}

fn elapsed_since(t: &str) -> Duration {
    humantime::parse_rfc3339_weak(t)
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or_default()
}

/// Kills a process and everything under it (the OCI runtime's `exec` and the probe
/// it runs in the container), children first.
fn kill_tree(pid: u32) {
    let kids =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    for k in kids
        .split_whitespace()
        .filter_map(|k| k.parse::<u32>().ok())
    {
        kill_tree(k);
    }
    if let Ok(p) = i32::try_from(pid) {
        let _ = netloom_runtime::kill_process(p, libc::SIGKILL);
    }
}

/// Reads a pipe into `buf`, keeping at most [`MAX_OUTPUT`] bytes; true if more came.
async fn read_limited<R: tokio::io::AsyncRead + Unpin>(
    r: Option<R>,
    buf: &tokio::sync::Mutex<(Vec<u8>, bool)>,
) {
    let Some(mut r) = r else { return };
    let mut chunk = [0u8; 4096];
    while let Ok(n) = r.read(&mut chunk).await {
        if n == 0 {
            return;
        }
        let mut b = buf.lock().await;
        let keep = MAX_OUTPUT.saturating_sub(b.0.len()).min(n);
        b.0.extend_from_slice(&chunk[..keep]);
        if keep < n {
            b.1 = true;
        }
    }
}

impl Controller {
    /// Starts the health checks of a container's current run (nothing without a
    /// health check). They end when the run ends.
    pub(crate) fn watch_health(self: &Arc<Self>, c: &Container) {
        let Some(hc) = c.lifecycle.healthcheck.clone().filter(|h| h.probes()) else {
            return;
        };
        let ctl = Arc::clone(self);
        let id = c.id.clone();
        let run = c.state.started_at.clone();
        let mut events = self.subscribe();
        tokio::spawn(async move {
            let interval = dur(hc.interval, DEFAULT_INTERVAL);
            let start_interval = dur(hc.start_interval, DEFAULT_START_INTERVAL);
            let start_period = dur(hc.start_period, Duration::ZERO);
            loop {
                let starting = {
                    let st = ctl.state.lock().await;
                    match st.containers.get(&id) {
                        Some(c) if c.is_running() && c.state.started_at == run => {
                            current(c).is_some_and(|h| h.status == "starting")
                        }
                        _ => return,
                    }
                };
                let wait = if starting && elapsed_since(&run) < start_period {
                    start_interval
                } else {
                    interval
                };
                let sleep = tokio::time::sleep(wait);
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        _ = &mut sleep => break,
                        ev = events.recv() => match ev {
                            Ok(ev) if ev.id == id && matches!(ev.action, "die" | "destroy") => return,
                            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                            Err(_) => return,
                        },
                    }
                }
                let target = {
                    let st = ctl.state.lock().await;
                    match st.containers.get(&id) {
                        Some(c) if c.is_running() && c.state.started_at == run => c.clone(),
                        _ => return,
                    }
                };
                let result = ctl.probe(&target, &hc).await;
                if !ctl
                    .record_health(&id, &run, result, &hc, start_period)
                    .await
                {
                    return;
                }
            }
        });
    }

    /// Runs one probe in the container; never fails (a probe that cannot run is a
    /// failed result, exit code -1, as in Docker).
    async fn probe(&self, c: &Container, hc: &HealthConfig) -> HealthResult {
        let start = now();
        let fail = |output: String| HealthResult {
            start: start.clone(),
            end: now(),
            exit_code: -1,
            output,
        };
        let args: Vec<String> = match hc.test.first().map(String::as_str) {
            Some("CMD-SHELL") => {
                let mut a = if c.lifecycle.shell.is_empty() {
                    vec!["/bin/sh".to_string(), "-c".to_string()]
                } else {
                    c.lifecycle.shell.clone()
                };
                a.extend(hc.test[1..].iter().cloned());
                a
            }
            _ => hc.test[1..].to_vec(),
        };
        let (runtime, security) = match (self.oci_runtime(c), self.container_security(c)) {
            (Ok(r), Ok(s)) => (r, s),
            (Err(e), _) | (_, Err(e)) => return fail(e.message),
        };
        let opts = netloom_runtime::ExecOptions {
            runtime,
            container_id: c.id.clone(),
            init_pid: c.state.pid,
            state_dir: self.paths.run.join(&c.id),
            exec_id: new_id(),
            args,
            env: c.env.clone(),
            working_dir: c.working_dir.clone(),
            user: c.user.clone(),
            tty: false,
            console_size: None,
            security,
            privileged: false,
            stdin: false,
        };
        let mut p = match netloom_runtime::exec(&opts) {
            Ok(p) => p,
            Err(e) => {
                return fail(format!(
                    "health check could not run: {}",
                    crate::error::chain(&e)
                ));
            }
        };
        let out = tokio::sync::Mutex::new((Vec::new(), false));
        let stdout = p.child.stdout.take();
        let stderr = p.child.stderr.take();
        let pid = p.child.id();
        let timeout = dur(hc.timeout, DEFAULT_TIMEOUT);
        let run = async {
            tokio::join!(read_limited(stdout, &out), read_limited(stderr, &out));
            p.wait().await
        };
        let code = tokio::time::timeout(timeout, run).await;
        let (bytes, truncated) = out.into_inner();
        let mut output = String::from_utf8_lossy(&bytes).into_owned();
        if truncated {
            output.push_str("...");
        }
        match code {
            Ok(code) => HealthResult {
                start,
                end: now(),
                exit_code: i64::from(code),
                output,
            },
            Err(_) => {
                if let Some(pid) = pid {
                    kill_tree(pid);
                }
                let _ = p.child.kill().await;
                let msg = if output.is_empty() {
                    format!("Health check exceeded timeout ({})", go_duration(timeout))
                } else {
                    format!(
                        "Health check exceeded timeout ({}): {output}",
                        go_duration(timeout)
                    )
                };
                fail(msg)
            }
        }
    }

    /// Applies a probe's result to the container's health (Docker's rules); false if
    /// the run it belongs to is over.
    async fn record_health(
        &self,
        id: &str,
        run: &str,
        r: HealthResult,
        hc: &HealthConfig,
        start_period: Duration,
    ) -> bool {
        let mut st = self.state.lock().await;
        let Some(c) = st.containers.get_mut(id) else {
            return false;
        };
        if !c.is_running() || c.state.started_at != run {
            return false;
        }
        let Some(mut h) = current(c) else {
            return false;
        };
        let old = h.status.clone();
        if h.log.len() >= MAX_LOG {
            h.log.drain(..=h.log.len() - MAX_LOG);
        }
        let passed = r.exit_code == 0;
        let probe_start = r.start.clone();
        h.log.push(r);
        let retries = if hc.retries <= 0 {
            DEFAULT_RETRIES
        } else {
            hc.retries
        };
        if passed {
            h.failing_streak = 0;
            h.status = "healthy".into();
        } else {
            let in_start_period = h.status == "starting"
                && humantime::parse_rfc3339_weak(&probe_start)
                    .ok()
                    .zip(humantime::parse_rfc3339_weak(run).ok())
                    .and_then(|(p, s)| p.duration_since(s).ok())
                    .is_some_and(|d| d < start_period);
            if !in_start_period {
                h.failing_streak += 1;
                if h.failing_streak >= retries {
                    h.status = "unhealthy".into();
                }
            }
        }
        let changed = h.status != old;
        let status = h.status.clone();
        c.supervision.health = Some(h);
        if !changed {
            return true;
        }
        let name = c.name.clone();
        let image = c.image.clone();
        match put(format!("{}{}", keys::CONTAINER, id), &*c) {
            Ok(op) => {
                if let Err(e) = self.commit(vec![op]).await {
                    warn!(container = %name, error = %e, "cannot record the health status");
                }
            }
            Err(e) => warn!(container = %name, error = %e, "cannot record the health status"),
        }
        drop(st);
        debug!(container = %name, status = %status, "health status changed");
        let action = match status.as_str() {
            "healthy" => "health_status: healthy",
            _ => "health_status: unhealthy",
        };
        self.emit("container", action, id, &[("name", name), ("image", image)]);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::from_secs(30)), "30s");
        assert_eq!(go_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
    }

    #[test]
    fn image_healthcheck_merged() {
        let img = Image {
            healthcheck: Some(
                serde_json::json!({"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000i64, "Retries": 2}),
            ),
            stop_signal: "SIGQUIT".into(),
            ..Image::default()
        };
        let mine = Lifecycle {
            healthcheck: Some(HealthConfig {
                interval: 1_000_000_000,
                ..HealthConfig::default()
            }),
            ..Lifecycle::default()
        };
        let l = with_image(&mine, &img);
        let h = l.healthcheck.unwrap_or_default();
        assert_eq!(h.test, ["CMD-SHELL", "true"]);
        assert_eq!(h.interval, 1_000_000_000);
        assert_eq!(h.retries, 2);
        assert_eq!(l.stop_signal, "SIGQUIT");
        let none = Lifecycle {
            healthcheck: Some(HealthConfig {
                test: vec!["NONE".into()],
                ..HealthConfig::default()
            }),
            ..Lifecycle::default()
        };
        assert!(
            !with_image(&none, &img)
                .healthcheck
                .is_some_and(|h| h.probes())
        );
    }

    #[test]
    fn dockerfile_instruction() {
        let v = instruction("--interval=200ms --retries=2 CMD test -f /tmp/ok").unwrap_or_default();
        assert_eq!(
            v,
            serde_json::json!({"Interval": 200_000_000i64, "Retries": 2, "Test": ["CMD-SHELL", "test -f /tmp/ok"]})
        );
        let v = instruction(r#"CMD ["true"]"#).unwrap_or_default();
        assert_eq!(v["Test"], serde_json::json!(["CMD", "true"]));
        assert!(instruction("--bogus=1 CMD x").is_err());
        assert!(instruction("").is_err());
    }

    #[test]
    fn configs_checked() {
        let h = |test: &[&str], interval: i64, retries: i64| {
            check_config(Some(&HealthConfig {
                test: test.iter().map(|s| s.to_string()).collect(),
                interval,
                retries,
                ..HealthConfig::default()
            }))
            .map_err(|e| e.message)
        };
        assert!(h(&["CMD", "true"], 0, 0).is_ok());
        assert!(
            h(&["CMD", "true"], 10, 0)
                .is_err_and(|m| m.contains("Interval in Healthcheck cannot be less than 1ms"))
        );
        assert!(h(&["CMD", "true"], 0, -1).is_err_and(|m| m.contains("Retries")));
        assert!(h(&["CMD"], 0, 0).is_err());
        assert!(h(&["BOGUS", "x"], 0, 0).is_err());
    }
}
