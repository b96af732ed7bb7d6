//! The Docker Engine API subset netloom serves (version 1.47 shape) on its Unix
//! socket. This layer only translates: HTTP in, typed controller requests out, and
//! Docker's JSON back. Errors map to status codes in one place (`ApiError`).

mod body;
mod containers;
mod events_filter;
mod exec;
mod hostconfig;
mod image_io;
mod images;
mod lifecycle;
mod networks;
mod rename;
mod stats;
mod stream;
mod swarm;
mod system;
mod top;
mod view;
mod volumes;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use netloom_model::ErrorKind;

use crate::controller::Controller;
use crate::error::CtlError;

/// Highest API version served.
pub const API_VERSION: &str = "1.47";
/// Lowest API version accepted.
pub const MIN_API_VERSION: &str = "1.24";

/// An error answered as `{"message": ...}` with Docker's status code.
#[derive(Debug)]
pub struct ApiError(pub CtlError);

impl From<CtlError> for ApiError {
    fn from(e: CtlError) -> Self {
        ApiError(e)
    }
}

/// The status code of an error kind (moby's `httpstatus.FromError`).
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::InvalidParameter => StatusCode::BAD_REQUEST,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(self.0.kind);
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), error = %self.0.message, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), error = %self.0.message, "request refused");
        }
        (
            status,
            axum::Json(serde_json::json!({ "message": self.0.message })),
        )
            .into_response()
    }
}

/// Handler result.
pub type ApiResult<T> = Result<T, ApiError>;

/// Shared handler state.
pub type Ctl = Arc<Controller>;

/// The API version of a request with a `/vX.Y` prefix (absent: the newest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiVersion(pub u32, pub u32);

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Strips `/vX.Y` and checks the version; adds Docker's headers to every response.
async fn version_layer(mut req: Request, next: axum::middleware::Next) -> Response {
    let path = req.uri().path().to_string();
    let mut resp = 'r: {
        if let Some(rest) = path.strip_prefix("/v") {
            let (ver, tail) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            if let Some(v) = parse_version(ver) {
                let (min, max) = (parse_version(MIN_API_VERSION), parse_version(API_VERSION));
                if Some(v) < min {
                    break 'r ApiError(CtlError::invalid(format!(
                        "client version {ver} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
                    )))
                    .into_response();
                }
                if Some(v) > max {
                    break 'r ApiError(CtlError::invalid(format!(
                        "client version {ver} is too new. Maximum supported API version is {API_VERSION}"
                    )))
                    .into_response();
                }
                req.extensions_mut().insert(ApiVersion(v.0, v.1));
                let q = req
                    .uri()
                    .query()
                    .map(|q| format!("?{q}"))
                    .unwrap_or_default();
                if let Ok(uri) = format!("{tail}{q}").parse() {
                    *req.uri_mut() = uri;
                }
            }
        }
        next.run(req).await
    };
    let h = resp.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert(
        "Server",
        HeaderValue::from_static(concat!("netloom/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    resp
}

async fn not_implemented(req: Request) -> ApiError {
    let (parts, body) = req.into_parts();
    // Read (and drop) a small body first: answering before it arrived makes hyper close
    // the connection, and a client still writing it sees a broken pipe, not this message.
    let _ = axum::body::to_bytes(body, 1 << 20).await;
    ApiError(CtlError::not_implemented(format!(
        "netloom does not implement {} {}",
        parts.method,
        parts.uri.path()
    )))
}

/// `GET /plugins/{name}/json`: netloom has no managed plugins. A 404 (not a 501) lets
/// `docker inspect NAME` try the next object type and end with `No such object`.
async fn no_such_plugin(axum::extract::Path(name): axum::extract::Path<String>) -> ApiError {
    ApiError(CtlError::not_found(format!("plugin {name:?} not found")))
}

/// The whole service: version handling wrapped around the router, so that `/v1.47/x`
/// is rewritten before routing (a `Router::layer` would run after it).
pub fn service(
    ctl: Ctl,
    swarm: Arc<crate::cluster::Swarm>,
) -> axum::routing::IntoMakeService<
    impl tower::Service<Request, Response = Response, Error = std::convert::Infallible, Future: Send>
    + Clone
    + Send,
> {
    let svc = tower::Layer::layer(
        &axum::middleware::from_fn(version_layer),
        router(ctl, swarm),
    );
    let svc = tower::Layer::layer(&axum::middleware::from_fn(run_to_completion), svc);
    axum::ServiceExt::<Request>::into_make_service(svc)
}

/// Runs each request's handler in a task of its own, so that a client that hangs up
/// (Ctrl-C, a client-side timeout) cannot cancel it half-way: a handler dropped at an
/// `.await` would skip its rollback (e.g. between storing a network and a plugin's
/// `CreateNetwork`). The work finishes, or rolls back, either way; a panic becomes a 500.
async fn run_to_completion(req: Request, next: axum::middleware::Next) -> Response {
    match tokio::spawn(next.run(req)).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::error!(error = %e, "request handler failed");
            ApiError(CtlError::internal(
                "internal error while handling the request",
            ))
            .into_response()
        }
    }
}

/// Builds the router.
pub fn router(ctl: Ctl, swarm: Arc<crate::cluster::Swarm>) -> Router {
    Router::new()
        .route("/swarm", get(swarm::inspect))
        .route("/swarm/init", post(swarm::init))
        .route("/swarm/join", post(swarm::join))
        .route("/swarm/leave", post(swarm::leave))
        .route("/swarm/update", post(swarm::update))
        .route("/swarm/unlockkey", get(swarm::unlock_key))
        .route("/swarm/relay", get(swarm::relay))
        .route("/nodes", get(swarm::nodes))
        .route("/nodes/{id}", get(swarm::node).delete(swarm::node_remove))
        .route("/nodes/{id}/update", post(swarm::node_update))
        .route("/_ping", get(system::ping).head(system::ping_head))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/events", get(system::events))
        .route("/networks", get(networks::list))
        .route("/networks/create", post(networks::create))
        .route("/networks/prune", post(networks::prune))
        .route(
            "/networks/{id}",
            get(networks::inspect).delete(networks::remove),
        )
        .route("/networks/{id}/connect", post(networks::connect))
        .route("/networks/{id}/disconnect", post(networks::disconnect))
        .route("/containers/json", get(containers::list))
        .route("/containers/create", post(containers::create))
        .route("/containers/prune", post(containers::prune))
        .route("/containers/{id}/json", get(containers::inspect))
        .route("/containers/{id}/start", post(containers::start))
        .route("/containers/{id}/stop", post(containers::stop))
        .route("/containers/{id}/restart", post(containers::restart))
        .route("/containers/{id}/kill", post(containers::kill))
        .route("/containers/{id}/rename", post(rename::rename))
        .route("/containers/{id}/top", get(top::top))
        .route("/containers/{id}/wait", post(containers::wait))
        .route("/containers/{id}/logs", get(containers::logs))
        .route("/containers/{id}/attach", post(containers::attach))
        .route("/containers/{id}/exec", post(exec::create))
        .route("/containers/{id}", delete(containers::remove))
        .route("/exec/{id}/start", post(exec::start))
        .route("/exec/{id}/json", get(exec::inspect))
        .route("/exec/{id}/resize", post(exec::resize))
        .route("/containers/{id}/resize", post(containers::resize))
        .route("/containers/{id}/stats", get(stats::stats))
        .route("/images/json", get(images::list))
        .route("/images/create", post(images::create))
        .route("/images/load", post(image_io::load))
        .route("/auth", post(image_io::login))
        .route("/images/get", get(image_io::save_many))
        .route(
            "/images/{*name}",
            get(images::get_sub)
                .post(images::post_sub)
                .delete(images::remove),
        )
        .route("/volumes", get(volumes::list))
        .route("/volumes/create", post(volumes::create))
        .route("/volumes/prune", post(volumes::prune))
        .route(
            "/volumes/{name}",
            get(volumes::inspect)
                .delete(volumes::remove)
                .fallback(not_implemented),
        )
        .route("/plugins/{name}/json", get(no_such_plugin))
        .fallback(not_implemented)
        .layer(axum::extract::DefaultBodyLimit::max(16 << 20))
        .layer(axum::Extension(swarm))
        .with_state(ctl)
}
