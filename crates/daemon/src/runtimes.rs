//! OCI runtimes and cgroup settings, as dockerd has them: `default-runtime`,
//! `runtimes` (`{"name": {"path": "...", "runtimeArgs": [...]}}`), `cgroup-parent`
//! and `exec-opts` (`native.cgroupdriver=cgroupfs|systemd`) in daemon.json.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The runtime every daemon has, as in dockerd.
pub const BUILTIN: &str = "runc";

/// One `runtimes` entry of daemon.json.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuntimeEntry {
    /// The binary: absolute, or a name looked up in `PATH`.
    pub path: String,
    /// Extra global arguments.
    #[serde(default)]
    pub runtime_args: Vec<String>,
}

/// How containers' cgroups are managed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupDriver {
    /// Directories under the cgroup file systems (`/sys/fs/cgroup`).
    Cgroupfs,
    /// systemd scopes (`--systemd-cgroup`).
    Systemd,
}

/// The runtime settings in effect.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// The runtime of containers that name none.
    pub default: String,
    /// Every runtime by name, `runc` included.
    pub runtimes: BTreeMap<String, RuntimeEntry>,
    /// Parent of the containers' cgroups (`/netloom`, or a slice with systemd).
    pub cgroup_parent: String,
    /// The cgroup driver.
    pub cgroup_driver: CgroupDriver,
}

/// Looks a binary up in `PATH` (and the sbin directories a root shell has).
pub fn find_binary(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"]
                .iter()
                .map(PathBuf::from),
        )
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Whether systemd runs this host (what dockerd checks before it picks systemd).
fn systemd_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// Whether `/sys/fs/cgroup` is a unified cgroup v2 hierarchy.
pub fn cgroup_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

impl RuntimeSettings {
    /// Builds the settings from daemon.json's keys and the flags (flags win).
    pub fn load(
        default: Option<String>,
        runtimes: Option<BTreeMap<String, RuntimeEntry>>,
        cgroup_parent: Option<String>,
        exec_opts: Option<Vec<String>>,
    ) -> Result<RuntimeSettings, String> {
        let mut all = BTreeMap::new();
        all.insert(
            BUILTIN.to_string(),
            RuntimeEntry {
                path: BUILTIN.to_string(),
                runtime_args: Vec::new(),
            },
        );
        for (name, e) in runtimes.unwrap_or_default() {
            if name == BUILTIN {
                return Err(format!(
                    "invalid runtimes: runtime name '{BUILTIN}' is reserved: give yours another name"
                ));
            }
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                return Err(format!(
                    "invalid runtimes: runtime name {name:?} may only contain [a-zA-Z0-9._-]"
                ));
            }
            if e.path.is_empty() {
                return Err(format!("invalid runtimes: runtime {name} needs a path"));
            }
            all.insert(name, e);
        }
        let default = default.unwrap_or_else(|| BUILTIN.to_string());
        if !all.contains_key(&default) {
            return Err(format!(
                "invalid default-runtime {default:?}: it is not in runtimes (known: {})",
                all.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        let mut driver = if systemd_running() && cgroup_v2() {
            CgroupDriver::Systemd
        } else {
            CgroupDriver::Cgroupfs
        };
        for o in exec_opts.unwrap_or_default() {
            let (k, v) = o
                .split_once('=')
                .ok_or_else(|| format!("invalid exec-opts {o:?}: use key=value"))?;
            match (k.trim(), v.trim()) {
                ("native.cgroupdriver", "cgroupfs") => driver = CgroupDriver::Cgroupfs,
                ("native.cgroupdriver", "systemd") => driver = CgroupDriver::Systemd,
                ("native.cgroupdriver", v) => {
                    return Err(format!(
                        "invalid exec-opts native.cgroupdriver={v}: use cgroupfs or systemd"
                    ));
                }
                (k, _) => {
                    return Err(format!(
                        "invalid exec-opts {k}: netloomd knows native.cgroupdriver only"
                    ));
                }
            }
        }
        let cgroup_parent = match (cgroup_parent, driver) {
            (Some(p), CgroupDriver::Systemd) if !p.ends_with(".slice") => {
                return Err(format!(
                    "invalid cgroup-parent {p:?}: with the systemd cgroup driver it must be a slice (name.slice)"
                ));
            }
            (Some(p), CgroupDriver::Cgroupfs) if p.contains("..") || p.is_empty() => {
                return Err(format!(
                    "invalid cgroup-parent {p:?}: give a cgroup path such as /netloom"
                ));
            }
            (Some(p), _) => p,
            (None, CgroupDriver::Systemd) => "system.slice".to_string(),
            (None, CgroupDriver::Cgroupfs) => "/netloom".to_string(),
        };
        Ok(RuntimeSettings {
            default,
            runtimes: all,
            cgroup_parent,
            cgroup_driver: driver,
        })
    }

    /// The runtime named `name` ("" = the default) with its state dir under
    /// `exec_root`; Docker's message for a name it does not know.
    pub fn resolve(
        &self,
        name: &str,
        exec_root: &Path,
    ) -> Result<netloom_runtime::runc::OciRuntime, String> {
        let name = if name.is_empty() { &self.default } else { name };
        let Some(e) = self.runtimes.get(name) else {
            return Err(format!("unknown or invalid runtime name: {name}"));
        };
        let path = find_binary(&e.path).ok_or_else(|| {
            if name == BUILTIN {
                "the OCI runtime runc is not installed: install it (apt-get install runc) or set default-runtime in daemon.json".to_string()
            } else {
                format!(
                    "the OCI runtime {name} ({}) is not installed: install it or fix its path in daemon.json",
                    e.path
                )
            }
        })?;
        Ok(netloom_runtime::runc::OciRuntime {
            name: name.to_string(),
            path,
            args: e.runtime_args.clone(),
            root: exec_root.join(format!("runtime-{name}")),
            systemd_cgroup: self.cgroup_driver == CgroupDriver::Systemd,
            hide_mounts: Some(exec_root.join("netns")),
        })
    }

    /// Whether `name` ("" = the default) is a configured runtime.
    pub fn knows(&self, name: &str) -> bool {
        name.is_empty() || self.runtimes.contains_key(name)
    }

    /// The `cgroupsPath` of container `id`.
    pub fn cgroups_path(&self, id: &str) -> String {
        match self.cgroup_driver {
            CgroupDriver::Systemd => format!("{}:netloom:{id}", self.cgroup_parent),
            CgroupDriver::Cgroupfs => {
                format!("{}/{id}", self.cgroup_parent.trim_end_matches('/'))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors() {
        let s = RuntimeSettings::load(None, None, None, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.default, "runc");
        assert!(s.knows("") && s.knows("runc") && !s.knows("crun"));
        let exec = Path::new("/run/x");
        assert_eq!(
            s.resolve("kata", exec).err().as_deref(),
            Some("unknown or invalid runtime name: kata")
        );
        let mut rt = BTreeMap::new();
        rt.insert(
            "crun".to_string(),
            RuntimeEntry {
                path: "/usr/bin/crun".into(),
                runtime_args: vec!["--debug".into()],
            },
        );
        let s = RuntimeSettings::load(
            Some("crun".into()),
            Some(rt.clone()),
            Some("/nl".into()),
            Some(vec!["native.cgroupdriver=cgroupfs".into()]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.default, "crun");
        assert_eq!(s.cgroups_path("abc"), "/nl/abc");
        assert!(
            RuntimeSettings::load(Some("kata".into()), None, None, None)
                .is_err_and(|e| e.contains("invalid default-runtime"))
        );
        let mut bad = rt.clone();
        bad.insert("runc".into(), rt["crun"].clone());
        assert!(
            RuntimeSettings::load(None, Some(bad), None, None)
                .is_err_and(|e| e.contains("reserved"))
        );
        assert!(
            RuntimeSettings::load(None, None, None, Some(vec!["native.cgroupdriver=x".into()]))
                .is_err()
        );
        let sd = RuntimeSettings::load(
            None,
            None,
            None,
            Some(vec!["native.cgroupdriver=systemd".into()]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sd.cgroups_path("abc"), "system.slice:netloom:abc");
    }
}
