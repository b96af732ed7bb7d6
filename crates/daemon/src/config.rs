//! Daemon configuration: command-line flags merged over `daemon.json`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use clap::Parser;
use ipnet::IpNet;
use serde::Deserialize;

/// `netloomd`: the netloom daemon (Docker Engine API on a Unix socket).
#[derive(Debug, Parser)]
#[command(
    name = "netloomd",
    version,
    about = "netloom daemon: container networking (CNM) with a Docker-compatible API"
)]
pub struct Flags {
    /// Root of persistent state (store, images, container layers).
    #[arg(long, value_name = "DIR")]
    pub data_root: Option<PathBuf>,
    /// Root of runtime state (socket, network namespaces, container state).
    #[arg(long, value_name = "DIR")]
    pub exec_root: Option<PathBuf>,
    /// API socket, `unix:///path.sock` (default `<exec-root>/netloom.sock`).
    #[arg(short = 'H', long = "host", value_name = "unix:///PATH")]
    pub host: Option<String>,
    /// Daemon configuration file (JSON).
    #[arg(long, value_name = "FILE", default_value = "/etc/netloom/daemon.json")]
    pub config_file: PathBuf,
    /// Log level: debug, info, warn, error, fatal.
    #[arg(short = 'l', long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Debug logging (same as --log-level debug).
    #[arg(short = 'D', long)]
    pub debug: bool,
    /// Group that may use the API socket (default: root only).
    #[arg(short = 'G', long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Directory searched for remote driver/IPAM plugins (repeatable; replaces the
    /// defaults /run/docker/plugins, /etc/docker/plugins, /usr/lib/docker/plugins).
    #[arg(long = "plugin-dir", value_name = "DIR")]
    pub plugin_dirs: Vec<PathBuf>,
    /// Timeout of one plugin call, in seconds (default 30, as Docker).
    #[arg(long, value_name = "SECONDS")]
    pub plugin_timeout: Option<f64>,
    /// Keep all state in etcd instead of the embedded store file:
    /// `etcd://HOST:PORT[,HOST:PORT...][/PREFIX]` (keys under `/PREFIX/`, default
    /// `/netloom/`; one prefix per daemon). A request that cannot reach etcd within
    /// NETLOOM_STORE_TIMEOUT seconds (default 3) fails with 503.
    #[arg(long = "cluster-store", value_name = "etcd://HOST:PORT")]
    pub cluster_store: Option<String>,
    /// Client port of this node's etcd member when it is a swarm manager on
    /// `swarm init --cluster-store etcd` (default 2379, on the advertise address).
    #[arg(long = "swarm-etcd-client-port", value_name = "PORT")]
    pub swarm_etcd_client_port: Option<u16>,
    /// Peer port of that etcd member (default 2380, on the advertise address).
    #[arg(long = "swarm-etcd-peer-port", value_name = "PORT")]
    pub swarm_etcd_peer_port: Option<u16>,
    /// The etcd binary a swarm manager runs its member with (default `etcd` on PATH,
    /// Debian's etcd-server).
    #[arg(long = "swarm-etcd-binary", value_name = "PATH")]
    pub swarm_etcd_binary: Option<PathBuf>,
    /// Registry reached over unverified TLS or plain HTTP: host[:port] or a CIDR
    /// (repeatable; 127.0.0.0/8 always is).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]|CIDR")]
    pub insecure_registries: Vec<String>,
    /// Docker Hub mirror, tried before Docker Hub: http(s)://host[:port] (repeatable).
    #[arg(long = "registry-mirror", value_name = "URL")]
    pub registry_mirrors: Vec<String>,
    /// Layers downloaded at once per pull (default 3).
    #[arg(long, value_name = "N")]
    pub max_concurrent_downloads: Option<u32>,
    /// Tries per layer download (default 5).
    #[arg(long, value_name = "N")]
    pub max_download_attempts: Option<u32>,
    /// Seconds a registry may stay silent before a pull fails (default 30; netloom's own).
    #[arg(long, value_name = "SECONDS")]
    pub registry_timeout: Option<f64>,
    /// OCI runtime of containers that name none (default runc; others come from
    /// `runtimes` in daemon.json).
    #[arg(long, value_name = "NAME")]
    pub default_runtime: Option<String>,
    /// Parent cgroup of every container (default /netloom; a slice with systemd).
    #[arg(long, value_name = "CGROUP")]
    pub cgroup_parent: Option<String>,
    /// Address that `--add-host NAME:host-gateway` stands for (default: the gateway of
    /// the default bridge network).
    #[arg(long = "host-gateway-ip", value_name = "IP")]
    pub host_gateway_ip: Option<String>,
}

/// Environment variable overriding the plugin directories (colon-separated).
pub const ENV_PLUGIN_DIRS: &str = "NETLOOM_PLUGIN_DIRS";
/// Environment variable overriding the plugin call timeout (seconds).
pub const ENV_PLUGIN_TIMEOUT: &str = "NETLOOM_PLUGIN_TIMEOUT";
/// Environment variable setting the cluster store's request deadline (seconds).
pub const ENV_STORE_TIMEOUT: &str = "NETLOOM_STORE_TIMEOUT";

/// Keys accepted in `daemon.json`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    debug: Option<bool>,
    log_level: Option<String>,
    data_root: Option<PathBuf>,
    exec_root: Option<PathBuf>,
    hosts: Option<Vec<String>>,
    bip: Option<String>,
    default_address_pools: Option<Vec<netloom_ipam::DefaultPoolConfig>>,
    mtu: Option<u32>,
    dns: Option<Vec<String>>,
    dns_search: Option<Vec<String>>,
    dns_opts: Option<Vec<String>>,
    group: Option<String>,
    plugin_dirs: Option<Vec<PathBuf>>,
    plugin_timeout: Option<f64>,
    cluster_store: Option<String>,
    swarm_etcd_client_port: Option<u16>,
    swarm_etcd_peer_port: Option<u16>,
    swarm_etcd_binary: Option<PathBuf>,
    insecure_registries: Option<Vec<String>>,
    registry_mirrors: Option<Vec<String>>,
    max_concurrent_downloads: Option<u32>,
    max_download_attempts: Option<u32>,
    registry_timeout: Option<f64>,
    default_runtime: Option<String>,
    runtimes: Option<std::collections::BTreeMap<String, crate::runtimes::RuntimeEntry>>,
    cgroup_parent: Option<String>,
    exec_opts: Option<Vec<String>>,
    host_gateway_ip: Option<String>,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Persistent state root.
    pub data_root: PathBuf,
    /// Runtime state root.
    pub exec_root: PathBuf,
    /// Socket path.
    pub socket: PathBuf,
    /// Log level filter (tracing syntax).
    pub log_level: String,
    /// Default bridge: gateway address and subnet.
    pub bip: Option<(IpAddr, IpNet)>,
    /// Default address pools.
    pub default_pools: Vec<netloom_ipam::DefaultPool>,
    /// Default MTU (None: derive from the default-route interface).
    pub mtu: Option<u32>,
    /// Default DNS servers for containers.
    pub dns: Vec<IpAddr>,
    /// Default DNS search domains.
    pub dns_search: Vec<String>,
    /// Default resolver options.
    pub dns_opts: Vec<String>,
    /// Socket group.
    pub group: Option<String>,
    /// Remote plugin discovery and call timeout.
    pub plugins: netloom_drivers::remote::PluginConfig,
    /// The etcd cluster holding all state (`None`: the embedded store file).
    pub cluster_store: Option<netloom_store::EtcdConfig>,
    /// Swarm mode's own settings (the managers' etcd members).
    pub swarm: crate::cluster::SwarmConfig,
    /// Registries: mirrors, insecure registries, download limits.
    pub registry: netloom_runtime::registry::RegistryConfig,
    /// OCI runtimes and cgroups.
    pub runtime: crate::runtimes::RuntimeSettings,
    /// What `host-gateway` in `--add-host` stands for (`None`: the default bridge's gateway).
    pub host_gateway_ip: Option<IpAddr>,
}

/// The registry settings: flags over daemon.json (lists: both, as dockerd merges them).
fn registry_config(
    flags: &Flags,
    file: &FileConfig,
) -> Result<netloom_runtime::registry::RegistryConfig, String> {
    use netloom_runtime::registry::RegistryConfig;
    let mut r = RegistryConfig::default();
    let mirrors = file
        .registry_mirrors
        .iter()
        .flatten()
        .chain(&flags.registry_mirrors);
    for m in mirrors {
        r.mirrors.push(RegistryConfig::parse_mirror(m)?);
    }
    let insecure = file
        .insecure_registries
        .iter()
        .flatten()
        .chain(&flags.insecure_registries);
    for i in insecure {
        r.insecure.push(RegistryConfig::parse_insecure(i)?);
    }
    let count = |v: Option<u32>, key: &str, max: u32| -> Result<Option<usize>, String> {
        match v {
            Some(n) if n == 0 || n > max => Err(format!(
                "invalid {key} {n}: give a number between 1 and {max}"
            )),
            Some(n) => Ok(Some(n as usize)),
            None => Ok(None),
        }
    };
    if let Some(n) = count(
        flags
            .max_concurrent_downloads
            .or(file.max_concurrent_downloads),
        "max-concurrent-downloads",
        64,
    )? {
        r.max_concurrent_downloads = n;
    }
    if let Some(n) = count(
        flags.max_download_attempts.or(file.max_download_attempts),
        "max-download-attempts",
        100,
    )? {
        r.max_download_attempts = n;
    }
    if let Some(t) = flags.registry_timeout.or(file.registry_timeout) {
        r.timeout = plugin_timeout(t, "registry-timeout")?;
    }
    Ok(r)
}

fn plugin_timeout(secs: f64, key: &str) -> Result<std::time::Duration, String> {
    if !(secs.is_finite() && secs > 0.0 && secs <= 3600.0) {
        return Err(format!(
            "invalid {key} {secs}: give a number of seconds between 0 and 3600, e.g. 30"
        ));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// Parses a cluster-store URL; the deadline comes from [`ENV_STORE_TIMEOUT`].
fn cluster_store(url: &str, key: &str) -> Result<netloom_store::EtcdConfig, String> {
    let mut cfg = netloom_store::EtcdConfig::parse(url).map_err(|e| match e {
        netloom_store::StoreError::InvalidUrl { reason, .. } => {
            format!("invalid {key} {url:?}: {reason}")
        }
        other => format!("invalid {key} {url:?}: {other}"),
    })?;
    if let Ok(v) = std::env::var(ENV_STORE_TIMEOUT)
        && !v.is_empty()
    {
        let secs = v.trim().parse::<f64>().map_err(|_| {
            format!("invalid {ENV_STORE_TIMEOUT} {v:?}: give a number of seconds, e.g. 3")
        })?;
        if !(secs.is_finite() && secs > 0.0 && secs <= 300.0) {
            return Err(format!(
                "invalid {ENV_STORE_TIMEOUT} {v:?}: give a number of seconds between 0 and 300, e.g. 3"
            ));
        }
        cfg = cfg.with_deadline(std::time::Duration::from_secs_f64(secs));
    }
    Ok(cfg)
}

fn level(s: &str, key: &str) -> Result<String, String> {
    match s {
        "debug" | "info" | "warn" | "error" => Ok(s.to_string()),
        "fatal" => Ok("error".into()),
        _ => Err(format!(
            "invalid {key} {s:?}: use one of debug, info, warn, error, fatal"
        )),
    }
}

impl Config {
    /// Builds the configuration; every error names the flag or key at fault.
    pub fn load(flags: &Flags) -> Result<Config, String> {
        let file = read_file(&flags.config_file)?;
        let registry = registry_config(flags, &file)?;
        let data_root = flags
            .data_root
            .clone()
            .or(file.data_root)
            .unwrap_or_else(|| PathBuf::from("/var/lib/netloom"));
        let exec_root = flags
            .exec_root
            .clone()
            .or(file.exec_root)
            .unwrap_or_else(|| PathBuf::from("/run/netloom"));
        for (k, p) in [("data-root", &data_root), ("exec-root", &exec_root)] {
            if !p.is_absolute() {
                return Err(format!(
                    "invalid {k} {:?}: it must be an absolute path",
                    p.display()
                ));
            }
        }
        let host = flags
            .host
            .clone()
            .or_else(|| file.hosts.and_then(|h| h.into_iter().next()));
        let socket = match host {
            Some(h) => parse_host(&h)?,
            None => exec_root.join("netloom.sock"),
        };
        let log_level = if flags.debug || file.debug == Some(true) {
            "debug".to_string()
        } else if let Some(l) = &flags.log_level {
            level(l, "--log-level")?
        } else if let Some(l) = &file.log_level {
            level(l, "log-level")?
        } else {
            "info".to_string()
        };
        let bip = match file.bip {
            Some(b) => Some(parse_bip(&b)?),
            None => None,
        };
        let default_pools = match file.default_address_pools {
            Some(p) => netloom_ipam::default_pools_from_config(&p)
                .map_err(|e| format!("invalid default-address-pools: {e}"))?,
            None => netloom_ipam::docker_default_pools(),
        };
        if let Some(m) = file.mtu
            && !(68..=65535).contains(&m)
        {
            return Err(format!("invalid mtu {m}: it must be between 68 and 65535"));
        }
        let mut dns = Vec::new();
        for d in file.dns.unwrap_or_default() {
            dns.push(
                d.parse::<IpAddr>()
                    .map_err(|_| format!("invalid dns {d:?}: it must be an IP address"))?,
            );
        }
        // Plugins: flag, then environment, then daemon.json, then Docker's defaults.
        let env_dirs: Option<Vec<PathBuf>> = std::env::var(ENV_PLUGIN_DIRS)
            .ok()
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.split(':')
                    .filter(|d| !d.is_empty())
                    .map(PathBuf::from)
                    .collect()
            });
        let dirs = if !flags.plugin_dirs.is_empty() {
            Some(flags.plugin_dirs.clone())
        } else {
            env_dirs.or(file.plugin_dirs)
        };
        let mut plugins = netloom_drivers::remote::PluginConfig::default();
        if let Some(dirs) = dirs {
            for d in &dirs {
                if !d.is_absolute() {
                    return Err(format!(
                        "invalid plugin-dirs entry {:?}: it must be an absolute path",
                        d.display()
                    ));
                }
            }
            plugins.dirs = dirs;
        }
        let env_timeout = match std::env::var(ENV_PLUGIN_TIMEOUT) {
            Ok(v) if !v.is_empty() => Some(v.trim().parse::<f64>().map_err(|_| {
                format!("invalid {ENV_PLUGIN_TIMEOUT} {v:?}: give a number of seconds, e.g. 30")
            })?),
            _ => None,
        };
        if let Some(t) = flags.plugin_timeout {
            plugins.timeout = plugin_timeout(t, "--plugin-timeout")?;
        } else if let Some(t) = env_timeout {
            plugins.timeout = plugin_timeout(t, ENV_PLUGIN_TIMEOUT)?;
        } else if let Some(t) = file.plugin_timeout {
            plugins.timeout = plugin_timeout(t, "plugin-timeout")?;
        }
        let cluster_store = match (&flags.cluster_store, &file.cluster_store) {
            (Some(url), _) => Some(cluster_store(url, "--cluster-store")?),
            (None, Some(url)) => Some(cluster_store(url, "cluster-store")?),
            (None, None) => None,
        };
        let host_gateway_ip = match (&flags.host_gateway_ip, &file.host_gateway_ip) {
            (Some(ip), _) => Some(host_gateway_ip(ip, "--host-gateway-ip")?),
            (None, Some(ip)) => Some(host_gateway_ip(ip, "host-gateway-ip")?),
            (None, None) => None,
        };
        let mut swarm = crate::cluster::SwarmConfig::default();
        let client = flags.swarm_etcd_client_port.or(file.swarm_etcd_client_port);
        let peer = flags.swarm_etcd_peer_port.or(file.swarm_etcd_peer_port);
        for (p, key) in [
            (client, "swarm-etcd-client-port"),
            (peer, "swarm-etcd-peer-port"),
        ] {
            if p == Some(0) {
                return Err(format!("invalid {key} 0: give a port from 1 to 65535"));
            }
        }
        swarm.etcd_client_port = client.unwrap_or(swarm.etcd_client_port);
        swarm.etcd_peer_port = peer.unwrap_or(swarm.etcd_peer_port);
        if swarm.etcd_client_port == swarm.etcd_peer_port {
            return Err(format!(
                "invalid swarm etcd ports: the client and peer ports are both {}; give two different ports",
                swarm.etcd_client_port
            ));
        }
        if let Some(b) = flags.swarm_etcd_binary.clone().or(file.swarm_etcd_binary) {
            swarm.etcd_binary = b;
        }
        if let Some(c) = &cluster_store {
            swarm.store_deadline = c.deadline;
        }
        let runtime = crate::runtimes::RuntimeSettings::load(
            flags.default_runtime.clone().or(file.default_runtime),
            file.runtimes,
            flags.cgroup_parent.clone().or(file.cgroup_parent),
            file.exec_opts,
        )?;
        Ok(Config {
            host_gateway_ip,
            cluster_store,
            swarm,
            registry,
            runtime,
            plugins,
            data_root,
            exec_root,
            socket,
            log_level,
            bip,
            default_pools,
            mtu: file.mtu,
            dns,
            dns_search: file.dns_search.unwrap_or_default(),
            dns_opts: file.dns_opts.unwrap_or_default(),
            group: flags.group.clone().or(file.group),
        })
    }
}

fn host_gateway_ip(v: &str, key: &str) -> Result<IpAddr, String> {
    v.parse::<IpAddr>()
        .map_err(|_| format!("invalid {key} {v:?}: it must be an IP address, e.g. 172.17.0.1"))
}

fn read_file(path: &Path) -> Result<FileConfig, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| format!("invalid config file {}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileConfig::default()),
        Err(e) => Err(format!("cannot read config file {}: {e}", path.display())),
    }
}

/// Parses `unix:///path.sock` (or a bare absolute path).
pub fn parse_host(h: &str) -> Result<PathBuf, String> {
    let p = h.strip_prefix("unix://").unwrap_or(h);
    if h.starts_with("tcp://") || h.starts_with("fd://") {
        return Err(format!(
            "invalid --host {h:?}: netloomd listens only on a Unix socket (unix:///path.sock)"
        ));
    }
    let p = PathBuf::from(p);
    if !p.is_absolute() {
        return Err(format!(
            "invalid --host {h:?}: use unix:///absolute/path.sock"
        ));
    }
    Ok(p)
}

fn parse_bip(b: &str) -> Result<(IpAddr, IpNet), String> {
    let n: IpNet = b.parse().map_err(|_| {
        format!("invalid bip {b:?}: use an address with prefix, e.g. 172.17.0.1/16")
    })?;
    if !n.addr().is_ipv4() {
        return Err(format!("invalid bip {b:?}: it must be an IPv4 address"));
    }
    if n.addr() == n.network() {
        return Err(format!(
            "invalid bip {b:?}: give the gateway address, e.g. {}/{}",
            first(n),
            n.prefix_len()
        ));
    }
    Ok((n.addr(), n.trunc()))
}

fn first(n: IpNet) -> String {
    n.hosts().next().map(|a| a.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_json(json: &str, extra: &[&str]) -> Result<Config, String> {
        let path = std::env::temp_dir().join(format!(
            "netloom-config-test-{}-{}.json",
            std::process::id(),
            json.len() + extra.len() * 1000
        ));
        std::fs::write(&path, json).map_err(|e| e.to_string())?;
        let mut args = vec![
            "netloomd",
            "--config-file",
            path.to_str().unwrap_or_default(),
        ];
        args.extend_from_slice(extra);
        let flags = Flags::try_parse_from(args).map_err(|e| e.to_string())?;
        let r = Config::load(&flags);
        let _ = std::fs::remove_file(&path);
        r
    }

    #[test]
    fn plugin_settings() {
        let c = load_json("{}", &[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.plugins.dirs.len(), 3);
        assert_eq!(c.plugins.timeout, std::time::Duration::from_secs(30));
        let c = load_json(r#"{"plugin-dirs": ["/srv/p"], "plugin-timeout": 2.5}"#, &[])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.plugins.dirs, vec![PathBuf::from("/srv/p")]);
        assert_eq!(c.plugins.timeout, std::time::Duration::from_millis(2500));
        let c = load_json(
            r#"{"plugin-dirs": ["/srv/p"]}"#,
            &["--plugin-dir", "/a", "--plugin-timeout", "7"],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.plugins.dirs, vec![PathBuf::from("/a")]);
        assert_eq!(c.plugins.timeout, std::time::Duration::from_secs(7));
        let e = load_json(r#"{"plugin-dirs": ["rel"]}"#, &[]).err();
        assert!(e.is_some_and(|e| e.contains("plugin-dirs") && e.contains("absolute")));
        let e = load_json(r#"{"plugin-timeout": 0}"#, &[]).err();
        assert!(e.is_some_and(|e| e.contains("invalid plugin-timeout")));
    }

    #[test]
    fn cluster_store() {
        let c = load_json("{}", &[]).unwrap_or_else(|e| panic!("{e}"));
        assert!(c.cluster_store.is_none());
        let c = load_json(r#"{"cluster-store": "etcd://10.0.0.1:2379/a"}"#, &[])
            .unwrap_or_else(|e| panic!("{e}"));
        let etcd = c
            .cluster_store
            .unwrap_or_else(|| panic!("no cluster store"));
        assert_eq!(etcd.endpoints, ["http://10.0.0.1:2379"]);
        assert_eq!(etcd.prefix, "/a/");
        // the flag wins over the file
        let c = load_json(
            r#"{"cluster-store": "etcd://10.0.0.1:2379"}"#,
            &["--cluster-store", "etcd://127.0.0.1:1,127.0.0.1:2"],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let etcd = c
            .cluster_store
            .unwrap_or_else(|| panic!("no cluster store"));
        assert_eq!(etcd.endpoints.len(), 2);
        let e = load_json("{}", &["--cluster-store", "consul://h:8500"]).err();
        assert!(
            e.as_deref().is_some_and(|e| e.starts_with(
                r#"invalid --cluster-store "consul://h:8500": consul:// stores are not supported"#
            )),
            "{e:?}"
        );
        let e = load_json(r#"{"cluster-store": "etcd://h:0"}"#, &[]).err();
        assert!(
            e.as_deref()
                .is_some_and(|e| e.starts_with(r#"invalid cluster-store "etcd://h:0""#)),
            "{e:?}"
        );
        // Docker's other cluster keys are refused, not ignored
        let e = load_json(r#"{"cluster-advertise": "eth0:2376"}"#, &[]).err();
        assert!(e.is_some_and(|e| e.contains("unknown field `cluster-advertise`")));
    }

    #[test]
    fn host_gateway_ip() {
        let c = load_json("{}", &[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.host_gateway_ip, None);
        let c = load_json(r#"{"host-gateway-ip": "10.250.0.9"}"#, &[])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.host_gateway_ip, "10.250.0.9".parse().ok());
        let c = load_json(
            r#"{"host-gateway-ip": "10.250.0.9"}"#,
            &["--host-gateway-ip", "fd00::1"],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.host_gateway_ip, "fd00::1".parse().ok(), "the flag wins");
        let e = load_json(r#"{"host-gateway-ip": "gateway"}"#, &[]).err();
        assert_eq!(
            e.as_deref(),
            Some(r#"invalid host-gateway-ip "gateway": it must be an IP address, e.g. 172.17.0.1"#)
        );
    }

    #[test]
    fn registry_settings() {
        let c = load_json(
            r#"{"registry-mirrors": ["http://127.0.0.1:5001"], "insecure-registries": ["reg:5000", "10.9.0.0/16"],
                "max-concurrent-downloads": 2, "max-download-attempts": 1, "registry-timeout": 3}"#,
            &["--registry-mirror", "https://m.example"],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.registry.mirrors.len(), 2);
        assert_eq!(c.registry.insecure.len(), 3, "127.0.0.0/8 plus two");
        assert_eq!(c.registry.max_concurrent_downloads, 2);
        assert_eq!(c.registry.max_download_attempts, 1);
        assert_eq!(c.registry.timeout, std::time::Duration::from_secs(3));
        for (json, key) in [
            (
                r#"{"registry-mirrors": ["mirror:5000"]}"#,
                "registry-mirrors",
            ),
            (
                r#"{"insecure-registries": ["http://x"]}"#,
                "insecure-registries",
            ),
            (
                r#"{"max-concurrent-downloads": 0}"#,
                "max-concurrent-downloads",
            ),
            (r#"{"registry-timeout": -1}"#, "registry-timeout"),
            (
                r#"{"allow-nondistributable-artifacts": []}"#,
                "allow-nondistributable-artifacts",
            ),
        ] {
            let e = load_json(json, &[]).err();
            assert!(
                e.as_deref().is_some_and(|e| e.contains(key)),
                "{json}: {e:?}"
            );
        }
    }
}
