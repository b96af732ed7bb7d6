//! Container lifecycle: create, start, stop, kill, wait, remove, list, inspect,
//! and the endpoints a running container holds.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use netloom_model::network::mac_from_ipv4;
use netloom_model::ports::parse_port_key;
use netloom_model::{
    Container, ContainerState, ContainerStatus, Endpoint, EndpointRequest, Network, PortBinding,
    SandboxInfo, is_valid_name, short_id,
};
use tokio::sync::broadcast::error::RecvError;
use tracing::{info, warn};

use super::networks::{check_attach, cursor_key, map_ipam};
use super::{Controller, Locked, State, del, keys, new_id, now, put};
use crate::error::{CtlError, CtlResult, chain};

/// The networking part of a create request.
#[derive(Debug, Clone, Default)]
pub struct NetworkingRequest {
    /// `HostConfig.NetworkMode`.
    pub mode: String,
    /// `NetworkingConfig.EndpointsConfig`: network name or ID → settings.
    pub endpoints: BTreeMap<String, EndpointRequest>,
}

/// A container create request (the API's body, typed).
#[derive(Debug, Clone, Default)]
pub struct ContainerCreate {
    /// `?name=`.
    pub name: Option<String>,
    /// Image reference.
    pub image: String,
    /// Command (None: the image's).
    pub cmd: Option<Vec<String>>,
    /// Entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Environment.
    pub env: Vec<String>,
    /// Hostname.
    pub hostname: String,
    /// Domain name.
    pub domainname: String,
    /// Working directory.
    pub working_dir: String,
    /// `--user`.
    pub user: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Exposed ports.
    pub exposed_ports: Vec<String>,
    /// Networking.
    pub networking: NetworkingRequest,
    /// Published ports.
    pub port_bindings: BTreeMap<String, Vec<PortBinding>>,
    /// `-P`.
    pub publish_all: bool,
    /// `--rm`.
    pub auto_remove: bool,
    /// `--dns`.
    pub dns: Vec<String>,
    /// `--dns-search`.
    pub dns_search: Vec<String>,
    /// `--dns-opt`.
    pub dns_options: Vec<String>,
    /// `--add-host`.
    pub extra_hosts: Vec<String>,
    /// `--link`.
    pub links: Vec<String>,
    /// `-t`.
    pub tty: bool,
    /// `-i`: `OpenStdin`.
    pub open_stdin: bool,
    /// `StdinOnce`.
    pub stdin_once: bool,
    /// `HostConfig.ConsoleSize` `[rows, cols]`.
    pub console_size: Option<[u16; 2]>,
    /// What the OCI runtime applies (security, mounts, limits).
    pub host: netloom_model::HostOptions,
    /// Restart policy, health check, stop signal and timeout.
    pub lifecycle: netloom_model::Lifecycle,
}

/// A container with everything inspect needs.
#[derive(Debug, Clone)]
pub struct ContainerView {
    /// The container.
    pub container: Container,
    /// Its endpoints (while it runs).
    pub endpoints: Vec<Endpoint>,
    /// Networks it is attached to, by ID.
    pub networks: BTreeMap<String, Network>,
    /// Sandbox key (netns path) while it runs.
    pub sandbox_key: String,
    /// Log file path.
    pub log_path: PathBuf,
    /// Generated files.
    pub hosts_path: PathBuf,
    /// Generated resolv.conf.
    pub resolv_path: PathBuf,
    /// Generated hostname file.
    pub hostname_path: PathBuf,
    /// Where its volumes' directories are (`<data-root>/volumes`).
    pub volumes_root: PathBuf,
}

/// What `start` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    /// The container started.
    Started,
    /// It was already running (API: 304).
    AlreadyRunning,
}

/// Outcome of a wait.
#[derive(Debug, Clone)]
pub struct WaitResult {
    /// Exit code.
    pub status_code: i32,
}

fn parse_extra_host(h: &str) -> CtlResult<()> {
    let Some((name, ip)) = h.split_once(':') else {
        return Err(CtlError::invalid(format!(
            "invalid extra host {h:?}: use host:ip"
        )));
    };
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    if name.is_empty() || (ip != "host-gateway" && ip.parse::<IpAddr>().is_err()) {
        return Err(CtlError::invalid(format!(
            "invalid IP address in add-host: {h:?}"
        )));
    }
    Ok(())
}

impl Controller {
    pub(crate) fn sandbox_path(&self, ctr: &Container) -> Option<PathBuf> {
        (ctr.network_mode != "host" && !super::container_net::is_container_mode(&ctr.network_mode))
            .then(|| self.paths.netns.join(short_id(&ctr.id)))
    }

    pub(crate) fn container_dir(&self, id: &str) -> PathBuf {
        self.paths.containers.join(id)
    }

    pub(crate) fn log_path(&self, id: &str) -> PathBuf {
        self.container_dir(id).join(format!("{id}-json.log"))
    }

    /// Creates a container (not started).
    pub async fn create_container(
        &self,
        mut req: ContainerCreate,
    ) -> CtlResult<(String, Vec<String>)> {
        // Swarm networks this node does not have yet (lazy extension).
        self.extend_global(
            std::iter::once(req.networking.mode.as_str())
                .chain(req.networking.endpoints.keys().map(String::as_str))
                .filter(|k| !matches!(*k, "" | "default" | "bridge" | "host" | "none")),
        )
        .await?;
        let mut st = self.state.lock().await;
        // `container:NAME`: checked, then made like `none` (see container_net.rs).
        let joined = self.take_container_mode(&st, &mut req)?;
        if let Some(n) = &req.name {
            let n = n.strip_prefix('/').unwrap_or(n);
            if !is_valid_name(n) || n.len() < 2 {
                return Err(CtlError::invalid(format!(
                    "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                )));
            }
            if let Some(other) = st.containers.values().find(|c| c.name == n) {
                return Err(CtlError::conflict(format!(
                    "Conflict. The container name \"/{n}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                    other.id
                )));
            }
        }
        let is_id = netloom_model::ids::is_hex(req.image.trim_start_matches("sha256:"));
        if !is_id && !super::images::valid_ref(&req.image) {
            return Err(CtlError::invalid(format!(
                "invalid reference format: repository name {:?} must be lowercase [a-z0-9._-] components, with an optional :tag",
                req.image
            )));
        }
        let image = super::images::find_image(&st, &req.image)?.clone();
        let id = new_id();
        let name = match &req.name {
            Some(n) => n.strip_prefix('/').unwrap_or(n).to_string(),
            None => generate_name(&st, &id),
        };
        // Network mode and endpoints.
        let mode = match req.networking.mode.as_str() {
            "" | "default" => "bridge".to_string(),
            m => m.to_string(),
        };
        let primary = st.find_network(&mode)?.clone();
        st.check_not_removing(&primary)?;
        let mut networks = BTreeMap::new();
        let mut order = Vec::new();
        let mut primary_req = EndpointRequest::default();
        let mut extra: Vec<(Network, EndpointRequest)> = Vec::new();
        for (key, r) in &req.networking.endpoints {
            let n = if key == "default" {
                st.find_network("bridge")?
            } else {
                st.find_network(key)?
            };
            st.check_not_removing(n)?;
            // Two keys may name one network (its name and its ID, or the top-level
            // `MacAddress` of API < 1.44 next to `EndpointsConfig`): merge them.
            if n.id == primary.id {
                merge_request(&mut primary_req, r);
            } else if let Some((_, e)) = extra.iter_mut().find(|(x, _)| x.id == n.id) {
                merge_request(e, r);
            } else {
                extra.push((n.clone(), r.clone()));
            }
        }
        primary_req.links.extend(req.links.iter().cloned());
        let shares_host = st.caps(&primary).shares_host_stack;
        self.check_links_at_create(&st, shares_host, &primary_req.links)?;
        for (_, r) in &extra {
            self.check_links_at_create(&st, false, &r.links)?;
        }
        // `--network host` and `--network none` name the predefined networks `host` and
        // `none` (driver `null`), as Docker's `HostConfig.NetworkMode` does.
        let mode_name = primary.name.clone();
        let mut ctr = Container {
            id: id.clone(),
            name,
            image: req.image.clone(),
            image_id: image.id.clone(),
            created: now(),
            hostname: String::new(),
            domainname: req.domainname.clone(),
            env: super::images::merge_env(&image.env, &req.env),
            cmd: req.cmd.clone().unwrap_or_default(),
            entrypoint: match &req.entrypoint {
                // `--entrypoint ""` clears the image's.
                Some(e) if e.iter().all(String::is_empty) => Vec::new(),
                Some(e) => e.clone(),
                None => image.entrypoint.clone(),
            },
            working_dir: if req.working_dir.is_empty() {
                image.working_dir.clone()
            } else {
                req.working_dir.clone()
            },
            user: if req.user.is_empty() {
                image.user.clone()
            } else {
                req.user.clone()
            },
            labels: image
                .labels
                .iter()
                .chain(&req.labels)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            exposed_ports: Vec::new(),
            network_mode: mode_name.clone(),
            networks: BTreeMap::new(),
            network_order: Vec::new(),
            port_bindings: req.port_bindings.clone(),
            publish_all: req.publish_all,
            auto_remove: req.auto_remove,
            dns: req.dns.clone(),
            dns_search: req.dns_search.clone(),
            dns_options: req.dns_options.clone(),
            extra_hosts: req.extra_hosts.clone(),
            tty: req.tty,
            open_stdin: req.open_stdin,
            stdin_once: req.stdin_once,
            console_size: req.console_size.filter(|[h, w]| *h > 0 && *w > 0),
            host: req.host.clone(),
            volumes: Vec::new(),
            lifecycle: super::health::with_image(&req.lifecycle, &image),
            supervision: Default::default(),
            state: ContainerState::default(),
        };
        self.check_host_options(&ctr)?;
        super::restart::check_create(&ctr)?;
        if req.cmd.is_none() && req.entrypoint.is_none() {
            ctr.cmd = image.cmd.clone();
        }
        if ctr.argv().is_empty() {
            return Err(CtlError::invalid(
                "no command specified: give a command after the image name",
            ));
        }
        // Hostname: Docker's rules.
        ctr.hostname = if !req.hostname.is_empty() {
            req.hostname.clone()
        } else if mode_name == "host" {
            nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| short_id(&id).to_string())
        } else {
            short_id(&id).to_string()
        };
        if ctr.hostname.len() > 63
            || ctr
                .hostname
                .contains(|c: char| c.is_whitespace() || c == '/')
        {
            return Err(CtlError::invalid(format!(
                "invalid hostname {:?}",
                ctr.hostname
            )));
        }
        for h in &req.extra_hosts {
            parse_extra_host(h)?;
        }
        self.check_host_gateway(&st, &req.extra_hosts)?;
        for d in &req.dns {
            d.parse::<IpAddr>().map_err(|_| {
                CtlError::invalid(format!("invalid --dns {d:?}: it must be an IP address"))
            })?;
        }
        let mut exposed: Vec<String> = image.exposed_ports.clone();
        for p in req.exposed_ports.iter().chain(req.port_bindings.keys()) {
            let (port, proto) = parse_port_key(p).map_err(|e| CtlError::invalid(e.to_string()))?;
            let k = format!("{port}/{}", proto.as_str());
            if !exposed.contains(&k) {
                exposed.push(k);
            }
        }
        ctr.exposed_ports = exposed;
        if !st.caps(&primary).has_sandbox_interfaces {
            // The container shares the host's stack or has none: nothing to configure.
            if primary_req.ipv4.is_some()
                || primary_req.ipv6.is_some()
                || !primary_req.aliases.is_empty()
            {
                return Err(CtlError::invalid(format!(
                    "addresses and aliases cannot be set on the {} network",
                    primary.name
                )));
            }
        } else {
            check_attach(&st, &primary, &ctr, &primary_req)?;
        }
        networks.insert(primary.id.clone(), primary_req);
        order.push(primary.id.clone());
        for (n, r) in extra {
            check_attach(&st, &n, &ctr, &r)?;
            networks.insert(n.id.clone(), r);
            order.push(n.id.clone());
        }
        ctr.networks = networks;
        ctr.network_order = order;
        self.resolve_volumes(&mut st, &mut ctr).await?;
        if let Some(j) = &joined {
            j.apply(&mut ctr);
        }
        self.commit(vec![put(format!("{}{}", keys::CONTAINER, id), &ctr)?])
            .await?;
        if let Err(e) = std::fs::create_dir_all(self.container_dir(&id)) {
            let _ = self
                .commit(vec![del(format!("{}{}", keys::CONTAINER, id))])
                .await;
            return Err(CtlError::internal(format!(
                "create container directory: {e}"
            )));
        }
        info!(container = %ctr.name, id = %short_id(&id), "container created");
        self.remember_container(&ctr);
        self.emit(
            "container",
            "create",
            &id,
            &[("name", ctr.name.clone()), ("image", ctr.image.clone())],
        );
        let warnings = super::host_net::create_warnings(&ctr, &req.port_bindings);
        st.containers.insert(id.clone(), ctr);
        Ok((id, warnings))
    }

    /// One start attempt (see [`Controller::start_container`], which removes an `--rm`
    /// container whose start failed).
    pub(crate) async fn start_container_once(
        self: &Arc<Self>,
        key: &str,
    ) -> CtlResult<StartOutcome> {
        let (_ctr_lock, mut st, id) = self.lock_container(key, None).await?;
        // Dropped before `st`: the mark goes while the state lock is held, so whoever
        // reads the state sees either the mark or the start's outcome.
        let _starting = self.mark_starting(&id);
        let ctr = st
            .containers
            .get(&id)
            .cloned()
            .ok_or_else(|| CtlError::not_found(format!("No such container: {key}")))?;
        if ctr.is_running() {
            return Ok(StartOutcome::AlreadyRunning);
        }
        if ctr.state.status == ContainerStatus::Removing {
            return Err(CtlError::conflict(format!(
                "container {} is being removed",
                ctr.name
            )));
        }
        let image = st
            .images
            .get(&ctr.image_id)
            .cloned()
            .ok_or_else(|| CtlError::not_found(format!("No such image: {}", ctr.image)))?;
        let joined_netns = self.joined_netns(&st, &ctr)?;
        self.check_links_at_start(&st, &ctr)?;
        // Names now: a network removed during the start is named by its name.
        let mut net_names = BTreeMap::new();
        for nid in &ctr.network_order {
            let Some(net) = st.networks.get(nid) else {
                return Err(CtlError::not_found(format!(
                    "network {nid} not found: it was removed; disconnect the container from it"
                )));
            };
            net_names.insert(nid.clone(), net.name.clone());
        }
        let sandbox = self.sandbox_path(&ctr);
        if let Some(sb) = &sandbox {
            netloom_kernel::netns::create(sb)?;
            let inner = netloom_kernel::Netlink::in_netns(sb)?;
            if let Some(lo) = inner.link("lo").await? {
                inner.set_up(lo.index, "lo").await?;
            }
        }
        let mut failure = None;
        for nid in ctr.network_order.clone() {
            // A plugin call of an earlier endpoint let go of the lock: the network may
            // have been removed meanwhile.
            let Some(net) = st.networks.get(&nid).cloned() else {
                let name = net_names.get(&nid).map_or(nid.as_str(), String::as_str);
                failure = Some(CtlError::not_found(format!(
                    "network {name} was removed while container {} was starting: disconnect the container from it (network disconnect {name} {}) or connect it to another network",
                    ctr.name, ctr.name
                )));
                break;
            };
            if let Err(e) = self.attach_endpoint(&mut st, &ctr, &net, &sandbox).await {
                failure = Some(e);
                break;
            }
        }
        if failure.is_none()
            && let Err(e) = self.ensure_gateway_leg(&mut st, &ctr, &sandbox).await
        {
            failure = Some(e);
        }
        let mut published = Vec::new();
        if failure.is_none() {
            let eps: Vec<Endpoint> = st
                .container_endpoints(&ctr.id)
                .into_iter()
                .cloned()
                .collect();
            match self.allocate_ports(&st, &ctr, &eps) {
                Ok(p) => published = p,
                Err(e) => failure = Some(e),
            }
        }
        let spawned = match failure {
            Some(e) => Err(e),
            None => match self.write_container_files(&st, &ctr).inspect(|_| {
                // Listen at 127.0.0.11, with this container's view published, before
                // the process can send its first query.
                self.publish_dns_with(&st, Some(&ctr.id));
                if let Some(sb) = &sandbox
                    && Self::uses_embedded_dns(&st, &ctr)
                        && let Err(e) = self.resolver.attach(&ctr.id, sb) {
                            warn!(container = %ctr.name, error = %e, "cannot start the embedded DNS server");
                        }
            }) {
                Err(e) => Err(e),
                Ok(files) => {
                    let mut env = ctr.env.clone();
                    env.extend(self.link_env(&st, &ctr));
                    let wait_attach = self.attach_pending(&ctr.id);
                    let netns = joined_netns.clone().or_else(|| sandbox.clone());
                    match self.container_spec(&ctr, &image, env, files, netns, wait_attach) {
                        Err(e) => Err(e),
                        Ok(spec) => {
                            tokio::task::spawn_blocking(move || netloom_runtime::start(&spec))
                                .await
                                .map_err(|e| CtlError::internal(format!("start task: {e}")))
                                .and_then(|r| {
                                    r.map_err(|e| {
                                        // The shim's report is the runtime's error already.
                                        let why = match &e {
                                            netloom_runtime::RuntimeError::Shim { message, .. } => message.clone(),
                                            e => chain(e),
                                        };
                                        CtlError::invalid(format!(
                                            "cannot start container {}: {why}{}",
                                            ctr.name,
                                            super::runspec::runtime_hint(&e)
                                        ))
                                    })
                                })
                        }
                    }
                }
            },
        };
        let spawned = match spawned {
            Ok(s) => s,
            Err(e) => {
                self.teardown_networking(&mut st, &ctr).await;
                self.publish_dns_for(&st, &ctr.id, false);
                // As Docker: an `--rm` container that cannot start is removed, so that
                // a client waiting for its removal ends.
                if ctr.auto_remove {
                    self.destroy_container(&mut st, &ctr).await;
                }
                return Err(e);
            }
        };
        let mut updated = ctr.clone();
        updated.state = ContainerState {
            status: ContainerStatus::Running,
            pid: spawned.init_pid,
            pid_start_time: spawned.init_start_time,
            shim_pid: spawned.shim_pid,
            shim_start_time: spawned.shim_start_time,
            exit_code: 0,
            started_at: now(),
            finished_at: ctr.state.finished_at.clone(),
            error: String::new(),
            ports: published,
        };
        self.commit(vec![put(
            format!("{}{}", keys::CONTAINER, updated.id),
            &updated,
        )?])
        .await?;
        st.containers.insert(updated.id.clone(), updated.clone());
        if !updated.state.ports.is_empty()
            && let Err(e) = self.sync_firewall(&mut st, false).await
        {
            warn!(container = %updated.name, error = %e, "cannot program published ports");
        }
        self.publish_dns_for(&st, &updated.id, false);
        info!(container = %updated.name, pid = spawned.init_pid, "container started");
        self.emit_network_events(&st, &updated, "connect");
        self.emit(
            "container",
            "start",
            &updated.id,
            &[("name", updated.name.clone())],
        );
        self.monitor(&updated);
        Ok(StartOutcome::Started)
    }

    /// Watches a running container's shim and handles its exit.
    pub(crate) fn monitor(self: &Arc<Self>, ctr: &Container) {
        let ctl = Arc::clone(self);
        let id = ctr.id.clone();
        let shim = ctr.state.shim_pid;
        let shim_start = ctr.state.shim_start_time;
        let state_dir = self.paths.run.join(&id);
        self.watch_health(ctr);
        tokio::spawn(async move {
            let info = netloom_runtime::wait_exit(shim, shim_start, &state_dir).await;
            ctl.on_exit(&id, shim, info.exit_code, info.finished_at)
                .await;
            ctl.after_exit(&id).await;
        });
    }

    /// Allocates, persists, creates and joins one endpoint. Rolls back on failure.
    ///
    /// On a plugin network (remote driver or IPAM plugin) every plugin call runs without
    /// the state lock; the network counts as busy meanwhile, so it cannot be removed.
    pub(crate) async fn attach_endpoint(
        &self,
        st: &mut Locked<'_>,
        ctr: &Container,
        net: &Network,
        sandbox: &Option<PathBuf>,
    ) -> CtlResult<()> {
        st.check_not_removing(net)?;
        if !self.is_plugin_network(net) {
            return self.attach_endpoint_inner(st, ctr, net, sandbox).await;
        }
        st.busy(&net.id);
        let res = self.attach_endpoint_inner(st, ctr, net, sandbox).await;
        st.unbusy(&net.id);
        res
    }

    /// Whether a network's endpoints involve a plugin (remote driver or IPAM plugin).
    pub(crate) fn is_plugin_network(&self, net: &Network) -> bool {
        self.is_remote(&net.driver) || !super::is_default_ipam(&net.ipam.driver)
    }

    async fn attach_endpoint_inner(
        &self,
        st: &mut Locked<'_>,
        ctr: &Container,
        net: &Network,
        sandbox: &Option<PathBuf>,
    ) -> CtlResult<()> {
        let req = ctr.networks.get(&net.id).cloned().unwrap_or_default();
        if let Some(d) = st.driver_of(net) {
            d.check_endpoint_request(net, &req.mac)?;
        }
        let remote = self.is_remote(&net.driver);
        let plugin_ipam = !super::is_default_ipam(&net.ipam.driver);
        // Activation (first use) is a plugin call too.
        let driver = st.without_if(remote, self.driver(&net.driver)).await?;
        let remote_ipam = st.without_if(plugin_ipam, self.remote_ipam(net)).await?;
        let has_if = driver.capabilities().has_sandbox_interfaces;
        let existing: Vec<Endpoint> = st
            .container_endpoints(&ctr.id)
            .into_iter()
            .cloned()
            .collect();
        let ifname = if has_if {
            // The index (the name's trailing digits) is unique whatever the prefix: a
            // plugin may name it `net1`, or even `eth0_1`.
            let index = |n: &str| -> Option<u32> {
                let digits = n.len() - n.trim_end_matches(|c: char| c.is_ascii_digit()).len();
                n[n.len() - digits..].parse().ok()
            };
            (0..)
                .find(|i| !existing.iter().any(|e| index(&e.ifname) == Some(*i)))
                .map(|i| format!("eth{i}"))
                .unwrap_or_else(|| "eth0".into())
        } else {
            String::new()
        };
        // Of several IPv4 subnets (an overlay's), the one holding the requested address.
        let v4pool = req
            .ipv4
            .and_then(|a| net.ipam.configs.iter().find(|c| c.subnet.contains(&a)))
            .or_else(|| net.ipam.v4())
            .filter(|_| net.enable_ipv4 && has_if)
            .cloned();
        let v6pool = net.ipam.v6().filter(|_| net.enable_ipv6 && has_if).cloned();
        let mut got: Vec<(IpNet, IpAddr)> = Vec::new();
        let release = |st: &mut State, got: &[(IpNet, IpAddr)]| {
            for (s, a) in got {
                st.ipam.release_address(s, *a);
            }
        };
        let mut ipv4 = None;
        let mut ipv6 = None;
        // Addresses from an IPAM plugin: (pool ID, address), released on failure.
        let mut got_remote: Vec<(String, IpAddr)> = Vec::new();
        for (pool, want) in [(&v4pool, req.ipv4), (&v6pool, req.ipv6)] {
            let Some(pool) = pool else { continue };
            if let Some(ipam) = &remote_ipam {
                match st
                    .without(ipam.request_address(&pool.pool_id, want, Some(&BTreeMap::new())))
                    .await
                {
                    Ok(a) => {
                        got_remote.push((pool.pool_id.clone(), a.addr()));
                        match a {
                            IpNet::V4(v4) => ipv4 = Some(v4),
                            IpNet::V6(v6) => ipv6 = Some(v6),
                        }
                        continue;
                    }
                    Err(e) => {
                        st.without(release_remote(ipam, &got_remote)).await;
                        return Err(super::plugin_error(&net.ipam.driver, e, "default"));
                    }
                }
            }
            match st.ipam.request_address(&pool.subnet, want) {
                Ok(a) => {
                    got.push((pool.subnet, a));
                    match a {
                        IpAddr::V4(v4) => ipv4 = Ipv4Net::new(v4, pool.subnet.prefix_len()).ok(),
                        IpAddr::V6(v6) => ipv6 = Ipv6Net::new(v6, pool.subnet.prefix_len()).ok(),
                    }
                }
                Err(e) => {
                    release(st, &got);
                    return Err(map_ipam(e));
                }
            }
        }
        let gateway4 = v4pool.as_ref().and_then(|p| match p.gateway {
            Some(IpAddr::V4(g)) => Some(g),
            _ => None,
        });
        let gateway6 = v6pool.as_ref().and_then(|p| match p.gateway {
            Some(IpAddr::V6(g)) => Some(g),
            _ => None,
        });
        // A plugin's gateway comes from its Join answer (its network may have no gateway
        // address when GwAllocCheck said so).
        let default_route = has_if
            && !net.internal
            && netloom_drivers::overlay::gateway::carries_default_route(net)
            && (remote || gateway4.is_some() || gateway6.is_some())
            && !existing.iter().any(|e| e.default_route);
        let ep = Endpoint {
            id: new_id(),
            network_id: net.id.clone(),
            container_id: ctr.id.clone(),
            // A gateway leg is named as Docker names it (`gateway_<short ID>`).
            container_name: match net {
                n if Self::leg_of(ctr, n) => super::gateway_leg::leg_name(&ctr.id),
                _ => ctr.name.clone(),
            },
            ifname,
            host_ifname: String::new(),
            mac: match ipv4 {
                _ if has_if && !req.mac.is_empty() => req.mac.clone(),
                // Docker sends a plugin no MAC unless the user asked for one.
                _ if remote => String::new(),
                Some(a) => mac_from_ipv4(a.addr()),
                None if has_if => random_mac(),
                None => String::new(),
            },
            ipv4,
            ipv6,
            gateway4,
            gateway6,
            aliases: req.aliases.clone(),
            default_route,
        };
        let mut ep = ep;
        if let Some(d) = st.driver_of(net) {
            d.prepare_endpoint(net, &mut ep);
        }
        if self.is_global(net) && ep.ipv4.is_some() {
            // The address is claimed cluster-wide (another may be chosen).
            if let Err(e) = self.claim_global(st, net, &mut ep, req.ipv4).await {
                release(st, &got);
                return Err(e);
            }
            if let (Some(a), Some(g)) = (ep.ipv4, got.iter_mut().find(|(s, _)| s.addr().is_ipv4()))
            {
                g.1 = IpAddr::V4(a.addr());
            }
        }
        let mut ops = vec![put(format!("{}{}", keys::ENDPOINT, ep.id), &ep)?];
        for (s, _) in &got {
            if let Some(c) = st.ipam.cursor(s) {
                ops.push(put(
                    format!("{}{}", keys::CURSOR, cursor_key(s)),
                    &c.to_string(),
                )?);
            }
        }
        if let Err(e) = self.commit(ops).await {
            release(st, &got);
            if let Some(ipam) = &remote_ipam {
                st.without(release_remote(ipam, &got_remote)).await;
            }
            return Err(e);
        }
        // Intent first: the endpoint is recorded before the driver hears of it.
        st.endpoints.insert(ep.id.clone(), ep.clone());
        let sb = SandboxInfo {
            key: sandbox.clone().unwrap_or_default(),
            container_id: ctr.id.clone(),
        };
        if remote && let Ok(rd) = st.without(self.plugins.driver(&net.driver)).await {
            rd.set_options(&ep.id, self.plugin_endpoint_options(st, ctr, &req));
        }
        let mut created = false;
        let res = match st
            .without_if(remote, driver.create_endpoint(net, &ep))
            .await
        {
            Ok(()) if has_if => {
                created = true;
                st.without_if(remote, driver.join(net, &ep, &sb))
                    .await
                    .map(Some)
            }
            Ok(()) => {
                created = true;
                Ok(None)
            }
            Err(e) => Err(e),
        };
        let joined = match res {
            Ok(j) => j,
            Err(e) => {
                // A plugin whose CreateEndpoint failed has no endpoint to delete.
                if (created || !remote)
                    && let Err(de) = st
                        .without_if(remote, driver.delete_endpoint(net, &ep))
                        .await
                    && remote
                {
                    warn!(endpoint = %short_id(&ep.id), error = %de, "plugin could not delete the endpoint during rollback");
                }
                st.endpoints.remove(&ep.id);
                if self.is_global(net) {
                    self.withdraw_global_locked(st, net, &ep).await;
                }
                release(st, &got);
                if let Some(ipam) = &remote_ipam {
                    st.without(release_remote(ipam, &got_remote)).await;
                }
                let _ = self
                    .commit(vec![del(format!("{}{}", keys::ENDPOINT, ep.id))])
                    .await;
                return Err(CtlError::from(e));
            }
        };
        // A plugin decides the interface's name prefix, MAC and gateway: record them.
        if remote && let Some(j) = joined {
            let mut updated = ep.clone();
            updated.ifname = j.ifname;
            if let Some(m) = j.mac {
                updated.mac = m;
            }
            updated.gateway4 = j.gateway4;
            updated.gateway6 = j.gateway6;
            // Without a gateway from the plugin this endpoint carries no default route.
            updated.default_route =
                ep.default_route && (j.gateway4.is_some() || j.gateway6.is_some());
            if updated != ep {
                if let Err(e) = self
                    .commit(vec![put(format!("{}{}", keys::ENDPOINT, ep.id), &updated)?])
                    .await
                {
                    warn!(endpoint = %short_id(&ep.id), error = %e, "cannot record the plugin's interface details");
                }
                st.endpoints.insert(updated.id.clone(), updated);
            }
        }
        tracing::debug!(container = %ctr.name, network = %net.name, ifname = %ep.ifname, "endpoint joined");
        Ok(())
    }

    /// Releases and removes one endpoint (intent first, then the kernel).
    ///
    /// On a plugin network the plugin calls run without the state lock; the network
    /// counts as busy meanwhile, so it cannot be removed before they are done.
    pub(crate) async fn detach_endpoint(
        &self,
        st: &mut Locked<'_>,
        ep: &Endpoint,
        sandbox: &Option<PathBuf>,
    ) -> CtlResult<()> {
        self.commit(vec![del(format!("{}{}", keys::ENDPOINT, ep.id))])
            .await?;
        self.detach_endpoint_recorded(st, ep, sandbox).await
    }

    /// [`Controller::detach_endpoint`] once the deletion of the endpoint's record is
    /// committed.
    pub(crate) async fn detach_endpoint_recorded(
        &self,
        st: &mut Locked<'_>,
        ep: &Endpoint,
        sandbox: &Option<PathBuf>,
    ) -> CtlResult<()> {
        st.endpoints.remove(&ep.id);
        let Some(net) = st.networks.get(&ep.network_id).cloned() else {
            return Ok(());
        };
        if self.is_global(&net) {
            self.withdraw_global_locked(st, &net, ep).await;
        }
        let plugin = self.is_plugin_network(&net);
        if plugin {
            st.busy(&net.id);
        }
        let res = self.detach_endpoint_inner(st, ep, &net, sandbox).await;
        if plugin {
            st.unbusy(&net.id);
        }
        res
    }

    async fn detach_endpoint_inner(
        &self,
        st: &mut Locked<'_>,
        ep: &Endpoint,
        net: &Network,
        sandbox: &Option<PathBuf>,
    ) -> CtlResult<()> {
        if self.is_remote(&net.driver) {
            // Docker's order: [RevokeExternalConnectivity] → Leave → DeleteEndpoint →
            // ReleaseAddress. The intent is gone already: a plugin error is logged.
            // As Docker, the interface goes back to the plugin before Leave, also
            // when the whole sandbox is being torn down.
            let key = sandbox.clone().or_else(|| {
                st.containers
                    .get(&ep.container_id)
                    .and_then(|c| self.sandbox_path(c))
            });
            let sb = SandboxInfo {
                key: key.unwrap_or_default(),
                container_id: ep.container_id.clone(),
            };
            st.without(async {
                match self.driver(&net.driver).await {
                    Ok(d) => {
                        if let Err(e) = d.leave(net, ep, &sb).await {
                            warn!(endpoint = %short_id(&ep.id), network = %net.name, error = %e, "plugin Leave failed");
                        }
                        if let Err(e) = d.delete_endpoint(net, ep).await {
                            warn!(endpoint = %short_id(&ep.id), network = %net.name, error = %e, "plugin DeleteEndpoint failed");
                        }
                    }
                    Err(e) => {
                        warn!(endpoint = %short_id(&ep.id), network = %net.name, error = %e, "cannot reach the network's plugin to remove the endpoint")
                    }
                }
            })
            .await;
        }
        let addrs: Vec<IpAddr> = ep
            .ipv4
            .map(|a| IpAddr::V4(a.addr()))
            .into_iter()
            .chain(ep.ipv6.map(|a| IpAddr::V6(a.addr())))
            .collect();
        if super::is_default_ipam(&net.ipam.driver) {
            for a in addrs {
                if let Some(s) = State::pool_of(net, a) {
                    st.ipam.release_address(&s, a);
                }
            }
        } else {
            st.without(async {
                match self.remote_ipam(net).await {
                    Ok(Some(ipam)) => {
                        let got: Vec<(String, IpAddr)> = addrs
                            .iter()
                            .filter_map(|a| {
                                net.ipam
                                    .configs
                                    .iter()
                                    .find(|c| c.subnet.contains(a))
                                    .map(|c| (c.pool_id.clone(), *a))
                            })
                            .collect();
                        release_remote(&ipam, &got).await;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        warn!(endpoint = %short_id(&ep.id), error = %e, "cannot release the endpoint's addresses at the IPAM plugin")
                    }
                }
            })
            .await;
        }
        if !self.is_remote(&net.driver)
            && let (Some(d), Some(key)) = (self.drivers.get(&net.driver), sandbox)
        {
            let sb = SandboxInfo {
                key: key.clone(),
                container_id: ep.container_id.clone(),
            };
            d.leave(net, ep, &sb).await?;
        } else if !self.is_remote(&net.driver)
            && let Some(d) = self.drivers.get(&net.driver)
        {
            // The whole sandbox is going: no leave, but what the driver keeps outside it.
            d.sandbox_removed(net, ep).await?;
        }
        Ok(())
    }

    /// After the default-route endpoint left, gives the role to another endpoint.
    pub(crate) async fn move_default_route(
        &self,
        st: &mut Locked<'_>,
        ctr: &Container,
        sandbox: &Option<PathBuf>,
    ) {
        let Some(sb) = sandbox else { return };
        let candidate = ctr.network_order.iter().find_map(|nid| {
            let net = st.networks.get(nid)?;
            if net.internal || !netloom_drivers::overlay::gateway::carries_default_route(net) {
                return None;
            }
            st.container_endpoints(&ctr.id)
                .into_iter()
                .find(|e| &e.network_id == nid && (e.gateway4.is_some() || e.gateway6.is_some()))
                .cloned()
        });
        let Some(mut ep) = candidate else { return };
        let Ok(inner) = netloom_kernel::Netlink::in_netns(sb) else {
            return;
        };
        let Ok(Some(link)) = inner.link(&ep.ifname).await else {
            return;
        };
        for gw in [ep.gateway4.map(IpAddr::V4), ep.gateway6.map(IpAddr::V6)]
            .into_iter()
            .flatten()
        {
            if let Err(e) = inner.set_default_route(link.index, gw).await {
                warn!(container = %ctr.name, error = %e, "cannot move the default route");
            }
        }
        ep.default_route = true;
        if let Ok(op) = put(format!("{}{}", keys::ENDPOINT, ep.id), &ep) {
            let _ = self.commit(vec![op]).await;
        }
        st.endpoints.insert(ep.id.clone(), ep.clone());
        // As libnetwork: the new gateway endpoint of a plugin gets
        // ProgramExternalConnectivity (the old one got RevokeExternalConnectivity on leave).
        if let Some(net) = st.networks.get(&ep.network_id).cloned()
            && self.is_remote(&net.driver)
        {
            let req = ctr.networks.get(&net.id).cloned().unwrap_or_default();
            let opts = self.plugin_endpoint_options(st, ctr, &req).sandbox;
            st.busy(&net.id);
            st.without(async {
                match self.plugins.driver(&net.driver).await {
                    Ok(rd) => {
                        if let Err(e) = rd.program_external_connectivity(&net, &ep, &opts).await {
                            warn!(container = %ctr.name, network = %net.name, error = %e, "ProgramExternalConnectivity for the new gateway endpoint failed");
                        }
                    }
                    Err(e) => {
                        warn!(container = %ctr.name, network = %net.name, error = %e, "cannot reach the plugin of the new gateway endpoint")
                    }
                }
            })
            .await;
            st.unbusy(&net.id);
        }
    }

    /// The `Options` Docker sends a remote driver for a container's endpoint: the endpoint
    /// generic options (`--driver-opt`s, exposed ports, port mappings, DNS servers) and the
    /// sandbox labels (exposed ports, port mappings, and the legacy-link endpoints when the
    /// container is on the default bridge network).
    pub(crate) fn plugin_endpoint_options(
        &self,
        st: &State,
        ctr: &Container,
        req: &EndpointRequest,
    ) -> netloom_drivers::remote::EndpointOptions {
        use netloom_drivers::remote::{DNS_SERVERS, EXPOSED_PORTS, PORT_MAP, port_options};
        let (exposed, portmap) =
            port_options(&ctr.exposed_ports, &ctr.port_bindings, ctr.publish_all);
        let mut endpoint = serde_json::Map::new();
        for (k, v) in &req.driver_opts {
            endpoint.insert(k.clone(), serde_json::Value::String(v.clone()));
        }
        let dns: Vec<String> = if !ctr.dns.is_empty() {
            ctr.dns.clone()
        } else {
            self.cfg.dns.iter().map(|a| a.to_string()).collect()
        };
        if !dns.is_empty() {
            endpoint.insert(DNS_SERVERS.into(), serde_json::json!(dns));
        }
        if !req.mac.is_empty() {
            endpoint.insert(
                "com.docker.network.endpoint.macaddress".into(),
                serde_json::Value::String(req.mac.clone()),
            );
        }
        endpoint.insert(PORT_MAP.into(), portmap.clone());
        endpoint.insert(EXPOSED_PORTS.into(), exposed.clone());
        let mut sandbox = serde_json::Map::new();
        sandbox.insert(PORT_MAP.into(), portmap);
        sandbox.insert(EXPOSED_PORTS.into(), exposed);
        // Docker adds the legacy-link endpoints only for containers on the default bridge.
        let bridge_ep = |cid: &str| {
            st.container_endpoints(cid)
                .into_iter()
                .find(|e| {
                    st.networks
                        .get(&e.network_id)
                        .is_some_and(|n| n.name == "bridge" && n.predefined)
                })
                .map(|e| e.id.clone())
        };
        let on_bridge = st
            .networks
            .values()
            .any(|n| n.name == "bridge" && n.predefined && ctr.networks.contains_key(&n.id));
        if on_bridge {
            let link_target = |l: &str| {
                l.split(':')
                    .next()
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string()
            };
            let links_of = |c: &Container| -> Vec<String> {
                c.networks
                    .values()
                    .flat_map(|r| r.links.iter().map(|l| link_target(l)))
                    .collect()
            };
            let children: Vec<String> = links_of(ctr)
                .iter()
                .filter_map(|name| st.containers.values().find(|c| &c.name == name))
                .filter_map(|c| bridge_ep(&c.id))
                .collect();
            let parents: Vec<String> = st
                .containers
                .values()
                .filter(|c| c.id != ctr.id && links_of(c).contains(&ctr.name))
                .filter_map(|c| bridge_ep(&c.id))
                .collect();
            sandbox.insert(
                netloom_drivers::remote::GENERIC.into(),
                serde_json::json!({ "ParentEndpoints": parents, "ChildEndpoints": children }),
            );
        }
        netloom_drivers::remote::EndpointOptions { endpoint, sandbox }
    }

    /// Stops a container: the stop signal, then SIGKILL after `timeout`. Returns once
    /// the container is stopped and its exit handled (networking torn down).
    ///
    /// A start in progress finishes first (see [`Controller::settled_container`]); no
    /// lock is held while signalling and waiting: the exit handling needs them.
    pub async fn stop_container(
        &self,
        key: &str,
        timeout: Option<u64>,
        signal: Option<i32>,
    ) -> CtlResult<bool> {
        let c = self.settled_container(key).await?;
        if !c.is_running() {
            return Ok(false);
        }
        let rt = self.oci_runtime(&c)?;
        let (id, pid, start_time, name) = (c.id, c.state.pid, c.state.pid_start_time, c.name);
        if process_alive(pid, start_time) {
            let sig = signal.unwrap_or(libc::SIGTERM);
            self.emit(
                "container",
                "kill",
                &id,
                &[("name", name.clone()), ("signal", sig.to_string())],
            );
            let _ = rt.kill(&id, sig).await;
            let t = Duration::from_secs(timeout.unwrap_or(10));
            if !wait_process_exit(pid, start_time, t).await {
                sigkill_and_wait(&rt, &id, &name, pid, start_time).await?;
            }
        }
        self.wait_exit_recorded(&id, &name, pid).await?;
        self.emit("container", "stop", &id, &[("name", name)]);
        Ok(true)
    }

    /// Sends a signal to a running container.
    ///
    /// A start in progress finishes first (see [`Controller::settled_container`]); a process that has died (its exit not handled yet) is not signalled: its
    /// PID may already belong to someone else.
    pub async fn kill_container(&self, key: &str, signal: i32) -> CtlResult<()> {
        let c = self.settled_container(key).await?;
        if !c.is_running() || !process_alive(c.state.pid, c.state.pid_start_time) {
            return Err(CtlError::conflict(format!(
                "cannot kill container: {}: container {} is not running",
                key, c.id
            )));
        }
        let rt = self.oci_runtime(&c)?;
        let (id, name) = (c.id, c.name);
        rt.kill(&id, signal).await.map_err(|e| match e {
            netloom_runtime::RuntimeError::NotRunning(_) => CtlError::conflict(format!(
                "cannot kill container: {key}: container {id} is not running"
            )),
            e => CtlError::internal(format!("cannot kill container {name}: {}", chain(&e))),
        })?;
        self.emit(
            "container",
            "kill",
            &id,
            &[("name", name), ("signal", signal.to_string())],
        );
        Ok(())
    }

    /// A container as it is once a start of it in progress (which may wait for a plugin)
    /// is done: `stop`/`kill` of a container being started apply to the started one.
    /// Only a start is waited for (its container's lock, taken and let go at once), not
    /// a connect, disconnect or exit handling.
    async fn settled_container(&self, key: &str) -> CtlResult<Container> {
        let c = {
            let st = self.state.lock().await;
            let c = st.find_container(key)?;
            if c.is_running() || !self.is_starting(&c.id) {
                return Ok(c.clone());
            }
            c.id.clone()
        };
        let (_ctr_lock, st, id) = self.lock_container(&c, None).await?;
        st.containers
            .get(&id)
            .cloned()
            .ok_or_else(|| CtlError::not_found(format!("No such container: {key}")))
    }

    /// Waits until the exit of container `id`'s process `pid` (dead by now) has been
    /// handled. Its exit handling needs the container's lock, which a start, connect or
    /// disconnect waiting for a plugin may hold: that wait has no fixed limit (the
    /// plugin timeout bounds it). Once the lock was had, the exit must be recorded
    /// within [`KILL_WAIT`].
    async fn wait_exit_recorded(&self, id: &str, name: &str, pid: i32) -> CtlResult<()> {
        let mut rx = self.subscribe();
        let mut deadline = None;
        loop {
            {
                let _ctr_lock = self.container_lock(id).await;
                let st = self.state.lock().await;
                match st.containers.get(id) {
                    None => {
                        // Removed (`--rm`): the lock entry made just now is not needed.
                        drop(st);
                        drop(_ctr_lock);
                        self.forget_container_lock(id);
                        return Ok(());
                    }
                    Some(c) if !c.is_running() || c.state.pid != pid => return Ok(()),
                    Some(_) => {}
                }
            }
            let deadline = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + KILL_WAIT);
            if tokio::time::Instant::now() >= deadline {
                return Err(CtlError::internal(format!(
                    "container {name} stopped but its exit was not recorded within {}s: see the daemon log",
                    KILL_WAIT.as_secs()
                )));
            }
            // The exit handling is about to take the lock: give it a moment.
            if let Ok(Err(RecvError::Closed)) =
                tokio::time::timeout(Duration::from_millis(100), rx.recv()).await
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Removes a container (`force` kills it first).
    ///
    /// `-f` kills without the container's lock (a connect or disconnect waiting for a
    /// plugin may hold it), waits for the process to die, then for its exit handling
    /// (which needs that lock), then removes the container under its lock. A start in
    /// progress may make the container run meanwhile: `-f` kills it again, a plain `rm`
    /// is refused as for any running container.
    pub async fn remove_container(&self, key: &str, force: bool) -> CtlResult<()> {
        let (id, name) = {
            let st = self.state.lock().await;
            let c = st.find_container(key)?;
            (c.id.clone(), c.name.clone())
        };
        let running = || {
            CtlError::conflict(format!(
                "cannot remove container \"/{name}\": container is running: stop the container before removing or force remove"
            ))
        };
        for _ in 0..REMOVE_ATTEMPTS {
            let target = {
                let st = self.state.lock().await;
                match st.containers.get(&id) {
                    None => return Ok(()), // removed meanwhile (--rm)
                    Some(c) => c
                        .is_running()
                        .then(|| (c.state.pid, c.state.pid_start_time, self.oci_runtime(c))),
                }
            };
            if let Some((pid, start_time, rt)) = target {
                if !force {
                    return Err(running());
                }
                sigkill_and_wait(&rt?, &id, &name, pid, start_time).await?;
                self.wait_exit_recorded(&id, &name, pid).await?;
            }
            // Waits for a start, connect, disconnect or exit handling in progress.
            let _ctr_lock = self.container_lock(&id).await;
            let mut st = self.state.lock().await;
            let Some(c) = st.containers.get(&id).cloned() else {
                self.forget_container_lock(&id);
                return Ok(()); // removed meanwhile (--rm)
            };
            if !c.is_running() {
                self.destroy_container(&mut st, &c).await;
                return Ok(());
            }
            // A start that was in progress made it run.
            if !force {
                return Err(running());
            }
        }
        Err(CtlError::conflict(format!(
            "cannot remove container \"/{name}\": it was started again {REMOVE_ATTEMPTS} times during removal: stop whatever starts it, then remove it again"
        )))
    }

    /// Waits for a condition (`not-running`, `next-exit`, `removed`); returns the exit code.
    pub async fn wait_container(
        &self,
        key: &str,
        condition: &str,
    ) -> CtlResult<impl std::future::Future<Output = WaitResult> + use<>> {
        if !matches!(condition, "" | "not-running" | "next-exit" | "removed") {
            return Err(CtlError::invalid(format!(
                "invalid condition: \"{condition}\""
            )));
        }
        let mut rx = self.subscribe();
        let (id, running, code) = {
            let st = self.state.lock().await;
            let c = st.find_container(key)?;
            (c.id.clone(), c.is_running(), c.state.exit_code)
        };
        let condition = condition.to_string();
        Ok(async move {
            if (condition.is_empty() || condition == "not-running") && !running {
                return WaitResult { status_code: code };
            }
            let mut last = code;
            loop {
                match rx.recv().await {
                    Ok(ev) if ev.id == id => {
                        if ev.action == "die" {
                            last = ev
                                .attributes
                                .get("exitCode")
                                .and_then(|c| c.parse().ok())
                                .unwrap_or(last);
                            if condition != "removed" {
                                return WaitResult { status_code: last };
                            }
                        }
                        if ev.action == "destroy" {
                            return WaitResult { status_code: last };
                        }
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return WaitResult { status_code: last },
                }
            }
        })
    }

    pub(crate) fn view(&self, st: &State, c: &Container) -> ContainerView {
        // A `container:` joiner uses its owner's files.
        let dir = self.container_dir(&self.network_root(st, c).id);
        ContainerView {
            container: c.clone(),
            endpoints: st.container_endpoints(&c.id).into_iter().cloned().collect(),
            networks: c
                .networks
                .keys()
                .filter_map(|id| st.networks.get(id).map(|n| (id.clone(), n.clone())))
                .collect(),
            sandbox_key: if c.is_running() {
                self.sandbox_path(c)
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            } else {
                String::new()
            },
            log_path: self.log_path(&c.id),
            hosts_path: dir.join("hosts"),
            resolv_path: dir.join("resolv.conf"),
            hostname_path: dir.join("hostname"),
            volumes_root: self.cfg.data_root.join("volumes"),
        }
    }

    /// Inspects a container.
    pub async fn inspect_container(&self, key: &str) -> CtlResult<ContainerView> {
        let st = self.state.lock().await;
        let c = st.find_container(key)?;
        Ok(self.view(&st, c))
    }

    /// Removes every stopped container; returns their IDs.
    pub async fn prune_containers(&self) -> CtlResult<Vec<String>> {
        let mut st = self.state.lock().await;
        let victims: Vec<Container> = st
            .containers
            .values()
            .filter(|c| !c.is_running() && c.state.status != ContainerStatus::Restarting)
            .cloned()
            .collect();
        let mut ids = Vec::new();
        for c in victims {
            // A container being started (or otherwise worked on) is not pruned; only
            // try its lock: waiting for it while holding the state lock could deadlock.
            let Some(_ctr_lock) = self.try_container_lock(&c.id) else {
                continue;
            };
            self.destroy_container(&mut st, &c).await;
            ids.push(c.id);
        }
        Ok(ids)
    }
}

/// Gives addresses back to an IPAM plugin; failures are logged.
async fn release_remote(ipam: &netloom_drivers::remote::RemoteIpam, got: &[(String, IpAddr)]) {
    for (pool, a) in got {
        if let Err(e) = ipam.release_address(pool, *a).await {
            warn!(address = %a, error = %e, "IPAM plugin could not release an address");
        }
    }
}

/// How long a process may take to die after SIGKILL, and its exit to be recorded
/// once nothing else holds its container's lock.
const KILL_WAIT: Duration = Duration::from_secs(15);

/// How many times `rm -f` kills a container that a start in progress made run again.
const REMOVE_ATTEMPTS: usize = 3;

/// Whether a container's process still runs: exists, is no zombie, and is the one that
/// was started (its PID not reused). A start time of 0 (unknown) only checks the PID.
fn process_alive(pid: i32, start_time: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    if start_time == 0 {
        return netloom_runtime::proc_start_time(pid).is_some();
    }
    netloom_runtime::is_alive(pid, start_time)
}

/// Waits up to `t` for a process to die; true if it did.
/// SIGKILLs the container's process if it still lives (never a dead PID: it may be
/// someone else's by now) and waits up to [`KILL_WAIT`] for it to be gone.
async fn sigkill_and_wait(
    rt: &netloom_runtime::runc::OciRuntime,
    id: &str,
    name: &str,
    pid: i32,
    start_time: u64,
) -> CtlResult<()> {
    // The init directly (through a pidfd); the runtime only if that cannot be done.
    let direct = netloom_runtime::kill_init(pid, start_time, libc::SIGKILL);
    if direct.is_err()
        && process_alive(pid, start_time)
        && let Err(e) = rt.kill(id, libc::SIGKILL).await
    {
        // The runtime could not even be run (out of descriptors or processes, say):
        // SIGKILL the container's init directly, which needs neither.
        warn!(container = %name, error = %e, "runtime kill failed; signalling the process");
        let _ = netloom_runtime::kill_process(pid, libc::SIGKILL);
    }
    if wait_process_exit(pid, start_time, KILL_WAIT).await {
        Ok(())
    } else {
        Err(CtlError::internal(format!(
            "container {name} did not stop after SIGKILL"
        )))
    }
}

async fn wait_process_exit(pid: i32, start_time: u64, t: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + t;
    while process_alive(pid, start_time) {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

fn random_mac() -> String {
    use rand::Rng;
    let mut b = [0u8; 6];
    rand::rng().fill_bytes(&mut b);
    b[0] = (b[0] & 0xfe) | 0x02;
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Docker-style `adjective_name` for unnamed containers.
fn generate_name(st: &State, id: &str) -> String {
    const LEFT: &[&str] = &[
        "brave", "calm", "eager", "fervent", "gentle", "happy", "keen", "lucid", "nifty", "quirky",
        "serene", "vibrant",
    ];
    const RIGHT: &[&str] = &[
        "bardeen", "curie", "darwin", "euler", "fermi", "hopper", "lovelace", "noether", "pascal",
        "ritchie", "turing", "wozniak",
    ];
    let b = id.as_bytes();
    let l = LEFT[b.first().copied().unwrap_or(0) as usize % LEFT.len()];
    let r = RIGHT[b.get(1).copied().unwrap_or(0) as usize % RIGHT.len()];
    let base = format!("{l}_{r}");
    if !st.containers.values().any(|c| c.name == base) {
        return base;
    }
    format!("{base}_{}", &id[..6.min(id.len())])
}

/// Adds to `into` what `from` sets (endpoint settings given twice for one network).
fn merge_request(into: &mut EndpointRequest, from: &EndpointRequest) {
    into.ipv4 = into.ipv4.or(from.ipv4);
    into.ipv6 = into.ipv6.or(from.ipv6);
    for a in &from.aliases {
        if !into.aliases.contains(a) {
            into.aliases.push(a.clone());
        }
    }
    into.links.extend(from.links.iter().cloned());
    if into.mac.is_empty() {
        into.mac = from.mac.clone();
    }
    for (k, v) in &from.driver_opts {
        into.driver_opts
            .entry(k.clone())
            .or_insert_with(|| v.clone());
    }
}
