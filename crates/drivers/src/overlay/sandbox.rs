//! The kernel side of an overlay network on one node: its sandbox (a network namespace
//! bound under the driver's directory) with one bridge and one VXLAN device per subnet,
//! and the static FDB and neighbour entries of the remote endpoints, brought in line
//! with a [`SubnetPlan`] by applying differences only.

use std::net::IpAddr;
use std::path::PathBuf;

use netloom_kernel::{KernelError, Netlink, VxlanSpec, netns};
use netloom_model::DriverError;
use tracing::debug;

use super::peers::{SubnetPlan, bridge_mac, diff};

/// Converts a kernel error into a driver error for the operation `op` names.
pub(super) fn kerr(op: impl Into<String>) -> impl FnOnce(KernelError) -> DriverError {
    let op = op.into();
    move |e| match e {
        KernelError::AlreadyExists { what } => DriverError::Conflict(format!(
            "{what} already exists on this node (another overlay network or a stale device uses it); {op} needs it"
        )),
        KernelError::NotSupported { what } => {
            DriverError::NotSupported(format!("the kernel does not support {what}"))
        }
        e => DriverError::kernel(op, e),
    }
}

/// What the driver knows about its node.
pub(super) struct Node {
    /// Handle in the node's own (underlay) namespace: VXLAN sockets live here.
    pub host: Netlink,
    /// Directory holding the sandboxes' namespace files.
    pub dir: PathBuf,
    /// The node's data-path address (VTEP).
    pub vtep: IpAddr,
    /// The VXLAN UDP port.
    pub port: u16,
    /// The alias marking netloom's links.
    pub alias: String,
}

impl Node {
    /// The namespace file of a network's sandbox.
    pub fn sandbox_path(&self, net_id: &str) -> PathBuf {
        self.dir.join(super::peers::sandbox_name(net_id))
    }

    /// Whether the network's sandbox exists on this node.
    pub fn has_sandbox(&self, net_id: &str) -> bool {
        netns::is_netns(&self.sandbox_path(net_id))
    }

    /// The MTU of the underlay interface (the one holding the data-path address).
    pub async fn underlay_mtu(&self) -> Result<u32, DriverError> {
        let link = self
            .host
            .link_with_address(self.vtep)
            .await
            .map_err(kerr(format!(
                "find the interface of data-path address {}",
                self.vtep
            )))?;
        match link {
            Some(l) => Ok(l.mtu),
            None => Err(DriverError::InvalidOption(format!(
                "the data-path address {} is on no interface of this node; give an address this node holds (--data-path-addr / --advertise-addr)",
                self.vtep
            ))),
        }
    }

    /// Makes sure the sandbox of network `net_id` exists with a bridge (carrying the
    /// gateway) and a VXLAN device per subnet, all at `mtu` and up; returns a handle
    /// inside it. Idempotent: existing devices are kept when they match, and a VXLAN
    /// device that does not (other VNI, port or address, learning on, or its socket
    /// inside the sandbox) is re-created.
    pub async fn ensure_sandbox(
        &self,
        net_id: &str,
        plans: &[SubnetPlan],
        mtu: u32,
    ) -> Result<Netlink, DriverError> {
        let path = self.sandbox_path(net_id);
        let ctx = |what: &str| format!("{what} of overlay sandbox {}", path.display());
        netns::create(&path).map_err(kerr(ctx("create namespace")))?;
        // The subnets of one network are routed between each other inside the sandbox.
        netns::run_in(&path, || {
            netloom_kernel::sysctl::set("net.ipv4.ip_forward", "1")
        })
        .map_err(kerr(ctx("enable forwarding")))?;
        let sb = Netlink::in_netns(&path).map_err(kerr(ctx("open netlink")))?;
        let ns = netns::open(&path).map_err(kerr(ctx("open namespace")))?;
        for p in plans {
            let br = sb
                .ensure_bridge(&p.bridge, mtu, bridge_mac(p.gateway.addr()), &self.alias)
                .await
                .map_err(kerr(ctx(&format!("create bridge {}", p.bridge))))?;
            let gw = ipnet::IpNet::V4(p.gateway);
            sb.add_address(br.index, &p.bridge, gw)
                .await
                .map_err(kerr(ctx(&format!(
                    "add gateway {gw} to bridge {}",
                    p.bridge
                ))))?;
            sb.retain_addresses(br.index, &p.bridge, &[gw])
                .await
                .map_err(kerr(ctx(&format!(
                    "clean addresses of bridge {}",
                    p.bridge
                ))))?;
            let spec = VxlanSpec {
                name: p.vxlan.clone(),
                vni: p.vni,
                port: self.port,
                local: self.vtep,
                mtu,
            };
            let what = ctx(&format!("create VXLAN device {} (VNI {})", p.vxlan, p.vni));
            let existing = sb.vxlan(&p.vxlan).await.map_err(kerr(what.clone()))?;
            let index = match existing {
                Some(v) if v.matches(&spec) => v.link.index,
                other => {
                    if let Some(v) = other {
                        debug!(device = %p.vxlan, "re-creating a VXLAN device that does not match");
                        sb.delete_link_index(v.link.index, &p.vxlan)
                            .await
                            .map_err(kerr(what.clone()))?;
                    }
                    self.host
                        .create_vxlan_in(&spec, &ns)
                        .await
                        .map_err(kerr(what.clone()))?;
                    sb.require_link(&p.vxlan)
                        .await
                        .map_err(kerr(what.clone()))?
                        .index
                }
            };
            sb.attach_up(index, &p.vxlan, mtu, br.index)
                .await
                .map_err(kerr(ctx(&format!("attach {} to {}", p.vxlan, p.bridge))))?;
        }
        Ok(sb)
    }

    /// Brings the FDB and neighbour entries of every subnet's VXLAN device in line with
    /// the plan: stale entries removed, missing ones added.
    pub async fn program(&self, sb: &Netlink, plans: &[SubnetPlan]) -> Result<(), DriverError> {
        for p in plans {
            let vx = sb
                .require_link(&p.vxlan)
                .await
                .map_err(kerr(format!("find VXLAN device {}", p.vxlan)))?;
            let have = sb
                .fdb_entries(vx.index)
                .await
                .map_err(kerr(format!("list FDB entries of {}", p.vxlan)))?;
            let d = diff(&have, &p.fdb);
            for e in d.remove {
                sb.remove_fdb(vx.index, &p.vxlan, e)
                    .await
                    .map_err(kerr(format!("remove a stale FDB entry of {}", p.vxlan)))?;
            }
            for e in d.add {
                sb.ensure_fdb(vx.index, &p.vxlan, e)
                    .await
                    .map_err(kerr(format!("add an FDB entry to {}", p.vxlan)))?;
            }
            let have = sb
                .neighbours(vx.index)
                .await
                .map_err(kerr(format!("list neighbours of {}", p.vxlan)))?;
            let d = diff(&have, &p.neigh);
            for e in d.remove {
                sb.remove_neighbour(vx.index, &p.vxlan, e.ip)
                    .await
                    .map_err(kerr(format!("remove a stale neighbour of {}", p.vxlan)))?;
            }
            for e in d.add {
                sb.ensure_neighbour(vx.index, &p.vxlan, e)
                    .await
                    .map_err(kerr(format!("add a neighbour to {}", p.vxlan)))?;
            }
        }
        Ok(())
    }

    /// How many endpoints (veth ports) the sandbox still has.
    pub async fn endpoint_count(&self, sb: &Netlink) -> Result<usize, DriverError> {
        let links = sb
            .links()
            .await
            .map_err(kerr("list the links of an overlay sandbox"))?;
        Ok(links.iter().filter(|l| l.kind == "veth").count())
    }

    /// Removes the sandbox of network `net_id`: its VXLAN devices first, synchronously
    /// (a device left to the namespace's asynchronous cleanup would keep its VNI busy
    /// in the node's namespace for a moment, and an immediate re-creation would fail
    /// with "VNI in use"), then the namespace with everything else in it. Missing
    /// pieces are fine.
    pub async fn destroy(&self, net_id: &str) -> Result<(), DriverError> {
        let path = self.sandbox_path(net_id);
        if netns::is_netns(&path) {
            let sb = Netlink::in_netns(&path)
                .map_err(kerr(format!("open overlay sandbox {}", path.display())))?;
            let links = sb
                .links()
                .await
                .map_err(kerr(format!("list links of {}", path.display())))?;
            for l in links.iter().filter(|l| l.kind == "vxlan") {
                sb.delete_link_index(l.index, &l.name)
                    .await
                    .map_err(kerr(format!("delete VXLAN device {}", l.name)))?;
            }
        }
        netns::remove(&path).map_err(kerr(format!("remove overlay sandbox {}", path.display())))?;
        debug!(sandbox = %path.display(), "overlay sandbox removed");
        Ok(())
    }
}
