//! The CNI result object (`interfaces`, `ips`, `routes`, `dns`), as written on stdout
//! and received back as `prevResult`.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A CNI result.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CniResult {
    /// The spec version of this result (the config's `cniVersion`).
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    /// Interfaces created or used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// Addresses assigned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    /// Routes installed in the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// DNS settings (passed through from the config's `dns`).
    #[serde(default = "empty_object")]
    pub dns: Value,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// One interface of a result.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Interface {
    /// Interface name.
    pub name: String,
    /// MAC address, `aa:bb:cc:dd:ee:ff`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// MTU (spec 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The network namespace path, for interfaces inside the container.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
    /// Other fields (`socketPath`, `pciID`, ...), passed through.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One address of a result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IpConfig {
    /// `"4"` or `"6"`: only in results of spec versions before 1.0.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
    /// Address with prefix length.
    pub address: IpNet,
    /// Gateway of the subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

/// One route of a result (or of the IPAM config).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Route {
    /// Destination.
    pub dst: IpNet,
    /// Next hop; the subnet's gateway when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    /// Other fields (`mtu`, `priority`, ... in spec 1.1), passed through.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A MAC address in the usual colon-separated lower-case form.
pub fn mac_string(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut n = 0;
    for part in s.split(':') {
        if n == 6 || part.len() != 2 {
            return None;
        }
        out[n] = u8::from_str_radix(part, 16).ok()?;
        n += 1;
    }
    (n == 6).then_some(out)
}

impl CniResult {
    /// Appends `other` (this plugin's own result) to `self` (a `prevResult`), shifting
    /// `other`'s interface indices; `other`'s DNS wins when it is not empty.
    pub fn merge(mut self, other: CniResult) -> CniResult {
        let offset = self.interfaces.len();
        self.interfaces.extend(other.interfaces);
        self.ips.extend(other.ips.into_iter().map(|mut ip| {
            ip.interface = ip.interface.map(|i| i + offset);
            ip
        }));
        for r in other.routes {
            if !self.routes.contains(&r) {
                self.routes.push(r);
            }
        }
        if other.dns.as_object().is_some_and(|m| !m.is_empty()) {
            self.dns = other.dns;
        }
        self.cni_version = other.cni_version;
        self
    }

    /// Adapts the result to the spec version it is written for: `ips[].version` before
    /// 1.0.0, `interfaces[].mtu` only from 1.1.0.
    pub fn for_version(mut self, version: &str) -> CniResult {
        self.cni_version = version.to_string();
        let pre_1 = version.starts_with("0.");
        for ip in &mut self.ips {
            ip.version = pre_1.then(|| {
                if ip.address.addr().is_ipv4() {
                    "4"
                } else {
                    "6"
                }
                .into()
            });
        }
        if version != "1.1.0" {
            for i in &mut self.interfaces {
                i.mtu = None;
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trip() {
        let m = parse_mac("c2:11:22:33:44:5F").unwrap();
        assert_eq!(mac_string(&m), "c2:11:22:33:44:5f");
        assert!(parse_mac("c2:11:22:33:44").is_none());
        assert!(parse_mac("c2:11:22:33:44:55:66").is_none());
        assert!(parse_mac("zz:11:22:33:44:55").is_none());
    }

    #[test]
    fn merge_shifts_interface_indices() {
        let prev: CniResult = serde_json::from_str(
            r#"{"cniVersion":"1.0.0","interfaces":[{"name":"a"},{"name":"b","sandbox":"/x"}],
               "ips":[{"address":"10.0.0.2/24","interface":1}],"dns":{"nameservers":["1.1.1.1"]}}"#,
        )
        .unwrap();
        let ours: CniResult = serde_json::from_str(
            r#"{"cniVersion":"1.1.0","interfaces":[{"name":"eth1","sandbox":"/x"}],
               "ips":[{"address":"10.9.0.2/24","interface":0}],"routes":[{"dst":"0.0.0.0/0"}]}"#,
        )
        .unwrap();
        let m = prev.merge(ours);
        assert_eq!(m.interfaces.len(), 3);
        assert_eq!(m.ips[0].interface, Some(1));
        assert_eq!(m.ips[1].interface, Some(2));
        assert_eq!(m.dns["nameservers"][0], "1.1.1.1");
        assert_eq!(m.cni_version, "1.1.0");
    }

    #[test]
    fn old_versions_get_ip_version() {
        let r: CniResult = serde_json::from_str(
            r#"{"interfaces":[{"name":"eth0","mtu":1500}],"ips":[{"address":"fd00::2/64"}]}"#,
        )
        .unwrap();
        let v = serde_json::to_value(r.clone().for_version("0.4.0")).unwrap();
        assert_eq!(v["ips"][0]["version"], "6");
        assert!(v["interfaces"][0].get("mtu").is_none());
        let v = serde_json::to_value(r.for_version("1.1.0")).unwrap();
        assert!(v["ips"][0].get("version").is_none());
        assert_eq!(v["interfaces"][0]["mtu"], 1500);
    }
}
