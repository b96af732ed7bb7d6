//! Resource usage of a running container, read from its cgroup (v1 or v2) and, for
//! network I/O, from its network namespace (`/proc/<pid>/net/dev`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// One sample of a container's usage.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Sample {
    /// CPU time used by the container, ns.
    pub cpu_total_ns: u64,
    /// Per CPU, ns (cgroup v1 only).
    pub cpu_percpu_ns: Vec<u64>,
    /// User-mode CPU time, ns.
    pub cpu_user_ns: u64,
    /// Kernel-mode CPU time, ns.
    pub cpu_system_ns: u64,
    /// Host CPU time of all CPUs (`/proc/stat`), ns.
    pub system_cpu_ns: u64,
    /// CPUs online.
    pub online_cpus: u32,
    /// Memory in use, bytes (page cache included).
    pub memory_usage: u64,
    /// Peak memory use, bytes (v1 only).
    pub memory_max_usage: u64,
    /// The memory limit, bytes (the host's memory when unlimited).
    pub memory_limit: u64,
    /// `memory.stat`.
    pub memory_stat: BTreeMap<String, u64>,
    /// Tasks in the cgroup.
    pub pids_current: u64,
    /// Its limit (0: none).
    pub pids_limit: u64,
    /// Network interfaces of the container's namespace (not `lo`).
    pub networks: BTreeMap<String, NetStats>,
}

/// Counters of one interface.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct NetStats {
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Dropped on receive.
    pub rx_dropped: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Send errors.
    pub tx_errors: u64,
    /// Dropped on send.
    pub tx_dropped: u64,
}

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

fn read_kv(p: &Path) -> BTreeMap<String, u64> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// The cgroup directories of process `pid`: (controller list, dir) per hierarchy.
fn cgroup_dirs(pid: i32) -> Vec<(String, PathBuf)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let mut out = Vec::new();
    for l in text.lines() {
        let mut f = l.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let rel = path.trim_start_matches('/');
        if ctrls.is_empty() {
            out.push((String::new(), Path::new(CGROUP_ROOT).join(rel)));
            continue;
        }
        // A v1 hierarchy is mounted at its controller list (`cpu,cpuacct`) or at one
        // controller's name.
        let mut found = None;
        for name in std::iter::once(ctrls).chain(ctrls.split(',')) {
            let base = Path::new(CGROUP_ROOT).join(name.trim_start_matches("name="));
            if base.is_dir() {
                found = Some(base.join(rel));
                break;
            }
        }
        if let Some(d) = found {
            out.push((ctrls.to_string(), d));
        }
    }
    out
}

fn dir_of<'a>(dirs: &'a [(String, PathBuf)], ctrl: &str) -> Option<&'a Path> {
    dirs.iter()
        .find(|(c, _)| c.split(',').any(|x| x == ctrl))
        .map(|(_, p)| p.as_path())
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map_or(0, |k| k * 1024)
}

/// Host CPU time from `/proc/stat`, ns, as Docker computes it.
fn system_cpu_ns() -> u64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let ticks: u64 = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    ticks * (1_000_000_000 / hz)
}

/// Parses `/proc/net/dev`.
pub fn parse_net_dev(text: &str) -> BTreeMap<String, NetStats> {
    let mut out = BTreeMap::new();
    for l in text.lines().skip(2) {
        let Some((name, rest)) = l.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let v: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if v.len() < 12 {
            continue;
        }
        out.insert(
            name.to_string(),
            NetStats {
                rx_bytes: v[0],
                rx_packets: v[1],
                rx_errors: v[2],
                rx_dropped: v[3],
                tx_bytes: v[8],
                tx_packets: v[9],
                tx_errors: v[10],
                tx_dropped: v[11],
            },
        );
    }
    out
}

/// Samples the container whose init is `pid` (host PID namespace).
pub fn sample(pid: i32) -> Sample {
    let dirs = cgroup_dirs(pid);
    let mut s = Sample {
        system_cpu_ns: system_cpu_ns(),
        online_cpus: crate::options::online_cpus().len() as u32,
        ..Sample::default()
    };
    let unified = dirs
        .iter()
        .find(|(c, _)| c.is_empty())
        .map(|(_, p)| p.clone());
    let v2 = Path::new(CGROUP_ROOT).join("cgroup.controllers").exists();
    let host_mem = host_memory();
    if v2 && let Some(d) = &unified {
        let cpu = read_kv(&d.join("cpu.stat"));
        s.cpu_total_ns = cpu.get("usage_usec").copied().unwrap_or(0) * 1000;
        s.cpu_user_ns = cpu.get("user_usec").copied().unwrap_or(0) * 1000;
        s.cpu_system_ns = cpu.get("system_usec").copied().unwrap_or(0) * 1000;
        s.memory_usage = read_u64(&d.join("memory.current")).unwrap_or(0);
        s.memory_limit = read_u64(&d.join("memory.max"))
            .unwrap_or(host_mem)
            .min(host_mem);
        s.memory_stat = read_kv(&d.join("memory.stat"));
        s.pids_current = read_u64(&d.join("pids.current")).unwrap_or(0);
        s.pids_limit = read_u64(&d.join("pids.max")).unwrap_or(0);
    } else {
        if let Some(d) = dir_of(&dirs, "cpuacct") {
            s.cpu_total_ns = read_u64(&d.join("cpuacct.usage")).unwrap_or(0);
            s.cpu_percpu_ns = std::fs::read_to_string(d.join("cpuacct.usage_percpu"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            // SAFETY: sysconf has no preconditions.
            let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
            let st = read_kv(&d.join("cpuacct.stat"));
            s.cpu_user_ns = st.get("user").copied().unwrap_or(0) * (1_000_000_000 / hz);
            s.cpu_system_ns = st.get("system").copied().unwrap_or(0) * (1_000_000_000 / hz);
        }
        if let Some(d) = dir_of(&dirs, "memory") {
            s.memory_usage = read_u64(&d.join("memory.usage_in_bytes")).unwrap_or(0);
            s.memory_max_usage = read_u64(&d.join("memory.max_usage_in_bytes")).unwrap_or(0);
            s.memory_limit = read_u64(&d.join("memory.limit_in_bytes"))
                .unwrap_or(host_mem)
                .min(host_mem);
            s.memory_stat = read_kv(&d.join("memory.stat"));
        }
        if let Some(d) = dir_of(&dirs, "pids") {
            s.pids_current = read_u64(&d.join("pids.current")).unwrap_or(0);
            s.pids_limit = read_u64(&d.join("pids.max")).unwrap_or(0);
        }
    }
    s.networks =
        parse_net_dev(&std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev() {
        let t = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n  eth0:    1296      16    1    2    0     0          0         0      726       9    3    4    0     0       0          0\n";
        let n = parse_net_dev(t);
        assert_eq!(n.len(), 1);
        let e = &n["eth0"];
        assert_eq!(
            (e.rx_bytes, e.rx_packets, e.rx_errors, e.rx_dropped),
            (1296, 16, 1, 2)
        );
        assert_eq!(
            (e.tx_bytes, e.tx_packets, e.tx_errors, e.tx_dropped),
            (726, 9, 3, 4)
        );
    }

    #[test]
    fn own_sample() {
        let s = sample(std::process::id() as i32);
        assert!(s.system_cpu_ns > 0);
        assert!(s.online_cpus >= 1);
    }
}
