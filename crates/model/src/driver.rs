//! The network driver interface, shaped like libnetwork's driverapi.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use async_trait::async_trait;

use crate::error::DriverError;
use crate::network::{Endpoint, Network, Scope};

/// What a driver can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Where its networks' state lives.
    pub data_scope: Scope,
    /// Whether containers on it have their own network namespace with interfaces.
    pub has_sandbox_interfaces: bool,
}

/// The sandbox an endpoint joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxInfo {
    /// Path of the network namespace file (the sandbox key).
    pub key: PathBuf,
    /// The owning container.
    pub container_id: String,
}

/// What a join produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JoinInfo {
    /// Interface name inside the sandbox.
    pub ifname: String,
    /// MAC address of the interface, when the driver chose it (remote plugins).
    pub mac: Option<String>,
    /// IPv4 gateway the driver set, when it decides it (remote plugins' `Gateway`).
    pub gateway4: Option<Ipv4Addr>,
    /// IPv6 gateway the driver set, when it decides it (remote plugins' `GatewayIPv6`).
    pub gateway6: Option<Ipv6Addr>,
}

/// A network driver. Every method is idempotent ("ensure"), so that start-up
/// reconciliation can call it again; teardown treats "already gone" as success.
#[async_trait]
pub trait Driver: Send + Sync {
    /// The driver's name (`bridge`, `host`, `null`, ...).
    fn name(&self) -> &'static str;

    /// What the driver can do.
    fn capabilities(&self) -> Capabilities;

    /// Checks the network's options and fills driver-owned fields (`iface`, `mtu`)
    /// before anything touches the kernel. Unknown options are an error.
    fn validate(&self, net: &mut Network) -> Result<(), DriverError>;

    /// Creates the network's kernel objects (idempotent).
    async fn create_network(&self, net: &Network) -> Result<(), DriverError>;

    /// Removes the network's kernel objects (missing objects are fine).
    async fn delete_network(&self, net: &Network) -> Result<(), DriverError>;

    /// Creates the endpoint's kernel objects (e.g. a veth pair on the bridge).
    async fn create_endpoint(&self, net: &Network, ep: &Endpoint) -> Result<(), DriverError>;

    /// Removes the endpoint's kernel objects (missing objects are fine).
    async fn delete_endpoint(&self, net: &Network, ep: &Endpoint) -> Result<(), DriverError>;

    /// Moves the endpoint into the sandbox and configures it (name, MAC, addresses, routes).
    async fn join(
        &self,
        net: &Network,
        ep: &Endpoint,
        sb: &SandboxInfo,
    ) -> Result<JoinInfo, DriverError>;

    /// Takes the endpoint out of the sandbox.
    async fn leave(
        &self,
        net: &Network,
        ep: &Endpoint,
        sb: &SandboxInfo,
    ) -> Result<(), DriverError>;

    /// Brings the network's kernel objects back after something outside netloom deleted
    /// some of them (drift repair): what `create_network` makes, with the endpoints that
    /// are still there plugged in again. Endpoints whose own objects are gone are the
    /// caller's to re-create.
    async fn restore_network(&self, net: &Network, _eps: &[Endpoint]) -> Result<(), DriverError> {
        self.create_network(net).await
    }

    /// Lists the names of kernel objects in the daemon's namespace this driver made for the
    /// network (used by reconciliation to find orphans).
    fn owned_links(&self, _net: &Network, _eps: &[Endpoint]) -> Vec<String> {
        Vec::new()
    }
}
