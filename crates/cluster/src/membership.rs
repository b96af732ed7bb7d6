//! Membership and failure detection: SWIM (the `foca` crate, sans-io) over one tokio
//! UDP socket on 7946.
//!
//! Authentication: every datagram carries an HMAC-SHA256 tag keyed with the cluster's
//! gossip key, a random 32-byte secret that managers hand to nodes over mutual TLS
//! when they join (never in a token). Datagrams without a valid tag are dropped before
//! foca sees them, so only holders of the key count as members. A node removed from
//! the swarm still knows the key; the daemon therefore ignores members that are not
//! in its node list, and managers may rotate the key. (Replayed datagrams carry old
//! foca incarnations, which SWIM already discards.)
//!
//! Identity: a member is its node ID plus its gossip address and a start-time `bump`;
//! a restarted daemon comes back with a higher bump and replaces its old incarnation
//! at that address,
//! and a node that learns it was declared down (a partition) rejoins by itself with a
//! new bump. Timings: a 1 s probe period and 3 s of suspicion, so a dead node is
//! `Down` within about 5 s; down members are re-announced to every 5 s, so a partition heals by itself.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use foca::{Config, Foca, Notification, PostcardCodec, Runtime, Timer};
use ring::hmac;
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use crate::{ClusterError, Result};

/// Default membership port (Docker's 7946).
pub const DEFAULT_PORT: u16 = 7946;
const MAGIC: &[u8; 4] = b"NLG1";
const TAG_LEN: usize = 32;

/// A member's identity in the SWIM protocol.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MemberId {
    /// The swarm node ID.
    pub node_id: String,
    /// Where it receives membership datagrams.
    pub addr: SocketAddr,
    /// Incarnation of the process (nanoseconds since the epoch at start, then +1 per rejoin).
    pub bump: u64,
}

impl std::fmt::Debug for MemberId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}#{}", self.node_id, self.addr, self.bump)
    }
}

impl foca::Identity for MemberId {
    // The socket address, not the node ID: foca accepts an announce addressed to any
    // identity with its address, which is all a joiner knows of its seed.
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(MemberId {
            bump: self.bump.wrapping_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.bump > adversary.bump
    }
}

/// A change in membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberEvent {
    /// The node is alive (joined, came back, or was renamed with a new incarnation).
    Up {
        /// Its node ID.
        node_id: String,
        /// Its gossip address.
        addr: SocketAddr,
    },
    /// The node stopped answering (or left).
    Down {
        /// Its node ID.
        node_id: String,
    },
}

/// What a [`Membership`] needs.
#[derive(Clone)]
pub struct MembershipConfig {
    /// This node's ID.
    pub node_id: String,
    /// Where to bind the UDP socket.
    pub bind: SocketAddr,
    /// The address others send to (differs from `bind` when binding 0.0.0.0).
    pub advertise: SocketAddr,
    /// The cluster's gossip key.
    pub key: [u8; 32],
    /// Expected cluster size (tunes dissemination and suspicion).
    pub cluster_size: u32,
}

enum Cmd {
    Announce(SocketAddr),
    Leave(tokio::sync::oneshot::Sender<()>),
}

/// A running membership agent; dropping it stops the agent (without a leave message).
pub struct Membership {
    cmd: mpsc::UnboundedSender<Cmd>,
    events: broadcast::Sender<MemberEvent>,
    up: Arc<RwLock<BTreeMap<String, SocketAddr>>>,
    task: tokio::task::JoinHandle<()>,
    local: SocketAddr,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn config(size: u32) -> Config {
    let mut c = Config::new_lan(NonZeroU32::new(size.max(2)).unwrap_or(NonZeroU32::MIN));
    c.periodic_announce = Some(foca::PeriodicParams {
        frequency: Duration::from_secs(10),
        num_members: NonZeroUsize::MIN,
    });
    c.periodic_announce_to_down_members = Some(foca::PeriodicParams {
        frequency: Duration::from_secs(5),
        num_members: NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN),
    });
    // A dead member is suspected after a failed probe (1 s period, 500 ms round trip,
    // then indirect probes) and declared down 3 s later: `Down` within ~5 s, well
    // inside Docker's figure, while a member that misses one probe under load refutes
    // the suspicion in time.
    c.suspect_to_down_after = Duration::from_secs(3);
    c.max_packet_size =
        NonZeroUsize::new(1400 - MAGIC.len() - TAG_LEN).unwrap_or(NonZeroUsize::MIN);
    c
}

impl Membership {
    /// Binds the socket and starts the agent.
    pub async fn start(cfg: MembershipConfig) -> Result<Membership> {
        let sock = UdpSocket::bind(cfg.bind)
            .await
            .map_err(|source| ClusterError::Io {
                addr: cfg.bind.to_string(),
                what: "bind the membership socket".into(),
                source,
            })?;
        let local = sock.local_addr().map_err(|source| ClusterError::Io {
            addr: cfg.bind.to_string(),
            what: "read the membership socket's address".into(),
            source,
        })?;
        let mut advertise = cfg.advertise;
        if advertise.port() == 0 {
            advertise.set_port(local.port());
        }
        let bump = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        let me = MemberId {
            node_id: cfg.node_id.clone(),
            addr: advertise,
            bump,
        };
        let (cmd, rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(256);
        let up = Arc::new(RwLock::new(BTreeMap::new()));
        let agent = Agent {
            foca: Foca::new(
                me,
                config(cfg.cluster_size),
                rand::make_rng(),
                PostcardCodec,
            ),
            key: hmac::Key::new(hmac::HMAC_SHA256, &cfg.key),
            sock,
            rt: Rt::default(),
            timers: BinaryHeap::new(),
            seq: 0,
            events: events.clone(),
            up: up.clone(),
            bad_logged: Instant::now() - Duration::from_secs(60),
        };
        let task = tokio::spawn(agent.run(rx));
        Ok(Membership {
            cmd,
            events,
            up,
            task,
            local,
        })
    }

    /// The bound socket address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Asks the member at `addr` to let this node in (harmless when already a member).
    pub fn announce(&self, addr: SocketAddr) {
        let _ = self.cmd.send(Cmd::Announce(addr));
    }

    /// The members currently up (not this node), by node ID.
    pub fn members(&self) -> BTreeMap<String, SocketAddr> {
        self.up.read().map(|m| m.clone()).unwrap_or_default()
    }

    /// Whether `node_id` is up.
    pub fn is_up(&self, node_id: &str) -> bool {
        self.up
            .read()
            .map(|m| m.contains_key(node_id))
            .unwrap_or(false)
    }

    /// Membership changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<MemberEvent> {
        self.events.subscribe()
    }

    /// Tells the others that this node leaves, then stops.
    pub async fn leave(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.cmd.send(Cmd::Leave(tx)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(1), rx).await;
        }
    }
}

#[derive(Default)]
struct Rt {
    send: Vec<(SocketAddr, Vec<u8>)>,
    timers: Vec<(Duration, Timer<MemberId>)>,
    notes: Vec<foca::OwnedNotification<MemberId>>,
}

impl Runtime<MemberId> for Rt {
    fn notify(&mut self, n: Notification<'_, MemberId>) {
        self.notes.push(n.to_owned());
    }

    fn send_to(&mut self, to: MemberId, data: &[u8]) {
        self.send.push((to.addr, data.to_vec()));
    }

    fn submit_after(&mut self, event: Timer<MemberId>, after: Duration) {
        self.timers.push((after, event));
    }
}

struct Agent {
    foca: Foca<MemberId, PostcardCodec, rand::rngs::StdRng, foca::NoCustomBroadcast>,
    key: hmac::Key,
    sock: UdpSocket,
    rt: Rt,
    timers: BinaryHeap<Reverse<(Instant, u64, TimerBox)>>,
    seq: u64,
    events: broadcast::Sender<MemberEvent>,
    up: Arc<RwLock<BTreeMap<String, SocketAddr>>>,
    bad_logged: Instant,
}

/// A timer in the heap (ordered by deadline and sequence only).
struct TimerBox(Timer<MemberId>);

impl PartialEq for TimerBox {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for TimerBox {}
impl PartialOrd for TimerBox {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for TimerBox {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl Agent {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>) {
        let mut buf = vec![0u8; 2048];
        loop {
            let next = self.timers.peek().map(|Reverse((t, _, _))| *t);
            let sleep = async {
                match next {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = self.sock.recv_from(&mut buf) => {
                    if let Ok((n, from)) = r {
                        self.on_datagram(&buf[..n], from);
                    }
                }
                c = rx.recv() => match c {
                    Some(Cmd::Announce(addr)) => {
                        let dst = MemberId { node_id: String::new(), addr, bump: 0 };
                        let _ = self.foca.announce(dst, &mut self.rt);
                    }
                    Some(Cmd::Leave(done)) => {
                        let _ = self.foca.leave_cluster(&mut self.rt);
                        self.flush().await;
                        let _ = done.send(());
                        return;
                    }
                    None => return,
                },
                () = sleep => {
                    if let Some(Reverse((_, _, TimerBox(t)))) = self.timers.pop() {
                        let _ = self.foca.handle_timer(t, &mut self.rt);
                    }
                }
            }
            self.flush().await;
        }
    }

    fn on_datagram(&mut self, data: &[u8], from: SocketAddr) {
        let ok = data.len() > MAGIC.len() + TAG_LEN && &data[..MAGIC.len()] == MAGIC && {
            let (body, tag) = data.split_at(data.len() - TAG_LEN);
            hmac::verify(&self.key, body, tag).is_ok()
        };
        if !ok {
            // Rate-limited: anyone can send datagrams to this port.
            if self.bad_logged.elapsed() > Duration::from_secs(10) {
                self.bad_logged = Instant::now();
                tracing::warn!(%from, "dropped a membership datagram without a valid cluster signature");
            }
            return;
        }
        let body = &data[MAGIC.len()..data.len() - TAG_LEN];
        if let Err(e) = self.foca.handle_data(body, &mut self.rt) {
            tracing::debug!(%from, error = %e, "membership datagram refused");
        }
    }

    async fn flush(&mut self) {
        for (after, t) in self.rt.timers.drain(..) {
            self.seq += 1;
            self.timers
                .push(Reverse((Instant::now() + after, self.seq, TimerBox(t))));
        }
        for (to, data) in std::mem::take(&mut self.rt.send) {
            let mut pkt = Vec::with_capacity(MAGIC.len() + data.len() + TAG_LEN);
            pkt.extend_from_slice(MAGIC);
            pkt.extend_from_slice(&data);
            let tag = hmac::sign(&self.key, &pkt);
            pkt.extend_from_slice(tag.as_ref());
            let _ = self.sock.send_to(&pkt, to).await;
        }
        for n in std::mem::take(&mut self.rt.notes) {
            let ev = match n {
                foca::OwnedNotification::MemberUp(m) | foca::OwnedNotification::Rename(_, m) => {
                    Some(MemberEvent::Up {
                        node_id: m.node_id,
                        addr: m.addr,
                    })
                }
                foca::OwnedNotification::MemberDown(m) => {
                    // A down notice for an old incarnation of a member that is up again
                    // under a newer one is stale.
                    let newer = self
                        .foca
                        .iter_members()
                        .any(|x| x.id().node_id == m.node_id && x.id().bump > m.bump);
                    (!newer).then_some(MemberEvent::Down { node_id: m.node_id })
                }
                foca::OwnedNotification::Defunct => {
                    tracing::info!("declared down by the others; rejoining with a new incarnation");
                    None
                }
                _ => None,
            };
            let Some(ev) = ev else { continue };
            if let Ok(mut up) = self.up.write() {
                match &ev {
                    MemberEvent::Up { node_id, addr } => {
                        up.insert(node_id.clone(), *addr);
                    }
                    MemberEvent::Down { node_id } => {
                        up.remove(node_id);
                    }
                }
            }
            tracing::info!(event = ?ev, "membership");
            let _ = self.events.send(ev);
        }
    }
}
