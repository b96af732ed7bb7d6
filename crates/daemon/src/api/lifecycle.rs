//! The create body's lifecycle fields (`RestartPolicy`, `Healthcheck`, `StopSignal`,
//! `StopTimeout`, `Shell`, ...) into [`Lifecycle`], and how inspect shows them with
//! the state they lead to (`RestartCount`, `State.Restarting`, `State.Health`).

use netloom_model::{Container, ContainerStatus, HealthConfig, Lifecycle, RestartPolicy};
use serde_json::{Value, json};

use super::body;
use crate::controller::health;
use crate::error::CtlError;

fn wrong(field: &str, want: &str) -> CtlError {
    CtlError::invalid(format!(
        "invalid request body: field {field} must be {want}"
    ))
}

fn int(v: &Value, key: &str, field: &str) -> Result<i64, CtlError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| wrong(field, "an integer")),
        Some(_) => Err(wrong(field, "an integer")),
    }
}

fn restart_policy(hc: &Value) -> Result<RestartPolicy, CtlError> {
    let Some(p) = body::object(hc, "RestartPolicy")? else {
        return Ok(RestartPolicy::default());
    };
    Ok(RestartPolicy {
        name: body::string(p, "Name")?,
        maximum_retry_count: int(
            p,
            "MaximumRetryCount",
            "HostConfig.RestartPolicy.MaximumRetryCount",
        )?,
    })
}

fn healthcheck(v: &Value) -> Result<Option<HealthConfig>, CtlError> {
    let Some(h) = body::object(v, "Healthcheck")? else {
        return Ok(None);
    };
    let f = |k: &str| int(h, k, &format!("Healthcheck.{k}"));
    Ok(Some(HealthConfig {
        test: body::strings(h, "Test")?,
        interval: f("Interval")?,
        timeout: f("Timeout")?,
        start_period: f("StartPeriod")?,
        start_interval: f("StartInterval")?,
        retries: f("Retries")?,
    }))
}

/// Parses the lifecycle fields of a create body (`v` the body, `hc` its `HostConfig`).
pub fn parse(v: &Value, hc: &Value) -> Result<Lifecycle, CtlError> {
    let stop_timeout = match v.get("StopTimeout") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_i64()
                .ok_or_else(|| wrong("StopTimeout", "an integer"))?,
        ),
        Some(_) => return Err(wrong("StopTimeout", "an integer")),
    };
    let flag = |k: &str| body::boolean(v, k).map(|b| b.unwrap_or(false));
    if let Some(l) = body::object(hc, "LogConfig")?
        && !body::string_map(l, "Config")?.is_empty()
    {
        return Err(CtlError::invalid(
            "HostConfig.LogConfig.Config is not supported by netloom: remove the log options (--log-opt max-size, max-file...): its json-file logs are not rotated",
        ));
    }
    Ok(Lifecycle {
        restart_policy: restart_policy(hc)?,
        healthcheck: healthcheck(v)?,
        stop_signal: body::string(v, "StopSignal")?,
        stop_timeout,
        shell: body::strings(v, "Shell")?,
        args_escaped: flag("ArgsEscaped")?,
        on_build: body::strings(v, "OnBuild")?,
        attach: [
            flag("AttachStdin")?,
            flag("AttachStdout")?,
            flag("AttachStderr")?,
        ],
        container_id_file: body::string(hc, "ContainerIDFile")?,
        annotations: body::string_map(hc, "Annotations")?,
        network_disabled: flag("NetworkDisabled")?,
    })
}

/// The network mode with `Config.NetworkDisabled` applied: such a container is on the
/// `none` network (only its loopback), and may not ask for another.
pub fn network_mode(
    v: &Value,
    mode: String,
    endpoints: &mut std::collections::BTreeMap<String, netloom_model::EndpointRequest>,
) -> Result<String, CtlError> {
    if !body::boolean(v, "NetworkDisabled")?.unwrap_or(false) {
        return Ok(mode);
    }
    let conflict = |what: &str| {
        CtlError::invalid(format!(
            "conflicting options: Config.NetworkDisabled and network {what:?}: a container without networking joins no network (drop one of them)"
        ))
    };
    if !matches!(mode.as_str(), "" | "default" | "none") {
        return Err(conflict(&mode));
    }
    endpoints.retain(|k, _| k != "default" && k != "none");
    if let Some(k) = endpoints.keys().next() {
        return Err(conflict(k));
    }
    Ok("none".into())
}

fn health_config_json(h: &HealthConfig) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("Test".into(), json!(h.test));
    for (k, n) in [
        ("Interval", h.interval),
        ("Timeout", h.timeout),
        ("StartPeriod", h.start_period),
        ("StartInterval", h.start_interval),
        ("Retries", h.retries),
    ] {
        if n != 0 {
            m.insert(k.into(), json!(n));
        }
    }
    Value::Object(m)
}

/// `State.Health` as Docker shows it.
pub fn health_json(c: &Container) -> Option<Value> {
    health::current(c).map(|h| {
        json!({
            "Status": h.status,
            "FailingStreak": h.failing_streak,
            "Log": h.log.iter().map(|r| json!({
                "Start": r.start, "End": r.end, "ExitCode": r.exit_code, "Output": r.output,
            })).collect::<Vec<_>>(),
        })
    })
}

/// Adds the lifecycle fields and state to a container's inspect JSON.
pub fn decorate_inspect(out: &mut Value, c: &Container) {
    let l = &c.lifecycle;
    let restarting = c.state.status == ContainerStatus::Restarting;
    if let Some(Value::Object(s)) = out.get_mut("State") {
        s.insert("Restarting".into(), json!(restarting));
        if restarting {
            // As Docker: a restarting container counts as running.
            s.insert("Running".into(), json!(true));
        }
        if let Some(h) = health_json(c) {
            s.insert("Health".into(), h);
        }
    }
    out["RestartCount"] = json!(c.supervision.restart_count);
    if let Some(Value::Object(hc)) = out.get_mut("HostConfig") {
        hc.insert(
            "RestartPolicy".into(),
            json!({"Name": l.restart_policy.display_name(), "MaximumRetryCount": l.restart_policy.maximum_retry_count}),
        );
        hc.insert("ContainerIDFile".into(), json!(l.container_id_file));
        hc.insert(
            "Annotations".into(),
            if l.annotations.is_empty() {
                Value::Null
            } else {
                json!(l.annotations)
            },
        );
    }
    if let Some(Value::Object(cfg)) = out.get_mut("Config") {
        cfg.insert("AttachStdin".into(), json!(l.attach[0]));
        cfg.insert("AttachStdout".into(), json!(l.attach[1]));
        cfg.insert("AttachStderr".into(), json!(l.attach[2]));
        if let Some(h) = &l.healthcheck {
            cfg.insert("Healthcheck".into(), health_config_json(h));
        }
        if l.args_escaped {
            cfg.insert("ArgsEscaped".into(), json!(true));
        }
        cfg.insert(
            "OnBuild".into(),
            if l.on_build.is_empty() {
                Value::Null
            } else {
                json!(l.on_build)
            },
        );
        if !l.stop_signal.is_empty() {
            cfg.insert("StopSignal".into(), json!(l.stop_signal));
        }
        if let Some(t) = l.stop_timeout {
            cfg.insert("StopTimeout".into(), json!(t));
        }
        if !l.shell.is_empty() {
            cfg.insert("Shell".into(), json!(l.shell));
        }
        if l.network_disabled {
            cfg.insert("NetworkDisabled".into(), json!(true));
        }
    }
}

/// The health part of `docker ps`'s status (` (healthy)`, ` (health: starting)`).
pub fn status_suffix(c: &Container) -> String {
    match health::current(c) {
        Some(h) if h.status == "starting" => " (health: starting)".into(),
        Some(h) => format!(" ({})", h.status),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_fields_parsed() {
        let v = json!({"Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000000000i64, "Retries": 2},
            "StopSignal": "SIGUSR1", "StopTimeout": 3, "Shell": ["/bin/ash", "-c"]});
        let hc = json!({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 4}});
        let l = parse(&v, &hc).unwrap_or_else(|e| panic!("{}", e.message));
        assert_eq!(l.restart_policy.name, "on-failure");
        assert_eq!(l.restart_policy.maximum_retry_count, 4);
        assert_eq!(l.healthcheck.as_ref().map(|h| h.retries), Some(2));
        assert_eq!(l.stop_timeout, Some(3));
        assert!(parse(&json!({"StopTimeout": "x"}), &json!({})).is_err());
        assert!(
            parse(
                &json!({}),
                &json!({"RestartPolicy": {"MaximumRetryCount": "x"}})
            )
            .is_err()
        );
    }
}
