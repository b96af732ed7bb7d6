//! `pull` / `image pull`, and the pull that `run` / `create` make for a missing
//! image, with the docker CLI's progress display: on a terminal one line per layer,
//! updated in place; otherwise one line per status change (no progress bars).
//! Credentials come from the docker CLI's config (`$DOCKER_CONFIG/config.json`,
//! `auths`) and travel as `X-Registry-Auth`, as the docker CLI sends them.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};

use anyhow::{Result, anyhow, bail};
use base64::Engine;
use clap::Args;
use hyper::Method;
use serde_json::Value;

use crate::client::{Client, query};

/// Arguments of `pull` / `image pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Download all tagged images in the repository (not supported by netloom)
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// Set platform if server is multi-platform capable (os/arch[/variant])
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Suppress verbose output
    #[arg(short, long)]
    pub quiet: bool,
    /// Skip image verification (netloom never verifies signatures: only true is accepted)
    #[arg(long = "disable-content-trust", default_value_t = true, action = clap::ArgAction::Set)]
    pub disable_content_trust: bool,
    /// Image to pull: NAME[:TAG|@DIGEST]
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    pub name: String,
}

/// A reference split as the docker CLI sends it: `fromImage`, `tag` (a tag or a
/// digest), the registry host, and the full canonical name printed at the end.
struct Split {
    from: String,
    tag: String,
    registry: String,
    canonical: String,
    familiar: String,
}

fn split(r: &str) -> Result<Split> {
    let bad = |why: &str| anyhow!("invalid reference format: {why}: {r}");
    if r.is_empty() {
        bail!("invalid reference format: it is empty");
    }
    let (rest, digest) = match r.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (r, None),
    };
    let (name, tag) = match rest.rfind(':') {
        Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    if name.is_empty() || tag.is_some_and(str::is_empty) {
        return Err(bad("missing name or tag"));
    }
    let (registry, path) = match name.split_once('/') {
        Some((first, p)) if first.contains(['.', ':']) || first == "localhost" => {
            (first.to_string(), p.to_string())
        }
        _ => ("docker.io".to_string(), name.to_string()),
    };
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(bad(&format!("repository name ({path}) must be lowercase")));
    }
    let path = if registry == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    let familiar_name = if registry == "docker.io" {
        path.strip_prefix("library/")
            .filter(|p| !p.contains('/'))
            .unwrap_or(&path)
            .to_string()
    } else {
        format!("{registry}/{path}")
    };
    let (tag, suffix) = match (digest, tag) {
        (Some(d), _) => (d.to_string(), format!("@{d}")),
        (None, Some(t)) => (t.to_string(), format!(":{t}")),
        (None, None) => ("latest".to_string(), ":latest".to_string()),
    };
    Ok(Split {
        from: familiar_name.clone(),
        tag,
        canonical: format!("{registry}/{path}{suffix}"),
        familiar: format!("{familiar_name}{suffix}"),
        registry,
    })
}

/// The familiar form with a tag, as `Unable to find image 'busybox:latest' locally`.
pub fn familiar(r: &str) -> String {
    split(r)
        .map(|s| s.familiar)
        .unwrap_or_else(|_| r.to_string())
}

/// `X-Registry-Auth` for `registry` from the docker CLI's config file (`auths`).
fn registry_auth(registry: &str) -> Option<String> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".docker")))?;
    let raw = std::fs::read(dir.join("config.json")).ok()?;
    let cfg: Value = serde_json::from_slice(&raw).ok()?;
    let auths = cfg.get("auths")?.as_object()?;
    let keys: Vec<String> = if registry == "docker.io" {
        vec![
            "https://index.docker.io/v1/".into(),
            "index.docker.io".into(),
            "docker.io".into(),
        ]
    } else {
        vec![
            registry.to_string(),
            format!("https://{registry}"),
            format!("http://{registry}"),
            format!("https://{registry}/v1/"),
        ]
    };
    let entry = keys.iter().find_map(|k| auths.get(k))?;
    let auth = entry
        .get("auth")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if auth.is_empty() {
        return None;
    }
    let body = serde_json::json!({"auth": auth, "serveraddress": registry});
    Some(base64::engine::general_purpose::URL_SAFE.encode(body.to_string()))
}

/// Renders Docker's JSON messages: in place on a terminal, line by line otherwise.
struct Display<W: Write> {
    out: W,
    tty: bool,
    ids: HashMap<String, usize>,
}

fn bar(detail: &Value) -> String {
    let cur = detail.get("current").and_then(Value::as_u64).unwrap_or(0);
    let total = detail.get("total").and_then(Value::as_u64).unwrap_or(0);
    if cur == 0 && total == 0 {
        return String::new();
    }
    let size = |n: u64| crate::format::human_size(n as f64);
    if total == 0 {
        return format!("{:>8}", size(cur));
    }
    let n = (cur.min(total) * 50 / total).max(1) as usize;
    format!(
        "[{}>{}] {:>8}/{}",
        "=".repeat(n - 1),
        " ".repeat(50 - n),
        size(cur),
        size(total)
    )
}

impl<W: Write> Display<W> {
    fn message(&mut self, m: &Value) -> Result<()> {
        if let Some(e) = m
            .get("errorDetail")
            .and_then(|d| d.get("message"))
            .or_else(|| m.get("error"))
            .and_then(Value::as_str)
        {
            bail!("{e}");
        }
        let id = m.get("id").and_then(Value::as_str).unwrap_or_default();
        let status = m.get("status").and_then(Value::as_str).unwrap_or_default();
        let stream = m.get("stream").and_then(Value::as_str);
        let progress = m.get("progressDetail").map(bar);
        let mut diff = 0;
        if !id.is_empty() && progress.is_some() {
            let n = self.ids.len();
            let line = *self.ids.entry(id.to_string()).or_insert(n);
            if line == n && self.tty {
                writeln!(self.out)?;
            }
            diff = self.ids.len() - line;
            if self.tty {
                write!(self.out, "\x1b[{diff}A")?;
            }
        } else {
            self.ids.clear();
        }
        let p = progress.unwrap_or_default();
        if self.tty && m.get("progressDetail").is_some() {
            write!(self.out, "\x1b[2K\r")?;
            if !id.is_empty() {
                write!(self.out, "{id}: ")?;
            }
            write!(self.out, "{status} {p}\r")?;
        } else if !p.is_empty() {
            // No progress bars off a terminal (docker's rule).
        } else if let Some(s) = stream {
            write!(self.out, "{s}")?;
        } else {
            if !id.is_empty() {
                write!(self.out, "{id}: ")?;
            }
            writeln!(self.out, "{status}")?;
        }
        if !id.is_empty() && self.tty && diff > 0 {
            write!(self.out, "\x1b[{diff}B")?;
        }
        self.out.flush()?;
        Ok(())
    }
}

/// Reads a JSON-message stream to its end, displaying it (unless `quiet`); the
/// first error message becomes the error.
pub async fn show_stream(
    mut resp: crate::client::Resp,
    quiet: bool,
    to_stderr: bool,
) -> Result<()> {
    let tty = if to_stderr {
        std::io::stderr().is_terminal()
    } else {
        std::io::stdout().is_terminal()
    };
    let out: Box<dyn Write> = if quiet {
        Box::new(std::io::sink())
    } else if to_stderr {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    };
    let mut d = Display {
        out,
        tty,
        ids: HashMap::new(),
    };
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let chunk = resp.next_chunk().await?;
        let done = chunk.is_none();
        if let Some(c) = chunk {
            buf.extend_from_slice(&c);
        }
        // Whole JSON values only; a partial one waits for the next chunk.
        let mut it = serde_json::Deserializer::from_slice(&buf).into_iter::<Value>();
        let mut used = 0;
        loop {
            match it.next() {
                Some(Ok(v)) => {
                    used = it.byte_offset();
                    d.message(&v)?;
                }
                Some(Err(e)) if e.is_eof() && !done => break,
                Some(Err(e)) => bail!("unexpected response from daemon: {e}"),
                None => break,
            }
        }
        buf.drain(..used);
        if done {
            return Ok(());
        }
    }
}

/// Pulls `name`, showing Docker's progress on stdout (or stderr for `run`).
pub async fn pull_image(
    client: &Client,
    name: &str,
    platform: Option<&str>,
    quiet: bool,
    to_stderr: bool,
) -> Result<String> {
    let s = split(name)?;
    let mut q = vec![("fromImage", s.from.clone()), ("tag", s.tag.clone())];
    if let Some(p) = platform {
        q.push(("platform", p.to_string()));
    }
    let auth = registry_auth(&s.registry);
    let headers: Vec<(&str, &str)> = match &auth {
        Some(a) => vec![("X-Registry-Auth", a.as_str())],
        None => Vec::new(),
    };
    let resp = client
        .send(
            Method::POST,
            &format!("/images/create{}", query(&q)),
            None,
            &headers,
        )
        .await?;
    show_stream(resp, quiet, to_stderr).await?;
    Ok(s.canonical)
}

/// `pull`.
pub async fn pull(client: &Client, a: PullArgs) -> Result<i32> {
    if a.all_tags {
        bail!(
            "netloom does not pull every tag of a repository (--all-tags): name a tag, e.g. {}:latest",
            a.name
        );
    }
    if !a.disable_content_trust {
        bail!(
            "netloom does not verify image signatures (content trust): leave --disable-content-trust at true"
        );
    }
    let canonical = pull_image(client, &a.name, a.platform.as_deref(), a.quiet, false).await?;
    println!("{canonical}");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_as_the_docker_cli_sends_them() {
        let s = split("busybox").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.from.as_str(), s.tag.as_str()), ("busybox", "latest"));
        assert_eq!(s.canonical, "docker.io/library/busybox:latest");
        let s = split("127.0.0.1:5000/t/bb:multi").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.from, "127.0.0.1:5000/t/bb");
        assert_eq!(s.tag, "multi");
        assert_eq!(s.registry, "127.0.0.1:5000");
        let d = format!("sha256:{}", "c".repeat(64));
        let s = split(&format!("x@{d}")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.tag, d);
        assert_eq!(familiar("docker.io/library/alpine"), "alpine:latest");
        assert!(split("Bad").is_err());
    }

    #[test]
    fn plain_display_skips_bars() {
        let mut d = Display {
            out: Vec::new(),
            tty: false,
            ids: HashMap::new(),
        };
        for m in [
            r#"{"status":"Pulling from library/busybox","id":"latest"}"#,
            r#"{"status":"Pulling fs layer","progressDetail":{},"id":"abc"}"#,
            r#"{"status":"Downloading","progressDetail":{"current":5,"total":10},"id":"abc"}"#,
            r#"{"status":"Pull complete","progressDetail":{},"id":"abc"}"#,
            r#"{"status":"Digest: sha256:x"}"#,
        ] {
            let v: Value = serde_json::from_str(m).unwrap_or_default();
            assert!(d.message(&v).is_ok());
        }
        assert_eq!(
            String::from_utf8_lossy(&d.out),
            "latest: Pulling from library/busybox\nabc: Pulling fs layer\nabc: Pull complete\nDigest: sha256:x\n"
        );
        let v: Value = serde_json::from_str(r#"{"errorDetail":{"message":"boom"},"error":"boom"}"#)
            .unwrap_or_default();
        assert_eq!(
            d.message(&v).err().map(|e| e.to_string()).as_deref(),
            Some("boom")
        );
    }
}
