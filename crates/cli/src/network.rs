//! `netloom network …` commands.

use anyhow::{Result, anyhow, bail};
use clap::{Args, Subcommand};
use hyper::Method;
use ipnet::IpNet;
use serde_json::{Map, Value, json};

use crate::client::{Client, daemon_status, query, seg};
use crate::filters;
use crate::format::{
    ListFormat, confirm, go_time_rfc3339, labels_string, outln, print_inspect, print_list, s,
    short_id,
};

/// Manage networks.
#[derive(Debug, Subcommand)]
pub enum NetworkCmd {
    /// Create a network
    Create(CreateArgs),
    /// List networks
    #[command(visible_aliases = ["list"])]
    Ls(LsArgs),
    /// Display detailed information on one or more networks
    Inspect(InspectArgs),
    /// Connect a container to a network
    Connect(ConnectArgs),
    /// Disconnect a container from a network
    Disconnect(DisconnectArgs),
    /// Remove one or more networks
    #[command(visible_aliases = ["remove"])]
    Rm(RmArgs),
    /// Remove all unused networks
    Prune(PruneArgs),
}

/// Arguments of `network create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Driver to manage the Network (bridge, macvlan, ipvlan, or a remote plugin's name)
    #[arg(short = 'd', long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long)]
    pub subnet: Vec<String>,
    /// Allocate container ip from a sub-range
    #[arg(long = "ip-range")]
    pub ip_range: Vec<String>,
    /// IPv4 or IPv6 Gateway for the master subnet
    #[arg(long)]
    pub gateway: Vec<String>,
    /// Auxiliary IPv4 or IPv6 addresses used by Network driver (name=ip)
    #[arg(long = "aux-address", value_name = "NAME=IP")]
    pub aux_address: Vec<String>,
    /// Enable or disable IPv6 networking (--ipv6, --ipv6=false)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub ipv6: Option<bool>,
    /// Enable or disable IPv4 address assignment (--ipv4=false)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub ipv4: Option<bool>,
    /// Restrict external access to the network
    #[arg(long)]
    pub internal: bool,
    /// Enable manual container attachment
    #[arg(long)]
    pub attachable: bool,
    /// Create swarm routing-mesh network
    #[arg(long)]
    pub ingress: bool,
    /// Set metadata on a network (key=value)
    #[arg(long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Set driver specific options (key=value), e.g. parent=eth0, macvlan_mode=bridge,
    /// ipvlan_mode=l2, com.docker.network.bridge.name=br0
    #[arg(short = 'o', long = "opt", value_name = "KEY=VALUE")]
    pub opt: Vec<String>,
    /// IP Address Management Driver
    #[arg(long = "ipam-driver", default_value = "default")]
    pub ipam_driver: String,
    /// Set IPAM driver specific options (key=value)
    #[arg(long = "ipam-opt", value_name = "KEY=VALUE")]
    pub ipam_opt: Vec<String>,
    /// Control the network's scope
    #[arg(long)]
    pub scope: Option<String>,
    /// Create a configuration only network
    #[arg(long = "config-only")]
    pub config_only: bool,
    /// The network from which to copy the configuration
    #[arg(long = "config-from")]
    pub config_from: Option<String>,
    /// Network name
    #[arg(value_name = "NETWORK")]
    pub name: String,
}

/// Arguments of `network ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only display network IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Provide filter values (e.g. "driver=bridge")
    #[arg(short, long, value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Format output: "table", "json", "table TEMPLATE" or a TEMPLATE such as '{{.Name}}'
    #[arg(long)]
    pub format: Option<String>,
}

/// Arguments of `network inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format output using a template ('{{.Name}}', '{{json .Containers}}', "json")
    #[arg(short, long)]
    pub format: Option<String>,
    /// Verbose output for diagnostics
    #[arg(short, long)]
    pub verbose: bool,
    /// Network names or IDs
    #[arg(value_name = "NETWORK", required = true)]
    pub names: Vec<String>,
}

/// Arguments of `network connect`.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// IPv4 address (e.g., "172.30.100.104")
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address (e.g., "2001:db8::33")
    #[arg(long)]
    pub ip6: Option<String>,
    /// Add network-scoped alias for the container
    #[arg(long)]
    pub alias: Vec<String>,
    /// Add link to another container (name:alias)
    #[arg(long)]
    pub link: Vec<String>,
    /// Driver options for the network (key=value)
    #[arg(long = "driver-opt", value_name = "KEY=VALUE")]
    pub driver_opt: Vec<String>,
    /// Highest gw-priority provides the default gateway
    #[arg(long = "gw-priority", default_value_t = 0)]
    pub gw_priority: i64,
    /// Network name or ID
    #[arg(value_name = "NETWORK")]
    pub network: String,
    /// Container name or ID
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// Arguments of `network disconnect`.
#[derive(Debug, Args)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short, long)]
    pub force: bool,
    /// Network name or ID
    #[arg(value_name = "NETWORK")]
    pub network: String,
    /// Container name or ID
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// Arguments of `network rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Do not error if the network does not exist
    #[arg(short, long)]
    pub force: bool,
    /// Network names or IDs
    #[arg(value_name = "NETWORK", required = true)]
    pub names: Vec<String>,
}

/// Arguments of `network prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Provide filter values (e.g. "until=<timestamp>", "label=k=v")
    #[arg(long, value_name = "FILTER")]
    pub filter: Vec<String>,
}

/// Runs a network subcommand; returns the exit code.
pub async fn run(client: &Client, cmd: NetworkCmd) -> Result<i32> {
    match cmd {
        NetworkCmd::Create(a) => create(client, a).await,
        NetworkCmd::Ls(a) => ls(client, a).await,
        NetworkCmd::Inspect(a) => inspect(client, a).await,
        NetworkCmd::Connect(a) => connect(client, a).await,
        NetworkCmd::Disconnect(a) => disconnect(client, a).await,
        NetworkCmd::Rm(a) => rm(client, a).await,
        NetworkCmd::Prune(a) => prune(client, a).await,
    }
}

/// Parses `k=v` options into an ordered map (`k` alone → empty value).
pub fn kv_map(items: &[String]) -> Map<String, Value> {
    let mut m = Map::new();
    for it in items {
        let (k, v) = it.split_once('=').unwrap_or((it.as_str(), ""));
        m.insert(k.to_string(), Value::String(v.to_string()));
    }
    m
}

/// Parses `k=v` options where the value is required.
fn kv_required(items: &[String], what: &str) -> Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|it| match it.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(anyhow!(
                "invalid argument \"{it}\" for \"--{what}\" flag: bad format for {what}: {it}"
            )),
        })
        .collect()
}

/// docker's `subnetMatches`: does `subnet` contain the address in `data`?
fn subnet_matches(subnet: &str, data: &str) -> Result<bool> {
    let net: IpNet = subnet
        .parse()
        .map_err(|_| anyhow!("invalid subnet: invalid CIDR address: {subnet}"))?;
    let ip: std::net::IpAddr = if data.contains('/') {
        let n: IpNet = data
            .parse()
            .map_err(|_| anyhow!("invalid CIDR address: {data}"))?;
        n.addr()
    } else {
        match data.parse() {
            Ok(ip) => ip,
            Err(_) => return Ok(false),
        }
    };
    Ok(net.contains(&ip))
}

#[derive(Debug, Default, Clone)]
struct PoolCfg {
    subnet: String,
    ip_range: String,
    gateway: String,
    aux: Vec<(String, String)>,
}

/// docker's `createIPAMConfig`: builds the `IPAM.Config` list.
pub fn ipam_config(
    subnets: &[String],
    ranges: &[String],
    gateways: &[String],
    aux: &[(String, String)],
) -> Result<Vec<Value>> {
    if subnets.len() < ranges.len() || subnets.len() < gateways.len() {
        bail!("every ip-range or gateway must have a corresponding subnet");
    }
    let mut pools: Vec<PoolCfg> = Vec::new();
    for sn in subnets {
        for p in &pools {
            if subnet_matches(sn, &p.subnet)? || subnet_matches(&p.subnet, sn)? {
                bail!("multiple overlapping subnet configuration is not supported");
            }
        }
        pools.push(PoolCfg {
            subnet: sn.clone(),
            ..Default::default()
        });
    }
    for r in ranges {
        let mut matched = false;
        for p in pools.iter_mut() {
            if !subnet_matches(&p.subnet, r)? {
                continue;
            }
            if !p.ip_range.is_empty() {
                bail!(
                    "cannot configure multiple ranges ({r}, {}) on the same subnet ({})",
                    p.ip_range,
                    p.subnet
                );
            }
            p.ip_range = r.clone();
            matched = true;
        }
        if !matched {
            bail!("no matching subnet for range {r}");
        }
    }
    for g in gateways {
        let mut matched = false;
        for p in pools.iter_mut() {
            if !subnet_matches(&p.subnet, g)? {
                continue;
            }
            if !p.gateway.is_empty() {
                bail!(
                    "cannot configure multiple gateways ({g}, {}) for the same subnet ({})",
                    p.gateway,
                    p.subnet
                );
            }
            p.gateway = g.clone();
            matched = true;
        }
        if !matched {
            bail!("no matching subnet for gateway {g}");
        }
    }
    for (k, a) in aux {
        let mut matched = false;
        for p in pools.iter_mut() {
            if !subnet_matches(&p.subnet, a)? {
                continue;
            }
            p.aux.retain(|(kk, _)| kk != k);
            p.aux.push((k.clone(), a.clone()));
            matched = true;
        }
        if !matched {
            bail!("no matching subnet for aux-address {a}");
        }
    }
    Ok(pools
        .into_iter()
        .map(|p| {
            let mut m = Map::new();
            m.insert("Subnet".into(), Value::String(p.subnet));
            if !p.ip_range.is_empty() {
                m.insert("IPRange".into(), Value::String(p.ip_range));
            }
            if !p.gateway.is_empty() {
                m.insert("Gateway".into(), Value::String(p.gateway));
            }
            if !p.aux.is_empty() {
                let aux: Map<String, Value> = p
                    .aux
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect();
                m.insert("AuxiliaryAddresses".into(), Value::Object(aux));
            }
            Value::Object(m)
        })
        .collect())
}

/// Builds the `POST /networks/create` body exactly like the docker CLI.
pub fn create_body(a: &CreateArgs) -> Result<Value> {
    let aux = kv_required(&a.aux_address, "aux-address")?;
    let config = ipam_config(&a.subnet, &a.ip_range, &a.gateway, &aux)?;
    let mut body = Map::new();
    body.insert("Driver".into(), json!(a.driver));
    body.insert("Scope".into(), json!(a.scope.clone().unwrap_or_default()));
    if let Some(v4) = a.ipv4 {
        body.insert("EnableIPv4".into(), json!(v4));
    }
    if let Some(v6) = a.ipv6 {
        body.insert("EnableIPv6".into(), json!(v6));
    }
    body.insert(
        "IPAM".into(),
        json!({"Driver": a.ipam_driver, "Options": kv_map(&a.ipam_opt), "Config": config}),
    );
    body.insert("Internal".into(), json!(a.internal));
    body.insert("Attachable".into(), json!(a.attachable));
    body.insert("Ingress".into(), json!(a.ingress));
    body.insert("ConfigOnly".into(), json!(a.config_only));
    body.insert(
        "ConfigFrom".into(),
        match &a.config_from {
            Some(n) => json!({"Network": n}),
            None => Value::Null,
        },
    );
    body.insert("Options".into(), Value::Object(kv_map(&a.opt)));
    body.insert("Labels".into(), Value::Object(kv_map(&a.label)));
    body.insert("Name".into(), json!(a.name));
    Ok(Value::Object(body))
}

async fn create(client: &Client, a: CreateArgs) -> Result<i32> {
    let body = create_body(&a)?;
    let resp: Value = client
        .call_json(Method::POST, "/networks/create", Some(&body))
        .await?;
    outln(s(&resp, "Id"));
    Ok(0)
}

const LS_TABLE: &str = "{{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}";
const LS_HEADERS: &[(&str, &str)] = &[
    ("ID", "NETWORK ID"),
    ("Name", "NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
    ("IPv4", "IPV4"),
    ("IPv6", "IPV6"),
    ("Internal", "INTERNAL"),
    ("Labels", "LABELS"),
    ("CreatedAt", "CREATED AT"),
];

/// Display fields of one network list entry.
pub fn ls_row(n: &Value, no_trunc: bool) -> Map<String, Value> {
    let b = |k: &str| {
        Value::String(
            n.get(k)
                .and_then(Value::as_bool)
                .unwrap_or(false)
                .to_string(),
        )
    };
    let mut m = Map::new();
    m.insert("CreatedAt".into(), json!(go_time_rfc3339(s(n, "Created"))));
    m.insert("Driver".into(), json!(s(n, "Driver")));
    m.insert("ID".into(), json!(short_id(s(n, "Id"), no_trunc)));
    m.insert("IPv4".into(), b("EnableIPv4"));
    m.insert("IPv6".into(), b("EnableIPv6"));
    m.insert("Internal".into(), b("Internal"));
    m.insert("Labels".into(), json!(labels_string(n.get("Labels"))));
    m.insert("Name".into(), json!(s(n, "Name")));
    m.insert("Scope".into(), json!(s(n, "Scope")));
    m
}

async fn ls(client: &Client, a: LsArgs) -> Result<i32> {
    let mut q = Vec::new();
    if let Some(p) = filters::query_pair(&a.filter)? {
        q.push(p);
    }
    let format = if a.quiet {
        ListFormat::parse(Some("{{.ID}}"), LS_TABLE)?
    } else {
        ListFormat::parse(a.format.as_deref(), LS_TABLE)?
    };
    let list: Vec<Value> = client.get_json(&format!("/networks{}", query(&q))).await?;
    let mut list = list;
    list.sort_by(|x, y| natural_cmp(s(x, "Name"), s(y, "Name")));
    let rows: Vec<Map<String, Value>> = list.iter().map(|n| ls_row(n, a.no_trunc)).collect();
    print_list(&format, &rows, LS_HEADERS)?;
    Ok(0)
}

/// Natural ordering (digit runs compare numerically), like docker's sortorder.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < ab.len() && j < bb.len() {
        if ab[i].is_ascii_digit() && bb[j].is_ascii_digit() {
            let si = i;
            while i < ab.len() && ab[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < bb.len() && bb[j].is_ascii_digit() {
                j += 1;
            }
            let na = a[si..i].trim_start_matches('0');
            let nb = b[sj..j].trim_start_matches('0');
            let o = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if o != Ordering::Equal {
                return o;
            }
        } else {
            let o = ab[i].cmp(&bb[j]);
            if o != Ordering::Equal {
                return o;
            }
            i += 1;
            j += 1;
        }
    }
    (ab.len() - i).cmp(&(bb.len() - j))
}

async fn inspect(client: &Client, a: InspectArgs) -> Result<i32> {
    let mut items = Vec::new();
    let mut errors = Vec::new();
    for name in &a.names {
        let q = if a.verbose { "?verbose=true" } else { "" };
        match client
            .get_json::<Value>(&format!("/networks/{}{q}", seg(name)))
            .await
        {
            Ok(v) => items.push(v),
            Err(e) => {
                if e.downcast_ref::<crate::client::ConnectError>().is_some() {
                    return Err(e);
                }
                errors.push(e)
            }
        }
    }
    if !items.is_empty() || a.format.is_none() {
        print_inspect(&items, a.format.as_deref())?;
    }
    for e in &errors {
        eprintln!("{e:#}");
    }
    Ok(if errors.is_empty() { 0 } else { 1 })
}

/// Builds the `POST /networks/{id}/connect` body like the docker CLI.
pub fn connect_body(a: &ConnectArgs) -> Value {
    let mut ipam = Map::new();
    if let Some(ip) = &a.ip {
        ipam.insert("IPv4Address".into(), json!(ip));
    }
    if let Some(ip6) = &a.ip6 {
        ipam.insert("IPv6Address".into(), json!(ip6));
    }
    json!({
        "Container": a.container,
        "EndpointConfig": {
            "IPAMConfig": ipam,
            "Links": if a.link.is_empty() { Value::Null } else { json!(a.link) },
            "Aliases": a.alias,
            "MacAddress": "",
            "DriverOpts": kv_map(&a.driver_opt),
            "GwPriority": a.gw_priority,
            "NetworkID": "",
            "EndpointID": "",
            "Gateway": "",
            "IPAddress": "",
            "IPPrefixLen": 0,
            "IPv6Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "DNSNames": null
        }
    })
}

async fn connect(client: &Client, a: ConnectArgs) -> Result<i32> {
    let body = connect_body(&a);
    client
        .call(
            Method::POST,
            &format!("/networks/{}/connect", seg(&a.network)),
            Some(&body),
        )
        .await?;
    Ok(0)
}

async fn disconnect(client: &Client, a: DisconnectArgs) -> Result<i32> {
    let body = json!({"Container": a.container, "Force": a.force});
    client
        .call(
            Method::POST,
            &format!("/networks/{}/disconnect", seg(&a.network)),
            Some(&body),
        )
        .await?;
    Ok(0)
}

async fn rm(client: &Client, a: RmArgs) -> Result<i32> {
    let mut code = 0;
    for name in &a.names {
        match client
            .call(Method::DELETE, &format!("/networks/{}", seg(name)), None)
            .await
        {
            Ok(_) => outln(name),
            Err(e) => {
                if e.downcast_ref::<crate::client::ConnectError>().is_some() {
                    return Err(e);
                }
                if a.force && daemon_status(&e) == Some(404) {
                    continue;
                }
                eprintln!("{e:#}");
                code = 1;
            }
        }
    }
    Ok(code)
}

async fn prune(client: &Client, a: PruneArgs) -> Result<i32> {
    let mut q = Vec::new();
    if let Some(p) = filters::query_pair(&a.filter)? {
        q.push(p);
    }
    if !a.force
        && !confirm(
            "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue?",
        )
    {
        return Ok(0);
    }
    let resp: Value = client
        .call_json(Method::POST, &format!("/networks/prune{}", query(&q)), None)
        .await?;
    if let Some(Value::Array(names)) = resp.get("NetworksDeleted")
        && !names.is_empty()
    {
        outln("Deleted Networks:");
        for n in names {
            outln(n.as_str().unwrap_or_default());
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: CreateArgs,
    }

    fn body(args: &[&str]) -> Result<String> {
        let mut v = vec!["x"];
        v.extend_from_slice(args);
        let t = T::try_parse_from(v).map_err(|e| anyhow!("{e}"))?;
        Ok(create_body(&t.a)?.to_string())
    }

    #[test]
    fn create_default_body() {
        assert_eq!(
            body(&["localnet"]).expect("ok"),
            r#"{"Driver":"bridge","Scope":"","IPAM":{"Driver":"default","Options":{},"Config":[]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{},"Labels":{},"Name":"localnet"}"#
        );
    }

    #[test]
    fn create_full_body() {
        let b = body(&[
            "-d",
            "bridge",
            "--subnet",
            "10.77.0.0/16",
            "--ip-range",
            "10.77.1.0/24",
            "--gateway",
            "10.77.0.1",
            "--internal",
            "--attachable",
            "-o",
            "com.docker.network.bridge.name=br-test",
            "-o",
            "com.docker.network.driver.mtu=1400",
            "--ipv6",
            "--subnet",
            "fd00:77::/64",
            "--label",
            "env=test",
            "--label",
            "team=net",
            "net2",
        ])
        .expect("ok");
        assert_eq!(
            b,
            r#"{"Driver":"bridge","Scope":"","EnableIPv6":true,"IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"10.77.0.0/16","IPRange":"10.77.1.0/24","Gateway":"10.77.0.1"},{"Subnet":"fd00:77::/64"}]},"Internal":true,"Attachable":true,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{"com.docker.network.bridge.name":"br-test","com.docker.network.driver.mtu":"1400"},"Labels":{"env":"test","team":"net"},"Name":"net2"}"#
        );
    }

    #[test]
    fn create_aux_and_ipv4() {
        let b = body(&[
            "-d",
            "macvlan",
            "--ipam-driver",
            "mydrv",
            "--ipam-opt",
            "foo=bar",
            "--aux-address",
            "host1=10.9.0.5",
            "--subnet",
            "10.9.0.0/24",
            "--scope",
            "swarm",
            "--config-only",
            "--ipv4=false",
            "cfg1",
        ])
        .expect("ok");
        assert_eq!(
            b,
            r#"{"Driver":"macvlan","Scope":"swarm","EnableIPv4":false,"IPAM":{"Driver":"mydrv","Options":{"foo":"bar"},"Config":[{"Subnet":"10.9.0.0/24","AuxiliaryAddresses":{"host1":"10.9.0.5"}}]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":true,"ConfigFrom":null,"Options":{},"Labels":{},"Name":"cfg1"}"#
        );
    }

    #[test]
    fn create_errors() {
        let e = |args: &[&str]| body(args).expect_err("must fail").to_string();
        assert_eq!(
            e(&["--gateway", "10.0.0.1", "n"]),
            "every ip-range or gateway must have a corresponding subnet"
        );
        assert_eq!(
            e(&["--ip-range", "10.0.0.0/25", "n"]),
            "every ip-range or gateway must have a corresponding subnet"
        );
        assert_eq!(
            e(&["--subnet", "10.0.0.0/24", "--gateway", "10.1.0.1", "n"]),
            "no matching subnet for gateway 10.1.0.1"
        );
        assert_eq!(
            e(&["--subnet", "10.0.0.0/24", "--ip-range", "10.1.0.0/25", "n"]),
            "no matching subnet for range 10.1.0.0/25"
        );
        assert_eq!(
            e(&["--subnet", "10.0.0.0/16", "--subnet", "10.0.1.0/24", "n"]),
            "multiple overlapping subnet configuration is not supported"
        );
        assert_eq!(
            e(&["--subnet", "bogus", "--gateway", "10.0.0.1", "n"]),
            "invalid subnet: invalid CIDR address: bogus"
        );
        assert_eq!(
            e(&[
                "--subnet",
                "10.0.0.0/24",
                "--aux-address",
                "a=10.2.0.1",
                "n"
            ]),
            "no matching subnet for aux-address 10.2.0.1"
        );
        assert!(
            e(&["--subnet", "10.0.0.0/24", "--aux-address", "novalue", "n"]).contains("bad format")
        );
    }

    #[test]
    fn connect_body_shape() {
        #[derive(Parser)]
        struct C {
            #[command(flatten)]
            a: ConnectArgs,
        }
        let c = C::try_parse_from([
            "x",
            "--ip",
            "10.88.0.50",
            "--alias",
            "web",
            "--alias",
            "www",
            "othernet",
            "c1",
        ])
        .expect("ok");
        assert_eq!(
            connect_body(&c.a).to_string(),
            r#"{"Container":"c1","EndpointConfig":{"IPAMConfig":{"IPv4Address":"10.88.0.50"},"Links":null,"Aliases":["web","www"],"MacAddress":"","DriverOpts":{},"GwPriority":0,"NetworkID":"","EndpointID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"DNSNames":null}}"#
        );
    }

    #[test]
    fn ls_rows_and_sort() {
        let n = json!({"Name":"bridge","Id":"33234952e22d0123456789","Created":"2025-01-01T00:00:00Z","Scope":"local","Driver":"bridge","EnableIPv4":true,"EnableIPv6":false,"Internal":false,"Labels":{}});
        let row = ls_row(&n, false);
        let mut out = Map::new();
        for (k, v) in row {
            out.insert(k, v);
        }
        assert_eq!(
            Value::Object(out).to_string(),
            r#"{"CreatedAt":"2025-01-01 00:00:00 +0000 UTC","Driver":"bridge","ID":"33234952e22d","IPv4":"true","IPv6":"false","Internal":"false","Labels":"","Name":"bridge","Scope":"local"}"#
        );
        let mut names = vec!["net10", "net2", "bridge", "Host"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(names, vec!["Host", "bridge", "net2", "net10"]);
    }
}
