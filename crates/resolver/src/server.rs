//! The [`Resolver`]: query dispatch, per-sandbox listeners and their lifecycle.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::timeout;
use tracing::Instrument;

use crate::answer::{self, client_limit, encode, local_answer, response_to};
use crate::cache::{Cache, CacheKey};
use crate::forward::{Forwarder, patch_response};
use crate::netns::bind_in_netns;
use crate::publish::Registry;
use crate::ratelimit::LogLimiter;
use crate::threads::DnsThreads;
use crate::udp::{self, Batch};
use crate::view::{SandboxSlot, SandboxView};
use crate::wire::{self, FastQuery};
use crate::{ResolverConfig, ResolverError};

/// Docker's embedded DNS address inside every sandbox.
const LISTEN_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 0, 11)), 53);

/// The embedded DNS server shared by all sandboxes of the daemon.
///
/// Names are published per network ([`Resolver::set_records`]) and each sandbox sees the
/// ordered list of its networks' views ([`Resolver::set_sandbox`]). Queries read the views
/// through `ArcSwap`s without locking; changes take the registry lock, which queries never do.
pub struct Resolver {
    pub(crate) cfg: ResolverConfig,
    registry: Mutex<Registry>,
    forwarder: Forwarder,
    cache: Cache,
    global_inflight: Arc<Semaphore>,
    pub(crate) sandbox_inflight: Mutex<HashMap<String, Arc<Semaphore>>>,
    malformed_log: LogLimiter,
    /// Name and reverse entries (re)built by updates since start (for tests and metrics).
    pub(crate) entries_built: AtomicU64,
    threads: OnceLock<Option<DnsThreads>>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let reg = self.registry();
        f.debug_struct("Resolver")
            .field("cfg", &self.cfg)
            .field("networks", &reg.networks.len())
            .field("sandboxes", &reg.sandboxes.len())
            .finish_non_exhaustive()
    }
}

/// Listener tasks of one attached sandbox.
pub(crate) struct Attachment {
    pub(crate) netns: PathBuf,
    pub(crate) tasks: Vec<JoinHandle<()>>,
}

impl Attachment {
    pub(crate) fn stop(&self) {
        // Aborting the listener tasks drops their sockets and their JoinSets, which aborts
        // the per-query and per-connection tasks too.
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The outcome of the synchronous part of a query.
pub(crate) enum Step {
    /// Answered (or dropped) without I/O.
    Done(Option<Vec<u8>>),
    /// Needs an upstream round trip.
    Forward(Box<ForwardJob>),
}

/// An admitted forward: holds its in-flight permits until it completes.
pub(crate) struct ForwardJob {
    sandbox_id: String,
    raw: Vec<u8>,
    req: Message,
    key: Option<CacheKey>,
    upstreams: Arc<[SocketAddr]>,
    limit: usize,
    _permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
}

impl Resolver {
    /// A resolver with nothing published and nothing attached.
    pub fn new(cfg: ResolverConfig) -> Arc<Resolver> {
        Arc::new(Resolver {
            forwarder: Forwarder::new(cfg.upstream_timeout, cfg.upstream_backoff),
            cache: Cache::new(cfg.cache_capacity),
            global_inflight: Arc::new(Semaphore::new(cfg.max_inflight)),
            sandbox_inflight: Mutex::new(HashMap::new()),
            registry: Mutex::new(Registry::default()),
            malformed_log: LogLimiter::new(1000),
            entries_built: AtomicU64::new(0),
            threads: OnceLock::new(),
            cfg,
        })
    }

    /// The DNS threads, started at the first attach; `None` if they cannot be started
    /// (the listeners then run on the caller's runtime).
    fn threads(&self) -> Option<&DnsThreads> {
        self.threads
            .get_or_init(|| {
                DnsThreads::start()
                    .inspect_err(|e| {
                        tracing::warn!(error = %e, "cannot start the DNS threads, serving from the daemon's runtime");
                    })
                    .ok()
            })
            .as_ref()
    }

    pub(crate) fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Resolver {
    /// Serve DNS for a sandbox at 127.0.0.11:53 UDP and TCP inside the network namespace
    /// bound at `netns` (lo is up there). Idempotent per sandbox id (attaching again with
    /// another path moves the listeners). The listeners run on the resolver's own DNS
    /// threads (single-threaded runtimes, one per CPU up to 4; the caller's runtime if
    /// they cannot be started).
    ///
    /// Blocks the calling thread for the short time a helper thread needs to enter the
    /// namespace and bind; it never changes the namespace of the calling thread.
    pub fn attach(self: &Arc<Self>, sandbox_id: &str, netns: &Path) -> Result<(), ResolverError> {
        let rt = match self.threads() {
            Some(threads) => threads.pick().clone(),
            None => {
                tokio::runtime::Handle::try_current().map_err(|_| ResolverError::NoRuntime {
                    sandbox_id: sandbox_id.to_owned(),
                })?
            }
        };
        let mut reg = self.registry();
        if let Some(existing) = reg.attachments.get(sandbox_id) {
            if existing.netns == netns && existing.tasks.iter().all(|t| !t.is_finished()) {
                return Ok(());
            }
            existing.stop();
            reg.attachments.remove(sandbox_id);
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
        let slot = reg.sandbox(sandbox_id);

        let span = tracing::info_span!("dns", sandbox_id);
        let udp_task = rt.spawn(
            Arc::clone(self)
                .serve_udp(sandbox_id.to_owned(), Arc::clone(&slot), udp)
                .instrument(span.clone()),
        );
        let tcp_task = rt.spawn(
            Arc::clone(self)
                .serve_tcp(sandbox_id.to_owned(), slot, tcp)
                .instrument(span),
        );
        tracing::info!(sandbox_id, netns = %netns.display(), "embedded DNS attached");
        reg.attachments.insert(
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
        let mut reg = self.registry();
        let removed = reg.attachments.remove(sandbox_id);
        reg.maybe_drop_sandbox(sandbox_id);
        drop(reg);
        if let Some(att) = removed {
            att.stop();
            tracing::info!(sandbox_id, "embedded DNS detached");
        }
    }

    /// Whether listeners are running for `sandbox_id`.
    pub fn is_attached(&self, sandbox_id: &str) -> bool {
        self.registry()
            .attachments
            .get(sandbox_id)
            .is_some_and(|a| a.tasks.iter().all(|t| !t.is_finished()))
    }

    /// Answer one raw DNS message for a sandbox (used by the listeners, tests and fuzzing);
    /// `None` = drop (malformed / not a query).
    ///
    /// `tcp` selects the size limit: 65535 bytes, else 512 or the client's EDNS size, beyond
    /// which the answer is trimmed and TC=1 is set.
    pub async fn handle(&self, sandbox_id: &str, query: &[u8], tcp: bool) -> Option<Vec<u8>> {
        let view = self.sandbox_view(sandbox_id);
        self.handle_view(view.as_deref(), sandbox_id, query, tcp)
            .await
    }

    /// Like [`Resolver::handle`], through the general (hickory) path only: the reference
    /// the fast path is checked against.
    #[doc(hidden)]
    pub async fn handle_general(
        &self,
        sandbox_id: &str,
        query: &[u8],
        tcp: bool,
    ) -> Option<Vec<u8>> {
        let view = self.sandbox_view(sandbox_id);
        match self.prepare(view.as_deref(), sandbox_id, query, tcp) {
            Step::Done(out) => out,
            Step::Forward(job) => self.finish(job).await,
        }
    }

    async fn handle_view(
        &self,
        view: Option<&SandboxView>,
        sandbox_id: &str,
        query: &[u8],
        tcp: bool,
    ) -> Option<Vec<u8>> {
        if let (Some(view), Some(q)) = (view, FastQuery::parse(query)) {
            let mut out = [0u8; udp::BUF];
            if let Some(n) = wire::answer(view, &q, tcp, &mut out) {
                return Some(out[..n].to_vec());
            }
        }
        match self.prepare(view, sandbox_id, query, tcp) {
            Step::Done(out) => out,
            Step::Forward(job) => self.finish(job).await,
        }
    }

    fn log_malformed(&self, sandbox_id: &str, len: usize, reason: &dyn std::fmt::Display) {
        if let Some(suppressed) = self.malformed_log.check() {
            tracing::debug!(sandbox_id, len, %reason, suppressed, "dropping malformed DNS packet");
        }
    }

    /// Everything that needs no I/O, through hickory: parsing, local answers, cache hits,
    /// admission.
    pub(crate) fn prepare(
        &self,
        view: Option<&SandboxView>,
        sandbox_id: &str,
        raw: &[u8],
        tcp: bool,
    ) -> Step {
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

        let Some(view) = view else {
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

    /// One batch: receive up to [`udp::BATCH`] queries, answer them (local names straight
    /// into the send buffers), send the answers in one call. Forwards and answers that do
    /// not fit a buffer are handed back to the caller.
    fn udp_round(
        &self,
        sandbox_id: &str,
        slot: &SandboxSlot,
        fd: std::os::fd::RawFd,
        b: &mut Batch,
        later: &mut Later,
    ) -> std::io::Result<usize> {
        let Later {
            jobs,
            spill,
            errors,
        } = later;
        let n = b.recv(fd)?;
        let guard = slot.load();
        let view = guard.as_deref();
        for i in 0..n {
            if let Some(view) = view
                && let Some((raw, out)) = b.datagram_and_answer(i)
                && let Some(q) = FastQuery::parse(raw)
                && let Some(len) = wire::answer(view, &q, false, out)
            {
                b.commit_answer(i, len);
                continue;
            }
            let Some(raw) = b.datagram(i) else {
                self.log_malformed(sandbox_id, udp::BUF, &"datagram larger than any query");
                continue;
            };
            match self.prepare(view, sandbox_id, raw, false) {
                Step::Done(None) => {}
                Step::Done(Some(resp)) => {
                    if !b.queue_answer(i, &resp)
                        && let Some(peer) = b.peer(i)
                    {
                        spill.push((resp, peer));
                    }
                }
                Step::Forward(job) => {
                    if let Some(peer) = b.peer(i) {
                        jobs.push((job, peer));
                    }
                }
            }
        }
        b.send(
            fd,
            |err| {
                if let Some(suppressed) = errors.check() {
                    tracing::debug!(error = %err, suppressed, "DNS UDP send failed");
                }
            },
            |resp, peer| spill.push((resp, peer)),
        );
        Ok(n)
    }

    async fn serve_udp(
        self: Arc<Self>,
        sandbox_id: String,
        slot: Arc<SandboxSlot>,
        sock: UdpSocket,
    ) {
        let sock = Arc::new(sock);
        let fd = sock.as_raw_fd();
        let mut inflight = JoinSet::new();
        let errors = LogLimiter::new(1000);
        let mut later = Later {
            jobs: Vec::new(),
            spill: Vec::new(),
            errors: LogLimiter::new(1000),
        };
        loop {
            tokio::select! {
                ready = sock.readable() => {
                    if let Err(err) = ready {
                        if let Some(suppressed) = errors.check() {
                            tracing::warn!(error = %err, suppressed, "DNS UDP receive failed");
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        continue;
                    }
                    // Drain the socket in batches, a bounded number per wake-up so other
                    // sandboxes' tasks get their turn.
                    let mut rounds = 0;
                    while rounds < MAX_ROUNDS {
                        let done = sock.try_io(Interest::READABLE, || {
                            udp::with_batch(|b| {
                                self.udp_round(&sandbox_id, &slot, fd, b, &mut later)
                            })
                        });
                        match done {
                            Ok(_) => rounds += 1,
                            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
                            Err(err) => {
                                if let Some(suppressed) = errors.check() {
                                    tracing::warn!(error = %err, suppressed, "DNS UDP receive failed");
                                }
                                break;
                            }
                        }
                    }
                    for (resp, peer) in later.spill.drain(..) {
                        send_udp(&sock, &resp, peer, &later.errors).await;
                    }
                    for (job, peer) in later.jobs.drain(..) {
                        let me = Arc::clone(&self);
                        let sock = Arc::clone(&sock);
                        inflight.spawn(async move {
                            if let Some(resp) = me.finish(job).await {
                                let errors = LogLimiter::new(1000);
                                send_udp(&sock, &resp, peer, &errors).await;
                            }
                        }.in_current_span());
                    }
                    if rounds == MAX_ROUNDS {
                        tokio::task::yield_now().await;
                    }
                }
                Some(_) = inflight.join_next(), if !inflight.is_empty() => {}
            }
        }
    }

    async fn serve_tcp(
        self: Arc<Self>,
        sandbox_id: String,
        slot: Arc<SandboxSlot>,
        listener: TcpListener,
    ) {
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
                    let slot = Arc::clone(&slot);
                    conns.spawn(async move {
                        me.serve_tcp_conn(&id, &slot, stream).await;
                        drop(permit);
                    }.in_current_span());
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
    }

    /// Length-prefixed queries, answered in order, until EOF, an error or `tcp_idle` of silence.
    async fn serve_tcp_conn(&self, sandbox_id: &str, slot: &SandboxSlot, mut stream: TcpStream) {
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
            let view = slot.load_full();
            let Some(resp) = self
                .handle_view(view.as_deref(), sandbox_id, &msg, true)
                .await
            else {
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

/// What a UDP round leaves to its task: forwards to spawn, answers the socket could not
/// take at once, and the send-error log limiter.
struct Later {
    jobs: Vec<(Box<ForwardJob>, SocketAddr)>,
    spill: Vec<(Vec<u8>, SocketAddr)>,
    errors: LogLimiter,
}

/// Batches handled per wake-up of one sandbox's UDP task before it yields.
const MAX_ROUNDS: usize = 16;

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
