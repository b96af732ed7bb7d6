//! `netloom swarm …` and `netloom node …`: Docker's swarm-mode commands, flags and
//! output, over `/swarm/*` and `/nodes/*`.

use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{Map, Value, json};

use crate::client::{Client, query, seg};
use crate::filters;
use crate::format::{ListFormat, outln, print_inspect, print_list, s};

/// Manage Swarm.
#[derive(Debug, Subcommand)]
pub enum SwarmCmd {
    /// Initialize a swarm
    Init(InitArgs),
    /// Join a swarm as a node and/or manager
    Join(JoinArgs),
    /// Manage join tokens
    #[command(name = "join-token")]
    JoinToken(JoinTokenArgs),
    /// Leave the swarm
    Leave(LeaveArgs),
    /// Update the swarm
    Update(UpdateArgs),
    /// Display and rotate the root CA
    Ca(CaArgs),
}

/// Options of the swarm spec shared by `init` and `update`.
#[derive(Debug, Args)]
pub struct SpecArgs {
    /// Validity period for node certificates (ns|us|ms|s|m|h)
    #[arg(long = "cert-expiry", value_name = "DURATION")]
    pub cert_expiry: Option<String>,
    /// Dispatcher heartbeat period (ns|us|ms|s|m|h)
    #[arg(long = "dispatcher-heartbeat", value_name = "DURATION")]
    pub dispatcher_heartbeat: Option<String>,
    /// Task history retention limit
    #[arg(long = "task-history-limit", value_name = "N")]
    pub task_history_limit: Option<i64>,
    /// Enable manager autolocking (not implemented: refused by netloomd)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub autolock: Option<bool>,
}

/// Arguments of `swarm init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Advertised address (format: "<ip|interface>[:port]")
    #[arg(long = "advertise-addr", value_name = "ADDR")]
    pub advertise_addr: Option<String>,
    /// Listen address (format: "<ip|interface>[:port]")
    #[arg(
        long = "listen-addr",
        default_value = "0.0.0.0:2377",
        value_name = "ADDR"
    )]
    pub listen_addr: String,
    /// Address or interface to use for data path traffic (format: "<ip|interface>")
    #[arg(long = "data-path-addr", value_name = "ADDR")]
    pub data_path_addr: Option<String>,
    /// Port number to use for data path traffic (1024 - 49151); default 4789
    #[arg(long = "data-path-port", value_name = "PORT")]
    pub data_path_port: Option<u32>,
    /// Default address pool in CIDR format (repeatable)
    #[arg(long = "default-addr-pool", value_name = "CIDR")]
    pub default_addr_pool: Vec<String>,
    /// Default address pool subnet mask length
    #[arg(long = "default-addr-pool-mask-length", value_name = "N")]
    pub default_addr_pool_mask_length: Option<u32>,
    /// Availability of the node ("active", "pause", "drain")
    #[arg(long, default_value = "active")]
    pub availability: String,
    /// Force create a new cluster from current state (not implemented: refused)
    #[arg(long = "force-new-cluster")]
    pub force_new_cluster: bool,
    /// Where the managers keep the cluster state: "embedded" (default: one manager),
    /// "etcd" (every manager runs an etcd member: high availability) or
    /// "etcd://HOST:PORT[,HOST:PORT...]" (an existing etcd cluster)
    #[arg(long = "cluster-store", value_name = "STORE")]
    pub cluster_store: Option<String>,
    #[command(flatten)]
    pub spec: SpecArgs,
}

/// Arguments of `swarm join`.
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// Token for entry into the swarm
    #[arg(long, required = true)]
    pub token: String,
    /// Advertised address (format: "<ip|interface>[:port]")
    #[arg(long = "advertise-addr", value_name = "ADDR")]
    pub advertise_addr: Option<String>,
    /// Listen address (format: "<ip|interface>[:port]")
    #[arg(
        long = "listen-addr",
        default_value = "0.0.0.0:2377",
        value_name = "ADDR"
    )]
    pub listen_addr: String,
    /// Address or interface to use for data path traffic (format: "<ip|interface>")
    #[arg(long = "data-path-addr", value_name = "ADDR")]
    pub data_path_addr: Option<String>,
    /// Availability of the node ("active", "pause", "drain")
    #[arg(long, default_value = "active")]
    pub availability: String,
    /// A manager's address, HOST[:PORT]
    #[arg(value_name = "HOST:PORT")]
    pub remote: String,
}

/// Arguments of `swarm join-token`.
#[derive(Debug, Args)]
pub struct JoinTokenArgs {
    /// Only display token
    #[arg(short, long)]
    pub quiet: bool,
    /// Rotate join token
    #[arg(long)]
    pub rotate: bool,
    /// worker or manager
    #[arg(value_name = "worker|manager")]
    pub role: String,
}

/// Arguments of `swarm leave`.
#[derive(Debug, Args)]
pub struct LeaveArgs {
    /// Force this node to leave the swarm, ignoring warnings
    #[arg(short, long)]
    pub force: bool,
}

/// Arguments of `swarm update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
}

/// Arguments of `swarm ca`.
#[derive(Debug, Args)]
pub struct CaArgs {
    /// Rotate the swarm CA - if no certificate or key are provided, new ones will be generated
    #[arg(long)]
    pub rotate: bool,
    /// Exit immediately instead of waiting for the root rotation to converge
    #[arg(short, long)]
    pub detach: bool,
    /// Suppress progress output
    #[arg(short, long)]
    pub quiet: bool,
}

fn nanos(flag: &str, s: &str) -> Result<u64> {
    match humantime::parse_duration(s) {
        Ok(d) => Ok(d.as_nanos() as u64),
        Err(_) => bail!(
            "invalid argument {s:?} for \"--{flag}\" flag: give a duration such as 2160h or 90m"
        ),
    }
}

fn apply_spec(spec: &mut Value, a: &SpecArgs) -> Result<()> {
    if let Some(e) = &a.cert_expiry {
        spec["CAConfig"]["NodeCertExpiry"] = json!(nanos("cert-expiry", e)?);
    }
    if let Some(h) = &a.dispatcher_heartbeat {
        spec["Dispatcher"]["HeartbeatPeriod"] = json!(nanos("dispatcher-heartbeat", h)?);
    }
    if let Some(n) = a.task_history_limit {
        spec["Orchestration"]["TaskHistoryRetentionLimit"] = json!(n);
    }
    if let Some(b) = a.autolock {
        spec["EncryptionConfig"]["AutoLockManagers"] = json!(b);
    }
    Ok(())
}

/// Runs a `swarm` subcommand.
pub async fn run(client: &Client, cmd: SwarmCmd) -> Result<i32> {
    match cmd {
        SwarmCmd::Init(a) => init(client, a).await,
        SwarmCmd::Join(a) => {
            let body = json!({
                "ListenAddr": a.listen_addr,
                "AdvertiseAddr": a.advertise_addr.unwrap_or_default(),
                "DataPathAddr": a.data_path_addr.unwrap_or_default(),
                "RemoteAddrs": [a.remote],
                "JoinToken": a.token,
                "Availability": a.availability,
            });
            client
                .call(Method::POST, "/swarm/join", Some(&body))
                .await?;
            let info: Value = client.get_json("/info").await?;
            let manager = info["Swarm"]["ControlAvailable"].as_bool() == Some(true);
            outln(&format!(
                "This node joined a swarm as a {}.",
                if manager { "manager" } else { "worker" }
            ));
            Ok(0)
        }
        SwarmCmd::JoinToken(a) => join_token(client, a).await,
        SwarmCmd::Leave(a) => {
            let q = if a.force { "?force=1" } else { "" };
            client
                .call(Method::POST, &format!("/swarm/leave{q}"), None)
                .await?;
            outln("Node left the swarm.");
            Ok(0)
        }
        SwarmCmd::Update(a) => {
            let sw: Value = client.get_json("/swarm").await?;
            let mut spec = sw["Spec"].clone();
            apply_spec(&mut spec, &a.spec)?;
            let v = sw["Version"]["Index"].as_u64().unwrap_or(0);
            client
                .call(
                    Method::POST,
                    &format!("/swarm/update?version={v}"),
                    Some(&spec),
                )
                .await?;
            outln("Swarm updated.");
            Ok(0)
        }
        SwarmCmd::Ca(a) => ca(client, a).await,
    }
}

async fn init(client: &Client, a: InitArgs) -> Result<i32> {
    let store = a.cluster_store.clone().unwrap_or_default();
    match store.as_str() {
        "" | "embedded" | "etcd" => {}
        url if url.starts_with("etcd://") => {}
        other => bail!(
            "invalid argument {other:?} for \"--cluster-store\" flag: use embedded, etcd or etcd://HOST:PORT[,HOST:PORT...]"
        ),
    }
    let mut spec = json!({});
    apply_spec(&mut spec, &a.spec)?;
    let body = json!({
        "ListenAddr": a.listen_addr,
        "AdvertiseAddr": a.advertise_addr.unwrap_or_default(),
        "DataPathAddr": a.data_path_addr.unwrap_or_default(),
        "DataPathPort": a.data_path_port.unwrap_or(0),
        "DefaultAddrPool": a.default_addr_pool,
        "SubnetSize": a.default_addr_pool_mask_length.unwrap_or(0),
        "ForceNewCluster": a.force_new_cluster,
        "Availability": a.availability,
        "AutoLockManagers": a.spec.autolock.unwrap_or(false),
        "Spec": spec,
        "ClusterStore": store,
    });
    let id: String = client
        .call_json(Method::POST, "/swarm/init", Some(&body))
        .await?;
    outln(&format!(
        "Swarm initialized: current node ({id}) is now a manager.\n"
    ));
    join_command(client, &id, "worker", false).await?;
    outln(
        "To add a manager to this swarm, run 'netloom swarm join-token manager' and follow the instructions.\n",
    );
    Ok(0)
}

async fn join_command(client: &Client, node_id: &str, role: &str, quiet: bool) -> Result<()> {
    let sw: Value = client.get_json("/swarm").await?;
    let key = if role == "manager" {
        "Manager"
    } else {
        "Worker"
    };
    let token = s(&sw["JoinTokens"], key).to_string();
    if quiet {
        outln(&token);
        return Ok(());
    }
    let node: Value = client.get_json(&format!("/nodes/{}", seg(node_id))).await?;
    let addr = s(&node["ManagerStatus"], "Addr");
    outln(&format!(
        "To add a {role} to this swarm, run the following command:\n\n    netloom swarm join --token {token} {addr}\n"
    ));
    Ok(())
}

async fn join_token(client: &Client, a: JoinTokenArgs) -> Result<i32> {
    if a.role != "worker" && a.role != "manager" {
        bail!("unknown role {}: use worker or manager", a.role);
    }
    if a.rotate {
        let sw: Value = client.get_json("/swarm").await?;
        let v = sw["Version"]["Index"].as_u64().unwrap_or(0);
        let flag = if a.role == "worker" {
            "rotateWorkerToken"
        } else {
            "rotateManagerToken"
        };
        client
            .call(
                Method::POST,
                &format!("/swarm/update?version={v}&{flag}=true"),
                Some(&sw["Spec"]),
            )
            .await?;
        if !a.quiet {
            outln(&format!("Successfully rotated {} join token.\n", a.role));
        }
    }
    let info: Value = client.get_json("/info").await?;
    let id = s(&info["Swarm"], "NodeID").to_string();
    join_command(client, &id, &a.role, a.quiet).await?;
    Ok(0)
}

async fn ca(client: &Client, a: CaArgs) -> Result<i32> {
    let mut sw: Value = client.get_json("/swarm").await?;
    if a.rotate {
        let mut spec = sw["Spec"].clone();
        let n = spec["CAConfig"]["ForceRotate"].as_u64().unwrap_or(0) + 1;
        spec["CAConfig"]["ForceRotate"] = json!(n);
        let v = sw["Version"]["Index"].as_u64().unwrap_or(0);
        client
            .call(
                Method::POST,
                &format!("/swarm/update?version={v}"),
                Some(&spec),
            )
            .await?;
        if a.detach {
            return Ok(0);
        }
        let until = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            sw = client.get_json("/swarm").await?;
            if sw["RootRotationInProgress"].as_bool() != Some(true) {
                break;
            }
            if std::time::Instant::now() > until {
                bail!(
                    "the root rotation has not finished after 2 minutes: a node that is up has not renewed its certificate (see netloom node ls)"
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    if !a.quiet {
        outln(s(&sw["TLSInfo"], "TrustRoot").trim_end());
    }
    Ok(0)
}

/// Manage Swarm nodes.
#[derive(Debug, Subcommand)]
pub enum NodeCmd {
    /// List nodes in the swarm
    #[command(visible_aliases = ["list"])]
    Ls(NodeLsArgs),
    /// Display detailed information on one or more nodes
    Inspect(NodeInspectArgs),
    /// Promote one or more nodes to manager in the swarm
    Promote(NodesArgs),
    /// Demote one or more nodes from manager in the swarm
    Demote(NodesArgs),
    /// Remove one or more nodes from the swarm
    #[command(visible_aliases = ["remove"])]
    Rm(NodeRmArgs),
    /// Update a node
    Update(NodeUpdateArgs),
}

/// Arguments of `node ls`.
#[derive(Debug, Args)]
pub struct NodeLsArgs {
    /// Only display IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter output based on conditions provided
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json', 'TEMPLATE')
    #[arg(long)]
    pub format: Option<String>,
}

/// Arguments of `node inspect`.
#[derive(Debug, Args)]
pub struct NodeInspectArgs {
    /// Print the information in a human friendly format
    #[arg(long)]
    pub pretty: bool,
    /// Format output using a custom template
    #[arg(short, long)]
    pub format: Option<String>,
    /// Nodes (ID, hostname or "self")
    #[arg(required = true)]
    pub nodes: Vec<String>,
}

/// Nodes to act on.
#[derive(Debug, Args)]
pub struct NodesArgs {
    /// Nodes (ID or hostname)
    #[arg(required = true)]
    pub nodes: Vec<String>,
}

/// Arguments of `node rm`.
#[derive(Debug, Args)]
pub struct NodeRmArgs {
    /// Force remove a node from the swarm
    #[arg(short, long)]
    pub force: bool,
    /// Nodes (ID or hostname)
    #[arg(required = true)]
    pub nodes: Vec<String>,
}

/// Arguments of `node update`.
#[derive(Debug, Args)]
pub struct NodeUpdateArgs {
    /// Availability of the node ("active", "pause", "drain")
    #[arg(long)]
    pub availability: Option<String>,
    /// Add or update a node label (key=value)
    #[arg(long = "label-add", value_name = "KEY=VALUE")]
    pub label_add: Vec<String>,
    /// Remove a node label if exists
    #[arg(long = "label-rm", value_name = "KEY")]
    pub label_rm: Vec<String>,
    /// Role of the node ("worker", "manager")
    #[arg(long)]
    pub role: Option<String>,
    /// The node (ID or hostname)
    pub node: String,
}

async fn self_id(client: &Client) -> Result<String> {
    let info: Value = client.get_json("/info").await?;
    Ok(s(&info["Swarm"], "NodeID").to_string())
}

async fn resolve(client: &Client, n: &str) -> Result<String> {
    if n == "self" {
        return self_id(client).await;
    }
    Ok(n.to_string())
}

fn title(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

const NODE_TABLE: &str = "{{.ID}} {{if .Self}}*{{else}} {{end}}\t{{.Hostname}}\t{{.Status}}\t{{.Availability}}\t{{.ManagerStatus}}\t{{.EngineVersion}}";
const NODE_HEADERS: &[(&str, &str)] = &[
    ("ID", "ID"),
    ("Self", ""),
    ("Hostname", "HOSTNAME"),
    ("Status", "STATUS"),
    ("Availability", "AVAILABILITY"),
    ("ManagerStatus", "MANAGER STATUS"),
    ("EngineVersion", "ENGINE VERSION"),
];

fn manager_status(n: &Value) -> String {
    let m = &n["ManagerStatus"];
    if m.is_null() {
        String::new()
    } else if m["Leader"].as_bool() == Some(true) {
        "Leader".into()
    } else {
        title(s(m, "Reachability"))
    }
}

/// Updates a node's spec with `f` (read, change, write at its version).
async fn update_node(client: &Client, id: &str, f: impl FnOnce(&mut Value)) -> Result<()> {
    let n: Value = client.get_json(&format!("/nodes/{}", seg(id))).await?;
    let mut spec = n["Spec"].clone();
    f(&mut spec);
    let v = n["Version"]["Index"].as_u64().unwrap_or(0);
    let real = s(&n, "ID").to_string();
    client
        .call(
            Method::POST,
            &format!("/nodes/{}/update?version={v}", seg(&real)),
            Some(&spec),
        )
        .await?;
    Ok(())
}

/// Runs a `node` subcommand.
pub async fn node(client: &Client, cmd: NodeCmd) -> Result<i32> {
    match cmd {
        NodeCmd::Ls(a) => {
            let mut q = Vec::new();
            if let Some(p) = filters::query_pair(&a.filter)? {
                q.push(p);
            }
            let mut list: Vec<Value> = client.get_json(&format!("/nodes{}", query(&q))).await?;
            let me = self_id(client).await.unwrap_or_default();
            list.sort_by(|x, y| {
                s(&x["Description"], "Hostname")
                    .cmp(s(&y["Description"], "Hostname"))
                    .then_with(|| s(x, "ID").cmp(s(y, "ID")))
            });
            let rows: Vec<Map<String, Value>> = list
                .iter()
                .map(|n| {
                    let mut r = Map::new();
                    r.insert("ID".into(), json!(s(n, "ID")));
                    r.insert("Self".into(), json!(s(n, "ID") == me));
                    r.insert("Hostname".into(), json!(s(&n["Description"], "Hostname")));
                    r.insert("Status".into(), json!(title(s(&n["Status"], "State"))));
                    r.insert(
                        "Availability".into(),
                        json!(title(s(&n["Spec"], "Availability"))),
                    );
                    r.insert("ManagerStatus".into(), json!(manager_status(n)));
                    r.insert(
                        "EngineVersion".into(),
                        json!(s(&n["Description"]["Engine"], "EngineVersion")),
                    );
                    r
                })
                .collect();
            let format = if a.quiet {
                ListFormat::parse(Some("{{.ID}}"), NODE_TABLE)?
            } else {
                ListFormat::parse(a.format.as_deref(), NODE_TABLE)?
            };
            print_list(&format, &rows, NODE_HEADERS)?;
            Ok(0)
        }
        NodeCmd::Inspect(a) => {
            let mut items = Vec::new();
            for n in &a.nodes {
                let id = resolve(client, n).await?;
                let v: Value = client.get_json(&format!("/nodes/{}", seg(&id))).await?;
                items.push(v);
            }
            if a.pretty {
                for (i, n) in items.iter().enumerate() {
                    if i > 0 {
                        outln("");
                    }
                    outln(&pretty(n));
                }
            } else {
                print_inspect(&items, a.format.as_deref())?;
            }
            Ok(0)
        }
        NodeCmd::Promote(a) => {
            for n in &a.nodes {
                update_node(client, n, |s| s["Role"] = json!("manager")).await?;
                outln(&format!("Node {n} promoted to a manager in the swarm."));
            }
            Ok(0)
        }
        NodeCmd::Demote(a) => {
            for n in &a.nodes {
                update_node(client, n, |s| s["Role"] = json!("worker")).await?;
                outln(&format!("Manager {n} demoted in the swarm."));
            }
            Ok(0)
        }
        NodeCmd::Rm(a) => {
            let mut failed = false;
            for n in &a.nodes {
                let q = if a.force { "?force=1" } else { "" };
                match client
                    .call(Method::DELETE, &format!("/nodes/{}{q}", seg(n)), None)
                    .await
                {
                    Ok(_) => outln(n),
                    Err(e) => {
                        eprintln!("{e:#}");
                        failed = true;
                    }
                }
            }
            Ok(i32::from(failed))
        }
        NodeCmd::Update(a) => {
            let mut adds = Vec::new();
            for l in &a.label_add {
                let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
                if k.is_empty() {
                    bail!("invalid label {l:?}: use KEY=VALUE");
                }
                adds.push((k.to_string(), v.to_string()));
            }
            update_node(client, &a.node, |spec| {
                if let Some(av) = &a.availability {
                    spec["Availability"] = json!(av);
                }
                if let Some(r) = &a.role {
                    spec["Role"] = json!(r);
                }
                if !spec["Labels"].is_object() {
                    spec["Labels"] = json!({});
                }
                for k in &a.label_rm {
                    if let Some(m) = spec["Labels"].as_object_mut() {
                        m.remove(k);
                    }
                }
                for (k, v) in &adds {
                    spec["Labels"][k] = json!(v);
                }
            })
            .await?;
            outln(&a.node);
            Ok(0)
        }
    }
}

fn pretty(n: &Value) -> String {
    let mut o = vec![
        format!("ID:\t\t\t{}", s(n, "ID")),
        format!("Hostname:\t\t{}", s(&n["Description"], "Hostname")),
        format!("Joined at:\t\t{}", s(n, "CreatedAt")),
        "Status:".into(),
        format!(" State:\t\t\t{}", title(s(&n["Status"], "State"))),
        format!(" Availability:\t\t{}", title(s(&n["Spec"], "Availability"))),
        format!(" Address:\t\t{}", s(&n["Status"], "Addr")),
    ];
    if !n["ManagerStatus"].is_null() {
        let m = &n["ManagerStatus"];
        o.push("Manager Status:".into());
        o.push(format!(" Address:\t\t{}", s(m, "Addr")));
        o.push(format!(" Raft Status:\t\t{}", title(s(m, "Reachability"))));
        o.push(format!(
            " Leader:\t\t{}",
            if m["Leader"].as_bool() == Some(true) {
                "Yes"
            } else {
                "No"
            }
        ));
    }
    if let Some(l) = n["Spec"]["Labels"].as_object().filter(|l| !l.is_empty()) {
        o.push("Labels:".into());
        for (k, v) in l {
            o.push(format!(" - {k}={}", v.as_str().unwrap_or("")));
        }
    }
    let d = &n["Description"];
    o.push("Platform:".into());
    o.push(format!(" Operating System:\t{}", s(&d["Platform"], "OS")));
    o.push(format!(
        " Architecture:\t\t{}",
        s(&d["Platform"], "Architecture")
    ));
    o.push("Engine Version:\t\t".to_string() + s(&d["Engine"], "EngineVersion"));
    o.push("TLS Info:".into());
    o.push(format!(
        " TrustRoot:\n{}",
        s(&d["TLSInfo"], "TrustRoot").trim_end()
    ));
    o.join("\n")
}

/// The swarm lines of `info`.
pub fn info_lines(sw: &Value) -> Vec<String> {
    let mut o = vec![format!(" Swarm: {}", s(sw, "LocalNodeState"))];
    if s(sw, "LocalNodeState") != "active" {
        return o;
    }
    o.push(format!("  NodeID: {}", s(sw, "NodeID")));
    let mgr = sw["ControlAvailable"].as_bool() == Some(true);
    o.push(format!("  Is Manager: {mgr}"));
    if mgr {
        o.push(format!("  ClusterID: {}", s(&sw["Cluster"], "ID")));
        o.push(format!(
            "  Managers: {}",
            sw["Managers"].as_u64().unwrap_or(0)
        ));
        o.push(format!("  Nodes: {}", sw["Nodes"].as_u64().unwrap_or(0)));
        if let Some(p) = sw["Cluster"]["DefaultAddrPool"].as_array() {
            o.push(
                "  Default Address Pool: ".to_string()
                    + &p.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(" "),
            );
        }
        o.push(format!("  SubnetSize: {}", sw["Cluster"]["SubnetSize"]));
        o.push(format!(
            "  Data Path Port: {}",
            sw["Cluster"]["DataPathPort"]
        ));
        o.push(
            "  Root Rotation In Progress: ".to_string()
                + &sw["Cluster"]["RootRotationInProgress"].to_string(),
        );
    }
    o.push(format!("  Node Address: {}", s(sw, "NodeAddr")));
    if let Some(ms) = sw["RemoteManagers"].as_array() {
        o.push("  Manager Addresses:".into());
        for m in ms {
            o.push(format!("   {}", s(m, "Addr")));
        }
    }
    if !s(sw, "Error").is_empty() {
        o.push(format!("  Error: {}", s(sw, "Error")));
    }
    o
}
