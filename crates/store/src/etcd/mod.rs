//! The etcd backend: [`EtcdStore`], over the `etcd-client` crate (etcd v3 API;
//! KV, Txn, Watch and Lease are the same in etcd 3.4, which Debian ships, and later).
//!
//! - Keys live under [`EtcdConfig::prefix`] (`/netloom/network/<id>`).
//! - A key's version is its `mod_revision`; an `apply` is one `Txn` whose compares
//!   are the expectations (`create_revision == 0` for [`Expect::Absent`],
//!   `mod_revision == v` for [`Expect::Version`]); its failure branch reads the
//!   expected keys back, so a conflict names the key that failed.
//! - Every request runs under [`EtcdConfig::deadline`]: past it, or on a transport
//!   error, the answer is [`StoreError::Unavailable`].

mod config;
mod members;
mod watch;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, KeyValue, PutOptions, Txn, TxnOp,
    TxnOpResponse,
};
use tonic_code::is_unreachable;

pub use config::{DEFAULT_DEADLINE, DEFAULT_PREFIX, DEFAULT_WATCH_RESUME, EtcdConfig, EtcdTls};
pub use members::Member;

use crate::error::{EtcdFailure, Unreachable};
use crate::{Expect, LeaseId, Listing, Op, Revision, Store, StoreError, Versioned, Watch};

/// Keys per page of a listing (each page read at the first page's revision).
const PAGE: i64 = 1000;

/// What every part of the backend needs to name the store in errors.
#[derive(Debug)]
pub(crate) struct Names {
    name: String,
    hint: String,
}

impl Names {
    fn new(cfg: &EtcdConfig) -> Names {
        Names {
            name: cfg.describe(),
            hint: format!(
                "check that etcd at {} runs and can be reached, then retry",
                cfg.endpoints.join(", ")
            ),
        }
    }

    pub(crate) fn unavailable(&self, cause: Unreachable) -> StoreError {
        StoreError::Unavailable {
            store: self.name.clone(),
            hint: self.hint.clone(),
            cause,
        }
    }

    /// Sorts an etcd error: unreachable, or a failed request.
    pub(crate) fn error(&self, e: etcd_client::Error) -> StoreError {
        if is_unreachable(&e) {
            self.unavailable(Unreachable::Transport(EtcdFailure(Box::new(e))))
        } else {
            StoreError::Etcd {
                store: self.name.clone(),
                source: Box::new(e),
            }
        }
    }

    /// Runs one request under the deadline.
    pub(crate) async fn call<T>(
        &self,
        deadline: Duration,
        fut: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(deadline, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.error(e)),
            Err(_) => Err(self.unavailable(Unreachable::Timeout(deadline))),
        }
    }
}

mod tonic_code {
    /// True for errors that mean "cannot reach a working etcd now": transport
    /// failures, and gRPC `Unavailable`/`DeadlineExceeded` (etcd 3.4 answers
    /// `Unavailable` for "no leader" and "request timed out").
    ///
    /// A status that carries a source error was made on this side of the wire from
    /// a failed connection (tonic reports a request cut by a dying connection as
    /// code `Unknown`, "transport error", with the broken pipe as its source);
    /// statuses from the server never carry one.
    pub(super) fn is_unreachable(e: &etcd_client::Error) -> bool {
        match e {
            etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
            etcd_client::Error::GRpcStatus(s) => {
                matches!(
                    s.code(),
                    tonic::Code::Unavailable
                        | tonic::Code::DeadlineExceeded
                        | tonic::Code::Cancelled
                ) || std::error::Error::source(s).is_some()
            }
            _ => false,
        }
    }

    /// True for etcd's "requested lease not found".
    pub(super) fn is_lease_not_found(e: &etcd_client::Error) -> bool {
        match e {
            etcd_client::Error::GRpcStatus(s) => {
                s.code() == tonic::Code::NotFound && s.message().contains("lease not found")
            }
            etcd_client::Error::LeaseKeepAliveError(m) => m.contains("lease not found"),
            _ => false,
        }
    }
}

/// The store in an etcd cluster (see the module docs).
pub struct EtcdStore {
    client: Client,
    cfg: EtcdConfig,
    names: Arc<Names>,
    /// TTLs of the leases this client granted, for [`Store::keep_alive`]'s answer.
    ttls: Mutex<HashMap<LeaseId, Duration>>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connects to the cluster and checks, within the deadline, that it answers:
    /// [`StoreError::Unavailable`] when it does not.
    pub async fn connect(cfg: EtcdConfig) -> Result<EtcdStore, StoreError> {
        let store = EtcdStore::open(cfg).await?;
        store.revision().await?;
        Ok(store)
    }

    /// Makes a client of the cluster without waiting for it to answer: the first
    /// requests fail with [`StoreError::Unavailable`] until it does (a daemon that
    /// starts its own etcd member, or comes back while the cluster has no quorum).
    pub async fn open(cfg: EtcdConfig) -> Result<EtcdStore, StoreError> {
        let names = Arc::new(Names::new(&cfg));
        // HTTP/2 pings find a dead connection that no packet reports. etcd refuses
        // pings more often than every 5 s by default (--grpc-keepalive-min-time) and
        // pings without an open stream, so ping every 10 s and only while a stream
        // (a watch) is open.
        let options = ConnectOptions::new()
            .with_connect_timeout(cfg.deadline)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_keep_alive_while_idle(false)
            .with_tcp_keepalive(Duration::from_secs(10));
        let options = match &cfg.tls {
            Some(t) => options.with_tls(
                etcd_client::TlsOptions::new()
                    .ca_certificate(etcd_client::Certificate::from_pem(&t.ca_pem))
                    .identity(etcd_client::Identity::from_pem(&t.cert_pem, &t.key_pem)),
            ),
            None => options,
        };
        let client = names
            .call(cfg.deadline, Client::connect(&cfg.endpoints, Some(options)))
            .await?;
        Ok(EtcdStore {
            client,
            cfg,
            names,
            ttls: Mutex::new(HashMap::new()),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &EtcdConfig {
        &self.cfg
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.cfg.prefix)
    }

    async fn call<T>(
        &self,
        fut: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, StoreError> {
        self.names.call(self.cfg.deadline, fut).await
    }

    /// Our key of an etcd key-value.
    fn key_of(&self, kv: &KeyValue) -> Result<String, StoreError> {
        let raw = kv.key();
        let key = std::str::from_utf8(raw).map_err(|_| StoreError::CorruptValue {
            key: String::from_utf8_lossy(raw).into_owned(),
        })?;
        Ok(key
            .strip_prefix(self.cfg.prefix.as_str())
            .unwrap_or(key)
            .to_string())
    }
}

fn revision_of(header: Option<&etcd_client::ResponseHeader>) -> Revision {
    header.map_or(0, |h| u64::try_from(h.revision()).unwrap_or(0))
}

fn rev(v: i64) -> Revision {
    u64::try_from(v).unwrap_or(0)
}

fn etcd_rev(v: Revision) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The end of the key range of every key starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    fn describe(&self) -> String {
        self.names.name.clone()
    }

    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let mut kv = self.client.kv_client();
        let resp = self.call(kv.get(self.full(key), None)).await?;
        Ok(resp.kvs().first().map(|kv| Versioned {
            value: kv.value().to_vec(),
            version: rev(kv.mod_revision()),
        }))
    }

    async fn list(&self, prefix: &str) -> Result<Listing, StoreError> {
        let full = self.full(prefix).into_bytes();
        let end = prefix_end(&full);
        let mut kv = self.client.kv_client();
        let mut items = Vec::new();
        let mut from = full.clone();
        let mut snapshot: Option<i64> = None;
        loop {
            let mut opts = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
            if let Some(r) = snapshot {
                opts = opts.with_revision(r);
            }
            let resp = self.call(kv.get(from.clone(), Some(opts))).await?;
            let at = resp.header().map_or(0, |h| h.revision());
            let snapshot = *snapshot.get_or_insert(at);
            for item in resp.kvs() {
                items.push((
                    self.key_of(item)?,
                    Versioned {
                        value: item.value().to_vec(),
                        version: rev(item.mod_revision()),
                    },
                ));
            }
            match resp.kvs().last() {
                Some(last) if resp.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => {
                    return Ok(Listing {
                        items,
                        revision: rev(snapshot),
                    });
                }
            }
        }
    }

    async fn apply(&self, ops: Vec<Op>) -> Result<Revision, StoreError> {
        if ops.is_empty() {
            return self.revision().await;
        }
        crate::check_unique_keys(&ops)?;
        let mut compares = Vec::new();
        let mut writes = Vec::new();
        let mut reads = Vec::new();
        let mut expected = Vec::new();
        let mut lease_of_batch = None;
        for op in &ops {
            let key = self.full(op.key());
            match op.expect() {
                Expect::Any => {}
                Expect::Absent => {
                    compares.push(Compare::create_revision(key.clone(), CompareOp::Equal, 0));
                }
                Expect::Version(v) => {
                    compares.push(Compare::mod_revision(
                        key.clone(),
                        CompareOp::Equal,
                        etcd_rev(v),
                    ));
                }
            }
            if op.expect() != Expect::Any {
                reads.push(TxnOp::get(
                    key.clone(),
                    Some(GetOptions::new().with_keys_only()),
                ));
                expected.push((op.key(), op.expect()));
            }
            match op {
                Op::Put { value, lease, .. } => {
                    let opts = lease.map(|l| {
                        lease_of_batch.get_or_insert(l);
                        PutOptions::new().with_lease(l.0)
                    });
                    writes.push(TxnOp::put(key, value.clone(), opts));
                }
                Op::Delete { .. } => writes.push(TxnOp::delete(key, None)),
                Op::Check { .. } => {}
            }
        }
        let txn = Txn::new().when(compares).and_then(writes).or_else(reads);
        let mut kv = self.client.kv_client();
        let resp = match tokio::time::timeout(self.cfg.deadline, kv.txn(txn)).await {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) if tonic_code::is_lease_not_found(&e) => {
                return Err(match lease_of_batch {
                    Some(lease) => StoreError::LeaseNotFound { lease },
                    None => self.names.error(e),
                });
            }
            Ok(Err(e)) => return Err(self.names.error(e)),
            Err(_) => {
                return Err(self
                    .names
                    .unavailable(Unreachable::Timeout(self.cfg.deadline)));
            }
        };
        if resp.succeeded() {
            return Ok(revision_of(resp.header()));
        }
        // The failure branch read the expected keys in the same transaction: find
        // the first expectation that did not hold.
        let current = resp.op_responses().into_iter().map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().first().map(|kv| rev(kv.mod_revision())),
            _ => None,
        });
        let failed = expected
            .iter()
            .zip(current)
            .find(|((_, expect), have)| match (expect, have) {
                (Expect::Absent, have) => have.is_some(),
                (Expect::Version(want), Some(have)) => want != have,
                (Expect::Version(_), None) => true,
                (Expect::Any, _) => false,
            })
            .map(|((key, _), _)| *key)
            .or_else(|| expected.first().map(|(key, _)| *key))
            .unwrap_or_default();
        Err(StoreError::Conflict {
            key: failed.to_string(),
        })
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        let mut kv = self.client.kv_client();
        let resp = self
            .call(kv.get(
                self.cfg.prefix.clone(),
                Some(GetOptions::new().with_count_only()),
            ))
            .await?;
        Ok(revision_of(resp.header()))
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch, StoreError> {
        let mut source = watch::EtcdWatch {
            client: self.client.clone(),
            names: self.names.clone(),
            deadline: self.cfg.deadline,
            window: self.cfg.watch_resume,
            base: self.cfg.prefix.clone(),
            key: self.full(prefix),
            next: etcd_rev(after).saturating_add(1),
            stream: None,
            buf: VecDeque::new(),
            broken_since: None,
        };
        source.open_once().await?;
        Ok(Watch::new(
            prefix,
            self.names.name.clone(),
            Box::new(source),
        ))
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        let secs = i64::try_from(ttl.as_millis().div_ceil(1000).max(1)).unwrap_or(i64::MAX);
        let mut lease = self.client.lease_client();
        let resp = self.call(lease.grant(secs, None)).await?;
        let id = LeaseId(resp.id());
        let granted = Duration::from_secs(u64::try_from(resp.ttl()).unwrap_or(0));
        self.ttls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, granted);
        Ok(id)
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError> {
        let mut client = self.client.lease_client();
        match tokio::time::timeout(self.cfg.deadline, client.keep_alive(lease.0)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) if tonic_code::is_lease_not_found(&e) => {
                return Err(StoreError::LeaseNotFound { lease });
            }
            Ok(Err(e)) => return Err(self.names.error(e)),
            Err(_) => {
                return Err(self
                    .names
                    .unavailable(Unreachable::Timeout(self.cfg.deadline)));
            }
        }
        let known = self
            .ttls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&lease)
            .copied();
        match known {
            Some(ttl) => Ok(ttl),
            None => {
                let resp = self.call(client.time_to_live(lease.0, None)).await?;
                Ok(Duration::from_secs(
                    u64::try_from(resp.granted_ttl()).unwrap_or(0),
                ))
            }
        }
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        let mut client = self.client.lease_client();
        let result = tokio::time::timeout(self.cfg.deadline, client.revoke(lease.0)).await;
        self.ttls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&lease);
        match result {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if tonic_code::is_lease_not_found(&e) => Ok(()),
            Ok(Err(e)) => Err(self.names.error(e)),
            Err(_) => Err(self
                .names
                .unavailable(Unreachable::Timeout(self.cfg.deadline))),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefix_ends() {
        assert_eq!(super::prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(super::prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(super::prefix_end(b"\xff\xff"), vec![0]);
    }
}
