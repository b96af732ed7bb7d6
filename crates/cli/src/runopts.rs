//! `run`/`create` flags that the OCI runtime applies: security, mounts, limits.

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Map, Value, json};

/// Security, mount and resource flags of `run` and `create`.
#[derive(Debug, Args, Default, Clone)]
pub struct RuntimeOpts {
    /// Add Linux capabilities (NET_ADMIN, SYS_TIME, ... or ALL)
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities (NET_RAW, ... or ALL)
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Give extended privileges to this container (every capability and device, no seccomp)
    #[arg(long)]
    pub privileged: bool,
    /// Security options: no-new-privileges, seccomp=unconfined, seccomp=PROFILE.json, systempaths=unconfined
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// Sysctl options (net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*)
    #[arg(long, value_name = "KEY=VALUE")]
    pub sysctl: Vec<String>,
    /// Bind mount a host directory (/host/dir:/container/dir[:ro|rw|z|Z|rprivate|rslave...])
    #[arg(short = 'v', long = "volume", value_name = "HOST:CONTAINER[:OPTS]")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount (type=bind,source=/host,target=/ctr[,readonly] or type=tmpfs,target=/ctr[,tmpfs-size=N])
    #[arg(long, value_name = "MOUNT")]
    pub mount: Vec<String>,
    /// Mount a tmpfs directory (/path[:size=64m,mode=1777,...])
    #[arg(long, value_name = "PATH[:OPTS]")]
    pub tmpfs: Vec<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Ulimit options (nofile=1024:2048)
    #[arg(long, value_name = "NAME=SOFT[:HARD]")]
    pub ulimit: Vec<String>,
    /// Memory limit (e.g. 64m, 1g)
    #[arg(short = 'm', long, value_name = "BYTES")]
    pub memory: Option<String>,
    /// Memory plus swap limit; -1 for unlimited swap
    #[arg(long = "memory-swap", value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Number of CPUs (e.g. 0.5)
    #[arg(long, value_name = "N")]
    pub cpus: Option<f64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares", value_name = "N")]
    pub cpu_shares: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus", value_name = "LIST")]
    pub cpuset_cpus: Option<String>,
    /// Tune container pids limit (-1 for unlimited)
    #[arg(long = "pids-limit", value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Runtime to use for this container (a name from the daemon's runtimes)
    #[arg(long, value_name = "NAME")]
    pub runtime: Option<String>,
}

/// Parses a size as the docker CLI does (binary units: 512m, 1g).
fn size(flag: &str, s: &str) -> Result<i64> {
    if s == "-1" {
        return Ok(-1);
    }
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let v: f64 = num.parse().with_context(|| {
        format!("invalid argument {s:?} for \"{flag}\" flag: use a size such as 64m or 1g")
    })?;
    Ok((v * mult as f64) as i64)
}

fn truthy(v: &str) -> Result<bool> {
    match v {
        "" | "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => bail!("invalid boolean value {v:?}: use true or false"),
    }
}

/// Parses one `--mount` value into a `HostConfig.Mounts` entry.
fn mount(spec: &str) -> Result<Value> {
    let mut m = Map::new();
    let mut bind = Map::new();
    let mut tmpfs = Map::new();
    for field in spec.split(',') {
        let (k, v) = field.split_once('=').unwrap_or((field, ""));
        match k {
            "type" => {
                m.insert("Type".into(), json!(v));
            }
            "source" | "src" => {
                m.insert("Source".into(), json!(v));
            }
            "target" | "destination" | "dst" => {
                m.insert("Target".into(), json!(v));
            }
            "readonly" | "ro" => {
                m.insert("ReadOnly".into(), json!(truthy(v)?));
            }
            "bind-propagation" => {
                bind.insert("Propagation".into(), json!(v));
            }
            "bind-nonrecursive" => {
                bind.insert("NonRecursive".into(), json!(truthy(v)?));
            }
            "bind-create-mountpoint" => {
                bind.insert("CreateMountpoint".into(), json!(truthy(v)?));
            }
            "tmpfs-size" => {
                tmpfs.insert("SizeBytes".into(), json!(size("--mount tmpfs-size", v)?));
            }
            "tmpfs-mode" => {
                let mode = u32::from_str_radix(v, 8).with_context(|| {
                    format!("invalid value for tmpfs-mode: {v:?}: give an octal mode such as 1777")
                })?;
                tmpfs.insert("Mode".into(), json!(mode));
            }
            _ => bail!(
                "invalid field {k:?} in --mount {spec:?}: use type, source, target, readonly, bind-propagation, bind-nonrecursive, tmpfs-size, tmpfs-mode"
            ),
        }
    }
    if !m.contains_key("Type") {
        m.insert("Type".into(), json!("volume"));
    }
    if !bind.is_empty() {
        m.insert("BindOptions".into(), Value::Object(bind));
    }
    if !tmpfs.is_empty() {
        m.insert("TmpfsOptions".into(), Value::Object(tmpfs));
    }
    Ok(Value::Object(m))
}

/// A `-v` value with a relative source (`./dir`) made absolute, as the docker CLI does.
fn bind(v: &str) -> Result<String> {
    if v.starts_with('.') && v.contains(':') {
        let (src, rest) = v.split_once(':').unwrap_or((v, ""));
        let abs = std::env::current_dir()?.join(src);
        return Ok(format!("{}:{rest}", abs.display()));
    }
    Ok(v.to_string())
}

impl RuntimeOpts {
    /// Adds these options to a create body's `HostConfig`.
    pub fn apply(&self, hc: &mut Map<String, Value>) -> Result<()> {
        let list = |v: &[String]| if v.is_empty() { Value::Null } else { json!(v) };
        hc.insert("CapAdd".into(), list(&self.cap_add));
        hc.insert("CapDrop".into(), list(&self.cap_drop));
        hc.insert("Privileged".into(), json!(self.privileged));
        let mut sec = Vec::new();
        for o in &self.security_opt {
            // As the docker CLI: a seccomp profile is sent as its content.
            match o.split_once('=') {
                Some(("seccomp", p)) if p != "unconfined" && p != "builtin" => {
                    let text = std::fs::read_to_string(p)
                        .with_context(|| format!("opening seccomp profile ({p}) failed"))?;
                    sec.push(format!("seccomp={text}"));
                }
                Some(("systempaths", "unconfined")) => {
                    hc.insert("MaskedPaths".into(), json!([]));
                    hc.insert("ReadonlyPaths".into(), json!([]));
                }
                _ => sec.push(o.clone()),
            }
        }
        hc.insert("SecurityOpt".into(), list(&sec));
        let mut sysctls = Map::new();
        for s in &self.sysctl {
            let Some((k, v)) = s.split_once('=') else {
                bail!("invalid argument {s:?} for \"--sysctl\" flag: use KEY=VALUE");
            };
            sysctls.insert(k.to_string(), json!(v));
        }
        if !sysctls.is_empty() {
            hc.insert("Sysctls".into(), Value::Object(sysctls));
        }
        let binds = self
            .volume
            .iter()
            .map(|v| bind(v))
            .collect::<Result<Vec<_>>>()?;
        hc.insert("Binds".into(), list(&binds));
        if !self.mount.is_empty() {
            let m = self
                .mount
                .iter()
                .map(|s| mount(s))
                .collect::<Result<Vec<_>>>()?;
            hc.insert("Mounts".into(), json!(m));
        }
        if !self.tmpfs.is_empty() {
            let mut t = Map::new();
            for s in &self.tmpfs {
                let (p, o) = s.split_once(':').unwrap_or((s, ""));
                t.insert(p.to_string(), json!(o));
            }
            hc.insert("Tmpfs".into(), Value::Object(t));
        }
        hc.insert("ReadonlyRootfs".into(), json!(self.read_only));
        let mut ul = Vec::new();
        for u in &self.ulimit {
            let Some((name, lim)) = u.split_once('=') else {
                bail!("invalid ulimit argument: {u}");
            };
            let (soft, hard) = lim.split_once(':').unwrap_or((lim, lim));
            let n = |x: &str| -> Result<i64> {
                x.parse::<i64>()
                    .with_context(|| format!("invalid ulimit argument: {u}: {x:?} is not a number"))
            };
            ul.push(json!({"Name": name, "Soft": n(soft)?, "Hard": n(hard)?}));
        }
        hc.insert("Ulimits".into(), json!(ul));
        if let Some(m) = &self.memory {
            hc.insert("Memory".into(), json!(size("--memory", m)?));
        }
        if let Some(m) = &self.memory_swap {
            hc.insert("MemorySwap".into(), json!(size("--memory-swap", m)?));
        }
        if let Some(c) = self.cpus {
            hc.insert("NanoCpus".into(), json!((c * 1e9).round() as i64));
        }
        if let Some(c) = self.cpu_shares {
            hc.insert("CpuShares".into(), json!(c));
        }
        if let Some(c) = &self.cpuset_cpus {
            hc.insert("CpusetCpus".into(), json!(c));
        }
        if let Some(p) = self.pids_limit {
            hc.insert("PidsLimit".into(), json!(p));
        }
        if let Some(r) = &self.runtime {
            hc.insert("Runtime".into(), json!(r));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_to_host_config() {
        let o = RuntimeOpts {
            cap_add: vec!["NET_ADMIN".into()],
            sysctl: vec!["net.ipv4.ip_forward=1".into()],
            volume: vec!["/srv:/data:ro".into()],
            mount: vec!["type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1777".into()],
            tmpfs: vec!["/run:size=64k".into()],
            ulimit: vec!["nofile=10:20".into()],
            memory: Some("64m".into()),
            memory_swap: Some("-1".into()),
            cpus: Some(0.5),
            pids_limit: Some(20),
            security_opt: vec!["no-new-privileges".into(), "systempaths=unconfined".into()],
            ..RuntimeOpts::default()
        };
        let mut hc = Map::new();
        assert!(o.apply(&mut hc).is_ok());
        let hc = Value::Object(hc);
        assert_eq!(hc["CapAdd"], json!(["NET_ADMIN"]));
        assert_eq!(hc["Sysctls"], json!({"net.ipv4.ip_forward": "1"}));
        assert_eq!(hc["Binds"], json!(["/srv:/data:ro"]));
        assert_eq!(
            hc["Mounts"],
            json!([{"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 1023}}])
        );
        assert_eq!(hc["Tmpfs"], json!({"/run": "size=64k"}));
        assert_eq!(
            hc["Ulimits"],
            json!([{"Name": "nofile", "Soft": 10, "Hard": 20}])
        );
        assert_eq!(hc["Memory"], json!(64 << 20));
        assert_eq!(hc["MemorySwap"], json!(-1));
        assert_eq!(hc["NanoCpus"], json!(500_000_000));
        assert_eq!(hc["PidsLimit"], json!(20));
        assert_eq!(hc["SecurityOpt"], json!(["no-new-privileges"]));
        assert_eq!(hc["MaskedPaths"], json!([]));
        assert!(mount("type=bind,bogus=1").is_err());
    }
}
