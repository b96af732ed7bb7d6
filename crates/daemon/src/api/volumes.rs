//! `/volumes/*`: create, list, inspect, remove, prune (Docker's shapes and messages).

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use super::{ApiResult, ApiVersion, Ctl, body};
use crate::controller::{VolumeCreate, VolumeFilter, VolumeView};
use crate::error::CtlError;

/// A volume as Docker shows it.
pub fn volume_json(v: &VolumeView) -> Value {
    let map = |m: &BTreeMap<String, String>| {
        if m.is_empty() { Value::Null } else { json!(m) }
    };
    json!({
        "CreatedAt": v.volume.created,
        "Driver": v.volume.driver,
        "Labels": map(&v.volume.labels),
        "Mountpoint": v.mountpoint,
        "Name": v.volume.name,
        "Options": map(&v.volume.options),
        "Scope": "local",
    })
}

fn filter_of(f: &BTreeMap<String, Vec<String>>) -> Result<VolumeFilter, CtlError> {
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let dangling = match f.get("dangling").and_then(|v| v.first()) {
        None => None,
        Some(v) => match v.as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => {
                return Err(CtlError::invalid(format!(
                    "invalid filter 'dangling={v}': use true or false"
                )));
            }
        },
    };
    Ok(VolumeFilter {
        dangling,
        driver: get("driver"),
        label: get("label"),
        not_label: get("label!"),
        name: get("name"),
    })
}

/// `GET /volumes?filters=`.
pub async fn list(
    State(ctl): State<Ctl>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult<Response> {
    let f = body::filters(&q, &["dangling", "driver", "label", "name"])?;
    let vols: Vec<Value> = ctl
        .list_volumes(&filter_of(&f)?)
        .await
        .iter()
        .map(volume_json)
        .collect();
    Ok(axum::Json(json!({"Volumes": vols, "Warnings": []})).into_response())
}

/// `POST /volumes/create`.
pub async fn create(State(ctl): State<Ctl>, raw: Bytes) -> ApiResult<Response> {
    let v = if raw.is_empty() {
        json!({})
    } else {
        body::json(&raw)?
    };
    if v.get("ClusterVolumeSpec").is_some_and(|c| !c.is_null()) {
        return Err(CtlError::invalid(
            "cluster volumes are not supported by netloom: remove ClusterVolumeSpec (netloom's volumes are local)",
        )
        .into());
    }
    let req = VolumeCreate {
        name: body::string(&v, "Name")?,
        driver: body::string(&v, "Driver")?,
        options: body::string_map(&v, "DriverOpts")?,
        labels: body::string_map(&v, "Labels")?,
    };
    let view = ctl.create_volume(req).await?;
    Ok((StatusCode::CREATED, axum::Json(volume_json(&view))).into_response())
}

/// `GET /volumes/{name}`.
pub async fn inspect(State(ctl): State<Ctl>, Path(name): Path<String>) -> ApiResult<Response> {
    let v = ctl.inspect_volume(&name).await?;
    Ok(axum::Json(volume_json(&v)).into_response())
}

/// `DELETE /volumes/{name}?force=`.
pub async fn remove(
    State(ctl): State<Ctl>,
    Path(name): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult<Response> {
    ctl.remove_volume(&name, body::qbool(&q, "force")).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /volumes/prune?filters=`: unused anonymous volumes, or every unused one with
/// `all=true` (or an API version below 1.42, as Docker).
pub async fn prune(
    State(ctl): State<Ctl>,
    Query(q): Query<BTreeMap<String, String>>,
    version: Option<axum::Extension<ApiVersion>>,
) -> ApiResult<Response> {
    let f = body::filters(&q, &["label", "label!", "all"])?;
    let old_api = version.is_some_and(|axum::Extension(ApiVersion(a, b))| (a, b) < (1, 42));
    let all = match f.get("all").and_then(|v| v.first()).map(String::as_str) {
        None => old_api,
        Some("true" | "1") => true,
        Some("false" | "0") => false,
        Some(v) => {
            return Err(
                CtlError::invalid(format!("invalid filter 'all={v}': use true or false")).into(),
            );
        }
    };
    let (names, bytes) = ctl.prune_volumes(&filter_of(&f)?, all).await?;
    Ok(axum::Json(json!({"VolumesDeleted": names, "SpaceReclaimed": bytes})).into_response())
}
