//! The manager's own etcd member (`swarm init --cluster-store etcd`): Debian's
//! `etcd` binary, run and supervised by the daemon.
//!
//! - Files under `<data-root>/swarm/etcd/` (mode 0700): `data/` (etcd's data dir),
//!   `ca.pem` (the swarm's etcd CA), `member.pem` and `member-key.pem` (this member's
//!   certificate, used as etcd's server, peer and client certificate), `etcd.log`.
//! - It listens on the node's advertise address only, clients on the client port
//!   (default 2379) and peers on the peer port (default 2380), both with mutual TLS
//!   against the etcd CA alone (`--client-cert-auth`, `--peer-client-cert-auth`): a
//!   worker's certificate, signed by the root, is refused.
//! - A supervisor thread restarts etcd when it dies (1 s, then up to 5 s apart);
//!   etcd gets SIGTERM when the daemon stops or dies (`PR_SET_PDEATHSIG`, set from
//!   that thread, which lives as long as the supervision: the signal follows the
//!   thread that forked, <https://man7.org/linux/man-pages/man2/prctl.2.html>). A
//!   member that etcd reports as removed from its cluster is not restarted.

use std::io::{Read, Seek, SeekFrom, Write};
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use netloom_store::{EtcdConfig, EtcdTls};

/// Default client port of a manager's etcd member.
pub const DEFAULT_CLIENT_PORT: u16 = 2379;
/// Default peer port of a manager's etcd member.
pub const DEFAULT_PEER_PORT: u16 = 2380;
/// The binary run when nothing else is configured (Debian's `etcd-server`).
pub const DEFAULT_BINARY: &str = "etcd";
/// Revisions of history each member keeps (auto-compaction): what a watch, or a
/// node's relay, may resume from.
pub const HISTORY: u64 = 10_000;

/// What lines in etcd's log mean that this member was removed from its cluster.
const REMOVED: &[&str] = &[
    "the member has been permanently removed from the cluster",
    "has already been removed",
];

/// How to run this node's member.
#[derive(Clone)]
pub struct MemberSpec {
    /// `--name`: the node ID.
    pub name: String,
    /// `<data-root>/swarm/etcd`.
    pub dir: PathBuf,
    /// The advertise address it listens on.
    pub ip: IpAddr,
    /// Client port.
    pub client_port: u16,
    /// Peer port.
    pub peer_port: u16,
    /// `--initial-cluster` (used by etcd only while its data dir is empty).
    pub initial_cluster: String,
    /// `--initial-cluster-state`: `new` or `existing`.
    pub initial_state: String,
    /// `--initial-cluster-token`.
    pub cluster_token: String,
    /// The etcd CA (PEM).
    pub ca_pem: String,
    /// The member's certificate (PEM).
    pub cert_pem: String,
    /// The member's key (PEM).
    pub key_pem: String,
    /// The etcd binary.
    pub binary: PathBuf,
}

impl std::fmt::Debug for MemberSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberSpec")
            .field("name", &self.name)
            .field("ip", &self.ip)
            .field("client_port", &self.client_port)
            .field("peer_port", &self.peer_port)
            .finish_non_exhaustive()
    }
}

/// `https://IP:PORT` (IPv6 in brackets).
pub fn url(ip: IpAddr, port: u16) -> String {
    format!("https://{}", std::net::SocketAddr::new(ip, port))
}

impl MemberSpec {
    /// Its client URL.
    pub fn client_url(&self) -> String {
        url(self.ip, self.client_port)
    }

    /// Its peer URL.
    pub fn peer_url(&self) -> String {
        url(self.ip, self.peer_port)
    }

    /// The store configuration of a client of this member (the daemon itself),
    /// authenticated with the member's certificate.
    pub fn client_config(&self) -> EtcdConfig {
        client_config(
            [self.client_url()],
            &self.ca_pem,
            &self.cert_pem,
            &self.key_pem,
        )
    }

    fn args(&self) -> Vec<String> {
        let d = &self.dir;
        let p = |f: &str| d.join(f).display().to_string();
        let client = self.client_url();
        let peer = self.peer_url();
        [
            ("--name", self.name.clone()),
            ("--data-dir", p("data")),
            ("--listen-client-urls", client.clone()),
            ("--advertise-client-urls", client),
            ("--listen-peer-urls", peer.clone()),
            ("--initial-advertise-peer-urls", peer),
            ("--initial-cluster", self.initial_cluster.clone()),
            ("--initial-cluster-state", self.initial_state.clone()),
            ("--initial-cluster-token", self.cluster_token.clone()),
            ("--trusted-ca-file", p("ca.pem")),
            ("--cert-file", p("member.pem")),
            ("--key-file", p("member-key.pem")),
            ("--peer-trusted-ca-file", p("ca.pem")),
            ("--peer-cert-file", p("member.pem")),
            ("--peer-key-file", p("member-key.pem")),
            ("--auto-compaction-mode", "revision".into()),
            ("--auto-compaction-retention", HISTORY.to_string()),
            ("--logger", "zap".into()),
            ("--log-outputs", "stderr".into()),
        ]
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .chain(
            [
                "--client-cert-auth",
                "--peer-client-cert-auth",
                "--strict-reconfig-check",
            ]
            .map(String::from),
        )
        .collect()
    }

    /// Writes the TLS files (0600 in a 0700 directory).
    fn write_files(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))?;
        for (name, body) in [
            ("ca.pem", &self.ca_pem),
            ("member.pem", &self.cert_pem),
            ("member-key.pem", &self.key_pem),
        ] {
            let tmp = self.dir.join(format!("{name}.tmp"));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(body.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, self.dir.join(name))?;
        }
        Ok(())
    }
}

/// A store configuration for `endpoints` (`https://…`) with mutual TLS.
pub fn client_config<S: Into<String>>(
    endpoints: impl IntoIterator<Item = S>,
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> EtcdConfig {
    EtcdConfig::new(endpoints).with_tls(EtcdTls {
        ca_pem: ca_pem.to_string(),
        cert_pem: cert_pem.to_string(),
        key_pem: key_pem.to_string(),
    })
}

/// Removes a member's files (after it left its cluster, or before a new swarm).
pub fn wipe(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    removed: AtomicBool,
    child: Mutex<Option<Child>>,
}

/// A running, supervised etcd member; dropping it stops etcd.
pub struct Member {
    spec: MemberSpec,
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member").field("spec", &self.spec).finish()
    }
}

impl Member {
    /// Writes the member's files and starts etcd under supervision.
    pub fn start(spec: MemberSpec) -> std::io::Result<Member> {
        spec.write_files()?;
        let log = spec.dir.join("etcd.log");
        std::fs::write(&log, b"")?;
        let shared = Arc::new(Shared::default());
        let (s, sp) = (shared.clone(), spec.clone());
        let thread = std::thread::Builder::new()
            .name("etcd-member".into())
            .spawn(move || supervise(&sp, &s))?;
        tracing::info!(member = %spec.name, client = %spec.client_url(), peer = %spec.peer_url(), "etcd member started");
        Ok(Member {
            spec,
            shared,
            thread: Some(thread),
        })
    }

    /// Whether etcd reported this member removed from its cluster (it is not
    /// restarted then).
    pub fn is_removed(&self) -> bool {
        self.shared.removed.load(Ordering::SeqCst)
    }

    /// Stops etcd (SIGTERM, SIGKILL after 5 s) and the supervision.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        signal(&self.shared, nix::sys::signal::Signal::SIGTERM);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal(shared: &Shared, sig: nix::sys::signal::Signal) {
    // The child is reaped only under this lock, so its pid is still ours here.
    if let Ok(g) = shared.child.lock()
        && let Some(c) = g.as_ref()
        && let Ok(pid) = i32::try_from(c.id())
    {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
    }
}

fn spawn(spec: &MemberSpec) -> std::io::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(spec.dir.join("etcd.log"))?;
    let mut cmd = Command::new(&spec.binary);
    cmd.args(spec.args())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: prctl(2) is async-signal-safe and touches no memory of the parent; it
    // runs in the child between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Whether etcd's log since `from` says the member was removed.
fn says_removed(log: &Path, from: u64) -> bool {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(log) {
        let _ = f.seek(SeekFrom::Start(from));
        let _ = f.take(1 << 20).read_to_string(&mut text);
    }
    REMOVED.iter().any(|m| text.contains(m))
}

/// The supervisor thread: runs etcd until told to stop.
fn supervise(spec: &MemberSpec, shared: &Shared) {
    let log = spec.dir.join("etcd.log");
    let mut backoff = Duration::from_secs(1);
    while !shared.stop.load(Ordering::SeqCst) {
        let from = std::fs::metadata(&log).map_or(0, |m| m.len());
        let started = Instant::now();
        match spawn(spec) {
            Ok(c) => {
                if let Ok(mut g) = shared.child.lock() {
                    *g = Some(c);
                }
            }
            Err(e) => {
                tracing::error!(binary = %spec.binary.display(), error = %e, "cannot start the etcd member (install etcd-server)");
            }
        }
        // Poll, so that the child is reaped only under the lock (see `signal`).
        let mut stopping: Option<Instant> = None;
        let status = loop {
            let done = match shared.child.lock() {
                Ok(mut g) => match g.as_mut().map(Child::try_wait) {
                    Some(Ok(Some(st))) => {
                        *g = None;
                        Some(Some(st))
                    }
                    Some(Ok(None)) => None,
                    Some(Err(_)) | None => {
                        *g = None;
                        Some(None)
                    }
                },
                Err(_) => Some(None),
            };
            if let Some(st) = done {
                break st;
            }
            if shared.stop.load(Ordering::SeqCst)
                && stopping.get_or_insert_with(Instant::now).elapsed() > Duration::from_secs(5)
            {
                signal(shared, nix::sys::signal::Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        if says_removed(&log, from) {
            tracing::warn!(member = %spec.name, "etcd reports this member removed from the cluster; not restarting it");
            shared.removed.store(true, Ordering::SeqCst);
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            backoff = Duration::from_secs(1);
        }
        tracing::warn!(member = %spec.name, status = ?status, "etcd member exited; restarting it in {}s", backoff.as_secs());
        let until = Instant::now() + backoff;
        while Instant::now() < until && !shared.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_args() {
        assert_eq!(
            url("198.18.1.11".parse().unwrap(), 2379),
            "https://198.18.1.11:2379"
        );
        assert_eq!(
            url("fd00::1".parse().unwrap(), 2380),
            "https://[fd00::1]:2380"
        );
        let s = MemberSpec {
            name: "n1".into(),
            dir: "/d".into(),
            ip: "198.18.1.11".parse().unwrap(),
            client_port: 1,
            peer_port: 2,
            initial_cluster: "n1=https://198.18.1.11:2".into(),
            initial_state: "new".into(),
            cluster_token: "c".into(),
            ca_pem: String::new(),
            cert_pem: String::new(),
            key_pem: "secret".into(),
            binary: "etcd".into(),
        };
        let a = s.args();
        assert!(a.contains(&"--listen-client-urls=https://198.18.1.11:1".to_string()));
        assert!(a.contains(&"--peer-key-file=/d/member-key.pem".to_string()));
        assert!(a.contains(&"--client-cert-auth".to_string()));
        assert!(!format!("{s:?}").contains("secret"));
    }
}
