//! The [`Resolver`]: query dispatch, per-sandbox listeners and their lifecycle.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::timeout;
use tracing::Instrument;

use crate::answer::{self, client_limit, encode, local_answer, response_to};
use crate::cache::{Cache, CacheKey};
use crate::forward::{Forwarder, patch_response};
use crate::netns::bind_in_netns;
use crate::ratelimit::LogLimiter;
use crate::{ResolverConfig, ResolverError, Snapshot};

/// Docker's embedded DNS address inside every sandbox.
const LISTEN_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 0, 11)), 53);

/// The embedded DNS server shared by all sandboxes of the daemon.
///
/// Cheap to query concurrently: local answers read the current [`Snapshot`] through an
/// `ArcSwap` without locking.
pub struct Resolver {
    cfg: ResolverConfig,
    snapshot: ArcSwap<Snapshot>,
    forwarder: Forwarder,
    cache: Cache,
    global_inflight: Arc<Semaphore>,
    sandbox_inflight: Mutex<HashMap<String, Arc<Semaphore>>>,
    attachments: Mutex<HashMap<String, Attachment>>,
    malformed_log: LogLimiter,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("cfg", &self.cfg)
            .field("sandboxes", &self.snapshot.load().sandboxes.len())
            .finish_non_exhaustive()
    }
}

/// Listener tasks of one attached sandbox.
struct Attachment {
    netns: PathBuf,
    tasks: Vec<JoinHandle<()>>,
}

impl Attachment {
    fn stop(&self) {
        // Aborting the listener tasks drops their sockets and their JoinSets, which aborts
        // the per-query and per-connection tasks too.
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The outcome of the synchronous part of a query.
enum Step {
    /// Answered (or dropped) without I/O.
    Done(Option<Vec<u8>>),
    /// Needs an upstream round trip.
    Forward(Box<ForwardJob>),
}

/// An admitted forward: holds its in-flight permits until it completes.
struct ForwardJob {
    sandbox_id: String,
    raw: Vec<u8>,
    req: Message,
    key: Option<CacheKey>,
    upstreams: Arc<[SocketAddr]>,
    limit: usize,
    _permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
}

impl Resolver {
    /// A resolver with an empty snapshot and nothing attached.
    pub fn new(cfg: ResolverConfig) -> Arc<Resolver> {
        Arc::new(Resolver {
            forwarder: Forwarder::new(cfg.upstream_timeout, cfg.upstream_backoff),
            cache: Cache::new(cfg.cache_capacity),
            global_inflight: Arc::new(Semaphore::new(cfg.max_inflight)),
            sandbox_inflight: Mutex::new(HashMap::new()),
            attachments: Mutex::new(HashMap::new()),
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            malformed_log: LogLimiter::new(1000),
            cfg,
        })
    }

    /// Swap in a new snapshot (ArcSwap): the query path takes no lock for local names.
    /// Queries already running finish against the snapshot they started with.
    pub fn publish(&self, snap: Snapshot) {
        self.sandbox_inflight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|id, _| snap.sandboxes.contains_key(id));
        self.snapshot.store(Arc::new(snap));
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Serve DNS for a sandbox at 127.0.0.11:53 UDP and TCP inside the network namespace
    /// bound at `netns` (lo is up there). Idempotent per sandbox id (attaching again with
    /// another path moves the listeners). Tasks are tokio tasks on the caller's runtime.
    ///
    /// Blocks the calling thread for the short time a helper thread needs to enter the
    /// namespace and bind; it never changes the namespace of the calling thread.
    pub fn attach(self: &Arc<Self>, sandbox_id: &str, netns: &Path) -> Result<(), ResolverError> {
        let rt = tokio::runtime::Handle::try_current().map_err(|_| ResolverError::NoRuntime {
            sandbox_id: sandbox_id.to_owned(),
        })?;
        let mut attachments = self
            .attachments
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = attachments.get(sandbox_id) {
            if existing.netns == netns && existing.tasks.iter().all(|t| !t.is_finished()) {
                return Ok(());
            }
            existing.stop();
            attachments.remove(sandbox_id);
        }

        let (udp, tcp) = bind_in_netns(netns, LISTEN_ADDR)?;
        let _guard = rt.enter();
        let register = |proto, source| ResolverError::Register {
            proto,
            sandbox_id: sandbox_id.to_owned(),
            source,
        };
        let udp = UdpSocket::from_std(udp).map_err(|e| register("udp", e))?;
        let tcp = TcpListener::from_std(tcp).map_err(|e| register("tcp", e))?;

        let span = tracing::info_span!("dns", sandbox_id);
        let udp_task = rt.spawn(
            Arc::clone(self)
                .serve_udp(sandbox_id.to_owned(), udp)
                .instrument(span.clone()),
        );
        let tcp_task = rt.spawn(
            Arc::clone(self)
                .serve_tcp(sandbox_id.to_owned(), tcp)
                .instrument(span),
        );
        tracing::info!(sandbox_id, netns = %netns.display(), "embedded DNS attached");
        attachments.insert(
            sandbox_id.to_owned(),
            Attachment {
                netns: netns.to_path_buf(),
                tasks: vec![udp_task, tcp_task],
            },
        );
        Ok(())
    }

    /// Stop serving a sandbox: its tasks end and its sockets close. No-op if not attached.
    pub fn detach(&self, sandbox_id: &str) {
        let removed = self
            .attachments
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(sandbox_id);
        if let Some(att) = removed {
            att.stop();
            tracing::info!(sandbox_id, "embedded DNS detached");
        }
    }

    /// Whether listeners are running for `sandbox_id`.
    pub fn is_attached(&self, sandbox_id: &str) -> bool {
        self.attachments
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(sandbox_id)
            .is_some_and(|a| a.tasks.iter().all(|t| !t.is_finished()))
    }

    /// Answer one raw DNS message for a sandbox (used by the listeners, tests and fuzzing);
    /// `None` = drop (malformed / not a query).
    ///
    /// `tcp` selects the size limit: 65535 bytes, else 512 or the client's EDNS size, beyond
    /// which the answer is trimmed and TC=1 is set.
    pub async fn handle(&self, sandbox_id: &str, query: &[u8], tcp: bool) -> Option<Vec<u8>> {
        match self.prepare(sandbox_id, query, tcp) {
            Step::Done(out) => out,
            Step::Forward(job) => self.finish(job).await,
        }
    }

    fn log_malformed(&self, sandbox_id: &str, len: usize, reason: &dyn std::fmt::Display) {
        if let Some(suppressed) = self.malformed_log.check() {
            tracing::debug!(sandbox_id, len, %reason, suppressed, "dropping malformed DNS packet");
        }
    }

    /// Everything that needs no I/O: parsing, local answers, cache hits, admission.
    fn prepare(&self, sandbox_id: &str, raw: &[u8], tcp: bool) -> Step {
        let req = match Message::from_vec(raw) {
            Ok(req) => req,
            Err(err) => {
                self.log_malformed(sandbox_id, raw.len(), &err);
                return Step::Done(None);
            }
        };
        if req.metadata.message_type != MessageType::Query {
            self.log_malformed(sandbox_id, raw.len(), &"not a query (QR=1)");
            return Step::Done(None);
        }
        let limit = client_limit(&req, tcp);
        let reply = |rcode| Step::Done(encode(response_to(&req, rcode), limit));
        if req.metadata.op_code != OpCode::Query {
            return reply(ResponseCode::NotImp);
        }
        if req.queries.len() != 1 {
            return reply(ResponseCode::FormErr);
        }

        let snap = self.snapshot.load();
        let Some(view) = snap.sandboxes.get(sandbox_id) else {
            return reply(ResponseCode::Refused);
        };
        if let Some(msg) = local_answer(view, &req, self.cfg.ttl) {
            return Step::Done(encode(msg, limit));
        }
        if !view.can_forward() {
            // Internal network or no upstream: the name does not exist as far as this
            // sandbox can know.
            return reply(ResponseCode::NXDomain);
        }

        let upstreams = Arc::clone(view.upstreams_arc());
        let key = CacheKey::of(&req, &upstreams);
        if let Some(hit) = key.as_ref().and_then(|k| self.cache.get(k)) {
            let mut bytes = hit.to_vec();
            patch_response(&mut bytes, raw);
            return Step::Done(fit(bytes, limit));
        }
        let Some(permits) = self.admit(sandbox_id) else {
            tracing::debug!(sandbox_id, "too many in-flight forwards, SERVFAIL");
            return reply(ResponseCode::ServFail);
        };
        Step::Forward(Box::new(ForwardJob {
            sandbox_id: sandbox_id.to_owned(),
            raw: raw.to_vec(),
            req,
            key,
            upstreams,
            limit,
            _permits: permits,
        }))
    }

    /// Take one global and one per-sandbox in-flight slot, or `None` when either is full.
    fn admit(&self, sandbox_id: &str) -> Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)> {
        let per_sandbox = {
            let mut map = self
                .sandbox_inflight
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            Arc::clone(
                map.entry(sandbox_id.to_owned())
                    .or_insert_with(|| Arc::new(Semaphore::new(self.cfg.per_sandbox_inflight))),
            )
        };
        let local = per_sandbox.try_acquire_owned().ok()?;
        let global = Arc::clone(&self.global_inflight).try_acquire_owned().ok()?;
        Some((global, local))
    }

    /// The upstream round trip of an admitted query.
    async fn finish(&self, job: Box<ForwardJob>) -> Option<Vec<u8>> {
        let servfail = || encode(response_to(&job.req, ResponseCode::ServFail), job.limit);
        let Some(up) = self
            .forwarder
            .resolve(&job.sandbox_id, &job.raw, &job.upstreams)
            .await
        else {
            return servfail();
        };
        if let Some(key) = &job.key {
            self.cache.insert(key.clone(), &up.bytes, &up.parsed);
        }
        let mut bytes = up.bytes;
        patch_response(&mut bytes, &job.raw);
        fit(bytes, job.limit).or_else(servfail)
    }

    async fn serve_udp(self: Arc<Self>, sandbox_id: String, sock: UdpSocket) {
        let sock = Arc::new(sock);
        let mut inflight = JoinSet::new();
        let mut buf = vec![0u8; 65535];
        let errors = LogLimiter::new(1000);
        loop {
            tokio::select! {
                received = sock.recv_from(&mut buf) => {
                    let (n, peer) = match received {
                        Ok(r) => r,
                        Err(err) => {
                            if let Some(suppressed) = errors.check() {
                                tracing::warn!(error = %err, suppressed, "DNS UDP receive failed");
                            }
                            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                            continue;
                        }
                    };
                    match self.prepare(&sandbox_id, &buf[..n], false) {
                        Step::Done(Some(resp)) => send_udp(&sock, &resp, peer, &errors).await,
                        Step::Done(None) => {}
                        Step::Forward(job) => {
                            let me = Arc::clone(&self);
                            let sock = Arc::clone(&sock);
                            inflight.spawn(async move {
                                if let Some(resp) = me.finish(job).await {
                                    let errors = LogLimiter::new(1000);
                                    send_udp(&sock, &resp, peer, &errors).await;
                                }
                            }.in_current_span());
                        }
                    }
                }
                Some(_) = inflight.join_next(), if !inflight.is_empty() => {}
            }
        }
    }

    async fn serve_tcp(self: Arc<Self>, sandbox_id: String, listener: TcpListener) {
        let conns_limit = Arc::new(Semaphore::new(self.cfg.max_tcp_connections));
        let mut conns = JoinSet::new();
        let errors = LogLimiter::new(1000);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let stream = match accepted {
                        Ok((stream, _)) => stream,
                        Err(err) => {
                            if let Some(suppressed) = errors.check() {
                                tracing::warn!(error = %err, suppressed, "DNS TCP accept failed");
                            }
                            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                            continue;
                        }
                    };
                    let Ok(permit) = Arc::clone(&conns_limit).try_acquire_owned() else {
                        tracing::debug!("too many DNS TCP connections, closing a new one");
                        continue;
                    };
                    let me = Arc::clone(&self);
                    let id = sandbox_id.clone();
                    conns.spawn(async move {
                        me.serve_tcp_conn(&id, stream).await;
                        drop(permit);
                    }.in_current_span());
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
    }

    /// Length-prefixed queries, answered in order, until EOF, an error or `tcp_idle` of silence.
    async fn serve_tcp_conn(&self, sandbox_id: &str, mut stream: TcpStream) {
        let idle = self.cfg.tcp_idle;
        loop {
            let mut len = [0u8; 2];
            match timeout(idle, stream.read_exact(&mut len)).await {
                Ok(Ok(_)) => {}
                _ => return,
            }
            let n = usize::from(u16::from_be_bytes(len));
            let mut msg = vec![0u8; n];
            match timeout(idle, stream.read_exact(&mut msg)).await {
                Ok(Ok(_)) => {}
                _ => return,
            }
            let Some(resp) = self.handle(sandbox_id, &msg, true).await else {
                continue;
            };
            let Ok(rlen) = u16::try_from(resp.len()) else {
                continue;
            };
            let mut framed = Vec::with_capacity(resp.len() + 2);
            framed.extend_from_slice(&rlen.to_be_bytes());
            framed.extend_from_slice(&resp);
            match timeout(idle, stream.write_all(&framed)).await {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
    }
}

async fn send_udp(sock: &UdpSocket, resp: &[u8], peer: SocketAddr, errors: &LogLimiter) {
    if let Err(err) = sock.send_to(resp, peer).await
        && let Some(suppressed) = errors.check()
    {
        tracing::debug!(error = %err, %peer, suppressed, "DNS UDP send failed");
    }
}

/// Pass a (patched) upstream response through if it fits the client's limit, else re-encode
/// it truncated.
fn fit(bytes: Vec<u8>, limit: usize) -> Option<Vec<u8>> {
    if bytes.len() <= limit {
        return Some(bytes);
    }
    let msg = Message::from_vec(&bytes).ok()?;
    answer::encode(msg, limit)
}
