//! Drift repair: links netloom made that someone deleted by hand come back.
//!
//! The kernel reports every link deleted in the daemon's namespace
//! ([`netloom_kernel::linkwatch`]). netloom's own deletions happen under the state
//! lock once the state no longer lists the object, so they match nothing here. A
//! deleted link the state still owns is drift: its network's driver restores the
//! network (a bridge comes back with its gateway and its ports), and each running
//! container that lost an endpoint gets a new one, as start-up reconciliation does.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use netloom_model::{Endpoint, Network};
use tracing::{info, warn};

use netloom_kernel::linkwatch::LinkEvent;

use super::Controller;

/// How long a burst of deletions (a bridge and its ports) is gathered into one repair.
const SETTLE: Duration = Duration::from_millis(50);

impl Controller {
    /// Starts watching for deleted links and repairing the ones netloom still owns.
    pub(crate) fn watch_links(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let mut events = match netloom_kernel::linkwatch::link_deletions() {
                    Ok(s) => s,
                    Err(e) => {
                        warn!(error = %e, "cannot watch link deletions; links deleted by hand come back only at the next start");
                        return;
                    }
                };
                while let Some(first) = events.next().await {
                    let mut batch = vec![first];
                    tokio::time::sleep(SETTLE).await;
                    while let Some(Some(e)) = events.next().now_or_never() {
                        batch.push(e);
                    }
                    let Some(ctl) = weak.upgrade() else { return };
                    let gone = if batch.contains(&LinkEvent::Lost) {
                        ctl.missing_links().await
                    } else {
                        batch
                            .into_iter()
                            .filter_map(|e| match e {
                                LinkEvent::Deleted(n) => Some(n),
                                LinkEvent::Lost => None,
                            })
                            .collect()
                    };
                    ctl.repair_links(&gone).await;
                }
                // The socket failed: open a new one, and look at everything once.
                warn!("link notifications ended; watching again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                let Some(ctl) = weak.upgrade() else { return };
                let gone = ctl.missing_links().await;
                ctl.repair_links(&gone).await;
            }
        });
    }

    /// Every link netloom owns that the kernel does not have now (after notifications
    /// were lost).
    async fn missing_links(&self) -> BTreeSet<String> {
        let Ok(links) = self.nl.links().await else {
            return BTreeSet::new();
        };
        let have: BTreeSet<String> = links.into_iter().map(|l| l.name).collect();
        let mut owned = self.owned_links(&*self.lock_state().await);
        owned.retain(|l| !have.contains(l));
        owned
    }

    /// The names of every link in the daemon's namespace that netloom's built-in
    /// drivers made for the networks and endpoints `st` holds.
    pub(super) fn owned_links(&self, st: &super::State) -> BTreeSet<String> {
        let mut owned = BTreeSet::new();
        for n in st.networks.values() {
            if let Some(d) = self.drivers.get(&n.driver) {
                let eps: Vec<Endpoint> = st.network_endpoints(&n.id).into_iter().cloned().collect();
                owned.extend(d.owned_links(n, &eps));
            }
        }
        owned
    }

    /// Restores the networks that owned a link in `gone` and re-attaches the running
    /// containers whose endpoint link is in it.
    async fn repair_links(&self, gone: &BTreeSet<String>) {
        let mut hit: Vec<(Network, Vec<Endpoint>)> = Vec::new();
        let mut ctrs: BTreeSet<String> = BTreeSet::new();
        {
            let st = self.lock_state().await;
            // Most deletions are netloom's own (a container's sandbox went): those match
            // nothing the state holds, and are dismissed without copying anything.
            let touched: BTreeSet<&str> = st
                .networks
                .values()
                .filter(|n| gone.contains(&n.iface))
                .map(|n| n.id.as_str())
                .chain(
                    st.endpoints
                        .values()
                        .filter(|e| gone.contains(&e.host_ifname))
                        .map(|e| e.network_id.as_str()),
                )
                .collect();
            if touched.is_empty() {
                return;
            }
            for n in st
                .networks
                .values()
                .filter(|n| touched.contains(n.id.as_str()))
            {
                let Some(d) = self.drivers.get(&n.driver) else {
                    continue;
                };
                if st.busy_networks.contains_key(&n.id) || st.removing_networks.contains(&n.id) {
                    continue;
                }
                let eps: Vec<Endpoint> = st.network_endpoints(&n.id).into_iter().cloned().collect();
                if !d.owned_links(n, &eps).iter().any(|l| gone.contains(l)) {
                    continue;
                }
                ctrs.extend(
                    eps.iter()
                        .filter(|e| gone.contains(&e.host_ifname))
                        .map(|e| e.container_id.clone()),
                );
                hit.push((n.clone(), eps));
            }
            for (n, eps) in &hit {
                let Some(d) = self.drivers.get(&n.driver) else {
                    continue;
                };
                info!(network = %n.name, "a link of the network was deleted outside netloom; restoring it");
                if let Err(e) = d.restore_network(n, eps).await {
                    warn!(network = %n.name, error = %crate::error::chain(&e), "cannot restore the network");
                }
            }
        }
        for id in ctrs {
            let guard = self.container_lock(&id).await;
            let mut st = self.lock_state().await;
            let Some(c) = st.containers.get(&id).cloned().filter(|c| c.is_running()) else {
                continue;
            };
            info!(container = %c.name, "an endpoint link was deleted outside netloom; re-attaching it");
            self.reattach(&mut st, &c).await;
            if let Some(c) = st.containers.get(&id).cloned()
                && Self::uses_embedded_dns(&st, &c)
            {
                self.dns_attach(&st, &c);
            }
            if let Err(e) = self.sync_firewall(&mut st, false).await {
                warn!(error = %e, "cannot bring the firewall in line after a re-attach");
            }
            drop(st);
            drop(guard);
        }
    }
}
