//! `GET /containers/{id}/top`: the container's processes, as `ps` on the host shows
//! them (Docker runs `ps PS_ARGS` and keeps the rows of the container's PIDs). A
//! process belongs to the container when it lives in the PID namespace of the
//! container's init.

use std::collections::BTreeSet;

use super::Controller;
use crate::error::{CtlError, CtlResult};

/// `ps` output: column titles and one row per process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopResult {
    /// Column titles (`UID`, `PID`, `PPID`, ...).
    pub titles: Vec<String>,
    /// Rows, one field per title (the last one holds the rest of the line).
    pub processes: Vec<Vec<String>>,
}

/// PIDs of the processes in the PID namespace of `init`.
fn pids_in_namespace_of(init: i32) -> BTreeSet<u32> {
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let Some(want) = ns(&init.to_string()) else {
        return BTreeSet::new();
    };
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return BTreeSet::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|p| ns(&p.to_string()).as_ref() == Some(&want))
        .collect()
}

/// Keeps the rows of `ps` output whose PID column is in `pids` (moby's `parsePSOutput`).
pub(crate) fn parse_ps(out: &str, pids: &BTreeSet<u32>) -> CtlResult<TopResult> {
    let mut lines = out.lines().filter(|l| !l.trim().is_empty());
    let titles: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let Some(pid_col) = titles.iter().position(|t| t == "PID") else {
        return Err(CtlError::internal(
            "Couldn't find PID field in ps output: keep the PID column in ps_args (e.g. -ef, aux)",
        ));
    };
    let mut processes = Vec::new();
    for l in lines {
        let fields: Vec<&str> = l.split_whitespace().collect();
        let Some(pid) = fields.get(pid_col).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !pids.contains(&pid) {
            continue;
        }
        let n = titles.len().min(fields.len()).max(1);
        let mut row: Vec<String> = fields[..n - 1].iter().map(|s| s.to_string()).collect();
        row.push(fields[n - 1..].join(" "));
        processes.push(row);
    }
    Ok(TopResult { titles, processes })
}

impl Controller {
    /// The processes of a running container, as `ps PS_ARGS` (default `-ef`) shows them.
    pub async fn top_container(&self, key: &str, ps_args: &str) -> CtlResult<TopResult> {
        let (name, pid, running) = {
            let st = self.state.lock().await;
            let c = st.find_container(key)?;
            (c.name.clone(), c.state.pid, c.is_running())
        };
        if !running || pid <= 0 {
            return Err(CtlError::conflict(format!(
                "Container {name} is not running"
            )));
        }
        let args: Vec<String> = if ps_args.trim().is_empty() {
            vec!["-ef".into()]
        } else {
            ps_args.split_whitespace().map(str::to_string).collect()
        };
        let out = tokio::process::Command::new("ps")
            .args(&args)
            .output()
            .await
            .map_err(|e| CtlError::internal(format!("Error running ps: {e} (install procps)")))?;
        if !out.status.success() {
            return Err(CtlError::invalid(format!(
                "Error running ps: ps {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let pids = tokio::task::spawn_blocking(move || pids_in_namespace_of(pid))
            .await
            .map_err(|e| CtlError::internal(format!("list processes: {e}")))?;
        parse_ps(&String::from_utf8_lossy(&out.stdout), &pids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_container_pids() {
        let out = "UID          PID    PPID  C STIME TTY          TIME CMD\n\
                   root           1       0  0 10:00 ?        00:00:01 /sbin/init splash\n\
                   root        4242    4200  0 10:01 ?        00:00:00 sleep 1000\n";
        let pids: BTreeSet<u32> = [4242].into();
        let t = parse_ps(out, &pids).unwrap_or_default();
        assert_eq!(t.titles.len(), 8);
        assert_eq!(
            t.processes,
            [vec![
                "root",
                "4242",
                "4200",
                "0",
                "10:01",
                "?",
                "00:00:00",
                "sleep 1000"
            ]]
        );
        assert!(parse_ps("USER COMMAND\nroot x\n", &pids).is_err());
    }
}
