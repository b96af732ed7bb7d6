//! Volumes: named directories the daemon keeps for containers (Docker's `local`
//! driver), and what a container asks of one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A volume (`docker volume create`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Volume {
    /// Name (a 64-hex ID for an anonymous volume).
    pub name: String,
    /// Driver: `local`.
    pub driver: String,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Driver options (`local`: `type`, `device`, `o`).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Created for a container's `-v /path` or image volume, not by name: `rm -v` and
    /// `--rm` remove it with its container, `volume prune` removes it by default.
    #[serde(default)]
    pub anonymous: bool,
}

/// What the `local` driver mounts on a volume's directory when a container uses it
/// (its `type`, `device` and `o` options); none for a plain directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LocalMount {
    /// Filesystem type (`tmpfs`, `none` for a bind, `ext4`...).
    pub typ: String,
    /// What to mount (`tmpfs`, a host path, a device).
    pub device: String,
    /// Mount options (`size=64m,uid=1000`, `bind`).
    #[serde(default)]
    pub options: String,
}

impl Volume {
    /// The `local` driver's mount, if its options ask for one.
    pub fn local_mount(&self) -> Option<LocalMount> {
        let typ = self.options.get("type").cloned().unwrap_or_default();
        let device = self.options.get("device").cloned().unwrap_or_default();
        if typ.is_empty() && device.is_empty() {
            return None;
        }
        Some(LocalMount {
            typ,
            device,
            options: self.options.get("o").cloned().unwrap_or_default(),
        })
    }
}

/// One volume mounted into a container, resolved when the container is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct VolumeMount {
    /// The volume's name.
    pub name: String,
    /// Path in the container.
    pub destination: String,
    /// Mounted read-only.
    #[serde(default)]
    pub read_only: bool,
    /// Do not copy the image's content at `destination` into a new, empty volume.
    #[serde(default)]
    pub nocopy: bool,
    /// The `-v` mode as given (`ro,nocopy`), for inspect.
    #[serde(default)]
    pub mode: String,
    /// The volume was made for this container (anonymous).
    #[serde(default)]
    pub anonymous: bool,
    /// What the `local` driver mounts on the volume's directory (a copy of the volume's
    /// options, which never change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalMount>,
}
