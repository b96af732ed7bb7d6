//! Sandboxes that outlive the mount namespace they were bound in.
//!
//! A sandbox is a network namespace bound (a bind mount) at `<exec-root>/netns/<id>`.
//! A bind mount exists in the mount namespace it was made in, and in those its mounts
//! propagate to. `ip netns exec`, `unshare -m` and service managers' private mounts give
//! a daemon a fresh mount namespace whose mounts do not propagate back, so a daemon
//! restarted that way would see only empty files where its running containers'
//! sandboxes are: DNS could not listen in them, `network connect` would fail with EINVAL.
//!
//! Two measures, as `ip netns` and CNI's `ns` package take for `/run/netns`:
//! - at start-up the sandbox directory becomes a shared mount point (bound onto itself,
//!   then `MS_SHARED`), so sandboxes propagate to every peer of it: mount namespaces
//!   copied from the daemon's later with shared propagation, and the shims' slave copies
//!   (which then also see a sandbox's removal);
//! - at reconciliation, a running container whose sandbox this mount namespace does not
//!   see gets it bound again from its own process (`/proc/<pid>/ns/net`): the process
//!   is in that namespace, whatever mount namespace the last daemon ran in.

use netloom_model::Container;
use tracing::{info, warn};

use super::{Controller, Paths};

impl Controller {
    /// Makes the sandbox directory a shared mount point (start-up, before any sandbox is
    /// made). A failure is logged: sandboxes still work in this mount namespace.
    pub(crate) fn share_sandbox_dir(paths: &Paths) {
        if let Err(e) = netloom_kernel::netns::share_dir(&paths.netns) {
            warn!(dir = %paths.netns.display(), error = %e, "cannot make the sandbox directory a shared mount; sandboxes will not be visible to a daemon started in another mount namespace");
        }
    }

    /// Binds the sandbox of running container `c` again from its process if this mount
    /// namespace does not see it (the last daemon ran in another mount namespace).
    pub(crate) fn adopt_sandbox(&self, c: &Container) {
        let Some(sb) = self.sandbox_path(c) else {
            return;
        };
        if netloom_kernel::netns::is_netns(&sb) {
            return;
        }
        let (pid, start) = (c.state.pid, c.state.pid_start_time);
        if !netloom_runtime::is_alive(pid, start) {
            return;
        }
        match netloom_kernel::netns::adopt(&sb, pid) {
            // The PID was checked before the mount: check it is still the container's
            // (not reused meanwhile), else the mount holds someone else's namespace.
            Ok(()) if netloom_runtime::is_alive(pid, start) => {
                info!(container = %c.name, netns = %sb.display(), "bound the sandbox again from the container's process (it was made in another mount namespace)");
            }
            Ok(()) => {
                let _ = netloom_kernel::netns::remove(&sb);
            }
            Err(e) => {
                warn!(container = %c.name, error = %e, "cannot bind the sandbox again from the container's process")
            }
        }
    }
}
