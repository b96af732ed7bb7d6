//! The relay: what a node receives of the cluster store, by watch.
//!
//! Workers have no access to the cluster store; their managers relay the prefixes
//! that concern them over the session (`POST /session`, see `docs/swarm.md`). Each
//! node keeps a [`Relay`]: per prefix, a mirror of the keys under it and the store
//! revision it is complete up to. Every session request carries those positions;
//! the manager answers with what changed after them ([`serve`]), so a node that
//! reconnects, to the same manager or to another one of the same store, resumes
//! where it was: nothing lost, nothing repeated (the mirror also counts and drops
//! any event at or below its position). A position the store's history no longer
//! reaches is answered with a full listing (a reset), as is a first subscription.
//!
//! Managers feed their own [`Relay`] from the store with the same code, so code
//! that needs cluster state on every node subscribes the same way everywhere:
//!
//! ```ignore
//! let mut sub = swarm.relay().subscribe("overlay/endpoints/");
//! while let Some(update) = sub.recv().await {
//!     match update {
//!         RelayUpdate::Reset { items, .. } => { /* replace everything */ }
//!         RelayUpdate::Events { events, .. } => { /* apply in order */ }
//!     }
//! }
//! ```
//!
//! Which prefixes managers relay, and to whom, is [`RELAYED`]: a prefix not listed
//! there is refused (a node never sees the cluster record, which holds the CA key
//! and the join tokens).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::FutureExt;
use netloom_cluster::proto::{RelayEvent, RelayItem, WatchBatch, WatchPosition};
use netloom_store::{Event, StoreError, Watch};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::store::{SwarmStore, SwarmStoreError};

/// Who may watch a relayed prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every node: the whole prefix.
    All,
    /// Each node only its own subtree, `<prefix><node-id>/` (tasks, keys).
    #[allow(
        dead_code,
        reason = "the hook the overlay and services work use (issue 14)"
    )]
    Node,
}

/// A prefix of the cluster store that managers relay to nodes.
#[derive(Debug, Clone, Copy)]
pub struct Relayed {
    /// The key prefix.
    pub prefix: &'static str,
    /// Who may watch it.
    pub scope: Scope,
}

/// What managers relay. The overlay and services work add their prefixes here
/// (network attachments and endpoint tables as [`Scope::All`], tasks and keys as
/// [`Scope::Node`]).
pub const RELAYED: &[Relayed] = &[
    Relayed {
        prefix: super::store::NODES,
        scope: Scope::All,
    },
    Relayed {
        prefix: super::global::NETWORKS,
        scope: Scope::All,
    },
    Relayed {
        prefix: super::global::ENDPOINTS,
        scope: Scope::All,
    },
];

/// What every node subscribes to when it starts.
pub const DEFAULT_SUBSCRIPTIONS: &[&str] = &[
    super::store::NODES,
    super::global::NETWORKS,
    super::global::ENDPOINTS,
];

/// Most events in one answer per prefix (the answer ends on a revision boundary).
pub const MAX_EVENTS: usize = 1000;
/// After the first event, how long the manager waits for more before it answers.
const LINGER: Duration = Duration::from_millis(10);
/// The longest a manager keeps collecting after the first event.
const COLLECT: Duration = Duration::from_millis(200);

/// Whether `node_id` may watch `prefix`.
pub fn allowed(node_id: &str, prefix: &str) -> bool {
    RELAYED.iter().any(|r| match r.scope {
        Scope::All => prefix.starts_with(r.prefix),
        Scope::Node => prefix.starts_with(&format!("{}{node_id}/", r.prefix)),
    })
}

fn value_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

fn event_of(e: Event) -> RelayEvent {
    match e {
        Event::Put {
            key,
            value,
            revision,
        } => RelayEvent {
            key,
            value: Some(value_of(&value)),
            revision,
        },
        Event::Delete { key, revision } => RelayEvent {
            key,
            value: None,
            revision,
        },
    }
}

async fn reset(store: &SwarmStore, b: &mut WatchBatch) -> Result<(), SwarmStoreError> {
    let l = store
        .raw()
        .list(&b.prefix)
        .await
        .map_err(|e| store.err(e))?;
    b.reset = Some(
        l.items
            .into_iter()
            .map(|(key, v)| RelayItem {
                key,
                value: value_of(&v.value),
                version: v.version,
            })
            .collect(),
    );
    b.events.clear();
    b.revision = l.revision;
    Ok(())
}

/// Answers watch positions: a listing for each position without one (or that the
/// history no longer reaches), else the changes after it, waiting up to `wait` for
/// the first one. `who`: the node asking, checked against [`RELAYED`]; `None` for
/// the manager's own relay.
pub(super) async fn serve(
    store: &SwarmStore,
    who: Option<&str>,
    positions: &[WatchPosition],
    wait: Duration,
) -> Result<Vec<WatchBatch>, SwarmStoreError> {
    let mut out: Vec<WatchBatch> = Vec::with_capacity(positions.len());
    let mut live: Vec<(usize, Watch)> = Vec::new();
    for p in positions {
        let mut b = WatchBatch {
            prefix: p.prefix.clone(),
            reset: None,
            events: Vec::new(),
            revision: p.after.unwrap_or(0),
            error: None,
        };
        if let Some(node) = who
            && !allowed(node, &p.prefix)
        {
            b.error = Some(format!(
                "prefix {:?} of the cluster store is not relayed to node {node}",
                p.prefix
            ));
            out.push(b);
            continue;
        }
        match p.after {
            None => reset(store, &mut b).await?,
            Some(after) => match store.raw().watch(&p.prefix, after).await {
                Ok(w) => live.push((out.len(), w)),
                Err(StoreError::Compacted { .. }) => reset(store, &mut b).await?,
                Err(e) => return Err(store.err(e)),
            },
        }
        out.push(b);
    }
    let now = Instant::now();
    let deadline = if out.iter().any(|b| b.reset.is_some()) {
        now
    } else {
        now + wait
    };
    let mut first: Option<Instant> = None;
    let mut done = vec![false; live.len()];
    let slots: Vec<usize> = live.iter().map(|(slot, _)| *slot).collect();
    loop {
        let limit = match first {
            Some(t) => (Instant::now() + LINGER).min(t + COLLECT),
            None => deadline,
        };
        let (i, ev) = {
            let pending: Vec<_> = live
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| !done[*i])
                .map(|(i, (_, w))| async move { (i, w.recv().await) }.boxed())
                .collect();
            if pending.is_empty() {
                break;
            }
            match tokio::time::timeout_at(
                tokio::time::Instant::from_std(limit),
                futures::future::select_all(pending),
            )
            .await
            {
                Ok(((i, ev), _, _rest)) => (i, ev),
                Err(_) => break,
            }
        };
        let b = &mut out[slots[i]];
        match ev {
            Ok(ev) => {
                first.get_or_insert_with(Instant::now);
                let rev = ev.revision();
                if b.events.len() >= MAX_EVENTS
                    && b.events.last().is_some_and(|l| l.revision != rev)
                {
                    // Full, and this event starts a new revision: it comes next time.
                    done[i] = true;
                    continue;
                }
                b.events.push(event_of(ev));
                b.revision = b.revision.max(rev);
            }
            Err(StoreError::Compacted { .. }) => {
                reset(store, b).await?;
                done[i] = true;
            }
            Err(e) => return Err(store.err(e)),
        }
    }
    Ok(out)
}

/// What a subscriber of a prefix receives.
#[derive(Debug, Clone, PartialEq)]
pub enum RelayUpdate {
    /// Everything under the prefix now (the first update, and after a re-list):
    /// replace what you hold.
    Reset {
        /// The keys with their values and versions.
        items: Vec<RelayItem>,
        /// The revision they are complete up to.
        revision: u64,
    },
    /// Changes, in revision order.
    Events {
        /// The changes.
        events: Vec<RelayEvent>,
        /// The revision the mirror is complete up to after them.
        revision: u64,
    },
}

/// A subscription to one prefix; ends (`recv` gives `None`) when the node leaves
/// the swarm.
#[derive(Debug)]
#[allow(
    dead_code,
    reason = "the hook the overlay and services work use (issue 14)"
)]
pub struct Subscription {
    rx: mpsc::UnboundedReceiver<RelayUpdate>,
}

#[allow(
    dead_code,
    reason = "the hook the overlay and services work use (issue 14)"
)]
impl Subscription {
    /// The next update.
    pub async fn recv(&mut self) -> Option<RelayUpdate> {
        self.rx.recv().await
    }
}

#[derive(Default)]
struct Mirror {
    after: Option<u64>,
    items: BTreeMap<String, (Value, u64)>,
    events: u64,
    duplicates: u64,
    resets: u64,
    error: Option<String>,
    subs: Vec<mpsc::UnboundedSender<RelayUpdate>>,
}

impl Mirror {
    fn items(&self) -> Vec<RelayItem> {
        self.items
            .iter()
            .map(|(k, (v, ver))| RelayItem {
                key: k.clone(),
                value: v.clone(),
                version: *ver,
            })
            .collect()
    }

    fn send(&mut self, u: RelayUpdate) {
        self.subs.retain(|s| s.send(u.clone()).is_ok());
    }
}

/// This node's mirrors of the prefixes it watches.
#[derive(Default)]
pub struct Relay {
    mirrors: Mutex<BTreeMap<String, Mirror>>,
    added: tokio::sync::Notify,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").finish_non_exhaustive()
    }
}

impl Relay {
    /// A relay that watches `prefixes`.
    pub fn new(prefixes: &[&str]) -> Relay {
        let r = Relay::default();
        if let Ok(mut m) = r.mirrors.lock() {
            for p in prefixes {
                m.insert(p.to_string(), Mirror::default());
            }
        }
        r
    }

    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<String, Mirror>) -> T) -> T {
        let mut g = self.mirrors.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g)
    }

    /// Subscribes to `prefix` (watched from now on if it was not): the first update
    /// is a reset with what the mirror holds, once it holds anything.
    #[allow(
        dead_code,
        reason = "the hook the overlay and services work use (issue 14)"
    )]
    pub fn subscribe(&self, prefix: &str) -> Subscription {
        let (tx, rx) = mpsc::unbounded_channel();
        let added = self.with(|m| {
            let added = !m.contains_key(prefix);
            let mirror = m.entry(prefix.to_string()).or_default();
            if let Some(revision) = mirror.after {
                let _ = tx.send(RelayUpdate::Reset {
                    items: mirror.items(),
                    revision,
                });
            }
            mirror.subs.push(tx);
            added
        });
        if added {
            self.added.notify_waiters();
        }
        Subscription { rx }
    }

    /// What the mirror of `prefix` holds now (key, value); empty if not watched.
    pub fn snapshot(&self, prefix: &str) -> Vec<(String, Value)> {
        self.with(|m| {
            m.get(prefix)
                .map(|mi| {
                    mi.items
                        .iter()
                        .map(|(k, (v, _))| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default()
        })
    }

    /// Whether the mirror of `prefix` has been filled once (it holds the store's view
    /// as of some revision, not nothing yet).
    pub fn is_ready(&self, prefix: &str) -> bool {
        self.with(|m| m.get(prefix).is_some_and(|mi| mi.after.is_some()))
    }

    /// Waits until a prefix is added.
    pub(super) async fn prefix_added(&self) {
        self.added.notified().await;
    }

    /// The prefixes watched.
    pub(super) fn prefixes(&self) -> Vec<String> {
        self.with(|m| m.keys().cloned().collect())
    }

    /// Where the mirrors are, for the next session request.
    pub fn positions(&self) -> Vec<WatchPosition> {
        self.with(|m| {
            m.iter()
                .map(|(p, mi)| WatchPosition {
                    prefix: p.clone(),
                    after: mi.after,
                })
                .collect()
        })
    }

    /// Applies a manager's answer.
    pub fn apply(&self, batches: Vec<WatchBatch>) {
        self.with(|m| {
            for b in batches {
                let Some(mi) = m.get_mut(&b.prefix) else { continue };
                if let Some(e) = b.error {
                    if mi.error.as_deref() != Some(&e) {
                        tracing::warn!(prefix = %b.prefix, error = %e, "the manager does not relay this prefix");
                    }
                    mi.error = Some(e);
                    continue;
                }
                mi.error = None;
                if let Some(items) = b.reset {
                    mi.items = items
                        .into_iter()
                        .map(|i| (i.key, (i.value, i.version)))
                        .collect();
                    mi.after = Some(b.revision);
                    mi.resets += 1;
                    let u = RelayUpdate::Reset {
                        items: mi.items(),
                        revision: b.revision,
                    };
                    mi.send(u);
                }
                // Events at or below where the mirror stood are repeats (one
                // revision may carry several keys, so compare with the start).
                let start = mi.after;
                let mut fresh = Vec::new();
                for ev in b.events {
                    if start.is_some_and(|a| ev.revision <= a) {
                        mi.duplicates += 1;
                        continue;
                    }
                    match &ev.value {
                        Some(v) => {
                            mi.items.insert(ev.key.clone(), (v.clone(), ev.revision));
                        }
                        None => {
                            mi.items.remove(&ev.key);
                        }
                    }
                    mi.events += 1;
                    fresh.push(ev);
                }
                let revision = mi.after.unwrap_or(0).max(b.revision);
                let moved = mi.after != Some(revision);
                mi.after = Some(revision);
                if !fresh.is_empty() || moved {
                    mi.send(RelayUpdate::Events {
                        events: fresh,
                        revision,
                    });
                }
            }
        });
    }

    /// Forgets everything (the node left, or joined another swarm): subscribers get
    /// an empty reset, and every prefix is listed again.
    pub fn clear(&self) {
        self.with(|m| {
            for mi in m.values_mut() {
                let subs = std::mem::take(&mut mi.subs);
                *mi = Mirror {
                    subs,
                    ..Mirror::default()
                };
                mi.send(RelayUpdate::Reset {
                    items: Vec::new(),
                    revision: 0,
                });
            }
        });
    }

    /// The mirrors as `GET /swarm/relay` shows them.
    pub fn status(&self) -> Value {
        self.with(|m| {
            Value::Array(
                m.iter()
                    .map(|(p, mi)| {
                        let keys: serde_json::Map<String, Value> = mi
                            .items
                            .iter()
                            .map(|(k, (_, v))| (k.clone(), json!(v)))
                            .collect();
                        json!({
                            "Prefix": p,
                            "Revision": mi.after,
                            "Keys": keys,
                            "Events": mi.events,
                            "Duplicates": mi.duplicates,
                            "Resets": mi.resets,
                            "Error": mi.error.clone().unwrap_or_default(),
                        })
                    })
                    .collect(),
            )
        })
    }
}

/// A manager's own relay: each prefix follows the store directly, with the code
/// that answers nodes. Runs until aborted.
pub(super) async fn feed(
    relay: std::sync::Arc<Relay>,
    store: impl Fn() -> Option<SwarmStore> + Send + Sync + 'static,
) {
    /// The per-prefix tasks, aborted with the feed.
    struct Tasks(BTreeMap<String, tokio::task::JoinHandle<()>>);
    impl Drop for Tasks {
        fn drop(&mut self) {
            for h in self.0.values() {
                h.abort();
            }
        }
    }
    let mut tasks = Tasks(BTreeMap::new());
    let store = std::sync::Arc::new(store);
    loop {
        let added = relay.prefix_added();
        for p in relay.prefixes() {
            if tasks.0.contains_key(&p) {
                continue;
            }
            let (r, s, prefix) = (relay.clone(), store.clone(), p.clone());
            let h = tokio::spawn(async move {
                loop {
                    let Some(st) = s() else { return };
                    let pos: Vec<WatchPosition> = r
                        .positions()
                        .into_iter()
                        .filter(|x| x.prefix == prefix)
                        .collect();
                    match serve(&st, None, &pos, Duration::from_secs(30)).await {
                        Ok(b) => r.apply(b),
                        Err(e) => {
                            tracing::debug!(%prefix, error = %e, "relay feed: store unavailable");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            });
            tasks.0.insert(p, h);
        }
        added.await;
    }
}

#[cfg(test)]
mod tests;
