//! Network drivers: `bridge`, `macvlan`, `ipvlan`, `overlay`, `host` and `null` (the
//! `none` network), and remote driver and IPAM plugins (Docker's plugin protocols).
//!
//! Drivers turn CNM objects into kernel objects through `netloom-kernel`. They know
//! nothing of the API or the store; the controller sequences calls to them.

pub mod bridge;
pub mod firewall;
pub mod macvlan;
pub mod overlay;
pub mod passive;
pub mod remote;
mod sandbox;

use std::collections::BTreeMap;
use std::sync::Arc;

use netloom_model::Driver;

/// The alias set on every kernel link netloom creates, so that reconciliation can find
/// (and only ever deletes) its own objects.
pub fn link_alias(tag: &str) -> String {
    format!("netloom:{tag}")
}

/// The alias of a parent link (VLAN sub-interface, dummy) a macvlan/ipvlan network
/// created for itself: distinct per network, so that removing the network deletes only
/// the parent it made — never a bridge or another network's link.
pub fn parent_alias(tag: &str, net_id: &str) -> String {
    format!(
        "{}:parent:{}",
        link_alias(tag),
        netloom_model::short_id(net_id)
    )
}

/// True if `alias` marks a link made by the daemon tagged `tag` (its own links and the
/// parents its networks created).
pub fn is_own_alias(alias: &str, tag: &str) -> bool {
    let mark = link_alias(tag);
    alias == mark || alias.starts_with(&format!("{mark}:parent:"))
}

/// Drivers by name.
#[derive(Clone, Default)]
pub struct Registry {
    drivers: BTreeMap<&'static str, Arc<dyn Driver>>,
}

impl Registry {
    /// Adds a driver.
    pub fn register(&mut self, d: Arc<dyn Driver>) {
        self.drivers.insert(d.name(), d);
    }

    /// Finds a driver by name.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Driver>> {
        self.drivers.get(name).cloned()
    }

    /// Names of the registered drivers.
    pub fn names(&self) -> Vec<&'static str> {
        self.drivers.keys().copied().collect()
    }
}

/// Checks that every key of `opts` is one of `allowed`; the error names the first unknown
/// key and lists what the driver accepts.
pub(crate) fn check_known(
    driver: &str,
    opts: &BTreeMap<String, String>,
    allowed: &[&str],
) -> Result<(), netloom_model::DriverError> {
    for k in opts.keys() {
        if !allowed.contains(&k.as_str()) {
            let supported = if allowed.is_empty() {
                "it takes no options".to_string()
            } else {
                format!("supported: {}", allowed.join(", "))
            };
            return Err(netloom_model::DriverError::InvalidOption(format!(
                "unknown {driver} driver option {k:?} ({supported})"
            )));
        }
    }
    Ok(())
}
