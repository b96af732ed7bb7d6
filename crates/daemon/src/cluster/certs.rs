//! The manager's periodic work on membership and certificates.

use std::time::{Duration, SystemTime};

use netloom_cluster::Role;
use netloom_cluster::ca::parse_cert;

use super::leader::Term;
use super::state::{NodeRecord, hex};
use super::store::Versioned;
use super::{Node, Swarm, internal, store_err};
use crate::error::CtlError;

/// The manager's periodic work: re-announce to members that are not up (restarts,
/// healed partitions), keep its list of managers current, renew its own certificate
/// and, on the leader, finish a root rotation once every node has renewed.
pub(super) async fn maintenance(swarm: std::sync::Weak<Swarm>, node: std::sync::Weak<Node>) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tick.tick().await;
        let (Some(s), Some(n)) = (swarm.upgrade(), node.upgrade()) else {
            return;
        };
        let me = n.local().node_id;
        let Ok(nodes) = s.store().nodes().await else {
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
        if let Ok((managers, seeds)) = s.peers().await {
            let l = n.local();
            if l.managers != managers || l.gossip_seeds != seeds {
                let _ = s.save_local(&n, |st| {
                    st.managers = managers;
                    st.gossip_seeds = seeds;
                });
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
        // Rotation: managers switch last, once every worker that is up holds a
        // certificate of the new root (and so trusts both); managers trust both as
        // soon as they read the cluster record.
        let up =
            |x: &Versioned<NodeRecord>| x.value.id == l.node_id || n.membership.is_up(&x.value.id);
        let workers_done = nodes
            .iter()
            .all(|x| x.value.role == Role::Manager || x.value.cert_root == signing || !up(x));
        let switch = l.cert_root != signing && (workers_done || !c.value.rotation_in_progress);
        if renew_due || switch {
            let exp = SystemTime::now() + c.value.cert_expiry();
            let cert = c
                .value
                .signing_ca
                .issue_new(&l.node_id, Role::Manager, &c.value.id, exp)
                .map_err(|e| internal("renew this node's certificate")(&e))?;
            if let Some(m) = nodes.iter().find(|x| x.value.id == l.node_id) {
                let mut r = m.value.clone();
                r.cert_root = signing.clone();
                r.cert_not_after = exp;
                r.updated_at = SystemTime::now();
                self.store()
                    .write(None, &[(&r, Some(m.version))])
                    .await
                    .map_err(store_err)?;
            }
            self.save_local(n, |st| {
                st.cert = cert.clone();
                st.cert_root = signing.clone();
            })?;
            self.rebuild_server_tls(n, &c.value.trusted_cas, Some(&cert))?;
            tracing::info!("renewed this manager's certificate");
        }
        Ok(())
    }

    /// The leader's part of a root rotation: drop the old root once every node
    /// that is up has renewed (a fenced write: a deposed leader cannot).
    async fn finish_rotation(&self, n: &Node, term: &Term) -> Result<(), CtlError> {
        let _g = self.control.lock().await;
        let c = self.cluster().await?;
        if !c.value.rotation_in_progress {
            return Ok(());
        }
        let signing = hex(&c.value.signing_ca.digest());
        let me = n.local().node_id;
        let nodes = self.store().nodes().await.map_err(store_err)?;
        if !nodes.iter().all(|x| {
            x.value.cert_root == signing || (x.value.id != me && !n.membership.is_up(&x.value.id))
        }) {
            return Ok(());
        }
        let mut next = c.value.clone();
        next.trusted_cas = vec![next.signing_ca.cert_pem.clone()];
        next.rotation_in_progress = false;
        next.updated_at = SystemTime::now();
        self.store()
            .write_fenced(Some((&next, Some(c.version))), &[], Some(term.fence()))
            .await
            .map_err(store_err)?;
        self.save_local(n, |st| st.trusted_cas = next.trusted_cas.clone())?;
        self.rebuild_server_tls(n, &next.trusted_cas, None)?;
        tracing::info!("root CA rotation complete: the old root is no longer trusted");
        Ok(())
    }
}

/// What the leader runs while it leads (started and aborted by
/// [`super::leader::Leadership::spawn_while_leading`]): the cluster-wide work. The
/// allocators of global networks and the scheduler go here.
pub(super) async fn lead(swarm: std::sync::Weak<Swarm>, node: std::sync::Weak<Node>, term: Term) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tick.tick().await;
        let (Some(s), Some(n)) = (swarm.upgrade(), node.upgrade()) else {
            return;
        };
        if let Err(e) = s.finish_rotation(&n, &term).await {
            tracing::warn!(error = %e.message, "root rotation: cannot finish yet");
        }
    }
}
