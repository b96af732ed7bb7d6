//! `/swarm/*` and `/nodes/*`: Docker's request and response shapes, translated into
//! calls of the daemon's swarm agent (`crate::cluster`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;

use super::{ApiResult, body};
use crate::cluster::{
    InitRequest, JoinRequest, NodeFilter, NodeSpecUpdate, Swarm, SwarmUpdateFlags,
};
use crate::error::CtlError;

/// The swarm agent, as the handlers get it.
pub type Sw = Extension<Arc<Swarm>>;

fn u32_field(v: &Value, field: &str) -> Result<u32, CtlError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(0),
        Some(x) => x
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                CtlError::invalid(format!(
                    "invalid request body: field {field} must be a number"
                ))
            }),
    }
}

fn version(q: &BTreeMap<String, String>) -> Result<u64, CtlError> {
    q.get("version")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| CtlError::invalid("invalid swarm version: give ?version=N from inspect"))
}

/// `POST /swarm/init`.
pub async fn init(Extension(sw): Sw, b: Bytes) -> ApiResult<Response> {
    let v = body::json(&b)?;
    if body::boolean(&v, "ForceNewCluster")? == Some(true) {
        return Err(CtlError::not_implemented(
            "netloom does not implement --force-new-cluster: managers keep their state in etcd, whose quorum returns when more than half of the managers are back",
        )
        .into());
    }
    if body::boolean(&v, "AutoLockManagers")? == Some(true) {
        return Err(CtlError::not_implemented(
            "netloom does not implement autolock (--autolock): managers' keys are not encrypted at rest",
        )
        .into());
    }
    let req = InitRequest {
        listen_addr: body::string(&v, "ListenAddr")?,
        advertise_addr: body::string(&v, "AdvertiseAddr")?,
        data_path_addr: body::string(&v, "DataPathAddr")?,
        data_path_port: u32_field(&v, "DataPathPort")?,
        default_addr_pool: body::strings(&v, "DefaultAddrPool")?,
        subnet_size: u32_field(&v, "SubnetSize")?,
        availability: body::string(&v, "Availability")?,
        spec: body::object(&v, "Spec")?.cloned().unwrap_or(Value::Null),
        cluster_store: body::string(&v, "ClusterStore")?,
    };
    let id = sw.init(req).await?;
    Ok(axum::Json(id).into_response())
}

/// `POST /swarm/join`.
pub async fn join(Extension(sw): Sw, b: Bytes) -> ApiResult<StatusCode> {
    let v = body::json(&b)?;
    let req = JoinRequest {
        listen_addr: body::string(&v, "ListenAddr")?,
        advertise_addr: body::string(&v, "AdvertiseAddr")?,
        data_path_addr: body::string(&v, "DataPathAddr")?,
        remote_addrs: body::strings(&v, "RemoteAddrs")?,
        join_token: body::string(&v, "JoinToken")?,
        availability: body::string(&v, "Availability")?,
    };
    sw.join(req).await?;
    Ok(StatusCode::OK)
}

/// `POST /swarm/leave`.
pub async fn leave(
    axum::extract::State(ctl): axum::extract::State<super::Ctl>,
    Extension(sw): Sw,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult<StatusCode> {
    sw.leave(body::qbool(&q, "force")).await?;
    // As Docker: the swarm's networks leave this node with the swarm.
    ctl.drop_global_copies().await;
    Ok(StatusCode::OK)
}

/// `GET /swarm`.
pub async fn inspect(Extension(sw): Sw) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(sw.inspect().await?))
}

/// `POST /swarm/update`.
pub async fn update(
    Extension(sw): Sw,
    Query(q): Query<BTreeMap<String, String>>,
    b: Bytes,
) -> ApiResult<StatusCode> {
    let version = version(&q)?;
    if body::qbool(&q, "rotateManagerUnlockKey") {
        return Err(CtlError::not_implemented(
            "netloom does not implement autolock, so there is no unlock key to rotate",
        )
        .into());
    }
    let spec = body::json(&b)?;
    let flags = SwarmUpdateFlags {
        rotate_worker_token: body::qbool(&q, "rotateWorkerToken"),
        rotate_manager_token: body::qbool(&q, "rotateManagerToken"),
    };
    sw.update(version, spec, flags).await?;
    Ok(StatusCode::OK)
}

/// `GET /swarm/relay` (netloom): what this node receives of the cluster store.
pub async fn relay(Extension(sw): Sw) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(sw.relay_status()?))
}

/// `GET /swarm/unlockkey`.
pub async fn unlock_key(Extension(sw): Sw) -> ApiResult<StatusCode> {
    sw.inspect().await?;
    Err(CtlError::not_implemented(
        "netloom does not implement autolock (swarm unlock keys): managers' keys are not encrypted at rest",
    )
    .into())
}

/// `GET /nodes`.
pub async fn nodes(
    Extension(sw): Sw,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult<axum::Json<Vec<Value>>> {
    let f = body::filters(
        &q,
        &["id", "name", "role", "membership", "node.label", "label"],
    )?;
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let mut label = get("node.label");
    label.extend(get("label"));
    let filter = NodeFilter {
        id: get("id"),
        name: get("name"),
        role: get("role"),
        membership: get("membership"),
        label,
    };
    Ok(axum::Json(sw.nodes(filter).await?))
}

/// `GET /nodes/{id}`.
pub async fn node(Extension(sw): Sw, Path(id): Path<String>) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(sw.node_inspect(&id).await?))
}

/// `POST /nodes/{id}/update`.
pub async fn node_update(
    Extension(sw): Sw,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    b: Bytes,
) -> ApiResult<StatusCode> {
    let version = version(&q)?;
    let v = body::json(&b)?;
    let spec = NodeSpecUpdate {
        role: body::string(&v, "Role")?,
        availability: body::string(&v, "Availability")?,
        labels: body::string_map(&v, "Labels")?,
    };
    let name = body::string(&v, "Name")?;
    if !name.is_empty() {
        return Err(
            CtlError::not_implemented("netloom does not implement node names (Spec.Name)").into(),
        );
    }
    sw.node_update(&id, version, spec).await?;
    Ok(StatusCode::OK)
}

/// `DELETE /nodes/{id}`.
pub async fn node_remove(
    Extension(sw): Sw,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult<StatusCode> {
    sw.node_remove(&id, body::qbool(&q, "force")).await?;
    Ok(StatusCode::OK)
}
