//! The network configuration read from stdin, and the `CNI_*` environment.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use crate::error::CniError;
use crate::result::{CniResult, Route};

/// The plugin's network configuration (one plugin object of a conflist, with
/// `cniVersion` and `name` filled in by the runtime).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    /// Spec version of the request.
    pub cni_version: String,
    /// Network name (the directory name of the IPAM store).
    #[serde(default)]
    pub name: String,
    /// Plugin type (`netloom-cni`).
    #[serde(rename = "type", default)]
    pub kind: String,
    /// `bridge` (default) or `macvlan`.
    #[serde(default)]
    pub driver: Option<String>,
    /// bridge: name of the bridge (default `cni0`).
    #[serde(default)]
    pub bridge: Option<String>,
    /// bridge: give the bridge the subnet gateways' addresses and enable forwarding.
    #[serde(default)]
    pub is_gateway: bool,
    /// bridge: also install a default route via the gateway (implies `isGateway`).
    #[serde(default)]
    pub is_default_gateway: bool,
    /// bridge: masquerade traffic leaving the subnets (nftables table `inet netloom_cni`).
    #[serde(default)]
    pub ip_masq: bool,
    /// bridge: how to masquerade; only `nftables` (the default) is accepted.
    #[serde(default)]
    pub ip_masq_backend: Option<String>,
    /// MTU of the created links.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// bridge: hairpin mode on the host-side veth.
    #[serde(default)]
    pub hairpin_mode: bool,
    /// bridge: promiscuous bridge (not implemented: refused when true).
    #[serde(default)]
    pub promisc_mode: bool,
    /// bridge: VLAN tag (not implemented: refused when set).
    #[serde(default)]
    pub vlan: Option<Value>,
    /// DEL: wait for the kernel to finish unregistering the interface (about 20 ms)
    /// instead of handing the final delete to a detached child.
    #[serde(default)]
    pub sync_delete: bool,
    /// macvlan: the parent link (default: the link of the default route).
    #[serde(default)]
    pub master: Option<String>,
    /// macvlan: `bridge` (default), `private`, `vepa` or `passthru`.
    #[serde(default)]
    pub mode: Option<String>,
    /// IPAM configuration.
    #[serde(default)]
    pub ipam: Option<IpamConf>,
    /// DNS settings copied into the result.
    #[serde(default)]
    pub dns: Option<Value>,
    /// The previous plugin's result (chaining), or the final result (DEL, CHECK).
    #[serde(default)]
    pub prev_result: Option<Value>,
    /// Runtime-provided capability arguments.
    #[serde(default)]
    pub runtime_config: RuntimeConfig,
    /// The `args` convention (`args.cni.ips`, `args.cni.mac`).
    #[serde(default)]
    pub args: Option<Value>,
    /// GC: the attachments that are still in use.
    #[serde(rename = "cni.dev/valid-attachments", default)]
    pub valid_attachments: Vec<Attachment>,
}

/// Capability arguments (`runtimeConfig`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    /// Requested addresses (`ips` capability).
    #[serde(default)]
    pub ips: Vec<String>,
    /// Requested MAC (`mac` capability).
    #[serde(default)]
    pub mac: Option<String>,
    /// Replacement ranges (`ipRanges` capability).
    #[serde(default)]
    pub ip_ranges: Option<Vec<Vec<RangeConf>>>,
}

/// One live attachment (GC).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// Container ID.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// Interface name.
    pub ifname: String,
}

/// The `ipam` object (host-local format).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamConf {
    /// Must be `host-local` (handled in-process).
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Range sets: one address per set.
    #[serde(default)]
    pub ranges: Option<Vec<Vec<RangeConf>>>,
    /// Legacy single range: subnet.
    #[serde(default)]
    pub subnet: Option<String>,
    /// Legacy single range: first address.
    #[serde(default)]
    pub range_start: Option<IpAddr>,
    /// Legacy single range: last address.
    #[serde(default)]
    pub range_end: Option<IpAddr>,
    /// Legacy single range: gateway.
    #[serde(default)]
    pub gateway: Option<IpAddr>,
    /// Routes for the container.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Store directory (default `/var/lib/cni/networks`).
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
}

/// One range of a range set.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RangeConf {
    /// Subnet, e.g. `10.1.0.0/16`.
    pub subnet: String,
    /// First address handed out.
    #[serde(default)]
    pub range_start: Option<IpAddr>,
    /// Last address handed out.
    #[serde(default)]
    pub range_end: Option<IpAddr>,
    /// Gateway (default: first address of the subnet).
    #[serde(default)]
    pub gateway: Option<IpAddr>,
}

impl NetConf {
    /// Decodes stdin: bad JSON is code 6, an unsupported `cniVersion` code 1, wrong
    /// field types code 7.
    pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
        let v: Value =
            serde_json::from_slice(stdin).map_err(|e| CniError::Decode(e.to_string()))?;
        let version = v
            .get("cniVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if !crate::SUPPORTED_VERSIONS.contains(&version.as_str()) {
            return Err(CniError::IncompatibleVersion { requested: version });
        }
        serde_json::from_value(v)
            .map_err(|e| CniError::InvalidConfig(format!("invalid network config: {e}")))
    }

    /// The `prevResult`, decoded.
    pub fn prev(&self) -> Result<Option<CniResult>, CniError> {
        match &self.prev_result {
            None | Some(Value::Null) => Ok(None),
            Some(v) => serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|e| CniError::InvalidConfig(format!("invalid prevResult: {e}"))),
        }
    }

    /// The network name, which must be usable as a directory name.
    pub fn net_name(&self) -> Result<&str, CniError> {
        let n = self.name.as_str();
        if n.is_empty() || n == "." || n == ".." || n.contains('/') || n.contains('\0') {
            return Err(CniError::InvalidConfig(format!(
                "network name {n:?} is not valid: set \"name\" to a non-empty name without '/'"
            )));
        }
        Ok(n)
    }

    /// Addresses requested through `runtimeConfig.ips`, `args.cni.ips` and the
    /// `IP=` key of `CNI_ARGS`.
    pub fn requested_ips(&self, cni_args: &[(String, String)]) -> Result<Vec<IpAddr>, CniError> {
        let mut raw: Vec<String> = self.runtime_config.ips.clone();
        if let Some(ips) = self
            .args
            .as_ref()
            .and_then(|a| a.pointer("/cni/ips"))
            .and_then(Value::as_array)
        {
            raw.extend(ips.iter().filter_map(|v| v.as_str().map(String::from)));
        }
        for (k, v) in cni_args {
            if k == "IP" {
                raw.extend(v.split(',').map(String::from));
            }
        }
        let mut out = Vec::new();
        for r in raw {
            let addr = r.split('/').next().unwrap_or("").trim();
            let ip: IpAddr = addr.parse().map_err(|_| {
                CniError::InvalidConfig(format!(
                    "requested IP {r:?} is not an IP address: use e.g. 10.1.0.9"
                ))
            })?;
            if !out.contains(&ip) {
                out.push(ip);
            }
        }
        Ok(out)
    }

    /// The MAC requested through `runtimeConfig.mac` or `args.cni.mac`.
    pub fn requested_mac(&self) -> Result<Option<[u8; 6]>, CniError> {
        let s = self.runtime_config.mac.clone().or_else(|| {
            self.args
                .as_ref()
                .and_then(|a| a.pointer("/cni/mac"))
                .and_then(Value::as_str)
                .map(String::from)
        });
        match s {
            None => Ok(None),
            Some(s) => crate::result::parse_mac(&s).map(Some).ok_or_else(|| {
                CniError::InvalidConfig(format!(
                    "MAC {s:?} is not valid: use the form c2:11:22:33:44:55"
                ))
            }),
        }
    }
}

/// The `CNI_*` environment of one invocation.
#[derive(Debug, Clone, Default)]
pub struct CniEnv {
    /// `CNI_COMMAND`.
    pub command: Option<String>,
    /// `CNI_CONTAINERID`.
    pub container_id: Option<String>,
    /// `CNI_NETNS`.
    pub netns: Option<String>,
    /// `CNI_IFNAME`.
    pub ifname: Option<String>,
    /// `CNI_ARGS`, split into key/value pairs.
    pub args: Vec<(String, String)>,
    /// Raw `CNI_ARGS` (for error messages).
    pub raw_args: String,
}

impl CniEnv {
    /// Reads the process environment (empty values count as unset).
    pub fn from_process() -> CniEnv {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        CniEnv {
            command: get("CNI_COMMAND"),
            container_id: get("CNI_CONTAINERID"),
            netns: get("CNI_NETNS"),
            ifname: get("CNI_IFNAME"),
            args: Vec::new(),
            raw_args: get("CNI_ARGS").unwrap_or_default(),
        }
    }

    /// Parses `CNI_ARGS` (`K=V;K2=V2`).
    pub fn parse_args(&mut self) -> Result<(), CniError> {
        self.args.clear();
        for pair in self.raw_args.split(';').filter(|p| !p.is_empty()) {
            let Some((k, v)) = pair.split_once('=') else {
                return Err(CniError::InvalidEnv(format!(
                    "CNI_ARGS: {pair:?} is not KEY=VALUE: use e.g. CNI_ARGS='IgnoreUnknown=1;IP=10.1.0.9'"
                )));
            };
            self.args.push((k.to_string(), v.to_string()));
        }
        Ok(())
    }

    /// `CNI_CONTAINERID`, required and validated.
    pub fn container_id(&self) -> Result<&str, CniError> {
        let id = self.container_id.as_deref().ok_or_else(|| {
            CniError::InvalidEnv("required env variable CNI_CONTAINERID is missing".into())
        })?;
        let mut chars = id.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
        if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
            return Err(CniError::InvalidEnv(format!(
                "CNI_CONTAINERID {id:?} is not valid: it must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"
            )));
        }
        Ok(id)
    }

    /// `CNI_IFNAME`, required and validated as a Linux interface name.
    pub fn ifname(&self) -> Result<&str, CniError> {
        let n = self.ifname.as_deref().ok_or_else(|| {
            CniError::InvalidEnv("required env variable CNI_IFNAME is missing".into())
        })?;
        if n.len() > 15
            || n == "."
            || n == ".."
            || n.chars().any(|c| c == '/' || c == ':' || c.is_whitespace())
        {
            return Err(CniError::InvalidEnv(format!(
                "CNI_IFNAME {n:?} is not a valid interface name: at most 15 characters, no '/', ':' or spaces"
            )));
        }
        Ok(n)
    }

    /// `CNI_NETNS`, required.
    pub fn netns(&self) -> Result<&str, CniError> {
        self.netns.as_deref().ok_or_else(|| {
            CniError::InvalidEnv("required env variable CNI_NETNS is missing".into())
        })
    }
}
