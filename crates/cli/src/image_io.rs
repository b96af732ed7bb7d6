//! `load`, `save`, `history` and `tag` (and their `image` forms).

use std::io::{IsTerminal, Read, Write};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Args;
use hyper::Method;
use serde_json::{Map, Value, json};

use crate::client::{Client, query, seg};
use crate::format::{
    ListFormat, ago, ellipsis, go_time_unix, human_size, outln, print_list, s, short_id,
};

/// Arguments of `load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short, long, value_name = "FILE")]
    pub input: Option<String>,
    /// Suppress the load output
    #[arg(short, long)]
    pub quiet: bool,
}

/// Arguments of `save`.
#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<String>,
    /// Images to save
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,
}

/// Arguments of `history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Print sizes and dates in human readable format (no -H: that is netloom's --host)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub human: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Format output: "table", "json", "table TEMPLATE" or a TEMPLATE such as '{{.ID}}'
    #[arg(long)]
    pub format: Option<String>,
    /// Image
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

/// Arguments of `tag`.
#[derive(Debug, Args)]
pub struct TagArgs {
    /// Existing image: name[:tag] or ID
    #[arg(value_name = "SOURCE_IMAGE[:TAG]")]
    pub source: String,
    /// New name: [registry/]name[:tag]
    #[arg(value_name = "TARGET_IMAGE[:TAG]")]
    pub target: String,
}

/// `load`.
pub async fn load(client: &Client, a: LoadArgs) -> Result<i32> {
    let mut data = Vec::new();
    match &a.input {
        Some(f) => {
            data = std::fs::read(f).with_context(|| format!("open {f}"))?;
        }
        None => {
            if std::io::stdin().is_terminal() {
                bail!(
                    "requested load from stdin, but stdin is empty: give the archive with -i FILE or on standard input"
                );
            }
            std::io::stdin()
                .read_to_end(&mut data)
                .context("failed to read from stdin")?;
        }
    }
    if data.is_empty() {
        bail!("requested load from stdin, but stdin is empty");
    }
    let q = if a.quiet {
        query(&[("quiet", "1".to_string())])
    } else {
        String::new()
    };
    let resp = client
        .send(
            Method::POST,
            &format!("/images/load{q}"),
            Some((Bytes::from(data), "application/x-tar")),
            &[],
        )
        .await?;
    crate::pull::show_stream(resp, false, false).await?;
    Ok(0)
}

/// `save`.
pub async fn save(client: &Client, a: SaveArgs) -> Result<i32> {
    let mut out: Box<dyn Write> = match &a.output {
        Some(f) => Box::new(std::fs::File::create(f).with_context(|| format!("create {f}"))?),
        None => {
            if std::io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            Box::new(std::io::stdout())
        }
    };
    let q: Vec<(&str, String)> = a.images.iter().map(|i| ("names", i.clone())).collect();
    let mut resp = client
        .send(Method::GET, &format!("/images/get{}", query(&q)), None, &[])
        .await?;
    let mut total = 0u64;
    let mut last = Vec::new();
    while let Some(c) = resp.next_chunk().await? {
        total += c.len() as u64;
        out.write_all(&c).context("write the archive")?;
        last = c.to_vec();
    }
    out.flush().context("write the archive")?;
    // A tar ends with zero blocks: a stream cut short by a daemon-side error has none.
    if total < 1024 || !last.ends_with(&[0u8; 512]) {
        if let Some(f) = &a.output {
            let _ = std::fs::remove_file(f);
        }
        bail!("the daemon ended the archive early (see the netloomd log): nothing was saved");
    }
    Ok(0)
}

const HISTORY_TABLE: &str = "{{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";
const HISTORY_HEADERS: &[(&str, &str)] = &[
    ("ID", "IMAGE"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("CreatedBy", "CREATED BY"),
    ("Size", "SIZE"),
    ("Comment", "COMMENT"),
];

/// `history`.
pub async fn history(client: &Client, a: HistoryArgs) -> Result<i32> {
    let rows: Vec<Value> = client
        .get_json(&format!("/images/{}/history", seg(&a.image)))
        .await?;
    if a.quiet {
        for r in &rows {
            outln(&short_id(s(r, "Id"), a.no_trunc));
        }
        return Ok(0);
    }
    let format = ListFormat::parse(a.format.as_deref(), HISTORY_TABLE)?;
    let out: Vec<Map<String, Value>> = rows
        .iter()
        .map(|r| {
            let id = s(r, "Id");
            let created = r.get("Created").and_then(Value::as_i64).unwrap_or(0);
            let size = r.get("Size").and_then(Value::as_u64).unwrap_or(0);
            let by = s(r, "CreatedBy").replace('\t', " ");
            let mut m = Map::new();
            m.insert(
                "ID".into(),
                json!(if id == "<missing>" {
                    id.to_string()
                } else {
                    short_id(id, a.no_trunc)
                }),
            );
            m.insert(
                "CreatedSince".into(),
                json!(if a.human {
                    ago(created)
                } else {
                    go_time_unix(created)
                }),
            );
            m.insert("CreatedAt".into(), json!(go_time_unix(created)));
            m.insert(
                "CreatedBy".into(),
                json!(if a.no_trunc { by } else { ellipsis(&by, 45) }),
            );
            m.insert(
                "Size".into(),
                json!(if a.human {
                    human_size(size as f64)
                } else {
                    size.to_string()
                }),
            );
            m.insert("Comment".into(), json!(s(r, "Comment")));
            m
        })
        .collect();
    print_list(&format, &out, HISTORY_HEADERS)?;
    Ok(0)
}

/// `tag`.
pub async fn tag(client: &Client, a: TagArgs) -> Result<i32> {
    let (repo, tag) = crate::image::split_reference(&a.target)?;
    client
        .call(
            Method::POST,
            &format!(
                "/images/{}/tag{}",
                seg(&a.source),
                query(&[("repo", repo), ("tag", tag)])
            ),
            None,
        )
        .await?;
    Ok(0)
}
