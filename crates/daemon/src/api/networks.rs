//! `/networks/*`.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use netloom_model::EndpointRequest;
use serde_json::{Value, json};

use super::{ApiResult, Ctl, body, view};
use crate::controller::networks::IpamConfigRequest;
use crate::controller::{ConnectRequest, NetworkCreate, NetworkFilter};
use crate::error::CtlError;

fn parse_until(s: &str) -> Result<i64, CtlError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(now - d.as_secs() as i64);
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(crate::controller::created_unix(
            &humantime::format_rfc3339(t).to_string(),
        ));
    }
    Err(CtlError::invalid(format!(
        "invalid filter 'until={s}': use a Unix time, an RFC 3339 time or a duration like 24h"
    )))
}

fn filter_of(q: &BTreeMap<String, String>, prune: bool) -> Result<NetworkFilter, CtlError> {
    let allowed: &[&str] = if prune {
        &["until", "label", "label!"]
    } else {
        &["name", "id", "driver", "label", "scope", "type", "dangling"]
    };
    let f = body::filters(q, allowed)?;
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let dangling = match f.get("dangling").and_then(|v| v.first()) {
        None => None,
        Some(v) => match v.as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => return Err(CtlError::invalid(format!("invalid filter 'dangling={v}'"))),
        },
    };
    for t in get("type") {
        if t != "custom" && t != "builtin" {
            return Err(CtlError::invalid(format!("invalid filter: 'type'='{t}'")));
        }
    }
    let until = match f.get("until").and_then(|v| v.first()) {
        Some(s) => Some(parse_until(s)?),
        None => None,
    };
    Ok(NetworkFilter {
        name: get("name"),
        id: get("id"),
        driver: get("driver"),
        label: get("label"),
        scope: get("scope"),
        kind: get("type"),
        dangling,
        label_not: get("label!"),
        until,
    })
}

/// `GET /networks`.
pub async fn list(
    State(ctl): State<Ctl>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult<Response> {
    let f = filter_of(&q, false)?;
    let nets = ctl.list_networks(&f).await;
    let v: Vec<Value> = nets.iter().map(|n| view::network(n, true)).collect();
    Ok(axum::Json(v).into_response())
}

/// `GET /networks/{id}`.
pub async fn inspect(
    State(ctl): State<Ctl>,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult<Response> {
    if let Some(v) = q.get("verbose")
        && !matches!(
            v.as_str(),
            "1" | "t"
                | "T"
                | "TRUE"
                | "true"
                | "True"
                | "0"
                | "f"
                | "F"
                | "FALSE"
                | "false"
                | "False"
        )
    {
        return Err(CtlError::invalid(format!("invalid value for verbose: {v}")).into());
    }
    let n = ctl.inspect_network(&id).await?;
    Ok(axum::Json(view::network(&n, true)).into_response())
}

/// `POST /networks/create`.
pub async fn create(State(ctl): State<Ctl>, raw: Bytes) -> ApiResult<Response> {
    let v = body::json(&raw)?;
    let mut ipam_driver = String::new();
    let mut ipam_options = BTreeMap::new();
    let mut ipam_configs = Vec::new();
    if let Some(ipam) = body::object(&v, "IPAM")? {
        ipam_driver = body::string(ipam, "Driver")?;
        ipam_options = body::string_map(ipam, "Options")?;
        match ipam.get("Config") {
            None | Some(Value::Null) => {}
            Some(Value::Array(list)) => {
                for c in list {
                    if !c.is_object() {
                        return Err(CtlError::invalid(
                            "invalid request body: IPAM.Config entries must be objects",
                        )
                        .into());
                    }
                    ipam_configs.push(IpamConfigRequest {
                        subnet: body::string(c, "Subnet")?,
                        ip_range: body::string(c, "IPRange")?,
                        gateway: body::string(c, "Gateway")?,
                        aux: body::string_map(c, "AuxiliaryAddresses")?,
                    });
                }
            }
            Some(_) => {
                return Err(CtlError::invalid(
                    "invalid request body: field IPAM.Config must be a list",
                )
                .into());
            }
        }
    }
    let config_from = body::object(&v, "ConfigFrom")?
        .map(|o| body::string(o, "Network"))
        .transpose()?
        .filter(|s| !s.is_empty());
    let req = NetworkCreate {
        name: body::string(&v, "Name")?,
        driver: body::string(&v, "Driver")?,
        scope: body::string(&v, "Scope")?,
        enable_ipv4: body::boolean(&v, "EnableIPv4")?,
        enable_ipv6: body::boolean(&v, "EnableIPv6")?,
        ipam_driver,
        ipam_options,
        ipam_configs,
        internal: body::boolean(&v, "Internal")?.unwrap_or(false),
        attachable: body::boolean(&v, "Attachable")?.unwrap_or(false),
        ingress: body::boolean(&v, "Ingress")?.unwrap_or(false),
        config_only: body::boolean(&v, "ConfigOnly")?.unwrap_or(false),
        config_from,
        options: body::string_map(&v, "Options")?,
        labels: body::string_map(&v, "Labels")?,
    };
    let id = ctl.create_network(req).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"Id": id, "Warning": ""})),
    )
        .into_response())
}

/// `DELETE /networks/{id}`.
pub async fn remove(State(ctl): State<Ctl>, Path(id): Path<String>) -> ApiResult<Response> {
    ctl.remove_network(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Parses an `EndpointSettings` object.
/// Validates a requested MAC address (`--mac-address`): six hex bytes, unicast, not
/// all zero. Returns it in canonical lower-case form; empty stays empty.
pub fn check_mac(mac: &str) -> Result<String, CtlError> {
    if mac.is_empty() {
        return Ok(String::new());
    }
    let bad = |why: &str| {
        CtlError::invalid(format!(
            "invalid MAC address {mac:?}: {why}; use six hex bytes like 02:42:ac:11:00:05"
        ))
    };
    let m = netloom_model::network::parse_mac(mac)
        .filter(|_| mac.split(':').all(|p| p.len() == 2))
        .ok_or_else(|| bad("it is not a MAC address"))?;
    if m[0] & 1 == 1 {
        return Err(bad("it is a multicast address"));
    }
    if m == [0; 6] {
        return Err(bad("it is all zero"));
    }
    Ok(m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":"))
}

/// Parses Docker's endpoint settings (`EndpointSettings`) of a connect or create request.
pub fn endpoint_request(v: Option<&Value>) -> Result<EndpointRequest, CtlError> {
    let Some(v) = v else {
        return Ok(EndpointRequest::default());
    };
    if v.is_null() {
        return Ok(EndpointRequest::default());
    }
    if !v.is_object() {
        return Err(CtlError::invalid(
            "invalid request body: endpoint settings must be an object",
        ));
    }
    let mut r = EndpointRequest {
        aliases: body::strings(v, "Aliases")?,
        links: body::strings(v, "Links")?,
        ..Default::default()
    };
    if let Some(ipam) = body::object(v, "IPAMConfig")? {
        let v4 = body::string(ipam, "IPv4Address")?;
        let v6 = body::string(ipam, "IPv6Address")?;
        if !v4.is_empty() {
            let a = v4.parse::<std::net::Ipv4Addr>().map_err(|_| {
                CtlError::invalid(format!(
                    "invalid IPv4 address: {v4}: it must be a single IPv4 address, like 172.18.0.5"
                ))
            })?;
            r.ipv4 = Some(a.into());
        }
        if !v6.is_empty() {
            let a = v6.parse::<std::net::Ipv6Addr>().map_err(|_| {
                CtlError::invalid(format!(
                    "invalid IPv6 address: {v6}: it must be a single IPv6 address, like fd00::5"
                ))
            })?;
            r.ipv6 = Some(a.into());
        }
    }
    r.mac = check_mac(&body::string(v, "MacAddress")?)?;
    match v.get("DriverOpts") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, val) in m {
                let Some(val) = val.as_str() else {
                    return Err(CtlError::invalid(format!(
                        "invalid request body: DriverOpts {k:?} must be a string (--driver-opt {k}=VALUE)"
                    )));
                };
                r.driver_opts.insert(k.clone(), val.to_string());
            }
        }
        Some(_) => {
            return Err(CtlError::invalid(
                "invalid request body: DriverOpts must be an object of strings",
            ));
        }
    }
    for a in &r.aliases {
        if !netloom_model::is_valid_name(a) && !a.contains('.') {
            return Err(CtlError::invalid(format!("invalid alias {a:?}")));
        }
    }
    Ok(r)
}

/// `POST /networks/{id}/connect`.
pub async fn connect(
    State(ctl): State<Ctl>,
    Path(id): Path<String>,
    raw: Bytes,
) -> ApiResult<Response> {
    let v = body::json(&raw)?;
    let container = body::string(&v, "Container")?;
    if container.is_empty() {
        return Err(CtlError::invalid("invalid request body: Container is required").into());
    }
    let endpoint = endpoint_request(v.get("EndpointConfig"))?;
    ctl.connect(
        &id,
        ConnectRequest {
            container,
            endpoint,
        },
    )
    .await?;
    Ok(StatusCode::OK.into_response())
}

/// `POST /networks/{id}/disconnect`.
pub async fn disconnect(
    State(ctl): State<Ctl>,
    Path(id): Path<String>,
    raw: Bytes,
) -> ApiResult<Response> {
    let v = body::json(&raw)?;
    let container = body::string(&v, "Container")?;
    if container.is_empty() {
        return Err(CtlError::invalid("invalid request body: Container is required").into());
    }
    let force = body::boolean(&v, "Force")?.unwrap_or(false);
    ctl.disconnect(&id, &container, force).await?;
    Ok(StatusCode::OK.into_response())
}

/// `POST /networks/prune`.
pub async fn prune(
    State(ctl): State<Ctl>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult<Response> {
    let f = filter_of(&q, true)?;
    let names = ctl.prune_networks(&f).await?;
    Ok(axum::Json(json!({"NetworksDeleted": names})).into_response())
}
