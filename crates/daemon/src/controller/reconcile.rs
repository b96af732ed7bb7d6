//! Start-up reconciliation: the store is the intent, the kernel is the fact.
//! Loads every record, rebuilds IPAM, re-creates missing kernel objects, re-attaches
//! to running containers, marks dead ones exited, and removes orphans that carry
//! netloom's mark.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use netloom_model::{Container, ContainerStatus, Endpoint, Image, Network};
use serde::de::DeserializeOwned;
use tracing::{info, warn};

use super::networks::{IpamConfigRequest, NetworkCreate};
use super::{Controller, del, keys, new_id, put};
use crate::error::CtlError;

async fn load<T: DeserializeOwned>(
    ctl: &Controller,
    prefix: &str,
) -> anyhow::Result<Vec<(String, T)>> {
    let mut out = Vec::new();
    for (k, v) in ctl.store.list(prefix).await?.items {
        match serde_json::from_slice::<T>(&v.value) {
            Ok(t) => out.push((k[prefix.len()..].to_string(), t)),
            Err(e) => warn!(key = %k, error = %e, "skipping unreadable store record"),
        }
    }
    Ok(out)
}

impl Controller {
    /// Runs the reconciliation described in the module doc.
    pub(crate) async fn reconcile(self: &Arc<Self>) -> anyhow::Result<()> {
        // Held throughout, also across plugin calls: the API does not serve yet.
        let mut st = self.lock_state_pinned().await;
        // Where the time goes (logged with the result): the API waits for all of it.
        let t0 = std::time::Instant::now();
        let ms = |t: std::time::Instant| t.elapsed().as_millis() as u64;
        let mut networks: Vec<Network> = load::<Network>(self, keys::NETWORK)
            .await?
            .into_iter()
            .map(|(_, n)| n)
            .collect();
        networks.sort_by(|a, b| a.created.cmp(&b.created));
        let endpoints: Vec<Endpoint> = load::<Endpoint>(self, keys::ENDPOINT)
            .await?
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        let containers: Vec<Container> = load::<Container>(self, keys::CONTAINER)
            .await?
            .into_iter()
            .map(|(_, c)| c)
            .collect();
        let images: Vec<Image> = load::<Image>(self, keys::IMAGE)
            .await?
            .into_iter()
            .map(|(_, i)| i)
            .collect();
        let cursors: BTreeMap<String, String> = load::<String>(self, keys::CURSOR)
            .await?
            .into_iter()
            .collect();

        // IPAM: pools, gateways, aux addresses, cursors, then every live address.
        // Networks on an IPAM plugin keep their pools there (Docker replays nothing unless
        // the plugin asks for RequiresRequestReplay; netloom never replays).
        for n in &networks {
            let local_ipam = super::is_default_ipam(&n.ipam.driver);
            for c in n.ipam.configs.iter().filter(|_| local_ipam) {
                if let Err(e) = st
                    .ipam
                    .request_pool(&n.name, Some(c.subnet), c.ip_range, &[])
                {
                    warn!(network = %n.name, error = %e, "cannot restore pool");
                    continue;
                }
                for a in c.gateway.iter().chain(c.aux.values()) {
                    let _ = st.ipam.request_address(&c.subnet, Some(*a));
                }
                if let Some(cur) = cursors
                    .get(&super::networks::cursor_key(&c.subnet))
                    .and_then(|s| s.parse::<u128>().ok())
                {
                    st.ipam.set_cursor(&c.subnet, cur);
                }
            }
            st.networks.insert(n.id.clone(), n.clone());
        }
        for i in images {
            st.images.insert(i.id.clone(), i);
        }
        self.load_volumes(&mut st).await?;
        for c in containers {
            self.remember_container(&c);
            st.containers.insert(c.id.clone(), c);
        }
        let mut stale_eps = Vec::new();
        for ep in endpoints {
            let Some(net) = st.networks.get(&ep.network_id).cloned() else {
                stale_eps.push(ep);
                continue;
            };
            let mut dup = false;
            let local_ipam = super::is_default_ipam(&net.ipam.driver);
            for a in ep
                .ipv4
                .map(|a| IpAddr::V4(a.addr()))
                .into_iter()
                .chain(ep.ipv6.map(|a| IpAddr::V6(a.addr())))
            {
                if local_ipam
                    && let Some(s) = super::State::pool_of(&net, a)
                    && st.ipam.request_address(&s, Some(a)).is_err()
                {
                    dup = true;
                }
            }
            if dup {
                warn!(endpoint = %ep.id, "endpoint address already taken; dropping the endpoint");
                stale_eps.push(ep);
                continue;
            }
            st.endpoints.insert(ep.id.clone(), ep);
        }
        if !stale_eps.is_empty() {
            let ops = stale_eps
                .iter()
                .map(|e| del(format!("{}{}", keys::ENDPOINT, e.id)))
                .collect();
            self.commit(ops).await?;
        }

        let loaded = ms(t0);
        // Predefined networks at first start.
        if !st.networks.values().any(|n| n.predefined) {
            self.create_predefined(&mut st).await?;
        }

        // Kernel objects of every network. Networks of remote plugins are not created
        // again: the plugin keeps them across daemon restarts (Docker does not call
        // CreateNetwork again for local-scope networks either).
        let nets: Vec<Network> = st.networks.values().cloned().collect();
        for n in &nets {
            if let Some(d) = self.drivers.get(&n.driver)
                && let Err(e) = d.create_network(n).await
            {
                warn!(network = %n.name, error = %crate::error::chain(&e), "cannot restore network");
            }
        }

        // The firewall table, whole.
        self.sync_firewall(&mut st, true).await.map_err(|e| {
            anyhow::anyhow!("{e} (is nftables installed? netloomd needs the nft command)")
        })?;

        let kernel = ms(t0);
        // Shims the store does not know as running: a crash after the runtime spawned a
        // container but before `start_container` recorded it leaves a live process for
        // a container that is still `created` (or gone). Nobody would ever stop it, a
        // later start would run a second copy over the same layer, and it pins the
        // sandbox's namespace. The start never completed, so end it: the shim, and the
        // container through its OCI runtime.
        for (pid, id) in self.shims() {
            if !st.containers.get(&id).is_some_and(|c| c.is_running()) {
                info!(container = %netloom_model::short_id(&id), pid, "killing the shim of a container that is not running");
                let _ = netloom_runtime::kill_process(pid, libc::SIGKILL);
            }
        }
        // Containers the OCI runtimes know and the store does not have running (or at
        // all): created during a crash, or their exit was never handled.
        for name in self.cfg.runtime.runtimes.keys() {
            let Ok(rt) = self.cfg.runtime.resolve(name, &self.cfg.exec_root) else {
                continue;
            };
            for id in rt.list() {
                let running = st.containers.get(&id).is_some_and(|c| {
                    c.is_running() && netloom_runtime::is_alive(c.state.pid, c.state.pid_start_time)
                });
                if !running {
                    info!(container = %netloom_model::short_id(&id), runtime = %name, "deleting a container the OCI runtime still holds");
                    if let Err(e) = rt.delete(&id, true).await {
                        warn!(container = %netloom_model::short_id(&id), error = %e, "cannot delete it");
                    }
                }
            }
        }

        let runtimes = ms(t0);
        // Containers. The host's links in one dump: one query per endpoint would cost a
        // netlink round trip per container before the daemon answers.
        let host_links: Option<BTreeSet<String>> = self
            .nl
            .links()
            .await
            .ok()
            .map(|ls| ls.into_iter().map(|l| l.name).collect());
        let ctrs: Vec<Container> = st.containers.values().cloned().collect();
        for c in ctrs {
            let alive =
                c.is_running() && netloom_runtime::is_alive(c.state.pid, c.state.pid_start_time);
            if alive {
                self.adopt_sandbox(&c);
                self.reattach_known(&mut st, &c, host_links.as_ref()).await;
                self.monitor(&c);
                continue;
            }
            if !st.container_endpoints(&c.id).is_empty()
                || c.is_running()
                || c.state.status == ContainerStatus::Removing
            {
                self.teardown_networking(&mut st, &c).await;
            }
            if c.is_running() || c.state.status == ContainerStatus::Removing {
                let exit = netloom_runtime::read_exit(&self.paths.run.join(&c.id));
                let mut u = c.clone();
                u.state.status = ContainerStatus::Exited;
                u.state.pid = 0;
                // As `on_exit` does: an exited container publishes nothing.
                u.state.ports.clear();
                u.state.exit_code = exit.as_ref().map(|e| e.exit_code).unwrap_or(137);
                u.state.finished_at = exit.map(|e| e.finished_at).unwrap_or_else(super::now);
                info!(container = %c.name, exit_code = u.state.exit_code, "container exited while the daemon was down");
                self.commit(vec![
                    put(format!("{}{}", keys::CONTAINER, u.id), &u)
                        .map_err(|e| anyhow::anyhow!(e))?,
                ])
                .await?;
                st.containers.insert(u.id.clone(), u.clone());
                if u.auto_remove || c.state.status == ContainerStatus::Removing {
                    self.destroy_container(&mut st, &u).await;
                }
            } else if c.auto_remove && c.state.status == ContainerStatus::Exited {
                // `--rm`: the exit was recorded, then the daemon stopped before the
                // removal (its network teardown may wait for plugins). Finish it.
                info!(container = %c.name, "removing an exited --rm container");
                if self.sandbox_path(&c).is_some_and(|p| p.exists()) {
                    self.teardown_networking(&mut st, &c).await;
                }
                self.destroy_container(&mut st, &c).await;
            }
        }

        let containers_done = ms(t0);
        // The full table above was rendered while containers that died with the daemon
        // down were still recorded as running: drop their published ports now (a crash
        // between a container's exit and `on_exit` recording it would otherwise leave
        // DNAT elements to an address that may be handed to another container).
        if let Err(e) = self.sync_firewall(&mut st, false).await {
            warn!(error = %e, "cannot remove the published ports of exited containers");
        }

        // Endpoints whose container is gone.
        let orphans: Vec<Endpoint> = st
            .endpoints
            .values()
            .filter(|e| {
                st.containers
                    .get(&e.container_id)
                    .map(|c| !c.is_running())
                    .unwrap_or(true)
            })
            .cloned()
            .collect();
        for ep in orphans {
            let _ = self.detach_endpoint(&mut st, &ep, &None).await;
        }

        // Orphan kernel objects that carry our mark.
        let owned = self.owned_links(&st);
        if let Ok(links) = self.nl.links().await {
            for l in links {
                if netloom_drivers::is_own_alias(&l.alias, &self.tag) && !owned.contains(&l.name) {
                    info!(link = %l.name, "removing orphan link");
                    if let Err(e) = self.nl.delete_link(&l.name).await {
                        warn!(link = %l.name, error = %e, "cannot remove orphan link");
                    }
                }
            }
        }
        let live: BTreeSet<std::path::PathBuf> = st
            .containers
            .values()
            .filter(|c| c.is_running())
            .filter_map(|c| self.sandbox_path(c))
            .collect();
        for p in netloom_kernel::netns::list(&self.paths.netns) {
            if !live.contains(&p) {
                info!(netns = %p.display(), "removing orphan sandbox");
                let _ = netloom_kernel::netns::remove(&p);
            }
        }
        let known: BTreeSet<String> = st.containers.keys().cloned().collect();
        for dir in [&self.paths.run, &self.paths.containers] {
            if let Ok(rd) = std::fs::read_dir(dir) {
                for e in rd.flatten() {
                    let name = e.file_name().to_string_lossy().to_string();
                    if !known.contains(&name) {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        let orphans_done = ms(t0);
        // Image data no image references (a pull or load cut short by a crash).
        self.collect_image_garbage(&st);
        // The embedded DNS server for every running sandbox.
        self.publish_dns(&st);
        let running: Vec<Container> = st
            .containers
            .values()
            .filter(|c| c.is_running())
            .cloned()
            .collect();
        for c in running.iter().filter(|c| Self::uses_embedded_dns(&st, c)) {
            if let Some(sb) = self.sandbox_path(c)
                && let Err(e) = self.resolver.attach(&c.id, &sb)
            {
                warn!(container = %c.name, error = %e, "cannot restart the embedded DNS server");
            }
        }
        info!(
            networks = st.networks.len(),
            containers = st.containers.len(),
            endpoints = st.endpoints.len(),
            loaded_ms = loaded,
            kernel_ms = kernel,
            runtimes_ms = runtimes,
            containers_ms = containers_done,
            orphans_ms = orphans_done,
            total_ms = ms(t0),
            "reconciled"
        );
        Ok(())
    }

    /// Live shim processes of this daemon (and the container inits forked from them):
    /// (pid, container ID), found by their command line
    /// `<exe> __netloom-shim <run>/<id>/spec.json`.
    fn shims(&self) -> Vec<(i32, String)> {
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir("/proc") else {
            return out;
        };
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let mut args = cmd.split(|b| *b == 0).map(String::from_utf8_lossy);
            if args.nth(1).as_deref() != Some(netloom_runtime::SHIM_ARG) {
                continue;
            }
            let Some(spec) = args.next() else { continue };
            let id = std::path::Path::new(spec.as_ref())
                .strip_prefix(&self.paths.run)
                .ok()
                .and_then(|rest| rest.components().next())
                .map(|c| c.as_os_str().to_string_lossy().into_owned());
            if let Some(id) = id {
                out.push((pid, id));
            }
        }
        out
    }

    /// Makes sure a running container still has every endpoint its record asks for.
    pub(super) async fn reattach(&self, st: &mut super::Locked<'_>, c: &Container) {
        self.reattach_known(st, c, None).await;
    }

    /// [`Controller::reattach`] given the names of the host's links (`None`: each
    /// endpoint's link is looked up).
    async fn reattach_known(
        &self,
        st: &mut super::Locked<'_>,
        c: &Container,
        host_links: Option<&BTreeSet<String>>,
    ) {
        let sandbox = self.sandbox_path(c);
        for nid in c.network_order.clone() {
            let Some(net) = st.networks.get(&nid).cloned() else {
                continue;
            };
            let ep = st
                .container_endpoints(&c.id)
                .into_iter()
                .find(|e| e.network_id == nid)
                .cloned();
            let healthy = match &ep {
                None => false,
                Some(e) if e.host_ifname.is_empty() => true,
                Some(e) => match host_links {
                    Some(names) => names.contains(&e.host_ifname),
                    None => matches!(self.nl.link(&e.host_ifname).await, Ok(Some(_))),
                },
            };
            if healthy {
                continue;
            }
            if let Some(e) = ep {
                let _ = self.detach_endpoint(st, &e, &sandbox).await;
            }
            if let Err(e) = self.attach_endpoint(st, c, &net, &sandbox).await {
                warn!(container = %c.name, network = %net.name, error = %e, "cannot re-attach endpoint");
            }
        }
        // Endpoints for networks the container no longer lists (crash mid-disconnect).
        let extra: Vec<Endpoint> = st
            .container_endpoints(&c.id)
            .into_iter()
            .filter(|e| !c.networks.contains_key(&e.network_id))
            .filter(|e| !Self::is_gateway_leg(st, e))
            .cloned()
            .collect();
        for e in extra {
            let _ = self.detach_endpoint(st, &e, &sandbox).await;
        }
        self.drop_gateway_leg(st, c, &sandbox).await;
        if let Err(e) = self.ensure_gateway_leg(st, c, &sandbox).await {
            warn!(container = %c.name, error = %e, "cannot give the container its gateway leg");
        }
        let _ = self.write_container_files(st, c);
    }

    async fn create_predefined(&self, st: &mut super::Locked<'_>) -> Result<(), CtlError> {
        let mut opts = BTreeMap::new();
        opts.insert(
            "com.docker.network.bridge.default_bridge".to_string(),
            "true".to_string(),
        );
        opts.insert(
            "com.docker.network.bridge.enable_icc".to_string(),
            "true".to_string(),
        );
        opts.insert(
            "com.docker.network.bridge.enable_ip_masquerade".to_string(),
            "true".to_string(),
        );
        opts.insert(
            "com.docker.network.bridge.host_binding_ipv4".to_string(),
            "0.0.0.0".to_string(),
        );
        opts.insert(
            "com.docker.network.bridge.name".to_string(),
            super::DEFAULT_BRIDGE.to_string(),
        );
        opts.insert(
            "com.docker.network.driver.mtu".to_string(),
            self.mtu.to_string(),
        );
        let ipam_configs = match self.cfg.bip {
            Some((gw, subnet)) => vec![IpamConfigRequest {
                subnet: subnet.to_string(),
                gateway: gw.to_string(),
                ..Default::default()
            }],
            None => Vec::new(),
        };
        let reqs = [
            NetworkCreate {
                name: "bridge".into(),
                driver: "bridge".into(),
                options: opts,
                ipam_configs,
                ..Default::default()
            },
            NetworkCreate {
                name: "host".into(),
                driver: "host".into(),
                ..Default::default()
            },
            NetworkCreate {
                name: "none".into(),
                driver: "null".into(),
                ..Default::default()
            },
        ];
        for r in reqs {
            let name = r.name.clone();
            let net = self
                .build_network(st, new_id(), r, true, (false, false))
                .await?;
            self.install_network(st, net).await?;
            info!(network = %name, "predefined network created");
        }
        Ok(())
    }
}
