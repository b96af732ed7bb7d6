//! The plugin HTTP client: `POST /<Method>` with a JSON body, one connection per call.

use std::path::PathBuf;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, header};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::time::Instant;

use super::PluginError;

/// A plugin's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    /// A Unix socket.
    Unix(PathBuf),
    /// `host:port` over plain TCP.
    Tcp(String),
}

impl Addr {
    /// Parses `unix:///path.sock` or `tcp://host:port` (a spec file's content).
    pub fn parse(url: &str) -> Result<Addr, String> {
        if let Some(p) = url.strip_prefix("unix://") {
            if !p.starts_with('/') {
                return Err(format!(
                    "invalid address {url:?}: the socket path must be absolute"
                ));
            }
            return Ok(Addr::Unix(PathBuf::from(p)));
        }
        if let Some(hp) = url.strip_prefix("tcp://") {
            let hp = hp.trim_end_matches('/');
            if hp.is_empty() || !hp.contains(':') {
                return Err(format!("invalid address {url:?}: use tcp://HOST:PORT"));
            }
            return Ok(Addr::Tcp(hp.to_string()));
        }
        Err(format!(
            "invalid address {url:?}: use unix:///path/to.sock or tcp://HOST:PORT"
        ))
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::Unix(p) => write!(f, "unix://{}", p.display()),
            Addr::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// A client for one plugin.
#[derive(Debug, Clone)]
pub struct Client {
    name: String,
    addr: Addr,
    timeout: Duration,
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> Io for T {}

impl Client {
    /// A client for plugin `name` at `addr`; each call is bounded by `timeout`.
    pub fn new(name: &str, addr: Addr, timeout: Duration) -> Self {
        Client {
            name: name.to_string(),
            addr,
            timeout,
        }
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    async fn connect(&self) -> std::io::Result<Box<dyn Io>> {
        Ok(match &self.addr {
            Addr::Unix(p) => Box::new(tokio::net::UnixStream::connect(p).await?),
            Addr::Tcp(a) => Box::new(tokio::net::TcpStream::connect(a).await?),
        })
    }

    /// Connects, retrying refused connections with backoff (as Docker does) until the
    /// deadline.
    async fn connect_retry(&self, deadline: Instant) -> Result<Box<dyn Io>, String> {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.connect().await {
                Ok(s) => return Ok(s),
                Err(e) => {
                    let now = Instant::now();
                    if now + backoff >= deadline {
                        return Err(format!("cannot connect to {}: {e}", self.addr));
                    }
                    tracing::debug!(plugin = %self.name, error = %e, "plugin connection failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    async fn post(&self, method: &str, body: Vec<u8>) -> Result<(u16, Bytes), String> {
        let deadline = Instant::now() + self.timeout;
        let io = self.connect_retry(deadline).await?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| format!("HTTP handshake with {}: {e}", self.addr))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = Request::post(format!("/{method}"))
            .header(header::HOST, "plugin")
            .header(header::ACCEPT, "application/vnd.docker.plugins.v1.2+json")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("build request: {e}"))?;
        let resp = send
            .send_request(req)
            .await
            .map_err(|e| format!("POST /{method} to {}: {e}", self.addr))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("read answer to /{method} from {}: {e}", self.addr))?
            .to_bytes();
        Ok((status, bytes))
    }

    /// Calls `method` (`NetworkDriver.CreateNetwork`, ...) with `body` (`None`: empty body)
    /// and returns the decoded answer. Errors carry the plugin's own text.
    pub async fn call(&self, method: &str, body: Option<&Value>) -> Result<Value, PluginError> {
        let payload = match body {
            Some(v) => serde_json::to_vec(v)
                .map_err(|e| PluginError::Transport(format!("encode {method}: {e}")))?,
            None => Vec::new(),
        };
        tracing::debug!(plugin = %self.name, method, "plugin call");
        let (status, bytes) = match tokio::time::timeout(self.timeout, self.post(method, payload))
            .await
        {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                return Err(PluginError::Transport(format!(
                    "{method}: plugin {:?} is not reachable: {e}",
                    self.name
                )));
            }
            Err(_) => {
                return Err(PluginError::Transport(format!(
                    "{method}: plugin {:?} did not answer within {} (timeout; see plugin-timeout in docs/plugins.md)",
                    self.name,
                    humantime_secs(self.timeout)
                )));
            }
        };
        let json: Option<Value> = serde_json::from_slice(&bytes).ok();
        let err_text = |v: &Value| {
            ["Err", "Error"]
                .iter()
                .find_map(|k| v[k].as_str().filter(|s| !s.is_empty()).map(str::to_string))
        };
        if status == 404 {
            return Err(PluginError::MethodNotFound {
                name: self.name.clone(),
                method: method.to_string(),
            });
        }
        if status != 200 {
            let text = json
                .as_ref()
                .and_then(err_text)
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string());
            return Err(PluginError::Remote(format!("{method}: {text}")));
        }
        let Some(v) = json else {
            return Err(PluginError::Transport(format!(
                "{method}: plugin {:?} answered with invalid JSON: {:?}",
                self.name,
                String::from_utf8_lossy(&bytes)
                    .chars()
                    .take(200)
                    .collect::<String>()
            )));
        };
        if let Some(e) = err_text(&v) {
            return Err(PluginError::Remote(format!("remote: {e}")));
        }
        Ok(v)
    }
}

fn humantime_secs(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Serves one canned HTTP answer per connection (`None`: never answer).
    async fn serve(answers: Vec<Option<(u16, &'static str)>>) -> (tempfile::TempDir, Client) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let sock = dir.path().join("p.sock");
        let l = tokio::net::UnixListener::bind(&sock).unwrap_or_else(|e| panic!("bind: {e}"));
        tokio::spawn(async move {
            for a in answers {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                match a {
                    Some((code, body)) => {
                        let r = format!(
                            "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = s.write_all(r.as_bytes()).await;
                    }
                    None => {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                }
            }
        });
        let c = Client::new("p", Addr::Unix(sock), Duration::from_millis(500));
        (dir, c)
    }

    #[tokio::test]
    async fn answers_and_errors() {
        let (_d, c) = serve(vec![
            Some((200, r#"{"Implements":["NetworkDriver"]}"#)),
            Some((200, r#"{"Err":"boom"}"#)),
            Some((200, r#"{"Error":"ipam boom"}"#)),
            Some((500, r#"{"Err":"inner"}"#)),
            Some((500, "plain text")),
            Some((404, "404 page not found")),
            Some((200, "")),
            None,
        ])
        .await;
        let v = c.call("Plugin.Activate", None).await;
        assert!(v.is_ok_and(|v| v["Implements"][0] == "NetworkDriver"));
        let text =
            |r: Result<Value, PluginError>| r.err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(text(c.call("M.A", None).await), "remote: boom");
        assert_eq!(text(c.call("M.B", None).await), "remote: ipam boom");
        assert_eq!(text(c.call("M.C", None).await), "M.C: inner");
        assert_eq!(text(c.call("M.D", None).await), "M.D: plain text");
        assert!(matches!(
            c.call("M.E", None).await,
            Err(PluginError::MethodNotFound { .. })
        ));
        assert!(text(c.call("M.F", None).await).contains("invalid JSON"));
        let t = std::time::Instant::now();
        let e = text(c.call("M.G", None).await);
        assert!(e.contains("did not answer within 0.5s"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn refused_connections_time_out() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let c = Client::new(
            "p",
            Addr::Unix(dir.path().join("gone.sock")),
            Duration::from_millis(400),
        );
        let t = std::time::Instant::now();
        let e = c.call("M.A", None).await.err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("not reachable")));
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn addrs() {
        assert_eq!(
            Addr::parse("unix:///run/p.sock"),
            Ok(Addr::Unix("/run/p.sock".into()))
        );
        assert_eq!(Addr::parse("tcp://h:1"), Ok(Addr::Tcp("h:1".into())));
        assert!(Addr::parse("unix://rel.sock").is_err());
        assert!(Addr::parse("tcp://h").is_err());
        assert!(Addr::parse("/x.sock").is_err());
    }
}
