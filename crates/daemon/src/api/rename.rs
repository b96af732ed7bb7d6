//! `POST /containers/{id}/rename?name=`.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{ApiResult, Ctl};

/// `POST /containers/{id}/rename?name=NEW`: 204, 404 for an unknown container, 409 for
/// a name in use, 400 for a bad or missing name.
pub async fn rename(
    State(ctl): State<Ctl>,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult<Response> {
    let name = q.get("name").map(String::as_str).unwrap_or("");
    ctl.rename_container(&id, name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
