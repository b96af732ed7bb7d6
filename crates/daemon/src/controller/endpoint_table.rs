//! The endpoints in memory, with indexes by container and by network kept in step
//! with the map, so "the endpoints of this container / network" costs what it
//! returns, not the number of endpoints on the host.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use netloom_model::Endpoint;

/// Endpoints by ID, plus their IDs by container and by network. Reads go through
/// [`std::ops::Deref`] to the map; every change goes through [`EndpointTable::insert`]
/// or [`EndpointTable::remove`], which keep the indexes right.
#[derive(Debug, Default)]
pub(crate) struct EndpointTable {
    map: BTreeMap<String, Endpoint>,
    by_container: HashMap<String, BTreeSet<String>>,
    by_network: HashMap<String, BTreeSet<String>>,
}

fn index_add(ix: &mut HashMap<String, BTreeSet<String>>, key: &str, id: &str) {
    ix.entry(key.to_string())
        .or_default()
        .insert(id.to_string());
}

fn index_remove(ix: &mut HashMap<String, BTreeSet<String>>, key: &str, id: &str) {
    if let Some(set) = ix.get_mut(key) {
        set.remove(id);
        if set.is_empty() {
            ix.remove(key);
        }
    }
}

impl EndpointTable {
    /// Adds or replaces endpoint `id`; returns the endpoint it replaced.
    pub(crate) fn insert(&mut self, id: String, ep: Endpoint) -> Option<Endpoint> {
        index_add(&mut self.by_container, &ep.container_id, &id);
        index_add(&mut self.by_network, &ep.network_id, &id);
        let old = self.map.insert(id.clone(), ep);
        if let Some(o) = &old
            && let Some(new) = self.map.get(&id)
        {
            if o.container_id != new.container_id {
                index_remove(&mut self.by_container, &o.container_id, &id);
            }
            if o.network_id != new.network_id {
                index_remove(&mut self.by_network, &o.network_id, &id);
            }
        }
        old
    }

    /// Removes endpoint `id`; returns it.
    pub(crate) fn remove(&mut self, id: &str) -> Option<Endpoint> {
        let old = self.map.remove(id)?;
        index_remove(&mut self.by_container, &old.container_id, id);
        index_remove(&mut self.by_network, &old.network_id, id);
        Some(old)
    }

    /// Endpoints of container `ctr_id`, in ID order.
    pub(crate) fn of_container(&self, ctr_id: &str) -> Vec<&Endpoint> {
        self.lookup(self.by_container.get(ctr_id))
    }

    /// Endpoints of network `net_id`, in ID order.
    pub(crate) fn of_network(&self, net_id: &str) -> Vec<&Endpoint> {
        self.lookup(self.by_network.get(net_id))
    }

    /// How many endpoints network `net_id` has.
    pub(crate) fn count_of_network(&self, net_id: &str) -> usize {
        self.by_network.get(net_id).map_or(0, BTreeSet::len)
    }

    fn lookup(&self, ids: Option<&BTreeSet<String>>) -> Vec<&Endpoint> {
        ids.into_iter()
            .flatten()
            .filter_map(|id| self.map.get(id))
            .collect()
    }
}

impl std::ops::Deref for EndpointTable {
    type Target = BTreeMap<String, Endpoint>;
    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(id: &str, ctr: &str, net: &str) -> Endpoint {
        Endpoint {
            id: id.into(),
            network_id: net.into(),
            container_id: ctr.into(),
            container_name: String::new(),
            ifname: "eth0".into(),
            host_ifname: String::new(),
            mac: String::new(),
            ipv4: None,
            ipv6: None,
            gateway4: None,
            gateway6: None,
            aliases: Vec::new(),
            default_route: false,
        }
    }

    fn ids(v: Vec<&Endpoint>) -> Vec<&str> {
        v.into_iter().map(|e| e.id.as_str()).collect()
    }

    /// The indexes answer exactly what a scan of the map would, after inserts,
    /// replacements that move an endpoint, and removals.
    #[test]
    fn indexes_follow_the_map() {
        let mut t = EndpointTable::default();
        t.insert("e3".into(), ep("e3", "c1", "n1"));
        t.insert("e1".into(), ep("e1", "c1", "n2"));
        t.insert("e2".into(), ep("e2", "c2", "n1"));
        assert_eq!(ids(t.of_container("c1")), ["e1", "e3"]);
        assert_eq!(ids(t.of_network("n1")), ["e2", "e3"]);
        t.insert("e3".into(), ep("e3", "c2", "n2"));
        assert_eq!(ids(t.of_container("c1")), ["e1"]);
        assert_eq!(ids(t.of_container("c2")), ["e2", "e3"]);
        assert_eq!(ids(t.of_network("n1")), ["e2"]);
        assert_eq!(t.count_of_network("n2"), 2);
        assert!(t.remove("e2").is_some());
        assert!(t.remove("e2").is_none());
        assert!(t.of_network("n1").is_empty());
        assert_eq!(t.count_of_network("n1"), 0);
        assert!(!t.by_network.contains_key("n1"));
        for c in ["c1", "c2"] {
            let scan: Vec<&str> = t
                .values()
                .filter(|e| e.container_id == c)
                .map(|e| e.id.as_str())
                .collect();
            assert_eq!(ids(t.of_container(c)), scan);
        }
    }
}
