//! What `/info` reports about the controller's drivers.

use std::collections::BTreeSet;

use super::Controller;

impl Controller {
    /// The network drivers `docker info` lists under `Plugins.Network`, as dockerd's
    /// `GetNetworkDriverList`: every built-in driver, every activated remote plugin that
    /// implements `NetworkDriver`, and the driver of every network (a plugin in use),
    /// sorted and without repeats.
    pub async fn network_plugins(&self) -> Vec<String> {
        let mut names: BTreeSet<String> = self
            .drivers
            .names()
            .into_iter()
            .map(str::to_string)
            .collect();
        for (name, implements) in self.plugins.list().await {
            if implements.iter().any(|i| i == "NetworkDriver") {
                names.insert(name);
            }
        }
        let st = self.state.lock().await;
        names.extend(st.networks.values().map(|n| n.driver.clone()));
        names.into_iter().collect()
    }
}
