//! The manager's periodic work on membership and certificates.

use std::time::{Duration, SystemTime};

use netloom_cluster::Role;
use netloom_cluster::ca::parse_cert;

use super::state::{NodeRecord, hex};
use super::store::Versioned;
use super::{Node, Swarm, internal, store_err};
use crate::error::CtlError;

/// The manager's periodic work: re-announce to members that are not up (restarts,
/// healed partitions), finish a root rotation once every node has renewed, and renew
/// its own certificate.
pub(super) async fn maintenance(swarm: std::sync::Weak<Swarm>, node: std::sync::Weak<Node>) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tick.tick().await;
        let (Some(s), Some(n)) = (swarm.upgrade(), node.upgrade()) else {
            return;
        };
        let me = n.local().node_id;
        let Ok(nodes) = s.store.nodes().await else {
            continue;
        };
        for x in &nodes {
            if x.value.id != me
                && !n.membership.is_up(&x.value.id)
                && let Ok(a) = x.value.gossip_addr.parse()
            {
                n.membership.announce(a);
            }
        }
        if let Err(e) = s.manager_certs(&n, &nodes).await {
            tracing::warn!(error = %e.message, "certificate maintenance failed");
            n.set_error(e.message);
        }
    }
}

impl Swarm {
    async fn manager_certs(
        &self,
        n: &Node,
        nodes: &[Versioned<NodeRecord>],
    ) -> Result<(), CtlError> {
        let _g = self.control.lock().await;
        let c = self.cluster().await?;
        let l = n.local();
        let signing = hex(&c.value.signing_ca.digest());
        let info = parse_cert(&l.cert.cert_pem)
            .map_err(|e| internal("read this node's certificate")(&e))?;
        let renew_due =
            SystemTime::now() >= netloom_cluster::ca::renew_at(info.not_before, info.not_after);
        // Rotation: the manager switches last, once every other node that is up
        // holds a certificate of the new root (and so trusts both).
        let others_done = nodes.iter().all(|x| {
            x.value.id == l.node_id
                || x.value.cert_root == signing
                || !n.membership.is_up(&x.value.id)
        });
        let rotate_self = c.value.rotation_in_progress && others_done;
        if !(renew_due || rotate_self || (l.cert_root != signing && !c.value.rotation_in_progress))
        {
            return Ok(());
        }
        let exp = SystemTime::now() + c.value.cert_expiry();
        let cert = c
            .value
            .signing_ca
            .issue_new(&l.node_id, Role::Manager, &c.value.id, exp)
            .map_err(|e| internal("renew this node's certificate")(&e))?;
        let mut next = c.value.clone();
        if rotate_self {
            next.trusted_cas = vec![next.signing_ca.cert_pem.clone()];
            next.rotation_in_progress = false;
        }
        let mine = nodes.iter().find(|x| x.value.id == l.node_id);
        let mut rec = mine.map(|m| m.value.clone());
        if let Some(r) = rec.as_mut() {
            r.cert_root = signing.clone();
            r.cert_not_after = exp;
            r.updated_at = SystemTime::now();
        }
        let node_writes: Vec<(&NodeRecord, Option<u64>)> = match (&rec, mine) {
            (Some(r), Some(m)) => vec![(r, Some(m.version))],
            _ => vec![],
        };
        self.store
            .write(Some((&next, Some(c.version))), &node_writes)
            .await
            .map_err(store_err)?;
        self.save_local(n, |st| {
            st.cert = cert.clone();
            st.cert_root = signing.clone();
            st.trusted_cas = next.trusted_cas.clone();
        })?;
        self.rebuild_server_tls(n, &next.trusted_cas, Some(&cert))?;
        if rotate_self {
            tracing::info!("root CA rotation complete: the old root is no longer trusted");
        } else {
            tracing::info!("renewed this manager's certificate");
        }
        Ok(())
    }
}
