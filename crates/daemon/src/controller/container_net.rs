//! `--network container:NAME` (compose's `network_mode: service:x`): a container that
//! joins the network namespace of another, as Docker has it.
//!
//! - At create, `NAME` is resolved to `container:<ID>` (the mode kept in the record),
//!   and what the joined namespace decides is refused with Docker's "conflicting
//!   options" messages: `-h`, `--dns`, `--add-host`, `--link`, `-p`/`-P`, `--expose`,
//!   `--mac-address`, `--ip`/`--ip6`, `--network-alias`, a second network. netloom also
//!   refuses `--dns-search`, `--dns-option` and `--domainname`, which dockerd accepts and
//!   drops.
//! - The joiner has no sandbox, endpoint or name of its own: its process is started in
//!   the owner's namespace (`/proc/<owner's PID>/ns/net`, as dockerd does, so chains
//!   work), with the owner's hostname, domain name and generated files (`/etc/hosts`,
//!   `/etc/resolv.conf`: the owner's DNS), and the owner's published ports reach it.
//! - The owner must run when the joiner starts ("cannot join network of a non running
//!   container"). When the owner stops, its namespace keeps only `lo` for the joiners
//!   that still run in it (the endpoints' interfaces are deleted, not left to the
//!   namespace's end); a restarted owner gets a new namespace, which running joiners do
//!   not see. Removing the owner is allowed; a joiner whose owner is gone cannot start.

use std::path::PathBuf;

use netloom_model::Container;
use tracing::warn;

use super::containers::ContainerCreate;
use super::{Controller, Locked, State};
use crate::error::{CtlError, CtlResult};

/// The network mode's prefix.
const PREFIX: &str = "container:";

/// Whether a network mode joins another container's namespace.
pub(crate) fn is_container_mode(mode: &str) -> bool {
    mode.starts_with(PREFIX)
}

/// The ID of the container whose namespace `c` joins.
pub(crate) fn owner_id(c: &Container) -> Option<&str> {
    c.network_mode.strip_prefix(PREFIX)
}

/// How deep `container:` chains are followed (a joiner of a joiner …).
const MAX_CHAIN: usize = 16;

/// Docker's messages (moby `runconfig/errors.go`).
const HOSTNAME: &str = "conflicting options: hostname and the network mode";
const DNS: &str = "conflicting options: dns and the network mode";
const HOSTS: &str = "conflicting options: custom host-to-IP mapping and the network mode";
const MAC: &str = "conflicting options: mac-address and the network mode";
const PUBLISH: &str = "conflicting options: port publishing and the container type network mode";
const EXPOSE: &str = "conflicting options: port exposing and the container type network mode";
const ALIAS: &str =
    "network-scoped alias is supported only for containers in user defined networks";
const IP: &str = "user specified IP address is supported on user defined networks only";
const SHARED: &str = "container sharing network namespace with another container or host cannot be connected to any other network";

/// What a joiner takes from the container it joins.
pub(crate) struct Joined {
    /// `container:<owner's ID>`.
    mode: String,
    hostname: String,
    domainname: String,
}

impl Joined {
    /// Makes `ctr` (built as a `none` container) the joiner: its mode, no networks, the
    /// owner's names.
    pub(crate) fn apply(&self, ctr: &mut Container) {
        ctr.network_mode = self.mode.clone();
        ctr.networks.clear();
        ctr.network_order.clear();
        ctr.hostname = self.hostname.clone();
        ctr.domainname = self.domainname.clone();
    }
}

impl Controller {
    /// For a create in `container:NAME` mode: checks the request as dockerd does, then
    /// turns it into a `none` request (no endpoints), to be finished by
    /// [`Joined::apply`]. `None` for any other mode.
    pub(crate) fn take_container_mode(
        &self,
        st: &State,
        req: &mut ContainerCreate,
    ) -> CtlResult<Option<Joined>> {
        let Some(target) = req.networking.mode.strip_prefix(PREFIX) else {
            return Ok(None);
        };
        if target.is_empty() {
            return Err(CtlError::invalid(
                "Invalid network mode: invalid container format container:<name|id>",
            ));
        }
        let owner = st.find_container(target)?;
        let conflict = |m: &str| Err(CtlError::invalid(m));
        let eps = req.networking.endpoints.values();
        if !req.hostname.is_empty() {
            return conflict(HOSTNAME);
        }
        if !req.links.is_empty() || eps.clone().any(|e| !e.links.is_empty()) {
            return conflict(super::links::CONTAINER_AND_LINKS);
        }
        if !req.dns.is_empty() {
            return conflict(DNS);
        }
        if !req.extra_hosts.is_empty() {
            return conflict(HOSTS);
        }
        if eps.clone().any(|e| !e.mac.is_empty()) {
            return conflict(MAC);
        }
        if !req.port_bindings.is_empty() || req.publish_all {
            return conflict(PUBLISH);
        }
        if !req.exposed_ports.is_empty() {
            return conflict(EXPOSE);
        }
        if eps.clone().any(|e| !e.aliases.is_empty()) {
            return conflict(ALIAS);
        }
        if eps.clone().any(|e| e.ipv4.is_some() || e.ipv6.is_some()) {
            return conflict(IP);
        }
        // Endpoint settings may name the mode itself (the docker CLI does); any other
        // network, or driver options, would attach the joiner somewhere.
        if req
            .networking
            .endpoints
            .iter()
            .any(|(k, e)| !is_container_mode(k) || !e.driver_opts.is_empty())
        {
            return conflict(SHARED);
        }
        for (what, set) in [
            ("dns search domains", !req.dns_search.is_empty()),
            ("dns options", !req.dns_options.is_empty()),
            ("domainname", !req.domainname.is_empty()),
        ] {
            if set {
                return Err(CtlError::invalid(format!(
                    "conflicting options: {what} and the network mode (a container:NAME container uses NAME's resolv.conf and names: set them on {})",
                    owner.name
                )));
            }
        }
        let joined = Joined {
            mode: format!("{PREFIX}{}", owner.id),
            hostname: owner.hostname.clone(),
            domainname: owner.domainname.clone(),
        };
        req.networking.mode = "none".into();
        req.networking.endpoints.clear();
        Ok(Some(joined))
    }

    /// The container whose namespace, hostname and files `c` uses: `c` itself, or the end
    /// of its `container:` chain (as far as the owners still exist).
    pub(crate) fn network_root<'a>(&self, st: &'a State, c: &'a Container) -> &'a Container {
        let mut at = c;
        for _ in 0..MAX_CHAIN {
            match owner_id(at).and_then(|id| st.containers.get(id)) {
                Some(owner) => at = owner,
                None => break,
            }
        }
        at
    }

    /// For a joiner about to start: the namespace its process joins, the owner's
    /// (`/proc/<PID>/ns/net`). The owner must run. `None` for other containers.
    pub(crate) fn joined_netns(&self, st: &State, c: &Container) -> CtlResult<Option<PathBuf>> {
        let Some(id) = owner_id(c) else {
            return Ok(None);
        };
        let Some(owner) = st.containers.get(id) else {
            return Err(CtlError::not_found(format!(
                "No such container: {id} (container {} joins its network: create it with another --network)",
                c.name
            )));
        };
        if owner.id == c.id {
            return Err(CtlError::invalid("cannot join own network"));
        }
        if !owner.is_running()
            || !netloom_runtime::is_alive(owner.state.pid, owner.state.pid_start_time)
        {
            return Err(CtlError::conflict(format!(
                "cannot join network of a non running container: {id}"
            )));
        }
        Ok(Some(PathBuf::from(format!(
            "/proc/{}/ns/net",
            owner.state.pid
        ))))
    }

    /// A joiner's generated files: its owner's (the end of the chain), bind-mounted as
    /// they are; `None` for other containers.
    pub(crate) fn joined_files(&self, st: &State, c: &Container) -> Option<Vec<(PathBuf, String)>> {
        owner_id(c)?;
        let root = self.network_root(st, c);
        let dir = self.container_dir(&root.id);
        Some(vec![
            (dir.join("hosts"), "/etc/hosts".into()),
            (dir.join("hostname"), "/etc/hostname".into()),
            (dir.join("resolv.conf"), "/etc/resolv.conf".into()),
        ])
    }

    /// Whether a running container's process is in `owner`'s namespace through
    /// `container:` networking (directly or along a chain).
    fn has_running_joiners(&self, st: &State, owner: &Container) -> bool {
        st.containers.values().any(|j| {
            if !j.is_running() || j.id == owner.id {
                return false;
            }
            let mut at = j;
            for _ in 0..MAX_CHAIN {
                let Some(id) = owner_id(at) else { return false };
                if id == owner.id {
                    return true;
                }
                match st.containers.get(id) {
                    Some(next) => at = next,
                    None => return false,
                }
            }
            false
        })
    }

    /// Before `owner`'s sandbox is removed: if joiners still run in it (and keep the
    /// namespace alive), deletes every interface but `lo` there, so that they lose the
    /// owner's networking (as with Docker) instead of keeping its addresses, which IPAM
    /// hands out again.
    pub(crate) async fn release_joiners(
        &self,
        st: &mut Locked<'_>,
        owner: &Container,
        sandbox: &Option<PathBuf>,
    ) {
        let Some(sb) = sandbox else { return };
        if !self.has_running_joiners(st, owner) {
            return;
        }
        let inner = match netloom_kernel::Netlink::in_netns(sb) {
            Ok(nl) => nl,
            Err(e) => {
                warn!(container = %owner.name, error = %e, "cannot enter the sandbox its joiners share");
                return;
            }
        };
        let links = match inner.links().await {
            Ok(l) => l,
            Err(e) => {
                warn!(container = %owner.name, error = %e, "cannot list the interfaces of the sandbox its joiners share");
                return;
            }
        };
        for l in links.iter().filter(|l| l.name != "lo") {
            if let Err(e) = inner.delete_link(&l.name).await {
                warn!(container = %owner.name, link = %l.name, error = %e, "cannot remove an interface from the sandbox its joiners share");
            }
        }
    }
}
