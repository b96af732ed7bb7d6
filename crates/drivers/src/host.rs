//! The `host` driver: containers share the daemon's network namespace.

use async_trait::async_trait;
use netloom_model::{
    Capabilities, Driver, DriverError, Endpoint, JoinInfo, Network, SandboxInfo, Scope,
};

/// The host driver (no kernel objects of its own).
#[derive(Debug, Default)]
pub struct HostDriver;

#[async_trait]
impl Driver for HostDriver {
    fn name(&self) -> &'static str {
        "host"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            data_scope: Scope::Local,
            has_sandbox_interfaces: false,
        }
    }

    fn validate(&self, net: &mut Network) -> Result<(), DriverError> {
        crate::check_known("host", &net.options, &[])
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
