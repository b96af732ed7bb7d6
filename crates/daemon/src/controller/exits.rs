//! A container's exit and removal: recording the exit, tearing down its networking,
//! and removing its record and files.
//!
//! An exit costs one store commit under the state lock (the exit record and the
//! deletion of every endpoint together), not one per record: exits of many containers
//! (`rm -f` of all of them) are serialised by that lock, so each fsync there is paid once
//! per container in a row.

use netloom_model::{Container, ContainerStatus, Endpoint, short_id};
use netloom_store::Op;
use tracing::{info, warn};

use super::{Controller, Locked, State, del, keys, now, put};

impl Controller {
    /// The container's process ended: record the exit, tear down its networking, and
    /// remove it if it was started with `--rm`.
    ///
    /// The exit is recorded first, under the state lock: the teardown may wait for
    /// plugins (without the state lock), and meanwhile the container must not look
    /// running (a `kill` would signal a dead, maybe reused PID; `stop` + `rm` would be
    /// refused). The container's lock stays held until the teardown is done, so a new
    /// start, a `rm` or a `stop` waits for it. The events keep Docker's order: `die`,
    /// then the network `disconnect`s, once the teardown is done.
    pub(crate) async fn on_exit(&self, id: &str, shim_pid: i32, code: i32, finished_at: String) {
        let _ctr_lock = self.container_lock(id).await;
        let mut st = self.lock_state().await;
        let Some(ctr) = st.containers.get(id).cloned() else {
            self.forget_container_lock(id);
            return;
        };
        if ctr.state.shim_pid != shim_pid
            || !matches!(
                ctr.state.status,
                ContainerStatus::Running | ContainerStatus::Removing
            )
        {
            return;
        }
        let mut updated = ctr.clone();
        updated.state.status = ContainerStatus::Exited;
        updated.state.pid = 0;
        updated.state.exit_code = code;
        let had_ports = !updated.state.ports.is_empty();
        updated.state.ports.clear();
        updated.state.finished_at = if finished_at.is_empty() {
            now()
        } else {
            finished_at
        };
        info!(container = %ctr.name, exit_code = code, "container exited");
        // An `--rm` container's record goes below, in one write: its exit is not
        // written first (a crash in between finds it running with its shim gone, and
        // handles that exit at the next start-up, which removes it as well).
        // The exit is written with the endpoints' deletions, in one commit.
        let mut exit_ops = Vec::new();
        if !ctr.auto_remove {
            match put(format!("{}{}", keys::CONTAINER, id), &updated) {
                Ok(op) => exit_ops.push(op),
                Err(e) => warn!(container = %ctr.name, error = %e, "cannot record exit"),
            }
        }
        st.containers.insert(id.to_string(), updated.clone());
        self.release_volumes(&st, &updated);
        if had_ports && let Err(e) = self.sync_firewall(&mut st, false).await {
            warn!(container = %ctr.name, error = %e, "cannot remove published ports");
        }
        let recording = !exit_ops.is_empty();
        if !self.teardown_networking_with(&mut st, &ctr, exit_ops).await && recording {
            warn!(container = %ctr.name, "cannot record exit");
        }
        self.publish_dns_for(&st, id, false);
        self.emit(
            "container",
            "die",
            id,
            &[("name", ctr.name.clone()), ("exitCode", code.to_string())],
        );
        self.emit_network_events(&st, &ctr, "disconnect");
        if ctr.auto_remove {
            self.destroy_container(&mut st, &updated).await;
        }
        // The OCI runtime's record of a container that stays goes at its next start
        // (the shim deletes it first) or with the container (`destroy_container`).
    }

    /// `network connect`/`disconnect` events for each network of a container that
    /// starts or stops (as Docker sends them).
    pub(crate) fn emit_network_events(&self, st: &State, ctr: &Container, action: &'static str) {
        for nid in &ctr.network_order {
            if let Some(net) = st.networks.get(nid) {
                self.emit(
                    "network",
                    action,
                    &net.id,
                    &[
                        ("container", ctr.id.clone()),
                        ("name", net.name.clone()),
                        ("type", net.driver.clone()),
                    ],
                );
            }
        }
    }

    /// Removes a stopped container's record and files.
    pub(crate) async fn destroy_container(&self, st: &mut State, ctr: &Container) {
        if let Err(e) = self
            .commit(vec![del(format!("{}{}", keys::CONTAINER, ctr.id))])
            .await
        {
            warn!(container = %ctr.name, error = %e, "cannot remove container record");
            return;
        }
        st.containers.remove(&ctr.id);
        if ctr.auto_remove {
            self.remove_anonymous_locked(st, &ctr.volumes).await;
        }
        st.execs.retain(|_, e| e.container_id != ctr.id);
        self.forget_container_lock(&ctr.id);
        let dir = self.container_dir(&ctr.id);
        let run = self.paths.run.join(&ctr.id);
        // The runtime's record and cgroup, off this path: the ID is gone for good, so
        // nothing can start it again meanwhile.
        if let Ok(rt) = self.oci_runtime(ctr)
            && rt.has_state(&ctr.id)
        {
            let (id, name) = (ctr.id.clone(), ctr.name.clone());
            tokio::spawn(async move {
                if let Err(e) = rt.delete_idle(&id, true).await {
                    warn!(container = %name, error = %e, "cannot delete the container from its OCI runtime");
                }
            });
        }
        // The layer directory may hold a large tree: remove it off the lock's thread.
        tokio::task::spawn_blocking(move || {
            let _ = std::fs::remove_dir_all(dir);
            let _ = std::fs::remove_dir_all(run);
        });
        info!(container = %ctr.name, "container removed");
        self.emit(
            "container",
            "destroy",
            &ctr.id,
            &[("name", ctr.name.clone())],
        );
        self.forget_container_attrs(&ctr.id);
    }

    /// Detaches every endpoint of the container and removes its sandbox.
    pub(crate) async fn teardown_networking(&self, st: &mut Locked<'_>, ctr: &Container) {
        self.teardown_networking_with(st, ctr, Vec::new()).await;
    }

    /// [`Controller::teardown_networking`], committing `first` with the deletion of the
    /// container's endpoint records in one store commit. False if that commit failed:
    /// nothing of `first` was written then, and each endpoint is detached with a
    /// commit of its own, as one at a time.
    pub(crate) async fn teardown_networking_with(
        &self,
        st: &mut Locked<'_>,
        ctr: &Container,
        first: Vec<Op>,
    ) -> bool {
        self.resolver.detach(&ctr.id);
        let sandbox = self.sandbox_path(ctr);
        let eps: Vec<Endpoint> = st
            .container_endpoints(&ctr.id)
            .into_iter()
            .cloned()
            .collect();
        let mut ops = first;
        ops.extend(
            eps.iter()
                .map(|ep| del(format!("{}{}", keys::ENDPOINT, ep.id))),
        );
        let together = match self.commit(ops).await {
            Ok(()) => true,
            Err(e) => {
                warn!(container = %ctr.name, error = %e, "cannot remove the endpoint records in one commit");
                false
            }
        };
        for ep in eps {
            // The sandbox goes away below, and with it every veth inside: the kernel
            // deletes the pairs itself, off this path.
            let res = if together {
                self.detach_endpoint_recorded(st, &ep, &None).await
            } else {
                self.detach_endpoint(st, &ep, &None).await
            };
            if let Err(e) = res {
                warn!(container = %ctr.name, endpoint = %short_id(&ep.id), error = %e, "endpoint teardown failed");
            }
        }
        self.release_joiners(st, ctr, &sandbox).await;
        if let Some(sb) = sandbox
            && let Err(e) = netloom_kernel::netns::remove(&sb)
        {
            warn!(container = %ctr.name, error = %e, "sandbox removal failed");
        }
        together
    }
}
