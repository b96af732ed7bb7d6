//! `netloom volume …` commands (docker's `volume create|ls|inspect|rm|prune`).

use anyhow::{Result, anyhow};
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{Map, Value, json};

use crate::client::{Client, daemon_status, query, seg};
use crate::filters;
use crate::format::{
    ListFormat, confirm, human_size, labels_string, outln, print_inspect, print_list, s,
};
use crate::network::{kv_map, natural_cmp};

/// Manage volumes.
#[derive(Debug, Subcommand)]
pub enum VolumeCmd {
    /// Create a volume
    #[command(after_help = "Examples:
  netloom volume create data
  netloom volume create --label env=test cache
  netloom volume create -o type=tmpfs -o device=tmpfs -o o=size=64m scratch
  netloom volume create -o type=none -o device=/srv/share -o o=bind share")]
    Create(CreateArgs),
    /// List volumes
    #[command(visible_aliases = ["list"])]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes
    Inspect(InspectArgs),
    /// Remove one or more volumes
    #[command(visible_aliases = ["remove"])]
    Rm(RmArgs),
    /// Remove unused volumes (anonymous ones unless --all)
    Prune(PruneArgs),
}

/// Arguments of `volume create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Volume driver name
    #[arg(short = 'd', long, default_value = "local")]
    pub driver: String,
    /// Set metadata for a volume (key=value)
    #[arg(long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Set driver specific options: type=tmpfs|none|FSTYPE, device=WHAT, o=MOUNT-OPTIONS
    #[arg(short = 'o', long = "opt", value_name = "KEY=VALUE")]
    pub opt: Vec<String>,
    /// Volume name (a random one when left out)
    #[arg(value_name = "VOLUME")]
    pub name: Option<String>,
    /// Volume name, as a flag
    #[arg(long = "name", conflicts_with = "name")]
    pub name_flag: Option<String>,
}

/// Arguments of `volume ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only display volume names
    #[arg(short, long)]
    pub quiet: bool,
    /// Provide filter values (dangling=true, driver=local, label=KEY[=VALUE], name=PART)
    #[arg(short, long, value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Format output: "table", "json", "table TEMPLATE" or a TEMPLATE such as '{{.Name}}'
    #[arg(long)]
    pub format: Option<String>,
}

/// Arguments of `volume inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format output using a template ('{{.Mountpoint}}', '{{json .Labels}}', "json")
    #[arg(short, long)]
    pub format: Option<String>,
    /// Volume names
    #[arg(value_name = "VOLUME", required = true)]
    pub names: Vec<String>,
}

/// Arguments of `volume rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Do not fail on a volume that does not exist
    #[arg(short, long)]
    pub force: bool,
    /// Volume names
    #[arg(value_name = "VOLUME", required = true)]
    pub names: Vec<String>,
}

/// Arguments of `volume prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short, long)]
    pub all: bool,
    /// Provide filter values (label=KEY[=VALUE], label!=KEY[=VALUE])
    #[arg(long, value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

const LS_TABLE: &str = "{{.Driver}}\t{{.Name}}";
const LS_HEADERS: &[(&str, &str)] = &[
    ("Driver", "DRIVER"),
    ("Name", "VOLUME NAME"),
    ("Scope", "SCOPE"),
    ("Mountpoint", "MOUNTPOINT"),
    ("Labels", "LABELS"),
];

/// Runs a `volume` subcommand.
pub async fn run(client: &Client, cmd: VolumeCmd) -> Result<i32> {
    match cmd {
        VolumeCmd::Create(a) => create(client, a).await,
        VolumeCmd::Ls(a) => ls(client, a).await,
        VolumeCmd::Inspect(a) => inspect(client, a).await,
        VolumeCmd::Rm(a) => rm(client, a).await,
        VolumeCmd::Prune(a) => prune(client, a).await,
    }
}

/// The `POST /volumes/create` body of `volume create`.
fn create_body(a: &CreateArgs) -> Result<Value> {
    for o in &a.opt {
        if !o.contains('=') {
            return Err(anyhow!(
                "invalid argument \"{o}\" for \"-o, --opt\" flag: use KEY=VALUE"
            ));
        }
    }
    let name = a
        .name
        .clone()
        .or_else(|| a.name_flag.clone())
        .unwrap_or_default();
    Ok(json!({
        "Name": name,
        "Driver": a.driver,
        "DriverOpts": kv_map(&a.opt),
        "Labels": kv_map(&a.label),
    }))
}

async fn create(client: &Client, a: CreateArgs) -> Result<i32> {
    let v: Value = client
        .call_json(Method::POST, "/volumes/create", Some(&create_body(&a)?))
        .await?;
    outln(s(&v, "Name"));
    Ok(0)
}

fn ls_row(v: &Value) -> Map<String, Value> {
    let mut m = Map::new();
    for k in ["Driver", "Name", "Scope", "Mountpoint"] {
        m.insert(k.into(), json!(s(v, k)));
    }
    m.insert("Labels".into(), json!(labels_string(v.get("Labels"))));
    m
}

async fn ls(client: &Client, a: LsArgs) -> Result<i32> {
    let mut q = Vec::new();
    if let Some(p) = filters::query_pair(&a.filter)? {
        q.push(p);
    }
    let format = if a.quiet {
        ListFormat::parse(Some("{{.Name}}"), LS_TABLE)?
    } else {
        ListFormat::parse(a.format.as_deref(), LS_TABLE)?
    };
    let resp: Value = client.get_json(&format!("/volumes{}", query(&q))).await?;
    let mut list = match resp.get("Volumes") {
        Some(Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    };
    list.sort_by(|x, y| natural_cmp(s(x, "Name"), s(y, "Name")));
    let rows: Vec<Map<String, Value>> = list.iter().map(ls_row).collect();
    print_list(&format, &rows, LS_HEADERS)?;
    Ok(0)
}

async fn inspect(client: &Client, a: InspectArgs) -> Result<i32> {
    let mut items = Vec::new();
    let mut code = 0;
    for name in &a.names {
        match client
            .get_json::<Value>(&format!("/volumes/{}", seg(name)))
            .await
        {
            Ok(v) => items.push(v),
            Err(e) => {
                if e.downcast_ref::<crate::client::ConnectError>().is_some() {
                    return Err(e);
                }
                eprintln!("{e:#}");
                code = 1;
            }
        }
    }
    if !items.is_empty() || a.format.is_none() {
        print_inspect(&items, a.format.as_deref())?;
    }
    Ok(code)
}

async fn rm(client: &Client, a: RmArgs) -> Result<i32> {
    let mut code = 0;
    let q = if a.force { "?force=1" } else { "" };
    for name in &a.names {
        match client
            .call(Method::DELETE, &format!("/volumes/{}{q}", seg(name)), None)
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
    let mut f = a.filter.clone();
    if a.all {
        f.push("all=true".into());
    }
    let mut q = Vec::new();
    if let Some(p) = filters::query_pair(&f)? {
        q.push(p);
    }
    let what = if a.all {
        "all local volumes not used by at least one container"
    } else {
        "anonymous local volumes not used by at least one container"
    };
    if !a.force
        && !confirm(&format!(
            "WARNING! This will remove {what}.\nAre you sure you want to continue?"
        ))
    {
        return Ok(0);
    }
    let resp: Value = client
        .call_json(Method::POST, &format!("/volumes/prune{}", query(&q)), None)
        .await?;
    if let Some(Value::Array(names)) = resp.get("VolumesDeleted")
        && !names.is_empty()
    {
        outln("Deleted Volumes:");
        for n in names {
            outln(n.as_str().unwrap_or_default());
        }
        outln("");
    }
    let bytes = resp
        .get("SpaceReclaimed")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    outln(&format!("Total reclaimed space: {}", human_size(bytes)));
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

    #[test]
    fn create_bodies() {
        let t = T::try_parse_from([
            "x",
            "-o",
            "type=tmpfs",
            "-o",
            "device=tmpfs",
            "--label",
            "a=b",
            "v1",
        ])
        .map_err(|e| e.to_string());
        let b = t.map(|t| create_body(&t.a).unwrap_or_default());
        assert_eq!(
            b,
            Ok(
                json!({"Driver": "local", "DriverOpts": {"device": "tmpfs", "type": "tmpfs"},
                "Labels": {"a": "b"}, "Name": "v1"})
            )
        );
        let t = T::try_parse_from(["x", "-o", "bogus"]).map_err(|e| e.to_string());
        assert!(t.is_ok_and(|t| create_body(&t.a).is_err()));
    }
}
