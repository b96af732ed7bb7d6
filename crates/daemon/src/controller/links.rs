//! `--link NAME[:ALIAS]`, as Docker has it.
//!
//! - On the default `bridge` network (legacy links): `/etc/hosts` lines and environment
//!   variables for the linked container ([`Controller::links_of`] and
//!   [`Controller::link_env`] in `files.rs`); the linked container must run and be on the
//!   default bridge when the linking one starts.
//! - On a user-defined network: the alias is a name that only the linking container
//!   resolves, through the embedded DNS server, as the linked container's name on that
//!   network (Docker's endpoint-scoped alias); no hosts lines, no variables.
//! - Not with host or `container:` networking (Docker's "conflicting options" errors).

use netloom_model::Container;
use netloom_resolver::LinkAlias;

use super::{Controller, State};
use crate::error::{CtlError, CtlResult};

/// Docker's refusal of links with host networking.
const HOST_AND_LINKS: &str = "conflicting options: host type networking can't be used with links. This would result in undefined behavior";

/// Docker's refusal of links with `container:` networking.
pub(crate) const CONTAINER_AND_LINKS: &str = "conflicting options: container type network can't be used with links. This would result in undefined behavior";

/// `NAME[:ALIAS]` → (NAME without a leading `/`, ALIAS, NAME when none is given).
pub(crate) fn parse_link(l: &str) -> CtlResult<(&str, &str)> {
    let mut parts = l.split(':');
    let (name, alias) = match (parts.next(), parts.next(), parts.next()) {
        (Some(n), None, _) => (n, n),
        (Some(n), Some(a), None) => (n, a),
        _ => {
            return Err(CtlError::invalid(format!(
                "invalid link {l:?}: use NAME or NAME:ALIAS"
            )));
        }
    };
    let name = name.trim_start_matches('/');
    if name.is_empty() || alias.is_empty() {
        return Err(CtlError::invalid(format!(
            "invalid link {l:?}: use NAME or NAME:ALIAS"
        )));
    }
    Ok((name, alias))
}

/// The container another one's network belongs to, following `container:` networking
/// (Docker links to the container that owns the network namespace).
fn network_owner<'a>(st: &'a State, mut c: &'a Container) -> &'a Container {
    for _ in 0..16 {
        let Some(owner) = super::container_net::owner_id(c).and_then(|id| st.containers.get(id))
        else {
            break;
        };
        c = owner;
    }
    c
}

impl Controller {
    /// Docker's checks of a new container's links: each names an existing container,
    /// and neither side uses host networking (`host`: the container does). A
    /// `container:` container never gets here with links (see container_net.rs).
    pub(crate) fn check_links_at_create(
        &self,
        st: &State,
        host: bool,
        links: &[String],
    ) -> CtlResult<()> {
        if links.is_empty() {
            return Ok(());
        }
        if host {
            return Err(CtlError::invalid(HOST_AND_LINKS));
        }
        for l in links {
            let (name, _) = parse_link(l)?;
            let Ok(target) = st.find_container(name) else {
                return Err(CtlError::invalid(format!(
                    "could not get container for {name}: no such container (--link NAME[:ALIAS] needs an existing container)"
                )));
            };
            if network_owner(st, target).network_mode == "host" {
                return Err(CtlError::invalid(HOST_AND_LINKS));
            }
        }
        Ok(())
    }

    /// Docker's checks when a container with legacy links (on the default bridge)
    /// starts: each linked container is on the default bridge and runs.
    pub(crate) fn check_links_at_start(&self, st: &State, c: &Container) -> CtlResult<()> {
        let Some(bridge) = st.networks.values().find(|n| n.is_default_bridge()) else {
            return Ok(());
        };
        let Some(req) = c.networks.get(&bridge.id) else {
            return Ok(());
        };
        for l in &req.links {
            let (name, alias) = parse_link(l)?;
            let Ok(target) = st.find_container(name) else {
                return Err(CtlError::invalid(format!(
                    "could not get container for {name}: no such container: remove the link or create {name}"
                )));
            };
            let target = network_owner(st, target);
            if !target.networks.contains_key(&bridge.id) {
                return Err(CtlError::invalid(format!(
                    "Cannot link to /{}, as it does not belong to the default network",
                    target.name
                )));
            }
            if !target.is_running() {
                return Err(CtlError::invalid(format!(
                    "Cannot link to a non running container: /{} AS /{}/{alias}",
                    target.name, c.name
                )));
            }
        }
        Ok(())
    }

    /// The link aliases container `c` resolves through the embedded DNS server: for each
    /// link on each of its user-defined networks `dns_networks`, `ALIAS` and
    /// `ALIAS.NETWORK` stand for the linked container's name there.
    pub(crate) fn link_aliases(
        &self,
        st: &State,
        c: &Container,
        dns_networks: &[String],
    ) -> Vec<LinkAlias> {
        let mut out = Vec::new();
        for nid in dns_networks {
            let (Some(req), Some(net)) = (c.networks.get(nid), st.networks.get(nid)) else {
                continue;
            };
            for l in &req.links {
                let Ok((name, alias)) = parse_link(l) else {
                    continue;
                };
                // By its current name (the link may name it by ID).
                let target = st.find_container(name).map_or(name, |t| t.name.as_str());
                out.push(LinkAlias {
                    alias: alias.to_string(),
                    target: target.to_string(),
                    network: nid.clone(),
                });
                out.push(LinkAlias {
                    alias: format!("{alias}.{}", net.name),
                    target: format!("{target}.{}", net.name),
                    network: nid.clone(),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_syntax() {
        assert_eq!(parse_link("db").ok(), Some(("db", "db")));
        assert_eq!(parse_link("/db:x").ok(), Some(("db", "x")));
        for bad in ["", ":x", "db:", "a:b:c"] {
            assert!(parse_link(bad).is_err(), "{bad:?}");
        }
    }
}
