//! Resource limits on the API socket, and the accept loop that enforces them.
//!
//! * **Connections.** At most [`Limits::max_connections`] connections are served at
//!   once (512, or half the soft `RLIMIT_NOFILE` if that is lower). A connection keeps
//!   its slot for as long as its file descriptor lives, also after an exec/attach
//!   hijack (the slot travels with the upgraded stream). A connection beyond the limit
//!   is *not* left waiting in the kernel's accept queue: it is accepted, its request
//!   head is read (for at most [`REJECT_HEADER_TIMEOUT`]) and it is answered
//!   `503 {"message":"too many connections to netloomd (limit N): retry later"}` and
//!   closed, so that a client sees why instead of hanging. At most
//!   [`MAX_REJECTING`] such answers are pending at once; further excess connections
//!   are closed without an answer.
//! * **Slow clients.** A request head (request line and headers) must arrive within
//!   [`Limits::header_read_timeout`] (10 s) of the moment the server starts waiting
//!   for it, else the connection is closed. This also closes a connection that stays
//!   idle (nothing sent, or nothing after a complete keep-alive exchange) for that
//!   long, which returns its slot. It does not apply while a response streams
//!   (`events`, `logs -f`, `wait`) nor to a hijacked connection.
//! * **Bodies.** JSON bodies are capped by the router (`DefaultBodyLimit`, 16 MiB);
//!   image import enforces its own limit while streaming.
//! * **Shutdown.** When the shutdown future completes the listener is closed (new
//!   clients get `ECONNREFUSED`), idle connections are closed, requests in flight may
//!   finish, and [`serve`] returns once every connection is gone or after
//!   [`SHUTDOWN_GRACE`], whichever comes first.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower::ServiceExt;
use tracing::{debug, error, info, warn};

/// Default cap on concurrent API connections.
pub const MAX_CONNECTIONS: usize = 512;
/// Default time a client has to send a complete request head.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Cap on excess connections being answered 503 at the same time.
pub const MAX_REJECTING: usize = 128;
/// Time an excess connection has to send its request head before it is closed.
pub const REJECT_HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// How long shutdown waits for requests in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// The smallest connection limit chosen when file descriptors are scarce.
const MIN_CONNECTIONS: usize = 32;

/// The limits [`serve`] enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Concurrent connections served; see the module documentation.
    pub max_connections: usize,
    /// Time allowed for a request head.
    pub header_read_timeout: Duration,
}

impl Limits {
    /// The defaults, with the connection limit lowered to half the soft open-file
    /// limit when that is smaller (the rest is for the store, netlink, shims, ...).
    pub fn from_environment() -> Limits {
        let mut max_connections = MAX_CONNECTIONS;
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit(2) only writes the struct we pass, which is valid.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == 0
            && rl.rlim_cur != libc::RLIM_INFINITY
        {
            let half = usize::try_from(rl.rlim_cur / 2).unwrap_or(usize::MAX);
            max_connections = max_connections.min(half.max(MIN_CONNECTIONS));
        }
        Limits {
            max_connections,
            header_read_timeout: HEADER_READ_TIMEOUT,
        }
    }

    /// The message of the 503 answered beyond the connection limit.
    pub fn overload_message(&self) -> String {
        format!(
            "too many connections to netloomd (limit {}): retry later",
            self.max_connections
        )
    }
}

/// A connection that holds its slot until it is dropped, including after a hijack
/// (hyper moves the IO object into the `Upgraded` stream).
struct Slotted {
    io: UnixStream,
    _slot: OwnedSemaphorePermit,
}

impl AsyncRead for Slotted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Slotted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Serves `svc` on `listener` under `limits` until `shutdown` completes; see the module
/// documentation for what happens then.
pub async fn serve<S>(
    listener: UnixListener,
    svc: S,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let max = limits.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max));
    let rejecting = Arc::new(Semaphore::new(MAX_REJECTING));
    let overload: Arc<str> = limits.overload_message().into();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut last_overload_log: Option<Instant> = None;
    info!(
        max_connections = max,
        header_read_timeout = ?limits.header_read_timeout,
        "API limits"
    );
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            biased;
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
        };
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                let io = Slotted {
                    io: stream,
                    _slot: slot,
                };
                tokio::spawn(serve_connection(
                    io,
                    svc.clone(),
                    limits.header_read_timeout,
                    stop_rx.clone(),
                ));
            }
            Err(_) => {
                if last_overload_log.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    warn!(
                        limit = max,
                        "API connection limit reached; refusing new connections with 503"
                    );
                    last_overload_log = Some(Instant::now());
                }
                match rejecting.clone().try_acquire_owned() {
                    Ok(permit) => {
                        tokio::spawn(reject(stream, overload.clone(), permit));
                    }
                    Err(_) => drop(stream),
                }
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection (and hijacked stream) holds a slot: all slots back = all gone.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    if tokio::time::timeout(SHUTDOWN_GRACE, slots.acquire_many(all))
        .await
        .is_err()
    {
        info!(
            open = max - slots.available_permits(),
            "connections still open after the shutdown grace period; closing them"
        );
    }
}

/// Serves one admitted connection, with upgrades (exec/attach hijack).
async fn serve_connection<S>(
    io: Slotted,
    svc: S,
    header_read_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let hsvc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        svc.clone().oneshot(req.map(Body::new))
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let conn = builder
        .serve_connection(TokioIo::new(io), hsvc)
        .with_upgrades();
    tokio::pin!(conn);
    let mut stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    debug!("API connection closed: {e}");
                }
                break;
            }
            // Sent, or the server is gone: either way, finish up.
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Answers one connection beyond the limit with a 503 and closes it.
async fn reject(stream: UnixStream, message: Arc<str>, _permit: OwnedSemaphorePermit) {
    let svc = hyper::service::service_fn(move |_req: hyper::Request<hyper::body::Incoming>| {
        let body = serde_json::json!({ "message": &*message }).to_string();
        let mut resp = Response::new(Body::from(body));
        *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        h.insert(
            "Api-Version",
            HeaderValue::from_static(crate::api::API_VERSION),
        );
        h.insert("Ostype", HeaderValue::from_static("linux"));
        async move { Ok::<_, Infallible>(resp) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(REJECT_HEADER_TIMEOUT)
        .keep_alive(false);
    let conn = builder.serve_connection(TokioIo::new(stream), svc);
    // Bounded as a whole: a client that does not read the answer cannot keep this.
    if let Ok(Err(e)) = tokio::time::timeout(REJECT_HEADER_TIMEOUT * 2, conn).await {
        debug!("refused API connection: {e}");
    }
}

/// Accept errors: per-connection ones are ignored; others (`EMFILE`, `ENFILE`,
/// `ENOMEM`) are logged and accepting pauses briefly so the loop does not spin.
async fn accept_error(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    ) {
        return;
    }
    error!("accept on the API socket: {e}");
    tokio::time::sleep(Duration::from_millis(200)).await;
}
