//! `GET /containers/{id}/stats`: usage read from the container's cgroup and its
//! network namespace, in Docker's format (what `docker stats` computes CPU %,
//! memory and network I/O from).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use netloom_runtime::stats::Sample;
use serde_json::{Value, json};

use super::{ApiResult, Ctl, body};

/// How often a stream sends a sample (Docker's collector interval).
const INTERVAL: Duration = Duration::from_secs(1);

fn cpu_json(s: Option<&Sample>) -> Value {
    let Some(s) = s else {
        return json!({"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}});
    };
    let mut usage = json!({
        "total_usage": s.cpu_total_ns,
        "usage_in_kernelmode": s.cpu_system_ns,
        "usage_in_usermode": s.cpu_user_ns,
    });
    if !s.cpu_percpu_ns.is_empty() {
        usage["percpu_usage"] = json!(s.cpu_percpu_ns);
    }
    json!({
        "cpu_usage": usage,
        "system_cpu_usage": s.system_cpu_ns,
        "online_cpus": s.online_cpus,
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    })
}

/// One stats document.
fn doc(
    name: &str,
    id: &str,
    cur: Option<&Sample>,
    pre: Option<&Sample>,
    read: &str,
    preread: &str,
) -> Value {
    let zero = Sample::default();
    let s = cur.unwrap_or(&zero);
    let mut memory = json!({});
    if cur.is_some() {
        memory = json!({"usage": s.memory_usage, "stats": s.memory_stat, "limit": s.memory_limit});
        if s.memory_max_usage > 0 {
            memory["max_usage"] = json!(s.memory_max_usage);
        }
    }
    let networks: BTreeMap<&String, Value> =
        s.networks.iter().map(|(k, n)| (k, json!(n))).collect();
    let mut pids = json!({"current": s.pids_current});
    if s.pids_limit > 0 {
        pids["limit"] = json!(s.pids_limit);
    }
    let mut v = json!({
        "name": format!("/{name}"),
        "id": id,
        "read": read,
        "preread": preread,
        "pids_stats": if cur.is_some() { pids } else { json!({}) },
        "blkio_stats": {"io_service_bytes_recursive": Value::Null, "io_serviced_recursive": Value::Null,
            "io_queue_recursive": Value::Null, "io_service_time_recursive": Value::Null,
            "io_wait_time_recursive": Value::Null, "io_merged_recursive": Value::Null,
            "io_time_recursive": Value::Null, "sectors_recursive": Value::Null},
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_json(cur),
        "precpu_stats": cpu_json(pre),
        "memory_stats": memory,
    });
    if cur.is_some() {
        v["networks"] = json!(networks);
    }
    v
}

const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn line(v: &Value) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

async fn sample(pid: i32) -> Option<(Sample, String)> {
    let s = tokio::task::spawn_blocking(move || netloom_runtime::stats::sample(pid))
        .await
        .ok()?;
    Some((s, crate::controller::now()))
}

/// `GET /containers/{id}/stats?stream=&one-shot=`.
pub async fn stats(
    State(ctl): State<Ctl>,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult<Response> {
    let v = ctl.inspect_container(&id).await?;
    let c = &v.container;
    let stream = q.get("stream").is_none_or(|_| body::qbool(&q, "stream"));
    let one_shot = body::qbool(&q, "one-shot");
    let (name, cid, pid, running) = (c.name.clone(), c.id.clone(), c.state.pid, c.is_running());
    let body = if !running {
        // As Docker: a stopped container's stats are all zero.
        let d = doc(&name, &cid, None, None, ZERO_TIME, ZERO_TIME);
        Body::from(line(&d))
    } else if !stream {
        let first = sample(pid).await;
        let (pre, cur) = if one_shot {
            (None, first)
        } else {
            tokio::time::sleep(INTERVAL).await;
            (first, sample(pid).await)
        };
        let d = doc(
            &name,
            &cid,
            cur.as_ref().map(|c| &c.0),
            pre.as_ref().map(|p| &p.0),
            cur.as_ref().map_or(ZERO_TIME, |c| c.1.as_str()),
            pre.as_ref().map_or(ZERO_TIME, |p| p.1.as_str()),
        );
        Body::from(line(&d))
    } else {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let ctl2 = ctl.clone();
        tokio::spawn(async move {
            let mut pre: Option<(Sample, String)> = None;
            loop {
                let still = ctl2
                    .inspect_container(&cid)
                    .await
                    .is_ok_and(|v| v.container.is_running() && v.container.state.pid == pid);
                let cur = if still { sample(pid).await } else { None };
                let d = doc(
                    &name,
                    &cid,
                    cur.as_ref().map(|c| &c.0),
                    pre.as_ref().map(|p| &p.0),
                    cur.as_ref().map_or(ZERO_TIME, |c| c.1.as_str()),
                    pre.as_ref().map_or(ZERO_TIME, |p| p.1.as_str()),
                );
                if tx.send(line(&d)).await.is_err() || !still {
                    return;
                }
                pre = cur;
                tokio::time::sleep(INTERVAL).await;
            }
        });
        let s = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<Bytes, std::io::Error>(b), rx))
        });
        Body::from_stream(s)
    };
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_shape() {
        let s = Sample {
            cpu_total_ns: 10,
            system_cpu_ns: 1000,
            online_cpus: 2,
            memory_usage: 4096,
            memory_limit: 1 << 30,
            pids_current: 3,
            pids_limit: 20,
            ..Sample::default()
        };
        let d = doc("c1", "abc", Some(&s), None, "t1", ZERO_TIME);
        assert_eq!(d["name"], "/c1");
        assert_eq!(d["cpu_stats"]["cpu_usage"]["total_usage"], 10);
        assert_eq!(d["cpu_stats"]["online_cpus"], 2);
        assert_eq!(d["memory_stats"]["usage"], 4096);
        assert_eq!(d["pids_stats"], json!({"current": 3, "limit": 20}));
        assert_eq!(d["precpu_stats"]["cpu_usage"]["total_usage"], 0);
        let z = doc("c1", "abc", None, None, ZERO_TIME, ZERO_TIME);
        assert_eq!(z["memory_stats"], json!({}));
        assert!(z.get("networks").is_none());
    }
}
