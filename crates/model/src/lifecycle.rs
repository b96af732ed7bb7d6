//! What netloom does around a container's process, as Docker does: its restart
//! policy, its health check, how it is stopped, and what the daemon remembers of
//! them between runs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `HostConfig.RestartPolicy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RestartPolicy {
    /// `no` (or empty), `always`, `unless-stopped`, `on-failure`.
    #[serde(default)]
    pub name: String,
    /// `MaximumRetryCount`: restarts allowed to `on-failure` (0: no limit).
    #[serde(default)]
    pub maximum_retry_count: i64,
}

impl RestartPolicy {
    /// Whether the policy never restarts (`no` or empty).
    pub fn is_none(&self) -> bool {
        matches!(self.name.as_str(), "" | "no")
    }

    /// Docker's spelling for inspect (`no` when empty).
    pub fn display_name(&self) -> &str {
        if self.name.is_empty() {
            "no"
        } else {
            &self.name
        }
    }
}

/// `Config.Healthcheck`. Durations are nanoseconds, as Docker's; 0 means the default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HealthConfig {
    /// `Test`: `[]` (the image's), `["NONE"]`, `["CMD", args...]`, `["CMD-SHELL", cmd]`.
    #[serde(default)]
    pub test: Vec<String>,
    /// `Interval` between probes (default 30 s).
    #[serde(default)]
    pub interval: i64,
    /// `Timeout` of one probe (default 30 s).
    #[serde(default)]
    pub timeout: i64,
    /// `StartPeriod`: failures in it do not count (default 0).
    #[serde(default)]
    pub start_period: i64,
    /// `StartInterval`: the interval during the start period (default 5 s).
    #[serde(default)]
    pub start_interval: i64,
    /// `Retries`: consecutive failures that make it unhealthy (default 3).
    #[serde(default)]
    pub retries: i64,
}

impl HealthConfig {
    /// Whether this configuration runs a probe (`CMD` or `CMD-SHELL` with a command).
    pub fn probes(&self) -> bool {
        matches!(
            self.test.first().map(String::as_str),
            Some("CMD" | "CMD-SHELL")
        ) && self.test.len() > 1
    }
}

/// One probe's result (`State.Health.Log[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HealthResult {
    /// When it started (RFC 3339).
    pub start: String,
    /// When it ended (RFC 3339).
    pub end: String,
    /// 0 healthy, else a failure (-1: it could not run, or timed out).
    pub exit_code: i64,
    /// Its output (stdout and stderr, at most 4096 bytes).
    pub output: String,
}

/// `State.Health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HealthState {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    /// Consecutive failures.
    #[serde(default)]
    pub failing_streak: i64,
    /// The last 5 results, oldest first.
    #[serde(default)]
    pub log: Vec<HealthResult>,
    /// `State.StartedAt` of the run this state belongs to.
    #[serde(default)]
    pub run: String,
}

/// Container settings that govern its lifecycle (`Config` and `HostConfig` fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Lifecycle {
    /// `HostConfig.RestartPolicy`.
    #[serde(default)]
    pub restart_policy: RestartPolicy,
    /// `Config.Healthcheck`, merged with the image's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    /// `Config.StopSignal` (the image's when not given); empty: SIGTERM.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    /// `Config.StopTimeout`, seconds; None: 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    /// `Config.Shell`: what `CMD-SHELL` health checks run in (default `/bin/sh -c`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shell: Vec<String>,
    /// `Config.ArgsEscaped` (Windows only; kept for inspect).
    #[serde(default)]
    pub args_escaped: bool,
    /// `Config.OnBuild` (build triggers; kept for inspect, as Docker does).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_build: Vec<String>,
    /// `Config.AttachStdin`/`AttachStdout`/`AttachStderr` as the client declared them.
    #[serde(default)]
    pub attach: [bool; 3],
    /// `HostConfig.ContainerIDFile` (written by the client; kept for inspect).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container_id_file: String,
    /// `Config.NetworkDisabled`: the container has no network but its loopback (as
    /// with the `none` network).
    #[serde(default)]
    pub network_disabled: bool,
    /// `HostConfig.Annotations`: added to the OCI spec's annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// What the daemon remembers of a container's runs for its restart policy and health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Supervision {
    /// `RestartCount`: restarts made by the policy since the last start by a user.
    #[serde(default)]
    pub restart_count: u32,
    /// A user stopped or killed it (`unless-stopped` then stays stopped, even across a
    /// daemon restart); cleared by the next start.
    #[serde(default)]
    pub manually_stopped: bool,
    /// The health check's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthState>,
}
