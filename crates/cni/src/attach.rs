//! ADD, DEL, CHECK and STATUS for the two drivers: `bridge` (a veth pair whose
//! container end is born inside the container's namespace, host end on a Linux bridge)
//! and `macvlan` (a macvlan link on a parent, born inside the container's namespace).

use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use netloom_kernel::podlink::{self, MacvlanMode};
use netloom_kernel::{KernelError, LinkInfo, Netlink, netns};
use std::os::fd::OwnedFd;

use crate::config::{CniEnv, NetConf};
use crate::error::CniError;
use crate::ipam::{Allocation, HostLocal};
use crate::masq;
use crate::result::{CniResult, Interface, IpConfig, Route, mac_string};

/// The alias put on bridges this plugin creates (not `netloom:`, so netloomd's
/// reconciliation never mistakes them for its own).
const BRIDGE_ALIAS: &str = "netloom-cni";
const DEFAULT_BRIDGE: &str = "cni0";
const DEFAULT_MTU: u32 = 1500;

/// The driver selected by the config's `driver` field.
#[derive(Debug, Clone, PartialEq)]
enum Driver {
    Bridge {
        name: String,
    },
    Macvlan {
        master: Option<String>,
        mode: MacvlanMode,
    },
}

fn unsupported(field: &str, details: &str) -> CniError {
    CniError::Unsupported {
        field: field.into(),
        details: details.into(),
    }
}

/// Decodes and validates the driver part of the config (no side effects).
fn driver(conf: &NetConf) -> Result<Driver, CniError> {
    match conf.driver.as_deref().unwrap_or("bridge") {
        "bridge" => {
            let name = conf.bridge.clone().unwrap_or_else(|| DEFAULT_BRIDGE.into());
            if name.is_empty()
                || name.len() > 15
                || name.contains(['/', ':', ' ', '"', '\\'])
                || name.chars().any(char::is_control)
            {
                return Err(CniError::InvalidConfig(format!(
                    "bridge name {name:?} is not a valid interface name: at most 15 characters, no '/', ':', quotes, backslashes or spaces"
                )));
            }
            match conf.ip_masq_backend.as_deref() {
                None | Some("nftables") => {}
                Some(other) => {
                    return Err(unsupported(
                        &format!("ipMasqBackend={other}"),
                        "netloom-cni masquerades with nftables only: remove \"ipMasqBackend\" or set it to \"nftables\"",
                    ));
                }
            }
            if conf.promisc_mode {
                return Err(unsupported(
                    "promiscMode=true",
                    "not implemented: remove \"promiscMode\"",
                ));
            }
            if conf.vlan.as_ref().is_some_and(|v| !v.is_null()) {
                return Err(unsupported(
                    "vlan",
                    "this kernel has no 802.1q VLAN support and netloom-cni does not implement VLAN filtering: remove \"vlan\"",
                ));
            }
            Ok(Driver::Bridge { name })
        }
        "macvlan" => {
            if conf.ip_masq {
                return Err(unsupported(
                    "ipMasq=true",
                    "masquerading is implemented for the bridge driver only (macvlan traffic does not pass the runtime's namespace): remove \"ipMasq\" or masquerade on the macvlan parent's router",
                ));
            }
            let m = conf.mode.as_deref().unwrap_or("bridge");
            let mode = MacvlanMode::parse(m).ok_or_else(|| {
                CniError::InvalidConfig(format!(
                    "macvlan mode {m:?} is not valid: use bridge, private, vepa or passthru"
                ))
            })?;
            Ok(Driver::Macvlan {
                master: conf.master.clone().filter(|m| !m.is_empty()),
                mode,
            })
        }
        other => Err(CniError::InvalidConfig(format!(
            "driver {other:?} is not known: use \"bridge\" (default) or \"macvlan\""
        ))),
    }
}

fn store(conf: &NetConf) -> Result<Option<HostLocal>, CniError> {
    match &conf.ipam {
        Some(ipam) if !ipam.kind.is_empty() => Ok(Some(HostLocal::from_conf(
            conf.net_name()?,
            ipam,
            conf.runtime_config.ip_ranges.as_ref(),
        )?)),
        _ => Ok(None),
    }
}

fn open_ns(netns_path: &str) -> Result<std::fs::File, CniError> {
    netns::open(Path::new(netns_path)).map_err(|e| {
        CniError::InvalidEnv(format!(
            "CNI_NETNS={netns_path}: cannot open the network namespace ({e}): pass the path of an existing namespace"
        ))
    })
}

/// The container-namespace handle: from the socket opened before the runtime started,
/// or (without one) through a helper thread.
async fn netlink_in(
    netns_path: &str,
    sock: Option<Result<OwnedFd, KernelError>>,
) -> Result<Netlink, CniError> {
    let what = format!("enter network namespace {netns_path}");
    match sock {
        Some(Ok(fd)) => Ok(Netlink::from_socket(fd)),
        Some(Err(e)) => Err(CniError::kernel(what)(e)),
        None => Netlink::in_netns(Path::new(netns_path)).map_err(CniError::kernel(what)),
    }
}

async fn master_index(host: &Netlink, master: &Option<String>) -> Result<LinkInfo, CniError> {
    match master {
        Some(m) => host
            .link(m)
            .await
            .map_err(CniError::kernel(format!("look up master {m}")))?
            .ok_or_else(|| {
                CniError::InvalidConfig(format!(
                    "macvlan master {m:?} not found in the runtime's network namespace: set \"master\" to an existing link"
                ))
            }),
        None => {
            let idx = host
                .default_route_link()
                .await
                .map_err(CniError::kernel("find the default route"))?
                .ok_or_else(|| {
                    CniError::InvalidConfig(
                        "macvlan: no \"master\" given and no default route to take it from: set \"master\"".into(),
                    )
                })?;
            host.link_by_index(idx)
                .await
                .map_err(CniError::kernel("look up the default route's link"))?
                .ok_or_else(|| CniError::InvalidConfig("macvlan: default route link vanished".into()))
        }
    }
}

/// Writes `1` to a forwarding sysctl unless it already holds it.
fn enable_forwarding(v4: bool) -> Result<(), CniError> {
    let key = if v4 {
        "net/ipv4/ip_forward"
    } else {
        "net/ipv6/conf/all/forwarding"
    };
    let path = Path::new("/proc/sys").join(key);
    if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    std::fs::write(&path, "1").map_err(CniError::io("write", &path))
}

/// True once `ifname` does not exist in `cnl`'s namespace. A DEL hands the final
/// delete to a detached child, so an interface that a DEL just removed may linger for
/// a few tens of milliseconds: wait up to 150 ms for it.
async fn wait_gone(cnl: &Netlink, ifname: &str) -> Result<bool, CniError> {
    for i in 0..30 {
        let l = cnl
            .link(ifname)
            .await
            .map_err(CniError::kernel(format!("look up {ifname}")))?;
        if l.is_none() {
            return Ok(true);
        }
        if i < 29 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    Ok(false)
}

fn random_mac() -> [u8; 6] {
    let mut m: [u8; 6] = rand::random();
    m[0] = (m[0] & 0xfe) | 0x02;
    m
}

/// ADD: creates the interface, assigns addresses and routes, returns the result
/// (merged after `prevResult` when chained).
///
/// `sock` is a netlink socket already opened in the container's namespace, if any.
pub async fn add(
    conf: &NetConf,
    env: &CniEnv,
    sock: Option<Result<OwnedFd, KernelError>>,
) -> Result<CniResult, CniError> {
    let id = env.container_id()?;
    let ifname = env.ifname()?;
    let netns_path = env.netns()?;
    let drv = driver(conf)?;
    let store = store(conf)?;
    let requested = conf.requested_ips(&env.args)?;
    let mac = conf.requested_mac()?;
    let prev = conf.prev()?;
    if !requested.is_empty() && store.is_none() {
        return Err(CniError::InvalidConfig(
            "specific IPs were requested but the config has no \"ipam\": add a host-local ipam object".into(),
        ));
    }
    let ns_file = open_ns(netns_path)?;
    let host = Netlink::current().map_err(CniError::kernel("open netlink"))?;
    let cnl = netlink_in(netns_path, sock).await?;
    if !wait_gone(&cnl, ifname).await? {
        return Err(CniError::AlreadyExists(format!(
            "container interface {ifname} already exists in {netns_path}: DEL it first or use another CNI_IFNAME"
        )));
    }
    tracing::debug!("container namespace open, {ifname} free");
    let master = match &drv {
        Driver::Macvlan { master, .. } => Some(master_index(&host, master).await?),
        Driver::Bridge { .. } => None,
    };
    let allocs = match &store {
        Some(s) => s.allocate(id, ifname, &requested)?,
        None => Vec::new(),
    };
    tracing::debug!(?allocs, "addresses allocated");
    let routes = store.as_ref().map(|s| s.routes.clone()).unwrap_or_default();
    let res = async {
        let (mut interfaces, peer_index) = match &drv {
            Driver::Bridge { name } => {
                bridge_up(conf, &host, name, &ns_file, ifname, mac, &allocs).await?
            }
            Driver::Macvlan { mode, .. } => {
                let m = master
                    .as_ref()
                    .ok_or_else(|| CniError::InvalidConfig("no master".into()))?;
                host.create_macvlan_in(ifname, m.index, *mode, &ns_file, conf.mtu, mac)
                    .await
                    .map_err(CniError::kernel(format!(
                        "create macvlan {ifname} on {} in {netns_path}",
                        m.name
                    )))?;
                (Vec::new(), 0)
            }
        };
        tracing::debug!("link created");
        let (link, routes) =
            configure(&cnl, ifname, &allocs, &routes, conf.is_default_gateway).await?;
        tracing::debug!("container side configured");
        interfaces.push(Interface {
            name: ifname.to_string(),
            mac: mac_string(&link.mac),
            mtu: Some(link.mtu),
            sandbox: netns_path.to_string(),
            extra: Default::default(),
        });
        if let Driver::Bridge { name } = &drv
            && conf.ip_masq
            && !allocs.is_empty()
        {
            let subnets: Vec<IpNet> = store
                .iter()
                .flat_map(|s| s.sets.iter().flatten().map(|r| r.subnet))
                .collect();
            let addrs: Vec<IpAddr> = allocs.iter().map(|a| a.address.addr()).collect();
            masq::add(conf.net_name()?, name, &subnets, &addrs)?;
            tracing::debug!("masquerading set up");
        }
        let ips = allocs
            .iter()
            .map(|a| IpConfig {
                version: None,
                interface: Some(peer_index),
                address: a.address,
                gateway: Some(a.gateway),
            })
            .collect();
        Ok::<_, CniError>(CniResult {
            cni_version: conf.cni_version.clone(),
            interfaces,
            ips,
            routes,
            dns: conf
                .dns
                .clone()
                .unwrap_or_else(|| serde_json::Value::Object(Default::default())),
        })
    }
    .await;
    match res {
        Ok(r) => {
            let r = match prev {
                Some(p) => p.merge(r),
                None => r,
            };
            Ok(r.for_version(&conf.cni_version))
        }
        Err(e) => {
            // Roll back: the container end (and with it a veth's host end), the addresses.
            let _ = cnl.delete_link(ifname).await;
            if let Some(s) = &store {
                let _ = s.release(id, ifname);
            }
            Err(e)
        }
    }
}

/// Bridge side of ADD: bridge, gateway addresses, veth pair. Returns the result's
/// host-side interfaces and the index the container interface will have.
async fn bridge_up(
    conf: &NetConf,
    host: &Netlink,
    name: &str,
    ns_file: &std::fs::File,
    ifname: &str,
    mac: Option<[u8; 6]>,
    allocs: &[Allocation],
) -> Result<(Vec<Interface>, usize), CniError> {
    let mtu = conf.mtu.unwrap_or(DEFAULT_MTU);
    // Fast path: an existing bridge that is up is used as it is (one lookup).
    let existing = host
        .link(name)
        .await
        .map_err(CniError::kernel(format!("look up {name}")))?;
    let br = match existing {
        Some(l) if l.kind == "bridge" && l.up => l,
        _ => host
            .ensure_bridge(name, mtu, random_mac(), BRIDGE_ALIAS)
            .await
            .map_err(CniError::kernel(format!("create bridge {name}")))?,
    };
    tracing::debug!("bridge {name} ready");
    if conf.is_gateway || conf.is_default_gateway {
        for a in allocs {
            let gw = IpNet::new(a.gateway, a.address.prefix_len())
                .map_err(|_| CniError::InvalidConfig(format!("bad gateway {}", a.gateway)))?;
            host.add_address(br.index, name, gw)
                .await
                .map_err(CniError::kernel(format!("add gateway {gw} to {name}")))?;
            enable_forwarding(a.gateway.is_ipv4())?;
        }
    }
    let mut tries = 0;
    let host_mac = random_mac();
    let veth = loop {
        let veth = format!("veth{:08x}", rand::random::<u32>());
        match host
            .create_veth_pair_in(&veth, ifname, ns_file, mtu, mac, Some(host_mac), br.index)
            .await
        {
            Ok(()) => break veth,
            Err(e) if e.is_exists() && tries < 3 => tries += 1,
            Err(e) => {
                return Err(CniError::kernel(format!(
                    "create veth pair {veth}/{ifname}"
                ))(e));
            }
        }
    };
    if conf.hairpin_mode {
        host.set_hairpin(&veth, true)
            .await
            .map_err(CniError::kernel(format!("set hairpin mode on {veth}")))?;
    }
    Ok((
        vec![
            Interface {
                name: name.to_string(),
                mac: mac_string(&br.mac),
                mtu: Some(br.mtu),
                ..Default::default()
            },
            Interface {
                name: veth,
                mac: mac_string(&host_mac),
                mtu: Some(mtu),
                ..Default::default()
            },
        ],
        2,
    ))
}

/// Container side of ADD: addresses and routes on `ifname`. Returns the link and the
/// routes installed (for the result).
async fn configure(
    cnl: &Netlink,
    ifname: &str,
    allocs: &[Allocation],
    routes: &[Route],
    default_gw: bool,
) -> Result<(LinkInfo, Vec<Route>), CniError> {
    let l = cnl
        .require_link(ifname)
        .await
        .map_err(CniError::kernel(format!(
            "look up {ifname} in the container"
        )))?;
    if !l.up {
        cnl.set_up(l.index, ifname)
            .await
            .map_err(CniError::kernel(format!("bring {ifname} up")))?;
    }
    for a in allocs {
        cnl.add_address(l.index, ifname, a.address)
            .await
            .map_err(CniError::kernel(format!("add {} to {ifname}", a.address)))?;
    }
    let gw_for = |v4: bool| -> Option<IpAddr> {
        allocs
            .iter()
            .find(|a| a.gateway.is_ipv4() == v4)
            .map(|a| a.gateway)
    };
    let mut out = routes.to_vec();
    if default_gw {
        for a in allocs {
            let v4 = a.gateway.is_ipv4();
            if !out
                .iter()
                .any(|r| r.dst.prefix_len() == 0 && r.dst.addr().is_ipv4() == v4)
            {
                let dst: IpNet = if v4 {
                    "0.0.0.0/0".parse().unwrap_or_default()
                } else {
                    "::/0".parse().unwrap_or_default()
                };
                out.push(Route {
                    dst,
                    gw: Some(a.gateway),
                    extra: Default::default(),
                });
            }
        }
    }
    for r in &out {
        let gw = r.gw.or_else(|| gw_for(r.dst.addr().is_ipv4()));
        cnl.replace_route(l.index, r.dst, gw)
            .await
            .map_err(CniError::kernel(format!(
                "add route {} in the container",
                r.dst
            )))?;
    }
    Ok((l, out))
}

/// DEL: releases the addresses and removes the container interface. Everything
/// already gone (namespace, interface, allocation) counts as success.
///
/// By default the interface is deleted by a detached child ([`podlink::delete_link_detached`]):
/// the kernel's unregistration waits ~20 ms for an RCU barrier, and nothing needs this
/// command to wait for it. `"syncDelete": true` waits.
pub async fn del(conf: &NetConf, env: &CniEnv) -> Result<(), CniError> {
    let ifname = env.ifname()?;
    let Some(netns_path) = env.netns.as_deref() else {
        return Ok(());
    };
    if !netns::is_netns(Path::new(netns_path)) {
        // No namespace (or a stale file that is no longer one): the container is gone.
        return Ok(());
    }
    if conf.sync_delete {
        let cnl = match Netlink::in_netns(Path::new(netns_path)) {
            Ok(cnl) => cnl,
            Err(e) => {
                tracing::debug!(error = %e, "namespace not usable, nothing to delete");
                return Ok(());
            }
        };
        return cnl
            .delete_link(ifname)
            .await
            .map_err(CniError::kernel(format!("delete {ifname} in {netns_path}")));
    }
    podlink::delete_link_detached(Path::new(netns_path), ifname)
        .map_err(CniError::kernel(format!("delete {ifname} in {netns_path}")))
}

/// The bridge a config names (without validating the rest of it: DEL must work for a
/// config that ADD refused).
pub fn bridge_name(conf: &NetConf) -> String {
    conf.bridge.clone().unwrap_or_else(|| DEFAULT_BRIDGE.into())
}

/// The IPAM part of DEL (before any netlink work).
pub fn del_ipam(conf: &NetConf, env: &CniEnv) -> Result<(), CniError> {
    let id = env.container_id()?;
    let ifname = env.ifname()?;
    let Some(s) = store(conf)? else {
        return Ok(());
    };
    // The final ADD result names the addresses: release those directly; scan the
    // store only when it did not name them all.
    let named: Vec<IpAddr> = conf
        .prev()
        .ok()
        .flatten()
        .map(|p| {
            p.ips
                .iter()
                .map(|ip| ip.address.addr())
                .filter(|ip| s.in_ranges(*ip))
                .collect()
        })
        .unwrap_or_default();
    if conf.ip_masq {
        // Only addresses this container still holds: a repeated DEL must not touch an
        // address another container has been given since. Before the release, so no
        // ADD can take them in between. A failure here must not make DEL fail forever
        // (the addresses would never be released): it is logged.
        let held = if named.len() >= s.set_count() {
            s.owned_of(id, ifname, &named)?
        } else {
            s.owned(id, ifname)?
        };
        if let Err(e) = masq::remove(&bridge_name(conf), &held) {
            tracing::warn!(error = %e, "could not remove masquerading; releasing the addresses anyway");
        }
    }
    let mut freed = if named.is_empty() {
        Vec::new()
    } else {
        s.release_ips(id, ifname, &named)?
    };
    // One address per range set: if prevResult named fewer (a chained plugin rewrote
    // it, or there was none), scan for the rest.
    if freed.len() < s.set_count() {
        freed.extend(s.release(id, ifname)?);
    }
    tracing::debug!(?freed, "released addresses");
    Ok(())
}

/// CHECK: the interface exists with the MAC and addresses of `prevResult`, the
/// bridge (or macvlan kind) is right and IPAM still holds the addresses.
pub async fn check(
    conf: &NetConf,
    env: &CniEnv,
    sock: Option<Result<OwnedFd, KernelError>>,
) -> Result<(), CniError> {
    let id = env.container_id()?;
    let ifname = env.ifname()?;
    let netns_path = env.netns()?;
    let drv = driver(conf)?;
    let prev = conf.prev()?.ok_or_else(|| {
        CniError::InvalidConfig(
            "CHECK needs prevResult: pass the final result of the ADD chain".into(),
        )
    })?;
    let fail = |m: String| CniError::CheckFailed(m);
    if !netns::is_netns(Path::new(netns_path)) {
        return Err(fail(format!("network namespace {netns_path} not found")));
    }
    let cnl = netlink_in(netns_path, sock).await?;
    let l = cnl
        .link(ifname)
        .await
        .map_err(CniError::kernel(format!("look up {ifname}")))?
        .ok_or_else(|| fail(format!("interface {ifname} not found in {netns_path}")))?;
    let (idx, iface) = prev
        .interfaces
        .iter()
        .enumerate()
        .find(|(_, i)| i.name == ifname && (i.sandbox.is_empty() || i.sandbox == netns_path))
        .ok_or_else(|| {
            fail(format!(
                "prevResult lists no interface {ifname} in sandbox {netns_path}"
            ))
        })?;
    let actual = mac_string(&l.mac);
    if !iface.mac.is_empty() && !iface.mac.eq_ignore_ascii_case(&actual) {
        return Err(fail(format!(
            "interface {ifname} MAC {actual} does not match {} in prevResult",
            iface.mac
        )));
    }
    let addrs = cnl
        .addresses(l.index)
        .await
        .map_err(CniError::kernel(format!("list addresses of {ifname}")))?;
    for ip in prev.ips.iter().filter(|ip| ip.interface == Some(idx)) {
        if !addrs.contains(&ip.address) {
            return Err(fail(format!(
                "interface {ifname} lacks address {} of prevResult",
                ip.address
            )));
        }
    }
    match &drv {
        Driver::Bridge { name } => {
            if l.kind != "veth" {
                return Err(fail(format!("{ifname} is a {} link, not a veth", l.kind)));
            }
            let host = Netlink::current().map_err(CniError::kernel("open netlink"))?;
            if host
                .link(name)
                .await
                .map_err(CniError::kernel(format!("look up {name}")))?
                .is_none()
            {
                return Err(fail(format!("bridge {name} not found")));
            }
        }
        Driver::Macvlan { .. } => {
            if l.kind != "macvlan" {
                return Err(fail(format!(
                    "{ifname} is a {} link, not a macvlan",
                    l.kind
                )));
            }
        }
    }
    if let Some(s) = store(conf)? {
        let owned = s.owned(id, ifname)?;
        if owned.is_empty() {
            return Err(fail(format!(
                "IPAM holds no address for container {id} interface {ifname}"
            )));
        }
        for ip in prev.ips.iter().filter(|ip| ip.interface == Some(idx)) {
            if s.sets
                .iter()
                .flatten()
                .any(|r| r.subnet.contains(&ip.address.addr()))
                && !owned.contains(&ip.address.addr())
            {
                return Err(fail(format!(
                    "IPAM does not hold {} for container {id}",
                    ip.address.addr()
                )));
            }
        }
    }
    Ok(())
}

/// STATUS: ready when the config is valid, the IPAM store is usable and (macvlan) the
/// parent link exists.
pub async fn status(conf: &NetConf) -> Result<(), CniError> {
    let drv = driver(conf)?;
    if let Some(s) = store(conf)? {
        s.status()?;
    }
    if let Driver::Macvlan { master, .. } = &drv {
        let host = Netlink::current().map_err(CniError::kernel("open netlink"))?;
        master_index(&host, master)
            .await
            .map_err(|e| CniError::NotReady(format!("macvlan parent not available: {e}")))?;
    }
    Ok(())
}
