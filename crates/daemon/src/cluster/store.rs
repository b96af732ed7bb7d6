//! The swarm's use of the cluster store, behind one small interface: the cluster
//! record and the node records, each read with its version and written with
//! compare-and-set on it (Docker's `Version.Index` is that version). Today the
//! backend is the single manager's embedded store; when managers share etcd, the
//! same calls go there, and `watch` (from the store's revision) replaces polling.

use std::sync::Arc;

use netloom_store::{Expect, Op, Store, StoreError};

use super::state::{ClusterRecord, NodeRecord};

const CLUSTER: &str = "swarm/cluster";
const NODES: &str = "swarm/nodes/";

/// Errors of the swarm's store access.
#[derive(Debug, thiserror::Error)]
pub enum SwarmStoreError {
    /// The store failed, or a compare-and-set lost.
    #[error(transparent)]
    Store(#[from] StoreError),
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
    /// Over `store`.
    pub fn new(store: Arc<dyn Store>) -> SwarmStore {
        SwarmStore { store }
    }

    /// The cluster record, if this store holds a swarm.
    pub async fn cluster(&self) -> Result<Option<Versioned<ClusterRecord>>, SwarmStoreError> {
        match self.store.get(CLUSTER).await? {
            Some(v) => decode(CLUSTER, v).map(Some),
            None => Ok(None),
        }
    }

    /// All node records, by ID.
    pub async fn nodes(&self) -> Result<Vec<Versioned<NodeRecord>>, SwarmStoreError> {
        let mut out = Vec::new();
        for (k, v) in self.store.list(NODES).await?.items {
            out.push(decode(&k, v)?);
        }
        Ok(out)
    }

    /// One node record.
    pub async fn node(&self, id: &str) -> Result<Option<Versioned<NodeRecord>>, SwarmStoreError> {
        let k = format!("{NODES}{id}");
        match self.store.get(&k).await? {
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
        let exp = |v: Option<u64>| v.map(Expect::Version).unwrap_or(Expect::Absent);
        let mut ops = Vec::new();
        if let Some((c, v)) = cluster {
            ops.push(Op::put_json(CLUSTER, c, exp(v))?);
        }
        for (n, v) in nodes {
            ops.push(Op::put_json(format!("{NODES}{}", n.id), *n, exp(*v))?);
        }
        Ok(self.store.apply(ops).await?)
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
        Ok(self.store.apply(ops).await?)
    }

    /// Removes every swarm record (the last manager leaves with `--force`).
    pub async fn clear(&self) -> Result<(), SwarmStoreError> {
        let mut ops = Vec::new();
        for (k, _) in self.store.list("swarm/").await?.items {
            ops.push(Op::Delete {
                key: k,
                expect: Expect::Any,
            });
        }
        if !ops.is_empty() {
            self.store.apply(ops).await?;
        }
        Ok(())
    }
}
