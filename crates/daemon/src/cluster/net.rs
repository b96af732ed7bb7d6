//! HTTP/1.1 with JSON over TLS between nodes: the client side (one kept-alive
//! connection per session) and the error the caller shows.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use netloom_cluster::proto::ErrorResponse;
use netloom_cluster::tls;
use rustls::ClientConfig;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Connect and TLS handshake budget.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Budget of one request.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a call to another node failed.
#[derive(Debug)]
pub enum CallError {
    /// No answer: connection, TLS or timeout (the text says which).
    Transport {
        /// The explanation.
        message: String,
        /// The manager refused this node's certificate as revoked (node removed).
        revoked: bool,
    },
    /// The node answered with an error.
    Refused {
        /// HTTP status.
        status: u16,
        /// Its message.
        message: String,
    },
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Transport { message, .. } | CallError::Refused { message, .. } => {
                f.write_str(message)
            }
        }
    }
}

fn revoked_in(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && io.get_ref().is_some_and(|i| i.is::<rustls::Error>())
        {
            return Some(tls::explain(io));
        }
        if let Some(r) = c.downcast_ref::<rustls::Error>() {
            let io = std::io::Error::other(r.clone());
            return Some(tls::explain(&io));
        }
        cur = c.source();
    }
    None
}

fn transport(addr: &str, e: &(dyn std::error::Error + 'static)) -> CallError {
    match revoked_in(e) {
        Some(m) => CallError::Transport {
            revoked: m.contains("removed from the swarm"),
            message: format!("{addr}: {m}"),
        },
        None => CallError::Transport {
            message: format!(
                "cannot reach the manager at {addr}: {}",
                crate::error::chain(e)
            ),
            revoked: false,
        },
    }
}

/// A connection to a manager.
pub struct Conn {
    addr: String,
    tx: SendRequest<Full<Bytes>>,
}

/// Connects to the manager at `addr` (`IP:PORT`) with `cfg`.
pub async fn connect(addr: &str, cfg: Arc<ClientConfig>) -> Result<Conn, CallError> {
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| CallError::Transport {
            message: format!("cannot reach the manager at {addr}: timed out"),
            revoked: false,
        })?
        .map_err(|e| transport(addr, &e))?;
    let _ = tcp.set_nodelay(true);
    let tls = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_rustls::TlsConnector::from(cfg).connect(tls::manager_name(), tcp),
    )
    .await
    .map_err(|_| CallError::Transport {
        message: format!("cannot reach the manager at {addr}: TLS handshake timed out"),
        revoked: false,
    })?
    .map_err(|e| CallError::Transport {
        revoked: false,
        message: format!("{addr}: {}", tls::explain(&e)),
    })?;
    let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| transport(addr, &e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(Conn {
        addr: addr.to_string(),
        tx,
    })
}

impl Conn {
    /// Whether the connection can still carry requests.
    pub fn is_open(&self) -> bool {
        !self.tx.is_closed()
    }

    /// One request with a JSON body (`None`: GET without body), JSON answer, within
    /// [`CALL_TIMEOUT`].
    pub async fn call<B: Serialize, R: DeserializeOwned>(
        &mut self,
        path: &str,
        body: Option<&B>,
    ) -> Result<R, CallError> {
        self.call_t(path, body, CALL_TIMEOUT).await
    }

    /// [`Conn::call`] within `timeout`.
    pub async fn call_t<B: Serialize, R: DeserializeOwned>(
        &mut self,
        path: &str,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<R, CallError> {
        let (method, bytes) = match body {
            Some(b) => (
                "POST",
                serde_json::to_vec(b).map_err(|e| CallError::Transport {
                    message: format!("cannot encode the request: {e}"),
                    revoked: false,
                })?,
            ),
            None => ("GET", Vec::new()),
        };
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "swarm-manager")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| CallError::Transport {
                message: format!("cannot build the request: {e}"),
                revoked: false,
            })?;
        let addr = self.addr.clone();
        let fut = async {
            self.tx.ready().await.map_err(|e| transport(&addr, &e))?;
            let resp = self
                .tx
                .send_request(req)
                .await
                .map_err(|e| transport(&addr, &e))?;
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| transport(&addr, &e))?
                .to_bytes();
            if !(200..300).contains(&status) {
                let message = serde_json::from_slice::<ErrorResponse>(&body)
                    .map(|e| e.message)
                    .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
                return Err(CallError::Refused { status, message });
            }
            serde_json::from_slice(&body).map_err(|e| CallError::Transport {
                message: format!("unreadable answer from the manager at {addr}: {e}"),
                revoked: false,
            })
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| CallError::Transport {
                message: format!("the manager at {} did not answer in time", self.addr),
                revoked: false,
            })?
    }
}
