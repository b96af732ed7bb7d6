//! `run`/`create` flags for what happens around the container's process: its restart
//! policy, its health check, how it is stopped.

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Map, Value, json};

/// Restart, health check and stop flags of `run` and `create`.
#[derive(Debug, Args, Default, Clone)]
pub struct LifecycleOpts {
    /// Restart policy to apply when a container exits (no, always, unless-stopped, on-failure[:max-retries])
    #[arg(long, value_name = "POLICY")]
    pub restart: Option<String>,
    /// Command to run to check health (run by /bin/sh -c in the container)
    #[arg(long = "health-cmd", value_name = "CMD")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h), default 30s
    #[arg(
        long = "health-interval",
        value_name = "DURATION",
        allow_hyphen_values = true
    )]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h), default 30s
    #[arg(
        long = "health-timeout",
        value_name = "DURATION",
        allow_hyphen_values = true
    )]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy, default 3
    #[arg(long = "health-retries", value_name = "N", allow_hyphen_values = true)]
    pub health_retries: Option<i64>,
    /// Start period for the container to initialize before failed checks count (ms|s|m|h)
    #[arg(
        long = "health-start-period",
        value_name = "DURATION",
        allow_hyphen_values = true
    )]
    pub health_start_period: Option<String>,
    /// Time between running the check during the start period (ms|s|m|h), default 5s
    #[arg(
        long = "health-start-interval",
        value_name = "DURATION",
        allow_hyphen_values = true
    )]
    pub health_start_interval: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Signal to stop the container (default SIGTERM, or the image's STOPSIGNAL)
    #[arg(long = "stop-signal", value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container (default 10; -1: wait for ever)
    #[arg(
        long = "stop-timeout",
        value_name = "SECONDS",
        allow_hyphen_values = true
    )]
    pub stop_timeout: Option<i64>,
}

/// Parses a Go duration (`1m30s`, `500ms`, `1.5s`) into nanoseconds.
pub fn go_duration(s: &str) -> Result<i64> {
    let bad = || {
        anyhow::anyhow!(
            "time: invalid duration {s:?}: use a number and a unit (ns, us, ms, s, m, h) such as 30s or 1m30s"
        )
    };
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            u => bail!("time: unknown unit {u:?} in duration {s:?}"),
        };
        total += n * mult;
        rest = &rest[unit_len..];
    }
    Ok(if neg { -(total as i64) } else { total as i64 })
}

impl LifecycleOpts {
    /// Adds these options to a create body (`body` and its `HostConfig`), as the
    /// docker CLI sends them; `rm`: `--rm` was given.
    pub fn apply(&self, body: &mut Map<String, Value>, rm: bool) -> Result<()> {
        if let Some(r) = &self.restart {
            let (name, count) = match r.split_once(':') {
                Some((n, c)) => (
                    n,
                    c.parse::<i64>().map_err(|_| {
                        anyhow::anyhow!(
                            "invalid restart policy format: maximum retry count must be an integer"
                        )
                    })?,
                ),
                None => (r.as_str(), 0),
            };
            if rm && !matches!(name, "" | "no") {
                bail!("conflicting options: cannot specify both --restart and --rm");
            }
            if let Some(Value::Object(hc)) = body.get_mut("HostConfig") {
                hc.insert(
                    "RestartPolicy".into(),
                    json!({"Name": name, "MaximumRetryCount": count}),
                );
            }
        }
        let any_health = self.health_cmd.is_some()
            || self.health_interval.is_some()
            || self.health_timeout.is_some()
            || self.health_retries.is_some()
            || self.health_start_period.is_some()
            || self.health_start_interval.is_some();
        if self.no_healthcheck {
            if any_health {
                bail!("--no-healthcheck conflicts with --health-* options");
            }
            body.insert("Healthcheck".into(), json!({"Test": ["NONE"]}));
        } else if any_health {
            let mut h = Map::new();
            if let Some(c) = &self.health_cmd {
                h.insert("Test".into(), json!(["CMD-SHELL", c]));
            }
            for (flag, key, v) in [
                ("--health-interval", "Interval", &self.health_interval),
                ("--health-timeout", "Timeout", &self.health_timeout),
                (
                    "--health-start-period",
                    "StartPeriod",
                    &self.health_start_period,
                ),
                (
                    "--health-start-interval",
                    "StartInterval",
                    &self.health_start_interval,
                ),
            ] {
                if let Some(v) = v {
                    let ns = go_duration(v)
                        .with_context(|| format!("invalid argument {v:?} for \"{flag}\" flag"))?;
                    if ns < 0 {
                        bail!("{flag} cannot be negative");
                    }
                    h.insert(key.into(), json!(ns));
                }
            }
            if let Some(r) = self.health_retries {
                if r < 0 {
                    bail!("--health-retries cannot be negative");
                }
                h.insert("Retries".into(), json!(r));
            }
            body.insert("Healthcheck".into(), Value::Object(h));
        }
        if let Some(s) = &self.stop_signal {
            body.insert("StopSignal".into(), json!(s));
        }
        if let Some(t) = self.stop_timeout {
            body.insert("StopTimeout".into(), json!(t));
        }
        Ok(())
    }
}

/// `restart`: stop (the signal, then SIGKILL after `-t`), then start, each container.
pub async fn restart(client: &crate::client::Client, a: crate::container::StopArgs) -> Result<i32> {
    let mut q = Vec::new();
    if let Some(sig) = &a.signal {
        q.push(("signal", sig.clone()));
    }
    if let Some(t) = a.time {
        q.push(("t", t.to_string()));
    }
    let q = crate::client::query(&q);
    let op = |n: String| {
        let q = q.clone();
        async move {
            client
                .call(
                    hyper::Method::POST,
                    &format!("/containers/{}/restart{q}", crate::client::seg(&n)),
                    None,
                )
                .await
                .map(|_| ())
        }
    };
    crate::container::each_name_in(&a.names, crate::container::PARALLEL, op, |_| true).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_flags() {
        assert_eq!(go_duration("1m30s").ok(), Some(90_000_000_000));
        assert_eq!(go_duration("500ms").ok(), Some(500_000_000));
        assert_eq!(go_duration("1.5s").ok(), Some(1_500_000_000));
        assert!(go_duration("1x").is_err());
        assert!(go_duration("").is_err());
        let o = LifecycleOpts {
            restart: Some("on-failure:3".into()),
            health_cmd: Some("true".into()),
            health_interval: Some("1s".into()),
            stop_timeout: Some(2),
            ..LifecycleOpts::default()
        };
        let mut b = Map::new();
        b.insert("HostConfig".into(), json!({}));
        assert!(o.apply(&mut b, false).is_ok());
        let b = Value::Object(b);
        assert_eq!(
            b["HostConfig"]["RestartPolicy"],
            json!({"Name": "on-failure", "MaximumRetryCount": 3})
        );
        assert_eq!(
            b["Healthcheck"],
            json!({"Test": ["CMD-SHELL", "true"], "Interval": 1_000_000_000i64})
        );
        assert_eq!(b["StopTimeout"], json!(2));
        let mut b = Map::new();
        assert!(o.apply(&mut b, true).is_err());
        let conflict = LifecycleOpts {
            no_healthcheck: true,
            health_retries: Some(1),
            ..LifecycleOpts::default()
        };
        assert!(conflict.apply(&mut Map::new(), false).is_err());
    }
}
