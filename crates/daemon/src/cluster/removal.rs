//! The markers of swarm networks being removed (`swarm/alloc/removing/<net>`).
//!
//! `network rm` on a manager writes the marker before it lists the network's endpoints,
//! and every publication checks in its own transaction that there is none (see
//! [`super::global`]). A marker must not outlive its removal, or the network could
//! never be used again until someone ran `network rm` once more:
//!
//! - it is attached to a lease of the removing manager, renewed while the removal runs
//!   and revoked when it ends: a manager that dies mid-removal loses its lease (on etcd
//!   [`MARKER_TTL`] later; the embedded store drops the keys of an earlier process's
//!   leases when it is opened again), and the marker goes with it;
//! - a marker found by a publication is dropped (the removal is rolled back) when its
//!   manager is not removing the network: this manager's own marker while it removes
//!   nothing there (it restarted), or a marker of a node that is not up.

use std::sync::Arc;
use std::time::Duration;

use netloom_store::{Expect, LeaseId, Op, Store, Versioned};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::{Swarm, store_err};
use crate::error::CtlError;

/// Prefix of the markers of networks being removed (`swarm/alloc/removing/<net>`).
const REMOVING: &str = "swarm/alloc/removing/";
/// How long a removal marker outlives a manager that died while removing.
pub(super) const MARKER_TTL: Duration = Duration::from_secs(5);

/// The marker key of network `net`.
pub(super) fn removing_key(net: &str) -> String {
    format!("{REMOVING}{net}")
}

/// A removal in progress on this manager: its marker's lease is renewed until it is
/// [finished](Removal::finish) (or dropped: then the lease just expires).
pub(super) struct Removal<'a> {
    swarm: &'a Swarm,
    net: String,
    store: Arc<dyn Store>,
    lease: LeaseId,
    keep: JoinHandle<()>,
}

impl Removal<'_> {
    /// Ends the removal: its lease is revoked, so its marker goes if the removal's own
    /// transaction did not delete it already.
    pub(super) async fn finish(self) {
        if let Err(e) = self.store.revoke_lease(self.lease).await {
            warn!(network = %self.net, error = %e, "cannot revoke the removal marker's lease; the marker goes when it expires");
        }
    }
}

impl Drop for Removal<'_> {
    fn drop(&mut self) {
        self.keep.abort();
        if let Ok(mut r) = self.swarm.removals.lock() {
            r.remove(&self.net);
        }
    }
}

async fn keep_alive(store: Arc<dyn Store>, lease: LeaseId) {
    loop {
        tokio::time::sleep(MARKER_TTL / 4).await;
        if let Err(e) = store.keep_alive(lease).await {
            warn!(error = %e, "cannot renew the removal marker's lease");
        }
    }
}

impl Swarm {
    /// Writes the removal marker of network `net` for this manager, under a lease kept
    /// alive until the returned [`Removal`] ends.
    pub(super) async fn mark_removal(
        &self,
        net: &str,
        node_id: &str,
    ) -> Result<Removal<'_>, CtlError> {
        let store = self.store();
        let raw = store.raw().clone();
        let lease = raw
            .grant_lease(MARKER_TTL)
            .await
            .map_err(|e| store_err(store.err(e)))?;
        if let Ok(mut r) = self.removals.lock() {
            r.insert(net.to_string());
        }
        let removal = Removal {
            swarm: self,
            net: net.to_string(),
            store: raw.clone(),
            lease,
            keep: tokio::spawn(keep_alive(raw.clone(), lease)),
        };
        let value = serde_json::to_vec(node_id).map_err(|e| CtlError::internal(e.to_string()))?;
        // Written unconditionally: a marker left by a manager that died mid-removal
        // does not block this one.
        let res = raw
            .apply(vec![Op::put_leased(
                removing_key(net),
                value,
                Expect::Any,
                lease,
            )])
            .await;
        match res {
            Ok(_) => Ok(removal),
            Err(e) => {
                removal.finish().await;
                Err(store_err(store.err(e)))
            }
        }
    }

    /// Whether the marker `m` of network `net` was left by a removal that is over: its
    /// owner is this manager, which is not removing `net`, or a node that is not up.
    fn stale_marker(&self, net: &str, m: &Versioned) -> bool {
        let owner: String = serde_json::from_slice(&m.value).unwrap_or_default();
        if owner.is_empty() {
            return true;
        }
        let me = self.local_node().map(|n| n.node_id);
        if me.as_deref() == Some(owner.as_str()) {
            return self
                .removals
                .lock()
                .map(|r| !r.contains(net))
                .unwrap_or(false);
        }
        !self.is_up(&owner)
    }

    /// Drops network `net`'s removal marker if it is stale (see the module docs);
    /// returns whether it did. A marker that changed meanwhile is left alone.
    pub(super) async fn clear_stale_marker(&self, net: &str) -> Result<bool, CtlError> {
        let store = self.store();
        let key = removing_key(net);
        let Some(m) = store
            .raw()
            .get(&key)
            .await
            .map_err(|e| store_err(store.err(e)))?
        else {
            return Ok(false);
        };
        if !self.stale_marker(net, &m) {
            return Ok(false);
        }
        let res = store
            .raw()
            .apply(vec![Op::Delete {
                key,
                expect: Expect::Version(m.version),
            }])
            .await;
        match res {
            Ok(_) => {
                info!(
                    network = %netloom_model::short_id(net),
                    "dropped the removal marker of a removal that is over (its manager restarted or is down)"
                );
                Ok(true)
            }
            Err(netloom_store::StoreError::Conflict { .. }) => Ok(false),
            Err(e) => Err(store_err(store.err(e))),
        }
    }
}
