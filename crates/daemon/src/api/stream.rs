//! Docker's multiplexed stream framing and the two ways to deliver a stream: a
//! hijacked (upgraded) connection, or a plain streaming response body.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// How long a finished session keeps reading (and discarding) the client's input so that
/// the connection closes cleanly.
pub const INPUT_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Copies a hijacked client's input to `sink` until the client closes its side, then
/// closes `sink`'s write side (`StdinOnce`). When `sink` stops accepting (the process
/// ended) the input is still read and discarded: closing a socket with unread input
/// makes the kernel reset the connection, and the client (e.g. a terminal answering a
/// shell's cursor query just as it exits) would report `connection reset by peer`
/// instead of the session's end.
pub async fn pump_input<R, W>(mut rd: R, mut sink: Option<W>)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(w) = sink.as_mut()
                    && (w.write_all(&buf[..n]).await.is_err() || w.flush().await.is_err())
                {
                    sink = None;
                }
            }
        }
    }
    if let Some(mut w) = sink {
        let _ = w.shutdown().await;
    }
}

/// Stream IDs of the multiplexed format.
pub const STDOUT: u8 = 1;
/// stderr.
pub const STDERR: u8 = 2;

/// One frame: `[stream, 0, 0, 0, len u32 BE] payload`.
pub fn frame(stream: u8, payload: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(8 + payload.len());
    v.push(stream);
    v.extend_from_slice(&[0, 0, 0]);
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    Bytes::from(v)
}

/// True if the client asked to hijack the connection (`Upgrade: tcp`).
pub fn wants_upgrade(req: &Request) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .map(|v| !v.is_empty())
        .unwrap_or(false)
}

/// Answers with the frames arriving on `rx`: `101 UPGRADED` + raw connection when the
/// client asked for it, else `200` with a streaming body.
pub fn respond(req: Request, rx: mpsc::Receiver<Bytes>) -> Response {
    respond_io(req, rx, None::<tokio::io::Sink>)
}

/// Like [`respond`]; on a hijacked connection the client's input is also copied to
/// `input` (closed when the client closes its side).
pub fn respond_io<W>(mut req: Request, mut rx: mpsc::Receiver<Bytes>, input: Option<W>) -> Response
where
    W: tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    const CT: &str = "application/vnd.docker.multiplexed-stream";
    if wants_upgrade(&req) {
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            let (rd, mut io) = tokio::io::split(TokioIo::new(upgraded));
            let feeder = tokio::spawn(pump_input(rd, input));
            while let Some(b) = rx.recv().await {
                if io.write_all(&b).await.is_err() {
                    break;
                }
                let _ = io.flush().await;
            }
            let _ = io.shutdown().await;
            // Let the client see the end and close its side before the socket goes.
            let abort = feeder.abort_handle();
            if tokio::time::timeout(INPUT_DRAIN, feeder).await.is_err() {
                abort.abort();
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
        return resp;
    }
    let stream = futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|o| o.map(Ok::<Bytes, std::io::Error>))
    });
    let mut resp = Body::from_stream(stream).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CT));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing() {
        let f = frame(STDERR, b"hi\n");
        assert_eq!(&f[..], &[2, 0, 0, 0, 0, 0, 0, 3, b'h', b'i', b'\n']);
    }
}
