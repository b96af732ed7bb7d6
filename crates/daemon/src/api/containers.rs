//! `/containers/*`.

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use netloom_model::{ErrorKind, PortBinding};
use netloom_runtime::logs::Stream;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::{ApiResult, Ctl, body, networks::endpoint_request, stream, view};
use crate::controller::containers::StartOutcome;
use crate::controller::{ContainerCreate, NetworkingRequest};
use crate::error::{CtlError, chain};

/// Parses a signal name or number (`SIGTERM`, `TERM`, `15`).
pub fn parse_signal(s: &str) -> Result<i32, CtlError> {
    if let Ok(n) = s.parse::<i32>()
        && (1..=64).contains(&n)
    {
        return Ok(n);
    }
    let name = s.trim().to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "STOP" => libc::SIGSTOP,
        "CONT" => libc::SIGCONT,
        "ALRM" => libc::SIGALRM,
        "WINCH" => libc::SIGWINCH,
        _ => return Err(CtlError::invalid(format!("invalid signal: {s}"))),
    };
    Ok(n)
}

fn port_bindings(v: &Value) -> Result<BTreeMap<String, Vec<PortBinding>>, CtlError> {
    let mut out = BTreeMap::new();
    let Some(m) = v.get("PortBindings") else {
        return Ok(out);
    };
    let Some(m) = m.as_object() else {
        if m.is_null() {
            return Ok(out);
        }
        return Err(CtlError::invalid(
            "invalid request body: field HostConfig.PortBindings must be an object",
        ));
    };
    for (k, list) in m {
        let mut bs = Vec::new();
        if let Some(arr) = list.as_array() {
            for b in arr {
                bs.push(PortBinding {
                    host_ip: body::string(b, "HostIp")?,
                    host_port: body::string(b, "HostPort")?,
                });
            }
        } else if !list.is_null() {
            return Err(CtlError::invalid(format!(
                "invalid request body: PortBindings[{k}] must be a list"
            )));
        }
        out.insert(k.clone(), bs);
    }
    Ok(out)
}

/// `ConsoleSize` of a create body's `HostConfig` or an exec body: `[rows, cols]` or null.
pub fn console_size(hc: &Value) -> Result<Option<[u16; 2]>, CtlError> {
    let bad = || {
        CtlError::invalid(
            "invalid request body: ConsoleSize must be [height, width] (numbers 0-65535)",
        )
    };
    match hc.get("ConsoleSize") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) if a.len() == 2 => {
            let n = |v: &Value| {
                v.as_u64()
                    .and_then(|n| u16::try_from(n).ok())
                    .ok_or_else(bad)
            };
            Ok(Some([n(&a[0])?, n(&a[1])?]))
        }
        Some(_) => Err(bad()),
    }
}

/// `POST /containers/create?name=`.
pub async fn create(
    State(ctl): State<Ctl>,
    Query(q): Query<BTreeMap<String, String>>,
    raw: Bytes,
) -> ApiResult<Response> {
    let v = body::json(&raw)?;
    let image = body::string(&v, "Image")?;
    if image.is_empty() {
        return Err(CtlError::invalid(
            "config cannot be empty in order to create a container: give an image",
        )
        .into());
    }
    let empty = Value::Object(Default::default());
    let hc = body::object(&v, "HostConfig")?.unwrap_or(&empty);
    let mut endpoints = BTreeMap::new();
    if let Some(nc) = body::object(&v, "NetworkingConfig")? {
        // Docker's shape is {"EndpointsConfig": {net: settings}}; docker-py sends {net: settings}.
        let map = match nc.get("EndpointsConfig") {
            Some(m) if m.is_object() => m,
            Some(m) if m.is_null() => &empty,
            Some(_) => {
                return Err(CtlError::invalid(
                    "invalid request body: EndpointsConfig must be an object",
                )
                .into());
            }
            None => nc,
        };
        if let Some(m) = map.as_object() {
            for (k, s) in m {
                endpoints.insert(k.clone(), endpoint_request(Some(s))?);
            }
        }
    }
    let exposed: Vec<String> = match v.get("ExposedPorts") {
        Some(Value::Object(m)) => m.keys().cloned().collect(),
        None | Some(Value::Null) => Vec::new(),
        Some(_) => {
            return Err(CtlError::invalid(
                "invalid request body: field ExposedPorts must be an object",
            )
            .into());
        }
    };
    // API < 1.44 carries `--mac-address` at the top level; moby applies it to the
    // endpoint of the network the container starts on.
    let top_mac = super::networks::check_mac(&body::string(&v, "MacAddress")?)?;
    let user = body::string(&v, "User")?;
    if user.contains(char::is_whitespace) || user.matches(':').count() > 1 {
        return Err(CtlError::invalid(format!(
            "invalid user {user:?}: use uid, uid:gid, name or name:group"
        ))
        .into());
    }
    let log_type = body::object(hc, "LogConfig")?
        .map(|l| body::string(l, "Type"))
        .transpose()?
        .unwrap_or_default();
    if !log_type.is_empty() && log_type != "json-file" {
        return Err(CtlError::invalid(format!(
            "log driver {log_type:?} is not supported: netloom writes json-file logs"
        ))
        .into());
    }
    let mode =
        super::lifecycle::network_mode(&v, body::string(hc, "NetworkMode")?, &mut endpoints)?;
    if !top_mac.is_empty() {
        let net = match mode.as_str() {
            "" | "default" => "bridge".to_string(),
            m if m == "host" || m == "none" || m.starts_with("container:") => {
                return Err(CtlError::invalid(
                    "conflicting options: mac-address and the network mode (host, none and container: networking have no MAC of their own)",
                )
                .into());
            }
            m => m.to_string(),
        };
        let ep: &mut netloom_model::EndpointRequest = endpoints.entry(net).or_default();
        if ep.mac.is_empty() {
            ep.mac = top_mac;
        }
    }
    let req = ContainerCreate {
        name: q.get("name").filter(|n| !n.is_empty()).cloned(),
        image,
        cmd: body::opt_strings(&v, "Cmd")?.filter(|c| !c.is_empty()),
        entrypoint: body::opt_strings(&v, "Entrypoint")?.filter(|c| !c.is_empty()),
        env: body::strings(&v, "Env")?,
        hostname: body::string(&v, "Hostname")?,
        domainname: body::string(&v, "Domainname")?,
        working_dir: body::string(&v, "WorkingDir")?,
        user,
        labels: body::string_map(&v, "Labels")?,
        exposed_ports: exposed,
        networking: NetworkingRequest { mode, endpoints },
        port_bindings: port_bindings(hc)?,
        publish_all: body::boolean(hc, "PublishAllPorts")?.unwrap_or(false),
        auto_remove: body::boolean(hc, "AutoRemove")?.unwrap_or(false),
        dns: body::strings(hc, "Dns")?,
        dns_search: body::strings(hc, "DnsSearch")?,
        dns_options: body::strings(hc, "DnsOptions")?,
        extra_hosts: body::strings(hc, "ExtraHosts")?,
        links: body::strings(hc, "Links")?,
        tty: body::boolean(&v, "Tty")?.unwrap_or(false),
        open_stdin: body::boolean(&v, "OpenStdin")?.unwrap_or(false),
        stdin_once: body::boolean(&v, "StdinOnce")?.unwrap_or(false),
        console_size: console_size(hc)?,
        host: super::hostconfig::host_options(&v, hc)?,
        lifecycle: super::lifecycle::parse(&v, hc)?,
    };
    for e in &req.env {
        if e.is_empty() || e.starts_with('=') {
            return Err(CtlError::invalid(format!("invalid environment variable: {e:?}")).into());
        }
    }
    let image = req.image.clone();
    if let Some(p) = q.get("platform").filter(|p| !p.is_empty()) {
        ctl.check_image_platform(&image, p).await?;
    }
    let (id, warnings) = match ctl.create_container(req).await {
        Ok(r) => r,
        // The docker CLI answers any 404 from create with a pull and a retry: keep 404
        // for a missing image only; a missing network (or other referenced object) is a
        // bad parameter of this request.
        Err(e) if e.kind == ErrorKind::NotFound && ctl.inspect_image(&image).await.is_ok() => {
            return Err(CtlError::invalid(e.message).into());
        }
        Err(e) => return Err(e.into()),
    };
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"Id": id, "Warnings": warnings})),
    )
        .into_response())
}

/// `POST /containers/{id}/start`.
pub async fn start(State(ctl): State<Ctl>, Path(id): Path<String>) -> ApiResult<Response> {
    // Near the open-file limit nothing is started (and nothing made); starting a
    // running container changes nothing, so it still answers 304.
    if let Err(m) = crate::nofile::headroom(&format!("container {id}"))
        && !ctl
            .inspect_container(&id)
            .await
            .is_ok_and(|v| v.container.is_running())
    {
        return Err(CtlError::unavailable(m).into());
    }
    match ctl.start_by_user(&id).await? {
        StartOutcome::Started => Ok(StatusCode::NO_CONTENT.into_response()),
        StartOutcome::AlreadyRunning => Ok(StatusCode::NOT_MODIFIED.into_response()),
    }
}

fn timeout_of(q: &BTreeMap<String, String>) -> Result<Option<u64>, CtlError> {
    match q.get("t").or_else(|| q.get("timeout")) {
        None => Ok(None),
        Some(t) => match t.parse::<i64>() {
            Ok(n) if n < 0 => Ok(Some(0)),
            Ok(n) => Ok(Some(n as u64)),
            Err(_) => Err(CtlError::invalid(format!("invalid value for t: {t}"))),
        },
    }
}

/// `POST /containers/{id}/stop?t=&signal=`.
pub async fn stop(
    State(ctl): State<Ctl>,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult<Response> {
    let t = timeout_of(&q)?;
    let sig = q
        .get("signal")
        .filter(|s| !s.is_empty())
        .map(|s| parse_signal(s))
        .transpose()?;
    if ctl.stop_by_user(&id, t, sig).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Ok(StatusCode::NOT_MODIFIED.into_response())
    }
}

/// `POST /containers/{id}/restart`.
pub async fn restart(
    State(ctl): State<Ctl>,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult<Response> {
    let t = timeout_of(&q)?;
    let sig = q
        .get("signal")
        .filter(|s| !s.is_empty())
        .map(|s| parse_signal(s))
        .transpose()?;
    ctl.restart_by_user(&id, t, sig).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /containers/{id}/kill?signal=`.
pub async fn kill(
    State(ctl): State<Ctl>,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult<Response> {
    let sig = match q.get("signal").filter(|s| !s.is_empty()) {
        Some(s) => parse_signal(s)?,
        None => libc::SIGKILL,
    };
    ctl.kill_by_user(&id, sig).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /containers/{id}/wait?condition=`: headers at once, the body when the condition holds.
pub async fn wait(
    State(ctl): State<Ctl>,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult<Response> {
    let cond = q.get("condition").cloned().unwrap_or_default();
    let fut = ctl.wait_container(&id, &cond).await?;
    let s = futures::stream::once(async move {
        let r = fut.await;
        let mut b = serde_json::to_vec(&json!({"StatusCode": r.status_code, "Error": Value::Null}))
            .unwrap_or_default();
        b.push(b'\n');
        Ok::<Bytes, std::io::Error>(Bytes::from(b))
    });
    let mut resp = Body::from_stream(s).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// `DELETE /containers/{id}?force=&v=`.
pub async fn remove(
    State(ctl): State<Ctl>,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult<Response> {
    // `v=1` (`rm -v`): the container's anonymous volumes go with it.
    let volumes = if body::qbool(&q, "v") {
        ctl.inspect_container(&id).await?.container.volumes
    } else {
        Vec::new()
    };
    ctl.remove_by_user(&id, body::qbool(&q, "force")).await?;
    ctl.remove_anonymous_volumes(&volumes).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /containers/json?all=&limit=&filters=`: every `docker ps` filter (see
/// `controller::filters`).
pub async fn list(
    State(ctl): State<Ctl>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult<Response> {
    let f = body::filters(&q, crate::controller::PS_FILTERS)?;
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let v: Vec<Value> = ctl
        .ps(body::qbool(&q, "all"), &f, limit)
        .await?
        .iter()
        .map(view::container_summary)
        .collect();
    Ok(axum::Json(v).into_response())
}

/// `GET /containers/{id}/json`.
pub async fn inspect(
    State(ctl): State<Ctl>,
    Path(id): Path<String>,
    version: Option<axum::Extension<super::ApiVersion>>,
) -> ApiResult<Response> {
    let v = ctl.inspect_container(&id).await?;
    let api = version.map_or(
        (1, 47),
        |axum::Extension(super::ApiVersion(major, minor))| (major, minor),
    );
    Ok(axum::Json(view::container_inspect(&v, api)).into_response())
}

/// `POST /containers/prune`.
pub async fn prune(State(ctl): State<Ctl>) -> ApiResult<Response> {
    let ids = ctl.prune_containers().await?;
    Ok(axum::Json(json!({"ContainersDeleted": ids, "SpaceReclaimed": 0})).into_response())
}

/// Forwards log lines as multiplexed frames, honouring stdout/stderr/timestamps.
/// `keep` is held until the stream ends (see `attach`).
fn forward(
    mut lines: mpsc::Receiver<netloom_runtime::logs::LogLine>,
    q: &BTreeMap<String, String>,
    keep: Option<std::fs::File>,
    raw: bool,
) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(256);
    let want_out = body::qbool(q, "stdout");
    let want_err = body::qbool(q, "stderr");
    let stamps = body::qbool(q, "timestamps");
    tokio::spawn(async move {
        let _keep = keep;
        while let Some(l) = lines.recv().await {
            let (id, want) = match l.stream {
                Stream::Stdout => (stream::STDOUT, want_out),
                Stream::Stderr => (stream::STDERR, want_err),
            };
            if !want {
                continue;
            }
            let payload = if stamps {
                let mut p = format!("{} ", l.time).into_bytes();
                p.extend_from_slice(&l.log);
                p
            } else {
                l.log
            };
            // A terminal's output is one raw stream, as Docker sends it.
            let chunk = if raw {
                Bytes::from(payload)
            } else {
                stream::frame(id, &payload)
            };
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
    });
    rx
}

/// A watch that flips to `true` when the container dies or is removed (or at once if
/// `already` is true).
fn stop_on_exit(ctl: &Ctl, id: String, already: bool) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(already);
    if !already {
        let mut events = ctl.subscribe();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(ev) if ev.id == id && (ev.action == "die" || ev.action == "destroy") => {
                        break;
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => break,
                }
                if tx.is_closed() {
                    return;
                }
            }
            let _ = tx.send(true);
        });
    }
    rx
}

/// `GET /containers/{id}/logs?follow=&stdout=&stderr=&tail=&timestamps=`.
pub async fn logs(
    State(ctl): State<Ctl>,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    req: Request,
) -> ApiResult<Response> {
    if !body::qbool(&q, "stdout") && !body::qbool(&q, "stderr") {
        return Err(
            CtlError::invalid("Bad parameters: you must choose at least one stream").into(),
        );
    }
    let v = ctl.inspect_container(&id).await?;
    let tail = match q.get("tail").map(String::as_str) {
        None | Some("all") | Some("") => None,
        Some(t) => Some(
            t.parse::<usize>()
                .map_err(|_| CtlError::invalid(format!("invalid value for tail: {t}")))?,
        ),
    };
    let follow = body::qbool(&q, "follow");
    let stop = stop_on_exit(
        &ctl,
        v.container.id.clone(),
        !follow || !v.container.is_running(),
    );
    // `--rm` removes the log as soon as the container exits, racing the follower's
    // last read: follow an open handle, so the last lines are drained to EOF even
    // after the file is unlinked.
    let keep = std::fs::File::open(&v.log_path).ok();
    let path = keep
        .as_ref()
        .map(|f| PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd())))
        .unwrap_or_else(|| v.log_path.clone());
    let lines = netloom_runtime::logs::follow(path, tail, stop);
    Ok(stream::respond(
        req,
        forward(lines, &q, keep, v.container.tty),
    ))
}

/// `POST /containers/{id}/attach?logs=&stream=&stdout=&stderr=&stdin=`: the log so far
/// (`logs=1`), then output from now until the container exits (`stream=1`); may be
/// called before start.
pub async fn attach(
    State(ctl): State<Ctl>,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    req: Request,
) -> ApiResult<Response> {
    let v = ctl.inspect_container(&id).await?;
    if v.container.tty || v.container.open_stdin {
        return Ok(attach_interactive(&ctl, &v, &q, req));
    }
    let logs = body::qbool(&q, "logs");
    let streaming = body::qbool(&q, "stream");
    let stop = stop_on_exit(&ctl, v.container.id.clone(), !streaming);
    // `--rm` deletes the container's files as soon as it exits, racing the follower's
    // last read of the log. Follow an open handle instead (creating the file if the
    // container has not started yet; the shim appends to that same file), so the tail
    // of the output survives the removal.
    let keep = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(&v.log_path)
        .ok();
    let path = keep
        .as_ref()
        .map(|f| PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd())))
        .unwrap_or_else(|| v.log_path.clone());
    let from = if logs {
        0
    } else {
        netloom_runtime::logs::current_end(&path)
    };
    let lines = netloom_runtime::logs::follow_from(path, from, None, stop);
    Ok(stream::respond(req, forward(lines, &q, keep, false)))
}

/// How long an interactive attach made before the start waits for it.
const ATTACH_START_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Attach to a container with a terminal or an open stdin: through the shim's attach
/// socket, which outlives daemon restarts. Answers at once (the docker CLI attaches
/// before it starts the container); if the container is not running yet, the session
/// waits for its start, and the start tells the shim to hold output back for it.
fn attach_interactive(
    ctl: &Ctl,
    v: &crate::controller::ContainerView,
    q: &BTreeMap<String, String>,
    mut req: Request,
) -> Response {
    use netloom_runtime::attach::AttachRequest;
    use tokio::io::AsyncWriteExt;
    let logs = body::qbool(q, "logs");
    let live = body::qbool(q, "stream");
    // A running container's shim replays its log itself, inside its output loop, so
    // that nothing falls between the replay and the live output. Otherwise (not
    // running yet, `stream=0`, or the shim is gone) the daemon replays the log file.
    let shim_replays = logs && live && v.container.is_running();
    let want = AttachRequest {
        stdin: body::qbool(q, "stdin") && v.container.open_stdin,
        stdout: body::qbool(q, "stdout"),
        stderr: body::qbool(q, "stderr"),
        logs: shim_replays,
        resize: None,
    };
    let tty_input = v.container.tty && want.stdin;
    let id = v.container.id.clone();
    let state_dir = ctl.paths.run.join(&id);
    // `logs=1` replays the log first; `stream=0` ends after the replay.
    let replay = logs.then(|| Replay {
        path: v.log_path.clone(),
        tty: v.container.tty,
        query: q.clone(),
    });
    // Subscribe before looking at the state, so a start in between is not missed.
    let mut events = ctl.subscribe();
    let waiter = (live && !v.container.is_running()).then(|| ctl.attach_waiting(&id));
    let started = async move {
        if !live {
            return None;
        }
        if waiter.is_some() {
            // Clients attach right before they start the container (docker run,
            // start -a, docker-py): give up if that start does not come.
            let until = tokio::time::Instant::now() + ATTACH_START_WAIT;
            loop {
                match tokio::time::timeout_at(until, events.recv()).await {
                    Ok(Ok(ev)) if ev.id == id && ev.action == "start" => break,
                    Ok(Ok(ev)) if ev.id == id && ev.action == "destroy" => return None,
                    Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                    Ok(Err(_)) | Err(_) => return None,
                }
            }
        }
        let shim = netloom_runtime::attach::connect(&state_dir, &want).await;
        drop(waiter);
        match shim {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::debug!(container = %id, error = %chain(&e), "attach: shim unreachable");
                None
            }
        }
    };
    if !stream::wants_upgrade(&req) {
        // A plain streaming response: output only.
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut replay = replay;
            if !shim_replays && !Replay::to_channel(&mut replay, &tx).await {
                return;
            }
            let Some(mut shim) = started.await else {
                // The container stopped before the shim was reached: the log is all.
                Replay::to_channel(&mut replay, &tx).await;
                return;
            };
            let mut buf = vec![0u8; 32 * 1024];
            while let Ok(n) = shim.read(&mut buf).await {
                if n == 0 || tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                    return;
                }
            }
        });
        let s = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<Bytes, std::io::Error>(b), rx))
        });
        let mut resp = Body::from_stream(s).into_response();
        let ct = if v.container.tty {
            "application/vnd.docker.raw-stream"
        } else {
            "application/vnd.docker.multiplexed-stream"
        };
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        return resp;
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let io = hyper_util::rt::TokioIo::new(upgraded);
        let (rd, mut wr) = tokio::io::split(io);
        let mut replay = replay;
        if !live && replay.is_some() {
            // docker-py parses the 101 through a buffered reader and then reads the
            // raw socket (`_get_raw_response_socket` in docker/api/client.py), so
            // bytes that arrive together with the headers are lost to it: a replay of
            // a stopped container, ready at once, waits for the client to take the
            // headers first.
            tokio::time::sleep(REPLAY_AFTER_UPGRADE).await;
        }
        if !shim_replays {
            Replay::to_writer(&mut replay, &mut wr).await;
        }
        let Some(shim) = started.await else {
            // The container stopped before the shim was reached: the log is all.
            Replay::to_writer(&mut replay, &mut wr).await;
            let _ = wr.shutdown().await;
            // Read what the client still sends, so the close is clean (not a reset).
            let _ = tokio::time::timeout(
                stream::INPUT_DRAIN,
                stream::pump_input(rd, None::<tokio::io::Sink>),
            )
            .await;
            return;
        };
        let (mut shim_rd, shim_wr) = shim.into_split();
        // The client's input goes to the shim; its end tells the shim (StdinOnce
        // closes the container's stdin).
        let mut to_shim = std::pin::pin!(stream::pump_input(rd, Some(shim_wr)));
        let (end_tx, end_rx) = tokio::sync::oneshot::channel::<()>();
        let mut from_shim = std::pin::pin!(async move {
            tokio::select! {
                _ = tokio::io::copy(&mut shim_rd, &mut wr) => {}
                _ = end_rx => {}
            }
            let _ = wr.shutdown().await;
        });
        // The session ends with the container's output; then the client's last input
        // is drained so that the connection closes cleanly. With a terminal, a client
        // that attached its input and closes it ends the session, as in Docker (the
        // terminal stays open; the container goes on).
        tokio::select! {
            _ = &mut from_shim => {
                let _ = tokio::time::timeout(stream::INPUT_DRAIN, &mut to_shim).await;
            }
            _ = &mut to_shim => {
                if tty_input {
                    let _ = end_tx.send(());
                }
                from_shim.await
            }
        }
    });
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.docker.raw-stream"),
    );
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    resp
}

/// How long a replay-only attach waits after the upgrade before it writes.
const REPLAY_AFTER_UPGRADE: std::time::Duration = std::time::Duration::from_millis(50);

/// What `attach?logs=1` replays: the log so far, as the session would have sent it.
struct Replay {
    path: PathBuf,
    tty: bool,
    /// The attach request's query (`stdout`, `stderr`).
    query: BTreeMap<String, String>,
}

impl Replay {
    /// The replay as a stream of chunks, through the logs follower (as `docker logs`):
    /// one raw stream for a terminal, frames otherwise. Empty if there is no replay or it
    /// was taken already.
    fn stream(r: &mut Option<Replay>) -> mpsc::Receiver<Bytes> {
        match r.take() {
            Some(r) => {
                // Already stopped: the follower reads the file to its end once, then
                // closes.
                let (_done, stop) = watch::channel(true);
                let lines = netloom_runtime::logs::follow_from(r.path, 0, None, stop);
                forward(lines, &r.query, None, r.tty)
            }
            None => mpsc::channel(1).1,
        }
    }

    /// Sends the replay (if not sent yet) into `tx`; false once the receiver is gone.
    async fn to_channel(r: &mut Option<Replay>, tx: &mpsc::Sender<Bytes>) -> bool {
        let mut rx = Replay::stream(r);
        while let Some(b) = rx.recv().await {
            if tx.send(b).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Writes the replay (if not written yet) to `wr`, until the client is gone.
    async fn to_writer<W: tokio::io::AsyncWrite + Unpin>(r: &mut Option<Replay>, wr: &mut W) {
        use tokio::io::AsyncWriteExt;
        let mut rx = Replay::stream(r);
        while let Some(b) = rx.recv().await {
            if wr.write_all(&b).await.is_err() {
                return;
            }
        }
    }
}

/// `h` and `w` of a resize request.
pub fn size_of(q: &BTreeMap<String, String>) -> Result<(u16, u16), CtlError> {
    let get = |k: &str| -> Result<u16, CtlError> {
        let raw = q.get(k).map(String::as_str).unwrap_or("");
        raw.parse::<u16>().map_err(|_| {
            CtlError::invalid(format!(
                "invalid value for {k}: {raw:?}: give the terminal size as ?h=ROWS&w=COLS (0-65535)"
            ))
        })
    };
    Ok((get("h")?, get("w")?))
}

/// `POST /containers/{id}/resize?h=&w=`: sets the size of the container's terminal.
pub async fn resize(
    State(ctl): State<Ctl>,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult<Response> {
    let (h, w) = size_of(&q)?;
    let v = ctl.inspect_container(&id).await?;
    if !v.container.is_running() {
        return Err(CtlError::conflict(format!(
            "container {} is not running: start it before resizing its terminal",
            v.container.id
        ))
        .into());
    }
    if !v.container.tty {
        // Docker accepts this too; there is no terminal to resize.
        return Ok(StatusCode::OK.into_response());
    }
    netloom_runtime::attach::resize(&ctl.paths.run.join(&v.container.id), h, w)
        .await
        .map_err(|e| CtlError::internal(format!("cannot resize the terminal: {}", chain(&e))))?;
    Ok(StatusCode::OK.into_response())
}
