//! Applying nftables text: one `nft -f -` process per batch, which the kernel runs as
//! one netlink transaction (all or nothing). Why text and not the JSON input: Debian's
//! nft 1.0.6 cannot express concatenated map data in JSON (see the project's stack
//! notes). No shell is involved; callers render only validated names.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use crate::error::KernelError;

/// Applies a batch of nft commands in the caller's network namespace.
pub async fn apply(script: &str) -> Result<(), KernelError> {
    let mut child = tokio::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| KernelError::Io {
            op: "run",
            path: "nft".into(),
            source,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(|source| KernelError::Io {
                op: "write to",
                path: "nft".into(),
                source,
            })?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|source| KernelError::Io {
            op: "wait for",
            path: "nft".into(),
            source,
        })?;
    status(out.status.success(), &out.stderr)
}

/// Like [`apply`], blocking: for short-lived callers without an async runtime that
/// does I/O (netloom-cni's DEL).
pub fn apply_blocking(script: &str) -> Result<(), KernelError> {
    use std::io::Write;
    let io = |op: &'static str| {
        move |source| KernelError::Io {
            op,
            path: "nft".into(),
            source,
        }
    };
    let mut child = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io("run"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).map_err(io("write to"))?;
    }
    let out = child.wait_with_output().map_err(io("wait for"))?;
    status(out.status.success(), &out.stderr)
}

/// `Ok` for a successful `nft` run, else its stderr as the error.
fn status(success: bool, stderr: &[u8]) -> Result<(), KernelError> {
    if success {
        Ok(())
    } else {
        Err(KernelError::Nft(
            String::from_utf8_lossy(stderr).trim().to_string(),
        ))
    }
}

/// Lists every chain of the namespace's ruleset (`nft -j list chains`), as JSON objects
/// `{"family","table","name","hook"?,"policy"?,...}`.
pub async fn list_chains() -> Result<Vec<serde_json::Value>, KernelError> {
    list_json(&["-j", "list", "chains"], "chain").await
}

/// Lists the rules of one chain (`nft -j list chain FAMILY TABLE CHAIN`).
pub async fn list_rules(
    family: &str,
    table: &str,
    chain: &str,
) -> Result<Vec<serde_json::Value>, KernelError> {
    list_json(&["-j", "list", "chain", family, table, chain], "rule").await
}

/// Runs an `nft -j list ...` command and returns the objects of one kind.
async fn list_json(args: &[&str], kind: &str) -> Result<Vec<serde_json::Value>, KernelError> {
    let out = tokio::process::Command::new("nft")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|source| KernelError::Io {
            op: "run",
            path: "nft".into(),
            source,
        })?;
    if !out.status.success() {
        return Err(KernelError::Nft(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| KernelError::Nft(format!("unreadable nft JSON: {e}")))?;
    Ok(v.get("nftables")
        .and_then(|a| a.as_array())
        .map(|a| a.iter().filter_map(|o| o.get(kind).cloned()).collect())
        .unwrap_or_default())
}
