//! Docker's remote plugins (legacy "v1" plugins): network drivers and IPAM drivers that
//! run as separate processes and answer HTTP/JSON on a Unix socket (or TCP).
//!
//! Discovery is Docker's: `NAME.sock` or `NAME/NAME.sock`, else `NAME.spec` (one URL) or
//! `NAME.json` (`{"Name","Addr"}`), searched in the configured plugin directories
//! (default `/run/docker/plugins`, `/etc/docker/plugins`, `/usr/lib/docker/plugins`).
//! A plugin is activated (`/Plugin.Activate`) lazily, the first time a network names it,
//! and its capabilities are read once then.

mod client;
mod driver;
mod ipam;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use netloom_kernel::Netlink;
use tokio::sync::Mutex;

pub use client::{Addr, Client};
pub use driver::{
    DNS_SERVERS, EXPOSED_PORTS, EndpointOptions, GENERIC, PORT_MAP, RemoteDriver, port_options,
};
pub use ipam::{GATEWAY_LABEL, IpamCapabilities, REQUEST_ADDRESS_TYPE, RemoteIpam};

/// Docker's default plugin directories: sockets first, then spec files.
pub const DEFAULT_DIRS: [&str; 3] = [
    "/run/docker/plugins",
    "/etc/docker/plugins",
    "/usr/lib/docker/plugins",
];

/// Docker's plugin call timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors of plugin discovery, activation and calls.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// No socket or spec file for the name.
    #[error(
        "plugin {name:?} not found (looked for {name}.sock, {name}/{name}.sock, {name}.spec and {name}.json in {dirs}; set plugin-dirs in daemon.json or --plugin-dir to search elsewhere)"
    )]
    NotFound {
        /// The plugin name.
        name: String,
        /// The directories searched, comma-separated.
        dirs: String,
    },
    /// The plugin does not implement the protocol asked for.
    #[error("plugin {name:?} does not implement {what} (it implements: {implements})")]
    NotImplemented {
        /// The plugin name.
        name: String,
        /// `NetworkDriver` or `IpamDriver`.
        what: String,
        /// What `Plugin.Activate` listed.
        implements: String,
    },
    /// A spec file is unreadable or names an unsupported address.
    #[error("plugin {name:?}: {reason}")]
    BadSpec {
        /// The plugin name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The plugin answered with an error; the text is the plugin's, verbatim, prefixed as
    /// Docker does (`remote: <Err>` for an error in a 200 answer, `<Method>: <Err>` for a
    /// non-200 status).
    #[error("{0}")]
    Remote(String),
    /// The plugin answered 404: it does not implement this method.
    #[error("{method}: plugin {name:?} does not implement this method (404)")]
    MethodNotFound {
        /// The plugin name.
        name: String,
        /// The method.
        method: String,
    },
    /// The plugin did not answer (connection refused, timeout, bad HTTP or JSON).
    #[error("{0}")]
    Transport(String),
}

impl From<PluginError> for netloom_model::DriverError {
    fn from(e: PluginError) -> Self {
        netloom_model::DriverError::Plugin(e.to_string())
    }
}

/// Where to look for plugins and how long to wait for them.
#[derive(Debug, Clone)]
pub struct PluginConfig {
    /// Directories searched, in order (sockets in all of them first, then spec files).
    pub dirs: Vec<PathBuf>,
    /// Timeout of one plugin call (connection retries included).
    pub timeout: Duration,
}

impl Default for PluginConfig {
    fn default() -> Self {
        PluginConfig {
            dirs: DEFAULT_DIRS.iter().map(PathBuf::from).collect(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// One activated plugin.
pub struct Plugin {
    /// Its name.
    pub name: String,
    /// What `Plugin.Activate` listed.
    pub implements: Vec<String>,
    /// Its network driver, if it implements `NetworkDriver`.
    pub driver: Option<Arc<RemoteDriver>>,
    /// Its IPAM driver, if it implements `IpamDriver`.
    pub ipam: Option<Arc<RemoteIpam>>,
}

/// The plugins activated so far, by name (each behind its own once-cell, so that one
/// plugin's activation never waits for another's).
pub struct Plugins {
    cfg: PluginConfig,
    nl: Netlink,
    active: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Arc<Plugin>>>>>,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && !name.contains("..")
}

fn is_socket(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

/// Finds a plugin's address as Docker does.
pub fn discover(cfg: &PluginConfig, name: &str) -> Result<Addr, PluginError> {
    let not_found = || PluginError::NotFound {
        name: name.to_string(),
        dirs: cfg
            .dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    };
    if !valid_name(name) {
        return Err(not_found());
    }
    for d in &cfg.dirs {
        for p in [
            d.join(format!("{name}.sock")),
            d.join(name).join(format!("{name}.sock")),
        ] {
            if is_socket(&p) {
                return Ok(Addr::Unix(p));
            }
        }
    }
    let bad = |reason: String| PluginError::BadSpec {
        name: name.to_string(),
        reason,
    };
    for d in &cfg.dirs {
        let spec = d.join(format!("{name}.spec"));
        if let Ok(text) = std::fs::read_to_string(&spec) {
            let url = text.trim();
            return Addr::parse(url).map_err(|e| bad(format!("{}: {e}", spec.display())));
        }
        let json = d.join(format!("{name}.json"));
        if let Ok(text) = std::fs::read_to_string(&json) {
            let v: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| bad(format!("{}: invalid JSON: {e}", json.display())))?;
            let tls = &v["TLSConfig"];
            if ["CAFile", "CertFile", "KeyFile"]
                .iter()
                .any(|k| tls[k].as_str().is_some_and(|s| !s.is_empty()))
            {
                return Err(bad(format!(
                    "{}: TLS plugin connections are not supported by netloom; use a unix:// or plain tcp:// address",
                    json.display()
                )));
            }
            let addr = v["Addr"].as_str().unwrap_or_default();
            return Addr::parse(addr).map_err(|e| bad(format!("{}: {e}", json.display())));
        }
    }
    Err(not_found())
}

impl Plugins {
    /// A registry that activates plugins on first use.
    pub fn new(cfg: PluginConfig, nl: Netlink) -> Self {
        Plugins {
            cfg,
            nl,
            active: Mutex::new(HashMap::new()),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &PluginConfig {
        &self.cfg
    }

    /// The plugin `name`, discovered and activated now if it was not yet. Only callers
    /// of the same plugin wait for its activation: a plugin that hangs while activating
    /// holds up no other plugin (and a failed activation is retried by the next caller).
    pub async fn get(&self, name: &str) -> Result<Arc<Plugin>, PluginError> {
        let cell = {
            let mut active = self.active.lock().await;
            Arc::clone(active.entry(name.to_string()).or_default())
        };
        cell.get_or_try_init(|| self.activate(name))
            .await
            .map(Arc::clone)
    }

    async fn activate(&self, name: &str) -> Result<Arc<Plugin>, PluginError> {
        let addr = discover(&self.cfg, name)?;
        let client = Client::new(name, addr, self.cfg.timeout);
        let resp = client.call("Plugin.Activate", None).await?;
        let implements: Vec<String> = resp["Implements"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        tracing::info!(plugin = %name, implements = ?implements, "plugin activated");
        // As Docker: every protocol the plugin implements is registered at activation,
        // in the order `Implements` lists them.
        let mut driver = None;
        let mut ipam = None;
        for i in &implements {
            match i.as_str() {
                "NetworkDriver" if driver.is_none() => {
                    driver = Some(Arc::new(
                        RemoteDriver::activate(name, client.clone(), self.nl.clone()).await?,
                    ));
                }
                "IpamDriver" if ipam.is_none() => {
                    ipam = Some(Arc::new(RemoteIpam::activate(name, client.clone()).await));
                }
                _ => {}
            }
        }
        Ok(Arc::new(Plugin {
            name: name.to_string(),
            implements,
            driver,
            ipam,
        }))
    }

    fn not_impl(p: &Plugin, what: &str) -> PluginError {
        PluginError::NotImplemented {
            name: p.name.clone(),
            what: what.to_string(),
            implements: p.implements.join(", "),
        }
    }

    /// The network driver of plugin `name`.
    pub async fn driver(&self, name: &str) -> Result<Arc<RemoteDriver>, PluginError> {
        let p = self.get(name).await?;
        p.driver
            .clone()
            .ok_or_else(|| Self::not_impl(&p, "NetworkDriver"))
    }

    /// The IPAM driver of plugin `name`.
    pub async fn ipam(&self, name: &str) -> Result<Arc<RemoteIpam>, PluginError> {
        let p = self.get(name).await?;
        p.ipam
            .clone()
            .ok_or_else(|| Self::not_impl(&p, "IpamDriver"))
    }

    /// Names and protocols of the plugins activated so far.
    pub async fn list(&self) -> Vec<(String, Vec<String>)> {
        let mut v: Vec<(String, Vec<String>)> = self
            .active
            .lock()
            .await
            .values()
            .filter_map(|c| c.get())
            .map(|p| (p.name.clone(), p.implements.clone()))
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("weave"));
        assert!(valid_name("my-plugin.v2"));
        assert!(!valid_name("../x"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(""));
        assert!(!valid_name(".x"));
    }

    #[test]
    fn discovery_order() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let cfg = PluginConfig {
            dirs: vec![d.path().to_path_buf()],
            timeout: DEFAULT_TIMEOUT,
        };
        let e = discover(&cfg, "p").err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("plugin \"p\" not found")));
        std::fs::write(d.path().join("p.spec"), "tcp://127.0.0.1:9\n").unwrap_or_default();
        assert!(matches!(discover(&cfg, "p"), Ok(Addr::Tcp(a)) if a == "127.0.0.1:9"));
        std::fs::write(
            d.path().join("q.json"),
            r#"{"Name":"q","Addr":"unix:///x/q.sock"}"#,
        )
        .unwrap_or_default();
        assert!(matches!(discover(&cfg, "q"), Ok(Addr::Unix(p)) if p == Path::new("/x/q.sock")));
        std::fs::write(d.path().join("r.spec"), "http://x").unwrap_or_default();
        assert!(matches!(
            discover(&cfg, "r"),
            Err(PluginError::BadSpec { .. })
        ));
        let _l = std::os::unix::net::UnixListener::bind(d.path().join("p.sock"));
        assert!(matches!(discover(&cfg, "p"), Ok(Addr::Unix(_))));
    }
}
