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
    /// Whether containers on it have their own network namespace with interfaces
    /// (false for `host`, which shares the host's stack, and `null`, which has none).
    pub has_sandbox_interfaces: bool,
    /// Whether containers on it share the host's network stack (`host`).
    pub shares_host_stack: bool,
    /// Whether only the predefined network may use the driver (`host`, `null`).
    pub single_instance: bool,
    /// Whether its networks are host bridges that netloom's firewall isolates and
    /// masquerades, and onto whose endpoints published ports are forwarded.
    pub host_firewall: bool,
}

impl Capabilities {
    /// What a driver that is not built in (a remote plugin) is assumed to do where it has
    /// not said otherwise: containers get interfaces in their own sandbox, nothing more.
    pub fn plugin() -> Self {
        Capabilities {
            data_scope: Scope::Local,
            has_sandbox_interfaces: true,
            shares_host_stack: false,
            single_instance: false,
            host_firewall: false,
        }
    }
}

/// A kernel name a network holds exclusively (a bridge's name, a macvlan/ipvlan parent):
/// two networks holding the same claim conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfaceClaim {
    /// What is claimed (`bridge`, `parent`): claims of different kinds never conflict.
    pub kind: &'static str,
    /// The kernel name.
    pub name: String,
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

    /// The kernel name the network holds exclusively, if any: a second network with the
    /// same claim is refused with [`Driver::claim_conflict`]'s message.
    fn iface_claim(&self, _net: &Network) -> Option<IfaceClaim> {
        None
    }

    /// The message refusing `net` because `other` (a network's name) holds its claim.
    fn claim_conflict(&self, net: &Network, other: &str) -> String {
        format!("network {other} already uses interface {}", net.iface)
    }

    /// Checks what a container asks of its endpoint before anything is allocated
    /// (`mac`: the requested MAC address, empty for none).
    fn check_endpoint_request(&self, _net: &Network, _mac: &str) -> Result<(), DriverError> {
        Ok(())
    }

    /// Fills the driver-owned fields of a new endpoint (e.g. the host-side interface name)
    /// before it is stored.
    fn prepare_endpoint(&self, _net: &Network, _ep: &mut Endpoint) {}

    /// Creates the network's kernel objects (idempotent).
    async fn create_network(&self, net: &Network) -> Result<(), DriverError>;

    /// Removes the network's kernel objects (missing objects are fine).
    async fn delete_network(&self, net: &Network) -> Result<(), DriverError>;

    /// Creates the endpoint's kernel objects (e.g. a veth pair on the bridge).
    async fn create_endpoint(&self, net: &Network, ep: &Endpoint) -> Result<(), DriverError>;

    /// Removes the endpoint's kernel objects (missing objects are fine).
    async fn delete_endpoint(&self, net: &Network, ep: &Endpoint) -> Result<(), DriverError>;

    /// The endpoint's container sandbox was torn down (its container exited) without a
    /// `leave`: the kernel takes the links inside the sandbox along, so only what the
    /// driver keeps elsewhere is left to clean up (missing objects are fine).
    async fn sandbox_removed(&self, _net: &Network, _ep: &Endpoint) -> Result<(), DriverError> {
        Ok(())
    }

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
