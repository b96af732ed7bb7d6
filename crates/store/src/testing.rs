//! Test support (feature `test-support`): a throwaway etcd server.
//!
//! [`Etcd::start`] runs the `etcd` binary on free loopback ports with its own data
//! directory and kills it when dropped; [`Etcd::kill`] and [`Etcd::restart`] make
//! real outages. [`etcd_or_skip`] gives `None` (after printing `SKIP: etcd not
//! installed`) when the binary is missing, and panics instead when
//! `NETLOOM_REQUIRE_PRIV=1`.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long etcd may take to become ready.
const READY: Duration = Duration::from_secs(20);

/// Where and how an etcd runs.
#[derive(Debug, Clone)]
pub struct EtcdSpec {
    /// Data directory (created if missing) and log file location.
    pub dir: PathBuf,
    /// Client port on 127.0.0.1.
    pub client_port: u16,
    /// Peer port on 127.0.0.1.
    pub peer_port: u16,
    /// Run inside this network namespace (`/run/netns/NAME`), through `nsenter`.
    pub netns: Option<PathBuf>,
    /// The address it listens on (`None`: 127.0.0.1).
    pub addr: Option<std::net::IpAddr>,
}

/// A running (or killed) etcd server of a test; killed on drop.
#[derive(Debug)]
pub struct Etcd {
    spec: EtcdSpec,
    child: Option<Child>,
}

/// True if an `etcd` binary is on `PATH`.
pub fn etcd_installed() -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("etcd").is_file()))
        .unwrap_or(false)
}

/// Starts an etcd under `dir`, or returns `None` after printing
/// `SKIP: etcd not installed`; with `NETLOOM_REQUIRE_PRIV=1` a missing etcd panics.
pub fn etcd_or_skip(dir: &Path) -> Option<Etcd> {
    if !etcd_installed() {
        if std::env::var("NETLOOM_REQUIRE_PRIV").as_deref() == Ok("1") {
            panic!("etcd not installed (NETLOOM_REQUIRE_PRIV=1): install etcd-server");
        }
        println!("SKIP: etcd not installed");
        return None;
    }
    Some(Etcd::start(dir))
}

fn free_port() -> u16 {
    match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(a) => a.port(),
        Err(e) => panic!("no free loopback port: {e}"),
    }
}

impl Etcd {
    /// Starts etcd on free loopback ports with its data under `dir/etcd`.
    pub fn start(dir: &Path) -> Etcd {
        // A port found free can be taken before etcd binds it: try a few times.
        let mut last = String::new();
        for _ in 0..5 {
            let spec = EtcdSpec {
                dir: dir.to_path_buf(),
                client_port: free_port(),
                peer_port: free_port(),
                netns: None,
                addr: None,
            };
            let mut etcd = Etcd { spec, child: None };
            match etcd.launch() {
                Ok(()) => return etcd,
                Err(e) => last = e,
            }
        }
        panic!("cannot start etcd: {last}");
    }

    /// Starts etcd as `spec` says (fixed ports, maybe in a network namespace).
    pub fn start_with(spec: EtcdSpec) -> Etcd {
        let mut etcd = Etcd { spec, child: None };
        if let Err(e) = etcd.launch() {
            panic!("cannot start etcd: {e}");
        }
        etcd
    }

    /// The client endpoint, `127.0.0.1:PORT` (or the spec's address).
    pub fn endpoint(&self) -> String {
        std::net::SocketAddr::new(self.addr(), self.spec.client_port).to_string()
    }

    fn addr(&self) -> std::net::IpAddr {
        self.spec
            .addr
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
    }

    /// The `--cluster-store` URL, `etcd://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("etcd://{}", self.endpoint())
    }

    /// The log file.
    pub fn log_path(&self) -> PathBuf {
        self.spec.dir.join("etcd.log")
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn launch(&mut self) -> Result<(), String> {
        let s = &self.spec;
        let data = s.dir.join("etcd");
        std::fs::create_dir_all(&data).map_err(|e| format!("create {}: {e}", data.display()))?;
        let log_path = self.log_path();
        let start = std::fs::metadata(&log_path).map_or(0, |m| m.len());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("open {}: {e}", log_path.display()))?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let ip = self.addr();
        let s = &self.spec;
        let client = format!("http://{}", std::net::SocketAddr::new(ip, s.client_port));
        let peer = format!("http://{}", std::net::SocketAddr::new(ip, s.peer_port));
        let mut cmd = match &s.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.display())).arg("etcd");
                c
            }
            None => Command::new("etcd"),
        };
        cmd.args(["--name", "netloom-test", "--data-dir"])
            .arg(&data)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("netloom-test={peer}")])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let child = cmd.spawn().map_err(|e| format!("spawn etcd: {e}"))?;
        self.child = Some(child);
        let until = Instant::now() + READY;
        loop {
            let mut text = String::new();
            if let Ok(mut f) = std::fs::File::open(&log_path) {
                let _ = std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(start));
                let _ = f.read_to_string(&mut text);
            }
            if text.contains("ready to serve client requests") {
                return Ok(());
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(st)) = c.try_wait()
            {
                self.child = None;
                return Err(format!("etcd exited ({st}): {text}"));
            }
            if Instant::now() > until {
                self.kill();
                return Err(format!("etcd not ready within {READY:?}: {text}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills etcd with SIGKILL (a crash: no goodbye to its clients) and waits.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the killed etcd again on the same ports and data.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "etcd is running");
        if let Err(e) = self.launch() {
            panic!("cannot restart etcd: {e}");
        }
    }

    /// Freezes etcd (SIGSTOP): connections stay open but nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused etcd (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let ok = Command::new("kill")
                .arg(sig)
                .arg(c.id().to_string())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "kill {sig} etcd failed");
        }
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        // a stopped process dies of SIGKILL too
        self.kill();
    }
}
