//! Publishing names: networks' records, sandboxes' views, and the registry that holds
//! them (the control path; queries never take its lock).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use crate::server::Attachment;
use crate::view::{NetworkSlot, NetworkView, SandboxSlot, SandboxView};
use crate::{Record, Resolver, Snapshot};

/// What the control path changes: networks, owners, sandboxes and their listeners.
#[derive(Default)]
pub(crate) struct Registry {
    pub(crate) networks: HashMap<Arc<str>, Arc<NetworkSlot>>,
    /// Owner (container) → the networks it has a record on.
    pub(crate) owners: HashMap<String, Vec<Arc<str>>>,
    /// Sandbox → its view slot; a listener keeps the slot it was started with, so a slot
    /// stays here as long as it is attached or has a view.
    pub(crate) sandboxes: HashMap<String, Arc<SandboxSlot>>,
    pub(crate) attachments: HashMap<String, Attachment>,
    /// Sandboxes published through [`Resolver::publish`] (whole-snapshot mode).
    pub(crate) flat: Vec<String>,
}

impl Registry {
    pub(crate) fn network(&mut self, id: &str) -> (Arc<str>, Arc<NetworkSlot>) {
        if let Some((key, slot)) = self.networks.get_key_value(id) {
            return (Arc::clone(key), Arc::clone(slot));
        }
        let key: Arc<str> = id.into();
        let slot = Arc::new(NetworkSlot::from_pointee(NetworkView::default()));
        self.networks.insert(Arc::clone(&key), Arc::clone(&slot));
        (key, slot)
    }

    pub(crate) fn sandbox(&mut self, id: &str) -> Arc<SandboxSlot> {
        Arc::clone(
            self.sandboxes
                .entry(id.to_owned())
                .or_insert_with(|| Arc::new(SandboxSlot::empty())),
        )
    }

    /// Forget a network nothing is published on and no sandbox view refers to.
    pub(crate) fn maybe_drop_network(&mut self, id: &str) {
        if let Some(slot) = self.networks.get(id)
            && Arc::strong_count(slot) == 1
            && slot.load().is_empty()
        {
            self.networks.remove(id);
        }
    }

    /// Forget a sandbox slot that has no view and no listener.
    pub(crate) fn maybe_drop_sandbox(&mut self, id: &str) {
        if !self.attachments.contains_key(id)
            && self.sandboxes.get(id).is_some_and(|s| s.load().is_none())
        {
            self.sandboxes.remove(id);
        }
    }
}

impl Resolver {
    /// Replace everything `owner` (a container) publishes: its record on each network
    /// given, and nothing on the networks it had a record on before and is not given now
    /// (an empty list withdraws it everywhere). Only those networks' views change; each
    /// is swapped atomically, queries already running finish against the old one.
    pub fn set_records(&self, owner: &str, records: Vec<(String, Record)>) {
        let ttl = self.cfg.ttl;
        let mut reg = self.registry();
        let old = reg.owners.remove(owner).unwrap_or_default();
        let mut built = 0usize;
        for net in &old {
            if records.iter().any(|(n, _)| n.as_str() == net.as_ref()) {
                continue;
            }
            if let Some(slot) = reg.networks.get(net.as_ref()) {
                built += update(slot, |v| v.remove(owner, ttl));
            }
            reg.maybe_drop_network(net);
        }
        let mut now = Vec::with_capacity(records.len());
        for (net, rec) in &records {
            let (key, slot) = reg.network(net);
            built += update(&slot, |v| v.upsert(owner, rec, ttl));
            drop(slot);
            reg.maybe_drop_network(&key);
            now.push(key);
        }
        if !now.is_empty() {
            reg.owners.insert(owner.to_owned(), now);
        }
        self.entries_built
            .fetch_add(u64::try_from(built).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Set what a sandbox resolves: the names of `networks`, looked up in that order, and
    /// where the rest goes (`forward == false`, internal networks, or no upstream: NXDOMAIN).
    pub fn set_sandbox(
        &self,
        sandbox_id: &str,
        networks: &[String],
        upstreams: Vec<SocketAddr>,
        forward: bool,
    ) {
        self.set_sandbox_links(sandbox_id, networks, &[], upstreams, forward);
    }

    /// [`Resolver::set_sandbox`] with link aliases: names this sandbox alone resolves as
    /// other names on one of its networks (looked up first; a link whose target is not
    /// there falls back to the usual lookup of the alias).
    pub fn set_sandbox_links(
        &self,
        sandbox_id: &str,
        networks: &[String],
        links: &[crate::LinkAlias],
        upstreams: Vec<SocketAddr>,
        forward: bool,
    ) {
        let mut reg = self.registry();
        let nets: Vec<(Arc<str>, Arc<NetworkSlot>)> =
            networks.iter().map(|n| reg.network(n)).collect();
        let view = SandboxView::new(nets, links, upstreams, forward);
        let old = reg.sandbox(sandbox_id).swap(Some(Arc::new(view)));
        if let Some(old) = old {
            let ids: Vec<Arc<str>> = old.network_ids.clone();
            drop(old);
            for id in ids {
                reg.maybe_drop_network(&id);
            }
        }
    }

    /// Stop answering for a sandbox (its queries are refused until it is set again).
    pub fn remove_sandbox(&self, sandbox_id: &str) {
        let mut reg = self.registry();
        let old = reg.sandboxes.get(sandbox_id).and_then(|s| s.swap(None));
        reg.maybe_drop_sandbox(sandbox_id);
        if let Some(old) = old {
            let ids: Vec<Arc<str>> = old.network_ids.clone();
            drop(old);
            for id in ids {
                reg.maybe_drop_network(&id);
            }
        }
        drop(reg);
        self.sandbox_inflight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(sandbox_id);
    }

    /// Withdraw every owner and sandbox for which `keep` is false (a full resync).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        let (owners, sandboxes): (Vec<String>, Vec<String>) = {
            let reg = self.registry();
            (
                reg.owners.keys().filter(|o| !keep(o)).cloned().collect(),
                reg.sandboxes.keys().filter(|s| !keep(s)).cloned().collect(),
            )
        };
        for o in owners {
            self.set_records(&o, Vec::new());
        }
        for s in sandboxes {
            self.remove_sandbox(&s);
        }
    }

    /// Replace everything with flat per-sandbox record lists: each sandbox gets a private
    /// network holding its records. Meant for tests and simple embedders (it costs the
    /// size of the snapshot); the daemon publishes per network.
    pub fn publish(&self, snap: Snapshot) {
        let previous = std::mem::take(&mut self.registry().flat);
        for id in previous
            .iter()
            .filter(|id| !snap.sandboxes.contains_key(*id))
        {
            self.remove_sandbox(id);
            self.clear_flat(id, 0);
        }
        let mut flat = Vec::with_capacity(snap.sandboxes.len());
        for (id, sb) in snap.sandboxes {
            let net = format!("\0flat/{id}");
            // One owner per record: records with the same name merge, as in one network.
            let n = sb.records.len();
            for (i, rec) in sb.records.into_iter().enumerate() {
                self.set_records(&flat_owner(&id, i), vec![(net.clone(), rec)]);
            }
            self.clear_flat(&id, n);
            self.set_sandbox(&id, &[net], sb.upstreams, sb.forward);
            flat.push(id);
        }
        self.registry().flat = flat;
    }

    /// Withdraw the flat-mode owners of sandbox `id` from index `from` on.
    fn clear_flat(&self, id: &str, from: usize) {
        let mut i = from;
        while self.registry().owners.contains_key(&flat_owner(id, i)) {
            self.set_records(&flat_owner(id, i), Vec::new());
            i += 1;
        }
    }

    /// The current view of a sandbox, if one is set.
    pub fn sandbox_view(&self, sandbox_id: &str) -> Option<Arc<SandboxView>> {
        self.registry()
            .sandboxes
            .get(sandbox_id)
            .and_then(|s| s.load_full())
    }

    /// The current view of a network, if anything is published on it or refers to it.
    pub fn network_view(&self, network_id: &str) -> Option<Arc<NetworkView>> {
        self.registry()
            .networks
            .get(network_id)
            .map(|s| s.load_full())
    }

    /// Name and reverse entries (re)built by updates since the resolver started.
    pub fn entries_built(&self) -> u64 {
        self.entries_built.load(Ordering::Relaxed)
    }
}

/// Apply `f` to a copy of the network's current view (O(1): persistent maps) and swap it
/// in if anything changed; returns the number of entries `f` rebuilt.
fn update(slot: &NetworkSlot, f: impl FnOnce(&mut NetworkView) -> usize) -> usize {
    let mut next = NetworkView::clone(&slot.load());
    let built = f(&mut next);
    if built > 0 {
        slot.store(Arc::new(next));
    }
    built
}

/// The owner name of the `i`-th record of a flat-mode sandbox.
fn flat_owner(sandbox_id: &str, i: usize) -> String {
    format!("\0flat/{sandbox_id}/{i}")
}
