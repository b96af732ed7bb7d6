//! Container commands: `run`, `create`, `start`, `stop`, `kill`, `rm`, `ps`,
//! `inspect`, `logs`, `port`, `exec`, `container prune`.

use std::time::Duration;

use anyhow::{Result, bail};
use clap::{ArgAction, Args, Subcommand};
use hyper::Method;
use serde_json::{Map, Value, json};

use crate::client::{Client, ConnectError, daemon_status, decode, query, seg};
use crate::filters;
use crate::format::{
    ListFormat, ago, confirm, ellipsis, go_time_unix, human_size, labels_string, outln,
    print_inspect, print_list, s, short_id,
};
use crate::network::{kv_map, natural_cmp};
use crate::ports;
use crate::stream;

/// Manage containers.
#[derive(Debug, Subcommand)]
pub enum ContainerCmd {
    /// Create and run a new container from an image
    #[command(disable_help_flag = true)]
    Run(RunArgs),
    /// Create a new container
    #[command(disable_help_flag = true)]
    Create(RunArgs),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(AttachArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Remove one or more containers
    #[command(visible_aliases = ["remove"])]
    Rm(RmArgs),
    /// List containers
    #[command(visible_aliases = ["ps", "list"])]
    Ls(PsArgs),
    /// Display detailed information on one or more containers
    Inspect(InspectArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// List port mappings or a specific mapping for the container
    Port(PortArgs),
    /// Execute a command in a running container
    Exec(ExecArgs),
    /// Remove all stopped containers
    Prune(PruneArgs),
    /// Rename a container
    Rename(crate::rename::RenameArgs),
}

/// Flags of `run` and `create`.
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Print help
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,
    /// Run container in background and print container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Automatically remove the container and its associated anonymous volumes when it exits
    #[arg(long)]
    pub rm: bool,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Container NIS domain name
    #[arg(long)]
    pub domainname: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Connect a container to a network (NAME, or name=NET,alias=A,ip=IP,ip6=IP6,driver-opt=K=V)
    #[arg(long, visible_alias = "net", value_name = "NETWORK")]
    pub network: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address (e.g., 2001:db8::33)
    #[arg(long)]
    pub ip6: Option<String>,
    /// Add network-scoped alias for the container
    #[arg(long = "network-alias", visible_alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// Container MAC address (e.g., 92:d0:c6:0a:29:33)
    #[arg(long = "mac-address")]
    pub mac_address: Option<String>,
    /// Set environment variables (KEY=VALUE, or KEY to copy it from this environment)
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Set meta data on a container (key=value)
    #[arg(short = 'l', long)]
    pub label: Vec<String>,
    /// Set custom DNS servers
    #[arg(long)]
    pub dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option", visible_alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub add_host: Vec<String>,
    /// Publish a container's port(s) to the host ([ip:][hostPort:]containerPort[/proto])
    #[arg(short = 'p', long)]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports
    #[arg(long)]
    pub expose: Vec<String>,
    /// Add link to another container (name:alias)
    #[arg(long)]
    pub link: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Pull image before running ("always", "missing", "never")
    #[arg(long, default_value = "missing", value_parser = ["always", "missing", "never"])]
    pub pull: String,
    /// Set platform if server is multi-platform capable (os/arch[/variant])
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Suppress the pull output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Proxy received signals to the process (--sig-proxy=false to disable; not with a TTY
    /// or -d). A signal that no running container can take ends the client.
    #[arg(
        long = "sig-proxy",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub sig_proxy: Option<bool>,
    /// Security, mount and resource options.
    #[command(flatten)]
    pub rt: crate::runopts::RuntimeOpts,
    /// Restart policy, health check and stop options.
    #[command(flatten)]
    pub life: crate::lifecycle::LifecycleOpts,
    /// Image to run, then the command and its arguments. One positional list, so that
    /// everything after the image is the container's, even words that look like
    /// netloom's flags (`run IMAGE -c 'echo hi'` with an entrypoint `sh`), as with docker.
    #[arg(
        value_name = "IMAGE [COMMAND] [ARG...]",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub image_and_cmd: Vec<String>,
}

impl RunArgs {
    /// The image named.
    pub fn image(&self) -> &str {
        self.image_and_cmd.first().map_or("", String::as_str)
    }

    /// The command and its arguments (empty: the image's).
    pub fn cmd(&self) -> &[String] {
        self.image_and_cmd.get(1..).unwrap_or_default()
    }
}

/// Arguments of `start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// Attach container's STDIN
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Container names or IDs
    #[arg(value_name = "CONTAINER", required = true)]
    pub names: Vec<String>,
}

/// Arguments of `attach`.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Do not attach STDIN
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    /// Proxy all received signals to the process (--sig-proxy=false to disable; not with a TTY)
    #[arg(
        long = "sig-proxy",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub sig_proxy: Option<bool>,
    /// Override the key sequence for detaching a container (default ctrl-p,ctrl-q)
    #[arg(long = "detach-keys", value_name = "KEYS")]
    pub detach_keys: Option<String>,
    /// Container name or ID
    #[arg(value_name = "CONTAINER")]
    pub name: String,
}

/// One or more container names.
#[derive(Debug, Args)]
pub struct NamesArgs {
    /// Container names or IDs
    #[arg(value_name = "CONTAINER", required = true)]
    pub names: Vec<String>,
}

/// Arguments of `stop`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait before killing the container
    #[arg(short = 't', long = "time", visible_alias = "timeout")]
    pub time: Option<i64>,
    /// Signal to send to the container
    #[arg(short = 's', long)]
    pub signal: Option<String>,
    /// Container names or IDs
    #[arg(value_name = "CONTAINER", required = true)]
    pub names: Vec<String>,
}

/// Arguments of `kill`.
#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short = 's', long)]
    pub signal: Option<String>,
    /// Container names or IDs
    #[arg(value_name = "CONTAINER", required = true)]
    pub names: Vec<String>,
}

/// Arguments of `rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short, long)]
    pub force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short, long)]
    pub volumes: bool,
    /// Container names or IDs
    #[arg(value_name = "CONTAINER", required = true)]
    pub names: Vec<String>,
}

/// Arguments of `ps`.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Only display container IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Filter output based on conditions provided (key=value)
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Format output: "table", "json", "table TEMPLATE" or a TEMPLATE such as '{{.Names}}'
    #[arg(long)]
    pub format: Option<String>,
}

/// Arguments of `inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format output using a template ('{{.Id}}', '{{json .NetworkSettings}}', "json")
    #[arg(short, long)]
    pub format: Option<String>,
    /// Only inspect objects of this type (container, image, network)
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// Names or IDs
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,
}

/// Arguments of `logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short, long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs ("all" for everything)
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Show logs since timestamp or relative time (e.g. 42m)
    #[arg(long)]
    pub since: Option<String>,
    /// Show logs before a timestamp or relative time (e.g. 42m)
    #[arg(long)]
    pub until: Option<String>,
    /// Container name or ID
    #[arg(value_name = "CONTAINER")]
    pub name: String,
}

/// Arguments of `port`.
#[derive(Debug, Args)]
pub struct PortArgs {
    /// Container name or ID
    #[arg(value_name = "CONTAINER")]
    pub name: String,
    /// Private port, optionally with protocol (80, 53/udp)
    #[arg(value_name = "PRIVATE_PORT[/PROTO]")]
    pub port: Option<String>,
}

/// Arguments of `exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Set environment variables (KEY=VALUE)
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Detached mode: run command in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Give extended privileges to the command
    #[arg(long)]
    pub privileged: bool,
    /// Container name or ID
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// Command and arguments
    #[arg(
        value_name = "COMMAND",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub cmd: Vec<String>,
}

/// Arguments of `container prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long)]
    pub filter: Vec<String>,
}

/// Runs a container subcommand; returns the exit code.
pub async fn run_cmd(client: &Client, cmd: ContainerCmd) -> Result<i32> {
    match cmd {
        ContainerCmd::Run(a) => run(client, a).await,
        ContainerCmd::Create(a) => create(client, a).await,
        ContainerCmd::Start(a) => start(client, a).await,
        ContainerCmd::Attach(a) => attach(client, a).await,
        ContainerCmd::Stop(a) => stop(client, a).await,
        ContainerCmd::Restart(a) => crate::lifecycle::restart(client, a).await,
        ContainerCmd::Kill(a) => kill(client, a).await,
        ContainerCmd::Rm(a) => rm(client, a).await,
        ContainerCmd::Ls(a) => ps(client, a).await,
        ContainerCmd::Inspect(a) => {
            let a = InspectArgs {
                kind: Some(a.kind.unwrap_or_else(|| "container".into())),
                ..a
            };
            inspect(client, a).await
        }
        ContainerCmd::Logs(a) => logs(client, a).await,
        ContainerCmd::Port(a) => port(client, a).await,
        ContainerCmd::Exec(a) => exec(client, a).await,
        ContainerCmd::Prune(a) => prune(client, a).await,
        ContainerCmd::Rename(a) => crate::rename::rename(client, a).await,
    }
}

/// One `--network` value (simple name or `name=…,alias=…,ip=…` form).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct NetAttach {
    /// Network name.
    pub name: String,
    /// Aliases.
    pub aliases: Vec<String>,
    /// Static IPv4 address.
    pub ipv4: Option<String>,
    /// Static IPv6 address.
    pub ipv6: Option<String>,
    /// Driver options.
    pub driver_opts: Vec<String>,
    /// MAC address.
    pub mac: Option<String>,
}

impl NetAttach {
    fn has_options(&self) -> bool {
        !self.aliases.is_empty()
            || self.ipv4.is_some()
            || self.ipv6.is_some()
            || !self.driver_opts.is_empty()
            || self.mac.is_some()
    }
}

/// Parses a `--network` value.
pub fn parse_network(v: &str) -> Result<NetAttach> {
    if !v.contains('=') || v.starts_with("container:") {
        return Ok(NetAttach {
            name: v.to_string(),
            ..Default::default()
        });
    }
    let mut n = NetAttach::default();
    for field in v.split(',') {
        let Some((k, val)) = field.split_once('=') else {
            bail!("invalid field '{field}' must be a key=value pair");
        };
        match k.trim().to_lowercase().as_str() {
            "name" => n.name = val.to_string(),
            "alias" => n.aliases.push(val.to_string()),
            "ip" => n.ipv4 = Some(val.to_string()),
            "ip6" => n.ipv6 = Some(val.to_string()),
            "driver-opt" => n.driver_opts.push(val.to_string()),
            "mac-address" => n.mac = Some(val.to_string()),
            other => bail!("invalid field key {other}"),
        }
    }
    if n.name.is_empty() {
        bail!("network name not specified");
    }
    Ok(n)
}

fn is_user_defined(name: &str) -> bool {
    !matches!(name, "default" | "bridge" | "host" | "none") && !name.starts_with("container:")
}

fn endpoint(n: Option<&NetAttach>) -> Value {
    let (ipam, aliases, mac, opts) = match n {
        Some(n) => {
            let ipam = if n.ipv4.is_some() || n.ipv6.is_some() {
                let mut m = Map::new();
                if let Some(ip) = &n.ipv4 {
                    m.insert("IPv4Address".into(), json!(ip));
                }
                if let Some(ip) = &n.ipv6 {
                    m.insert("IPv6Address".into(), json!(ip));
                }
                Value::Object(m)
            } else {
                Value::Null
            };
            let aliases = if n.aliases.is_empty() {
                Value::Null
            } else {
                json!(n.aliases)
            };
            let opts = if n.driver_opts.is_empty() {
                Value::Null
            } else {
                Value::Object(kv_map(&n.driver_opts))
            };
            (ipam, aliases, n.mac.clone().unwrap_or_default(), opts)
        }
        None => (Value::Null, Value::Null, String::new(), Value::Null),
    };
    json!({
        "IPAMConfig": ipam,
        "Links": null,
        "Aliases": aliases,
        "MacAddress": mac,
        "DriverOpts": opts,
        "GwPriority": 0,
        "NetworkID": "",
        "EndpointID": "",
        "Gateway": "",
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DNSNames": null
    })
}

/// `(NetworkMode, EndpointsConfig)` for the create body.
pub fn networking(a: &RunArgs) -> Result<(String, Value)> {
    let mut nets: Vec<NetAttach> = a
        .network
        .iter()
        .map(|n| parse_network(n))
        .collect::<Result<_>>()?;
    let default_net = nets.is_empty();
    if default_net {
        nets.push(NetAttach {
            name: "default".into(),
            ..Default::default()
        });
    }
    if nets.len() > 1 && nets.iter().any(|n| !is_user_defined(&n.name)) {
        bail!(
            "conflicting options: cannot attach both user-defined and non-user-defined network-modes"
        );
    }
    for (i, n) in nets.iter().enumerate() {
        if nets[..i].iter().any(|m| m.name == n.name) {
            bail!("network {:?} is specified multiple times", n.name);
        }
    }
    // Legacy per-endpoint flags go to the first network.
    if let Some(first) = nets.first_mut() {
        if a.ip.is_some() {
            if first.ipv4.is_some() {
                bail!("conflicting options: cannot specify both --ip and per-network IPv4 address");
            }
            first.ipv4 = a.ip.clone();
        }
        if a.ip6.is_some() {
            if first.ipv6.is_some() {
                bail!(
                    "conflicting options: cannot specify both --ip6 and per-network IPv6 address"
                );
            }
            first.ipv6 = a.ip6.clone();
        }
        if !a.network_alias.is_empty() {
            if !first.aliases.is_empty() {
                bail!(
                    "conflicting options: cannot specify both --network-alias and per-network alias"
                );
            }
            first.aliases = a.network_alias.clone();
        }
        if a.mac_address.is_some() && first.mac.is_none() {
            first.mac = a.mac_address.clone();
        }
    }
    let mode = nets.first().map(|n| n.name.clone()).unwrap_or_default();
    let mut eps = Map::new();
    if default_net || nets.len() > 1 || nets.iter().any(NetAttach::has_options) {
        for n in &nets {
            eps.insert(n.name.clone(), endpoint(Some(n)));
        }
    }
    Ok((mode, Value::Object(eps)))
}

fn env_list(env: &[String]) -> Value {
    if env.is_empty() {
        return Value::Null;
    }
    let list: Vec<String> = env
        .iter()
        .map(|e| {
            if e.contains('=') {
                e.clone()
            } else {
                match std::env::var(e) {
                    Ok(v) => format!("{e}={v}"),
                    Err(_) => e.clone(),
                }
            }
        })
        .collect();
    json!(list)
}

fn list_or_null(v: &[String]) -> Value {
    if v.is_empty() { Value::Null } else { json!(v) }
}

/// Builds the `POST /containers/create` body like the docker CLI.
pub fn create_body(a: &RunArgs) -> Result<Value> {
    let ports = ports::parse(&a.publish, &a.expose)?;
    for h in &a.add_host {
        if !h.contains(':') && !h.contains('=') {
            bail!("bad format for add-host: {h:?}");
        }
    }
    let (mode, eps) = networking(a)?;
    let exposed: Map<String, Value> = ports
        .exposed
        .iter()
        .map(|p| (p.clone(), json!({})))
        .collect();
    let bindings: Map<String, Value> = ports
        .bindings
        .iter()
        .map(|(k, bs)| {
            let list: Vec<Value> = bs
                .iter()
                .map(|b| json!({"HostIp": b.host_ip, "HostPort": b.host_port}))
                .collect();
            (k.clone(), Value::Array(list))
        })
        .collect();
    let attach = !a.detach;
    let mut host_config = json!({
        "Binds": null,
        "ContainerIDFile": "",
        "LogConfig": {"Type": "", "Config": {}},
        "NetworkMode": mode,
        "PortBindings": bindings,
        "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "AutoRemove": a.rm,
        "VolumeDriver": "",
        "VolumesFrom": null,
        "ConsoleSize": console_size(a.tty),
        "CapAdd": null,
        "CapDrop": null,
        "CgroupnsMode": "",
        "Dns": a.dns,
        "DnsOptions": a.dns_option,
        "DnsSearch": a.dns_search,
        "ExtraHosts": list_or_null(&a.add_host),
        "GroupAdd": null,
        "IpcMode": "",
        "Cgroup": "",
        "Links": list_or_null(&a.link),
        "OomScoreAdj": 0,
        "PidMode": "",
        "Privileged": false,
        "PublishAllPorts": a.publish_all,
        "ReadonlyRootfs": false,
        "SecurityOpt": null,
        "UTSMode": "",
        "UsernsMode": "",
        "ShmSize": 0
    });
    if let Value::Object(m) = &mut host_config {
        a.rt.apply(m)?;
    }
    let entrypoint = match &a.entrypoint {
        Some(e) => json!([e]),
        None => Value::Null,
    };
    let mut body = json!({
        "Hostname": a.hostname.clone().unwrap_or_default(),
        "Domainname": a.domainname.clone().unwrap_or_default(),
        "User": a.user.clone().unwrap_or_default(),
        "AttachStdin": attach && a.interactive,
        "AttachStdout": attach,
        "AttachStderr": attach,
        "ExposedPorts": exposed,
        "Tty": a.tty,
        "OpenStdin": a.interactive,
        "StdinOnce": attach && a.interactive,
        "Env": env_list(&a.env),
        "Cmd": list_or_null(a.cmd()),
        "Image": a.image(),
        "Volumes": {},
        "WorkingDir": a.workdir.clone().unwrap_or_default(),
        "Entrypoint": entrypoint,
        "OnBuild": null,
        "Labels": kv_map(&a.label),
        "HostConfig": host_config,
        "NetworkingConfig": {"EndpointsConfig": eps}
    });
    if let Value::Object(m) = &mut body {
        a.life.apply(m, a.rm)?;
    }
    Ok(body)
}

/// Creates the container; a missing image is pulled first (`--pull missing`, the
/// default: on create's 404, as the docker CLI does) or always (`--pull always`).
async fn create_container(client: &Client, a: &RunArgs) -> Result<String> {
    let body = create_body(a)?;
    let mut q = Vec::new();
    if let Some(n) = &a.name {
        q.push(("name", n.clone()));
    }
    if let Some(p) = &a.platform {
        q.push(("platform", p.clone()));
    }
    let path = format!("/containers/create{}", query(&q));
    let pull = |client: &Client| {
        let client = client.clone();
        async move {
            crate::pull::pull_image(&client, a.image(), a.platform.as_deref(), a.quiet, true)
                .await
                .map(|_| ())
        }
    };
    if a.pull == "always" {
        pull(client).await?;
    }
    let resp: Value = match client.call_json(Method::POST, &path, Some(&body)).await {
        Err(e) if a.pull == "missing" && crate::client::daemon_status(&e) == Some(404) => {
            if !a.quiet {
                eprintln!(
                    "Unable to find image '{}' locally",
                    crate::pull::familiar(a.image())
                );
            }
            pull(client).await?;
            client.call_json(Method::POST, &path, Some(&body)).await?
        }
        r => r?,
    };
    if let Some(Value::Array(w)) = resp.get("Warnings") {
        for w in w {
            if let Some(w) = w.as_str().filter(|w| !w.is_empty()) {
                eprintln!("WARNING: {w}");
            }
        }
    }
    let id = s(&resp, "Id").to_string();
    if id.is_empty() {
        bail!("unexpected response from daemon: missing container Id");
    }
    Ok(id)
}

async fn create(client: &Client, a: RunArgs) -> Result<i32> {
    let id = create_container(client, &a).await?;
    outln(&id);
    Ok(0)
}

/// `run`: create; when attached, open the output stream and the exit-status wait
/// *before* start (as docker does), so neither a fast exit nor `--rm` can race them;
/// then start, copy the output, and exit with the container's status.
async fn run(client: &Client, a: RunArgs) -> Result<i32> {
    let id = create_container(client, &a).await?;
    let path = format!("/containers/{}", seg(&id));
    let remove = |client: &Client| {
        let client = client.clone();
        let path = path.clone();
        async move {
            let _ = client
                .call(Method::DELETE, &format!("{path}?force=1"), None)
                .await;
        }
    };
    if a.detach {
        if let Err(e) = client
            .call(Method::POST, &format!("{path}/start"), None)
            .await
        {
            if a.rm {
                remove(client).await;
            }
            return Err(e);
        }
        outln(&id);
        return Ok(0);
    }
    let interactive = a.tty || a.interactive;
    if interactive {
        check_tty_input(a.tty, a.interactive)?;
    }
    let attach_path = format!("{path}/attach?stream=1&stdout=1&stderr=1");
    let attach = async {
        if interactive {
            attach_session(client, &path, a.interactive).await
        } else {
            client.send(Method::POST, &attach_path, None, &[]).await
        }
    };
    let condition = if a.rm { "removed" } else { "next-exit" };
    let wait_path = format!("{path}/wait?condition={condition}");
    // Both in flight at once: each is answered before the container starts.
    let (attach, wait) = tokio::join!(attach, client.send(Method::POST, &wait_path, None, &[]));
    let (attach, wait) = match (attach, wait) {
        (Ok(at), Ok(w)) => (at, w),
        (Err(e), _) | (_, Err(e)) => {
            if a.rm {
                remove(client).await;
            }
            return Err(e);
        }
    };
    // As docker: signals go to the container from now on (not with a terminal, whose
    // keys do that), also while the start is in progress.
    let _signals = (a.sig_proxy.unwrap_or(true) && !a.tty)
        .then(|| proxy_signals(client, format!("{path}/kill")));
    if let Err(e) = client
        .call(Method::POST, &format!("{path}/start"), None)
        .await
    {
        if a.rm {
            remove(client).await;
        }
        return Err(e);
    }
    let pumped = if interactive {
        let _raw = (a.tty && a.interactive).then(stream::RawTerminal::enable);
        let _winch = a
            .tty
            .then(|| follow_terminal_size(client, format!("{path}/resize")));
        stream::pump_interactive(attach, a.tty, a.interactive, stream::DEFAULT_DETACH_KEYS).await
    } else {
        stream::pump_body(attach, false)
            .await
            .map(|()| stream::Ended::Closed)
    };
    match pumped {
        // ctrl-p ctrl-q: the container keeps running.
        Ok(stream::Ended::Detached) => return Ok(0),
        Ok(stream::Ended::Closed) => {}
        Err(e) => eprintln!("{e:#}"),
    }
    exit_status(wait).await
}

/// The exit code from a `/wait` answer (printing its error message, if any).
async fn exit_status(wait: crate::client::Resp) -> Result<i32> {
    let body = wait.bytes().await?;
    let v: Value = decode(&body)?;
    if let Some(msg) = v
        .get("Error")
        .and_then(|e| e.get("Message"))
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
    {
        eprintln!("{msg}");
    }
    Ok(v.get("StatusCode").and_then(Value::as_i64).unwrap_or(0) as i32)
}

/// Applies `op` to each name: prints the name on success, the error otherwise.
async fn each_name<F, Fut>(names: &[String], op: F) -> Result<i32>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    each_name_in(names, 1, op, |_| true).await
}

/// How many requests `stop`, `kill` and `rm` of several containers have in flight at
/// once (docker's CLI runs the same commands 50 at a time).
pub(crate) const PARALLEL: usize = 50;

/// Runs `op` on every name, `parallel` at a time, and reports each name (its result
/// printed in the order given, as docker does). An error for which `fails` is false
/// is printed but does not make the exit status non-zero. A daemon that cannot be
/// reached ends the command at once.
pub(crate) async fn each_name_in<F, Fut>(
    names: &[String],
    parallel: usize,
    op: F,
    fails: impl Fn(&anyhow::Error) -> bool,
) -> Result<i32>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    use futures::StreamExt;
    let mut results =
        futures::stream::iter(names.iter().map(|n| op(n.clone()))).buffered(parallel.max(1));
    let mut code = 0;
    for n in names {
        let Some(res) = results.next().await else {
            break;
        };
        match res {
            Ok(()) => outln(n),
            Err(e) => {
                if e.downcast_ref::<ConnectError>().is_some() {
                    return Err(e);
                }
                eprintln!("{e:#}");
                if fails(&e) {
                    code = 1;
                }
            }
        }
    }
    Ok(code)
}

/// A 304 answer (already started / already stopped) is success, as in docker.
fn not_modified_ok(e: anyhow::Error) -> Result<()> {
    if daemon_status(&e) == Some(304) {
        Ok(())
    } else {
        Err(e)
    }
}

/// `HostConfig.ConsoleSize` / exec `ConsoleSize`: the local terminal's size with `-t`.
fn console_size(tty: bool) -> Value {
    match stream::terminal_size().filter(|_| tty) {
        Some((h, w)) => json!([h, w]),
        None => json!([0, 0]),
    }
}

/// `-it` needs a terminal to read from, as in docker.
fn check_tty_input(tty: bool, interactive: bool) -> Result<()> {
    if tty && interactive && !stream::stdin_is_terminal() {
        bail!("the input device is not a TTY: run without -t, or from a terminal");
    }
    Ok(())
}

/// Sends the local terminal's size to `resize_path` now and on every SIGWINCH,
/// until the returned guard is dropped.
fn follow_terminal_size(client: &Client, resize_path: String) -> AbortOnDrop {
    let client = client.clone();
    AbortOnDrop(tokio::spawn(async move {
        let send = |client: Client, path: String| async move {
            if let Some((h, w)) = stream::terminal_size() {
                let _ = client
                    .call(Method::POST, &format!("{path}?h={h}&w={w}"), None)
                    .await;
            }
        };
        // The process may not exist yet right after start: try the first size twice.
        send(client.clone(), resize_path.clone()).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        send(client.clone(), resize_path.clone()).await;
        let Ok(mut winch) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        else {
            return;
        };
        while winch.recv().await.is_some() {
            send(client.clone(), resize_path.clone()).await;
        }
    }))
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn start(client: &Client, a: StartArgs) -> Result<i32> {
    if a.attach || a.interactive {
        let [name] = a.names.as_slice() else {
            bail!("you cannot start and attach multiple containers at once: give one container");
        };
        return start_attached(client, name, a.interactive).await;
    }
    each_name(&a.names, |n| async move {
        client
            .call(
                Method::POST,
                &format!("/containers/{}/start", seg(&n)),
                None,
            )
            .await
            .map(|_| ())
            .or_else(not_modified_ok)
    })
    .await
}

async fn stop(client: &Client, a: StopArgs) -> Result<i32> {
    let mut q = Vec::new();
    if let Some(sig) = &a.signal {
        q.push(("signal", sig.clone()));
    }
    if let Some(t) = a.time {
        q.push(("t", t.to_string()));
    }
    let q = query(&q);
    let op = |n: String| {
        let q = q.clone();
        async move {
            client
                .call(
                    Method::POST,
                    &format!("/containers/{}/stop{q}", seg(&n)),
                    None,
                )
                .await
                .map(|_| ())
                .or_else(not_modified_ok)
        }
    };
    each_name_in(&a.names, PARALLEL, op, |_| true).await
}

async fn kill(client: &Client, a: KillArgs) -> Result<i32> {
    let q = match &a.signal {
        Some(sig) => query(&[("signal", sig.clone())]),
        None => String::new(),
    };
    let op = |n: String| {
        let q = q.clone();
        async move {
            client
                .call(
                    Method::POST,
                    &format!("/containers/{}/kill{q}", seg(&n)),
                    None,
                )
                .await
                .map(|_| ())
        }
    };
    each_name_in(&a.names, PARALLEL, op, |_| true).await
}

async fn rm(client: &Client, a: RmArgs) -> Result<i32> {
    let mut q = Vec::new();
    if a.volumes {
        q.push(("v", "1".to_string()));
    }
    if a.force {
        q.push(("force", "1".to_string()));
    }
    let q = query(&q);
    let op = |n: String| {
        let q = q.clone();
        async move {
            client
                .call(Method::DELETE, &format!("/containers/{}{q}", seg(&n)), None)
                .await
                .map(|_| ())
        }
    };
    // Like docker: `rm -f` of a missing container is not a failure.
    let force = a.force;
    each_name_in(&a.names, PARALLEL, op, |e| {
        !(force && daemon_status(e) == Some(404))
    })
    .await
}

const PS_TABLE: &str =
    "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";
const PS_HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Size", "SIZE"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("Networks", "NETWORKS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
];

/// Formats `Ports` of a container list entry like `docker ps`.
pub fn ports_string(ports: Option<&Value>) -> String {
    let Some(Value::Array(list)) = ports else {
        return String::new();
    };
    let mut items: Vec<(u64, String, String)> = Vec::new();
    for p in list {
        let private = p.get("PrivatePort").and_then(Value::as_u64).unwrap_or(0);
        let typ = p.get("Type").and_then(Value::as_str).unwrap_or("tcp");
        let public = p.get("PublicPort").and_then(Value::as_u64).unwrap_or(0);
        let text = if public != 0 {
            let ip = s(p, "IP");
            let host = if ip.contains(':') {
                format!("[{ip}]")
            } else {
                ip.to_string()
            };
            format!("{host}:{public}->{private}/{typ}")
        } else {
            format!("{private}/{typ}")
        };
        if !items.iter().any(|(_, _, t)| *t == text) {
            items.push((private, typ.to_string(), text));
        }
    }
    items.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    items
        .into_iter()
        .map(|(_, _, t)| t)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Display fields of one container list entry.
pub fn ps_row(c: &Value, no_trunc: bool) -> Map<String, Value> {
    let created = c.get("Created").and_then(Value::as_i64).unwrap_or(0);
    let cmd = s(c, "Command");
    let cmd = if no_trunc {
        cmd.to_string()
    } else {
        ellipsis(cmd, 20)
    };
    let names: Vec<String> = match c.get("Names") {
        Some(Value::Array(n)) => n
            .iter()
            .filter_map(Value::as_str)
            .map(|n| n.trim_start_matches('/').to_string())
            .filter(|n| no_trunc || !n.contains('/'))
            .collect(),
        _ => Vec::new(),
    };
    let mut networks: Vec<String> = c
        .get("NetworkSettings")
        .and_then(|n| n.get("Networks"))
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    networks.sort();
    let size = c.get("SizeRw").and_then(Value::as_f64).unwrap_or(0.0);
    let mut m = Map::new();
    m.insert(
        "Command".into(),
        json!(serde_json::to_string(&cmd).unwrap_or_default()),
    );
    m.insert("CreatedAt".into(), json!(go_time_unix(created)));
    m.insert("ID".into(), json!(short_id(s(c, "Id"), no_trunc)));
    m.insert("Image".into(), json!(s(c, "Image")));
    m.insert("Labels".into(), json!(labels_string(c.get("Labels"))));
    m.insert("LocalVolumes".into(), json!("0"));
    m.insert("Mounts".into(), json!(""));
    m.insert("Names".into(), json!(names.join(",")));
    m.insert("Networks".into(), json!(networks.join(",")));
    m.insert("Ports".into(), json!(ports_string(c.get("Ports"))));
    m.insert("RunningFor".into(), json!(ago(created)));
    m.insert("Size".into(), json!(human_size(size)));
    m.insert("State".into(), json!(s(c, "State")));
    m.insert("Status".into(), json!(s(c, "Status")));
    m
}

async fn ps(client: &Client, a: PsArgs) -> Result<i32> {
    let mut q = Vec::new();
    if a.all {
        q.push(("all", "1".to_string()));
    }
    if let Some(p) = filters::query_pair(&a.filter)? {
        q.push(p);
    }
    let format = if a.quiet {
        ListFormat::parse(Some("{{.ID}}"), PS_TABLE)?
    } else {
        ListFormat::parse(a.format.as_deref(), PS_TABLE)?
    };
    let list: Vec<Value> = client
        .get_json(&format!("/containers/json{}", query(&q)))
        .await?;
    let rows: Vec<Map<String, Value>> = list.iter().map(|c| ps_row(c, a.no_trunc)).collect();
    print_list(&format, &rows, PS_HEADERS)?;
    Ok(0)
}

/// `inspect`: containers, then images, then networks (unless `--type`).
pub async fn inspect(client: &Client, a: InspectArgs) -> Result<i32> {
    let kinds: Vec<&str> = match a.kind.as_deref() {
        None | Some("") => vec!["container", "image", "network"],
        Some(k @ ("container" | "image" | "network")) => vec![k],
        Some(other) => bail!("\"{other}\" is not a valid value for --type"),
    };
    let mut items = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    for name in &a.names {
        let mut found = None;
        let mut last_err: Option<anyhow::Error> = None;
        for k in &kinds {
            let path = match *k {
                "container" => format!("/containers/{}/json", seg(name)),
                "image" => format!("/images/{}/json", seg(name)),
                _ => format!("/networks/{}", seg(name)),
            };
            match client.get_json::<Value>(&path).await {
                Ok(v) => {
                    found = Some(v);
                    break;
                }
                Err(e) if e.downcast_ref::<ConnectError>().is_some() => return Err(e),
                Err(e) if daemon_status(&e) == Some(404) => last_err = Some(e),
                Err(e) => {
                    last_err = Some(e);
                    break;
                }
            }
        }
        match (found, last_err) {
            (Some(v), _) => items.push(v),
            (None, Some(e)) if kinds.len() == 1 || daemon_status(&e) != Some(404) => {
                errors.push(format!("{e:#}"))
            }
            (None, _) => errors.push(format!("Error: No such object: {name}")),
        }
    }
    if !items.is_empty() || a.format.is_none() {
        print_inspect(&items, a.format.as_deref())?;
    }
    for e in &errors {
        eprintln!("{e}");
    }
    Ok(if errors.is_empty() { 0 } else { 1 })
}

async fn logs(client: &Client, a: LogsArgs) -> Result<i32> {
    let info: Value = client
        .get_json(&format!("/containers/{}/json", seg(&a.name)))
        .await?;
    let tty = info
        .get("Config")
        .and_then(|c| c.get("Tty"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut q = vec![("stdout", "1".to_string()), ("stderr", "1".to_string())];
    if a.follow {
        q.push(("follow", "1".into()));
    }
    if a.timestamps {
        q.push(("timestamps", "1".into()));
    }
    if let Some(v) = &a.since {
        q.push(("since", v.clone()));
    }
    if let Some(v) = &a.until {
        q.push(("until", v.clone()));
    }
    q.push(("tail", a.tail.clone()));
    let resp = client
        .send(
            Method::GET,
            &format!("/containers/{}/logs{}", seg(&a.name), query(&q)),
            None,
            &[],
        )
        .await?;
    stream::pump_body(resp, tty).await?;
    Ok(0)
}

fn join_host_port(ip: &str, port: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// Lines printed by `port` for an inspect document.
pub fn port_lines(info: &Value, name: &str, port: Option<&str>) -> Result<Vec<String>> {
    let ports = info
        .get("NetworkSettings")
        .and_then(|n| n.get("Ports"))
        .and_then(Value::as_object);
    let binds = |v: &Value| -> Vec<String> {
        match v {
            Value::Array(a) => a
                .iter()
                .map(|b| join_host_port(s(b, "HostIp"), s(b, "HostPort")))
                .collect(),
            _ => Vec::new(),
        }
    };
    let mut out = Vec::new();
    match port {
        Some(p) => {
            let (num, proto) = p.split_once('/').unwrap_or((p, ""));
            let proto = if proto.is_empty() { "tcp" } else { proto };
            if num.parse::<u16>().is_err() {
                bail!("Error: invalid port ({num})");
            }
            let key = format!("{num}/{proto}");
            let found = ports
                .and_then(|m| m.get(&key))
                .map(binds)
                .unwrap_or_default();
            if found.is_empty() {
                bail!("Error: No public port '{p}' published for {name}");
            }
            out = found;
        }
        None => {
            if let Some(m) = ports {
                for (k, v) in m {
                    for b in binds(v) {
                        out.push(format!("{k} -> {b}"));
                    }
                }
            }
        }
    }
    out.sort_by(|a, b| natural_cmp(a, b));
    Ok(out)
}

async fn port(client: &Client, a: PortArgs) -> Result<i32> {
    let info: Value = client
        .get_json(&format!("/containers/{}/json", seg(&a.name)))
        .await?;
    for l in port_lines(&info, &a.name, a.port.as_deref())? {
        outln(&l);
    }
    Ok(0)
}

/// Builds the `POST /containers/{id}/exec` body like the docker CLI.
pub fn exec_body(a: &ExecArgs) -> Value {
    json!({
        "User": a.user.clone().unwrap_or_default(),
        "Privileged": a.privileged,
        "Tty": a.tty,
        "AttachStdin": a.interactive && !a.detach,
        "ConsoleSize": console_size(a.tty),
        "AttachStderr": !a.detach,
        "AttachStdout": !a.detach,
        "Detach": a.detach,
        "DetachKeys": "",
        "Env": env_list(&a.env),
        "WorkingDir": a.workdir.clone().unwrap_or_default(),
        "Cmd": a.cmd
    })
}

async fn exec(client: &Client, a: ExecArgs) -> Result<i32> {
    let body = exec_body(&a);
    let created: Value = client
        .call_json(
            Method::POST,
            &format!("/containers/{}/exec", seg(&a.container)),
            Some(&body),
        )
        .await?;
    let id = s(&created, "Id").to_string();
    if id.is_empty() {
        bail!("unexpected response from daemon: missing exec Id");
    }
    let start_path = format!("/exec/{}/start", seg(&id));
    if a.detach {
        let b = json!({"Detach": true, "Tty": false});
        client.call(Method::POST, &start_path, Some(&b)).await?;
        return Ok(0);
    }
    check_tty_input(a.tty, a.interactive)?;
    let mut b = serde_json::to_vec(&json!({"Detach": false, "Tty": a.tty}))?;
    b.push(b'\n');
    let resp = client
        .send(
            Method::POST,
            &start_path,
            Some((bytes::Bytes::from(b), "application/json")),
            &[("Connection", "Upgrade"), ("Upgrade", "tcp")],
        )
        .await?;
    {
        let _raw = (a.tty && a.interactive).then(stream::RawTerminal::enable);
        let _winch = a
            .tty
            .then(|| follow_terminal_size(client, format!("/exec/{}/resize", seg(&id))));
        if stream::pump_interactive(resp, a.tty, a.interactive, stream::DEFAULT_DETACH_KEYS).await?
            == stream::Ended::Detached
        {
            return Ok(0);
        }
    }
    // The process may still be finishing when the stream closes.
    for _ in 0..40 {
        let info: Value = client.get_json(&format!("/exec/{}/json", seg(&id))).await?;
        let running = info
            .get("Running")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if !running {
            return Ok(info.get("ExitCode").and_then(Value::as_i64).unwrap_or(0) as i32);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("exec {id} is still running")
}

async fn prune(client: &Client, a: PruneArgs) -> Result<i32> {
    let mut q = Vec::new();
    if let Some(p) = filters::query_pair(&a.filter)? {
        q.push(p);
    }
    if !a.force
        && !confirm(
            "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?",
        )
    {
        return Ok(0);
    }
    let resp: Value = client
        .call_json(
            Method::POST,
            &format!("/containers/prune{}", query(&q)),
            None,
        )
        .await?;
    if let Some(Value::Array(ids)) = resp.get("ContainersDeleted")
        && !ids.is_empty()
    {
        outln("Deleted Containers:");
        for i in ids {
            outln(i.as_str().unwrap_or_default());
        }
        outln("");
    }
    let space = resp
        .get("SpaceReclaimed")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    outln(&format!("Total reclaimed space: {}", human_size(space)));
    Ok(0)
}

/// Opens a hijacked attach session (output, and input when `stdin`) to the container
/// at `path` (`/containers/<id>`).
async fn attach_session(client: &Client, path: &str, stdin: bool) -> Result<crate::client::Resp> {
    client
        .send(
            Method::POST,
            &format!(
                "{path}/attach?stream=1&stdin={}&stdout=1&stderr=1",
                u8::from(stdin)
            ),
            None,
            &[("Connection", "Upgrade"), ("Upgrade", "tcp")],
        )
        .await
}

/// `start -a [-i]`: attach (before starting, so no output is lost), start, copy the
/// session and return the container's exit code.
async fn start_attached(client: &Client, name: &str, interactive: bool) -> Result<i32> {
    let info: Value = client
        .get_json(&format!("/containers/{}/json", seg(name)))
        .await?;
    let id = s(&info, "Id").to_string();
    let cfg = info.get("Config");
    let flag = |k: &str| {
        cfg.and_then(|c| c.get(k))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    let tty = flag("Tty");
    let stdin = interactive && flag("OpenStdin");
    check_tty_input(tty, stdin)?;
    let path = format!("/containers/{}", seg(&id));
    let attach = attach_session(client, &path, stdin).await?;
    let wait = client
        .send(
            Method::POST,
            &format!("{path}/wait?condition=next-exit"),
            None,
            &[],
        )
        .await?;
    client
        .call(Method::POST, &format!("{path}/start"), None)
        .await
        .map(|_| ())
        .or_else(not_modified_ok)?;
    {
        let _raw = (tty && stdin).then(stream::RawTerminal::enable);
        let _winch = tty.then(|| follow_terminal_size(client, format!("{path}/resize")));
        match stream::pump_interactive(attach, tty, stdin, stream::DEFAULT_DETACH_KEYS).await {
            Ok(stream::Ended::Detached) => return Ok(0),
            Ok(stream::Ended::Closed) => {}
            Err(e) => eprintln!("{e:#}"),
        }
    }
    exit_status(wait).await
}

/// Inspects a container for `attach`, refusing one that is not running (docker's
/// client-side check: the daemon would otherwise wait for a start).
async fn attachable(client: &Client, name: &str) -> Result<Value> {
    let info: Value = client
        .get_json(&format!("/containers/{}/json", seg(name)))
        .await?;
    let state = |k: &str| {
        info.get("State")
            .and_then(|st| st.get(k))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    if !state("Running") {
        bail!("You cannot attach to a stopped container, start it first");
    }
    if state("Paused") {
        bail!("You cannot attach to a paused container, unpause it first");
    }
    if state("Restarting") {
        bail!("You cannot attach to a restarting container, wait until it is running");
    }
    Ok(info)
}

/// Signals `attach --sig-proxy` forwards (those a user can send to the CLI).
const PROXIED_SIGNALS: [(i32, &str); 6] = [
    (libc::SIGINT, "SIGINT"),
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGQUIT, "SIGQUIT"),
    (libc::SIGUSR1, "SIGUSR1"),
    (libc::SIGUSR2, "SIGUSR2"),
];

/// Forwards the signals this process receives to the container (`kill_path`)
/// until the returned guard is dropped. A signal the container cannot take (it does not
/// run, or is gone) ends this process as the signal would (exit 128 + signal): a user's
/// SIGTERM or ctrl-c is never swallowed.
fn proxy_signals(client: &Client, kill_path: String) -> AbortOnDrop {
    use tokio::signal::unix::{SignalKind, signal};
    let client = client.clone();
    AbortOnDrop(tokio::spawn(async move {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(i32, &'static str)>(16);
        for (num, name) in PROXIED_SIGNALS {
            let Ok(mut sig) = signal(SignalKind::from_raw(num)) else {
                continue;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                while sig.recv().await.is_some() {
                    if tx.send((num, name)).await.is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        while let Some((num, name)) = rx.recv().await {
            if let Err(e) = client
                .call(Method::POST, &format!("{kill_path}?signal={name}"), None)
                .await
            {
                eprintln!("error forwarding {name}: {e:#}");
                if matches!(crate::client::daemon_status(&e), Some(404 | 409)) {
                    std::process::exit(128 + num);
                }
            }
        }
    }))
}

/// `attach`: copy a running container's stdin/stdout/stderr until it exits (then
/// exit with its status) or the detach keys are typed (exit 0, container running).
async fn attach(client: &Client, a: AttachArgs) -> Result<i32> {
    let keys = match &a.detach_keys {
        Some(k) => stream::parse_detach_keys(k)?,
        None => stream::DEFAULT_DETACH_KEYS.to_vec(),
    };
    let info = attachable(client, &a.name).await?;
    let id = s(&info, "Id").to_string();
    let cfg = info.get("Config");
    let flag = |k: &str| {
        cfg.and_then(|c| c.get(k))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    let tty = flag("Tty");
    let stdin = !a.no_stdin && flag("OpenStdin");
    check_tty_input(tty, stdin)?;
    let path = format!("/containers/{}", seg(&id));
    // The wait first (as docker does): an exit right after the attach is not missed.
    let wait = client
        .send(
            Method::POST,
            &format!("{path}/wait?condition=not-running"),
            None,
            &[],
        )
        .await?;
    let _signals = (a.sig_proxy.unwrap_or(true) && !tty)
        .then(|| proxy_signals(client, format!("{path}/kill")));
    let session = attach_session(client, &path, stdin).await?;
    // It may have stopped between the first look and the attach: the daemon would
    // then hold the session open for a start that never comes.
    attachable(client, &id).await?;
    let ended = {
        let _raw = (tty && stdin).then(stream::RawTerminal::enable);
        let _winch = (tty && stream::terminal_size().is_some())
            .then(|| follow_terminal_size(client, format!("{path}/resize")));
        stream::pump_interactive(session, tty, stdin, &keys).await
    };
    match ended {
        Ok(stream::Ended::Detached) => {
            eprintln!("read escape sequence");
            return Ok(0);
        }
        Ok(stream::Ended::Closed) => {}
        Err(e) => eprintln!("{e:#}"),
    }
    exit_status(wait).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    #[command(disable_help_flag = true)]
    struct R {
        #[command(flatten)]
        a: RunArgs,
    }

    fn parse(args: &[&str]) -> RunArgs {
        let mut v = vec!["run"];
        v.extend_from_slice(args);
        match R::try_parse_from(v) {
            Ok(r) => r.a,
            Err(e) => panic!("parse failed: {e}"),
        }
    }

    #[test]
    fn trailing_command_is_not_parsed_as_flags() {
        let a = parse(&[
            "--name", "c1", "-h", "h2", "alpine", "sh", "-c", "echo hi", "--rm",
        ]);
        assert_eq!(a.name.as_deref(), Some("c1"));
        assert_eq!(a.hostname.as_deref(), Some("h2"));
        assert_eq!(a.image(), "alpine");
        assert_eq!(a.cmd(), ["sh", "-c", "echo hi", "--rm"]);
        assert!(!a.rm);
        // A command that starts with a word netloom also knows as a flag (-c is
        // --cpu-shares) is the container's.
        let a = parse(&["busybox", "-c", "echo hi"]);
        assert_eq!(a.image(), "busybox");
        assert_eq!(a.cmd(), ["-c", "echo hi"]);
        assert_eq!(a.rt.cpu_shares, None);
    }

    #[test]
    fn create_body_ports_and_network() {
        let a = parse(&[
            "-d",
            "--network",
            "localnet",
            "-p",
            "127.0.0.1:8081:81/udp",
            "-p",
            "9000-9001:90-91",
            "-P",
            "--expose",
            "7000",
            "--dns",
            "1.1.1.1",
            "alpine",
            "sleep",
            "1d",
        ]);
        let b = create_body(&a).expect("valid");
        assert_eq!(
            b["ExposedPorts"].to_string(),
            r#"{"7000/tcp":{},"81/udp":{},"90/tcp":{},"91/tcp":{}}"#
        );
        assert_eq!(
            b["HostConfig"]["PortBindings"].to_string(),
            r#"{"81/udp":[{"HostIp":"127.0.0.1","HostPort":"8081"}],"90/tcp":[{"HostIp":"","HostPort":"9000"}],"91/tcp":[{"HostIp":"","HostPort":"9001"}]}"#
        );
        assert_eq!(b["HostConfig"]["PublishAllPorts"], json!(true));
        assert_eq!(b["HostConfig"]["NetworkMode"], json!("localnet"));
        assert_eq!(b["HostConfig"]["Dns"], json!(["1.1.1.1"]));
        assert_eq!(
            b["HostConfig"]["LogConfig"].to_string(),
            r#"{"Type":"","Config":{}}"#
        );
        assert_eq!(b["NetworkingConfig"]["EndpointsConfig"], json!({}));
        assert_eq!(b["Cmd"], json!(["sleep", "1d"]));
        assert_eq!(b["Env"], Value::Null);
        assert_eq!(b["AttachStdout"], json!(false));
    }

    #[test]
    fn create_body_endpoint_settings() {
        let a = parse(&[
            "--network",
            "localnet",
            "--ip",
            "172.18.0.9",
            "--network-alias",
            "web",
            "--network",
            "othernet",
            "-e",
            "A=1",
            "--add-host",
            "db:10.0.0.2",
            "--entrypoint",
            "/bin/sh",
            "-w",
            "/tmp",
            "--rm",
            "alpine",
        ]);
        let b = create_body(&a).expect("valid");
        let eps = &b["NetworkingConfig"]["EndpointsConfig"];
        assert_eq!(
            eps["localnet"]["IPAMConfig"],
            json!({"IPv4Address": "172.18.0.9"})
        );
        assert_eq!(eps["localnet"]["Aliases"], json!(["web"]));
        assert_eq!(eps["othernet"]["IPAMConfig"], Value::Null);
        assert_eq!(b["Env"], json!(["A=1"]));
        assert_eq!(b["Entrypoint"], json!(["/bin/sh"]));
        assert_eq!(b["WorkingDir"], json!("/tmp"));
        assert_eq!(b["HostConfig"]["ExtraHosts"], json!(["db:10.0.0.2"]));
        assert_eq!(b["HostConfig"]["AutoRemove"], json!(true));
        assert_eq!(b["Cmd"], Value::Null);
        assert_eq!(b["AttachStdout"], json!(true));
    }

    #[test]
    fn default_network_and_conflicts() {
        let b = create_body(&parse(&["alpine"])).expect("valid");
        assert_eq!(b["HostConfig"]["NetworkMode"], json!("default"));
        assert!(b["NetworkingConfig"]["EndpointsConfig"]["default"].is_object());
        let e = create_body(&parse(&[
            "--network",
            "host",
            "--network",
            "mynet",
            "alpine",
        ]))
        .expect_err("conflict");
        assert!(e.to_string().contains("conflicting options"));
        let e = create_body(&parse(&["-p", "x", "alpine"])).expect_err("bad port");
        assert_eq!(e.to_string(), "invalid containerPort: x");
        let n = parse_network("name=localnet,alias=a1,ip=172.18.0.10").expect("ok");
        assert_eq!(n.name, "localnet");
        assert_eq!(n.aliases, vec!["a1"]);
        assert_eq!(n.ipv4.as_deref(), Some("172.18.0.10"));
        assert!(parse_network("alias=x").is_err());
    }

    #[test]
    fn ps_formatting() {
        let c = json!({"Id":"aee13158cff6aabbccdd","Names":["/c1"],"Image":"alpine","Command":"sleep 1d",
            "Created":0,"State":"running","Status":"Up 1 second",
            "Ports":[{"IP":"0.0.0.0","PrivatePort":80,"PublicPort":8080,"Type":"tcp"},{"PrivatePort":53,"Type":"udp"},
                     {"IP":"::","PrivatePort":80,"PublicPort":8080,"Type":"tcp"}],
            "NetworkSettings":{"Networks":{"net2":{},"bridge":{}}}});
        let r = ps_row(&c, false);
        assert_eq!(r["ID"], json!("aee13158cff6"));
        assert_eq!(r["Command"], json!("\"sleep 1d\""));
        assert_eq!(r["Names"], json!("c1"));
        assert_eq!(r["Networks"], json!("bridge,net2"));
        assert_eq!(
            r["Ports"],
            json!("53/udp, 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp")
        );
    }

    #[test]
    fn port_output() {
        let info = json!({"NetworkSettings":{"Ports":{"80/tcp":[{"HostIp":"0.0.0.0","HostPort":"5000"},{"HostIp":"::","HostPort":"5000"}],"53/udp":null}}});
        assert_eq!(
            port_lines(&info, "c1", None).expect("ok"),
            vec!["80/tcp -> 0.0.0.0:5000", "80/tcp -> [::]:5000"]
        );
        assert_eq!(
            port_lines(&info, "c1", Some("80")).expect("ok"),
            vec!["0.0.0.0:5000", "[::]:5000"]
        );
        assert_eq!(
            port_lines(&info, "c1", Some("53/udp"))
                .expect_err("none")
                .to_string(),
            "Error: No public port '53/udp' published for c1"
        );
    }
}
