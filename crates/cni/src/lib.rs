//! netloom-cni: a CNI 1.1 plugin. It attaches a container's network namespace to a
//! Linux bridge (veth pair) or to a parent link (macvlan), with host-local-compatible
//! IPAM run in-process. Standalone: it needs no netloomd.
//!
//! The binary reads the `CNI_*` environment and the network config on stdin, runs one
//! command and writes the result (or a CNI error object) on stdout.
#![warn(missing_docs)]

pub mod attach;
pub mod config;
pub mod error;
pub mod ipam;
pub mod masq;
pub mod result;

use serde_json::json;

use crate::config::{CniEnv, NetConf};
use crate::error::CniError;
use crate::ipam::HostLocal;

/// Spec versions this plugin speaks.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The plugin type this binary answers to in a config.
pub const PLUGIN_TYPE: &str = "netloom-cni";

/// What the binary prints and how it exits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Written on stdout.
    pub stdout: String,
    /// Written on stderr.
    pub stderr: String,
    /// Process exit code.
    pub code: i32,
}

/// Runs one invocation with the given environment and stdin.
pub fn run(mut env: CniEnv, stdin: &[u8]) -> Outcome {
    let Some(command) = env.command.clone() else {
        // As the reference plugins: no CNI_COMMAND prints what this is.
        return Outcome {
            stdout: String::new(),
            stderr: format!(
                "CNI netloom-cni plugin {}\nCNI protocol versions supported: {}\n",
                env!("CARGO_PKG_VERSION"),
                SUPPORTED_VERSIONS.join(", ")
            ),
            code: 0,
        };
    };
    // The version to write in an error object: the config's, if it can be read.
    let version = serde_json::from_slice::<serde_json::Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion")?.as_str().map(String::from))
        .filter(|v| SUPPORTED_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| "1.1.0".into());
    let res = env
        .parse_args()
        .and_then(|()| dispatch(&command, &env, stdin));
    match res {
        Ok(stdout) => Outcome {
            stdout,
            stderr: String::new(),
            code: 0,
        },
        Err(e) => {
            tracing::debug!(error = %e, "command failed");
            let mut obj = json!({"cniVersion": version, "code": e.code(), "msg": e.to_string()});
            if let Some(d) = e.details() {
                obj["details"] = json!(d);
            }
            Outcome {
                stdout: format!("{obj}\n"),
                stderr: String::new(),
                code: 1,
            }
        }
    }
}

fn dispatch(command: &str, env: &CniEnv, stdin: &[u8]) -> Result<String, CniError> {
    if command == "VERSION" {
        let v = serde_json::from_slice::<serde_json::Value>(stdin)
            .ok()
            .and_then(|v| v.get("cniVersion")?.as_str().map(String::from))
            .unwrap_or_else(|| "1.1.0".into());
        return Ok(format!(
            "{}\n",
            json!({"cniVersion": v, "supportedVersions": SUPPORTED_VERSIONS})
        ));
    }
    if !["ADD", "DEL", "CHECK", "GC", "STATUS"].contains(&command) {
        return Err(CniError::InvalidEnv(format!(
            "unknown CNI_COMMAND: {command}: use ADD, DEL, CHECK, GC, STATUS or VERSION"
        )));
    }
    // Check the environment before reading the config, as the reference skeleton does.
    match command {
        "ADD" | "CHECK" => {
            env.container_id()?;
            env.netns()?;
            env.ifname()?;
        }
        "DEL" => {
            env.container_id()?;
            env.ifname()?;
        }
        _ => {}
    }
    tracing::debug!(command, "start");
    let conf = NetConf::parse(stdin)?;
    if !conf.kind.is_empty() && conf.kind != PLUGIN_TYPE {
        return Err(CniError::InvalidConfig(format!(
            "config type is {:?}, this plugin is {PLUGIN_TYPE:?}",
            conf.kind
        )));
    }
    if matches!(command, "GC" | "STATUS") && conf.cni_version != "1.1.0" {
        return Err(CniError::IncompatibleVersion {
            requested: format!("{} (CNI_COMMAND={command} needs 1.1.0)", conf.cni_version),
        });
    }
    if command == "DEL" && !conf.sync_delete {
        // No netlink socket needed: the addresses are files, the link delete is detached.
        attach::del_ipam(&conf, env)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|source| CniError::Io {
                op: "start runtime",
                path: String::new(),
                source,
            })?;
        return rt.block_on(attach::del(&conf, env)).map(|()| String::new());
    }
    // ADD and CHECK work inside the container's namespace: open that socket now, on
    // this thread, before the runtime exists (no helper thread to start and join).
    let csock = match command {
        "ADD" | "CHECK" => {
            let ns_ino = || {
                use std::os::unix::fs::MetadataExt;
                std::fs::metadata("/proc/thread-self/ns/net")
                    .map(|m| m.ino())
                    .ok()
            };
            let before = ns_ino();
            let sock =
                netloom_kernel::podlink::netlink_socket_in(std::path::Path::new(env.netns()?));
            if ns_ino() != before {
                // Stranded in the container's namespace: do nothing more.
                return Err(CniError::Kernel {
                    msg: "could not return to the runtime's network namespace".into(),
                    source: sock.err().unwrap_or(netloom_kernel::KernelError::Namespace(
                        "network namespace changed".into(),
                    )),
                });
            }
            Some(sock)
        }
        _ => None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|source| CniError::Io {
            op: "start runtime",
            path: String::new(),
            source,
        })?;
    tracing::debug!("runtime ready");
    rt.block_on(async {
        match command {
            "ADD" => attach::add(&conf, env, csock).await.map(|r| {
                let v = serde_json::to_string(&r).unwrap_or_default();
                format!("{v}\n")
            }),
            "DEL" => {
                attach::del_ipam(&conf, env)?;
                attach::del(&conf, env).await.map(|()| String::new())
            }
            "CHECK" => attach::check(&conf, env, csock)
                .await
                .map(|()| String::new()),
            "GC" => gc(&conf).map(|()| String::new()),
            _ => attach::status(&conf).await.map(|()| String::new()),
        }
    })
}

/// GC: releases every address of this network not held by a valid attachment.
fn gc(conf: &NetConf) -> Result<(), CniError> {
    let Some(ipam) = &conf.ipam else {
        return Ok(());
    };
    let store = HostLocal::from_conf(conf.net_name()?, ipam, None)?;
    let valid: Vec<(String, String)> = conf
        .valid_attachments
        .iter()
        .map(|a| (a.container_id.clone(), a.ifname.clone()))
        .collect();
    let bridge = attach::bridge_name(conf);
    let freed = store.gc(&valid, |stale| {
        if conf.ip_masq
            && let Err(e) = masq::remove(&bridge, stale)
        {
            tracing::warn!(error = %e, "gc could not remove masquerading");
        }
    })?;
    tracing::debug!(?freed, "gc released addresses");
    Ok(())
}

/// Sets up stderr logging when `NETLOOM_CNI_LOG` is set (e.g. `debug`).
pub fn init_logging() {
    if std::env::var_os("NETLOOM_CNI_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("NETLOOM_CNI_LOG"))
            .try_init();
    }
}
