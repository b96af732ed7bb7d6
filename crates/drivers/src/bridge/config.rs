//! Options of the bridge driver, parsed before anything touches the kernel.

use std::collections::BTreeMap;

use netloom_model::DriverError;

/// `com.docker.network.bridge.name`
pub const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";
/// `com.docker.network.bridge.enable_icc`
pub const OPT_ENABLE_ICC: &str = "com.docker.network.bridge.enable_icc";
/// `com.docker.network.bridge.enable_ip_masquerade`
pub const OPT_ENABLE_MASQ: &str = "com.docker.network.bridge.enable_ip_masquerade";
/// `com.docker.network.driver.mtu`
pub const OPT_MTU: &str = "com.docker.network.driver.mtu";
const OPT_HOST_BINDING: &str = "com.docker.network.bridge.host_binding_ipv4";
const OPT_DEFAULT_BRIDGE: &str = "com.docker.network.bridge.default_bridge";

const KNOWN: &[&str] = &[
    OPT_BRIDGE_NAME,
    OPT_ENABLE_ICC,
    OPT_ENABLE_MASQ,
    OPT_MTU,
    OPT_HOST_BINDING,
    OPT_DEFAULT_BRIDGE,
];

/// Parsed bridge options.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BridgeConfig {
    /// Kernel bridge name.
    pub name: Option<String>,
    /// Inter-container communication on the bridge.
    pub icc: bool,
    /// Masquerade traffic leaving the network.
    pub masquerade: bool,
    /// MTU.
    pub mtu: Option<u32>,
}

impl BridgeConfig {
    /// Parses and validates the options; unknown keys and bad values are errors.
    pub fn parse(opts: &BTreeMap<String, String>) -> Result<Self, DriverError> {
        crate::check_known("bridge", opts, KNOWN)?;
        let name = opts.get(OPT_BRIDGE_NAME).cloned();
        if let Some(n) = &name
            && !valid_ifname(n)
        {
            return Err(DriverError::InvalidOption(format!(
                "invalid {OPT_BRIDGE_NAME} {n:?}: an interface name is 1-15 characters of [a-zA-Z0-9_.-]"
            )));
        }
        let mtu = match opts.get(OPT_MTU) {
            Some(v) => Some(parse_mtu(v)?),
            None => None,
        };
        Ok(BridgeConfig {
            name,
            icc: parse_bool(opts, OPT_ENABLE_ICC, true)?,
            masquerade: parse_bool(opts, OPT_ENABLE_MASQ, true)?,
            mtu,
        })
    }
}

/// Linux interface name rule (IFNAMSIZ 16 with NUL), restricted to a safe charset.
pub fn valid_ifname(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 15
        && n != "."
        && n != ".."
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

pub(crate) fn parse_mtu(v: &str) -> Result<u32, DriverError> {
    match v.trim().parse::<u32>() {
        Ok(m) if (68..=65535).contains(&m) => Ok(m),
        _ => Err(DriverError::InvalidOption(format!(
            "invalid {OPT_MTU} {v:?}: the MTU must be a number between 68 and 65535"
        ))),
    }
}

fn parse_bool(
    opts: &BTreeMap<String, String>,
    key: &str,
    default: bool,
) -> Result<bool, DriverError> {
    match opts.get(key).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) => match v.as_str() {
            "1" | "t" | "true" | "yes" => Ok(true),
            "0" | "f" | "false" | "no" => Ok(false),
            _ => Err(DriverError::InvalidOption(format!(
                "invalid {key} {v:?}: use true or false"
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_known_options() {
        let c = BridgeConfig::parse(&opts(&[
            (OPT_BRIDGE_NAME, "br-test"),
            (OPT_MTU, "1400"),
            (OPT_ENABLE_ICC, "false"),
        ]));
        let c = c.ok();
        assert_eq!(
            c.as_ref().and_then(|c| c.name.clone()).as_deref(),
            Some("br-test")
        );
        assert_eq!(c.as_ref().and_then(|c| c.mtu), Some(1400));
        assert_eq!(c.map(|c| c.icc), Some(false));
    }

    #[test]
    fn rejects_bad_options() {
        assert!(BridgeConfig::parse(&opts(&[("foo", "bar")])).is_err());
        assert!(BridgeConfig::parse(&opts(&[(OPT_MTU, "abc")])).is_err());
        assert!(BridgeConfig::parse(&opts(&[(OPT_MTU, "10")])).is_err());
        assert!(BridgeConfig::parse(&opts(&[(OPT_MTU, "70000")])).is_err());
        assert!(
            BridgeConfig::parse(&opts(&[(OPT_BRIDGE_NAME, "a-very-long-bridge-name")])).is_err()
        );
        assert!(BridgeConfig::parse(&opts(&[(OPT_BRIDGE_NAME, "br;rm -rf")])).is_err());
        assert!(BridgeConfig::parse(&opts(&[(OPT_ENABLE_ICC, "maybe")])).is_err());
    }
}
