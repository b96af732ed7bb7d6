//! End-to-end test harness for netloom.
//!
//! Every test gets its own `netloomd` running inside its own network
//! namespace (`nle-<pid>-<n>`) with a private data/exec root under `/tmp`.
//! The [`Daemon`] value tears everything down on drop (also on panic):
//! containers, the daemon, stray shim processes, mounts, the namespace and
//! the temp dir.  It also checks that nothing leaked into the host
//! namespace (links, nft tables, network namespaces).
//!
//! With `NETLOOM_TEST_STORE=etcd` every daemon keeps its state in an etcd of its
//! own instead of the embedded file: the harness starts `etcd` inside the
//! daemon's namespace (127.0.0.1:2379 there, so nothing listens on the host) with
//! a data dir under the test's dir, passes `--cluster-store`, and keeps etcd
//! running across daemon restarts ([`Daemon::etcd`] can stop and start it).

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub mod dockercli;
pub mod multihost;
pub mod registry;

/// Result of running a command.
#[derive(Debug, Clone)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.code == 0
    }
    /// stdout + stderr, for substring checks.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit={} stdout={:?} stderr={:?}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` with a timeout, capturing stdout/stderr.  On timeout the
/// process is killed and the exit code is -999.
pub fn run_cmd(cmd: Command, timeout: Duration) -> Out {
    run_cmd_inner(cmd, timeout, false)
}

/// Like [`run_cmd`], but stdin is a pipe that stays open (and empty) until the process
/// exits. For programs that act on their input's end: util-linux `script` types the
/// terminal's EOF character into the session when its stdin ends, which a program on
/// that terminal would see (and echo) as input.
pub fn run_cmd_open_stdin(cmd: Command, timeout: Duration) -> Out {
    run_cmd_inner(cmd, timeout, true)
}

fn run_cmd_inner(mut cmd: Command, timeout: Duration, open_stdin: bool) -> Out {
    cmd.stdin(if open_stdin {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .env("RUST_BACKTRACE", "0");
    let desc = format!("{cmd:?}");
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Out {
                code: -1,
                stdout: String::new(),
                stderr: format!("spawn {desc}: {e}"),
            };
        }
    };
    // Held (never written) until the child is gone.
    let stdin = child.stdin.take();
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t1 = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = so.read_to_end(&mut b);
        b
    });
    let t2 = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = se.read_to_end(&mut b);
        b
    });
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) => {}
            Err(_) => break None,
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            timed_out = true;
            break child.wait().ok();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    drop(stdin);
    // A grandchild may hold the pipes open; do not wait forever for it.
    let join = |t: std::thread::JoinHandle<Vec<u8>>| -> String {
        let until = Instant::now() + Duration::from_secs(5);
        while !t.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        if t.is_finished() {
            String::from_utf8_lossy(&t.join().unwrap_or_default()).into_owned()
        } else {
            String::from("<output pipe still open>")
        }
    };
    let stdout = join(t1);
    let mut stderr = join(t2);
    let code = if timed_out {
        stderr.push_str(&format!("\n<TIMEOUT after {timeout:?}: {desc}>"));
        -999
    } else {
        status.and_then(|s| s.code()).unwrap_or(-1)
    };
    Out {
        code,
        stdout,
        stderr,
    }
}

/// Shorthand: run a program with args (60 s timeout).
pub fn sh(prog: &str, args: &[&str]) -> Out {
    let mut c = Command::new(prog);
    c.args(args);
    run_cmd(c, Duration::from_secs(60))
}

pub fn bin_dir() -> PathBuf {
    match std::env::var_os("NETLOOM_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug"),
    }
}

fn which(prog: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
        .unwrap_or(false)
}

/// Returns `Some(reason)` when the environment cannot run the e2e suite.
fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Some(format!("not root (euid {euid})"));
    }
    if !Path::new("/bin/busybox").is_file() {
        return Some("/bin/busybox missing".into());
    }
    for p in ["nft", "ip", "nsenter", "curl", "python3", "tar"] {
        if !which(p) {
            return Some(format!("{p} not found in PATH"));
        }
    }
    None
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);
static BUSYBOX_TAR: OnceLock<PathBuf> = OnceLock::new();

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Builds (once per test process) a busybox rootfs tarball.
pub fn busybox_tar() -> PathBuf {
    BUSYBOX_TAR
        .get_or_init(|| {
            // Remove tarballs of earlier, dead test processes.
            if let Ok(rd) = fs::read_dir("/tmp") {
                for e in rd.flatten() {
                    let n = e.file_name().to_string_lossy().into_owned();
                    if let Some(pid) = n.strip_prefix("nle-bb-")
                        && let Ok(pid) = pid.parse::<u32>()
                        && !pid_alive(pid)
                    {
                        let _ = fs::remove_dir_all(e.path());
                    }
                }
            }
            let base = PathBuf::from(format!("/tmp/nle-bb-{}", std::process::id()));
            let _ = fs::remove_dir_all(&base);
            let root = base.join("rootfs");
            for d in ["bin", "etc", "tmp", "proc", "sys", "dev"] {
                fs::create_dir_all(root.join(d)).unwrap();
            }
            fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
            let list = sh("/bin/busybox", &["--list"]);
            assert!(list.ok(), "busybox --list: {list}");
            for a in list.stdout.split_whitespace() {
                if a == "busybox" || a.contains('/') {
                    continue;
                }
                let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(a));
            }
            let tar = base.join("busybox.tar");
            let o = sh(
                "tar",
                &[
                    "-C",
                    root.to_str().unwrap(),
                    "-cf",
                    tar.to_str().unwrap(),
                    ".",
                ],
            );
            assert!(o.ok(), "tar: {o}");
            tar
        })
        .clone()
}

/// Interfaces / nft tables in the host namespace that look like netloom's.
fn host_netloom_state() -> BTreeSet<String> {
    let mut s = BTreeSet::new();
    let links = sh("ip", &["-o", "link", "show"]);
    for l in links.stdout.lines() {
        let name = l.split(':').nth(1).unwrap_or("").trim();
        let name = name.split('@').next().unwrap_or("");
        if name.starts_with("netloom") || name.starts_with("br-") || looks_like_veth(name) {
            s.insert(format!("link {name}"));
        }
    }
    let t = sh("nft", &["list", "tables"]);
    for l in t.stdout.lines() {
        if l.contains("netloom") {
            s.insert(l.trim().to_string());
        }
    }
    s
}

fn looks_like_veth(name: &str) -> bool {
    name.len() == 14 && name.starts_with("nl") && name[2..].chars().all(|c| c.is_ascii_hexdigit())
}

/// The store a test daemon uses, from `NETLOOM_TEST_STORE` (`embedded`, the
/// default, or `etcd`).
pub fn test_store_is_etcd() -> bool {
    match std::env::var("NETLOOM_TEST_STORE").as_deref() {
        Ok("etcd") => true,
        Ok("") | Ok("embedded") | Err(_) => false,
        Ok(other) => panic!("NETLOOM_TEST_STORE={other:?}: use embedded or etcd"),
    }
}

/// How [`Daemon::start`] puts netloomd into the test's network namespace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Launch {
    /// `nsenter --net=…`: the test's own mount namespace (the default).
    #[default]
    Nsenter,
    /// `unshare --mount --propagation slave nsenter --net=…`: a fresh mount namespace on
    /// every start, whose mounts do not propagate back (as `ip netns exec` does, but
    /// keeping /sys, so runc finds its cgroups).
    FreshMountNs,
    /// `unshare --mount --propagation unchanged nsenter --net=…`: a fresh mount namespace
    /// on every start, whose shared mounts stay peers of the test's (what netloomd mounts
    /// under a shared mount point appears in the test's mount namespace too).
    PeerMountNs,
    /// `ip netns exec NAME`: a fresh mount namespace and a fresh /sys (without the cgroup
    /// hierarchy: containers cannot be started or exec'd then).
    IpNetnsExec,
}

/// A netloomd instance in its own network namespace.
pub struct Daemon {
    /// Network namespace name (`/run/netns/<name>`).
    pub name: String,
    /// Private temp dir (data root, exec root, logs).
    pub dir: PathBuf,
    bin: PathBuf,
    child: Option<Child>,
    host_before: BTreeSet<String>,
    /// The daemon's own etcd (with `NETLOOM_TEST_STORE=etcd`).
    pub etcd: Option<netloom_store::testing::Etcd>,
    /// Environment variables set for netloomd.
    pub env: Vec<(String, String)>,
    /// Extra netloomd flags, passed on every (re)start.
    pub extra_args: Vec<String>,
    /// `RLIMIT_NOFILE` (soft, hard) netloomd starts with (None: the test's own).
    pub nofile: Option<(u64, u64)>,
    /// How the next [`Daemon::start`] enters the namespace.
    pub launch: Launch,
}

/// Starts a daemon for a test, or returns `None` (after printing `SKIP:`)
/// when the environment cannot run it.  With `NETLOOM_REQUIRE_PRIV=1` a
/// missing prerequisite panics instead.
pub fn daemon() -> Option<Daemon> {
    daemon_with(test_store_is_etcd(), &[], None)
}

/// Like [`daemon`], with `daemon.json` holding `config` (JSON text).
pub fn daemon_with_config(config: Option<&str>) -> Option<Daemon> {
    daemon_with(test_store_is_etcd(), &[], config)
}

/// Like [`daemon`], but always on an etcd of its own (whatever
/// `NETLOOM_TEST_STORE` says), with `env` set for netloomd.
pub fn daemon_on_etcd(env: &[(&str, &str)]) -> Option<Daemon> {
    daemon_with(true, env, None)
}

fn daemon_with(on_etcd: bool, env: &[(&str, &str)], config: Option<&str>) -> Option<Daemon> {
    let mut d = unstarted_daemon_with(on_etcd, env, config)?;
    d.start();
    let tar = busybox_tar();
    d.ok(&["image", "import", tar.to_str().unwrap(), "busybox"]);
    Some(d)
}

/// Like [`daemon`], but imports no image (for tests that run no container).
pub fn bare_daemon() -> Option<Daemon> {
    let mut d = unstarted_daemon()?;
    d.start();
    Some(d)
}

/// A daemon's namespace and directories, with the daemon not started yet (the
/// caller may add links or `extra_args` first, then call [`Daemon::start`]).
pub fn unstarted_daemon() -> Option<Daemon> {
    unstarted_daemon_with(test_store_is_etcd(), &[], None)
}

/// Like [`unstarted_daemon`], but always on an etcd of its own.
pub fn unstarted_daemon_on_etcd() -> Option<Daemon> {
    unstarted_daemon_with(true, &[], None)
}

fn unstarted_daemon_with(
    on_etcd: bool,
    env: &[(&str, &str)],
    config: Option<&str>,
) -> Option<Daemon> {
    let missing = skip_reason().or_else(|| {
        (on_etcd && !which("etcd")).then(|| "etcd not installed (install etcd-server)".into())
    });
    if let Some(r) = missing {
        if std::env::var("NETLOOM_REQUIRE_PRIV").as_deref() == Ok("1") {
            panic!("e2e prerequisites missing (NETLOOM_REQUIRE_PRIV=1): {r}");
        }
        println!("SKIP: {r}");
        return None;
    }
    let bin = bin_dir();
    for b in ["netloomd", "netloom"] {
        assert!(
            bin.join(b).is_file(),
            "{} missing: build first: cargo build --workspace",
            bin.join(b).display()
        );
    }
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let name = format!("nle-{}-{n}", std::process::id());
    let dir = PathBuf::from(format!("/tmp/{name}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    if let Some(c) = config {
        fs::write(dir.join("none.json"), c).unwrap();
    }
    if let Some(c) = config {
        fs::write(dir.join("none.json"), c).unwrap();
    }
    let host_before = host_netloom_state();
    let _ = sh("ip", &["netns", "del", &name]);
    let o = sh("ip", &["netns", "add", &name]);
    assert!(o.ok(), "ip netns add: {o}");
    let o = sh("ip", &["-n", &name, "link", "set", "lo", "up"]);
    assert!(o.ok(), "lo up: {o}");
    let etcd = on_etcd.then(|| {
        netloom_store::testing::Etcd::start_with(netloom_store::testing::EtcdSpec {
            dir: dir.join("etcd"),
            client_port: 2379,
            peer_port: 2380,
            netns: Some(PathBuf::from(format!("/run/netns/{name}"))),
            addr: None,
        })
    });
    Some(Daemon {
        name,
        dir,
        bin,
        child: None,
        host_before,
        etcd,
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        extra_args: Vec::new(),
        nofile: None,
        launch: Launch::default(),
    })
}

impl Daemon {
    pub fn sock(&self) -> PathBuf {
        self.dir.join("exec/netloom.sock")
    }

    pub fn host_arg(&self) -> String {
        format!("unix://{}", self.sock().display())
    }

    /// Starts netloomd (again) and waits until it answers.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "daemon already running");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("daemon.log"))
            .unwrap();
        let d = &self.dir;
        let netns = format!("--net=/run/netns/{}", self.name);
        let mut cmd = match self.launch {
            Launch::Nsenter => {
                let mut c = Command::new("nsenter");
                c.arg(netns);
                c
            }
            Launch::FreshMountNs => {
                let mut c = Command::new("unshare");
                c.args(["--mount", "--propagation", "slave", "nsenter", &netns]);
                c
            }
            Launch::PeerMountNs => {
                let mut c = Command::new("unshare");
                c.args(["--mount", "--propagation", "unchanged", "nsenter", &netns]);
                c
            }
            Launch::IpNetnsExec => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &self.name]);
                c
            }
        };
        cmd.arg(self.bin.join("netloomd"))
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--config-file")
            .arg(d.join("none.json"))
            .arg("--cgroup-parent")
            .arg(self.cgroup_parent())
            .args(&self.extra_args);
        if let Some(etcd) = &self.etcd {
            cmd.arg("--cluster-store").arg(etcd.url());
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some((soft, hard)) = self.nofile {
            use std::os::unix::process::CommandExt;
            let lim = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            // SAFETY: between fork and exec only setrlimit(2), which is async-signal-safe,
            // runs; `lim` is a plain value copied into the closure.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = cmd
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn nsenter netloomd");
        self.child = Some(child);
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            if self.sock().exists() {
                let o = self.cli_t(&["version"], Duration::from_secs(5));
                if o.ok() {
                    let file = self.dir.join("data/netloom.db");
                    assert!(
                        self.etcd.is_none() || !file.exists(),
                        "daemon on etcd wrote {}",
                        file.display()
                    );
                    return;
                }
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(st)) = c.try_wait()
            {
                self.child = None;
                panic!("netloomd exited early ({st}); log:\n{}", self.log());
            }
            if Instant::now() > until {
                panic!("netloomd did not answer within 10s; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The daemon's cgroup parent: containers' cgroups go under it, and cleanup
    /// removes it from every hierarchy.
    pub fn cgroup_parent(&self) -> String {
        format!("/{}", self.name)
    }

    /// Writes the daemon's `daemon.json` (read at the next [`Daemon::start`]).
    pub fn write_config(&self, json: &str) {
        fs::write(self.dir.join("none.json"), json).unwrap();
    }

    /// Sends `sig` to the daemon and waits for it to exit (SIGKILL after 5 s).
    pub fn stop_with(&mut self, sig: i32) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe { libc::kill(c.id() as i32, sig) };
            let until = Instant::now() + Duration::from_secs(5);
            loop {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                if Instant::now() > until {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// The daemon's pid, while it runs (nsenter, unshare and `ip netns exec` exec
    /// netloomd in place).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// netloomd's resident memory (`VmRSS`, kB).
    #[track_caller]
    pub fn rss_kb(&self) -> u64 {
        let pid = self.pid().expect("daemon running");
        let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }

    /// What netloomd's open descriptors are (`readlink /proc/<pid>/fd/*`).
    #[track_caller]
    pub fn fds(&self) -> Vec<String> {
        let pid = self.pid().expect("daemon running");
        let mut v: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
            .expect("list fds")
            .flatten()
            .filter_map(|e| fs::read_link(e.path()).ok())
            .map(|p| p.display().to_string())
            .collect();
        v.sort();
        v
    }

    /// Graceful stop (SIGTERM).
    pub fn stop(&mut self) {
        self.stop_with(libc::SIGTERM);
    }

    /// Hard kill (SIGKILL) — shims and containers keep running.
    pub fn kill9(&mut self) {
        self.stop_with(libc::SIGKILL);
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// Runs the CLI with a custom timeout.
    pub fn cli_t(&self, args: &[&str], timeout: Duration) -> Out {
        let mut c = Command::new(self.bin.join("netloom"));
        c.arg("-H").arg(self.host_arg()).args(args);
        run_cmd(c, timeout)
    }

    /// Runs the CLI (30 s timeout).
    pub fn cli(&self, args: &[&str]) -> Out {
        self.cli_t(args, Duration::from_secs(30))
    }

    /// Runs the CLI and asserts success; returns trimmed stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.cli(args);
        assert!(o.ok(), "netloom {args:?} failed: {o}");
        o.stdout.trim().to_string()
    }

    /// Runs the CLI and asserts failure.
    #[track_caller]
    pub fn fail(&self, args: &[&str]) -> Out {
        let o = self.cli(args);
        assert!(!o.ok(), "netloom {args:?} unexpectedly succeeded: {o}");
        o
    }

    /// `run -d` a busybox container sleeping forever; returns its id.
    #[track_caller]
    pub fn run_sleeper(&self, name: &str, extra: &[&str]) -> String {
        let mut a = vec!["run", "-d", "--name", name];
        a.extend_from_slice(extra);
        a.extend_from_slice(&["busybox", "sleep", "100000"]);
        self.ok(&a)
    }

    /// `exec C sh -c SCRIPT`.
    pub fn exec(&self, c: &str, script: &str) -> Out {
        self.cli(&["exec", c, "sh", "-c", script])
    }

    /// `exec` that must succeed; returns stdout.
    #[track_caller]
    pub fn exec_ok(&self, c: &str, script: &str) -> String {
        let o = self.exec(c, script);
        assert!(o.ok(), "exec {c} {script:?} failed: {o}");
        o.stdout
    }

    /// The container's IPv4 address on `net` as reported by inspect.
    #[track_caller]
    pub fn ip(&self, c: &str, net: &str) -> String {
        self.ok(&[
            "inspect",
            "-f",
            &format!("{{{{.NetworkSettings.Networks.{net}.IPAddress}}}}"),
            c,
        ])
    }

    /// `NetworkSettings.Networks` of a container: network name -> IPv4.
    #[track_caller]
    pub fn nets(&self, c: &str) -> std::collections::BTreeMap<String, String> {
        let j = self.ok(&["inspect", "-f", "{{json .NetworkSettings.Networks}}", c]);
        let v: serde_json::Value =
            serde_json::from_str(&j).unwrap_or_else(|e| panic!("bad json {j:?}: {e}"));
        v.as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        let ip = v.get("IPAddress").and_then(|x| x.as_str()).unwrap_or("");
                        (k.clone(), ip.to_string())
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The container's global IPv6 address on `net` as reported by inspect.
    #[track_caller]
    pub fn ip6(&self, c: &str, net: &str) -> String {
        self.ok(&[
            "inspect",
            "-f",
            &format!("{{{{.NetworkSettings.Networks.{net}.GlobalIPv6Address}}}}"),
            c,
        ])
    }

    /// Runs a probe command inside the daemon's network namespace.
    pub fn netns(&self, args: &[&str]) -> Out {
        let mut a = vec!["netns", "exec", &self.name];
        a.extend_from_slice(args);
        sh("ip", &a)
    }

    /// Raw Engine API call through curl.  Returns (HTTP status, body).
    pub fn api(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let sock = self.sock();
        let url = if path.starts_with("/v") || path.starts_with("/_") {
            format!("http://localhost{path}")
        } else {
            format!("http://localhost/v1.47{path}")
        };
        let mut c = Command::new("curl");
        c.arg("--unix-socket").arg(&sock).args([
            "-s",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-X",
            method,
        ]);
        if let Some(b) = body {
            c.args(["-H", "Content-Type: application/json", "--data-binary", b]);
        }
        c.arg(&url);
        let o = run_cmd(c, Duration::from_secs(30));
        let (b, code) = o.stdout.rsplit_once('\n').unwrap_or(("", &o.stdout));
        (code.trim().parse().unwrap_or(0), b.to_string())
    }

    /// Everything observable about the daemon's store and kernel state.
    pub fn state_dump(&self) -> String {
        let mut s = String::new();
        let mut add = |title: &str, o: Out| {
            s.push_str(&format!(
                "== {title} (exit {})\n{}{}\n",
                o.code, o.stdout, o.stderr
            ));
        };
        add("network ls", self.cli(&["network", "ls", "--no-trunc"]));
        // ps/images without time-dependent columns (CREATED/STATUS).
        add(
            "ps -a",
            self.cli(&[
                "ps",
                "-a",
                "--no-trunc",
                "--format",
                "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.State}}\t{{.Ports}}\t{{.Names}}\t{{.Networks}}",
            ]),
        );
        add(
            "images",
            self.cli(&[
                "images",
                "--no-trunc",
                "--format",
                "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.Size}}",
            ]),
        );
        let nets = self.cli(&["network", "ls", "-q", "--no-trunc"]);
        let ids: Vec<&str> = nets.stdout.split_whitespace().collect();
        if !ids.is_empty() {
            let mut a = vec!["network", "inspect"];
            a.extend(ids.iter().copied());
            add("network inspect", self.cli(&a));
        }
        let cs = self.cli(&["ps", "-aq", "--no-trunc"]);
        let cids: Vec<&str> = cs.stdout.split_whitespace().collect();
        if !cids.is_empty() {
            let mut a = vec![
                "inspect",
                "-f",
                "{{json .NetworkSettings}} {{.Name}} {{.State.Status}}",
            ];
            a.extend(cids.iter().copied());
            add("container inspect", self.cli(&a));
        }
        let links = self.netns(&["ip", "-o", "link", "show"]);
        let names: Vec<String> = links
            .stdout
            .lines()
            .filter_map(|l| l.split(':').nth(1).map(|n| n.trim().to_string()))
            .collect();
        add(
            "links",
            Out {
                // Only the names: `ip` may print transient errors about veths whose peer
                // namespace is being destroyed.
                code: 0,
                stdout: names.join("\n"),
                stderr: String::new(),
            },
        );
        add("nft", self.netns(&["nft", "list", "ruleset"]));
        s
    }

    /// All processes belonging to this daemon instance (cmdline mentions our
    /// dir) plus all their descendants.
    fn our_pids(&self) -> Vec<i32> {
        let me = std::process::id() as i32;
        let needle = format!("{}/", self.dir.display());
        let mut parent: Vec<(i32, i32)> = Vec::new();
        let mut roots: BTreeSet<i32> = BTreeSet::new();
        if let Ok(rd) = fs::read_dir("/proc") {
            for e in rd.flatten() {
                let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                    continue;
                };
                if pid == me {
                    continue;
                }
                let cmd = fs::read(e.path().join("cmdline")).unwrap_or_default();
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                // Not curl/netloom CLI calls from the test itself (they are
                // our children and finished anyway).
                if cmd.contains(&needle) {
                    roots.insert(pid);
                }
                let stat = fs::read_to_string(e.path().join("stat")).unwrap_or_default();
                if let Some(rest) = stat.rsplit_once(')').map(|x| x.1) {
                    let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
                    if let Some(pp) = ppid {
                        parent.push((pid, pp));
                    }
                }
            }
        }
        let mut all = roots.clone();
        loop {
            let before = all.len();
            for (p, pp) in &parent {
                if all.contains(pp) {
                    all.insert(*p);
                }
            }
            if all.len() == before {
                break;
            }
        }
        all.into_iter().collect()
    }

    fn cleanup(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.child.is_some() {
            let ids = self.cli_t(&["ps", "-aq"], Duration::from_secs(10));
            let ids: Vec<&str> = ids.stdout.split_whitespace().collect();
            if !ids.is_empty() {
                let mut a = vec!["rm", "-f"];
                a.extend(ids.iter().copied());
                let o = self.cli_t(&a, Duration::from_secs(20));
                if !o.ok() {
                    problems.push(format!("rm -f during cleanup failed: {o}"));
                }
            }
            self.stop();
        }
        for _ in 0..3 {
            let pids = self.our_pids();
            if pids.is_empty() {
                break;
            }
            for p in &pids {
                // SAFETY: kill(2) on pids found in /proc that belong to us.
                unsafe { libc::kill(*p, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        // Unmount everything under our dir, deepest first.
        let needle = format!("{}/", self.dir.display());
        for _ in 0..3 {
            let mi = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            let mut mnts: Vec<String> = mi
                .lines()
                .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
                .filter(|m| m.starts_with(&needle))
                .collect();
            if mnts.is_empty() {
                break;
            }
            mnts.sort_by_key(|m| std::cmp::Reverse(m.matches('/').count()));
            for m in mnts {
                let _ = sh("umount", &["-l", &m]);
            }
        }
        // The containers' cgroups (empty once their processes are gone).
        if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
            let mut dirs: Vec<PathBuf> = vec![PathBuf::from("/sys/fs/cgroup").join(&self.name)];
            for e in rd.flatten() {
                dirs.push(e.path().join(&self.name));
            }
            for d in dirs.into_iter().filter(|d| d.is_dir()) {
                // A cgroup whose last task is still exiting is busy for a moment.
                for _ in 0..20 {
                    if let Ok(kids) = fs::read_dir(&d) {
                        for k in kids.flatten().filter(|k| k.path().is_dir()) {
                            let _ = fs::remove_dir(k.path());
                        }
                    }
                    if fs::remove_dir(&d).is_ok() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                if d.is_dir() {
                    problems.push(format!("cgroup {} left behind", d.display()));
                }
            }
        }
        let o = sh("ip", &["netns", "del", &self.name]);
        if !o.ok() {
            problems.push(format!("ip netns del {}: {o}", self.name));
        }
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            // Retry once after a short pause (lazy unmounts).
            std::thread::sleep(Duration::from_millis(200));
            if let Err(e2) = fs::remove_dir_all(&self.dir) {
                problems.push(format!("remove {}: {e} / {e2}", self.dir.display()));
            }
        }
        let ns = sh("ip", &["netns", "list"]);
        if ns
            .stdout
            .lines()
            .any(|l| l.split_whitespace().next() == Some(&self.name))
        {
            problems.push(format!("netns {} still listed", self.name));
        }
        let after = host_netloom_state();
        let leaked: Vec<&String> = after.difference(&self.host_before).collect();
        if !leaked.is_empty() {
            problems.push(format!("host namespace gained netloom state: {leaked:?}"));
        }
        problems
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let problems = self.cleanup();
        if !problems.is_empty() && !std::thread::panicking() {
            panic!("cleanup problems: {problems:#?}");
        }
    }
}

/// Polls `f` until it returns true or `timeout` elapses.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts a daemon or returns from the test (SKIP).
#[macro_export]
macro_rules! daemon_or_skip {
    () => {
        match $crate::daemon() {
            Some(d) => d,
            None => return,
        }
    };
}
