//! `GET /containers/{id}/top?ps_args=`.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{ApiResult, Ctl};

/// `GET /containers/{id}/top?ps_args=`: `{"Titles": [...], "Processes": [[...]]}`.
pub async fn top(
    State(ctl): State<Ctl>,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult<Response> {
    let args = q.get("ps_args").map(String::as_str).unwrap_or("");
    let t = ctl.top_container(&id, args).await?;
    Ok(axum::Json(json!({"Titles": t.titles, "Processes": t.processes})).into_response())
}
