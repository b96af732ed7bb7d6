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

use super::Controller;

/// How long a burst of deletions (a bridge and its ports) is gathered into one repair.
const SETTLE: Duration = Duration::from_millis(50);

impl Controller {
    /// Starts watching for deleted links and repairing the ones netloom still owns.
    pub(crate) fn watch_links(self: &Arc<Self>) {
        let mut deleted = match netloom_kernel::linkwatch::link_deletions() {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "cannot watch link deletions; links deleted by hand come back only at the next start");
                return;
            }
        };
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(first) = deleted.next().await {
                let mut gone = BTreeSet::from([first]);
                tokio::time::sleep(SETTLE).await;
                while let Some(Some(n)) = deleted.next().now_or_never() {
                    gone.insert(n);
                }
                let Some(ctl) = weak.upgrade() else { return };
                ctl.repair_links(&gone).await;
            }
        });
    }

    /// Restores the networks that owned a link in `gone` and re-attaches the running
    /// containers whose endpoint link is in it.
    async fn repair_links(&self, gone: &BTreeSet<String>) {
        let mut hit: Vec<(Network, Vec<Endpoint>)> = Vec::new();
        let mut ctrs: BTreeSet<String> = BTreeSet::new();
        {
            let st = self.lock_state().await;
            for n in st.networks.values() {
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
