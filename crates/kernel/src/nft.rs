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

/// The kernel's multicast group of nftables ruleset changes (`NFNLGRP_NFTABLES`).
const NFNLGRP_NFTABLES: u32 = 7;

/// Notifications of nftables changes in the network namespace it was opened in: the
/// kernel sends one message on its `NFNLGRP_NFTABLES` netlink group for every table,
/// chain, rule, set or element added or deleted, by anyone. Waiting on it costs
/// nothing, where listing the ruleset means running `nft`.
pub struct RulesetMonitor {
    fd: tokio::io::unix::AsyncFd<netlink_sys::Socket>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for RulesetMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RulesetMonitor").finish_non_exhaustive()
    }
}

impl RulesetMonitor {
    /// Subscribes to the changes of the caller's network namespace. Must be called
    /// from within a tokio runtime.
    pub fn open() -> Result<Self, KernelError> {
        let io = |op: &'static str| {
            move |source| KernelError::Io {
                op,
                path: "netlink NETLINK_NETFILTER".into(),
                source,
            }
        };
        let mut sock = netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_NETFILTER)
            .map_err(io("open"))?;
        sock.bind_auto().map_err(io("bind"))?;
        sock.add_membership(NFNLGRP_NFTABLES)
            .map_err(io("join NFNLGRP_NFTABLES of"))?;
        sock.set_non_blocking(true)
            .map_err(io("set non-blocking"))?;
        // SAFETY: the socket owns its descriptor, and it is neither replaced nor closed
        // while the AsyncFd owns the socket.
        let fd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(sock, tokio::io::Interest::READABLE)
        }
        .map_err(|e| io("register")(std::io::Error::from(e)))?;
        Ok(RulesetMonitor {
            fd,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// Waits until something changed since the last call, then takes every
    /// notification that is queued. A queue that overflowed (`ENOBUFS`) counts as a
    /// change too.
    pub async fn changed(&mut self) -> Result<(), KernelError> {
        let io = |source| KernelError::Io {
            op: "read",
            path: "netlink NETLINK_NETFILTER".into(),
            source,
        };
        loop {
            let mut guard = self.fd.readable().await.map_err(io)?;
            let mut got = false;
            loop {
                self.buf.clear();
                match guard.get_inner().recv(&mut self.buf, 0) {
                    Ok(_) => got = true,
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => got = true,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        guard.clear_ready();
                        break;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(io(e)),
                }
            }
            if got {
                return Ok(());
            }
        }
    }
}
