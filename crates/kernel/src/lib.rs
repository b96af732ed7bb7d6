//! Kernel plumbing for netloom: network namespaces, netlink (links, addresses,
//! routes, VXLAN devices with their FDB and neighbour entries) and sysctls. It knows nothing of the CNM: callers pass names,
//! indices and addresses, and get typed errors back (`KernelError`), with errno
//! translated here so that no other crate matches raw error codes.
//!
//! Namespace rule: no thread of the async runtime ever calls `setns`. Work inside
//! another namespace opens its socket on a short-lived dedicated thread (the socket
//! stays in the namespace it was created in) and is then driven from tokio.
#![warn(missing_docs)]

pub mod error;
pub mod link;
pub mod linkwatch;
pub mod netns;
pub mod nft;
pub mod podlink;
pub mod sublink;
pub mod sysctl;
pub mod vxlan;

pub use error::KernelError;
pub use link::{LinkInfo, Netlink};
pub use sublink::{IpvlanFlag, IpvlanMode, LinkKind, MacvlanMode, SubLink};
pub use vxlan::{FdbEntry, NeighEntry, VxlanInfo, VxlanSpec};
