//! The `host` and `null` drivers: no kernel objects of their own. With `host`,
//! containers share the daemon's network namespace; with `null` (`--network none`)
//! they get a sandbox with only `lo`.

use async_trait::async_trait;
use netloom_model::{
    Capabilities, Driver, DriverError, Endpoint, JoinInfo, Network, SandboxInfo, Scope,
};

/// A driver that creates nothing: `host` or `null`.
#[derive(Debug)]
pub struct PassiveDriver {
    name: &'static str,
}

impl PassiveDriver {
    /// The `host` driver.
    pub fn host() -> Self {
        PassiveDriver { name: "host" }
    }

    /// The `null` driver (`--network none`).
    pub fn null() -> Self {
        PassiveDriver { name: "null" }
    }
}

#[async_trait]
impl Driver for PassiveDriver {
    fn name(&self) -> &'static str {
        self.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            data_scope: Scope::Local,
            has_sandbox_interfaces: false,
            shares_host_stack: self.name == "host",
            single_instance: true,
            host_firewall: false,
        }
    }

    fn validate(&self, net: &mut Network) -> Result<(), DriverError> {
        crate::check_known(self.name, &net.options, &[])
    }

    async fn create_network(&self, _net: &Network) -> Result<(), DriverError> {
        Ok(())
    }

    async fn delete_network(&self, _net: &Network) -> Result<(), DriverError> {
        Ok(())
    }

    async fn create_endpoint(&self, _net: &Network, _ep: &Endpoint) -> Result<(), DriverError> {
        Ok(())
    }

    async fn delete_endpoint(&self, _net: &Network, _ep: &Endpoint) -> Result<(), DriverError> {
        Ok(())
    }

    async fn join(
        &self,
        _net: &Network,
        _ep: &Endpoint,
        _sb: &SandboxInfo,
    ) -> Result<JoinInfo, DriverError> {
        Ok(JoinInfo::default())
    }

    async fn leave(
        &self,
        _net: &Network,
        _ep: &Endpoint,
        _sb: &SandboxInfo,
    ) -> Result<(), DriverError> {
        Ok(())
    }
}
