//! Network lifecycle: create, list, inspect, connect, disconnect, remove, prune.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use netloom_ipam::IpamError;
use netloom_model::{
    Container, Endpoint, EndpointRequest, IpamPoolConfig, IpamSpec, Network, Scope, is_valid_name,
};
use tracing::{info, warn};

use super::{
    Controller, Locked, State, del, is_default_ipam, keys, new_id, now, plugin_error, put,
};
use crate::error::{CtlError, CtlResult};

/// One parsed IPAM config: subnet (`0.0.0.0/0` / `::/0`: any), IP range, gateway, aux.
pub(crate) type ParsedPool = (
    IpNet,
    Option<IpNet>,
    Option<IpAddr>,
    BTreeMap<String, IpAddr>,
);

/// One IPAM config of a create request, as strings (validated here).
#[derive(Debug, Clone, Default)]
pub struct IpamConfigRequest {
    /// `--subnet`.
    pub subnet: String,
    /// `--ip-range`.
    pub ip_range: String,
    /// `--gateway`.
    pub gateway: String,
    /// `--aux-address`.
    pub aux: BTreeMap<String, String>,
}

/// A network create request.
#[derive(Debug, Clone, Default)]
pub struct NetworkCreate {
    /// Name.
    pub name: String,
    /// Driver (`""` = bridge).
    pub driver: String,
    /// Scope (`""` = local).
    pub scope: String,
    /// `--ipv4` (None = default true).
    pub enable_ipv4: Option<bool>,
    /// `--ipv6`.
    pub enable_ipv6: Option<bool>,
    /// IPAM driver (`""` = default).
    pub ipam_driver: String,
    /// IPAM options.
    pub ipam_options: BTreeMap<String, String>,
    /// IPAM configs.
    pub ipam_configs: Vec<IpamConfigRequest>,
    /// `--internal`.
    pub internal: bool,
    /// `--attachable`.
    pub attachable: bool,
    /// `--ingress`.
    pub ingress: bool,
    /// `--config-only`.
    pub config_only: bool,
    /// `--config-from`.
    pub config_from: Option<String>,
    /// Driver options.
    pub options: BTreeMap<String, String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// Network list filters.
#[derive(Debug, Clone, Default)]
pub struct NetworkFilter {
    /// Name substrings.
    pub name: Vec<String>,
    /// ID prefixes.
    pub id: Vec<String>,
    /// Drivers.
    pub driver: Vec<String>,
    /// Labels `k` or `k=v`.
    pub label: Vec<String>,
    /// Scopes.
    pub scope: Vec<String>,
    /// `builtin` / `custom`.
    pub kind: Vec<String>,
    /// Dangling (no endpoints, not predefined).
    pub dangling: Option<bool>,
    /// Negated labels (prune).
    pub label_not: Vec<String>,
    /// Created before this Unix time (prune).
    pub until: Option<i64>,
}

/// A connect request.
#[derive(Debug, Clone, Default)]
pub struct ConnectRequest {
    /// Container name or ID.
    pub container: String,
    /// Endpoint settings.
    pub endpoint: EndpointRequest,
}

/// Detailed view of a network for inspect: the network plus its endpoints.
#[derive(Debug, Clone)]
pub struct NetworkView {
    /// The network.
    pub network: Network,
    /// Its endpoints.
    pub endpoints: Vec<Endpoint>,
}

pub(crate) fn map_ipam(e: IpamError) -> CtlError {
    let msg = e.to_string();
    match e {
        IpamError::Overlap { .. } | IpamError::InUse { .. } => CtlError::conflict(msg),
        IpamError::PoolsExhausted { .. } | IpamError::Exhausted { .. } => {
            CtlError::unavailable(msg)
        }
        IpamError::UnknownPool { .. } => CtlError::internal(msg),
        _ => CtlError::invalid(msg),
    }
}

/// Parses and checks one IPAM pool of a network create (None: no subnet given). Shared
/// by local and swarm networks, so both refuse the same bad input.
pub(crate) fn parse_pool(c: &IpamConfigRequest) -> CtlResult<Option<ParsedPool>> {
    let subnet = if c.subnet.is_empty() {
        None
    } else {
        let s = parse_net("subnet", &c.subnet)?;
        if s.trunc() != s {
            return Err(CtlError::invalid(format!(
                "invalid subnet {}: it should be {}",
                c.subnet,
                s.trunc()
            )));
        }
        Some(s)
    };
    let ip_range = if c.ip_range.is_empty() {
        None
    } else {
        Some(parse_net("ip-range", &c.ip_range)?)
    };
    let gateway = if c.gateway.is_empty() {
        None
    } else {
        Some(parse_ip("gateway", &c.gateway)?)
    };
    let Some(subnet) = subnet else {
        if ip_range.is_some() || gateway.is_some() || !c.aux.is_empty() {
            return Err(CtlError::invalid(
                "invalid network config: --ip-range, --gateway and --aux-address need a --subnet",
            ));
        }
        return Ok(None);
    };
    if let Some(r) = ip_range {
        if r.trunc() != r {
            return Err(CtlError::invalid(format!(
                "invalid ip-range {r}: it should be {}",
                r.trunc()
            )));
        }
        if !subnet.contains(&r) {
            return Err(CtlError::invalid(format!(
                "invalid ip-range {r}: it must be within subnet {subnet}"
            )));
        }
    }
    if let Some(g) = gateway {
        if !subnet.contains(&g) {
            return Err(CtlError::invalid(format!(
                "invalid gateway {g}: it must be within subnet {subnet}"
            )));
        }
        if g == subnet.network() || (g.is_ipv4() && g == subnet.broadcast()) {
            return Err(CtlError::invalid(format!(
                "invalid gateway {g}: it is the network or broadcast address of subnet {subnet}"
            )));
        }
    }
    let mut aux = BTreeMap::new();
    for (k, v) in &c.aux {
        let a = parse_ip("aux-address", v)?;
        if !subnet.contains(&a) {
            return Err(CtlError::invalid(format!(
                "invalid aux-address {k}={v}: it must be within subnet {subnet}"
            )));
        }
        aux.insert(k.clone(), a);
    }
    Ok(Some((subnet, ip_range, gateway, aux)))
}

pub(crate) fn parse_net(kind: &str, s: &str) -> CtlResult<IpNet> {
    s.trim()
        .parse::<IpNet>()
        .map_err(|_| CtlError::invalid(format!("invalid {kind} {s}: invalid CIDR block notation")))
}

pub(crate) fn parse_ip(kind: &str, s: &str) -> CtlResult<IpAddr> {
    let t = s.trim();
    let t = t.split_once('/').map(|(a, _)| a).unwrap_or(t);
    t.parse::<IpAddr>()
        .map_err(|_| CtlError::invalid(format!("invalid {kind} {s}: not an IP address")))
}

fn label_match(labels: &BTreeMap<String, String>, f: &str) -> bool {
    match f.split_once('=') {
        Some((k, v)) => labels.get(k).map(|x| x == v).unwrap_or(false),
        None => labels.contains_key(f),
    }
}

impl NetworkFilter {
    fn matches(&self, n: &Network, endpoints: usize) -> bool {
        (self.name.is_empty() || self.name.iter().any(|f| n.name.contains(f.as_str())))
            && (self.id.is_empty() || self.id.iter().any(|f| n.id.starts_with(f.as_str())))
            && (self.driver.is_empty() || self.driver.iter().any(|f| &n.driver == f))
            && self.label.iter().all(|f| label_match(&n.labels, f))
            && !self.label_not.iter().any(|f| label_match(&n.labels, f))
            && (self.scope.is_empty() || self.scope.iter().any(|f| f == n.scope.as_str()))
            && (self.kind.is_empty()
                || self
                    .kind
                    .iter()
                    .any(|f| (f == "builtin" && n.predefined) || (f == "custom" && !n.predefined)))
            && self
                .dangling
                .map(|d| d == (endpoints == 0 && !n.predefined))
                .unwrap_or(true)
            && self
                .until
                .map(|t| created_unix(&n.created) < t)
                .unwrap_or(true)
    }
}

/// Unix seconds of an RFC 3339 time (0 if unparsable).
pub fn created_unix(s: &str) -> i64 {
    humantime::parse_rfc3339_weak(s)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A new network's name must be valid and free (also of networks still being created).
fn check_new_name(st: &State, name: &str) -> CtlResult<()> {
    if name.is_empty() {
        return Err(CtlError::invalid("invalid name: a network needs a name"));
    }
    if !is_valid_name(name) {
        return Err(CtlError::invalid(format!(
            "invalid name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    if st.networks.values().any(|n| n.name == name) || st.pending_networks.contains_key(name) {
        return Err(CtlError::conflict(format!(
            "network with name {name} already exists"
        )));
    }
    Ok(())
}

impl Controller {
    /// Host networks to avoid when choosing a default subnet: every address already on
    /// a link in the daemon's namespace that is not one of our bridges.
    async fn host_nets(&self, st: &State) -> Vec<IpNet> {
        let ours: Vec<&str> = st.networks.values().map(|n| n.iface.as_str()).collect();
        let mut out = Vec::new();
        if let Ok(links) = self.nl.links().await {
            for l in links {
                if ours.contains(&l.name.as_str()) || l.name == "lo" {
                    continue;
                }
                if let Ok(addrs) = self.nl.addresses(l.index).await {
                    out.extend(addrs.into_iter().map(|a| a.trunc()));
                }
            }
        }
        out
    }

    /// Creates a network; returns its ID.
    ///
    /// On a remote driver the plugin calls that can take long (activation, `GwAllocCheck`,
    /// `CreateNetwork`) run without the state lock, so that a slow or hanging plugin does
    /// not stall other requests: the name is taken and the pools are reserved under the
    /// lock, the network becomes visible once the plugin has answered.
    pub async fn create_network(&self, req: NetworkCreate) -> CtlResult<String> {
        let driver_name = if req.driver.is_empty() {
            "bridge".to_string()
        } else {
            req.driver.clone()
        };
        if self.is_global_driver(&driver_name) {
            return self.create_global_network(req).await;
        }
        if !self.is_remote(&driver_name) {
            let mut st = self.lock_state().await;
            let id = new_id();
            let net = self
                .build_network(&mut st, id, req, false, (false, false))
                .await?;
            return self.install_network(&mut st, net).await;
        }
        // A request refused for its name sends the plugin nothing.
        check_new_name(&*self.state.lock().await, &req.name)?;
        let perr = |e| plugin_error(&driver_name, e, &self.drivers.names().join(", "));
        let rd = self.plugins.driver(&driver_name).await.map_err(perr)?;
        let opts = netloom_drivers::remote::RemoteDriver::network_options(
            &req.options,
            req.enable_ipv4.unwrap_or(true),
            req.enable_ipv6.unwrap_or(false),
            req.internal,
        );
        let skip = rd.gw_alloc_check(&opts).await.map_err(perr)?;
        let net = {
            let mut st = self.lock_state().await;
            let net = self
                .build_network(&mut st, new_id(), req, false, skip)
                .await?;
            // Intent first: a daemon that dies during the call finds the record.
            if let Err(e) = self
                .commit(vec![put(format!("{}{}", keys::NETWORK, net.id), &net)?])
                .await
            {
                self.release_network_ipam(&mut st, &net).await;
                return Err(e);
            }
            st.pending_networks.insert(net.name.clone(), net.id.clone());
            net
        };
        let res = netloom_model::Driver::create_network(&*rd, &net).await;
        let mut st = self.lock_state().await;
        st.pending_networks.remove(&net.name);
        if let Err(e) = res {
            // A plugin that refused the network has nothing to delete (Docker does not
            // call DeleteNetwork then).
            let _ = self
                .commit(vec![del(format!("{}{}", keys::NETWORK, net.id))])
                .await;
            self.release_network_ipam(&mut st, &net).await;
            return Err(e.into());
        }
        let id = net.id.clone();
        st.networks.insert(id.clone(), net.clone());
        info!(network = %net.name, id = %netloom_model::short_id(&net.id), driver = %net.driver, "network created");
        self.emit(
            "network",
            "create",
            &net.id,
            &[("name", net.name.clone()), ("type", net.driver.clone())],
        );
        Ok(id)
    }

    /// Validates a request and reserves its IPAM pools; returns the network record (not yet
    /// persisted). On error nothing stays reserved.
    ///
    /// An IPAM plugin's calls run without the state lock; the name stays taken meanwhile
    /// (as a pending network).
    pub(crate) async fn build_network(
        &self,
        st: &mut Locked<'_>,
        id: String,
        req: NetworkCreate,
        predefined: bool,
        skip: (bool, bool),
    ) -> CtlResult<Network> {
        check_new_name(st, &req.name)?;
        if is_default_ipam(&req.ipam_driver) {
            return self
                .build_network_inner(st, id, req, predefined, skip)
                .await;
        }
        let name = req.name.clone();
        st.pending_networks.insert(name.clone(), id.clone());
        let res = self
            .build_network_inner(st, id, req, predefined, skip)
            .await;
        st.pending_networks.remove(&name);
        res
    }

    async fn build_network_inner(
        &self,
        st: &mut Locked<'_>,
        id: String,
        req: NetworkCreate,
        predefined: bool,
        (skip4, skip6): (bool, bool),
    ) -> CtlResult<Network> {
        let driver_name = if req.driver.is_empty() {
            "bridge".to_string()
        } else {
            req.driver.clone()
        };
        let driver = self.driver(&driver_name).await?;
        if !predefined && driver.capabilities().single_instance {
            return Err(CtlError::forbidden(format!(
                "only one instance of \"{driver_name}\" network is allowed"
            )));
        }
        let scope = match req.scope.as_str() {
            "" | "local" => Scope::Local,
            "swarm" | "global" => {
                return Err(CtlError::invalid(format!(
                    "scope {} needs swarm mode: this node is not part of a swarm",
                    req.scope
                )));
            }
            s => {
                return Err(CtlError::invalid(format!(
                    "invalid scope {s:?}: use local, swarm or global"
                )));
            }
        };
        if req.config_only || req.config_from.is_some() {
            return Err(CtlError::invalid(
                "--config-only and --config-from are not supported by netloom's local drivers",
            ));
        }
        if req.ingress {
            return Err(CtlError::invalid(
                "--ingress needs swarm mode: this node is not part of a swarm",
            ));
        }
        let remote_ipam = if is_default_ipam(&req.ipam_driver) {
            if !req.ipam_options.is_empty() {
                return Err(CtlError::invalid(format!(
                    "unknown IPAM option {:?}: the default IPAM driver takes no options",
                    req.ipam_options.keys().next().cloned().unwrap_or_default()
                )));
            }
            None
        } else {
            Some(
                st.without(self.plugins.ipam(&req.ipam_driver))
                    .await
                    .map_err(|e| plugin_error(&req.ipam_driver, e, "default"))?,
            )
        };
        let enable_ipv4 = req.enable_ipv4.unwrap_or(true);
        let enable_ipv6 = req.enable_ipv6.unwrap_or(false);
        let has_addresses = driver.capabilities().has_sandbox_interfaces;
        // Parse every pool first: nothing is reserved until all of them are valid.
        let mut parsed = Vec::new();
        for c in &req.ipam_configs {
            let Some((subnet, ip_range, gateway, aux)) = parse_pool(c)? else {
                continue;
            };
            match subnet {
                IpNet::V6(_) if !enable_ipv6 => {
                    return Err(CtlError::invalid(format!(
                        "invalid network config: IPv6 subnet {subnet} given but IPv6 is not enabled; add --ipv6"
                    )));
                }
                IpNet::V4(_) if !enable_ipv4 => {
                    return Err(CtlError::invalid(format!(
                        "invalid network config: IPv4 subnet {subnet} given but IPv4 is disabled"
                    )));
                }
                _ => {}
            }
            if parsed
                .iter()
                .any(|(s, _, _, _): &(IpNet, _, _, _)| s.contains(&subnet) || subnet.contains(s))
            {
                return Err(CtlError::invalid(format!(
                    "invalid network config: subnet {subnet} is given twice or overlaps another subnet of this network"
                )));
            }
            parsed.push((subnet, ip_range, gateway, aux));
        }
        if !has_addresses && !parsed.is_empty() && !predefined {
            return Err(CtlError::invalid(format!(
                "the {driver_name} driver does not take subnets"
            )));
        }
        let mut net = Network {
            id,
            name: req.name.clone(),
            driver: driver_name.clone(),
            scope,
            created: now(),
            enable_ipv4,
            enable_ipv6,
            internal: req.internal,
            attachable: req.attachable,
            ingress: false,
            predefined,
            ipam: IpamSpec {
                driver: if remote_ipam.is_some() {
                    req.ipam_driver.clone()
                } else {
                    "default".into()
                },
                options: if remote_ipam.is_some() {
                    req.ipam_options.clone()
                } else {
                    BTreeMap::new()
                },
                configs: Vec::new(),
            },
            options: req.options.clone(),
            labels: req.labels.clone(),
            iface: String::new(),
            mtu: 0,
        };
        driver.validate(&mut net)?;
        check_kernel_names(st, &net)?;
        if !has_addresses {
            return Ok(net);
        }
        if enable_ipv6 && !parsed.iter().any(|(s, ..)| s.addr().is_ipv6()) {
            if remote_ipam.is_some() {
                // The plugin chooses (RequestPool with V6 and no Pool).
                parsed.push((IpNet::V6(Default::default()), None, None, BTreeMap::new()));
            } else {
                return Err(CtlError::invalid(
                    "invalid network config: --ipv6 needs an IPv6 --subnet (netloom has no default IPv6 pool)",
                ));
            }
        }
        if enable_ipv4 && !parsed.iter().any(|(s, ..)| s.addr().is_ipv4()) {
            parsed.insert(
                0,
                (IpNet::V4(Default::default()), None, None, BTreeMap::new()),
            );
        }
        // moby ≥ 28: a plugin with the GwAllocChecker capability may say the network needs
        // no gateway address (`skip4`/`skip6`, asked by the caller before anything is
        // reserved). A gateway the user gave is reserved anyway, as Docker does.
        let skip_gw = |subnet: &IpNet| {
            if subnet.addr().is_ipv6() {
                skip6
            } else {
                skip4
            }
        };
        if let Some(ipam) = &remote_ipam {
            st.without(self.remote_ipam_allocate(ipam, &mut net, parsed, (skip4, skip6)))
                .await?;
            // Another network may have taken the bridge or parent meanwhile.
            if let Err(e) = check_kernel_names(st, &net) {
                st.without(Self::remote_ipam_release(ipam, &net)).await;
                return Err(e);
            }
            return Ok(net);
        }
        // Reserve: pools, then gateway and aux addresses. Undo all on error.
        let avoid = self.host_nets(st).await;
        let mut reserved: Vec<IpNet> = Vec::new();
        let res: CtlResult<()> = (|| {
            for (subnet, ip_range, gateway, aux) in parsed {
                let want = if subnet.prefix_len() == 0 && subnet.addr().is_unspecified() {
                    None
                } else {
                    Some(subnet)
                };
                let subnet = st
                    .ipam
                    .request_pool(&net.name, want, ip_range, &avoid)
                    .map_err(map_ipam)?;
                reserved.push(subnet);
                let gw = match gateway {
                    Some(g) => Some(g),
                    None if skip_gw(&subnet) => None,
                    None => Some(netloom_ipam::first_host(&subnet).ok_or_else(|| {
                        CtlError::invalid(format!("subnet {subnet} has no host address"))
                    })?),
                };
                if let Some(gw) = gw {
                    st.ipam
                        .request_address(&subnet, Some(gw))
                        .map_err(|e| CtlError::invalid(format!("invalid gateway {gw}: {e}")))?;
                }
                for (k, a) in &aux {
                    if Some(*a) == gw {
                        continue;
                    }
                    st.ipam.request_address(&subnet, Some(*a)).map_err(|e| {
                        CtlError::invalid(format!("invalid aux-address {k}={a}: {e}"))
                    })?;
                }
                net.ipam.configs.push(IpamPoolConfig {
                    subnet,
                    ip_range,
                    gateway: gw,
                    aux,
                    pool_id: String::new(),
                });
            }
            Ok(())
        })();
        if let Err(e) = res {
            for s in reserved {
                st.ipam.release_pool(&s);
            }
            return Err(e);
        }
        Ok(net)
    }

    /// Requests a network's pools, gateways and aux addresses from a remote IPAM plugin,
    /// in Docker's order (IPv4 configs, then IPv6; per config RequestPool, then the gateway,
    /// then aux addresses). On error everything requested so far is released.
    async fn remote_ipam_allocate(
        &self,
        ipam: &netloom_drivers::remote::RemoteIpam,
        net: &mut Network,
        mut parsed: Vec<ParsedPool>,
        (skip4, skip6): (bool, bool),
    ) -> CtlResult<()> {
        use netloom_drivers::remote::{GATEWAY_LABEL, REQUEST_ADDRESS_TYPE};
        let name = net.ipam.driver.clone();
        let perr = |e| plugin_error(&name, e, "default");
        let (space, _) = ipam.default_address_spaces().await.map_err(perr)?;
        let space = if space.is_empty() {
            "LocalDefault".to_string()
        } else {
            space
        };
        parsed.sort_by_key(|(s, ..)| s.addr().is_ipv6());
        let gw_opts: BTreeMap<String, String> =
            [(REQUEST_ADDRESS_TYPE.to_string(), GATEWAY_LABEL.to_string())].into();
        let mut res: CtlResult<()> = Ok(());
        for (subnet, ip_range, gateway, aux) in parsed {
            let v6 = subnet.addr().is_ipv6();
            let want =
                (!(subnet.prefix_len() == 0 && subnet.addr().is_unspecified())).then_some(subnet);
            let (id, pool, data) = match ipam
                .request_pool(&space, want, ip_range, &net.ipam.options, v6)
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    res = Err(perr(e));
                    break;
                }
            };
            net.ipam.configs.push(IpamPoolConfig {
                subnet: pool,
                ip_range,
                gateway: None,
                aux: BTreeMap::new(),
                pool_id: id.clone(),
            });
            let Some(cfg) = net.ipam.configs.last_mut() else {
                break;
            };
            let proposed = data
                .get(GATEWAY_LABEL)
                .and_then(|g| g.parse::<IpNet>().ok())
                .map(|g| g.addr());
            let skip = if v6 { skip6 } else { skip4 };
            let gw = match (gateway, proposed) {
                (None, _) if skip => Ok(None),
                (None, Some(g)) => Ok(Some(g)),
                (want, _) => ipam
                    .request_address(&id, want, Some(&gw_opts))
                    .await
                    .map(|a| Some(a.addr()))
                    .map_err(perr),
            };
            match gw {
                Ok(g) => cfg.gateway = g,
                Err(e) => {
                    res = Err(e);
                    break;
                }
            }
            for (k, a) in aux {
                match ipam.request_address(&id, Some(a), None).await {
                    Ok(_) => {
                        cfg.aux.insert(k, a);
                    }
                    Err(e) => {
                        res = Err(perr(e));
                        break;
                    }
                }
            }
            if res.is_err() {
                break;
            }
        }
        if res.is_err() {
            Self::remote_ipam_release(ipam, net).await;
            net.ipam.configs.clear();
        }
        res
    }

    /// Releases a network's gateways, aux addresses and pools at its remote IPAM plugin
    /// (Docker's order); failures are logged.
    async fn remote_ipam_release(ipam: &netloom_drivers::remote::RemoteIpam, net: &Network) {
        for c in &net.ipam.configs {
            for a in c.gateway.iter().chain(c.aux.values()) {
                if let Err(e) = ipam.release_address(&c.pool_id, *a).await {
                    warn!(network = %net.name, address = %a, error = %e, "IPAM plugin could not release an address");
                }
            }
            if let Err(e) = ipam.release_pool(&c.pool_id).await {
                warn!(network = %net.name, pool = %c.subnet, error = %e, "IPAM plugin could not release a pool");
            }
        }
    }

    /// Gives back a network's pools at its IPAM plugin (no state needed: callers may run
    /// it without the state lock).
    pub(crate) async fn release_network_ipam_remote(&self, net: &Network) {
        match self.remote_ipam(net).await {
            Ok(Some(ipam)) => Self::remote_ipam_release(&ipam, net).await,
            Ok(None) => {}
            Err(e) => {
                warn!(network = %net.name, error = %e, "cannot release the network's pools at its IPAM plugin")
            }
        }
    }

    /// Gives back a network's pools: to netloom's IPAM, or to its IPAM plugin (without
    /// the state lock).
    pub(crate) async fn release_network_ipam(&self, st: &mut Locked<'_>, net: &Network) {
        if is_default_ipam(&net.ipam.driver) {
            for c in &net.ipam.configs {
                st.ipam.release_pool(&c.subnet);
            }
            return;
        }
        st.without(self.release_network_ipam_remote(net)).await;
    }

    /// Persists a built network and creates its kernel objects; rolls back on failure.
    pub(crate) async fn install_network(
        &self,
        st: &mut Locked<'_>,
        net: Network,
    ) -> CtlResult<String> {
        if let Err(e) = self
            .commit(vec![put(format!("{}{}", keys::NETWORK, net.id), &net)?])
            .await
        {
            self.release_network_ipam(st, &net).await;
            return Err(e);
        }
        let remote = self.is_remote(&net.driver);
        let driver = match self.driver(&net.driver).await {
            Ok(d) => d,
            Err(e) => {
                let _ = self
                    .commit(vec![del(format!("{}{}", keys::NETWORK, net.id))])
                    .await;
                self.release_network_ipam(st, &net).await;
                return Err(e);
            }
        };
        if let Err(e) = driver.create_network(&net).await {
            // A plugin that refused the network has nothing to delete (Docker does not
            // call DeleteNetwork then); a local driver may have made part of it.
            if !remote {
                let _ = driver.delete_network(&net).await;
            }
            let _ = self
                .commit(vec![del(format!("{}{}", keys::NETWORK, net.id))])
                .await;
            self.release_network_ipam(st, &net).await;
            return Err(e.into());
        }
        let id = net.id.clone();
        st.networks.insert(id.clone(), net.clone());
        if let Err(e) = self.sync_firewall(st, false).await {
            st.networks.remove(&id);
            let _ = driver.delete_network(&net).await;
            let _ = self
                .commit(vec![del(format!("{}{}", keys::NETWORK, net.id))])
                .await;
            self.release_network_ipam(st, &net).await;
            return Err(e);
        }
        info!(network = %net.name, id = %netloom_model::short_id(&net.id), driver = %net.driver, "network created");
        self.emit(
            "network",
            "create",
            &net.id,
            &[("name", net.name.clone()), ("type", net.driver.clone())],
        );
        Ok(id)
    }

    /// Lists networks matching the filter.
    pub async fn list_networks(&self, f: &NetworkFilter) -> Vec<NetworkView> {
        let st = self.state.lock().await;
        let mut v: Vec<NetworkView> = st
            .networks
            .values()
            .filter(|n| f.matches(n, st.endpoints.count_of_network(&n.id)))
            .map(|n| NetworkView {
                network: n.clone(),
                endpoints: Vec::new(),
            })
            .collect();
        v.sort_by(|a, b| a.network.name.cmp(&b.network.name));
        v
    }

    /// Inspects one network with its endpoints.
    pub async fn inspect_network(&self, key: &str) -> CtlResult<NetworkView> {
        let st = self.state.lock().await;
        let n = st.find_network(key)?;
        let mut endpoints: Vec<Endpoint> =
            st.network_endpoints(&n.id).into_iter().cloned().collect();
        if self.is_global(n) {
            endpoints.extend(self.remote_endpoints(n));
        }
        Ok(NetworkView {
            network: n.clone(),
            endpoints,
        })
    }

    /// Removes a network.
    ///
    /// On a plugin network (remote driver or IPAM plugin) the plugin calls
    /// (`DeleteNetwork`, `ReleaseAddress`, `ReleasePool`) run without the state lock:
    /// the network is marked as being removed first, so nothing attaches to it and a
    /// second removal is refused meanwhile.
    pub async fn remove_network(&self, key: &str) -> CtlResult<()> {
        let mut st = self.lock_state().await;
        let net = st.find_network(key)?.clone();
        if self.is_global(&net) {
            if !st.network_endpoints(&net.id).is_empty() {
                return self.remove_network_locked(&mut st, &net).await;
            }
            let swarm = self
                .swarm()
                .cloned()
                .ok_or_else(|| CtlError::unavailable(crate::cluster::ERR_NOT_IN_SWARM))?;
            if st.busy_networks.contains_key(&net.id) || st.removing_networks.contains(&net.id) {
                return self.remove_network_locked(&mut st, &net).await;
            }
            // Nothing attaches to the network while the store removes it.
            st.removing_networks.insert(net.id.clone());
            let res = st
                .without(swarm.remove_global_network(&net.id, &net.name))
                .await;
            st.removing_networks.remove(&net.id);
            res?;
            st.removed_global
                .insert(net.id.clone(), std::time::Instant::now());
            // Checked again: the lock was let go (the sync may have removed the copy).
            let Some(net) = st.networks.get(&net.id).cloned() else {
                return Ok(());
            };
            return self.remove_network_locked(&mut st, &net).await;
        }
        self.remove_network_locked(&mut st, &net).await
    }

    pub(crate) async fn remove_network_locked(
        &self,
        st: &mut Locked<'_>,
        net: &Network,
    ) -> CtlResult<()> {
        if net.predefined {
            return Err(CtlError::forbidden(format!(
                "{} is a pre-defined network and cannot be removed",
                net.name
            )));
        }
        if st.removing_networks.contains(&net.id) {
            return Err(CtlError::conflict(format!(
                "network {} is already being removed (its plugin has not answered yet): wait for that removal to finish",
                net.name
            )));
        }
        if !st.network_endpoints(&net.id).is_empty() {
            return Err(CtlError::forbidden(format!(
                "error while removing network: network {} id {} has active endpoints",
                net.name, net.id
            )));
        }
        if st.busy_networks.contains_key(&net.id) {
            return Err(CtlError::forbidden(format!(
                "error while removing network: network {} id {} has active endpoints (a container is being connected to or disconnected from it): try again once that is done",
                net.name, net.id
            )));
        }
        let remote = self.is_remote(&net.driver);
        let plugin_ipam = !is_default_ipam(&net.ipam.driver);
        // Docker's order: DeleteNetwork, then IPAM. As in moby, a driver error does not
        // keep the network (only a permission error would, which the remote protocol
        // cannot express): it is logged and the removal goes on, so a plugin that lost
        // its state can never pin a network forever.
        if remote {
            st.removing_networks.insert(net.id.clone());
            st.without(async {
                match self.driver(&net.driver).await {
                    Ok(d) => {
                        if let Err(e) = d.delete_network(net).await {
                            warn!(network = %net.name, driver = %net.driver, error = %e, "plugin failed to delete the network; removing it anyway");
                        }
                    }
                    Err(e) => {
                        warn!(network = %net.name, driver = %net.driver, error = %e, "plugin unavailable; removing the network anyway");
                    }
                }
            })
            .await;
            st.removing_networks.remove(&net.id);
        }
        let mut ops = vec![del(format!("{}{}", keys::NETWORK, net.id))];
        for c in &net.ipam.configs {
            ops.push(del(format!("{}{}", keys::CURSOR, cursor_key(&c.subnet))));
        }
        self.commit(ops).await?;
        st.networks.remove(&net.id);
        if plugin_ipam {
            // Intent first: the record is gone before the plugin is asked to release.
            // The name stays taken until the releases are done, so that a create of
            // the same name cannot race them.
            st.pending_networks.insert(net.name.clone(), net.id.clone());
            st.without(self.release_network_ipam_remote(net)).await;
            if st.pending_networks.get(&net.name) == Some(&net.id) {
                st.pending_networks.remove(&net.name);
            }
        } else {
            self.release_network_ipam(st, net).await;
        }
        if let Err(e) = self.sync_firewall(st, false).await {
            warn!(network = %net.name, error = %e, "firewall elements of the removed network remain until the next update");
        }
        if let Some(d) = self.drivers.get(&net.driver)
            && let Err(e) = d.delete_network(net).await
        {
            // Intent is gone; reconciliation removes the leftover at next start.
            warn!(network = %net.name, error = %crate::error::chain(&e), "network removed from the store but its kernel objects remain");
        }
        info!(network = %net.name, "network removed");
        self.emit(
            "network",
            "destroy",
            &net.id,
            &[("name", net.name.clone()), ("type", net.driver.clone())],
        );
        Ok(())
    }

    /// Removes unused user networks; returns their names.
    pub async fn prune_networks(&self, f: &NetworkFilter) -> CtlResult<Vec<String>> {
        let mut st = self.lock_state().await;
        let victims: Vec<Network> = st
            .networks
            .values()
            .filter(|n| !n.predefined && st.network_endpoints(&n.id).is_empty() && f.matches(n, 0))
            .cloned()
            .collect();
        let mut names = Vec::new();
        for n in victims {
            // A plugin call of an earlier removal let go of the lock: look again.
            if !st.networks.contains_key(&n.id)
                || st.removing_networks.contains(&n.id)
                || st.busy_networks.contains_key(&n.id)
                || !st.network_endpoints(&n.id).is_empty()
            {
                continue;
            }
            self.remove_network_locked(&mut st, &n).await?;
            names.push(n.name);
        }
        names.sort();
        Ok(names)
    }

    /// Connects a container to a network (live if it runs).
    pub async fn connect(&self, net_key: &str, req: ConnectRequest) -> CtlResult<()> {
        self.extend_global([net_key]).await?;
        let (_ctr_lock, mut st, id) = self.lock_container(&req.container, Some(net_key)).await?;
        let net = st.find_network(net_key)?.clone();
        let ctr =
            st.containers.get(&id).cloned().ok_or_else(|| {
                CtlError::not_found(format!("No such container: {}", req.container))
            })?;
        check_attach(&st, &net, &ctr, &req.endpoint)?;
        st.check_not_removing(&net)?;
        if ctr.networks.contains_key(&net.id) {
            return Err(CtlError::forbidden(format!(
                "endpoint with name {} already exists in network {}",
                ctr.name, net.name
            )));
        }
        let mut updated = ctr.clone();
        updated
            .networks
            .insert(net.id.clone(), req.endpoint.clone());
        updated.network_order.push(net.id.clone());
        if ctr.is_running() {
            let sandbox = self.sandbox_path(&ctr);
            // Joining the gateway bridge itself: the leg there gives way first.
            let gave_way = self.leg_gives_way(&mut st, &ctr, &net, &sandbox).await?;
            if let Err(e) = self
                .attach_endpoint(&mut st, &updated, &net, &sandbox)
                .await
            {
                if gave_way && let Err(e) = self.ensure_gateway_leg(&mut st, &ctr, &sandbox).await {
                    warn!(container = %ctr.name, error = %e, "cannot give the container its gateway leg back");
                }
                return Err(e);
            }
            if let Err(e) = self.ensure_gateway_leg(&mut st, &updated, &sandbox).await {
                warn!(container = %updated.name, network = %net.name, error = %e, "cannot give the container its gateway leg");
            }
            self.write_container_files(&st, &updated)?;
        }
        self.commit(vec![put(
            format!("{}{}", keys::CONTAINER, updated.id),
            &updated,
        )?])
        .await?;
        st.containers.insert(updated.id.clone(), updated.clone());
        if updated.is_running() {
            if Self::uses_embedded_dns(&st, &updated) {
                self.dns_attach(&st, &updated);
            } else {
                self.dns_detach(&st, &updated);
            }
        }
        self.emit(
            "network",
            "connect",
            &net.id,
            &[
                ("container", updated.id.clone()),
                ("name", net.name.clone()),
            ],
        );
        Ok(())
    }

    /// Disconnects a container from a network.
    pub async fn disconnect(&self, net_key: &str, container: &str, _force: bool) -> CtlResult<()> {
        let (_ctr_lock, mut st, id) = self.lock_container(container, Some(net_key)).await?;
        let net = st.find_network(net_key)?.clone();
        let ctr = st
            .containers
            .get(&id)
            .cloned()
            .ok_or_else(|| CtlError::not_found(format!("No such container: {container}")))?;
        if !ctr.networks.contains_key(&net.id) {
            return Err(CtlError::invalid(format!(
                "container {} is not connected to network {}",
                ctr.id, net.name
            )));
        }
        if !st.caps(&net).has_sandbox_interfaces && ctr.is_running() {
            return Err(CtlError::invalid(format!(
                "container {} cannot be disconnected from the {} network while it runs",
                ctr.name, net.name
            )));
        }
        let mut updated = ctr.clone();
        updated.networks.remove(&net.id);
        updated.network_order.retain(|n| n != &net.id);
        if ctr.is_running() {
            let eps: Vec<Endpoint> = st
                .container_endpoints(&ctr.id)
                .into_iter()
                .filter(|e| e.network_id == net.id)
                .cloned()
                .collect();
            let sandbox = self.sandbox_path(&ctr);
            for ep in eps {
                let had_default = ep.default_route;
                self.detach_endpoint(&mut st, &ep, &sandbox).await?;
                if had_default {
                    self.move_default_route(&mut st, &updated, &sandbox).await;
                }
            }
            self.drop_gateway_leg(&mut st, &updated, &sandbox).await;
            // Left the gateway bridge (or the network that carried the default route)
            // while still on an overlay: the leg comes (back), as Docker's sbLeave does.
            if let Err(e) = self.ensure_gateway_leg(&mut st, &updated, &sandbox).await {
                warn!(container = %updated.name, network = %net.name, error = %e, "cannot give the container its gateway leg");
            }
            self.write_container_files(&st, &updated)?;
        }
        self.commit(vec![put(
            format!("{}{}", keys::CONTAINER, updated.id),
            &updated,
        )?])
        .await?;
        st.containers.insert(updated.id.clone(), updated.clone());
        if updated.is_running() {
            if Self::uses_embedded_dns(&st, &updated) {
                self.dns_attach(&st, &updated);
            } else {
                self.dns_detach(&st, &updated);
            }
        }
        self.emit(
            "network",
            "disconnect",
            &net.id,
            &[
                ("container", updated.id.clone()),
                ("name", net.name.clone()),
            ],
        );
        Ok(())
    }
}

/// Refuses a network whose kernel name (a bridge's name, a macvlan/ipvlan parent: what
/// its driver claims) another network holds.
fn check_kernel_names(st: &State, net: &Network) -> CtlResult<()> {
    let Some(driver) = st.driver_of(net) else {
        return Ok(());
    };
    let Some(claim) = driver.iface_claim(net) else {
        return Ok(());
    };
    let holder = st.networks.values().find(|n| {
        n.id != net.id
            && st
                .driver_of(n)
                .and_then(|d| d.iface_claim(n))
                .is_some_and(|c| c == claim)
    });
    match holder {
        Some(other) => Err(CtlError::conflict(driver.claim_conflict(net, &other.name))),
        None => Ok(()),
    }
}

/// Key of an IPAM cursor record.
pub(crate) fn cursor_key(subnet: &IpNet) -> String {
    subnet.to_string().replace('/', "_")
}

/// Checks that a container may attach to a network with these settings.
pub(crate) fn check_attach(
    st: &State,
    net: &Network,
    ctr: &Container,
    req: &EndpointRequest,
) -> CtlResult<()> {
    let special = |mode: &str| {
        matches!(mode, "host" | "none") || super::container_net::is_container_mode(mode)
    };
    if special(&ctr.network_mode) || !st.caps(net).has_sandbox_interfaces {
        return Err(CtlError::invalid(
            "container sharing network namespace with another container or host cannot be connected to any other network",
        ));
    }
    let is_default_bridge = net.is_default_bridge();
    if is_default_bridge && !req.aliases.is_empty() {
        return Err(CtlError::invalid(
            "network-scoped alias is supported only for containers in user defined networks",
        ));
    }
    for (want, v6) in [(req.ipv4, false), (req.ipv6, true)] {
        let Some(ip) = want else { continue };
        if is_default_bridge {
            return Err(CtlError::invalid(
                "user specified IP address is supported on user defined networks only",
            ));
        }
        if ip.is_ipv6() != v6 {
            return Err(CtlError::invalid(format!(
                "invalid {} address {ip}: wrong address family",
                if v6 { "IPv6" } else { "IPv4" }
            )));
        }
        if v6 && !net.enable_ipv6 {
            return Err(CtlError::invalid(format!(
                "invalid IPv6 address {ip}: network {} has no IPv6",
                net.name
            )));
        }
        let Some(pool) = State::pool_of(net, ip) else {
            return Err(CtlError::invalid(format!(
                "invalid address {ip}: it does not belong to any of network {}'s subnets ({})",
                net.name,
                net.ipam
                    .configs
                    .iter()
                    .map(|c| c.subnet.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        if ip == pool.network() || (ip.is_ipv4() && ip == pool.broadcast()) {
            return Err(CtlError::invalid(format!(
                "invalid address {ip}: it is the network or broadcast address of {pool}"
            )));
        }
        if net
            .ipam
            .configs
            .iter()
            .any(|c| c.gateway == Some(ip) || c.aux.values().any(|a| *a == ip))
        {
            return Err(CtlError::conflict(format!(
                "address {ip} is already in use in network {} (gateway or aux address)",
                net.name
            )));
        }
    }
    Ok(())
}
