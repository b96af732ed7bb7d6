//! The remote network-driver protocol (`NetworkDriver.*`) behind the [`Driver`] trait.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;

use async_trait::async_trait;
use ipnet::IpNet;
use netloom_kernel::Netlink;
use netloom_model::network::parse_mac;
use netloom_model::ports::{Proto, parse_host_port, parse_port_key};
use netloom_model::{
    Capabilities, Driver, DriverError, Endpoint, JoinInfo, Network, PortBinding, SandboxInfo, Scope,
};
use serde_json::{Map, Value, json};

use super::{Client, PluginError};

/// Option key carrying the user's `-o k=v` driver options (Docker's `netlabel.GenericData`).
pub const GENERIC: &str = "com.docker.network.generic";
/// Option key of the exposed ports list (`[{"Proto":6,"Port":80}]`, libnetwork's
/// `netlabel.ExposedPorts`).
pub const EXPOSED_PORTS: &str = "com.docker.network.endpoint.exposedports";
/// Option key of the port mapping list (libnetwork's `netlabel.PortMap`).
pub const PORT_MAP: &str = "com.docker.network.portmap";
/// Option key of the container's DNS servers (libnetwork's `netlabel.DNSServers`).
pub const DNS_SERVERS: &str = "com.docker.network.endpoint.dnsservers";

/// The `Options` Docker sends with an endpoint's calls: the endpoint's generic options
/// (`CreateEndpoint`) and the sandbox's labels (`Join`, `ProgramExternalConnectivity`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct EndpointOptions {
    /// `CreateEndpoint` `Options`.
    pub endpoint: Map<String, Value>,
    /// `Join` / `ProgramExternalConnectivity` `Options`.
    pub sandbox: Map<String, Value>,
}

/// IANA protocol number of a protocol, as libnetwork's `types.Protocol`.
fn proto_number(p: Proto) -> u8 {
    match p {
        Proto::Tcp => 6,
        Proto::Udp => 17,
        Proto::Sctp => 132,
    }
}

/// The exposed-ports and port-mapping lists Docker builds for a container
/// (`buildPortsRelatedCreateEndpointOptions`): every exposed port (`80/tcp`), sorted, and
/// one mapping per host binding (host port range as asked, 0 for an ephemeral port; with
/// `-P` an unbound exposed port gets a mapping with no host side). Keys that do not parse
/// are skipped (they were validated when the container was created).
pub fn port_options(
    exposed: &[String],
    bindings: &BTreeMap<String, Vec<PortBinding>>,
    publish_all: bool,
) -> (Value, Value) {
    let mut ports: Vec<(u16, Proto, &str)> = exposed
        .iter()
        .map(String::as_str)
        .chain(bindings.keys().map(String::as_str))
        .filter_map(|k| parse_port_key(k).ok().map(|(n, p)| (n, p, k)))
        .collect();
    ports.sort_by_key(|(n, p, _)| (*n, proto_number(*p)));
    ports.dedup_by_key(|(n, p, _)| (*n, *p));
    let mut exp = Vec::new();
    let mut map = Vec::new();
    for (port, proto, key) in ports {
        let proto = proto_number(proto);
        exp.push(json!({ "Proto": proto, "Port": port }));
        let bound = bindings.get(key).map(Vec::as_slice).unwrap_or_default();
        for b in bound {
            let (start, end) = parse_host_port(&b.host_port)
                .ok()
                .flatten()
                .unwrap_or((0, 0));
            map.push(json!({
                "Proto": proto, "IP": "", "Port": port,
                "HostIP": b.host_ip, "HostPort": start, "HostPortEnd": end,
            }));
        }
        if publish_all && bound.is_empty() {
            map.push(json!({
                "Proto": proto, "IP": "", "Port": port,
                "HostIP": "", "HostPort": 0, "HostPortEnd": 0,
            }));
        }
    }
    (Value::Array(exp), Value::Array(map))
}

/// What the driver remembers about an endpoint between calls (lost on restart; only
/// used to hand the interface back to the plugin on leave).
#[derive(Debug, Default, Clone)]
struct EpState {
    /// MAC the plugin chose in `CreateEndpoint`.
    mac: Option<String>,
    /// The plugin's host-side name of the interface (`SrcName`).
    src_name: Option<String>,
    /// The interface's name in the sandbox (`DstPrefix<n>`).
    dst_name: Option<String>,
    /// Options of the endpoint's calls, set by the controller before `CreateEndpoint`.
    options: EndpointOptions,
}

/// A network driver served by a plugin.
pub struct RemoteDriver {
    name: &'static str,
    client: Client,
    caps: Capabilities,
    gw_alloc_checker: bool,
    nl: Netlink,
    eps: Mutex<HashMap<String, EpState>>,
}

fn kerr(op: String) -> impl FnOnce(netloom_kernel::KernelError) -> DriverError {
    move |e| DriverError::kernel(op, e)
}

fn remote(msg: String) -> DriverError {
    DriverError::Plugin(msg)
}

/// `IPv4Data`/`IPv6Data` entries of `CreateNetwork`: CIDR strings, the gateway with the
/// pool's prefix length (as libnetwork's `IPAMData.MarshalJSON`).
fn ipam_data(net: &Network, v6: bool) -> Vec<Value> {
    net.ipam
        .configs
        .iter()
        .filter(|c| c.subnet.addr().is_ipv6() == v6)
        .map(|c| {
            let with_len = |a: IpAddr| format!("{a}/{}", c.subnet.prefix_len());
            let mut m = Map::new();
            m.insert("AddressSpace".into(), json!("LocalDefault"));
            m.insert("Pool".into(), json!(c.subnet.to_string()));
            if let Some(g) = c.gateway {
                m.insert("Gateway".into(), json!(with_len(g)));
            }
            if !c.aux.is_empty() {
                let aux: Map<String, Value> = c
                    .aux
                    .iter()
                    .map(|(k, a)| (k.clone(), json!(with_len(*a))))
                    .collect();
                m.insert("AuxAddresses".into(), Value::Object(aux));
            }
            Value::Object(m)
        })
        .collect()
}

impl RemoteDriver {
    /// Registers the network-driver side of an activated plugin:
    /// `NetworkDriver.GetCapabilities` (a scope other than local/global is an error).
    pub async fn activate(name: &str, client: Client, nl: Netlink) -> Result<Self, PluginError> {
        let v = client.call("NetworkDriver.GetCapabilities", None).await?;
        let data_scope = match v["Scope"].as_str().unwrap_or_default() {
            "local" => Scope::Local,
            "global" => Scope::Global,
            s => {
                return Err(PluginError::Remote(format!(
                    "NetworkDriver.GetCapabilities: invalid capability: expecting 'local' or 'global', got {s:?}"
                )));
            }
        };
        // The registry keys drivers by `&'static str`; a plugin is activated once per
        // name for the daemon's lifetime, so leaking the name is bounded.
        let name: &'static str = Box::leak(name.to_string().into_boxed_str());
        Ok(RemoteDriver {
            name,
            client,
            caps: Capabilities {
                data_scope,
                ..Capabilities::plugin()
            },
            gw_alloc_checker: v["GwAllocChecker"].as_bool().unwrap_or(false),
            nl,
            eps: Mutex::new(HashMap::new()),
        })
    }

    /// The `Options` of `CreateNetwork` (and `GwAllocCheck`): libnetwork's network generic
    /// map (`-o` options, IPv4/IPv6 enabled, internal).
    pub fn network_options(
        generic: &BTreeMap<String, String>,
        enable_ipv4: bool,
        enable_ipv6: bool,
        internal: bool,
    ) -> Map<String, Value> {
        let mut opts = Map::new();
        opts.insert(GENERIC.into(), json!(generic));
        opts.insert("com.docker.network.enable_ipv4".into(), json!(enable_ipv4));
        opts.insert("com.docker.network.enable_ipv6".into(), json!(enable_ipv6));
        if internal {
            opts.insert("com.docker.network.internal".into(), json!(true));
        }
        opts
    }

    /// `NetworkDriver.GwAllocCheck` (moby ≥ 28), only for a plugin whose capabilities say
    /// `GwAllocChecker`, with `CreateNetwork`'s options: whether the network needs no
    /// IPv4 / IPv6 gateway address (`(SkipIPv4, SkipIPv6)`; `(false, false)` for other
    /// plugins).
    pub async fn gw_alloc_check(
        &self,
        options: &Map<String, Value>,
    ) -> Result<(bool, bool), PluginError> {
        if !self.gw_alloc_checker {
            return Ok((false, false));
        }
        let v = self
            .client
            .call(
                "NetworkDriver.GwAllocCheck",
                Some(&json!({ "Options": options })),
            )
            .await?;
        Ok((
            v["SkipIPv4"].as_bool().unwrap_or(false),
            v["SkipIPv6"].as_bool().unwrap_or(false),
        ))
    }

    /// Records the options sent with an endpoint's calls (before `create_endpoint`).
    pub fn set_options(&self, endpoint_id: &str, options: EndpointOptions) {
        self.set_ep_state(endpoint_id, |s| s.options = options);
    }

    /// `NetworkDriver.ProgramExternalConnectivity` for the sandbox's (new) gateway
    /// endpoint, with the sandbox options; a plugin without the method (404) is fine.
    pub async fn program_external_connectivity(
        &self,
        net: &Network,
        ep: &Endpoint,
        sandbox_options: &Map<String, Value>,
    ) -> Result<(), PluginError> {
        match self
            .client
            .call(
                "NetworkDriver.ProgramExternalConnectivity",
                Some(&json!({ "NetworkID": net.id, "EndpointID": ep.id, "Options": sandbox_options })),
            )
            .await
        {
            Ok(_) | Err(PluginError::MethodNotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `NetworkDriver.EndpointOperInfo`, made where Docker makes it (right after a
    /// successful join, to build `NetworkSettings.Ports`). Docker cannot use a remote
    /// driver's answer there (its JSON does not decode to libnetwork's port types), so the
    /// `Value` is only logged; a failure is logged and changes nothing.
    async fn endpoint_oper_info(&self, net: &Network, ep: &Endpoint) {
        match self
            .client
            .call(
                "NetworkDriver.EndpointOperInfo",
                Some(&json!({ "NetworkID": net.id, "EndpointID": ep.id })),
            )
            .await
        {
            Ok(v) => {
                tracing::debug!(network = %net.name, endpoint = %ep.ifname, value = %v["Value"], "EndpointOperInfo")
            }
            Err(e) => {
                tracing::warn!(network = %net.name, endpoint = %ep.ifname, error = %e, "EndpointOperInfo failed (ignored, as Docker does)")
            }
        }
    }

    fn ep_state(&self, id: &str) -> EpState {
        self.eps
            .lock()
            .map(|m| m.get(id).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    fn set_ep_state(&self, id: &str, f: impl FnOnce(&mut EpState)) {
        if let Ok(mut m) = self.eps.lock() {
            f(m.entry(id.to_string()).or_default());
        }
    }

    async fn ids_call(
        &self,
        method: &str,
        net: &Network,
        ep: &Endpoint,
    ) -> Result<(), PluginError> {
        self.client
            .call(
                method,
                Some(&json!({ "NetworkID": net.id, "EndpointID": ep.id })),
            )
            .await
            .map(|_| ())
    }

    /// Sets up the plugin's interface in the sandbox after `Join` answered.
    async fn plumb(
        &self,
        net: &Network,
        ep: &Endpoint,
        sb: &SandboxInfo,
        answer: &Value,
    ) -> Result<JoinInfo, DriverError> {
        let src = answer["InterfaceName"]["SrcName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let prefix = answer["InterfaceName"]["DstPrefix"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or("eth");
        if src.is_empty() {
            return Err(remote(
                "NetworkDriver.Join: the plugin answered no InterfaceName.SrcName".into(),
            ));
        }
        let index = ep.ifname.trim_start_matches(|c: char| !c.is_ascii_digit());
        let ifname = format!("{prefix}{index}");
        if ifname.len() > 15 {
            return Err(remote(format!(
                "NetworkDriver.Join: interface name {ifname:?} (DstPrefix {prefix:?}) is longer than 15 characters"
            )));
        }
        let parse_gw = |k: &str| -> Result<Option<IpAddr>, DriverError> {
            match answer[k].as_str().filter(|s| !s.is_empty()) {
                None => Ok(None),
                Some(s) => s.parse::<IpAddr>().map(Some).map_err(|_| {
                    remote(format!(
                        "NetworkDriver.Join: {k} {s:?} is not an IP address"
                    ))
                }),
            }
        };
        let gw4 = parse_gw("Gateway")?;
        let gw6 = parse_gw("GatewayIPv6")?;
        let ctx = format!(
            "interface {src} of endpoint {} on network {}",
            ep.ifname, net.name
        );
        self.nl
            .move_to_netns(&src, &sb.key, &ifname)
            .await
            .map_err(kerr(format!(
                "move {ctx} into sandbox {} as {ifname}",
                sb.key.display()
            )))?;
        self.set_ep_state(&ep.id, |s| {
            s.src_name = Some(src.clone());
            s.dst_name = Some(ifname.clone());
        });
        let mut routes = Vec::new();
        if let Some(rs) = answer["StaticRoutes"].as_array() {
            for r in rs {
                let dest = r["Destination"].as_str().unwrap_or_default();
                let dest: IpNet = dest.parse().map_err(|_| {
                    remote(format!(
                        "NetworkDriver.Join: static route destination {dest:?} is not a CIDR"
                    ))
                })?;
                let hop = match r["RouteType"].as_i64().unwrap_or(0) {
                    0 => {
                        let h = r["NextHop"].as_str().unwrap_or_default();
                        Some(h.parse::<IpAddr>().map_err(|_| {
                            remote(format!(
                                "NetworkDriver.Join: static route to {dest} has next hop {h:?}, not an IP address"
                            ))
                        })?)
                    }
                    _ => None,
                };
                routes.push((dest, hop));
            }
        }
        let mac = self
            .ep_state(&ep.id)
            .mac
            .or_else(|| (!ep.mac.is_empty()).then(|| ep.mac.clone()));
        let setup = crate::sandbox::Setup {
            ifname: &ifname,
            mac: mac.as_deref().and_then(parse_mac),
            routes,
            default: crate::sandbox::DefaultRoute::Gateways([gw4, gw6]),
        };
        let (inner, _) =
            crate::sandbox::configure(sb, ep, &ctx, setup, |op| Box::new(kerr(op))).await?;
        let got = inner.require_link(&ifname).await.ok();
        Ok(JoinInfo {
            ifname,
            mac: got.filter(|l| l.mac.len() == 6).map(|l| {
                l.mac
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":")
            }),
            gateway4: match gw4 {
                Some(IpAddr::V4(g)) => Some(g),
                _ => None,
            },
            gateway6: match gw6 {
                Some(IpAddr::V6(g)) => Some(g),
                _ => None,
            },
        })
    }

    /// Takes the interface out of the sandbox: back to the daemon's namespace under the
    /// plugin's `SrcName` (so that the plugin can delete it), or deleted when that name is
    /// unknown (after a daemon restart).
    async fn unplumb(&self, ep: &Endpoint, sb: &SandboxInfo) {
        if sb.key.as_os_str().is_empty() || !netloom_kernel::netns::is_netns(&sb.key) {
            return;
        }
        let Ok(inner) = Netlink::in_netns(&sb.key) else {
            return;
        };
        let st = self.ep_state(&ep.id);
        let dst = st.dst_name.unwrap_or_else(|| ep.ifname.clone());
        let res = match st.src_name {
            Some(src) => {
                inner
                    .move_to_netns(&dst, Path::new("/proc/self/ns/net"), &src)
                    .await
            }
            None => inner.delete_link(&dst).await,
        };
        if let Err(e) = res {
            tracing::debug!(endpoint = %ep.ifname, error = %e, "cannot take the interface out of the sandbox");
        }
    }
}

#[async_trait]
impl Driver for RemoteDriver {
    fn name(&self) -> &'static str {
        self.name
    }

    fn capabilities(&self) -> Capabilities {
        self.caps
    }

    fn validate(&self, net: &mut Network) -> Result<(), DriverError> {
        // Options are the plugin's to judge (it answers CreateNetwork).
        net.iface.clear();
        net.mtu = 0;
        Ok(())
    }

    async fn create_network(&self, net: &Network) -> Result<(), DriverError> {
        let opts =
            Self::network_options(&net.options, net.enable_ipv4, net.enable_ipv6, net.internal);
        self.client
            .call(
                "NetworkDriver.CreateNetwork",
                Some(&json!({
                    "NetworkID": net.id,
                    "Options": opts,
                    "IPv4Data": ipam_data(net, false),
                    "IPv6Data": ipam_data(net, true),
                })),
            )
            .await?;
        Ok(())
    }

    async fn delete_network(&self, net: &Network) -> Result<(), DriverError> {
        self.client
            .call(
                "NetworkDriver.DeleteNetwork",
                Some(&json!({ "NetworkID": net.id })),
            )
            .await?;
        Ok(())
    }

    async fn create_endpoint(&self, net: &Network, ep: &Endpoint) -> Result<(), DriverError> {
        let sent_addr = ep.ipv4.map(|a| a.to_string()).unwrap_or_default();
        let sent_addr6 = ep.ipv6.map(|a| a.to_string()).unwrap_or_default();
        let v = self
            .client
            .call(
                "NetworkDriver.CreateEndpoint",
                Some(&json!({
                    "NetworkID": net.id,
                    "EndpointID": ep.id,
                    "Interface": {
                        "Address": sent_addr,
                        "AddressIPv6": sent_addr6,
                        "MacAddress": ep.mac,
                    },
                    "Options": self.ep_state(&ep.id).options.endpoint,
                })),
            )
            .await
            .inspect_err(|_| {
                if let Ok(mut m) = self.eps.lock() {
                    m.remove(&ep.id);
                }
            })?;
        let iface = &v["Interface"];
        let field = |k: &str| {
            iface[k]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let mut problem = None;
        for (k, sent) in [("Address", &sent_addr), ("AddressIPv6", &sent_addr6)] {
            if let Some(got) = field(k)
                && &got != sent
            {
                problem = Some(format!(
                    "driver modified interface {k}: sent {sent:?}, the plugin answered {got:?} (netloom's IPAM assigns addresses; a driver may only add a MAC address)"
                ));
            }
        }
        if let Some(m) = field("MacAddress") {
            if !ep.mac.is_empty() && !ep.mac.eq_ignore_ascii_case(&m) {
                problem = Some(format!(
                    "driver modified interface MAC address: sent {:?}, the plugin answered {m:?}",
                    ep.mac
                ));
            } else if parse_mac(&m).is_none() {
                problem = Some(format!(
                    "NetworkDriver.CreateEndpoint: MacAddress {m:?} is not a MAC address"
                ));
            } else {
                self.set_ep_state(&ep.id, |s| s.mac = Some(m));
            }
        }
        if let Some(p) = problem {
            // As Docker (errorWithRollback): undo the endpoint at the plugin.
            if let Err(e) = self.ids_call("NetworkDriver.DeleteEndpoint", net, ep).await {
                tracing::warn!(error = %e, "rollback of a rejected endpoint failed");
            }
            if let Ok(mut m) = self.eps.lock() {
                m.remove(&ep.id);
            }
            return Err(remote(p));
        }
        Ok(())
    }

    async fn delete_endpoint(&self, net: &Network, ep: &Endpoint) -> Result<(), DriverError> {
        if let Ok(mut m) = self.eps.lock() {
            m.remove(&ep.id);
        }
        self.ids_call("NetworkDriver.DeleteEndpoint", net, ep)
            .await?;
        Ok(())
    }

    async fn join(
        &self,
        net: &Network,
        ep: &Endpoint,
        sb: &SandboxInfo,
    ) -> Result<JoinInfo, DriverError> {
        let answer = self
            .client
            .call(
                "NetworkDriver.Join",
                Some(&json!({
                    "NetworkID": net.id,
                    "EndpointID": ep.id,
                    "SandboxKey": sb.key,
                    "Options": self.ep_state(&ep.id).options.sandbox,
                })),
            )
            .await?;
        let mut res = self.plumb(net, ep, sb, &answer).await;
        // Docker programs external connectivity for the sandbox's gateway endpoint: the
        // one whose Join gave a gateway.
        let has_gw = res
            .as_ref()
            .is_ok_and(|j| j.gateway4.is_some() || j.gateway6.is_some());
        if has_gw && ep.default_route && !net.internal {
            let opts = self.ep_state(&ep.id).options.sandbox;
            if let Err(e) = self.program_external_connectivity(net, ep, &opts).await {
                res = Err(e.into());
            }
        }
        if res.is_ok() {
            self.endpoint_oper_info(net, ep).await;
        }
        if res.is_err() {
            // Undo the join: interface back to the plugin, then Leave (Docker's rollback).
            self.unplumb(ep, sb).await;
            if let Err(e) = self.ids_call("NetworkDriver.Leave", net, ep).await {
                tracing::warn!(error = %e, "rollback Leave failed");
            }
        }
        res
    }

    async fn leave(
        &self,
        net: &Network,
        ep: &Endpoint,
        sb: &SandboxInfo,
    ) -> Result<(), DriverError> {
        if ep.default_route && !net.internal {
            match self
                .ids_call("NetworkDriver.RevokeExternalConnectivity", net, ep)
                .await
            {
                Ok(()) | Err(PluginError::MethodNotFound { .. }) => {}
                Err(e) => {
                    tracing::warn!(network = %net.name, error = %e, "RevokeExternalConnectivity failed")
                }
            }
        }
        self.unplumb(ep, sb).await;
        self.ids_call("NetworkDriver.Leave", net, ep).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_options_follow_dockers_shapes() {
        let bindings: BTreeMap<String, Vec<PortBinding>> = [
            (
                "80/tcp".to_string(),
                vec![PortBinding {
                    host_ip: String::new(),
                    host_port: "8080".into(),
                }],
            ),
            (
                "53/udp".to_string(),
                vec![PortBinding {
                    host_ip: "127.0.0.1".into(),
                    host_port: "5300-5301".into(),
                }],
            ),
        ]
        .into();
        let exposed = vec!["80/tcp".to_string(), "9000/sctp".to_string()];
        let (exp, map) = port_options(&exposed, &bindings, true);
        assert_eq!(
            exp,
            json!([
                {"Proto": 17, "Port": 53},
                {"Proto": 6, "Port": 80},
                {"Proto": 132, "Port": 9000},
            ])
        );
        assert_eq!(
            map,
            json!([
                {"Proto": 17, "IP": "", "Port": 53, "HostIP": "127.0.0.1", "HostPort": 5300, "HostPortEnd": 5301},
                {"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": 8080, "HostPortEnd": 8080},
                {"Proto": 132, "IP": "", "Port": 9000, "HostIP": "", "HostPort": 0, "HostPortEnd": 0},
            ])
        );
        let (exp, map) = port_options(&[], &BTreeMap::new(), false);
        assert_eq!((exp, map), (json!([]), json!([])));
    }
}
