//! The manager's node API: `node ls`, `inspect`, `update` (role, availability,
//! labels) and `rm` (which revokes the node's certificate).

use std::collections::BTreeMap;
use std::time::SystemTime;

use netloom_cluster::Role;
use serde_json::Value;

use super::manager::availability;
use super::state::{ClusterRecord, ClusterStore, NodeRecord};
use super::store::Versioned;
use super::{ERR_EMBEDDED_ONE_MANAGER, Node, Swarm, store_err, view};
use crate::error::CtlError;

/// `POST /nodes/{id}/update` body.
#[derive(Debug)]
pub struct NodeSpecUpdate {
    /// `Role`.
    pub role: String,
    /// `Availability`.
    pub availability: String,
    /// `Labels`.
    pub labels: BTreeMap<String, String>,
}

/// `GET /nodes` filters.
#[derive(Debug, Default)]
pub struct NodeFilter {
    /// `id` (prefixes).
    pub id: Vec<String>,
    /// `name` (hostname substrings).
    pub name: Vec<String>,
    /// `role`.
    pub role: Vec<String>,
    /// `membership` (`accepted`).
    pub membership: Vec<String>,
    /// `node.label` (`k` or `k=v`).
    pub label: Vec<String>,
}

impl Swarm {
    fn node_json(
        &self,
        node: &Node,
        n: &Versioned<NodeRecord>,
        c: &ClusterRecord,
        leader: Option<&str>,
    ) -> Value {
        let me = node.local().node_id;
        let up = n.value.id == me || node.membership.is_up(&n.value.id);
        view::node(
            &n.value,
            n.version,
            c,
            up,
            leader == Some(n.value.id.as_str()),
        )
    }

    /// The leader's node ID, as this manager knows it.
    async fn leader_id(&self, node: &Node) -> Option<String> {
        if let Some(l) = node.leadership.as_ref().and_then(|l| l.leader()) {
            return Some(l);
        }
        let v = self
            .store()
            .raw()
            .get(super::leader::LEADER_KEY)
            .await
            .ok()??;
        serde_json::from_slice(&v.value).ok()
    }

    /// Finds a node by ID, hostname or unique ID prefix (Docker's lookup).
    async fn resolve(&self, key: &str) -> Result<Versioned<NodeRecord>, CtlError> {
        let nodes = self.store().nodes().await.map_err(store_err)?;
        if let Some(n) = nodes.iter().find(|n| n.value.id == key) {
            return Ok(n.clone());
        }
        let by_name: Vec<_> = nodes.iter().filter(|n| n.value.hostname == key).collect();
        if by_name.len() == 1 {
            return Ok(by_name[0].clone());
        }
        let by_prefix: Vec<_> = nodes
            .iter()
            .filter(|n| !key.is_empty() && n.value.id.starts_with(key))
            .collect();
        match (by_name.len(), by_prefix.len()) {
            (0, 1) => Ok(by_prefix[0].clone()),
            (0, 0) => Err(CtlError::not_found(format!("node {key} not found"))),
            (a, b) => Err(CtlError::invalid(format!(
                "node {key} is ambiguous ({} matches found)",
                a.max(b)
            ))),
        }
    }

    /// `GET /nodes`.
    pub async fn nodes(&self, f: NodeFilter) -> Result<Vec<Value>, CtlError> {
        let node = self.manager()?;
        let c = self.cluster().await?;
        for r in &f.role {
            if r != "worker" && r != "manager" {
                return Err(CtlError::invalid(format!("invalid filter 'role={r}'")));
            }
        }
        for m in &f.membership {
            if m != "accepted" && m != "pending" {
                return Err(CtlError::invalid(format!(
                    "invalid filter 'membership={m}'"
                )));
            }
        }
        let leader = self.leader_id(&node).await;
        let mut out = Vec::new();
        for n in self.store().nodes().await.map_err(store_err)? {
            let v = &n.value;
            let ok = (f.id.is_empty() || f.id.iter().any(|i| v.id.starts_with(i.as_str())))
                && (f.name.is_empty() || f.name.iter().any(|s| v.hostname.contains(s.as_str())))
                && (f.role.is_empty() || f.role.iter().any(|r| r == v.role.as_str()))
                && (f.membership.is_empty() || f.membership.iter().any(|m| m == "accepted"))
                && f.label.iter().all(|l| match l.split_once('=') {
                    Some((k, val)) => v.labels.get(k).is_some_and(|x| x == val),
                    None => v.labels.contains_key(l.as_str()),
                });
            if ok {
                out.push(self.node_json(&node, &n, &c.value, leader.as_deref()));
            }
        }
        Ok(out)
    }

    /// `GET /nodes/{id}`.
    pub async fn node_inspect(&self, key: &str) -> Result<Value, CtlError> {
        let node = self.manager()?;
        let c = self.cluster().await?;
        let n = self.resolve(key).await?;
        let leader = self.leader_id(&node).await;
        Ok(self.node_json(&node, &n, &c.value, leader.as_deref()))
    }

    /// `POST /nodes/{id}/update`.
    pub async fn node_update(
        &self,
        key: &str,
        version: u64,
        spec: NodeSpecUpdate,
    ) -> Result<(), CtlError> {
        let node = self.manager()?;
        let _g = self.control.lock().await;
        let n = self.resolve(key).await?;
        if n.version != version {
            return Err(CtlError::conflict("update out of sequence"));
        }
        let role = match spec.role.as_str() {
            "worker" => Role::Worker,
            "manager" => Role::Manager,
            r => {
                return Err(CtlError::invalid(format!(
                    "invalid Role: {r:?} (use worker or manager)"
                )));
            }
        };
        let mut next = n.value.clone();
        next.availability = availability(&spec.availability)?;
        next.labels = spec.labels;
        let store = self.store();
        let mut demoted = false;
        if role != n.value.role {
            if role == Role::Manager {
                let c = self.cluster().await?;
                if c.value.store == ClusterStore::Embedded {
                    return Err(CtlError::invalid(format!(
                        "cannot promote node {}: {ERR_EMBEDDED_ONE_MANAGER}",
                        n.value.id
                    )));
                }
                // The node learns its role from its session and asks for its
                // certificate and etcd member then; its management address is
                // written by the new manager itself.
            } else {
                let managers = store
                    .nodes()
                    .await
                    .map_err(store_err)?
                    .iter()
                    .filter(|x| x.value.role == Role::Manager)
                    .count();
                if managers <= 1 {
                    return Err(CtlError::invalid(format!(
                        "rpc error: code = FailedPrecondition desc = attempting to demote the last manager of the swarm (node {})",
                        n.value.id
                    )));
                }
                next.manager_addr = None;
                demoted = true;
            }
            next.role = role;
        }
        next.updated_at = SystemTime::now();
        let _ = node;
        let v = store
            .write(None, &[(&next, Some(n.version))])
            .await
            .map_err(store_err)?;
        if demoted && let Err(e) = self.remove_manager_member(&n.value.id).await {
            // Undo: a manager without its member would cost the quorum a vote.
            let _ = store.write(None, &[(&n.value, Some(v))]).await;
            return Err(e);
        }
        if role != n.value.role {
            tracing::info!(node = %n.value.id, %role, "node role changed");
        }
        Ok(())
    }

    /// `DELETE /nodes/{id}`.
    pub async fn node_remove(&self, key: &str, force: bool) -> Result<(), CtlError> {
        let node = self.manager()?;
        let _g = self.control.lock().await;
        let n = self.resolve(key).await?;
        let id = n.value.id.clone();
        if n.value.role == Role::Manager && !force {
            return Err(CtlError::invalid(format!(
                "rpc error: code = FailedPrecondition desc = node {id} is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal"
            )));
        }
        if n.value.role == Role::Manager && id == node.local().node_id {
            return Err(CtlError::invalid(format!(
                "rpc error: code = FailedPrecondition desc = node {id} is this manager: run docker swarm leave on it instead"
            )));
        }
        if n.value.role == Role::Manager {
            let managers = self
                .store()
                .nodes()
                .await
                .map_err(store_err)?
                .iter()
                .filter(|x| x.value.role == Role::Manager)
                .count();
            if managers <= 1 {
                return Err(CtlError::invalid(format!(
                    "rpc error: code = FailedPrecondition desc = node {id} is the last manager of the swarm"
                )));
            }
        }
        if !force && node.membership.is_up(&id) {
            return Err(CtlError::invalid(format!(
                "rpc error: code = FailedPrecondition desc = node {id} is not down and can't be removed"
            )));
        }
        // Its etcd member first (a manager removed with --force, or one left over).
        self.remove_manager_member(&id).await?;
        let mut version = n.version;
        let mut attempts = 0;
        loop {
            let c = self.cluster().await?;
            let mut next = c.value.clone();
            if !next.removed.contains(&id) {
                next.removed.push(id.clone());
            }
            next.updated_at = SystemTime::now();
            match self
                .store()
                .remove_node(&id, version, (&next, c.version))
                .await
            {
                Ok(_) => break,
                // The node's own heartbeat (or a renewal) changed its record meanwhile.
                Err(super::store::SwarmStoreError::Store(
                    netloom_store::StoreError::Conflict { .. },
                )) if attempts < 5 => {
                    attempts += 1;
                    match self.store().node(&id).await.map_err(store_err)? {
                        Some(r) => version = r.version,
                        None => break,
                    }
                }
                Err(e) => return Err(store_err(e)),
            }
        }
        node.revoked.revoke(&id);
        tracing::info!(node = %id, "node removed from the swarm; its certificate is refused from now on");
        Ok(())
    }
}
