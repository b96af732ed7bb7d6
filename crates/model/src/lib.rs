//! netloom's Container Network Model: the objects (networks, endpoints,
//! containers, images), their validation rules, and the `Driver` trait that
//! network drivers implement.
//!
//! This crate does no I/O and depends on no other netloom crate. Everything
//! that reaches the kernel, the store or the API is typed here first.
#![warn(missing_docs)]

pub mod container;
pub mod driver;
pub mod error;
pub mod ids;
pub mod lifecycle;
pub mod network;
pub mod ports;
pub mod volume;

pub use container::{
    Container, ContainerState, ContainerStatus, EndpointRequest, HostOptions, Image, ImageLayer,
    MountPoint, PortBinding, PublishedPort, Resources, Ulimit,
};
pub use driver::{Capabilities, Driver, IfaceClaim, JoinInfo, SandboxInfo};
pub use error::{DriverError, ErrorKind, ModelError};
pub use ids::{is_valid_name, short_id};
pub use lifecycle::{
    HealthConfig, HealthResult, HealthState, Lifecycle, RestartPolicy, Supervision,
};
pub use network::{Endpoint, IpamPoolConfig, IpamSpec, Network, Scope};
pub use volume::{LocalMount, Volume, VolumeMount};
