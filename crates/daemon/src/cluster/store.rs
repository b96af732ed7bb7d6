//! The swarm's use of the cluster store, behind one small interface: the cluster
//! record and the node records, each read with its version and written with
//! compare-and-set on it (Docker's `Version.Index` is that version). The backend is
//! the single manager's embedded store, or the etcd cluster the managers share; on
//! etcd, a store that cannot be reached means the managers lost their quorum.

use std::sync::Arc;

use netloom_store::{EtcdStore, Expect, Op, Store, StoreError};

use super::state::{ClusterRecord, NodeRecord};

/// Key of the cluster record.
pub const CLUSTER: &str = "swarm/cluster";
/// Prefix of the node records (`swarm/nodes/<id>`).
pub const NODES: &str = "swarm/nodes/";

/// Errors of the swarm's store access.
#[derive(Debug, thiserror::Error)]
pub enum SwarmStoreError {
    /// The store failed, or a compare-and-set lost.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The managers' etcd cluster cannot be reached or has no quorum.
    #[error("the managers' cluster store has no quorum")]
    NoQuorum {
        /// What the store said.
        #[source]
        source: StoreError,
    },
    /// A record is not readable.
    #[error("swarm record {key} is unreadable")]
    Decode {
        /// The key.
        key: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

/// A record with its store version.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    /// The record.
    pub value: T,
    /// Its version (Docker's `Version.Index`).
    pub version: u64,
}

/// The swarm's records in the cluster store.
#[derive(Debug, Clone)]
pub struct SwarmStore {
    store: Arc<dyn Store>,
    etcd: Option<Arc<EtcdStore>>,
}

fn decode<T: serde::de::DeserializeOwned>(
    key: &str,
    v: netloom_store::Versioned,
) -> Result<Versioned<T>, SwarmStoreError> {
    serde_json::from_slice(&v.value)
        .map(|value| Versioned {
            value,
            version: v.version,
        })
        .map_err(|source| SwarmStoreError::Decode {
            key: key.to_string(),
            source,
        })
}

impl SwarmStore {
    /// Over the daemon's own `store` (one manager).
    pub fn new(store: Arc<dyn Store>) -> SwarmStore {
        SwarmStore { store, etcd: None }
    }

    /// Over the etcd cluster the managers share.
    pub fn etcd(store: Arc<EtcdStore>) -> SwarmStore {
        SwarmStore {
            store: store.clone(),
            etcd: Some(store),
        }
    }

    /// The store itself (for watches and leases).
    pub fn raw(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The etcd cluster, for its membership (managers on etcd).
    pub fn admin(&self) -> Option<&Arc<EtcdStore>> {
        self.etcd.as_ref()
    }

    /// Whether the managers share etcd.
    pub fn is_etcd(&self) -> bool {
        self.etcd.is_some()
    }

    /// Sorts a store error: on etcd, an unreachable store is a lost quorum.
    pub fn err(&self, e: StoreError) -> SwarmStoreError {
        if self.is_etcd() && e.is_unavailable() {
            SwarmStoreError::NoQuorum { source: e }
        } else {
            SwarmStoreError::Store(e)
        }
    }

    /// The cluster record, if this store holds a swarm.
    pub async fn cluster(&self) -> Result<Option<Versioned<ClusterRecord>>, SwarmStoreError> {
        match self.store.get(CLUSTER).await.map_err(|e| self.err(e))? {
            Some(v) => decode(CLUSTER, v).map(Some),
            None => Ok(None),
        }
    }

    /// All node records, by ID.
    pub async fn nodes(&self) -> Result<Vec<Versioned<NodeRecord>>, SwarmStoreError> {
        let mut out = Vec::new();
        for (k, v) in self.store.list(NODES).await.map_err(|e| self.err(e))?.items {
            out.push(decode(&k, v)?);
        }
        Ok(out)
    }

    /// One node record.
    pub async fn node(&self, id: &str) -> Result<Option<Versioned<NodeRecord>>, SwarmStoreError> {
        let k = format!("{NODES}{id}");
        match self.store.get(&k).await.map_err(|e| self.err(e))? {
            Some(v) => decode(&k, v).map(Some),
            None => Ok(None),
        }
    }

    /// Writes records in one transaction: the cluster (`expect`: `Some(version)` to
    /// update, `None` to create) and nodes (`(record, Some(version) | None)`).
    pub async fn write(
        &self,
        cluster: Option<(&ClusterRecord, Option<u64>)>,
        nodes: &[(&NodeRecord, Option<u64>)],
    ) -> Result<u64, SwarmStoreError> {
        self.write_fenced(cluster, nodes, None).await
    }

    /// [`SwarmStore::write`] that also fails unless `fence` holds (the leader's
    /// writes: [`super::leader::Term::fence`]).
    pub async fn write_fenced(
        &self,
        cluster: Option<(&ClusterRecord, Option<u64>)>,
        nodes: &[(&NodeRecord, Option<u64>)],
        fence: Option<Op>,
    ) -> Result<u64, SwarmStoreError> {
        let exp = |v: Option<u64>| v.map(Expect::Version).unwrap_or(Expect::Absent);
        let mut ops = Vec::new();
        if let Some((c, v)) = cluster {
            ops.push(Op::put_json(CLUSTER, c, exp(v))?);
        }
        for (n, v) in nodes {
            ops.push(Op::put_json(format!("{NODES}{}", n.id), *n, exp(*v))?);
        }
        ops.extend(fence);
        self.store.apply(ops).await.map_err(|e| self.err(e))
    }

    /// Removes a node record (at `version`), updating the cluster record with it.
    pub async fn remove_node(
        &self,
        id: &str,
        version: u64,
        cluster: (&ClusterRecord, u64),
    ) -> Result<u64, SwarmStoreError> {
        let ops = vec![
            Op::Delete {
                key: format!("{NODES}{id}"),
                expect: Expect::Version(version),
            },
            Op::put_json(CLUSTER, cluster.0, Expect::Version(cluster.1))?,
        ];
        self.store.apply(ops).await.map_err(|e| self.err(e))
    }

    /// Removes every swarm record (the last manager leaves with `--force`).
    pub async fn clear(&self) -> Result<(), SwarmStoreError> {
        let mut ops = Vec::new();
        for (k, _) in self
            .store
            .list("swarm/")
            .await
            .map_err(|e| self.err(e))?
            .items
        {
            ops.push(Op::Delete {
                key: k,
                expect: Expect::Any,
            });
        }
        if !ops.is_empty() {
            self.store.apply(ops).await.map_err(|e| self.err(e))?;
        }
        Ok(())
    }
}
