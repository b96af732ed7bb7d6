//! The remote IPAM protocol (`IpamDriver.*`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Value, json};

use super::{Client, PluginError};

/// What `IpamDriver.GetCapabilities` said (empty when the call failed, as Docker).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IpamCapabilities {
    /// The driver wants the endpoint's MAC address in `RequestAddress` options.
    pub requires_mac_address: bool,
    /// The driver wants pools and gateways requested again after a daemon restart.
    pub requires_request_replay: bool,
}

/// A remote IPAM driver.
pub struct RemoteIpam {
    client: Client,
    caps: IpamCapabilities,
}

/// Option that marks the gateway request (`RequestAddressType`).
pub const REQUEST_ADDRESS_TYPE: &str = "RequestAddressType";
/// Its value for a gateway, and the pool `Data` key that proposes one.
pub const GATEWAY_LABEL: &str = "com.docker.network.gateway";

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let s = v
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string());
                    (k.clone(), s)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn cidr(method: &str, v: &Value, key: &str) -> Result<IpNet, PluginError> {
    let s = v[key].as_str().unwrap_or_default();
    s.parse::<IpNet>().map_err(|_| {
        PluginError::Remote(format!(
            "{method}: the IPAM plugin answered {key} {s:?}, not an address in CIDR notation"
        ))
    })
}

impl RemoteIpam {
    /// Registers the IPAM side of an activated plugin: `IpamDriver.GetCapabilities`
    /// (optional: an error means no capabilities).
    pub async fn activate(name: &str, client: Client) -> Self {
        let caps = match client.call("IpamDriver.GetCapabilities", None).await {
            Ok(v) => IpamCapabilities {
                requires_mac_address: v["RequiresMACAddress"].as_bool().unwrap_or(false),
                requires_request_replay: v["RequiresRequestReplay"].as_bool().unwrap_or(false),
            },
            Err(e) => {
                tracing::debug!(plugin = %name, error = %e, "IPAM plugin has no capabilities");
                IpamCapabilities::default()
            }
        };
        RemoteIpam { client, caps }
    }

    /// The capabilities read at activation.
    pub fn capabilities(&self) -> IpamCapabilities {
        self.caps
    }

    /// `IpamDriver.GetDefaultAddressSpaces`: (local, global).
    pub async fn default_address_spaces(&self) -> Result<(String, String), PluginError> {
        let v = self
            .client
            .call("IpamDriver.GetDefaultAddressSpaces", None)
            .await?;
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        Ok((
            s("LocalDefaultAddressSpace"),
            s("GlobalDefaultAddressSpace"),
        ))
    }

    /// `IpamDriver.RequestPool`: returns the pool ID, the pool and the driver's data.
    pub async fn request_pool(
        &self,
        space: &str,
        pool: Option<IpNet>,
        sub_pool: Option<IpNet>,
        options: &BTreeMap<String, String>,
        v6: bool,
    ) -> Result<(String, IpNet, BTreeMap<String, String>), PluginError> {
        let m = "IpamDriver.RequestPool";
        let v = self
            .client
            .call(
                m,
                Some(&json!({
                    "AddressSpace": space,
                    "Pool": pool.map(|p| p.to_string()).unwrap_or_default(),
                    "SubPool": sub_pool.map(|p| p.to_string()).unwrap_or_default(),
                    "Options": options,
                    "V6": v6,
                })),
            )
            .await?;
        let id = v["PoolID"].as_str().unwrap_or_default().to_string();
        if id.is_empty() {
            return Err(PluginError::Remote(format!(
                "{m}: the IPAM plugin answered no PoolID"
            )));
        }
        let p = cidr(m, &v, "Pool")?;
        Ok((id, p.trunc(), string_map(&v["Data"])))
    }

    /// `IpamDriver.ReleasePool`.
    pub async fn release_pool(&self, pool_id: &str) -> Result<(), PluginError> {
        self.client
            .call(
                "IpamDriver.ReleasePool",
                Some(&json!({ "PoolID": pool_id })),
            )
            .await
            .map(|_| ())
    }

    /// `IpamDriver.RequestAddress`: `want` or any; returns the address with its prefix.
    pub async fn request_address(
        &self,
        pool_id: &str,
        want: Option<IpAddr>,
        options: Option<&BTreeMap<String, String>>,
    ) -> Result<IpNet, PluginError> {
        let m = "IpamDriver.RequestAddress";
        let v = self
            .client
            .call(
                m,
                Some(&json!({
                    "PoolID": pool_id,
                    "Address": want.map(|a| a.to_string()).unwrap_or_default(),
                    "Options": options,
                })),
            )
            .await?;
        cidr(m, &v, "Address")
    }

    /// `IpamDriver.ReleaseAddress`.
    pub async fn release_address(&self, pool_id: &str, addr: IpAddr) -> Result<(), PluginError> {
        self.client
            .call(
                "IpamDriver.ReleaseAddress",
                Some(&json!({ "PoolID": pool_id, "Address": addr.to_string() })),
            )
            .await
            .map(|_| ())
    }
}
