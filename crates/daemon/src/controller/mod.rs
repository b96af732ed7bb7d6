//! The controller: the only place that sequences work. It checks a request
//! completely, writes intent to the store, then calls drivers and the runtime; a
//! failure part-way rolls back what was done, and a crash part-way is repaired by
//! reconciliation at start-up (store = intent, kernel = fact).
//!
//! # Locks
//!
//! All state sits behind one async lock, [`Controller::state`]. Plugin calls (remote
//! network drivers, IPAM plugins) can take up to `plugin-timeout`, so the controller
//! never holds that lock across one: a request works through a [`Locked`] handle and
//! runs each plugin call inside [`Locked::without`], which lets go of the lock for the
//! call and takes it back afterwards. Local drivers (bridge, macvlan, host, null) are
//! fast and keep the lock.
//!
//! While the lock is let go, what the request is in the middle of stays visible in the
//! state, so no other request can undercut it:
//! - an endpoint being attached or detached counts in [`State::busy_networks`]:
//!   `network rm` refuses its network meanwhile;
//! - a network being removed is in [`State::removing_networks`]: nothing attaches to
//!   it, a second `network rm` is refused;
//! - operations on one container (start, exit handling, connect, disconnect, remove)
//!   run one at a time under that container's lock ([`Controller::container_lock`]).
//!
//! Lock order, everywhere: a container's lock first, then the state lock. A request
//! never waits for a container's lock while it holds the state lock (it resolves the
//! container's ID, lets go of the state lock, takes the container's lock, then the
//! state lock again); `prune` only *tries* container locks. At most one container lock
//! is held at a time.

mod autoremove;
mod container_net;
pub mod containers;
mod dns;
mod drift;
mod endpoint_table;
mod event_attrs;
mod exec;
mod exits;
mod files;
mod filters;
mod gateway_leg;
mod global;
mod global_peers;
pub mod health;
mod host_net;
mod image_io;
mod images;
mod info;
mod links;
mod netns_share;
pub mod networks;
mod ports;
mod pull;
mod reconcile;
mod rename;
mod restart;
mod runspec;
mod top;
mod volume_mounts;
pub mod volumes;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ipnet::IpNet;
use netloom_drivers::Registry;
use netloom_ipam::Ipam;
use netloom_kernel::Netlink;
use netloom_model::{Container, Endpoint, Image, Network};
use netloom_store::{Expect, Op, Store};
use serde::Serialize;
use tokio::sync::{Mutex, MutexGuard, OwnedMutexGuard, broadcast};

use crate::config::Config;
use crate::error::{CtlError, CtlResult};

pub use containers::{ContainerCreate, ContainerView, NetworkingRequest};
pub use exec::ExecConfig;
pub use filters::PS_FILTERS;
pub use images::normalize_ref;
pub(crate) use images::reg_err;
pub use networks::{ConnectRequest, NetworkCreate, NetworkFilter, NetworkView, created_unix};
pub use pull::PullRequest;
pub use volumes::{VolumeCreate, VolumeFilter, VolumeView};

/// Store key prefixes.
pub(crate) mod keys {
    /// Networks.
    pub const NETWORK: &str = "network/";
    /// Endpoints.
    pub const ENDPOINT: &str = "endpoint/";
    /// Containers.
    pub const CONTAINER: &str = "container/";
    /// Images.
    pub const IMAGE: &str = "image/";
    /// IPAM cursors, per subnet.
    pub const CURSOR: &str = "ipam-cursor/";
}

/// Something that happened to an object (also streamed on `/events`).
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// `network`, `container`, `image`.
    pub kind: &'static str,
    /// `create`, `start`, `die`, `destroy`, `connect`, ...
    pub action: &'static str,
    /// Object ID.
    pub id: String,
    /// Extra attributes (name, exit code, container).
    pub attributes: BTreeMap<String, String>,
    /// When it happened.
    pub time: std::time::SystemTime,
}

/// How many recent events `/events?since=` can replay.
const EVENT_RING: usize = 1024;

/// Guard of [`Controller::attach_waiting`].
pub struct AttachWaiter {
    ctl: Arc<Controller>,
    id: String,
}

impl Drop for AttachWaiter {
    fn drop(&mut self) {
        if let Ok(mut m) = self.ctl.attach_waiters.lock()
            && let Some(n) = m.get_mut(&self.id)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.id);
            }
        }
    }
}

/// In-memory view of the store plus IPAM and exec sessions; guarded by one lock.
pub(crate) struct State {
    pub networks: BTreeMap<String, Network>,
    pub endpoints: endpoint_table::EndpointTable,
    pub containers: BTreeMap<String, Container>,
    pub images: BTreeMap<String, Image>,
    pub ipam: Ipam,
    pub execs: HashMap<String, exec::ExecSession>,
    pub firewall: netloom_drivers::firewall::Firewall,
    /// Networks whose creation waits for a plugin (`CreateNetwork` runs without the state
    /// lock): name → ID. Their names are taken, their pools reserved.
    pub pending_networks: BTreeMap<String, String>,
    /// Networks with endpoints being attached or detached through a plugin call made
    /// without the lock: network ID → how many. `network rm` refuses them meanwhile.
    pub busy_networks: BTreeMap<String, usize>,
    /// Networks whose removal waits for a plugin (`DeleteNetwork`, IPAM releases run
    /// without the lock): nothing may attach to them, a second removal is refused.
    pub removing_networks: std::collections::BTreeSet<String>,
    /// Volumes by name (volumes.rs).
    pub volumes: BTreeMap<String, netloom_model::Volume>,
    /// Swarm networks installed by lazy extension, with when (see global.rs).
    pub extended: HashMap<String, std::time::Instant>,
    /// Swarm networks this node removed, with when: the relay may still list them for
    /// a moment, and the sync must not install them again meanwhile.
    pub removed_global: HashMap<String, std::time::Instant>,
    /// The built-in drivers, for what a network's driver can do (plugins are not here).
    pub drivers: Registry,
}

/// The state lock as held by one request, which may let go of it around plugin calls
/// (see the module doc).
pub(crate) struct Locked<'a> {
    mutex: &'a Mutex<State>,
    /// Always `Some` except inside [`Locked::without`], which borrows `self` mutably
    /// for that time, so no one can look at the state then.
    guard: Option<MutexGuard<'a, State>>,
    /// Never let go (start-up reconciliation, before the API serves anyone).
    pinned: bool,
}

impl Locked<'_> {
    /// Runs `f` (a plugin call) without the state lock and takes the lock back after.
    /// Whatever was read from the state before may have changed when this returns.
    pub(crate) async fn without<F: std::future::Future>(&mut self, f: F) -> F::Output {
        if self.pinned {
            return f.await;
        }
        self.guard = None;
        let out = f.await;
        self.guard = Some(self.mutex.lock().await);
        out
    }

    /// [`Locked::without`] if `release`, else `f` with the lock held (local drivers).
    pub(crate) async fn without_if<F: std::future::Future>(
        &mut self,
        release: bool,
        f: F,
    ) -> F::Output {
        if release {
            self.without(f).await
        } else {
            f.await
        }
    }
}

impl std::ops::Deref for Locked<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        // Invariant: `guard` is `None` only while `without` runs (see the field).
        self.guard
            .as_deref()
            .expect("state lock held outside Locked::without")
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut State {
        self.guard
            .as_deref_mut()
            .expect("state lock held outside Locked::without")
    }
}

/// Paths the controller works with.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `<exec-root>/netns`: sandbox namespace files.
    pub netns: PathBuf,
    /// `<exec-root>/containers`: runtime state per container.
    pub run: PathBuf,
    /// `<data-root>/containers`: layers, logs, generated files per container.
    pub containers: PathBuf,
    /// `<data-root>/images`: unpacked image roots.
    pub images: PathBuf,
    /// `<data-root>/tmp`: uploads in progress.
    pub tmp: PathBuf,
}

/// The controller.
pub struct Controller {
    pub(crate) cfg: Config,
    pub(crate) paths: Paths,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) drivers: Registry,
    /// Remote driver and IPAM plugins, activated on first use.
    pub(crate) plugins: netloom_drivers::remote::Plugins,
    pub(crate) nl: Netlink,
    pub(crate) state: Mutex<State>,
    pub(crate) events: broadcast::Sender<Event>,
    /// Default MTU for bridges.
    pub(crate) mtu: u32,
    /// Tag that marks netloom's kernel objects (links' alias).
    pub(crate) tag: String,
    /// The embedded DNS server (127.0.0.11 in every sandbox on a user-defined network).
    pub(crate) resolver: Arc<netloom_resolver::Resolver>,
    /// Interactive attach sessions waiting for their container to start, per container ID.
    pub(crate) attach_waiters: std::sync::Mutex<HashMap<String, usize>>,
    /// The most recent events, oldest first, for `/events?since=`.
    pub(crate) recent_events: std::sync::Mutex<std::collections::VecDeque<Event>>,
    /// One lock per container (ID → lock): its start, exit handling, connect,
    /// disconnect and removal never interleave. Taken before the state lock.
    pub(crate) container_locks: std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Containers with a start in progress (see [`Controller::mark_starting`]).
    pub(crate) starting: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Labels, image and name of each container, added to its events (event_attrs.rs).
    pub(crate) container_attrs: event_attrs::AttrMap,
    /// Restart policies' back-off delays and pending restarts.
    pub(crate) supervisor: restart::Supervisor,
    /// The overlay driver (also in `drivers`): the control plane programs its peers.
    pub(crate) overlay: Arc<netloom_drivers::overlay::OverlayDriver>,
    /// The daemon's swarm agent, set once both are up (global.rs).
    pub(crate) swarm: std::sync::OnceLock<Arc<crate::cluster::Swarm>>,
}

/// Marks a container's start in progress while alive (a drop guard, so that no early
/// return or panic can leave the mark behind).
pub(crate) struct StartingMark<'a> {
    ctl: &'a Controller,
    id: String,
}

impl Drop for StartingMark<'_> {
    fn drop(&mut self) {
        self.ctl
            .starting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// Generates a random 64-hex ID.
pub fn new_id() -> String {
    use rand::Rng;
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Current time, RFC 3339 with nanoseconds (Docker's format).
pub fn now() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

pub(crate) fn put<T: Serialize>(key: String, v: &T) -> CtlResult<Op> {
    let value =
        serde_json::to_vec(v).map_err(|e| CtlError::internal(format!("encode {key}: {e}")))?;
    Ok(Op::put(key, value, Expect::Any))
}

pub(crate) fn del(key: String) -> Op {
    Op::Delete {
        key,
        expect: Expect::Any,
    }
}

impl Controller {
    /// Opens the store, sets up drivers, and reconciles the kernel with the store.
    pub async fn start(cfg: Config, store: Arc<dyn Store>) -> anyhow::Result<Arc<Controller>> {
        let paths = Paths {
            netns: cfg.exec_root.join("netns"),
            run: cfg.exec_root.join("containers"),
            containers: cfg.data_root.join("containers"),
            images: cfg.data_root.join("images"),
            tmp: cfg.data_root.join("tmp"),
        };
        for d in [
            &paths.netns,
            &paths.run,
            &paths.containers,
            &paths.images,
            &paths.tmp,
        ] {
            std::fs::create_dir_all(d)
                .map_err(|e| anyhow::anyhow!("create {}: {e}", d.display()))?;
        }
        Self::share_sandbox_dir(&paths);
        let nl = Netlink::current()?;
        let mtu = match cfg.mtu {
            Some(m) => m,
            None => nl.default_route_mtu().await.ok().flatten().unwrap_or(1500),
        };
        // The tag distinguishes this daemon's objects; the daemon owns its network
        // namespace, so one fixed tag is enough and survives a change of data root.
        let tag = "netloom".to_string();
        let mut drivers = Registry::default();
        drivers.register(Arc::new(netloom_drivers::bridge::BridgeDriver::new(
            nl.clone(),
            &tag,
            mtu,
            DEFAULT_BRIDGE,
        )));
        for flavor in [
            netloom_drivers::macvlan::Flavor::Macvlan,
            netloom_drivers::macvlan::Flavor::Ipvlan,
        ] {
            drivers.register(Arc::new(netloom_drivers::macvlan::MacvlanDriver::new(
                nl.clone(),
                flavor,
                &tag,
            )));
        }
        let overlay = Arc::new(netloom_drivers::overlay::OverlayDriver::new(
            nl.clone(),
            netloom_drivers::overlay::OverlayOptions {
                netns_dir: cfg.exec_root.join("overlay"),
                data_path: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                port: netloom_drivers::overlay::DEFAULT_PORT,
                tag: tag.clone(),
            },
        ));
        drivers.register(overlay.clone());
        drivers.register(Arc::new(netloom_drivers::passive::PassiveDriver::host()));
        drivers.register(Arc::new(netloom_drivers::passive::PassiveDriver::null()));
        if let Err(e) = netloom_kernel::sysctl::set("net.ipv4.ip_forward", "1") {
            tracing::warn!(error = %e, "cannot enable IPv4 forwarding");
        }
        let (events, _) = broadcast::channel(1024);
        let ctl = Arc::new(Controller {
            state: Mutex::new(State {
                networks: BTreeMap::new(),
                endpoints: Default::default(),
                containers: BTreeMap::new(),
                images: BTreeMap::new(),
                ipam: Ipam::new(cfg.default_pools.clone()),
                execs: HashMap::new(),
                firewall: netloom_drivers::firewall::Firewall::new(&table_name(&cfg.data_root))
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
                pending_networks: BTreeMap::new(),
                busy_networks: BTreeMap::new(),
                removing_networks: Default::default(),
                volumes: BTreeMap::new(),
                extended: HashMap::new(),
                removed_global: HashMap::new(),
                drivers: drivers.clone(),
            }),
            plugins: netloom_drivers::remote::Plugins::new(cfg.plugins.clone(), nl.clone()),
            cfg,
            paths,
            store,
            drivers,
            nl,
            events,
            mtu,
            tag,
            resolver: netloom_resolver::Resolver::new(netloom_resolver::ResolverConfig::default()),
            attach_waiters: std::sync::Mutex::new(HashMap::new()),
            recent_events: std::sync::Mutex::new(std::collections::VecDeque::new()),
            container_locks: std::sync::Mutex::new(HashMap::new()),
            starting: Default::default(),
            container_attrs: Default::default(),
            supervisor: Default::default(),
            overlay,
            swarm: std::sync::OnceLock::new(),
        });
        ctl.reconcile().await?;
        ctl.resume_supervision();
        ctl.watch_firewall();
        ctl.watch_links();
        Ok(ctl)
    }

    /// The rules the firewall needs for the current networks.
    pub(crate) fn firewall_rules(st: &State) -> netloom_drivers::firewall::Desired {
        let nets = st
            .networks
            .values()
            .filter(|n| st.caps(n).host_firewall)
            .map(|n| netloom_drivers::firewall::NetRules {
                iface: n.iface.clone(),
                subnets: n.ipam.configs.iter().map(|c| c.subnet).collect(),
                internal: n.internal,
                icc: n.bool_option(netloom_drivers::bridge::OPT_ENABLE_ICC, true),
                masquerade: n.bool_option(netloom_drivers::bridge::OPT_ENABLE_MASQ, true),
            })
            .collect();
        netloom_drivers::firewall::Desired {
            nets,
            ports: Self::port_rules(st),
        }
    }

    /// Brings the firewall in line with the networks: element changes only, or the
    /// whole table when `full` (start-up, or after the table vanished).
    pub(crate) async fn sync_firewall(&self, st: &mut State, full: bool) -> CtlResult<()> {
        let rules = Self::firewall_rules(st);
        let fw_err = |e: netloom_drivers::firewall::FirewallError| CtlError::invalid(e.to_string());
        let script = if full {
            Some(st.firewall.render_full(&rules).map_err(fw_err)?)
        } else {
            st.firewall.render_delta(&rules).map_err(fw_err)?
        };
        let Some(script) = script else { return Ok(()) };
        if let Err(e) = netloom_kernel::nft::apply(&script).await {
            if full {
                return Err(CtlError::internal(format!(
                    "apply firewall table {}: {e}",
                    st.firewall.table()
                )));
            }
            tracing::warn!(error = %e, "firewall update failed; rewriting the whole table");
            let all = st.firewall.render_full(&rules).map_err(fw_err)?;
            netloom_kernel::nft::apply(&all).await.map_err(|e| {
                CtlError::internal(format!("apply firewall table {}: {e}", st.firewall.table()))
            })?;
        }
        st.firewall.mark_applied(&rules).map_err(fw_err)?;
        Ok(())
    }

    /// Keeps the firewall in place: restores netloom's table if something (a `flush
    /// ruleset`, a firewall reload) removed it, and makes sure every host `forward`
    /// chain at `policy drop` carries netloom's one accept rule. It looks when the
    /// kernel reports an nftables change (and once a minute anyway); where those
    /// reports cannot be had, twice a second.
    fn watch_firewall(self: &Arc<Self>) {
        use std::time::Duration;
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut hooked: std::collections::BTreeSet<(String, String, String, u64)> =
                Default::default();
            let mut monitor = match netloom_kernel::nft::RulesetMonitor::open() {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::warn!(error = %e, "no nftables change notifications: checking the firewall twice a second");
                    None
                }
            };
            let mut first = true;
            let mut last = std::time::Instant::now();
            loop {
                match monitor.as_mut() {
                    _ if first => first = false,
                    Some(m) => {
                        if let Ok(Err(e)) =
                            tokio::time::timeout(Duration::from_secs(60), m.changed()).await
                        {
                            tracing::warn!(error = %e, "nftables change notifications failed: checking the firewall twice a second");
                            monitor = None;
                            continue;
                        }
                        // One `nft -f` is many messages: let the batch end, then take
                        // what came meanwhile, so one look covers it all.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        // At most four looks a second, so another firewall manager that
                        // reacts to every change cannot ping-pong with this one.
                        if let Some(wait) = Duration::from_millis(250).checked_sub(last.elapsed()) {
                            tokio::time::sleep(wait).await;
                        }
                        let _ = tokio::time::timeout(Duration::ZERO, m.changed()).await;
                    }
                    None => tokio::time::sleep(Duration::from_millis(500)).await,
                }
                let Some(ctl) = weak.upgrade() else { return };
                last = std::time::Instant::now();
                let chains = match netloom_kernel::nft::list_chains().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot list nftables chains");
                        continue;
                    }
                };
                let table = ctl.state.lock().await.firewall.table().to_string();
                let ours = netloom_drivers::firewall::Firewall::chain_names().all(|name| {
                    chains.iter().any(|c| {
                        c["table"] == table.as_str() && c["family"] == "inet" && c["name"] == name
                    })
                });
                if !ours {
                    tracing::warn!(table = %table, "firewall table or one of its chains vanished; restoring it");
                    let mut st = ctl.state.lock().await;
                    if let Err(e) = ctl.sync_firewall(&mut st, true).await {
                        tracing::warn!(error = %e, "cannot restore the firewall table");
                    }
                }
                let text =
                    |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
                for c in &chains {
                    if c["hook"] != "forward"
                        || c["policy"] != "drop"
                        || c["table"] == table.as_str()
                    {
                        continue;
                    }
                    let key = (
                        text(c, "family"),
                        text(c, "table"),
                        text(c, "name"),
                        c["handle"].as_u64().unwrap_or(0),
                    );
                    if hooked.contains(&key) {
                        continue;
                    }
                    let present = netloom_kernel::nft::list_rules(&key.0, &key.1, &key.2)
                        .await
                        .map(|rules| {
                            rules
                                .iter()
                                .any(|r| r["comment"] == netloom_drivers::firewall::HOOK_COMMENT)
                        })
                        .unwrap_or(false);
                    if !present {
                        match netloom_drivers::firewall::Firewall::render_host_hook(
                            &key.0, &key.1, &key.2,
                        ) {
                            Ok(rule) => match netloom_kernel::nft::apply(&rule).await {
                                Ok(()) => {
                                    tracing::info!(family = %key.0, table = %key.1, chain = %key.2, "added netloom's accept rule to a host forward chain at policy drop")
                                }
                                Err(e) => {
                                    tracing::warn!(table = %key.1, chain = %key.2, error = %e, "cannot hook into a host forward chain");
                                    continue;
                                }
                            },
                            Err(e) => {
                                tracing::warn!(table = %key.1, chain = %key.2, error = %e, "not hooking into a host chain with an unusual name");
                                continue;
                            }
                        }
                    }
                    hooked.insert(key);
                }
                // Forget chains that are gone, so a re-created chain gets hooked again.
                hooked.retain(|k| {
                    chains.iter().any(|c| {
                        text(c, "family") == k.0
                            && text(c, "table") == k.1
                            && text(c, "name") == k.2
                            && c["handle"].as_u64().unwrap_or(0) == k.3
                    })
                });
            }
        });
    }

    /// Takes the state lock as a [`Locked`] handle.
    pub(crate) async fn lock_state(&self) -> Locked<'_> {
        Locked {
            mutex: &self.state,
            guard: Some(self.state.lock().await),
            pinned: false,
        }
    }

    /// Takes the state lock for good: [`Locked::without`] keeps it (reconciliation).
    pub(crate) async fn lock_state_pinned(&self) -> Locked<'_> {
        Locked {
            pinned: true,
            ..self.lock_state().await
        }
    }

    /// The lock of container `id` (see the module doc for the lock order: never call
    /// this while holding the state lock).
    pub(crate) async fn container_lock(&self, id: &str) -> OwnedMutexGuard<()> {
        self.container_mutex(id).lock_owned().await
    }

    /// The lock of container `id` if nobody holds it now.
    pub(crate) fn try_container_lock(&self, id: &str) -> Option<OwnedMutexGuard<()>> {
        self.container_mutex(id).try_lock_owned().ok()
    }

    fn container_mutex(&self, id: &str) -> Arc<Mutex<()>> {
        let mut m = self
            .container_locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(m.entry(id.to_string()).or_default())
    }

    /// Marks a start of container `id` in progress until the mark is dropped: `stop` and
    /// `kill` of a container that is not running wait for that start.
    pub(crate) fn mark_starting(&self, id: &str) -> StartingMark<'_> {
        self.starting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id.to_string());
        StartingMark {
            ctl: self,
            id: id.to_string(),
        }
    }

    /// Whether a start of container `id` is in progress.
    pub(crate) fn is_starting(&self, id: &str) -> bool {
        self.starting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(id)
    }

    /// Forgets the lock of a removed container.
    pub(crate) fn forget_container_lock(&self, id: &str) {
        self.container_locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id);
    }

    /// Resolves a container (and first, if given, a network, so errors come in the
    /// usual order), then takes the container's lock and the state lock, in that order.
    /// Returns both and the container's ID; the container may be gone by then.
    pub(crate) async fn lock_container(
        &self,
        key: &str,
        net_key: Option<&str>,
    ) -> CtlResult<(OwnedMutexGuard<()>, Locked<'_>, String)> {
        let id = {
            let st = self.state.lock().await;
            if let Some(n) = net_key {
                st.find_network(n)?;
            }
            st.find_container(key)?.id.clone()
        };
        let guard = self.container_lock(&id).await;
        let lk = self.lock_state().await;
        if !lk.containers.contains_key(&id) {
            drop(lk);
            drop(guard);
            self.forget_container_lock(&id);
            return Err(CtlError::not_found(format!("No such container: {key}")));
        }
        Ok((guard, lk, id))
    }

    /// The driver called `name`: a built-in one, else a remote plugin (discovered and
    /// activated now if needed).
    pub(crate) async fn driver(&self, name: &str) -> CtlResult<Arc<dyn netloom_model::Driver>> {
        if let Some(d) = self.drivers.get(name) {
            return Ok(d);
        }
        match self.plugins.driver(name).await {
            Ok(d) => Ok(d),
            Err(e) => Err(plugin_error(name, e, &self.drivers.names().join(", "))),
        }
    }

    /// Whether `name` is a remote plugin driver (not built in).
    pub(crate) fn is_remote(&self, name: &str) -> bool {
        self.drivers.get(name).is_none()
    }

    /// The remote IPAM driver of a network (None: netloom's default IPAM).
    pub(crate) async fn remote_ipam(
        &self,
        net: &Network,
    ) -> CtlResult<Option<Arc<netloom_drivers::remote::RemoteIpam>>> {
        if is_default_ipam(&net.ipam.driver) {
            return Ok(None);
        }
        self.plugins
            .ipam(&net.ipam.driver)
            .await
            .map(Some)
            .map_err(|e| plugin_error(&net.ipam.driver, e, "default"))
    }

    /// How many event subscriptions are open (`/info` `NEventsListener`).
    pub fn subscriber_count(&self) -> usize {
        self.events.receiver_count()
    }

    /// Subscribes to events.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    pub(crate) fn emit(
        &self,
        kind: &'static str,
        action: &'static str,
        id: &str,
        attrs: &[(&str, String)],
    ) {
        let mut attributes: BTreeMap<String, String> = attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        if kind == "container" {
            self.add_container_attrs(id, &mut attributes);
        }
        let ev = Event {
            kind,
            action,
            id: id.to_string(),
            attributes,
            time: std::time::SystemTime::now(),
        };
        // Record and send under the ring's lock, so that `events_since` sees every
        // event exactly once: in its snapshot or on its subscription.
        match self.recent_events.lock() {
            Ok(mut ring) => {
                if ring.len() >= EVENT_RING {
                    ring.pop_front();
                }
                ring.push_back(ev.clone());
                let _ = self.events.send(ev);
            }
            Err(_) => {
                let _ = self.events.send(ev);
            }
        }
    }

    /// The retained recent events (oldest first) and a subscription to the ones after
    /// them, taken together so that none is missed or repeated.
    pub fn events_since(&self) -> (Vec<Event>, broadcast::Receiver<Event>) {
        match self.recent_events.lock() {
            Ok(ring) => (ring.iter().cloned().collect(), self.events.subscribe()),
            Err(_) => (Vec::new(), self.events.subscribe()),
        }
    }

    /// Registers an interactive attach session waiting for container `id` to start;
    /// the returned guard unregisters it.
    pub fn attach_waiting(self: &Arc<Self>, id: &str) -> AttachWaiter {
        if let Ok(mut m) = self.attach_waiters.lock() {
            *m.entry(id.to_string()).or_default() += 1;
        }
        AttachWaiter {
            ctl: Arc::clone(self),
            id: id.to_string(),
        }
    }

    /// True if an attach session waits for container `id` to start.
    pub(crate) fn attach_pending(&self, id: &str) -> bool {
        self.attach_waiters
            .lock()
            .map(|m| m.get(id).is_some_and(|n| *n > 0))
            .unwrap_or(false)
    }

    pub(crate) async fn commit(&self, ops: Vec<Op>) -> CtlResult<()> {
        if ops.is_empty() {
            return Ok(());
        }
        self.store.apply(ops).await?;
        Ok(())
    }

    /// Directory for uploads in progress.
    pub fn paths_tmp(&self) -> &std::path::Path {
        &self.paths.tmp
    }

    /// The effective configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Counts for `/info`.
    pub async fn counts(&self) -> (usize, usize, usize, usize) {
        let st = self.state.lock().await;
        let running = st.containers.values().filter(|c| c.is_running()).count();
        (
            st.containers.len(),
            running,
            st.containers.len() - running,
            st.images.len(),
        )
    }
}

/// The daemon's nftables table: `netloom_` and a hash of its data root, so two daemons
/// never share a table even in one namespace.
pub fn table_name(data_root: &std::path::Path) -> String {
    let mut h: u32 = 0x811c9dc5;
    for b in data_root.as_os_str().as_encoded_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x01000193);
    }
    format!("netloom_{h:08x}")
}

/// Whether an IPAM driver name means netloom's built-in IPAM.
pub(crate) fn is_default_ipam(name: &str) -> bool {
    matches!(name, "" | "default")
}

/// Maps a plugin error for the API: not found → 404 in Docker's words, everything the
/// plugin said → 500 with its text (as Docker does).
pub(crate) fn plugin_error(
    name: &str,
    e: netloom_drivers::remote::PluginError,
    builtins: &str,
) -> CtlError {
    use netloom_drivers::remote::PluginError as P;
    match e {
        P::NotFound { .. } => CtlError::not_found(format!(
            "could not find plugin {name} in v1 plugin registry: {e} (netloom's built-in drivers: {builtins})"
        )),
        P::NotImplemented { .. } => CtlError::not_found(format!(
            "could not find plugin {name} in v1 plugin registry: {e}"
        )),
        P::BadSpec { .. } => CtlError::invalid(e.to_string()),
        _ => CtlError::internal(e.to_string()),
    }
}

/// Kernel name of the predefined `bridge` network's bridge.
pub const DEFAULT_BRIDGE: &str = "netloom0";

impl State {
    /// The built-in driver of a network; `None` for a remote plugin's network.
    pub(crate) fn driver_of(&self, net: &Network) -> Option<Arc<dyn netloom_model::Driver>> {
        self.drivers.get(&net.driver)
    }

    /// What a network's driver can do (a plugin's networks: [`Capabilities::plugin`]).
    ///
    /// [`Capabilities::plugin`]: netloom_model::Capabilities::plugin
    pub(crate) fn caps(&self, net: &Network) -> netloom_model::Capabilities {
        self.driver_of(net)
            .map(|d| d.capabilities())
            .unwrap_or_else(netloom_model::Capabilities::plugin)
    }

    /// Finds a network: exact ID, exact name, then unique ID prefix (Docker's rule).
    pub fn find_network(&self, key: &str) -> CtlResult<&Network> {
        if let Some(n) = self.networks.get(key) {
            return Ok(n);
        }
        let by_name: Vec<&Network> = self.networks.values().filter(|n| n.name == key).collect();
        if by_name.len() == 1 {
            return Ok(by_name[0]);
        }
        if by_name.len() > 1 {
            return Err(CtlError::invalid(format!(
                "network {key} is ambiguous ({} matches found on name)",
                by_name.len()
            )));
        }
        let by_prefix: Vec<&Network> = if netloom_model::ids::is_hex(key) {
            self.networks
                .values()
                .filter(|n| n.id.starts_with(key))
                .collect()
        } else {
            Vec::new()
        };
        match by_prefix.len() {
            1 => Ok(by_prefix[0]),
            0 => Err(CtlError::not_found(format!("network {key} not found"))),
            n => Err(CtlError::invalid(format!(
                "network {key} is ambiguous ({n} matches found based on ID prefix)"
            ))),
        }
    }

    /// Finds a container: exact ID, exact name (with or without `/`), unique ID prefix.
    pub fn find_container(&self, key: &str) -> CtlResult<&Container> {
        let key = key.strip_prefix('/').unwrap_or(key);
        if let Some(c) = self.containers.get(key) {
            return Ok(c);
        }
        if let Some(c) = self.containers.values().find(|c| c.name == key) {
            return Ok(c);
        }
        let by_prefix: Vec<&Container> = if netloom_model::ids::is_hex(key) {
            self.containers
                .values()
                .filter(|c| c.id.starts_with(key))
                .collect()
        } else {
            Vec::new()
        };
        match by_prefix.len() {
            1 => Ok(by_prefix[0]),
            0 => Err(CtlError::not_found(format!("No such container: {key}"))),
            _ => Err(CtlError::invalid(format!(
                "multiple IDs found with provided prefix: {key}"
            ))),
        }
    }

    /// Counts an attach or detach of an endpoint of network `id` made without the lock.
    pub(crate) fn busy(&mut self, id: &str) {
        *self.busy_networks.entry(id.to_string()).or_default() += 1;
    }

    /// Ends what [`State::busy`] started.
    pub(crate) fn unbusy(&mut self, id: &str) {
        if let Some(n) = self.busy_networks.get_mut(id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.busy_networks.remove(id);
            }
        }
    }

    /// Refuses a network being removed (nothing may attach to it).
    pub(crate) fn check_not_removing(&self, net: &Network) -> CtlResult<()> {
        if self.removing_networks.contains(&net.id) {
            return Err(CtlError::conflict(format!(
                "network {} is being removed: wait for the removal to finish, or use another network",
                net.name
            )));
        }
        Ok(())
    }

    /// Endpoints of a network.
    pub fn network_endpoints(&self, net_id: &str) -> Vec<&Endpoint> {
        self.endpoints.of_network(net_id)
    }

    /// Endpoints of a container.
    pub fn container_endpoints(&self, ctr_id: &str) -> Vec<&Endpoint> {
        self.endpoints.of_container(ctr_id)
    }

    /// Is `addr` inside any pool of the network?
    pub fn pool_of(net: &Network, addr: IpAddr) -> Option<IpNet> {
        net.ipam
            .configs
            .iter()
            .map(|c| c.subnet)
            .find(|s| s.contains(&addr))
    }
}
