//! The manager's cluster API on 2377: TLS 1.3 (mutual where a certificate is
//! presented, see `netloom_cluster::tls`), then HTTP/1.1 with JSON. Only `GET /ca` and
//! `POST /join` are served without a node certificate of this swarm.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use netloom_cluster::CertInfo;
use netloom_cluster::proto::ErrorResponse;
use netloom_cluster::tls;
use tokio::net::TcpListener;

use super::{Node, Swarm};
use crate::error::CtlError;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const BODY_LIMIT: usize = 1 << 20;

/// Accepts connections until the node stops (the task is aborted with it).
pub(super) async fn serve(
    listener: TcpListener,
    tls_cfg: Arc<RwLock<Arc<rustls::ServerConfig>>>,
    swarm: Weak<Swarm>,
    node: Weak<Node>,
) {
    loop {
        let Ok((tcp, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(cfg) = tls_cfg.read().map(|c| c.clone()) else {
            return;
        };
        let (swarm, node) = (swarm.clone(), node.clone());
        tokio::spawn(async move {
            let acc = tokio_rustls::TlsAcceptor::from(cfg);
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acc.accept(tcp)).await {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    tracing::info!(%peer, error = %e, "refused a cluster connection");
                    return;
                }
                Err(_) => return,
            };
            let who = tls::peer_identity(tls.get_ref().1.peer_certificates());
            let svc = hyper::service::service_fn(move |req| {
                let (swarm, node, who) = (swarm.clone(), node.clone(), who.clone());
                async move { Ok::<_, Infallible>(handle(req, peer, who, swarm, node).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), svc)
                .await;
        });
    }
}

fn reply(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn error(e: CtlError) -> Response<Full<Bytes>> {
    let status = crate::api::status_of(e.kind);
    let body = serde_json::to_vec(&ErrorResponse { message: e.message }).unwrap_or_default();
    reply(status, body)
}

async fn handle(
    req: Request<Incoming>,
    peer: SocketAddr,
    who: Option<CertInfo>,
    swarm: Weak<Swarm>,
    node: Weak<Node>,
) -> Response<Full<Bytes>> {
    let (Some(swarm), Some(node)) = (swarm.upgrade(), node.upgrade()) else {
        return error(CtlError::unavailable("this node is leaving the swarm"));
    };
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, BODY_LIMIT).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(CtlError::invalid("request body too large or broken")),
    };
    let path = parts.uri.path().to_string();
    let result = match (parts.method.as_str(), path.as_str()) {
        ("GET", "/ca") => swarm.serve_ca().await.and_then(to_json),
        ("POST", "/join") => match serde_json::from_slice(&body) {
            Ok(r) => swarm.serve_join(r, peer.ip()).await.and_then(to_json),
            Err(e) => Err(CtlError::invalid(format!("bad join request: {e}"))),
        },
        ("POST", "/session") | ("POST", "/renew") | ("POST", "/endpoints") => {
            let Some(who) = who.filter(|w| w.cluster_id == node.local().cluster_id) else {
                return error(CtlError {
                    kind: netloom_model::ErrorKind::Forbidden,
                    message: "a node certificate of this swarm is required".into(),
                });
            };
            if path == "/session" {
                match serde_json::from_slice(&body) {
                    Ok(hb) => swarm.serve_session(&node, &who, hb).await.and_then(to_json),
                    Err(e) => Err(CtlError::invalid(format!("bad session request: {e}"))),
                }
            } else if path == "/endpoints" {
                match serde_json::from_slice(&body) {
                    Ok(c) => swarm
                        .serve_endpoints(&who.node_id, c)
                        .await
                        .and_then(to_json),
                    Err(e) => Err(CtlError::invalid(format!("bad endpoint request: {e}"))),
                }
            } else {
                match serde_json::from_slice(&body) {
                    Ok(r) => swarm.serve_renew(&who, r).await.and_then(to_json),
                    Err(e) => Err(CtlError::invalid(format!("bad renewal request: {e}"))),
                }
            }
        }
        _ => Err(CtlError::not_found(format!(
            "no cluster endpoint {} {path}",
            parts.method
        ))),
    };
    match result {
        Ok(b) => reply(StatusCode::OK, b),
        Err(e) => error(e),
    }
}

fn to_json<T: serde::Serialize>(v: T) -> Result<Vec<u8>, CtlError> {
    serde_json::to_vec(&v).map_err(|e| CtlError::internal(format!("encode answer: {e}")))
}
