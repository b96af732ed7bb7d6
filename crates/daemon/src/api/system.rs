//! `/_ping`, `/version`, `/info`, `/events`.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;

use super::{API_VERSION, ApiResult, Ctl, MIN_API_VERSION, body};

fn ping_headers(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    h.insert("Swarm", HeaderValue::from_static("inactive"));
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
pub async fn ping() -> Response {
    let mut r = "OK".into_response();
    ping_headers(&mut r);
    r
}

/// `HEAD /_ping`.
pub async fn ping_head() -> Response {
    let mut r = Response::new(Body::empty());
    ping_headers(&mut r);
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
pub async fn info(State(ctl): State<Ctl>) -> Response {
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
    axum::Json(json!({
        "ID": host,
        "Containers": total,
        "ContainersRunning": running,
        "ContainersPaused": 0,
        "ContainersStopped": stopped,
        "Images": images,
        "Driver": "overlay",
        "LoggingDriver": "json-file",
        "CgroupDriver": "none",
        "KernelVersion": kernel_version(),
        "OperatingSystem": "linux",
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "MemTotal": mem,
        "Name": host,
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "DockerRootDir": cfg.data_root,
        "Plugins": { "Volume": [], "Network": ["bridge", "host", "null"], "Authorization": Value::Null, "Log": ["json-file"] },
        "Swarm": { "NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false, "Error": "", "RemoteManagers": Value::Null },
        "SecurityOptions": [],
        "Warnings": Value::Null,
    }))
    .into_response()
}

use serde_json::Value;

/// `GET /events`: a stream of JSON objects, one per event.
pub async fn events(
    State(ctl): State<Ctl>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult<Response> {
    let f = body::filters(&q, &["type", "event", "container", "network", "image"])?;
    let mut rx = ctl.subscribe();
    let stream = async_stream(move |tx: tokio::sync::mpsc::Sender<Bytes>| async move {
        loop {
            match rx.recv().await {
                Ok(ev) => {
                    if f.get("type")
                        .map(|t| t.iter().any(|x| x == ev.kind))
                        .unwrap_or(true)
                        && f.get("event")
                            .map(|t| t.iter().any(|x| x == ev.action))
                            .unwrap_or(true)
                    {
                        let t = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap_or_default();
                        let j = json!({
                            "Type": ev.kind,
                            "Action": ev.action,
                            "Actor": { "ID": ev.id, "Attributes": ev.attributes },
                            "scope": "local",
                            "time": t.as_secs(),
                            "timeNano": t.as_nanos() as u64,
                        });
                        let mut b = serde_json::to_vec(&j).unwrap_or_default();
                        b.push(b'\n');
                        if tx.send(Bytes::from(b)).await.is_err() {
                            return;
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
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
