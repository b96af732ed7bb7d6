//! `/containers/{id}/exec`, `/exec/{id}/start`, `/exec/{id}/json`.

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::{ApiResult, Ctl, body, stream};
use crate::controller::ExecConfig;
use crate::error::CtlError;

/// `POST /containers/{id}/exec`.
pub async fn create(
    State(ctl): State<Ctl>,
    Path(id): Path<String>,
    raw: Bytes,
) -> ApiResult<Response> {
    let v = body::json(&raw)?;
    let user = body::string(&v, "User")?;
    if user.contains(char::is_whitespace) || user.matches(':').count() > 1 {
        return Err(CtlError::invalid(format!(
            "invalid user {user:?}: use uid, uid:gid, name or name:group"
        ))
        .into());
    }
    let cfg = ExecConfig {
        cmd: body::strings(&v, "Cmd")?,
        env: body::strings(&v, "Env")?,
        working_dir: body::string(&v, "WorkingDir")?,
        tty: body::boolean(&v, "Tty")?.unwrap_or(false),
        user,
        attach_stdout: body::boolean(&v, "AttachStdout")?.unwrap_or(true),
        attach_stderr: body::boolean(&v, "AttachStderr")?.unwrap_or(true),
        attach_stdin: body::boolean(&v, "AttachStdin")?.unwrap_or(false),
        console_size: super::containers::console_size(&v)?,
        privileged: body::boolean(&v, "Privileged")?.unwrap_or(false),
    };
    let exec_id = ctl.exec_create(&id, cfg).await?;
    Ok((StatusCode::CREATED, axum::Json(json!({"Id": exec_id}))).into_response())
}

/// Copies one output stream into frames; a stream the client did not attach is read
/// and discarded, so the process never blocks on a full pipe.
async fn pump(
    mut r: impl tokio::io::AsyncRead + Unpin,
    id: u8,
    tx: mpsc::Sender<Bytes>,
    attached: bool,
) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if attached && tx.send(stream::frame(id, &buf[..n])).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// `POST /exec/{id}/start`: runs the process and streams its output (hijacked when the
/// client asks for it); the exit code is recorded before the stream ends.
pub async fn start(
    State(ctl): State<Ctl>,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let (parts, b) = req.into_parts();
    let raw = b
        .collect()
        .await
        .map_err(|e| CtlError::invalid(format!("reading the request body: {e}")))?
        .to_bytes();
    let v = body::json(&raw)?;
    let detach = body::boolean(&v, "Detach")?.unwrap_or(false);
    let (mut child, cfg) = ctl.exec_start(&id).await?;
    if cfg.tty {
        let req = Request::from_parts(parts, axum::body::Body::empty());
        return Ok(tty_session(ctl, id, child, req, detach));
    }
    let (tx, rx) = mpsc::channel(256);
    let out = child.child.stdout.take();
    let err = child.child.stderr.take();
    let input = child.child.stdin.take();
    let ctl2 = ctl.clone();
    let id2 = id.clone();
    tokio::spawn(async move {
        let a = out.map(|o| tokio::spawn(pump(o, stream::STDOUT, tx.clone(), cfg.attach_stdout)));
        let b = err.map(|e| tokio::spawn(pump(e, stream::STDERR, tx.clone(), cfg.attach_stderr)));
        if let Some(a) = a {
            let _ = a.await;
        }
        if let Some(b) = b {
            let _ = b.await;
        }
        let code = child.wait().await;
        ctl2.exec_finished(&id2, code).await;
        drop(tx);
    });
    if detach {
        return Ok(StatusCode::OK.into_response());
    }
    let req = Request::from_parts(parts, axum::body::Body::empty());
    Ok(stream::respond_io(req, rx, input))
}

/// `GET /exec/{id}/json`.
pub async fn inspect(State(ctl): State<Ctl>, Path(id): Path<String>) -> ApiResult<Response> {
    let i = ctl.exec_inspect(&id).await?;
    Ok(axum::Json(json!({
        "ID": i.id,
        "Running": i.running,
        "ExitCode": i.exit_code.map(Value::from).unwrap_or(Value::Null),
        "ProcessConfig": { "tty": i.tty, "entrypoint": i.cmd.first(), "arguments": i.cmd.iter().skip(1).collect::<Vec<_>>(), "privileged": i.privileged },
        "OpenStdin": i.attach_stdin,
        "OpenStderr": true,
        "OpenStdout": true,
        "CanRemove": false,
        "ContainerID": i.container_id,
        "DetachKeys": "",
        "Pid": i.pid,
    }))
    .into_response())
}

/// `exec -t`: the helper's stdin/stdout carry a terminal. With a hijacked connection the
/// client's bytes go to the terminal and the terminal's output comes back raw (no
/// multiplexing, as Docker does for TTY sessions); the exit code is recorded before the
/// connection closes.
fn tty_session(
    ctl: Ctl,
    id: String,
    mut child: netloom_runtime::ExecProcess,
    mut req: Request,
    detach: bool,
) -> Response {
    use tokio::io::AsyncWriteExt;
    let stdin = child.child.stdin.take();
    let stdout = child.child.stdout.take();
    let finish = move |ctl: Ctl, id: String, mut child: netloom_runtime::ExecProcess| async move {
        let code = child.wait().await;
        ctl.exec_finished(&id, code).await;
    };
    if detach || !stream::wants_upgrade(&req) {
        // Nothing to type into: drain the output so the process never blocks.
        tokio::spawn(async move {
            drop(stdin);
            if let Some(mut o) = stdout {
                let _ = tokio::io::copy(&mut o, &mut tokio::io::sink()).await;
            }
            finish(ctl, id, child).await;
        });
        return StatusCode::OK.into_response();
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            let _ = child.child.start_kill();
            finish(ctl, id, child).await;
            return;
        };
        let io = hyper_util::rt::TokioIo::new(upgraded);
        let (rd, mut wr) = tokio::io::split(io);
        let mut to_child = std::pin::pin!(stream::pump_input(rd, stdin));
        let mut from_child = std::pin::pin!(async move {
            if let Some(mut o) = stdout {
                let _ = tokio::io::copy(&mut o, &mut wr).await;
            }
            wr
        });
        // The session ends with the terminal's output. The exit code is recorded before
        // the client sees the end of the stream (the docker CLI inspects the exec as soon
        // as its connection closes); then the client's last input is drained so that
        // the connection closes cleanly.
        let (mut wr, input_open) = tokio::select! {
            wr = &mut from_child => (wr, true),
            _ = &mut to_child => (from_child.await, false),
        };
        finish(ctl, id, child).await;
        let _ = wr.shutdown().await;
        if input_open {
            let _ = tokio::time::timeout(stream::INPUT_DRAIN, &mut to_child).await;
        }
    });
    let mut resp = Response::new(axum::body::Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/vnd.docker.raw-stream"),
    );
    h.insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("Upgrade"),
    );
    h.insert(
        axum::http::header::UPGRADE,
        axum::http::HeaderValue::from_static("tcp"),
    );
    resp
}

/// `POST /exec/{id}/resize?h=&w=`: sets the size of the exec session's terminal.
pub async fn resize(
    State(ctl): State<Ctl>,
    Path(id): Path<String>,
    Query(q): Query<std::collections::BTreeMap<String, String>>,
) -> ApiResult<Response> {
    let (h, w) = super::containers::size_of(&q)?;
    let i = ctl.exec_inspect(&id).await?;
    if !i.running {
        return Err(CtlError::conflict(format!(
            "exec {id} is not running: start it before resizing its terminal"
        ))
        .into());
    }
    if i.tty {
        netloom_runtime::resize_exec(i.pid, h, w)
            .await
            .map_err(|e| {
                CtlError::internal(format!(
                    "cannot resize the terminal: {}",
                    crate::error::chain(&e)
                ))
            })?;
    }
    Ok(StatusCode::OK.into_response())
}
