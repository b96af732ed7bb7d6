//! The swarm's leader: one manager, elected with a lease in the cluster store (the
//! store crate's election recipe), runs the cluster-wide work: finishing root
//! rotations now, the allocators of global networks and the scheduler later.
//!
//! Every manager runs an election loop; [`Leadership`] is its handle. Code that
//! must run on the leader only either awaits [`Leadership::leading`] or runs with
//! [`Leadership::spawn_while_leading`], which starts it each time this manager gains
//! the leadership and aborts it the moment it loses it, and writes with
//! [`Term::fence`] in the batch, so that a deposed leader that has not noticed yet
//! cannot write.
//!
//! On the embedded store the single manager wins at once. On etcd, the leadership
//! key `swarm/leader` is attached to a lease of [`TTL`]: a leader that dies, or is
//! cut off from the quorum, loses it within the TTL and another manager takes over.
//! When the store cannot be reached at all (no quorum), the state is
//! [`LeaderState::Unavailable`], which `docker info` and `node ls` report.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use netloom_store::{Event, Expect, LeaseId, Op, Revision, Store, StoreError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The leadership key (value: the leader's node ID as JSON).
pub const LEADER_KEY: &str = "swarm/leader";
/// Time to live of the leader's lease: a dead leader is replaced within it.
pub const TTL: Duration = Duration::from_secs(5);
/// Pause between attempts while the store cannot be reached.
const RETRY: Duration = Duration::from_millis(500);
/// How often a follower checks that the store still answers.
const PROBE: Duration = Duration::from_secs(2);

/// A term of leadership: this manager leads since the leadership key got `revision`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// The version of the leadership key written by this manager.
    pub revision: Revision,
}

impl Term {
    /// The check that makes a write a leader's write: add it to the batch, and the
    /// batch fails with a conflict unless this term is still current.
    pub fn fence(&self) -> Op {
        Op::Check {
            key: LEADER_KEY.to_string(),
            expect: Expect::Version(self.revision),
        }
    }
}

/// What this manager knows of the leadership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaderState {
    /// Not known yet (the election has just started).
    Unknown,
    /// The cluster store cannot be reached or has no quorum: nobody can lead.
    Unavailable {
        /// The store's error.
        error: String,
    },
    /// Another manager leads.
    Follower {
        /// Its node ID.
        leader: String,
    },
    /// This manager leads.
    Leader(Term),
}

/// The handle of a manager's election (cheap to clone).
#[derive(Debug, Clone)]
pub struct Leadership {
    me: String,
    rx: watch::Receiver<LeaderState>,
}

impl Leadership {
    /// What is known now.
    pub fn state(&self) -> LeaderState {
        self.rx.borrow().clone()
    }

    /// The leader's node ID, when one is known.
    pub fn leader(&self) -> Option<String> {
        match &*self.rx.borrow() {
            LeaderState::Leader(_) => Some(self.me.clone()),
            LeaderState::Follower { leader } => Some(leader.clone()),
            _ => None,
        }
    }

    /// This manager's term while it leads.
    #[allow(
        dead_code,
        reason = "the hook the overlay and services work use (issue 14)"
    )]
    pub fn term(&self) -> Option<Term> {
        match &*self.rx.borrow() {
            LeaderState::Leader(t) => Some(t.clone()),
            _ => None,
        }
    }

    /// A receiver that sees every change of state.
    #[allow(
        dead_code,
        reason = "the hook the overlay and services work use (issue 14)"
    )]
    pub fn subscribe(&self) -> watch::Receiver<LeaderState> {
        self.rx.clone()
    }

    /// Waits until this manager leads; returns its term (pending forever once the
    /// election stopped).
    #[allow(
        dead_code,
        reason = "the hook the overlay and services work use (issue 14)"
    )]
    pub async fn leading(&self) -> Term {
        let mut rx = self.rx.clone();
        loop {
            if let LeaderState::Leader(t) = &*rx.borrow_and_update() {
                return t.clone();
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Runs `f(term)` each time this manager gains the leadership; the task is
    /// aborted as soon as it loses it. The returned task runs until the election
    /// stops (abort it to stop earlier).
    pub fn spawn_while_leading<F, Fut>(&self, f: F) -> JoinHandle<()>
    where
        F: Fn(Term) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut rx = self.rx.clone();
        tokio::spawn(async move {
            let mut running: Option<(Term, JoinHandle<()>)> = None;
            loop {
                let now = match &*rx.borrow_and_update() {
                    LeaderState::Leader(t) => Some(t.clone()),
                    _ => None,
                };
                match (&running, now) {
                    (Some((t, _)), Some(n)) if *t == n => {}
                    (_, now) => {
                        if let Some((_, h)) = running.take() {
                            h.abort();
                        }
                        if let Some(t) = now {
                            running = Some((t.clone(), tokio::spawn(f(t))));
                        }
                    }
                }
                if rx.changed().await.is_err() {
                    if let Some((_, h)) = running.take() {
                        h.abort();
                    }
                    return;
                }
            }
        })
    }
}

/// The running election of one manager; dropping it stops the election (without
/// resigning: the lease then expires).
pub struct Election {
    handle: Leadership,
    task: JoinHandle<()>,
    lease: Arc<Mutex<Option<LeaseId>>>,
    store: Arc<dyn Fn() -> Arc<dyn Store> + Send + Sync>,
}

impl Drop for Election {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Election {
    /// Starts campaigning for `me`; `store` gives the current cluster store.
    pub fn start(me: String, store: Arc<dyn Fn() -> Arc<dyn Store> + Send + Sync>) -> Election {
        let (tx, rx) = watch::channel(LeaderState::Unknown);
        let lease = Arc::new(Mutex::new(None));
        let task = tokio::spawn(campaign(
            me.clone(),
            store.clone(),
            tx,
            Arc::downgrade(&lease),
        ));
        Election {
            handle: Leadership { me, rx },
            task,
            lease,
            store,
        }
    }

    /// The handle.
    pub fn handle(&self) -> Leadership {
        self.handle.clone()
    }

    /// Stops campaigning and gives up the leadership now (the lease is revoked, so
    /// another manager takes over at once).
    pub async fn resign(self) {
        self.task.abort();
        let lease = self.lease.lock().ok().and_then(|mut l| l.take());
        if let Some(l) = lease {
            let store = (self.store)();
            if let Err(e) = store.revoke_lease(l).await {
                tracing::info!(error = %e, "cannot revoke the leader's lease; it expires by itself");
            }
        }
    }
}

fn set(tx: &watch::Sender<LeaderState>, s: LeaderState) {
    tx.send_if_modified(|cur| {
        if *cur == s {
            return false;
        }
        match &s {
            LeaderState::Leader(t) => tracing::info!(revision = t.revision, "this manager is the swarm's leader"),
            LeaderState::Follower { leader } => tracing::info!(%leader, "following the swarm's leader"),
            LeaderState::Unavailable { error } => tracing::warn!(%error, "the swarm has no leader: the cluster store cannot be reached"),
            LeaderState::Unknown => {}
        }
        *cur = s.clone();
        true
    });
}

fn leader_of(v: &[u8]) -> String {
    serde_json::from_slice::<String>(v).unwrap_or_default()
}

async fn campaign(
    me: String,
    store: Arc<dyn Fn() -> Arc<dyn Store> + Send + Sync>,
    tx: watch::Sender<LeaderState>,
    lease_slot: Weak<Mutex<Option<LeaseId>>>,
) {
    let value = serde_json::to_vec(&me).unwrap_or_default();
    loop {
        let s = store();
        let lease = match s.grant_lease(TTL).await {
            Ok(l) => l,
            Err(e) => {
                set(
                    &tx,
                    LeaderState::Unavailable {
                        error: e.to_string(),
                    },
                );
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        match s
            .apply(vec![Op::put_leased(
                LEADER_KEY,
                value.clone(),
                Expect::Absent,
                lease,
            )])
            .await
        {
            Ok(rev) => {
                if let Some(slot) = lease_slot.upgrade()
                    && let Ok(mut g) = slot.lock()
                {
                    *g = Some(lease);
                }
                set(&tx, LeaderState::Leader(Term { revision: rev }));
                lead(&s, lease, &tx).await;
                if let Some(slot) = lease_slot.upgrade()
                    && let Ok(mut g) = slot.lock()
                {
                    *g = None;
                }
                let _ = s.revoke_lease(lease).await;
            }
            Err(StoreError::Conflict { .. }) => {
                let _ = s.revoke_lease(lease).await;
                follow(&s, &me, &tx).await;
            }
            Err(e) => {
                let _ = s.revoke_lease(lease).await;
                set(
                    &tx,
                    LeaderState::Unavailable {
                        error: e.to_string(),
                    },
                );
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// Keeps the lease alive while leading; returns when the leadership is lost.
async fn lead(s: &Arc<dyn Store>, lease: LeaseId, tx: &watch::Sender<LeaderState>) {
    let mut last_ok = Instant::now();
    loop {
        tokio::time::sleep(TTL / 4).await;
        match s.keep_alive(lease).await {
            Ok(_) => last_ok = Instant::now(),
            Err(StoreError::LeaseNotFound { .. }) => {
                tracing::warn!("the leader's lease expired: another manager may lead now");
                set(tx, LeaderState::Unknown);
                return;
            }
            Err(e) => {
                // Past the TTL the lease may have expired in the cluster: stop
                // leading before another manager can start.
                if last_ok.elapsed() + TTL / 4 >= TTL {
                    set(
                        tx,
                        LeaderState::Unavailable {
                            error: e.to_string(),
                        },
                    );
                    return;
                }
            }
        }
    }
}

/// Waits while another manager leads; returns when the key is gone (campaign again).
async fn follow(s: &Arc<dyn Store>, me: &str, tx: &watch::Sender<LeaderState>) {
    let listing = match s.list(LEADER_KEY).await {
        Ok(l) => l,
        Err(e) => {
            set(
                tx,
                LeaderState::Unavailable {
                    error: e.to_string(),
                },
            );
            tokio::time::sleep(RETRY).await;
            return;
        }
    };
    let Some((_, v)) = listing.items.iter().find(|(k, _)| k == LEADER_KEY) else {
        return;
    };
    let mut leader = leader_of(&v.value);
    if leader == me {
        // Our own key of an earlier term (a restart within the TTL): wait it out.
        tracing::info!(
            "the leadership key is still this manager's from before; waiting for it to expire"
        );
    }
    set(
        tx,
        LeaderState::Follower {
            leader: leader.clone(),
        },
    );
    let mut w = match s.watch(LEADER_KEY, listing.revision).await {
        Ok(w) => w,
        Err(_) => return,
    };
    loop {
        tokio::select! {
            ev = w.recv() => match ev {
                Ok(Event::Delete { .. }) => return,
                Ok(Event::Put { key, value, .. }) if key == LEADER_KEY => {
                    leader = leader_of(&value);
                    set(tx, LeaderState::Follower { leader: leader.clone() });
                }
                Ok(_) => {}
                Err(_) => return,
            },
            _ = tokio::time::sleep(PROBE) => {
                // A follower cut off from the quorum sees no event: ask.
                match s.revision().await {
                    Ok(_) => set(tx, LeaderState::Follower { leader: leader.clone() }),
                    Err(e) => set(tx, LeaderState::Unavailable { error: e.to_string() }),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netloom_store::MemoryStore;

    #[tokio::test]
    async fn one_leader_at_a_time_and_fenced_writes() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let s1 = store.clone();
        let a = Election::start("a".into(), Arc::new(move || s1.clone()));
        let term = tokio::time::timeout(Duration::from_secs(5), a.handle().leading())
            .await
            .unwrap();
        let s2 = store.clone();
        let b = Election::start("b".into(), Arc::new(move || s2.clone()));
        let mut rx = b.handle().subscribe();
        tokio::time::timeout(Duration::from_secs(5), async {
            while rx.borrow_and_update().clone() != (LeaderState::Follower { leader: "a".into() }) {
                rx.changed().await.unwrap();
            }
        })
        .await
        .unwrap();
        assert_eq!(b.handle().leader().as_deref(), Some("a"));
        // The leader's fenced write passes; once it resigned, the same fence fails.
        store
            .apply(vec![Op::put("x", "1", Expect::Any), term.fence()])
            .await
            .unwrap();
        let leading = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let l2 = leading.clone();
        let job = b.handle().spawn_while_leading(move |_| {
            let l2 = l2.clone();
            async move {
                l2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        a.resign().await;
        let t2 = tokio::time::timeout(Duration::from_secs(5), b.handle().leading())
            .await
            .unwrap();
        assert_ne!(t2, term);
        let e = store
            .apply(vec![Op::put("x", "2", Expect::Any), term.fence()])
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Conflict { .. }), "{e:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(leading.load(std::sync::atomic::Ordering::SeqCst), 1);
        job.abort();
    }
}
