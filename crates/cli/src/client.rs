//! HTTP/1.1 client for the netloomd Engine API over a Unix socket.
//!
//! One connection per request (like the docker CLI); every path is
//! prefixed with `/v1.47`. Non-2xx answers become [`DaemonError`], which
//! prints as `Error response from daemon: <message>`.

use std::fmt;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::net::UnixStream;

/// API version this client speaks.
pub const API_VERSION: &str = "1.47";

/// Default daemon address.
pub const DEFAULT_HOST: &str = "unix:///run/netloom/netloom.sock";

/// An error answer (non-2xx) from the daemon.
#[derive(Debug, Clone)]
pub struct DaemonError {
    /// HTTP status code.
    pub status: u16,
    /// `message` of the JSON error body, or the raw body.
    pub message: String,
}

impl fmt::Display for DaemonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error response from daemon: {}", self.message)
    }
}

impl std::error::Error for DaemonError {}

/// The daemon socket could not be reached.
#[derive(Debug, Clone)]
pub struct ConnectError {
    /// The `unix://` address we tried.
    pub host: String,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Cannot connect to the netloom daemon at {}. Is netloomd running?",
            self.host
        )
    }
}

impl std::error::Error for ConnectError {}

/// Returns the HTTP status of a daemon error inside `err`, if any.
pub fn daemon_status(err: &anyhow::Error) -> Option<u16> {
    err.downcast_ref::<DaemonError>().map(|e| e.status)
}

/// A response whose connection is kept alive until the body is consumed.
pub struct Resp {
    /// The HTTP response.
    pub inner: Response<Incoming>,
    _sender: SendRequest<Full<Bytes>>,
}

impl Resp {
    /// Splits into the response and the connection handle that keeps it open.
    pub fn into_parts(self) -> (Response<Incoming>, SendRequest<Full<Bytes>>) {
        (self.inner, self._sender)
    }

    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        self.inner.status()
    }

    /// Reads the whole body.
    pub async fn bytes(self) -> Result<Bytes> {
        let body = self
            .inner
            .into_body()
            .collect()
            .await
            .context("error reading response body from daemon")?;
        Ok(body.to_bytes())
    }

    /// Reads the next chunk of the body; `None` at the end.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        loop {
            match self.inner.body_mut().frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(anyhow!("error reading response from daemon: {e}")),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }
}

/// Engine API client bound to one Unix socket.
#[derive(Debug, Clone)]
pub struct Client {
    host: String,
    socket: PathBuf,
}

/// Builds an error from an error response body.
pub fn error_from_body(status: u16, body: &[u8]) -> DaemonError {
    let message = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => match map.get("message") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::from_utf8_lossy(body).trim().to_string(),
        },
        _ => String::from_utf8_lossy(body).trim().to_string(),
    };
    let message = if message.is_empty() {
        format!(
            "{} {}",
            status,
            StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("")
        )
        .trim()
        .to_string()
    } else {
        message
    };
    DaemonError { status, message }
}

impl Client {
    /// Creates a client for `host` (`unix:///path.sock` or a bare path).
    pub fn new(host: &str) -> Result<Self> {
        let socket = if let Some(path) = host.strip_prefix("unix://") {
            path.to_string()
        } else if host.starts_with('/') {
            host.to_string()
        } else {
            return Err(anyhow!(
                "invalid host {host:?}: only unix:///path/to/socket addresses are supported"
            ));
        };
        if socket.is_empty() {
            return Err(anyhow!("invalid host {host:?}: empty socket path"));
        }
        let host = if host.starts_with("unix://") {
            host.to_string()
        } else {
            format!("unix://{host}")
        };
        Ok(Self {
            host,
            socket: PathBuf::from(socket),
        })
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>> {
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(|_| ConnectError {
                host: self.host.clone(),
            })?;
        let (sender, conn) =
            http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|_| ConnectError {
                    host: self.host.clone(),
                })?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(sender)
    }

    fn build(
        &self,
        method: Method,
        path: &str,
        body: Option<(Bytes, &str)>,
        extra: &[(&str, &str)],
    ) -> Result<Request<Full<Bytes>>> {
        let uri = format!("/v{API_VERSION}{path}");
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, "netloom")
            .header(
                header::USER_AGENT,
                concat!("netloom-cli/", env!("CARGO_PKG_VERSION")),
            );
        for (k, v) in extra {
            builder = builder.header(*k, *v);
        }
        let body = match body {
            Some((bytes, content_type)) => {
                builder = builder
                    .header(header::CONTENT_TYPE, content_type)
                    .header(header::CONTENT_LENGTH, bytes.len());
                bytes
            }
            None => {
                builder = builder.header(header::CONTENT_LENGTH, 0);
                Bytes::new()
            }
        };
        builder
            .body(Full::new(body))
            .context("failed to build request")
    }

    /// Sends a request and returns the raw response (any status).
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<(Bytes, &str)>,
        extra: &[(&str, &str)],
    ) -> Result<Resp> {
        let req = self.build(method, path, body, extra)?;
        let mut sender = self.connect().await?;
        let inner = sender
            .send_request(req)
            .await
            .map_err(|e| anyhow!("error during connect to {}: {e}", self.host))?;
        Ok(Resp {
            inner,
            _sender: sender,
        })
    }

    /// Sends a request; non-2xx statuses become [`DaemonError`].
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(Bytes, &str)>,
        extra: &[(&str, &str)],
    ) -> Result<Resp> {
        let resp = self.send_raw(method, path, body, extra).await?;
        let status = resp.status();
        if status.is_success() || status == StatusCode::SWITCHING_PROTOCOLS {
            return Ok(resp);
        }
        let bytes = resp.bytes().await.unwrap_or_default();
        Err(error_from_body(status.as_u16(), &bytes).into())
    }

    /// GET returning the raw body bytes.
    pub async fn get_bytes(&self, path: &str) -> Result<Bytes> {
        self.send(Method::GET, path, None, &[]).await?.bytes().await
    }

    /// GET decoding the JSON body.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let bytes = self.get_bytes(path).await?;
        decode(&bytes)
    }

    /// Request with an optional JSON body; returns the body bytes.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Bytes> {
        let body = match body {
            Some(v) => {
                let mut buf = serde_json::to_vec(v).context("failed to encode request")?;
                buf.push(b'\n');
                Some((Bytes::from(buf), "application/json"))
            }
            None => None,
        };
        self.send(method, path, body, &[]).await?.bytes().await
    }

    /// Request with an optional JSON body, decoding a JSON answer.
    pub async fn call_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T> {
        let bytes = self.call(method, path, body).await?;
        decode(&bytes)
    }
}

/// Decodes a JSON body, with a readable error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        anyhow!(
            "unexpected response from daemon ({e}): {}",
            String::from_utf8_lossy(bytes).trim()
        )
    })
}

/// Percent-encodes one path segment (container/network/image name).
pub fn seg(s: &str) -> String {
    urlencoding::encode(s).into_owned()
}

/// Builds a `?k=v&…` query string (values percent-encoded); empty when no pairs.
pub fn query(pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencoding::encode(v)))
        .collect();
    format!("?{}", parts.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_message_from_json_or_raw() {
        let e = error_from_body(404, br#"{"message":"network x not found"}"#);
        assert_eq!(
            e.to_string(),
            "Error response from daemon: network x not found"
        );
        let e = error_from_body(500, b"boom\n");
        assert_eq!(e.message, "boom");
        let e = error_from_body(500, b"");
        assert_eq!(e.message, "500 Internal Server Error");
    }

    #[test]
    fn host_parsing() {
        assert!(Client::new("unix:///run/x.sock").is_ok());
        assert!(Client::new("/run/x.sock").is_ok());
        assert!(Client::new("tcp://1.2.3.4:2375").is_err());
        assert!(Client::new("unix://").is_err());
    }

    #[test]
    fn query_encoding() {
        assert_eq!(query(&[]), "");
        assert_eq!(
            query(&[("name", "a b".into()), ("force", "1".into())]),
            "?name=a%20b&force=1"
        );
    }
}
