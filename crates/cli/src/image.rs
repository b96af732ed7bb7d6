//! Image commands: `image import`, `images`/`image ls`, `image rm`, `image inspect`;
//! `image pull` is in `pull.rs`, `image load|save|history|tag` in `image_io.rs`.

use std::io::Read;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{Map, Value, json};

use crate::client::{Client, ConnectError, daemon_status, query, seg};
use crate::filters;
use crate::format::{
    ListFormat, ago, go_time_unix, human_size, outln, print_inspect, print_list, s, short_id,
};

/// Manage images.
#[derive(Debug, Subcommand)]
pub enum ImageCmd {
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// List images
    #[command(visible_aliases = ["list"])]
    Ls(LsArgs),
    /// Remove one or more images
    #[command(visible_aliases = ["remove"])]
    Rm(RmArgs),
    /// Display detailed information on one or more images
    Inspect(InspectArgs),
    /// Download an image from a registry
    Pull(crate::pull::PullArgs),
    /// Load an image from a tar archive or STDIN
    Load(crate::image_io::LoadArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(crate::image_io::SaveArgs),
    /// Show the history of an image
    History(crate::image_io::HistoryArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(crate::image_io::TagArgs),
}

/// Arguments of `image import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long)]
    pub change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short, long)]
    pub message: Option<String>,
    /// Tar archive to import, or "-" for standard input
    #[arg(value_name = "FILE|-")]
    pub file: String,
    /// Repository and optional tag for the image
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

/// Arguments of `images` / `image ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short, long)]
    pub all: bool,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Filter output based on conditions provided (key=value)
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Format output: "table", "json", "table TEMPLATE" or a TEMPLATE such as '{{.Repository}}'
    #[arg(long)]
    pub format: Option<String>,
    /// Only list images of this repository
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

/// Arguments of `image rm` / `rmi`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Force removal of the image
    #[arg(short, long)]
    pub force: bool,
    /// Do not delete untagged parents
    #[arg(long = "no-prune")]
    pub no_prune: bool,
    /// Image names or IDs
    #[arg(value_name = "IMAGE", required = true)]
    pub names: Vec<String>,
}

/// Arguments of `image inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format output using a template ('{{.Id}}', "json")
    #[arg(short, long)]
    pub format: Option<String>,
    /// Image names or IDs
    #[arg(value_name = "IMAGE", required = true)]
    pub names: Vec<String>,
}

/// Runs an image subcommand; returns the exit code.
pub async fn run(client: &Client, cmd: ImageCmd) -> Result<i32> {
    match cmd {
        ImageCmd::Import(a) => import(client, a).await,
        ImageCmd::Ls(a) => ls(client, a).await,
        ImageCmd::Rm(a) => rm(client, a).await,
        ImageCmd::Inspect(a) => inspect(client, a).await,
        ImageCmd::Pull(a) => crate::pull::pull(client, a).await,
        ImageCmd::Load(a) => crate::image_io::load(client, a).await,
        ImageCmd::Save(a) => crate::image_io::save(client, a).await,
        ImageCmd::History(a) => crate::image_io::history(client, a).await,
        ImageCmd::Tag(a) => crate::image_io::tag(client, a).await,
    }
}

/// Splits `name[:tag]` (a `:` before the last `/` is a registry port).
pub fn split_reference(r: &str) -> Result<(String, String)> {
    let (name, tag) = match r.rfind(':') {
        Some(i) if !r[i + 1..].contains('/') => (&r[..i], &r[i + 1..]),
        _ => (r, "latest"),
    };
    if name.is_empty() || tag.is_empty() {
        bail!("invalid reference format: {r}");
    }
    if name.chars().any(|c| c.is_ascii_uppercase()) {
        bail!("invalid reference format: repository name ({name}) must be lowercase");
    }
    Ok((name.to_string(), tag.to_string()))
}

/// Handles a JSON-lines progress stream; returns the last `status`.
pub fn read_progress(body: &[u8]) -> Result<Vec<String>> {
    let mut statuses = Vec::new();
    for v in serde_json::Deserializer::from_slice(body).into_iter::<Value>() {
        let v = v.map_err(|e| anyhow!("unexpected response from daemon: {e}"))?;
        let detail = v
            .get("errorDetail")
            .and_then(|d| d.get("message"))
            .and_then(Value::as_str);
        let err = v.get("error").and_then(Value::as_str);
        if let Some(msg) = detail.or(err) {
            bail!("{msg}");
        }
        if let Some(st) = v.get("status").and_then(Value::as_str) {
            statuses.push(st.to_string());
        }
    }
    Ok(statuses)
}

async fn import(client: &Client, a: ImportArgs) -> Result<i32> {
    let mut data = Vec::new();
    if a.file == "-" {
        std::io::stdin()
            .read_to_end(&mut data)
            .context("failed to read from stdin")?;
    } else {
        data = std::fs::read(&a.file).with_context(|| format!("open {}", a.file))?;
    }
    let mut q = vec![("fromSrc", "-".to_string())];
    if let Some(r) = &a.reference {
        let (repo, tag) = split_reference(r)?;
        q.push(("repo", repo));
        q.push(("tag", tag));
    }
    if let Some(m) = &a.message {
        q.push(("message", m.clone()));
    }
    for c in &a.change {
        q.push(("changes", c.clone()));
    }
    let resp = client
        .send(
            Method::POST,
            &format!("/images/create{}", query(&q)),
            Some((Bytes::from(data), "application/x-tar")),
            &[],
        )
        .await?;
    let body = resp.bytes().await?;
    for st in read_progress(&body)? {
        outln(&st);
    }
    Ok(0)
}

const LS_TABLE: &str = "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
const LS_HEADERS: &[(&str, &str)] = &[
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("ID", "IMAGE ID"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
    ("Digest", "DIGEST"),
    ("Containers", "CONTAINERS"),
    ("SharedSize", "SHARED SIZE"),
    ("UniqueSize", "UNIQUE SIZE"),
    ("VirtualSize", "VIRTUAL SIZE"),
];

/// Rows of `docker images` for one image (one per tag).
pub fn ls_rows(img: &Value, no_trunc: bool) -> Vec<Map<String, Value>> {
    let created = img.get("Created").and_then(Value::as_i64).unwrap_or(0);
    let size = img.get("Size").and_then(Value::as_f64).unwrap_or(0.0);
    let containers = img.get("Containers").and_then(Value::as_i64).unwrap_or(-1);
    let mut tags: Vec<(String, String)> = match img.get("RepoTags") {
        Some(Value::Array(t)) => t
            .iter()
            .filter_map(Value::as_str)
            .map(|t| match t.rfind(':') {
                Some(i) if !t[i + 1..].contains('/') => {
                    (t[..i].to_string(), t[i + 1..].to_string())
                }
                _ => (t.to_string(), "<none>".to_string()),
            })
            .collect(),
        _ => Vec::new(),
    };
    if tags.is_empty() {
        tags.push(("<none>".into(), "<none>".into()));
    }
    let digest = match img.get("RepoDigests") {
        Some(Value::Array(d)) => d
            .first()
            .and_then(Value::as_str)
            .and_then(|d| d.split_once('@'))
            .map(|(_, d)| d.to_string())
            .unwrap_or_else(|| "<none>".into()),
        _ => "<none>".into(),
    };
    let id = if no_trunc {
        s(img, "Id").to_string()
    } else {
        short_id(s(img, "Id"), false)
    };
    tags.into_iter()
        .map(|(repo, tag)| {
            let mut m = Map::new();
            m.insert(
                "Containers".into(),
                json!(if containers < 0 {
                    "N/A".to_string()
                } else {
                    containers.to_string()
                }),
            );
            m.insert("CreatedAt".into(), json!(go_time_unix(created)));
            m.insert("CreatedSince".into(), json!(ago(created)));
            m.insert("Digest".into(), json!(digest));
            m.insert("ID".into(), json!(id));
            m.insert("Repository".into(), json!(repo));
            m.insert("SharedSize".into(), json!("N/A"));
            m.insert("Size".into(), json!(human_size(size)));
            m.insert("Tag".into(), json!(tag));
            m.insert("UniqueSize".into(), json!("N/A"));
            m.insert("VirtualSize".into(), json!(human_size(size)));
            m
        })
        .collect()
}

/// `images` / `image ls`.
pub async fn ls(client: &Client, a: LsArgs) -> Result<i32> {
    let mut filter = a.filter.clone();
    if let Some(r) = &a.reference {
        filter.push(format!("reference={r}"));
    }
    let mut q = Vec::new();
    if a.all {
        q.push(("all", "1".to_string()));
    }
    if let Some(p) = filters::query_pair(&filter)? {
        q.push(p);
    }
    let list: Vec<Value> = client
        .get_json(&format!("/images/json{}", query(&q)))
        .await?;
    if a.quiet {
        let mut seen = Vec::new();
        for img in &list {
            let id = short_id(s(img, "Id"), a.no_trunc);
            if !seen.contains(&id) {
                outln(&id);
                seen.push(id);
            }
        }
        return Ok(0);
    }
    let format = ListFormat::parse(a.format.as_deref(), LS_TABLE)?;
    let rows: Vec<Map<String, Value>> = list.iter().flat_map(|i| ls_rows(i, a.no_trunc)).collect();
    print_list(&format, &rows, LS_HEADERS)?;
    Ok(0)
}

/// `image rm` / `rmi`.
pub async fn rm(client: &Client, a: RmArgs) -> Result<i32> {
    let mut q = Vec::new();
    if a.force {
        q.push(("force", "1".to_string()));
    }
    if a.no_prune {
        q.push(("noprune", "1".to_string()));
    }
    let q = query(&q);
    let mut code = 0;
    for n in &a.names {
        match client
            .call(Method::DELETE, &format!("/images/{}{q}", seg(n)), None)
            .await
        {
            Ok(body) => {
                if let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(&body) {
                    for it in items {
                        if let Some(u) = it.get("Untagged").and_then(Value::as_str) {
                            outln(&format!("Untagged: {u}"));
                        }
                        if let Some(d) = it.get("Deleted").and_then(Value::as_str) {
                            outln(&format!("Deleted: {d}"));
                        }
                    }
                } else {
                    outln(n);
                }
            }
            Err(e) => {
                if e.downcast_ref::<ConnectError>().is_some() {
                    return Err(e);
                }
                eprintln!("{e:#}");
                if !(a.force && daemon_status(&e) == Some(404)) {
                    code = 1;
                }
            }
        }
    }
    Ok(code)
}

/// `image inspect`.
pub async fn inspect(client: &Client, a: InspectArgs) -> Result<i32> {
    let mut items = Vec::new();
    let mut errors = Vec::new();
    for n in &a.names {
        match client
            .get_json::<Value>(&format!("/images/{}/json", seg(n)))
            .await
        {
            Ok(v) => items.push(v),
            Err(e) if e.downcast_ref::<ConnectError>().is_some() => return Err(e),
            Err(e) => errors.push(e),
        }
    }
    if !items.is_empty() || a.format.is_none() {
        print_inspect(&items, a.format.as_deref())?;
    }
    for e in &errors {
        eprintln!("{e:#}");
    }
    Ok(if errors.is_empty() { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(
            split_reference("alpine").expect("ok"),
            ("alpine".into(), "latest".into())
        );
        assert_eq!(
            split_reference("my/img:v1").expect("ok"),
            ("my/img".into(), "v1".into())
        );
        assert_eq!(
            split_reference("reg:5000/img").expect("ok"),
            ("reg:5000/img".into(), "latest".into())
        );
        assert!(split_reference("Bad").is_err());
        assert!(split_reference("img:").is_err());
    }

    #[test]
    fn progress_stream() {
        let ok = br#"{"status":"sha256:abc"}
"#;
        assert_eq!(read_progress(ok).expect("ok"), vec!["sha256:abc"]);
        let bad = br#"{"status":"x"}{"errorDetail":{"message":"bad tar"},"error":"bad tar"}"#;
        assert_eq!(read_progress(bad).expect_err("err").to_string(), "bad tar");
    }

    #[test]
    fn image_rows() {
        let img = json!({"Id":"sha256:0123456789abcdef0123","RepoTags":["alpine:latest","alpine:3"],"Created":0,"Size":7800000});
        let rows = ls_rows(&img, false);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["Repository"], json!("alpine"));
        assert_eq!(rows[1]["Tag"], json!("3"));
        assert_eq!(rows[0]["ID"], json!("0123456789ab"));
        assert_eq!(rows[0]["Size"], json!("7.8MB"));
        let none = ls_rows(&json!({"Id":"sha256:ff"}), true);
        assert_eq!(none[0]["Repository"], json!("<none>"));
        assert_eq!(none[0]["ID"], json!("sha256:ff"));
    }
}
