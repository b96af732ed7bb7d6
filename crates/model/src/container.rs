//! Containers and images.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// An image: a root filesystem (its layers stacked) and the defaults of its config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// `sha256:<hex>`.
    pub id: String,
    /// `name:tag` references.
    pub tags: Vec<String>,
    /// Import time, RFC 3339.
    pub created: String,
    /// Unpacked size in bytes.
    pub size: u64,
    /// Default command.
    #[serde(default)]
    pub cmd: Vec<String>,
    /// Default environment.
    #[serde(default)]
    pub env: Vec<String>,
    /// Ports the image declares (`80/tcp`).
    #[serde(default)]
    pub exposed_ports: Vec<String>,
    /// Default entrypoint.
    #[serde(default)]
    pub entrypoint: Vec<String>,
    /// Default working directory.
    #[serde(default)]
    pub working_dir: String,
    /// Default user.
    #[serde(default)]
    pub user: String,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Stop signal.
    #[serde(default)]
    pub stop_signal: String,
    /// `Healthcheck` as the image's config gives it, kept for containers to use.
    #[serde(default)]
    pub healthcheck: Option<serde_json::Value>,
    /// `name@sha256:…` of the registry manifests it was pulled as.
    #[serde(default)]
    pub repo_digests: Vec<String>,
    /// CPU architecture (`amd64`).
    #[serde(default)]
    pub architecture: String,
    /// OS (`linux`).
    #[serde(default)]
    pub os: String,
    /// Architecture variant.
    #[serde(default)]
    pub variant: String,
    /// Author.
    #[serde(default)]
    pub author: String,
    /// Comment (`docker import -m`, build comments).
    #[serde(default)]
    pub comment: String,
    /// Layers, bottom first (empty for images imported before netloom kept them).
    #[serde(default)]
    pub layers: Vec<ImageLayer>,
}

/// One layer of an image, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageLayer {
    /// The blob's digest (as pulled or loaded; compressed or not).
    pub digest: String,
    /// The blob's media type.
    pub media_type: String,
    /// The blob's size.
    pub size: u64,
    /// Its DiffID: the sha256 of the uncompressed tar.
    pub diff_id: String,
    /// Bytes of the uncompressed tar.
    pub tar_size: u64,
}

/// One host binding of a published port (Docker's `PortBinding`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PortBinding {
    /// Host address, empty for all.
    #[serde(default)]
    pub host_ip: String,
    /// Host port or range, empty for ephemeral.
    #[serde(default)]
    pub host_port: String,
}

/// What a container asks of one network it is attached to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct EndpointRequest {
    /// Pinned IPv4 address.
    #[serde(default)]
    pub ipv4: Option<IpAddr>,
    /// Pinned IPv6 address.
    #[serde(default)]
    pub ipv6: Option<IpAddr>,
    /// Network-scoped aliases.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Legacy links (`name:alias`).
    #[serde(default)]
    pub links: Vec<String>,
    /// Requested MAC address (`--mac-address`), `aa:bb:cc:dd:ee:ff`; derived from the
    /// IPv4 address when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// `--driver-opt k=v` (`EndpointSettings.DriverOpts`): passed to a remote driver's
    /// `CreateEndpoint`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
}

/// Lifecycle state of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ContainerStatus {
    /// Created, never started.
    #[default]
    Created,
    /// Running.
    Running,
    /// Stopped.
    Exited,
    /// Being removed.
    Removing,
    /// Exited; its restart policy starts it again after a back-off delay.
    Restarting,
}

impl ContainerStatus {
    /// Docker's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerStatus::Created => "created",
            ContainerStatus::Running => "running",
            ContainerStatus::Exited => "exited",
            ContainerStatus::Removing => "removing",
            ContainerStatus::Restarting => "restarting",
        }
    }
}

/// Runtime state of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ContainerState {
    /// Status.
    pub status: ContainerStatus,
    /// Host PID of the container's init (0 when not running).
    #[serde(default)]
    pub pid: i32,
    /// Start time of that PID (to detect reuse).
    #[serde(default)]
    pub pid_start_time: u64,
    /// Host PID of the shim that owns the container.
    #[serde(default)]
    pub shim_pid: i32,
    /// Start time of the shim PID.
    #[serde(default)]
    pub shim_start_time: u64,
    /// Last exit code.
    #[serde(default)]
    pub exit_code: i32,
    /// RFC 3339 start time.
    #[serde(default)]
    pub started_at: String,
    /// RFC 3339 finish time.
    #[serde(default)]
    pub finished_at: String,
    /// Error message of the last failed start.
    #[serde(default)]
    pub error: String,
    /// Host ports published while it runs.
    #[serde(default)]
    pub ports: Vec<PublishedPort>,
}

/// One published port of a running container, as programmed in the firewall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedPort {
    /// `tcp`, `udp`, `sctp`.
    pub proto: String,
    /// Host address; empty for every address of the family of `container_ip`.
    pub host_ip: String,
    /// Host port.
    pub host_port: u16,
    /// Container port.
    pub container_port: u16,
    /// Container address the traffic goes to.
    pub container_ip: String,
}

/// A container: a process in its own namespaces, attached to networks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    /// 64-hex ID.
    pub id: String,
    /// Name without the leading `/`.
    pub name: String,
    /// Image reference as given.
    pub image: String,
    /// Image ID.
    pub image_id: String,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Hostname.
    pub hostname: String,
    /// Domain name.
    #[serde(default)]
    pub domainname: String,
    /// Environment `K=V`.
    #[serde(default)]
    pub env: Vec<String>,
    /// Command.
    #[serde(default)]
    pub cmd: Vec<String>,
    /// Entrypoint.
    #[serde(default)]
    pub entrypoint: Vec<String>,
    /// Working directory.
    #[serde(default)]
    pub working_dir: String,
    /// `--user`: `uid[:gid]` or `name[:group]`, empty for root.
    #[serde(default)]
    pub user: String,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Exposed ports (`80/tcp`).
    #[serde(default)]
    pub exposed_ports: Vec<String>,
    /// `HostConfig.NetworkMode` as resolved: a network name, `host`, `none`, `bridge`.
    pub network_mode: String,
    /// Networks the container is attached to: network ID → request.
    #[serde(default)]
    pub networks: BTreeMap<String, EndpointRequest>,
    /// Order in which networks were attached (network IDs); the first gives the default route.
    #[serde(default)]
    pub network_order: Vec<String>,
    /// Published ports: `80/tcp` → bindings.
    #[serde(default)]
    pub port_bindings: BTreeMap<String, Vec<PortBinding>>,
    /// Publish every exposed port on an ephemeral host port.
    #[serde(default)]
    pub publish_all: bool,
    /// Remove when it exits.
    #[serde(default)]
    pub auto_remove: bool,
    /// `--dns`.
    #[serde(default)]
    pub dns: Vec<String>,
    /// `--dns-search`.
    #[serde(default)]
    pub dns_search: Vec<String>,
    /// `--dns-opt`.
    #[serde(default)]
    pub dns_options: Vec<String>,
    /// `--add-host` entries `host:ip`.
    #[serde(default)]
    pub extra_hosts: Vec<String>,
    /// `Tty`: the main process runs on a pseudo-terminal.
    #[serde(default)]
    pub tty: bool,
    /// `OpenStdin`: the main process's stdin is fed from attached clients.
    #[serde(default)]
    pub open_stdin: bool,
    /// `StdinOnce`: stdin closes when the first attached client closes its input.
    #[serde(default)]
    pub stdin_once: bool,
    /// `HostConfig.ConsoleSize`: initial terminal `[rows, cols]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_size: Option<[u16; 2]>,
    /// What the OCI runtime applies: security options, mounts, limits.
    #[serde(default)]
    pub host: HostOptions,
    /// Volumes mounted into it (from `-v NAME:/path`, `--mount type=volume`, anonymous
    /// `-v /path` and `Config.Volumes`), resolved at create.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<crate::VolumeMount>,
    /// Restart policy, health check, stop signal and timeout.
    #[serde(default)]
    pub lifecycle: crate::Lifecycle,
    /// What the restart policy and the health check remember between runs.
    #[serde(default)]
    pub supervision: crate::Supervision,
    /// Runtime state.
    #[serde(default)]
    pub state: ContainerState,
}

/// The `HostConfig` options that the OCI runtime applies (Docker's field names in
/// the comments). Each one is checked when the container is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HostOptions {
    /// `Runtime`: the OCI runtime's name; empty for the daemon's default.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub runtime: String,
    /// `Privileged`.
    #[serde(default)]
    pub privileged: bool,
    /// `CapAdd`.
    #[serde(default)]
    pub cap_add: Vec<String>,
    /// `CapDrop`.
    #[serde(default)]
    pub cap_drop: Vec<String>,
    /// `SecurityOpt` (`no-new-privileges`, `seccomp=...`).
    #[serde(default)]
    pub security_opt: Vec<String>,
    /// `Sysctls`.
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
    /// `Binds` (`-v /host:/ctr:ro`).
    #[serde(default)]
    pub binds: Vec<String>,
    /// `Mounts` (`--mount`).
    #[serde(default)]
    pub mounts: Vec<MountPoint>,
    /// `Config.Volumes`: container paths that get an anonymous volume (unless a bind or
    /// mount covers them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anonymous_volumes: Vec<String>,
    /// `Tmpfs`: container path → options.
    #[serde(default)]
    pub tmpfs: BTreeMap<String, String>,
    /// `ReadonlyRootfs`.
    #[serde(default)]
    pub read_only_rootfs: bool,
    /// `Ulimits`.
    #[serde(default)]
    pub ulimits: Vec<Ulimit>,
    /// Memory, CPU and PID limits.
    #[serde(default)]
    pub resources: Resources,
    /// `CgroupnsMode`: `private`, `host`, or empty for the host's default (private on
    /// cgroup v2, host on v1).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cgroupns_mode: String,
    /// `UsernsMode` as given (`host` or empty: containers never get a user namespace).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub userns_mode: String,
    /// `Isolation` as given (`default` or empty: Linux has no other).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub isolation: String,
}

/// One `--mount` (`HostConfig.Mounts` entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MountPoint {
    /// `Type`: `bind`, `tmpfs` or `volume`.
    pub typ: String,
    /// `Source`.
    #[serde(default)]
    pub source: String,
    /// `Target`.
    pub target: String,
    /// `ReadOnly`.
    #[serde(default)]
    pub read_only: bool,
    /// `BindOptions.Propagation`.
    #[serde(default)]
    pub propagation: String,
    /// `BindOptions.NonRecursive`.
    #[serde(default)]
    pub non_recursive: bool,
    /// `BindOptions.CreateMountpoint`.
    #[serde(default)]
    pub create_mountpoint: bool,
    /// `TmpfsOptions.SizeBytes`.
    #[serde(default)]
    pub tmpfs_size: i64,
    /// `TmpfsOptions.Mode`.
    #[serde(default)]
    pub tmpfs_mode: u32,
    /// `VolumeOptions.NoCopy`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub volume_nocopy: bool,
    /// `VolumeOptions.Labels` (a volume created on first use gets them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volume_labels: BTreeMap<String, String>,
    /// `VolumeOptions.DriverConfig.Name`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub volume_driver: String,
    /// `VolumeOptions.DriverConfig.Options`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volume_opts: BTreeMap<String, String>,
}

/// One `--ulimit` (`HostConfig.Ulimits` entry); -1 is unlimited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    /// `Name` (`nofile`).
    pub name: String,
    /// `Soft`.
    pub soft: i64,
    /// `Hard`.
    pub hard: i64,
}

/// cgroup limits; 0 / empty is "not set".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Resources {
    /// `Memory`, bytes.
    #[serde(default)]
    pub memory: i64,
    /// `MemorySwap`, bytes (memory + swap); -1 unlimited.
    #[serde(default)]
    pub memory_swap: i64,
    /// `NanoCpus`.
    #[serde(default)]
    pub nano_cpus: i64,
    /// `CpuShares`.
    #[serde(default)]
    pub cpu_shares: i64,
    /// `CpusetCpus`.
    #[serde(default)]
    pub cpuset_cpus: String,
    /// `PidsLimit`; 0 or -1: unlimited.
    #[serde(default)]
    pub pids_limit: i64,
}

impl Container {
    /// The argv the container runs: entrypoint followed by cmd.
    pub fn argv(&self) -> Vec<String> {
        self.entrypoint
            .iter()
            .chain(self.cmd.iter())
            .cloned()
            .collect()
    }

    /// True while its process runs.
    pub fn is_running(&self) -> bool {
        self.state.status == ContainerStatus::Running
    }
}
