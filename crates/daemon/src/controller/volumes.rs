//! Volumes with Docker's `local` driver: a directory per volume under
//! `<data-root>/volumes/<name>/_data`, on which the driver's `type` / `device` / `o`
//! options (tmpfs, a bind of a host path, a device) are mounted while a container uses
//! it (volume_mounts.rs). Records live in the store (`volume/<name>`) and in the state
//! under the state lock, which also serialises the checks "name free", "not in use".
//!
//! A container names its volumes at create (`-v NAME:/path`, `--mount type=volume`,
//! anonymous `-v /path` and `Config.Volumes`); a named volume that does not exist yet
//! is created then, as Docker does. The container keeps the resolved list
//! ([`netloom_model::VolumeMount`]); a volume is in use while any container, running
//! or not, lists it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use netloom_model::{Container, HostOptions, Volume, VolumeMount};
use netloom_runtime::options::volumes::{
    VolumeMountFields, VolumeRequest, check_driver, check_local_options, check_volume_name,
    parse_volume_bind, parse_volume_mount,
};
use tracing::{info, warn};

use super::{Controller, State, del, new_id, now, put};
use crate::error::{CtlError, CtlResult};

/// Store key prefix of volumes.
pub(crate) const VOLUME_KEY: &str = "volume/";

/// The label Docker puts on anonymous volumes (`volume prune` removes only those unless
/// asked for all).
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

/// `POST /volumes/create`.
#[derive(Debug, Clone, Default)]
pub struct VolumeCreate {
    /// Name; empty for a generated one.
    pub name: String,
    /// Driver (`local`, or empty for it).
    pub driver: String,
    /// `DriverOpts`.
    pub options: BTreeMap<String, String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// `GET /volumes` filters (Docker's).
#[derive(Debug, Clone, Default)]
pub struct VolumeFilter {
    /// `dangling=true|false`: used by no container, or by some.
    pub dangling: Option<bool>,
    /// `driver=`.
    pub driver: Vec<String>,
    /// `label=key` / `label=key=value` (all must hold).
    pub label: Vec<String>,
    /// `label!=key` / `label!=key=value` (none may hold; prune).
    pub not_label: Vec<String>,
    /// `name=` (a part of the name).
    pub name: Vec<String>,
}

/// A volume with what inspect shows.
#[derive(Debug, Clone)]
pub struct VolumeView {
    /// The record.
    pub volume: Volume,
    /// Its directory on the host.
    pub mountpoint: PathBuf,
    /// IDs of the containers that use it.
    pub users: Vec<String>,
}

/// The volumes a container's options ask for, in order: `-v`, `--mount type=volume`,
/// then `Config.Volumes` paths that no other mount covers (anonymous).
pub(crate) fn requested_volumes(host: &HostOptions) -> Result<Vec<VolumeRequest>, String> {
    let mut out = Vec::new();
    let mut covered: BTreeSet<String> = BTreeSet::new();
    let norm = |d: &str| d.trim_end_matches('/').to_string();
    for b in &host.binds {
        match parse_volume_bind(b)? {
            Some(r) => out.push(r),
            None => {
                if let Some(dest) = b.split(':').nth(1) {
                    covered.insert(norm(dest));
                }
            }
        }
    }
    for m in host.mounts.iter() {
        if m.typ != "volume" {
            covered.insert(norm(&m.target));
            continue;
        }
        out.push(parse_volume_mount(&VolumeMountFields {
            source: &m.source,
            target: &m.target,
            read_only: m.read_only,
            nocopy: m.volume_nocopy,
            has_bind_options: !m.propagation.is_empty() || m.non_recursive || m.create_mountpoint,
            has_tmpfs_options: m.tmpfs_size != 0 || m.tmpfs_mode != 0,
            labels: &m.volume_labels,
            driver: &m.volume_driver,
            options: &m.volume_opts,
        })?);
    }
    covered.extend(host.tmpfs.keys().map(|k| norm(k)));
    covered.extend(out.iter().map(|r| norm(&r.destination)));
    for p in &host.anonymous_volumes {
        if covered.contains(&norm(p)) {
            continue;
        }
        if let Some(r) = parse_volume_bind(p)? {
            covered.insert(norm(p));
            out.push(r);
        } else {
            return Err(format!("invalid volume path {p:?} in Config.Volumes"));
        }
    }
    Ok(out)
}

fn label_matches(labels: &BTreeMap<String, String>, want: &str) -> bool {
    match want.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(want),
    }
}

/// Bytes used by the files below `p` (best effort, for `SpaceReclaimed`).
fn disk_usage(p: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if !m.is_dir() {
        return m.blocks() * 512;
    }
    std::fs::read_dir(p)
        .map(|d| d.flatten().map(|e| disk_usage(&e.path())).sum())
        .unwrap_or(0)
}

impl Controller {
    /// `<data-root>/volumes/<name>`.
    pub(crate) fn volume_dir(&self, name: &str) -> PathBuf {
        self.cfg.data_root.join("volumes").join(name)
    }

    /// `<data-root>/volumes/<name>/_data`: what containers see.
    pub(crate) fn volume_data(&self, name: &str) -> PathBuf {
        self.volume_dir(name).join("_data")
    }

    /// Loads the volume records at start-up (reconciliation): a record whose
    /// directory is gone gets it back, empty.
    pub(crate) async fn load_volumes(&self, st: &mut State) -> anyhow::Result<()> {
        for (k, v) in self.store.list(VOLUME_KEY).await?.items {
            match serde_json::from_slice::<Volume>(&v.value) {
                Ok(vol) => {
                    let data = self.volume_data(&vol.name);
                    if !data.is_dir()
                        && let Err(e) = std::fs::create_dir_all(&data)
                    {
                        warn!(volume = %vol.name, error = %e, "cannot re-create the volume's directory");
                    }
                    st.volumes.insert(vol.name.clone(), vol);
                }
                Err(e) => warn!(key = %k, error = %e, "skipping unreadable volume record"),
            }
        }
        Ok(())
    }

    fn volume_view(&self, st: &State, v: &Volume) -> VolumeView {
        VolumeView {
            volume: v.clone(),
            mountpoint: self.volume_data(&v.name),
            users: Self::volume_users(st, &v.name),
        }
    }

    /// IDs of the containers that use volume `name`.
    pub(crate) fn volume_users(st: &State, name: &str) -> Vec<String> {
        st.containers
            .values()
            .filter(|c| c.volumes.iter().any(|m| m.name == name))
            .map(|c| c.id.clone())
            .collect()
    }

    /// Creates a volume, or returns the existing one of that name (as Docker does).
    pub async fn create_volume(&self, req: VolumeCreate) -> CtlResult<VolumeView> {
        let mut st = self.state.lock().await;
        let v = self.ensure_volume(&mut st, req, false).await?;
        Ok(self.volume_view(&st, &v))
    }

    /// Creates volume `req.name` unless it exists (then checks its driver); an empty
    /// name makes a new 64-hex one.
    pub(crate) async fn ensure_volume(
        &self,
        st: &mut State,
        req: VolumeCreate,
        anonymous: bool,
    ) -> CtlResult<Volume> {
        let driver = if req.driver.is_empty() {
            "local".to_string()
        } else {
            req.driver.clone()
        };
        check_driver(&driver).map_err(CtlError::not_found)?;
        let name = if req.name.is_empty() {
            new_id()
        } else {
            check_volume_name(&req.name).map_err(CtlError::invalid)?;
            req.name.clone()
        };
        if let Some(v) = st.volumes.get(&name) {
            if v.driver != driver {
                return Err(CtlError::conflict(format!(
                    "a volume with the name {name} already exists with driver \"{}\": remove it first or use another name",
                    v.driver
                )));
            }
            return Ok(v.clone());
        }
        check_local_options(&req.options)
            .map_err(|e| CtlError::invalid(format!("create {name}: {e}")))?;
        let mut labels = req.labels.clone();
        if anonymous {
            labels.insert(ANONYMOUS_LABEL.into(), String::new());
        }
        let vol = Volume {
            name: name.clone(),
            driver,
            labels,
            options: req.options.clone(),
            created: now(),
            anonymous,
        };
        let data = self.volume_data(&name);
        std::fs::create_dir_all(&data).map_err(|e| {
            CtlError::internal(format!(
                "create volume {name}: directory {}: {e}",
                data.display()
            ))
        })?;
        if let Err(e) = self
            .commit(vec![put(format!("{VOLUME_KEY}{name}"), &vol)?])
            .await
        {
            let _ = std::fs::remove_dir_all(self.volume_dir(&name));
            return Err(e);
        }
        st.volumes.insert(name.clone(), vol.clone());
        info!(volume = %name, anonymous, "volume created");
        self.emit("volume", "create", &name, &[("driver", vol.driver.clone())]);
        Ok(vol)
    }

    /// Lists volumes (sorted by name).
    pub async fn list_volumes(&self, f: &VolumeFilter) -> Vec<VolumeView> {
        let st = self.state.lock().await;
        st.volumes
            .values()
            .map(|v| self.volume_view(&st, v))
            .filter(|v| Self::volume_passes(f, v))
            .collect()
    }

    fn volume_passes(f: &VolumeFilter, v: &VolumeView) -> bool {
        let vol = &v.volume;
        f.dangling.is_none_or(|d| d == v.users.is_empty())
            && (f.driver.is_empty() || f.driver.contains(&vol.driver))
            && f.label.iter().all(|l| label_matches(&vol.labels, l))
            && !f.not_label.iter().any(|l| label_matches(&vol.labels, l))
            && (f.name.is_empty() || f.name.iter().any(|n| vol.name.contains(n.as_str())))
    }

    /// Inspects a volume.
    pub async fn inspect_volume(&self, name: &str) -> CtlResult<VolumeView> {
        let st = self.state.lock().await;
        let v = st
            .volumes
            .get(name)
            .ok_or_else(|| CtlError::not_found(format!("get {name}: no such volume")))?;
        Ok(self.volume_view(&st, v))
    }

    /// Removes a volume no container uses. `force` only makes a missing one no error.
    pub async fn remove_volume(&self, name: &str, force: bool) -> CtlResult<()> {
        let mut st = self.state.lock().await;
        if !st.volumes.contains_key(name) {
            if force {
                return Ok(());
            }
            return Err(CtlError::not_found(format!("get {name}: no such volume")));
        }
        self.destroy_volume(&mut st, name).await
    }

    /// Removes volume `name` (which exists) unless a container uses it.
    async fn destroy_volume(&self, st: &mut State, name: &str) -> CtlResult<()> {
        let users = Self::volume_users(st, name);
        if !users.is_empty() {
            return Err(CtlError::conflict(format!(
                "remove {name}: volume is in use - [{}]",
                users.join(", ")
            )));
        }
        let data = self.volume_data(name);
        if netloom_runtime::volume_mount::is_mounted(&data) {
            netloom_runtime::volume_mount::unmount(&data).map_err(|e| {
                CtlError::internal(format!("remove {name}: {}", crate::error::chain(&e)))
            })?;
            // Never delete through a mount that is still there: it may be a host path.
            if netloom_runtime::volume_mount::is_mounted(&data) {
                return Err(CtlError::internal(format!(
                    "remove {name}: {} is still mounted: unmount it, then remove the volume again",
                    data.display()
                )));
            }
        }
        self.commit(vec![del(format!("{VOLUME_KEY}{name}"))])
            .await?;
        st.volumes.remove(name);
        let dir = self.volume_dir(name);
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            warn!(volume = %name, error = %e, "cannot remove the volume's directory");
        }
        info!(volume = %name, "volume removed");
        self.emit("volume", "destroy", name, &[("driver", "local".into())]);
        Ok(())
    }

    /// Removes the unused volumes that pass `f` (only anonymous ones unless `all`);
    /// returns their names and the bytes freed.
    pub async fn prune_volumes(
        &self,
        f: &VolumeFilter,
        all: bool,
    ) -> CtlResult<(Vec<String>, u64)> {
        let mut st = self.state.lock().await;
        let victims: Vec<String> = st
            .volumes
            .values()
            .filter(|v| all || v.anonymous || v.labels.contains_key(ANONYMOUS_LABEL))
            .map(|v| self.volume_view(&st, v))
            .filter(|v| v.users.is_empty() && Self::volume_passes(f, v))
            .map(|v| v.volume.name)
            .collect();
        let mut removed = Vec::new();
        let mut bytes = 0;
        for name in victims {
            let size = disk_usage(&self.volume_data(&name));
            match self.destroy_volume(&mut st, &name).await {
                Ok(()) => {
                    bytes += size;
                    removed.push(name);
                }
                Err(e) => warn!(volume = %name, error = %e.message, "prune: cannot remove volume"),
            }
        }
        self.emit("volume", "prune", "", &[("reclaimed", bytes.to_string())]);
        Ok((removed, bytes))
    }

    /// Resolves the volumes `ctr` asks for into [`Container::volumes`], creating the
    /// named ones that do not exist yet and one new volume per anonymous request.
    /// Everything is checked before anything is created.
    pub(crate) async fn resolve_volumes(
        &self,
        st: &mut State,
        ctr: &mut Container,
    ) -> CtlResult<()> {
        let reqs = requested_volumes(&ctr.host).map_err(CtlError::invalid)?;
        for r in &reqs {
            check_driver(&r.driver).map_err(CtlError::not_found)?;
            if let Some(v) = st.volumes.get(&r.name) {
                if !r.driver.is_empty() && v.driver != r.driver {
                    return Err(CtlError::conflict(format!(
                        "volume {} exists with driver \"{}\", not \"{}\"",
                        r.name, v.driver, r.driver
                    )));
                }
            } else {
                check_local_options(&r.options)
                    .map_err(|e| CtlError::invalid(format!("create {}: {e}", r.name)))?;
            }
        }
        let mut out = Vec::new();
        for r in reqs {
            let anonymous = r.name.is_empty();
            let vol = self
                .ensure_volume(
                    st,
                    VolumeCreate {
                        name: r.name.clone(),
                        driver: r.driver.clone(),
                        options: r.options.clone(),
                        labels: r.labels.clone(),
                    },
                    anonymous,
                )
                .await?;
            out.push(VolumeMount {
                name: vol.name.clone(),
                destination: r.destination,
                read_only: r.read_only,
                nocopy: r.nocopy,
                mode: r.mode,
                anonymous,
                local: vol.local_mount(),
            });
        }
        ctr.volumes = out;
        Ok(())
    }

    /// Removes the anonymous volumes of a removed container that no other container
    /// uses (`rm -v`, `--rm`); failures are logged.
    pub(crate) async fn remove_anonymous_locked(&self, st: &mut State, vols: &[VolumeMount]) {
        for m in vols.iter().filter(|m| m.anonymous) {
            if !st.volumes.contains_key(&m.name) {
                continue;
            }
            if let Err(e) = self.destroy_volume(st, &m.name).await {
                warn!(volume = %m.name, error = %e.message, "cannot remove an anonymous volume");
            }
        }
    }

    /// [`Controller::remove_anonymous_locked`] for the API (`DELETE /containers/{id}?v=1`).
    pub async fn remove_anonymous_volumes(&self, vols: &[VolumeMount]) {
        let mut st = self.state.lock().await;
        self.remove_anonymous_locked(&mut st, vols).await;
    }
}
