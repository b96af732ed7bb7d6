//! Volumes at container start and exit: the bind of each volume's directory into the
//! bundle (runspec.rs), the `local` driver's mount of its options on that directory
//! when the first container using it starts, Docker's copy of the image's content into
//! a new, empty volume, and the unmount once no running container uses it.
//!
//! Whether a volume's directory is mounted is read from `/proc/self/mountinfo`, not
//! remembered: it stays right across a daemon restart (containers keep running, and
//! so do their volumes' mounts).

use std::path::{Path, PathBuf};

use netloom_model::{Container, VolumeMount};
use netloom_runtime::oci::MountSpec;
use netloom_runtime::volume_mount;
use tracing::warn;

use super::{Controller, State};
use crate::error::{CtlError, CtlResult, chain};

/// `root` joined with the container path `dest`, if no component on the way is a
/// symlink (an image's link must not lead the copy out of its root).
fn inside(root: &Path, dest: &str) -> Option<PathBuf> {
    let mut p = root.to_path_buf();
    for c in dest.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if c == ".." {
            return None;
        }
        p.push(c);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => return None,
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    Some(p)
}

/// The bundle's mounts for volume destinations, with `/` as a stand-in source: what the
/// create-time checks (duplicates, destinations) need before any volume exists.
pub(crate) fn placeholder_binds(
    host: &netloom_model::HostOptions,
) -> Result<Vec<MountSpec>, String> {
    Ok(super::volumes::requested_volumes(host)?
        .into_iter()
        .map(|r| MountSpec::Bind {
            source: PathBuf::from("/"),
            destination: r.destination,
            read_only: r.read_only,
            propagation: String::new(),
            non_recursive: false,
        })
        .collect())
}

impl Controller {
    /// The bind mounts of `ctr`'s volumes for its bundle. Mounts a volume's `local`
    /// options first if its directory is not mounted yet, and copies the image's content
    /// at the destination into a volume that is still empty (unless `nocopy`).
    pub(crate) fn volume_binds(
        &self,
        ctr: &Container,
        image_rootfs: &Path,
    ) -> CtlResult<Vec<MountSpec>> {
        let mut out = Vec::new();
        for m in &ctr.volumes {
            let data = self.volume_data(&m.name);
            if !data.is_dir() {
                std::fs::create_dir_all(&data).map_err(|e| {
                    CtlError::internal(format!("volume {}: create {}: {e}", m.name, data.display()))
                })?;
            }
            if let Some(l) = &m.local
                && !volume_mount::is_mounted(&data)
            {
                volume_mount::mount_local(&l.typ, &l.device, &l.options, &data).map_err(|e| {
                    CtlError::invalid(format!(
                        "error while mounting volume {} for container {}: {}",
                        m.name,
                        ctr.name,
                        chain(&e)
                    ))
                })?;
            }
            if !m.nocopy
                && volume_mount::is_empty_dir(&data)
                && let Some(src) = inside(image_rootfs, &m.destination)
                && let Err(e) = volume_mount::copy_up(&src, &data)
            {
                warn!(volume = %m.name, container = %ctr.name, error = %chain(&e), "cannot copy the image's content into the new volume");
            }
            self.emit(
                "volume",
                "mount",
                &m.name,
                &[
                    ("container", ctr.id.clone()),
                    ("destination", m.destination.clone()),
                    ("driver", "local".into()),
                    ("propagation", String::new()),
                    ("read/write", (!m.read_only).to_string()),
                ],
            );
            out.push(MountSpec::Bind {
                source: data,
                destination: m.destination.clone(),
                read_only: m.read_only,
                propagation: String::new(),
                non_recursive: false,
            });
        }
        Ok(out)
    }

    /// After container `ctr` stopped: an `unmount` event per volume, and the `local`
    /// mount of each volume no running container uses any more goes.
    pub(crate) fn release_volumes(&self, st: &State, ctr: &Container) {
        for m in &ctr.volumes {
            self.emit(
                "volume",
                "unmount",
                &m.name,
                &[("container", ctr.id.clone()), ("driver", "local".into())],
            );
            if m.local.is_none() || self.volume_running_elsewhere(st, &ctr.id, m) {
                continue;
            }
            let data = self.volume_data(&m.name);
            if volume_mount::is_mounted(&data)
                && let Err(e) = volume_mount::unmount(&data)
            {
                warn!(volume = %m.name, error = %chain(&e), "cannot unmount the volume");
            }
        }
    }

    fn volume_running_elsewhere(&self, st: &State, me: &str, m: &VolumeMount) -> bool {
        st.containers
            .values()
            .any(|c| c.id != me && c.is_running() && c.volumes.iter().any(|v| v.name == m.name))
    }
}
