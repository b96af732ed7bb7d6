//! Privileged end-to-end tests of the runtime: the shim running busybox containers
//! with Debian's runc, overlayfs and a busybox image.
//!
//! They need root and `/bin/busybox`; without them each test prints
//! `SKIP: <reason>` and returns, unless `NETLOOM_REQUIRE_PRIV=1`, in which
//! case it fails. The internal modes run in the `netloom-runtime-helper`
//! binary of this crate.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use netloom_runtime::logs::{self, Stream};
use netloom_runtime::oci::RunOptions;
use netloom_runtime::runc::OciRuntime;
use netloom_runtime::{ContainerSpec, ExitInfo, Spawned};

const BUSYBOX: &str = "/bin/busybox";
const RUNC: &str = "/usr/sbin/runc";

/// Returns false (after printing `SKIP: ...`) when the test cannot run;
/// panics instead when `NETLOOM_REQUIRE_PRIV=1`.
fn require_privileges(test: &str) -> bool {
    let reason = if !nix::unistd::geteuid().is_root() {
        Some("needs root (mount, pivot_root, namespaces)")
    } else if !Path::new(BUSYBOX).exists() {
        Some("needs /bin/busybox (apt-get install busybox-static)")
    } else if !Path::new(RUNC).exists() {
        Some("needs /usr/sbin/runc (apt-get install runc)")
    } else {
        None
    };
    match reason {
        None => {
            netloom_runtime::set_self_exe(PathBuf::from(env!(
                "CARGO_BIN_EXE_netloom-runtime-helper"
            )));
            true
        }
        Some(r) if std::env::var("NETLOOM_REQUIRE_PRIV").as_deref() == Ok("1") => {
            panic!("{test}: NETLOOM_REQUIRE_PRIV=1 but {r}")
        }
        Some(r) => {
            println!("SKIP: {test}: {r}");
            false
        }
    }
}

/// A unique suffix for names shared with the host (netns names).
fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{tag}{}x{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos % 100_000
    )
}

/// Builds a busybox rootfs under `root`.
fn busybox_rootfs(root: &Path) {
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp",
    ] {
        std::fs::create_dir_all(root.join(d)).expect("create rootfs dir");
    }
    std::fs::copy(BUSYBOX, root.join("bin/busybox")).expect("copy busybox");
    let out = std::process::Command::new(BUSYBOX)
        .arg("--list-full")
        .output()
        .expect("busybox --list-full");
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let p = root.join(applet);
        if applet.is_empty() || p.exists() || p.symlink_metadata().is_ok() {
            continue;
        }
        std::os::unix::fs::symlink("/bin/busybox", &p).expect("applet symlink");
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")
        .expect("write passwd");
}

/// One container's directories (removed on drop, with the runtime's record and the
/// container's cgroups).
struct Fixture {
    _tmp: tempfile::TempDir,
    spec: ContainerSpec,
    opts: RunOptions,
    cgroup_parent: String,
}

impl Fixture {
    /// Rebuilds the spec's config after `opts` changed.
    fn rebuild(&mut self) {
        self.spec.oci = netloom_runtime::oci::build_spec(&self.opts).expect("build spec");
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::process::Command::new(RUNC)
            .args(self.spec.runtime.global_args())
            .args(["delete", "--force", &self.spec.id])
            .output();
        if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
            for e in rd.flatten() {
                let d = e.path().join(self.cgroup_parent.trim_start_matches('/'));
                if d.is_dir() {
                    if let Ok(kids) = std::fs::read_dir(&d) {
                        for k in kids.flatten().filter(|k| k.path().is_dir()) {
                            let _ = std::fs::remove_dir(k.path());
                        }
                    }
                    let _ = std::fs::remove_dir(&d);
                }
            }
        }
    }
}

fn fixture(args: &[&str]) -> Fixture {
    let tmp = tempfile::Builder::new()
        .prefix("netloom-rt-")
        .tempdir()
        .expect("tempdir");
    let root = tmp.path().join("image");
    busybox_rootfs(&root);
    let id = format!("{:0>64}", unique("").replace('x', "0"));
    let layer_dir = tmp.path().join("layer");
    let cgroup_parent = format!("/{}", unique("nlrt"));
    let opts = RunOptions {
        rootfs: layer_dir.join("merged"),
        hostname: "ctr-test".to_string(),
        env: vec!["FOO=bar".to_string()],
        args: args.iter().map(|s| s.to_string()).collect(),
        cgroups_path: format!("{cgroup_parent}/{id}"),
        ..RunOptions::default()
    };
    let spec = ContainerSpec {
        id,
        image_rootfs: root,
        layer_dir,
        state_dir: tmp.path().join("state"),
        log_path: tmp.path().join("state/container-json.log"),
        runtime: OciRuntime {
            name: "runc".into(),
            path: RUNC.into(),
            args: Vec::new(),
            root: tmp.path().join("runc"),
            systemd_cgroup: false,
            hide_mounts: None,
        },
        oci: netloom_runtime::oci::build_spec(&opts).expect("build spec"),
        user: String::new(),
        open_stdin: false,
        stdin_once: false,
        wait_attach: false,
    };
    Fixture {
        _tmp: tmp,
        spec,
        opts,
        cgroup_parent,
    }
}

async fn wait(sp: &Spawned, spec: &ContainerSpec) -> ExitInfo {
    tokio::time::timeout(
        Duration::from_secs(20),
        netloom_runtime::wait_exit(sp.shim_pid, sp.shim_start_time, &spec.state_dir),
    )
    .await
    .expect("container did not exit in time")
}

/// stdout text of the log.
fn stdout_text(spec: &ContainerSpec) -> String {
    let lines = logs::read_all(&spec.log_path).expect("read log");
    lines
        .iter()
        .filter(|l| l.stream == Stream::Stdout)
        .map(|l| String::from_utf8_lossy(&l.log).into_owned())
        .collect()
}

fn not_mounted(layer: &Path) {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mi.contains(&layer.display().to_string()),
        "{} still mounted on the host",
        layer.display()
    );
}

#[tokio::test]
async fn exit_code_and_log_streams() {
    if !require_privileges("exit_code_and_log_streams") {
        return;
    }
    let f = fixture(&["sh", "-c", "echo out; echo err >&2; printf partial; exit 3"]);
    let sp = netloom_runtime::start(&f.spec).expect("start");
    let exit = wait(&sp, &f.spec).await;
    assert_eq!(exit.exit_code, 3);
    assert!(!exit.oom_killed);
    assert!(exit.finished_at.ends_with('Z'));
    assert_eq!(netloom_runtime::read_exit(&f.spec.state_dir), Some(exit));
    let lines = logs::read_all(&f.spec.log_path).expect("read log");
    let has = |s: Stream, t: &[u8]| lines.iter().any(|l| l.stream == s && l.log == t);
    assert!(has(Stream::Stdout, b"out\n"), "{lines:?}");
    assert!(has(Stream::Stderr, b"err\n"), "{lines:?}");
    assert!(has(Stream::Stdout, b"partial"), "{lines:?}");
    // Raw format check: one JSON object per line, Docker's keys.
    let raw = std::fs::read_to_string(&f.spec.log_path).expect("read raw log");
    assert!(
        raw.contains(r#"{"log":"out\n","stream":"stdout","time":""#),
        "{raw}"
    );
    assert!(!netloom_runtime::is_alive(sp.init_pid, sp.init_start_time));
    not_mounted(&f.spec.layer_dir);
}

#[tokio::test]
async fn sigterm_reaches_pid_1_and_shim_is_detached() {
    if !require_privileges("sigterm_reaches_pid_1_and_shim_is_detached") {
        return;
    }
    // The command is PID 1: it handles SIGTERM itself.
    let f = fixture(&["sh", "-c", "trap 'exit 143' TERM; sleep 30 & wait"]);
    let sp = netloom_runtime::start(&f.spec).expect("start");
    assert!(netloom_runtime::is_alive(sp.init_pid, sp.init_start_time));
    assert!(netloom_runtime::is_alive(sp.shim_pid, sp.shim_start_time));
    assert!(!netloom_runtime::is_alive(
        sp.init_pid,
        sp.init_start_time + 1
    ));
    // The shim is not our child (it survives the daemon).
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", sp.shim_pid)).expect("stat");
    let ppid: i32 = stat
        .rsplit(')')
        .next()
        .and_then(|r| r.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .expect("ppid");
    assert_ne!(ppid, std::process::id() as i32);
    assert!(netloom_runtime::read_exit(&f.spec.state_dir).is_none());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t0 = std::time::Instant::now();
    f.spec
        .runtime
        .kill(&f.spec.id, libc::SIGTERM)
        .await
        .expect("kill");
    let exit = wait(&sp, &f.spec).await;
    assert_eq!(exit.exit_code, 143);
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(!netloom_runtime::is_alive(sp.init_pid, sp.init_start_time));
    not_mounted(&f.spec.layer_dir);
}

#[tokio::test]
async fn hostname_bind_files_and_pid_namespace() {
    if !require_privileges("hostname_bind_files_and_pid_namespace") {
        return;
    }
    let mut f = fixture(&[
        "sh",
        "-c",
        "hostname; cat /etc/hosts; echo pid=$$; echo foo=$FOO; pwd; ls /dev; cat /etc/deep/x.conf",
    ]);
    let hosts = f.spec.state_dir.parent().expect("parent").join("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost\n10.9.8.7 magic-host\n").expect("hosts");
    let deep = f.spec.state_dir.parent().expect("parent").join("deep.conf");
    std::fs::write(&deep, "deep-content\n").expect("deep");
    f.opts.bind_files = vec![
        (hosts, "/etc/hosts".to_string()),
        (deep, "/etc/deep/x.conf".to_string()),
    ];
    f.opts.hostname = "c-hostname-1".to_string();
    f.opts.cwd = "/work/dir".to_string();
    f.rebuild();
    let sp = netloom_runtime::start(&f.spec).expect("start");
    let exit = wait(&sp, &f.spec).await;
    let out = stdout_text(&f.spec);
    assert_eq!(exit.exit_code, 0, "{out}");
    assert!(out.starts_with("c-hostname-1\n"), "{out}");
    assert!(out.contains("10.9.8.7 magic-host"), "{out}");
    // The command is PID 1 of its own PID namespace.
    assert!(out.contains("pid=1\n"), "{out}");
    assert!(out.contains("foo=bar\n"), "{out}");
    assert!(out.contains("/work/dir\n"), "{out}");
    for dev in ["null", "zero", "urandom", "pts", "shm", "ptmx", "stdout"] {
        assert!(out.lines().any(|l| l == dev), "/dev/{dev} missing: {out}");
    }
    assert!(out.contains("deep-content\n"), "{out}");
}

#[tokio::test]
async fn exec_into_running_container() {
    if !require_privileges("exec_into_running_container") {
        return;
    }
    let mut f = fixture(&["sleep", "30"]);
    f.opts.hostname = "exec-host".to_string();
    f.rebuild();
    let sp = netloom_runtime::start(&f.spec).expect("start");
    let run = |args: &[&str], n: u32| {
        let o = netloom_runtime::ExecOptions {
            runtime: f.spec.runtime.clone(),
            container_id: f.spec.id.clone(),
            init_pid: sp.init_pid,
            state_dir: f.spec.state_dir.clone(),
            exec_id: format!("e{n}"),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec!["X=1".to_string()],
            working_dir: "/tmp".into(),
            ..Default::default()
        };
        async move {
            let mut p = netloom_runtime::exec(&o).expect("exec");
            let mut out = Vec::new();
            let mut err = Vec::new();
            use tokio::io::AsyncReadExt;
            if let Some(mut s) = p.child.stdout.take() {
                let _ = s.read_to_end(&mut out).await;
            }
            if let Some(mut s) = p.child.stderr.take() {
                let _ = s.read_to_end(&mut err).await;
            }
            let code = p.wait().await;
            (
                code,
                String::from_utf8_lossy(&out).into_owned(),
                String::from_utf8_lossy(&err).into_owned(),
            )
        }
    };
    let (code, ps_out, _) = run(&["ps"], 1).await;
    assert_eq!(code, 0, "{ps_out}");
    assert!(ps_out.contains("sleep 30"), "{ps_out}");
    let (_, h, _) = run(&["hostname"], 2).await;
    assert_eq!(h, "exec-host\n");
    let (code, pwd, _) = run(
        &[
            "sh",
            "-c",
            "pwd; echo $X; grep CapEff /proc/self/status; exit 7",
        ],
        3,
    )
    .await;
    assert_eq!(pwd, "/tmp\n1\nCapEff:\t00000000a80425fb\n");
    assert_eq!(code, 7);
    let (code, _, err) = run(&["no-such-cmd"], 4).await;
    assert_eq!(code, 127);
    assert!(err.contains("executable file not found in $PATH"), "{err}");
    f.spec
        .runtime
        .kill(&f.spec.id, libc::SIGKILL)
        .await
        .expect("kill");
    let exit = wait(&sp, &f.spec).await;
    assert_eq!(exit.exit_code, 137);
}

/// Deletes the named netns on drop, even if the test fails.
struct NetnsGuard(String);

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

#[tokio::test]
async fn joins_network_namespace() {
    if !require_privileges("joins_network_namespace") {
        return;
    }
    let name = unique("nlrt");
    let ok = std::process::Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .expect("ip netns add");
    assert!(ok.success());
    let _guard = NetnsGuard(name.clone());
    let mut f = fixture(&["ip", "link"]);
    f.opts.netns = Some(PathBuf::from(format!("/run/netns/{name}")));
    f.rebuild();
    let sp = netloom_runtime::start(&f.spec).expect("start");
    let exit = wait(&sp, &f.spec).await;
    let out = stdout_text(&f.spec);
    assert_eq!(exit.exit_code, 0, "{out}");
    let links: Vec<&str> = out
        .lines()
        .filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(links.len(), 1, "{out}");
    assert!(links[0].contains(": lo:"), "{out}");
}

#[tokio::test]
async fn missing_command_fails_the_start_and_layer_persists() {
    if !require_privileges("missing_command_fails_the_start_and_layer_persists") {
        return;
    }
    let mut f = fixture(&["no-such-binary", "arg"]);
    let err = netloom_runtime::start(&f.spec).expect_err("start with a missing command");
    assert!(
        err.to_string()
            .contains("executable file not found in $PATH"),
        "{err}"
    );

    // Start the same container again: the upper layer persists, exit.json is replaced.
    f.opts.args = ["sh", "-c", "echo kept > /persisted"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    f.rebuild();
    let sp = netloom_runtime::start(&f.spec).expect("second start");
    assert_eq!(wait(&sp, &f.spec).await.exit_code, 0);
    f.opts.args = ["cat", "/persisted"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    f.rebuild();
    let sp = netloom_runtime::start(&f.spec).expect("third start");
    assert_eq!(wait(&sp, &f.spec).await.exit_code, 0);
    assert!(stdout_text(&f.spec).contains("kept\n"));
    assert!(!f.spec.image_rootfs.join("persisted").exists());
    assert!(f.spec.layer_dir.join("upper/persisted").exists());
    not_mounted(&f.spec.layer_dir);
}

#[tokio::test]
async fn setup_failure_is_an_error() {
    if !require_privileges("setup_failure_is_an_error") {
        return;
    }
    let mut f = fixture(&["true"]);
    f.spec.image_rootfs = f.spec.image_rootfs.join("does-not-exist");
    let err = netloom_runtime::start(&f.spec).expect_err("overlay on a missing lower must fail");
    let msg = err.to_string();
    assert!(msg.contains("mount overlay"), "{msg}");
    let mut f = fixture(&["true"]);
    f.opts.netns = Some(PathBuf::from("/run/netns/netloom-does-not-exist"));
    f.rebuild();
    let err = netloom_runtime::start(&f.spec).expect_err("missing netns must fail");
    assert!(err.to_string().contains("netns"), "{err}");
}

#[tokio::test]
async fn follow_ends_after_exit() {
    if !require_privileges("follow_ends_after_exit") {
        return;
    }
    let f = fixture(&[
        "sh",
        "-c",
        "for i in 1 2 3; do echo line$i; sleep 0.1; done",
    ]);
    let sp = netloom_runtime::start(&f.spec).expect("start");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut rx = logs::follow(f.spec.log_path.clone(), None, stop_rx);
    let spec = f.spec.clone();
    let waiter = tokio::spawn(async move {
        let e = netloom_runtime::wait_exit(sp.shim_pid, sp.shim_start_time, &spec.state_dir).await;
        let _ = stop_tx.send(true);
        e
    });
    let mut got = Vec::new();
    while let Ok(Some(l)) = tokio::time::timeout(Duration::from_secs(20), rx.recv()).await {
        got.push(String::from_utf8_lossy(&l.log).into_owned());
    }
    assert_eq!(got, vec!["line1\n", "line2\n", "line3\n"]);
    assert_eq!(waiter.await.expect("join").exit_code, 0);
}

/// Env var that turns `daemon_role` into a fake daemon for
/// `container_survives_daemon_sigkill`.
const DAEMON_ROLE_ENV: &str = "NETLOOM_RT_TEST_DAEMON_SPEC";

/// Not a test on its own: when re-run by `container_survives_daemon_sigkill`
/// it starts the container, prints the `Spawned` record and hangs until killed.
#[test]
fn daemon_role() {
    let Ok(spec_path) = std::env::var(DAEMON_ROLE_ENV) else {
        return;
    };
    netloom_runtime::set_self_exe(PathBuf::from(env!("CARGO_BIN_EXE_netloom-runtime-helper")));
    let spec: ContainerSpec =
        serde_json::from_slice(&std::fs::read(spec_path).expect("read spec")).expect("parse spec");
    let sp = netloom_runtime::start(&spec).expect("start");
    println!("SPAWNED={}", serde_json::to_string(&sp).expect("encode"));
    std::thread::sleep(Duration::from_secs(60));
}

#[tokio::test]
async fn container_survives_daemon_sigkill() {
    if !require_privileges("container_survives_daemon_sigkill") {
        return;
    }
    let f = fixture(&["sh", "-c", "trap 'exit 143' TERM; sleep 30 & wait"]);
    let spec_file = f.spec.layer_dir.with_file_name("test-spec.json");
    std::fs::write(&spec_file, serde_json::to_vec(&f.spec).expect("encode")).expect("write");
    let mut daemon = std::process::Command::new(std::env::current_exe().expect("exe"))
        .args(["--exact", "daemon_role", "--nocapture", "--test-threads=1"])
        .env(DAEMON_ROLE_ENV, &spec_file)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn fake daemon");
    let stdout = daemon.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.split_once("SPAWNED=").map(|(_, r)| r.to_string()))
    })
    .await
    .expect("join")
    .expect("fake daemon printed no Spawned record");
    let sp: Spawned = serde_json::from_str(&line).expect("parse Spawned");
    daemon.kill().expect("SIGKILL daemon");
    let _ = daemon.wait();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(netloom_runtime::is_alive(sp.shim_pid, sp.shim_start_time));
    assert!(netloom_runtime::is_alive(sp.init_pid, sp.init_start_time));
    // A "restarted daemon" can still stop and wait for it.
    f.spec
        .runtime
        .kill(&f.spec.id, libc::SIGTERM)
        .await
        .expect("kill");
    assert_eq!(wait(&sp, &f.spec).await.exit_code, 143);
}

/// Reads from `s` until `needle` appears (10 s budget); returns what was read.
async fn read_until(s: &mut tokio::net::UnixStream, needle: &str) -> String {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&got).contains(needle) {
        match tokio::time::timeout_at(until, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn tty_through_the_attach_socket() {
    use netloom_runtime::attach::{self, AttachRequest};
    use tokio::io::AsyncWriteExt;
    if !require_privileges("tty_through_the_attach_socket") {
        return;
    }
    let mut f = fixture(&["sh"]);
    f.opts.tty = true;
    f.opts.console_size = Some([30, 100]);
    f.rebuild();
    f.spec.open_stdin = true;
    f.spec.wait_attach = true;
    let sp = netloom_runtime::start(&f.spec).expect("start");
    let req = AttachRequest {
        stdin: true,
        stdout: true,
        stderr: true,
        logs: false,
        resize: None,
    };
    let mut s = attach::connect(&f.spec.state_dir, &req)
        .await
        .expect("connect");
    s.write_all(b"tty; stty size; echo $((6*7))x\n")
        .await
        .expect("write");
    let out = read_until(&mut s, "42x").await;
    assert!(out.contains("/dev/pts/0"), "{out:?}");
    assert!(out.contains("30 100"), "initial size: {out:?}");
    attach::resize(&f.spec.state_dir, 45, 140)
        .await
        .expect("resize");
    s.write_all(b"stty size\n").await.expect("write");
    let out = read_until(&mut s, "45 140").await;
    assert!(out.contains("45 140"), "{out:?}");
    s.write_all(b"exit 3\n").await.expect("write");
    let exit = wait(&sp, &f.spec).await;
    assert_eq!(exit.exit_code, 3);
    // The output is also in the log, and the socket is gone.
    assert!(stdout_text(&f.spec).contains("42x"));
    assert!(!attach::socket_path(&f.spec.state_dir).exists());
}

#[tokio::test]
async fn stdin_pipe_closes_with_stdin_once() {
    use netloom_runtime::attach::{self, AttachRequest};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if !require_privileges("stdin_pipe_closes_with_stdin_once") {
        return;
    }
    let mut f = fixture(&["sh", "-c", "cat; echo done >&2"]);
    f.spec.open_stdin = true;
    f.spec.stdin_once = true;
    f.spec.wait_attach = true;
    let sp = netloom_runtime::start(&f.spec).expect("start");
    let req = AttachRequest {
        stdin: true,
        stdout: true,
        stderr: true,
        logs: false,
        resize: None,
    };
    let mut s = attach::connect(&f.spec.state_dir, &req)
        .await
        .expect("connect");
    // A resize of a container without a terminal is refused by the shim.
    let e = attach::resize(&f.spec.state_dir, 1, 1)
        .await
        .expect_err("no terminal");
    assert!(format!("{e}").contains("no terminal"), "{e}");
    s.write_all(b"hello\n").await.expect("write");
    s.shutdown().await.expect("half-close");
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut all))
        .await
        .expect("stream ends")
        .expect("read");
    // Multiplexed frames: stdout "hello\n", then stderr "done\n".
    assert_eq!(
        all,
        [
            &[1u8, 0, 0, 0, 0, 0, 0, 6][..],
            b"hello\n",
            &[2, 0, 0, 0, 0, 0, 0, 5],
            b"done\n"
        ]
        .concat()
    );
    assert_eq!(wait(&sp, &f.spec).await.exit_code, 0);
}
