//! Pull (`POST /images/create?fromImage=`), load (`POST /images/load`) and save
//! (`GET /images/get`, `GET /images/{name}/get`), with Docker's JSON progress messages.

use std::collections::BTreeMap;
use std::io::Write;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use netloom_runtime::registry::{Credentials, ImageRef, LayerStatus, Platform, Progress};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{ApiResult, Ctl};
use crate::controller::PullRequest;
use crate::controller::reg_err;
use crate::error::CtlError;

/// `/info`'s `RegistryConfig`, as dockerd shows its registry settings.
pub fn registry_info(r: &netloom_runtime::registry::RegistryConfig) -> Value {
    use netloom_runtime::registry::Insecure;
    let mirrors: Vec<String> = r
        .mirrors
        .iter()
        .map(|m| format!("{}://{}/", if m.http { "http" } else { "https" }, m.host))
        .collect();
    let mut index = serde_json::Map::new();
    index.insert(
        "docker.io".into(),
        json!({"Name": "docker.io", "Mirrors": mirrors, "Secure": true, "Official": true}),
    );
    let mut cidrs = Vec::new();
    for i in &r.insecure {
        match i {
            Insecure::Net(n) => cidrs.push(n.to_string()),
            Insecure::Host(h) => {
                index.insert(
                    h.clone(),
                    json!({"Name": h, "Mirrors": [], "Secure": false, "Official": false}),
                );
            }
        }
    }
    json!({
        "AllowNondistributableArtifactsCIDRs": Value::Null,
        "AllowNondistributableArtifactsHostnames": Value::Null,
        "InsecureRegistryCIDRs": cidrs,
        "IndexConfigs": index,
        "Mirrors": mirrors,
    })
}

/// go-units' `HumanSize` (4 significant digits, powers of 1000): `4.719MB`.
fn human(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    // %.4g
    let digits = if v >= 1000.0 {
        0
    } else if v >= 100.0 {
        1
    } else if v >= 10.0 {
        2
    } else {
        3
    };
    let s = format!("{v:.digits$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{}", UNITS[i])
}

/// Docker's progress bar text: `[=====>      ]  1.2MB/3.4MB`.
pub fn progress_bar(current: u64, total: u64) -> String {
    const WIDTH: u64 = 50;
    if total == 0 {
        return format!("{:>8}", human(current));
    }
    let n = (current.min(total) * WIDTH / total).max(1);
    let bar = format!(
        "[{}>{}]",
        "=".repeat((n - 1) as usize),
        " ".repeat((WIDTH - n) as usize)
    );
    format!("{bar} {:>8}/{}", human(current), human(total))
}

/// One JSON message of a layer's progress.
pub fn progress_json(p: &Progress) -> Value {
    let (status, detail) = match &p.status {
        LayerStatus::Waiting => ("Pulling fs layer".to_string(), None),
        LayerStatus::Exists => ("Already exists".to_string(), None),
        LayerStatus::Downloading { current, total } => {
            ("Downloading".to_string(), Some((*current, *total)))
        }
        LayerStatus::Retrying { seconds } => (
            format!(
                "Retrying in {seconds} second{}",
                if *seconds == 1 { "" } else { "s" }
            ),
            None,
        ),
        LayerStatus::Verifying => ("Verifying Checksum".to_string(), None),
        LayerStatus::Downloaded => ("Download complete".to_string(), None),
        LayerStatus::Extracting { current, total } => {
            ("Extracting".to_string(), Some((*current, *total)))
        }
        LayerStatus::Complete => ("Pull complete".to_string(), None),
    };
    match detail {
        Some((current, total)) => json!({
            "status": status,
            "progressDetail": {"current": current, "total": total},
            "progress": progress_bar(current, total),
            "id": p.layer,
        }),
        None => json!({"status": status, "progressDetail": {}, "id": p.layer}),
    }
}

fn line(v: &Value) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.extend_from_slice(b"\r\n");
    Bytes::from(b)
}

/// Docker's in-stream error message.
fn error_json(msg: &str) -> Value {
    json!({"errorDetail": {"message": msg}, "error": msg})
}

fn json_stream(rx: mpsc::Receiver<Bytes>) -> Response {
    let mut rx = rx;
    let stream = futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|o| o.map(Ok::<Bytes, std::io::Error>))
    });
    let mut resp = Body::from_stream(stream).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The reference a pull asks for: `fromImage`, with `tag` (a tag or a digest)
/// replacing its own, as dockerd reads them.
fn pull_ref(q: &BTreeMap<String, String>) -> Result<ImageRef, CtlError> {
    let from = q.get("fromImage").map(String::as_str).unwrap_or_default();
    if from.is_empty() {
        return Err(CtlError::invalid(
            "missing fromImage: name the image to pull",
        ));
    }
    let mut r = ImageRef::parse(from).map_err(reg_err)?;
    match q.get("tag").map(String::as_str).filter(|t| !t.is_empty()) {
        Some(t) if t.starts_with("sha256:") => {
            let d = ImageRef::parse(&format!("x@{t}")).map_err(reg_err)?;
            r.tag = None;
            r.digest = d.digest;
        }
        Some(t) => {
            if !netloom_runtime::registry::valid_tag(t) {
                return Err(CtlError::invalid(format!(
                    "invalid tag {t:?}: a tag is 1-128 characters of [A-Za-z0-9_.-], not starting with '.' or '-'"
                )));
            }
            r.tag = Some(t.to_string());
        }
        None => {}
    }
    if r.tag.is_none() && r.digest.is_none() {
        return Err(CtlError::not_implemented(format!(
            "netloom does not pull every tag of a repository (docker pull --all-tags): name a tag, e.g. {}:latest",
            r.familiar_name()
        )));
    }
    Ok(r)
}

/// `POST /images/create?fromImage=&tag=&platform=` with `X-Registry-Auth`.
///
/// The registry is asked first (manifest, platform, config): its refusal is this
/// request's error status. Then the answer streams layer progress, `Digest:` and
/// `Status:` lines, or an in-stream error if a download or an unpack fails.
pub async fn pull(
    ctl: Ctl,
    q: BTreeMap<String, String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    for k in q.keys() {
        if !matches!(k.as_str(), "fromImage" | "tag" | "platform") {
            return Err(CtlError::invalid(format!(
                "netloom does not support the pull parameter {k:?} (fromImage, tag and platform are supported)"
            ))
            .into());
        }
    }
    let image = pull_ref(&q)?;
    let platform = match q
        .get("platform")
        .map(String::as_str)
        .filter(|p| !p.is_empty())
    {
        Some(p) => Some(Platform::parse(p).map_err(reg_err)?),
        None => None,
    };
    let creds = match headers.get("X-Registry-Auth") {
        Some(h) => Credentials::from_header(h.to_str().unwrap_or_default()).map_err(reg_err)?,
        None => Credentials::Anonymous,
    };
    let req = PullRequest {
        image: image.clone(),
        platform,
        creds,
    };
    let resolved = ctl.resolve_pull(&req).await?;
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    // Docker names the repository as the registry knows it: `library/busybox`.
    let path = &image.path;
    let first = json!({"status": format!("Pulling from {path}"), "id": image.tag_or_digest()});
    let _ = tx.send(line(&first)).await;
    tokio::spawn(async move {
        let (ptx, mut prx) = mpsc::unbounded_channel::<Progress>();
        let fwd_tx = tx.clone();
        let fwd = tokio::spawn(async move {
            while let Some(p) = prx.recv().await {
                // A client that stopped reading does not stop the pull.
                let _ = fwd_tx.send(line(&progress_json(&p))).await;
            }
        });
        let out = ctl.finish_pull(resolved, &ptx).await;
        drop(ptx);
        let _ = fwd.await;
        match out {
            Ok(o) => {
                let shown = if image.digest.is_some() {
                    o.repo_digest.clone()
                } else {
                    image.familiar_tagged()
                };
                let digest = o
                    .repo_digest
                    .rsplit('@')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let _ = tx
                    .send(line(&json!({"status": format!("Digest: {digest}")})))
                    .await;
                let status = if o.new {
                    format!("Status: Downloaded newer image for {shown}")
                } else {
                    format!("Status: Image is up to date for {shown}")
                };
                let _ = tx.send(line(&json!({"status": status}))).await;
            }
            Err(e) => {
                tracing::warn!(image = %image, error = %e.message, "pull failed");
                let _ = tx.send(line(&error_json(&e.message))).await;
            }
        }
    });
    Ok(json_stream(rx))
}

/// `POST /auth` (`docker login`): `{"username","password","serveraddress"}`.
pub async fn login(State(ctl): State<Ctl>, raw: Bytes) -> ApiResult<Response> {
    let creds = Credentials::from_json(&raw).map_err(reg_err)?;
    let v: Value = serde_json::from_slice(&raw).unwrap_or_default();
    let server = v
        .get("serveraddress")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    ctl.login(&server, &creds).await?;
    Ok(axum::Json(json!({"Status": "Login Succeeded", "IdentityToken": ""})).into_response())
}

/// `POST /images/load?quiet=`: the body is a `docker save` archive or a tarred OCI
/// layout; the answer lists what was loaded (`Loaded image: NAME`).
pub async fn load(
    State(ctl): State<Ctl>,
    axum::extract::Query(q): axum::extract::Query<BTreeMap<String, String>>,
    req_body: Body,
) -> ApiResult<Response> {
    for k in q.keys() {
        if k != "quiet" {
            return Err(CtlError::invalid(format!(
                "netloom does not support the load parameter {k:?} (quiet is supported)"
            ))
            .into());
        }
    }
    let tmp = super::images::save_upload(&ctl, req_body).await?;
    let out = ctl.load_images(&tmp).await;
    let _ = tokio::fs::remove_file(&tmp).await;
    let loaded = out?;
    let mut body = Vec::new();
    for l in &loaded {
        if l.tags.is_empty() {
            body.extend_from_slice(&line(
                &json!({"stream": format!("Loaded image ID: {}\n", l.id)}),
            ));
        }
        for t in &l.tags {
            body.extend_from_slice(&line(&json!({"stream": format!("Loaded image: {t}\n")})));
        }
    }
    let mut resp = Body::from(body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// `GET /images/get?names=A&names=B`.
pub async fn save_many(State(ctl): State<Ctl>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let mut names = Vec::new();
    for pair in q.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = urlencoding::decode(&v.replace('+', " "))
            .map(|c| c.into_owned())
            .map_err(|_| CtlError::invalid(format!("invalid query parameter {pair:?}")))?;
        match k {
            "names" => names.push(v),
            _ => {
                return Err(CtlError::invalid(format!(
                    "netloom does not support the save parameter {k:?} (names is supported)"
                ))
                .into());
            }
        }
    }
    save(ctl, names).await
}

/// A channel as a blocking writer, in 256 KiB chunks.
struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= 256 << 10 {
            self.flush()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

/// Streams the archive of `names` (a tar, `application/x-tar`).
pub async fn save(ctl: Ctl, names: Vec<String>) -> ApiResult<Response> {
    let plan = ctl.save_plan(&names).await?;
    let store = ctl.image_store()?;
    let (tx, mut rx) = mpsc::channel::<Bytes>(8);
    tokio::task::spawn_blocking(move || {
        let w = ChannelWriter {
            tx,
            buf: Vec::new(),
        };
        if let Err(e) = netloom_runtime::registry::archive::save(&store, &plan, w) {
            // The status is sent already: cutting the archive short is how a client
            // learns (it gets no end-of-archive marker).
            tracing::warn!(error = %crate::error::chain(&e), "image save failed");
        }
    });
    let stream = futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|o| o.map(Ok::<Bytes, std::io::Error>))
    });
    let mut resp = Body::from_stream(stream).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_bars_as_docker() {
        assert_eq!(human(0), "0B");
        assert_eq!(human(728), "728B");
        assert_eq!(human(1_200), "1.2kB");
        assert_eq!(human(4_718_592), "4.719MB");
        assert_eq!(human(1_000_000), "1MB");
        let b = progress_bar(25, 100);
        assert!(b.starts_with("[===========>"), "{b}");
        assert!(b.ends_with("25B/100B"), "{b}");
        assert_eq!(b.find(']'), Some(51));
    }

    #[test]
    fn pull_references() {
        let q = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        let r = pull_ref(&q(&[("fromImage", "busybox"), ("tag", "1.36")])).ok();
        assert_eq!(r.map(|r| r.familiar()).as_deref(), Some("busybox:1.36"));
        let d = format!("sha256:{}", "b".repeat(64));
        let r = pull_ref(&q(&[("fromImage", "127.0.0.1:5000/x"), ("tag", &d)])).ok();
        assert_eq!(
            r.map(|r| r.familiar()),
            Some(format!("127.0.0.1:5000/x@{d}"))
        );
        let r = pull_ref(&q(&[("fromImage", "busybox:musl")])).ok();
        assert_eq!(r.map(|r| r.familiar()).as_deref(), Some("busybox:musl"));
        let all = pull_ref(&q(&[("fromImage", "busybox")])).err();
        assert!(all.is_some_and(|e| e.message.contains("--all-tags")));
        assert!(pull_ref(&q(&[("fromImage", "Bad")])).is_err());
        assert!(pull_ref(&q(&[("fromImage", "x"), ("tag", "-bad")])).is_err());
    }

    #[test]
    fn progress_messages() {
        let v = progress_json(&Progress {
            layer: "0123456789ab".into(),
            status: LayerStatus::Downloading {
                current: 10,
                total: 20,
            },
        });
        assert_eq!(v["status"], json!("Downloading"));
        assert_eq!(v["progressDetail"]["total"], json!(20));
        assert_eq!(v["id"], json!("0123456789ab"));
        let v = progress_json(&Progress {
            layer: "x".into(),
            status: LayerStatus::Complete,
        });
        assert_eq!(
            v,
            json!({"status": "Pull complete", "progressDetail": {}, "id": "x"})
        );
    }
}
