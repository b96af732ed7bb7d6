//! `/_ping`, `/version`, `/info`, `/events`.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;

use super::{API_VERSION, ApiResult, Ctl, MIN_API_VERSION, body};

fn ping_headers(resp: &mut Response, swarm: &str) {
    let h = resp.headers_mut();
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    if let Ok(v) = HeaderValue::from_str(swarm) {
        h.insert("Swarm", v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
}

/// `GET /_ping`.
pub async fn ping(axum::Extension(sw): super::swarm::Sw) -> Response {
    let mut r = "OK".into_response();
    ping_headers(&mut r, sw.ping_status());
    r
}

/// `HEAD /_ping`.
pub async fn ping_head(axum::Extension(sw): super::swarm::Sw) -> Response {
    let mut r = Response::new(Body::empty());
    ping_headers(&mut r, sw.ping_status());
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    r
}

fn kernel_version() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().to_string())
        .unwrap_or_default()
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    }
}

/// `GET /version`.
pub async fn version() -> Response {
    let v = env!("CARGO_PKG_VERSION");
    axum::Json(json!({
        "Platform": { "Name": "netloom" },
        "Components": [{
            "Name": "Engine",
            "Version": v,
            "Details": {
                "ApiVersion": API_VERSION,
                "MinAPIVersion": MIN_API_VERSION,
                "GitCommit": "",
                "GoVersion": "rust",
                "Os": "linux",
                "Arch": arch(),
                "KernelVersion": kernel_version(),
                "BuildTime": "",
                "Experimental": "false",
            }
        }],
        "Version": v,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "rust",
        "Os": "linux",
        "Arch": arch(),
        "KernelVersion": kernel_version(),
        "BuildTime": "",
    }))
    .into_response()
}

/// `GET /info`.
pub async fn info(State(ctl): State<Ctl>, axum::Extension(sw): super::swarm::Sw) -> Response {
    let (total, running, stopped, images) = ctl.counts().await;
    let cfg = ctl.config();
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|k| k.parse::<u64>().ok())
                })
        })
        .unwrap_or(0)
        * 1024;
    let mut v = json!({
        "ID": host,
        "Containers": total,
        "ContainersRunning": running,
        "ContainersPaused": 0,
        "ContainersStopped": stopped,
        "Images": images,
        "Driver": "overlay",
        "LoggingDriver": "json-file",
        "CgroupDriver": match cfg.runtime.cgroup_driver {
            crate::runtimes::CgroupDriver::Cgroupfs => "cgroupfs",
            crate::runtimes::CgroupDriver::Systemd => "systemd",
        },
        "KernelVersion": kernel_version(),
        "OperatingSystem": "linux",
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "MemTotal": mem,
        "Name": host,
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "DockerRootDir": cfg.data_root,
        "Plugins": { "Volume": ["local"], "Network": ctl.network_plugins().await, "Authorization": Value::Null, "Log": ["json-file"] },
        "Swarm": sw.info().await,
        "SecurityOptions": if crate::runtimes::cgroup_v2() {
            json!(["name=seccomp,profile=builtin", "name=cgroupns"])
        } else {
            json!(["name=seccomp,profile=builtin"])
        },
        "Warnings": Value::Null,
    });
    let more = json!({
        "Debug": cfg.log_level == "debug",
        "SystemTime": humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
        "Labels": [],
        // Containers keep running while netloomd is stopped or restarted.
        "LiveRestoreEnabled": true,
        "IPv4Forwarding": std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").is_ok_and(|v| v.trim() == "1"),
        "CgroupVersion": if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() { "2" } else { "1" },
        "NFd": std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0),
        // netloomd has no goroutines: its threads.
        "NGoroutines": threads(),
        "NEventsListener": ctl.subscriber_count(),
        "HttpProxy": std::env::var("HTTP_PROXY").or_else(|_| std::env::var("http_proxy")).unwrap_or_default(),
        "HttpsProxy": std::env::var("HTTPS_PROXY").or_else(|_| std::env::var("https_proxy")).unwrap_or_default(),
        "NoProxy": std::env::var("NO_PROXY").or_else(|_| std::env::var("no_proxy")).unwrap_or_default(),
        "OSVersion": os_release("VERSION_ID"),
        "ExperimentalBuild": false,
        "Isolation": "",
        "GenericResources": Value::Null,
        "DefaultRuntime": cfg.runtime.default,
        "Runtimes": cfg.runtime.runtimes.iter().map(|(k, e)| {
            let mut r = json!({"path": e.path});
            if !e.runtime_args.is_empty() {
                r["runtimeArgs"] = json!(e.runtime_args);
            }
            (k.clone(), r)
        }).collect::<serde_json::Map<String, Value>>(),
        "InitBinary": "",
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": super::image_io::registry_info(&cfg.registry),
    });
    if let (Value::Object(a), Value::Object(b)) = (&mut v, more) {
        a.extend(b);
    }
    axum::Json(v).into_response()
}

/// Threads of this process (`/proc/self/status`).
fn threads() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A field of `/etc/os-release`, unquoted ("" if absent).
fn os_release(key: &str) -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix(key)
                    .and_then(|r| r.strip_prefix('='))
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_default()
}

use serde_json::Value;

/// Parses `since`/`until` of `/events`: Unix seconds with an optional fraction (what
/// the docker CLI sends), an RFC 3339 time, or a duration back from now (`10m`).
pub fn parse_event_time(
    raw: &str,
    now: std::time::SystemTime,
    key: &str,
) -> Result<std::time::SystemTime, crate::error::CtlError> {
    use std::time::{Duration, UNIX_EPOCH};
    let raw = raw.trim();
    let (secs, frac) = raw.split_once('.').unwrap_or((raw, ""));
    if let Ok(s) = secs.parse::<u64>()
        && frac.len() <= 9
        && frac.bytes().all(|b| b.is_ascii_digit())
    {
        let nanos = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<9}").parse::<u32>().unwrap_or(0)
        };
        // Far-future values would overflow SystemTime: refuse them like any bad value.
        if let Some(t) = UNIX_EPOCH.checked_add(Duration::new(s, nanos)) {
            return Ok(t);
        }
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(raw) {
        return Ok(t);
    }
    if let Ok(d) = humantime::parse_duration(raw) {
        return Ok(now.checked_sub(d).unwrap_or(UNIX_EPOCH));
    }
    Err(crate::error::CtlError::invalid(format!(
        "invalid value for {key}: {raw:?}: give Unix seconds (1700000000.5), an RFC 3339 time or a duration such as 10m"
    )))
}

fn event_json(ev: &crate::controller::Event) -> Bytes {
    let t = ev
        .time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut j = json!({
        "Type": ev.kind,
        "Action": ev.action,
        "Actor": { "ID": ev.id, "Attributes": ev.attributes },
        "scope": "local",
        "time": t.as_secs(),
        "timeNano": t.as_nanos() as u64,
    });
    if ev.kind == "container" || ev.kind == "image" {
        // Docker's deprecated top-level fields, still sent (and read by older clients,
        // docker-compose 1.29 among them).
        j["status"] = json!(ev.action);
        j["id"] = json!(ev.id);
    }
    if ev.kind == "container"
        && let Some(img) = ev.attributes.get("image")
    {
        j["from"] = json!(img);
    }
    let mut b = serde_json::to_vec(&j).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

/// `GET /events?since=&until=&filters=`: a stream of JSON objects, one per event.
/// With `since`, recent events (the last 1024) are replayed first; with `until`, the
/// stream ends at that time.
pub async fn events(
    State(ctl): State<Ctl>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult<Response> {
    let f = body::filters(&q, super::events_filter::ACCEPTED)?;
    super::events_filter::check(&f)?;
    let now = std::time::SystemTime::now();
    let time = |k: &str| {
        q.get(k)
            .filter(|s| !s.is_empty())
            .map(|s| parse_event_time(s, now, k))
            .transpose()
    };
    let (since, until) = (time("since")?, time("until")?);
    if let (Some(s), Some(u)) = (since, until)
        && s > u
    {
        return Err(crate::error::CtlError::invalid(
            "`since` time cannot be after `until` time: swap them",
        )
        .into());
    }
    let (past, mut rx) = ctl.events_since();
    let stream = async_stream(move |tx: tokio::sync::mpsc::Sender<Bytes>| async move {
        if let Some(since) = since {
            for ev in past.iter().filter(|e| e.time >= since) {
                if until.is_some_and(|u| ev.time > u) {
                    return;
                }
                if super::events_filter::matches(&f, ev) && tx.send(event_json(ev)).await.is_err() {
                    return;
                }
            }
        }
        let deadline = until.map(|u| {
            let left = u
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default();
            tokio::time::Instant::now() + left
        });
        loop {
            let next = async {
                match deadline {
                    Some(d) => tokio::time::timeout_at(d, rx.recv()).await.ok(),
                    None => Some(rx.recv().await),
                }
            };
            match next.await {
                None => return,
                Some(Ok(ev)) => {
                    if until.is_some_and(|u| ev.time > u) {
                        return;
                    }
                    if super::events_filter::matches(&f, &ev)
                        && tx.send(event_json(&ev)).await.is_err()
                    {
                        return;
                    }
                }
                Some(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                Some(Err(_)) => return,
            }
        }
    });
    let mut resp = Body::from_stream(stream).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// Runs `f` with a channel sender and returns the receiving side as a byte stream.
pub fn async_stream<F, Fut>(f: F) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Bytes>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(f(tx));
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|o| o.map(Ok)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn event_times() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let p = |s: &str| parse_event_time(s, now, "since").ok();
        assert_eq!(p("1700000000"), Some(now));
        assert_eq!(p("1700000000.5"), Some(now + Duration::from_millis(500)));
        assert_eq!(p("10m"), Some(now - Duration::from_secs(600)));
        assert_eq!(
            p("18446744073709551615"),
            None,
            "overflow is a bad value, not a panic"
        );
        assert_eq!(p("2023-11-14T22:13:20Z"), Some(now));
        assert!(p("yesterday").is_none());
        assert!(p("1.2.3").is_none());
    }
}
