//! The egress leg of containers on overlays (Docker's `docker_gwbridge`).
//!
//! A container whose networks give it no default route of their own but include a
//! non-internal overlay (the overlay driver's [`needs_gateway`]) gets one more endpoint,
//! on the local bridge network `docker_gwbridge` (made on first use from the local
//! default pools, inter-container communication off, masquerade on; an ordinary
//! network record, so it survives restarts and `network ls` lists it), and that
//! endpoint carries its default route. The leg is not one of the container's networks
//! (`inspect` does not list it, as with Docker): it comes with the overlay endpoint and
//! goes with the container's networking or when no overlay needs it any more.
//!
//! `docker_gwbridge` is also an ordinary local bridge network a container may ask for
//! (`run --network docker_gwbridge`, `network connect`), alone or with overlays: that
//! endpoint carries the default route, so the container has no leg (its leg gives way
//! on `connect` and comes back on `disconnect` while an overlay still needs it), and
//! it never has two endpoints on the bridge.

use std::path::PathBuf;

use netloom_drivers::overlay::gateway::{
    GATEWAY_BRIDGE, gateway_options, is_gateway_network, needs_gateway,
};
use netloom_model::{Container, Endpoint, Network};
use tracing::{info, warn};

use super::networks::NetworkCreate;
use super::{Controller, Locked, State, new_id};
use crate::error::CtlResult;

/// The name a gateway leg shows in `network inspect docker_gwbridge` (Docker's).
pub(crate) fn leg_name(container_id: &str) -> String {
    format!("gateway_{}", netloom_model::short_id(container_id))
}

impl Controller {
    /// Whether an endpoint of `ctr` on `net` is a gateway leg.
    pub(crate) fn leg_of(ctr: &Container, net: &Network) -> bool {
        is_gateway_network(net) && !ctr.networks.contains_key(&net.id)
    }

    /// Whether `ep` is a gateway leg (an endpoint on the gateway bridge that its
    /// container did not ask for).
    pub(crate) fn is_gateway_leg(st: &State, ep: &Endpoint) -> bool {
        let Some(net) = st.networks.get(&ep.network_id) else {
            return false;
        };
        is_gateway_network(net)
            && st
                .containers
                .get(&ep.container_id)
                .is_none_or(|c| !c.networks.contains_key(&ep.network_id))
    }

    /// Whether container `ctr`, with its endpoints as they are, needs the leg.
    fn wants_gateway_leg(st: &State, ctr: &Container) -> bool {
        let nets: Vec<&Network> = st
            .container_endpoints(&ctr.id)
            .into_iter()
            .filter(|e| !Self::is_gateway_leg(st, e))
            .filter_map(|e| st.networks.get(&e.network_id))
            .collect();
        needs_gateway(&nets)
    }

    /// The gateway bridge network, made if missing.
    async fn gateway_network(&self, st: &mut Locked<'_>) -> CtlResult<Network> {
        if let Some(n) = st.networks.values().find(|n| is_gateway_network(n)) {
            return Ok(n.clone());
        }
        let req = NetworkCreate {
            name: GATEWAY_BRIDGE.to_string(),
            driver: "bridge".to_string(),
            options: gateway_options(),
            ..Default::default()
        };
        let net = self
            .build_network(st, new_id(), req, false, (false, false))
            .await?;
        let id = self.install_network(st, net).await?;
        info!(network = GATEWAY_BRIDGE, "gateway bridge created");
        st.networks.get(&id).cloned().ok_or_else(|| {
            crate::error::CtlError::internal(format!(
                "{GATEWAY_BRIDGE} vanished after its creation"
            ))
        })
    }

    /// Gives a container with a sandbox the gateway leg if it needs one and has none.
    pub(crate) async fn ensure_gateway_leg(
        &self,
        st: &mut Locked<'_>,
        ctr: &Container,
        sandbox: &Option<PathBuf>,
    ) -> CtlResult<()> {
        if sandbox.is_none() || !Self::wants_gateway_leg(st, ctr) {
            return Ok(());
        }
        let has = st
            .container_endpoints(&ctr.id)
            .into_iter()
            .any(|e| Self::is_gateway_leg(st, e));
        if has {
            return Ok(());
        }
        let net = self.gateway_network(st).await?;
        self.attach_endpoint(st, ctr, &net, sandbox).await
    }

    /// Before container `ctr` joins `net`: when `net` is the gateway bridge itself, the
    /// container's leg there is removed (one endpoint per network and container; the
    /// one it asks for carries its default route from then on, as with Docker, whose
    /// `gateway_…` endpoint goes when another endpoint has a gateway). Returns whether
    /// a leg was removed.
    pub(crate) async fn leg_gives_way(
        &self,
        st: &mut Locked<'_>,
        ctr: &Container,
        net: &Network,
        sandbox: &Option<PathBuf>,
    ) -> CtlResult<bool> {
        if !is_gateway_network(net) {
            return Ok(false);
        }
        let legs: Vec<Endpoint> = st
            .container_endpoints(&ctr.id)
            .into_iter()
            .filter(|e| e.network_id == net.id && Self::is_gateway_leg(st, e))
            .cloned()
            .collect();
        for ep in &legs {
            self.detach_endpoint(st, ep, sandbox).await?;
        }
        Ok(!legs.is_empty())
    }

    /// Removes the container's gateway leg if no network needs it any more (after a
    /// disconnect from its last overlay, or a connect to a network with a gateway).
    pub(crate) async fn drop_gateway_leg(
        &self,
        st: &mut Locked<'_>,
        ctr: &Container,
        sandbox: &Option<PathBuf>,
    ) {
        if Self::wants_gateway_leg(st, ctr) {
            return;
        }
        let legs: Vec<Endpoint> = st
            .container_endpoints(&ctr.id)
            .into_iter()
            .filter(|e| Self::is_gateway_leg(st, e))
            .cloned()
            .collect();
        for ep in legs {
            if let Err(e) = self.detach_endpoint(st, &ep, sandbox).await {
                warn!(container = %ctr.name, error = %e, "cannot remove the gateway leg");
            }
        }
    }
}
