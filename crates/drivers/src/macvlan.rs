//! The `macvlan` and `ipvlan` drivers: each endpoint is a link stacked on a parent
//! interface of the host (`-o parent=eth0`), so containers sit directly on the parent's
//! L2 segment. `parent=IFACE.VLAN` creates the 802.1q sub-interface when missing (and
//! removes it with the network); no parent gives a macvlan network an internal dummy
//! parent, as Docker does. Where the kernel lacks a link kind, network creation fails
//! naming the missing feature before anything is made.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use netloom_kernel::{
    IpvlanFlag, IpvlanMode, KernelError, LinkInfo, LinkKind, MacvlanMode, Netlink, SubLink,
};
use netloom_model::network::parse_mac;
use netloom_model::{
    Capabilities, Driver, DriverError, Endpoint, JoinInfo, Network, SandboxInfo, Scope,
};
use tracing::debug;

use crate::bridge::config::valid_ifname;
use crate::sandbox::{self, DefaultRoute};

/// `parent`: the host interface the endpoints stack on.
pub const OPT_PARENT: &str = "parent";
/// `macvlan_mode`: bridge (default), private, vepa or passthru.
pub const OPT_MACVLAN_MODE: &str = "macvlan_mode";
/// `ipvlan_mode`: l2 (default), l3 or l3s.
pub const OPT_IPVLAN_MODE: &str = "ipvlan_mode";
/// `ipvlan_flag`: bridge (default), private or vepa.
pub const OPT_IPVLAN_FLAG: &str = "ipvlan_flag";

/// Which of the two drivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `macvlan`: one MAC per endpoint.
    Macvlan,
    /// `ipvlan`: endpoints share the parent's MAC.
    Ipvlan,
}

/// The parsed options of a macvlan or ipvlan network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubConfig {
    /// Kind and mode of the endpoint links.
    pub link: SubLink,
    /// The parent as given (`eth0`, `eth0.100`), if any.
    pub parent: Option<String>,
    /// `(base interface, VLAN id)` when the parent is a VLAN sub-interface.
    pub vlan: Option<(String, u16)>,
}

impl SubConfig {
    /// Parses and validates the options of a `flavor` network; unknown keys and bad
    /// values are errors naming the accepted ones.
    pub fn parse(flavor: Flavor, opts: &BTreeMap<String, String>) -> Result<Self, DriverError> {
        let name = flavor.name();
        let link = match flavor {
            Flavor::Macvlan => {
                crate::check_known(name, opts, &[OPT_PARENT, OPT_MACVLAN_MODE])?;
                let mode = match opts.get(OPT_MACVLAN_MODE).map(|s| s.as_str()) {
                    None | Some("") => MacvlanMode::Bridge,
                    Some(m) => MacvlanMode::parse(m).ok_or_else(|| {
                        DriverError::InvalidOption(format!(
                            "invalid {OPT_MACVLAN_MODE} {m:?}: use bridge, private, vepa or passthru"
                        ))
                    })?,
                };
                SubLink::Macvlan(mode)
            }
            Flavor::Ipvlan => {
                crate::check_known(name, opts, &[OPT_PARENT, OPT_IPVLAN_MODE, OPT_IPVLAN_FLAG])?;
                let mode = match opts.get(OPT_IPVLAN_MODE).map(|s| s.as_str()) {
                    None | Some("") | Some("l2") => IpvlanMode::L2,
                    Some("l3") => IpvlanMode::L3,
                    Some("l3s") => IpvlanMode::L3s,
                    Some(other) => {
                        return Err(DriverError::InvalidOption(format!(
                            "invalid {OPT_IPVLAN_MODE} {other:?}: use l2, l3 or l3s"
                        )));
                    }
                };
                let flag = match opts.get(OPT_IPVLAN_FLAG).map(|s| s.as_str()) {
                    None | Some("") | Some("bridge") => IpvlanFlag::Bridge,
                    Some("private") => IpvlanFlag::Private,
                    Some("vepa") => IpvlanFlag::Vepa,
                    Some(other) => {
                        return Err(DriverError::InvalidOption(format!(
                            "invalid {OPT_IPVLAN_FLAG} {other:?}: use bridge, private or vepa"
                        )));
                    }
                };
                SubLink::Ipvlan(mode, flag)
            }
        };
        let parent = opts.get(OPT_PARENT).filter(|p| !p.is_empty()).cloned();
        let mut vlan = None;
        if let Some(p) = &parent {
            if !valid_ifname(p) {
                return Err(DriverError::InvalidOption(format!(
                    "invalid {OPT_PARENT} {p:?}: an interface name is 1-15 characters of [a-zA-Z0-9_.-], optionally IFACE.VLAN"
                )));
            }
            if let Some((base, id)) = p.rsplit_once('.') {
                let id = match id.parse::<u16>() {
                    Ok(v) if (1..=4094).contains(&v) => v,
                    _ => {
                        return Err(DriverError::InvalidOption(format!(
                            "invalid {OPT_PARENT} {p:?}: the VLAN ID after the dot must be a number between 1 and 4094"
                        )));
                    }
                };
                if base.is_empty() {
                    return Err(DriverError::InvalidOption(format!(
                        "invalid {OPT_PARENT} {p:?}: give the interface before the VLAN ID (IFACE.VLAN)"
                    )));
                }
                vlan = Some((base.to_string(), id));
            }
        }
        Ok(SubConfig { link, parent, vlan })
    }
}

impl Flavor {
    fn name(self) -> &'static str {
        match self {
            Flavor::Macvlan => "macvlan",
            Flavor::Ipvlan => "ipvlan",
        }
    }

    fn kind(self) -> LinkKind {
        match self {
            Flavor::Macvlan => LinkKind::Macvlan,
            Flavor::Ipvlan => LinkKind::Ipvlan,
        }
    }
}

/// The macvlan or ipvlan driver.
pub struct MacvlanDriver {
    nl: Netlink,
    flavor: Flavor,
    tag: String,
    supported: AtomicBool,
}

impl MacvlanDriver {
    /// A `flavor` driver working in the daemon's namespace through `nl`; `tag` marks the
    /// parent links it creates (VLAN sub-interfaces, dummy parents).
    pub fn new(nl: Netlink, flavor: Flavor, tag: &str) -> Self {
        MacvlanDriver {
            nl,
            flavor,
            tag: tag.to_string(),
            supported: AtomicBool::new(false),
        }
    }

    /// Name of the dummy parent of a macvlan network created without `parent`.
    pub fn dummy_name(net_id: &str) -> String {
        format!("dm-{}", netloom_model::short_id(net_id))
    }

    fn config(&self, net: &Network) -> Result<SubConfig, DriverError> {
        SubConfig::parse(self.flavor, &net.options)
    }

    /// Fails with the missing kernel feature unless the kernel can create `kind` links.
    async fn require(&self, kind: LinkKind, why: &str) -> Result<(), DriverError> {
        if kind == self.flavor.kind() && self.supported.load(Ordering::Relaxed) {
            return Ok(());
        }
        match Netlink::probe(kind).await {
            Ok(()) => {
                if kind == self.flavor.kind() {
                    self.supported.store(true, Ordering::Relaxed);
                }
                Ok(())
            }
            Err(KernelError::NotSupported { what }) => Err(DriverError::NotSupported(format!(
                "the kernel does not support {what}, which {why} needs; load the module or use another driver"
            ))),
            Err(e) => Err(DriverError::kernel(
                format!("check kernel support for {}", kind.feature()),
                e,
            )),
        }
    }
}

impl MacvlanDriver {
    /// The bridge or bond that `parent` is a port of (None when it is no port).
    async fn master_of(&self, parent: &LinkInfo) -> Option<String> {
        let index = parent.controller?;
        let name = match self.nl.links().await {
            Ok(links) => links.into_iter().find(|l| l.index == index).map(|l| l.name),
            Err(_) => None,
        };
        Some(name.unwrap_or_else(|| format!("interface {index}")))
    }

    /// A parent that is a bridge or bond port cannot carry macvlan or ipvlan links: the
    /// kernel gives an interface's receive path to one of them only (EBUSY from
    /// `netdev_rx_handler_register`).
    fn enslaved(&self, net: &Network, parent: &str, master: &str) -> DriverError {
        DriverError::Conflict(format!(
            "parent {parent} of network {} is a port of {master}: the kernel lets an interface serve a bridge or bond or carry {} links, never both; use another -o {OPT_PARENT}, or take {parent} out of {master} (ip link set {parent} nomaster)",
            net.name,
            self.flavor.name()
        ))
    }
}

fn kerr(op: String) -> Box<dyn FnOnce(KernelError) -> DriverError> {
    Box::new(move |e| match e {
        KernelError::NotSupported { what } => {
            DriverError::NotSupported(format!("the kernel does not support {what} ({op})"))
        }
        KernelError::Busy { what } => DriverError::Conflict(format!(
            "{what} is busy ({op}): a parent carries either macvlan or ipvlan links, not both, and passthru takes it whole"
        )),
        KernelError::AlreadyExists { what } => {
            DriverError::Conflict(format!("{what} already exists ({op})"))
        }
        e => DriverError::kernel(op, e),
    })
}

#[async_trait]
impl Driver for MacvlanDriver {
    fn name(&self) -> &'static str {
        self.flavor.name()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            data_scope: Scope::Local,
            has_sandbox_interfaces: true,
            shares_host_stack: false,
            single_instance: false,
            host_firewall: false,
        }
    }

    fn iface_claim(&self, net: &Network) -> Option<netloom_model::IfaceClaim> {
        // macvlan and ipvlan networks share the claim: one parent, one network.
        Some(netloom_model::IfaceClaim {
            kind: "parent",
            name: net.iface.clone(),
        })
    }

    fn claim_conflict(&self, net: &Network, other: &str) -> String {
        format!(
            "network {other} is already using parent interface {}; give each {} network its own parent or VLAN (-o parent=IFACE.VLAN)",
            net.iface,
            self.flavor.name()
        )
    }

    fn check_endpoint_request(&self, net: &Network, mac: &str) -> Result<(), DriverError> {
        if self.flavor == Flavor::Ipvlan && !mac.is_empty() {
            return Err(DriverError::InvalidOption(format!(
                "ipvlan interfaces do not support custom mac address assignment (network {}): they carry their parent's MAC; drop --mac-address or use macvlan",
                net.name
            )));
        }
        Ok(())
    }

    fn prepare_endpoint(&self, _net: &Network, ep: &mut Endpoint) {
        // An ipvlan link carries its parent's MAC address, not one of its own.
        if self.flavor == Flavor::Ipvlan {
            ep.mac = String::new();
        }
    }

    fn validate(&self, net: &mut Network) -> Result<(), DriverError> {
        let cfg = self.config(net)?;
        net.iface = match cfg.parent {
            Some(p) => p,
            None if self.flavor == Flavor::Macvlan => {
                // Docker gives a parent-less network a dummy parent: it reaches nothing
                // outside the host, so it is internal.
                net.internal = true;
                Self::dummy_name(&net.id)
            }
            None => {
                return Err(DriverError::InvalidOption(format!(
                    "the ipvlan driver needs -o {OPT_PARENT}=IFACE (the host interface its endpoints share)"
                )));
            }
        };
        Ok(())
    }

    async fn create_network(&self, net: &Network) -> Result<(), DriverError> {
        let cfg = self.config(net)?;
        let name = self.flavor.name();
        self.require(self.flavor.kind(), &format!("the {name} driver"))
            .await?;
        match (&cfg.parent, &cfg.vlan) {
            (None, _) => {
                self.require(
                    LinkKind::Dummy,
                    &format!("a {name} network without -o {OPT_PARENT} (give -o {OPT_PARENT}=IFACE instead)"),
                )
                .await?;
                self.nl
                    .ensure_dummy(&net.iface, &crate::parent_alias(&self.tag, &net.id))
                    .await
                    .map_err(kerr(format!(
                        "create dummy parent {} of network {}",
                        net.iface, net.name
                    )))?;
            }
            (Some(p), Some((base, id))) => {
                if self
                    .nl
                    .link(p)
                    .await
                    .map_err(kerr(format!("look up {p}")))?
                    .is_none()
                {
                    let b = self
                        .nl
                        .link(base)
                        .await
                        .map_err(kerr(format!("look up {base}")))?
                        .ok_or_else(|| {
                            DriverError::InvalidOption(format!(
                                "-o {OPT_PARENT} interface was not found on the host: {base} (the base interface of VLAN {p})"
                            ))
                        })?;
                    self.require(
                        LinkKind::Vlan,
                        &format!("-o {OPT_PARENT}={p} (an 802.1q sub-interface)"),
                    )
                    .await?;
                    self.nl
                        .ensure_vlan(p, b.index, *id, &crate::parent_alias(&self.tag, &net.id))
                        .await
                        .map_err(kerr(format!("create VLAN {id} link {p} on {base}")))?;
                }
            }
            (Some(p), None) => {
                let link = self
                    .nl
                    .link(p)
                    .await
                    .map_err(kerr(format!("look up {p}")))?
                    .ok_or_else(|| {
                        DriverError::InvalidOption(format!(
                            "-o {OPT_PARENT} interface was not found on the host: {p}"
                        ))
                    })?;
                if let Some(master) = self.master_of(&link).await {
                    return Err(self.enslaved(net, p, &master));
                }
            }
        }
        debug!(network = %net.name, parent = %net.iface, driver = name, "network ready");
        Ok(())
    }

    async fn delete_network(&self, net: &Network) -> Result<(), DriverError> {
        // Only a parent this network created (a VLAN sub-interface or a dummy, tagged
        // with the network's own parent alias) goes; a parent the host had before — or
        // a bridge or link of another network — stays.
        match self.nl.link(&net.iface).await {
            Ok(Some(l)) if l.alias == crate::parent_alias(&self.tag, &net.id) => self
                .nl
                .delete_link(&net.iface)
                .await
                .map_err(kerr(format!("delete parent {}", net.iface))),
            Ok(_) => Ok(()),
            Err(e) => Err(kerr(format!("look up parent {}", net.iface))(e)),
        }
    }

    async fn create_endpoint(&self, _net: &Network, _ep: &Endpoint) -> Result<(), DriverError> {
        // The link is created at join, born inside the sandbox.
        Ok(())
    }

    async fn delete_endpoint(&self, _net: &Network, _ep: &Endpoint) -> Result<(), DriverError> {
        // The link lives in the sandbox: `leave` (or the sandbox's end) removes it.
        Ok(())
    }

    async fn join(
        &self,
        net: &Network,
        ep: &Endpoint,
        sb: &SandboxInfo,
    ) -> Result<JoinInfo, DriverError> {
        let ctx = format!("endpoint {} of network {}", ep.ifname, net.name);
        let cfg = self.config(net)?;
        let parent = self.nl.link(&net.iface).await.map_err(kerr(format!("look up parent {}", net.iface)))?.ok_or_else(|| {
            DriverError::InvalidOption(format!(
                "-o {OPT_PARENT} interface was not found on the host: {} (network {}); re-create it or remove the network",
                net.iface, net.name
            ))
        })?;
        let mac = match cfg.link {
            SubLink::Macvlan(_) => parse_mac(&ep.mac),
            SubLink::Ipvlan(..) => None,
        };
        if let Err(e) = self
            .nl
            .create_sublink_into(cfg.link, parent.index, &ep.ifname, &sb.key, parent.mtu, mac)
            .await
        {
            // The parent became a bridge or bond port after the network was made.
            if matches!(e, KernelError::Busy { .. })
                && let Some(master) = self.master_of(&parent).await
            {
                return Err(self.enslaved(net, &net.iface, &master));
            }
            return Err(kerr(format!(
                "create {ctx} on {} in sandbox {}",
                net.iface,
                sb.key.display()
            ))(e));
        }
        let default = match cfg.link {
            SubLink::Ipvlan(IpvlanMode::L3 | IpvlanMode::L3s, _) => DefaultRoute::Device,
            _ => DefaultRoute::of(ep),
        };
        let setup = sandbox::Setup {
            ifname: &ep.ifname,
            mac: None,
            routes: Vec::new(),
            default,
        };
        if let Err(e) = sandbox::configure(sb, ep, &ctx, setup, kerr).await {
            // Leave nothing behind: a retry would find the name taken (and passthru
            // mode the parent).
            if let Ok(inner) = Netlink::in_netns(&sb.key) {
                let _ = inner.delete_link(&ep.ifname).await;
            }
            return Err(e);
        }
        Ok(JoinInfo {
            ifname: ep.ifname.clone(),
            ..Default::default()
        })
    }

    async fn leave(
        &self,
        net: &Network,
        ep: &Endpoint,
        sb: &SandboxInfo,
    ) -> Result<(), DriverError> {
        if !netloom_kernel::netns::is_netns(&sb.key) {
            return Ok(());
        }
        let inner = match Netlink::in_netns(&sb.key) {
            Ok(n) => n,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(kerr(format!("open sandbox of {}", ep.ifname))(e)),
        };
        inner.delete_link(&ep.ifname).await.map_err(kerr(format!(
            "delete endpoint {} of network {}",
            ep.ifname, net.name
        )))
    }

    fn owned_links(&self, net: &Network, _eps: &[Endpoint]) -> Vec<String> {
        vec![net.iface.clone()]
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
    fn parses_modes_and_vlan_parents() {
        let c = SubConfig::parse(Flavor::Macvlan, &opts(&[("parent", "eth0.100")])).unwrap();
        assert_eq!(c.link, SubLink::Macvlan(MacvlanMode::Bridge));
        assert_eq!(c.vlan, Some(("eth0".into(), 100)));
        let c = SubConfig::parse(
            Flavor::Macvlan,
            &opts(&[("parent", "ens3"), ("macvlan_mode", "passthru")]),
        )
        .unwrap();
        assert_eq!(c.link, SubLink::Macvlan(MacvlanMode::Passthru));
        assert_eq!(c.vlan, None);
        let c = SubConfig::parse(
            Flavor::Ipvlan,
            &opts(&[
                ("parent", "eth0"),
                ("ipvlan_mode", "l3s"),
                ("ipvlan_flag", "private"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.link,
            SubLink::Ipvlan(IpvlanMode::L3s, IpvlanFlag::Private)
        );
    }

    type Case = (
        Flavor,
        &'static [(&'static str, &'static str)],
        &'static str,
    );

    #[test]
    fn refuses_bad_options_naming_them() {
        let bad: &[Case] = &[
            (
                Flavor::Macvlan,
                &[("macvlan_mode", "l2")],
                "use bridge, private, vepa or passthru",
            ),
            (
                Flavor::Macvlan,
                &[("ipvlan_mode", "l2")],
                "unknown macvlan driver option",
            ),
            (
                Flavor::Ipvlan,
                &[("ipvlan_mode", "l4")],
                "use l2, l3 or l3s",
            ),
            (
                Flavor::Ipvlan,
                &[("ipvlan_flag", "x")],
                "use bridge, private or vepa",
            ),
            (
                Flavor::Macvlan,
                &[("parent", "eth0.0")],
                "between 1 and 4094",
            ),
            (
                Flavor::Macvlan,
                &[("parent", "eth0.4095")],
                "between 1 and 4094",
            ),
            (
                Flavor::Macvlan,
                &[("parent", "eth0.x")],
                "between 1 and 4094",
            ),
            (Flavor::Macvlan, &[("parent", ".5")], "before the VLAN ID"),
            (Flavor::Macvlan, &[("parent", "a/b")], "interface name"),
            (
                Flavor::Macvlan,
                &[("parent", "averyveryverylongname")],
                "interface name",
            ),
        ];
        for (f, o, want) in bad {
            let e = SubConfig::parse(*f, &opts(o)).unwrap_err().to_string();
            assert!(e.contains(want), "{o:?}: {e}");
        }
    }
}
