//! `/images/*`: import (`docker import`), list, inspect, remove; pulls, load, save,
//! history and tags are in `image_io.rs`.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::{ApiResult, Ctl, body, view};
use crate::error::CtlError;

/// Largest upload accepted (compressed or not).
const MAX_UPLOAD: u64 = 4 << 30;

/// `POST /images/create`: `fromImage=&tag=&platform=` pulls (see `image_io::pull`),
/// `fromSrc=-&repo=&tag=&changes=&message=` imports the body.
pub async fn create(
    State(ctl): State<Ctl>,
    Query(q): Query<BTreeMap<String, String>>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
    headers: axum::http::HeaderMap,
    req_body: Body,
) -> ApiResult<Response> {
    if q.contains_key("fromImage") {
        return super::image_io::pull(ctl, q, headers).await;
    }
    match q.get("fromSrc").map(String::as_str) {
        Some("-") => {}
        Some(src) => {
            return Err(CtlError::invalid(format!(
                "cannot import from {src}: netloom imports only from the request body (fromSrc=-)"
            ))
            .into());
        }
        None => {
            return Err(CtlError::invalid(
                "missing fromSrc: use fromSrc=- with the tarball as the body",
            )
            .into());
        }
    }
    let reference = match (
        q.get("repo").filter(|r| !r.is_empty()),
        q.get("tag").filter(|t| !t.is_empty()),
    ) {
        (Some(r), Some(t)) => Some(format!("{r}:{t}")),
        (Some(r), None) => Some(r.clone()),
        (None, _) => None,
    };
    // `changes` comes once per `--change` (the docker CLI repeats it), or as one JSON list.
    let mut changes: Vec<String> = Vec::new();
    for (k, c) in url_pairs(raw.as_deref().unwrap_or("")) {
        if k != "changes" {
            continue;
        }
        if c.starts_with('[') {
            let list: Vec<String> = serde_json::from_str(&c)
                .map_err(|e| CtlError::invalid(format!("invalid changes: {e}")))?;
            changes.extend(list);
        } else if !c.is_empty() {
            changes.push(c);
        }
    }
    let message = q.get("message").cloned();
    let tmp = save_upload(&ctl, req_body).await?;
    let out = ctl
        .import_image(&tmp, reference.as_deref(), &changes, message.as_deref())
        .await;
    let _ = tokio::fs::remove_file(&tmp).await;
    let img = out?;
    Ok(axum::Json(json!({"status": img.id})).into_response())
}

/// Saves a request body to a file under the daemon's tmp directory (bounded).
pub(super) async fn save_upload(ctl: &Ctl, req_body: Body) -> Result<std::path::PathBuf, CtlError> {
    let tmp = ctl
        .paths_tmp()
        .join(format!("upload-{}", &crate::controller::new_id()[..12]));
    let mut f = tokio::fs::File::create(&tmp)
        .await
        .map_err(|e| CtlError::internal(format!("create {}: {e}", tmp.display())))?;
    let mut stream = req_body.into_data_stream();
    let mut total: u64 = 0;
    let res: Result<(), CtlError> = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| CtlError::invalid(format!("reading the upload: {e}")))?;
            total += chunk.len() as u64;
            if total > MAX_UPLOAD {
                return Err(CtlError::invalid(format!(
                    "upload too large: the limit is {} GiB",
                    MAX_UPLOAD >> 30
                )));
            }
            f.write_all(&chunk)
                .await
                .map_err(|e| CtlError::internal(format!("write upload: {e}")))?;
        }
        f.flush()
            .await
            .map_err(|e| CtlError::internal(format!("write upload: {e}")))
    }
    .await;
    drop(f);
    if let Err(e) = res {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e);
    }
    Ok(tmp)
}

/// `GET /images/json`.
pub async fn list(
    State(ctl): State<Ctl>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult<Response> {
    let f = body::filters(&q, &["dangling", "reference", "label", "before", "since"])?;
    let dangling = match f
        .get("dangling")
        .and_then(|v| v.first())
        .map(String::as_str)
    {
        None => None,
        Some("true") | Some("1") => Some(true),
        Some("false") | Some("0") => Some(false),
        Some(v) => return Err(CtlError::invalid(format!("invalid filter 'dangling={v}'")).into()),
    };
    let refs = f.get("reference").cloned().unwrap_or_default();
    let v: Vec<_> = ctl
        .list_images()
        .await
        .iter()
        .filter(|i| dangling.map(|d| d == i.tags.is_empty()).unwrap_or(true))
        .filter(|i| {
            refs.is_empty()
                || refs.iter().any(|r| {
                    let want = crate::controller::normalize_ref(r);
                    i.tags
                        .iter()
                        .any(|t| t == &want || t.split(':').next() == Some(r.as_str()))
                })
        })
        .map(|i| view::image(i, false))
        .collect();
    Ok(axum::Json(v).into_response())
}

/// `GET /images/{name}/json|history|get` (names may contain `/`).
pub async fn get_sub(State(ctl): State<Ctl>, Path(name): Path<String>) -> ApiResult<Response> {
    if let Some(n) = name.strip_suffix("/json") {
        let i = ctl.inspect_image(n).await?;
        return Ok(axum::Json(view::image(&i, true)).into_response());
    }
    if let Some(n) = name.strip_suffix("/history") {
        return Ok(axum::Json(ctl.image_history(n).await?).into_response());
    }
    if let Some(n) = name.strip_suffix("/get") {
        return super::image_io::save(ctl, vec![n.to_string()]).await;
    }
    Err(CtlError::not_implemented(format!("netloom does not implement GET /images/{name}")).into())
}

/// `POST /images/{name}/tag?repo=&tag=`; pushing is not implemented.
pub async fn post_sub(
    State(ctl): State<Ctl>,
    Path(name): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult<Response> {
    if let Some(n) = name.strip_suffix("/tag") {
        let repo = q.get("repo").map(String::as_str).unwrap_or_default();
        if repo.is_empty() {
            return Err(
                CtlError::invalid("missing repo: give the new name as ?repo=NAME&tag=TAG").into(),
            );
        }
        let tag = q.get("tag").map(String::as_str).unwrap_or_default();
        ctl.tag_image(n, repo, tag).await?;
        return Ok(axum::http::StatusCode::CREATED.into_response());
    }
    if let Some(n) = name.strip_suffix("/push") {
        return Err(CtlError::not_implemented(format!(
            "netloom does not push images ({n}): push them with skopeo or a docker engine"
        ))
        .into());
    }
    Err(CtlError::not_implemented(format!("netloom does not implement POST /images/{name}")).into())
}

/// `DELETE /images/{name}`.
pub async fn remove(
    State(ctl): State<Ctl>,
    Path(name): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult<Response> {
    let out = ctl.remove_image(&name, body::qbool(&q, "force")).await?;
    let v: Vec<_> = out.into_iter().map(|(k, v)| json!({ k: v })).collect();
    Ok(axum::Json(v).into_response())
}

/// The decoded `key=value` pairs of a query string, repeated keys kept in order.
fn url_pairs(raw: &str) -> Vec<(String, String)> {
    let dec = |s: &str| {
        urlencoding::decode(&s.replace('+', " "))
            .map(|c| c.into_owned())
            .unwrap_or_else(|_| s.to_string())
    };
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (dec(k), dec(v))
        })
        .collect()
}
