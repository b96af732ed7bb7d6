//! What netloomd exposes, and to whom: the API socket's permissions, listening
//! ports, what a container can see and touch, and the API's resource limits
//! (slow clients, many connections, memory and descriptors over many requests).
//!
//! The limits tests print their figures (`FIGURE ...` lines); run with
//! `--nocapture` to see them.

use std::collections::BTreeSet;
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use netloom_e2e::{Daemon, daemon_or_skip, run_cmd, wait_for};

/// The daemon's header-read timeout (crates/daemon/src/limits.rs).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The message of the 503 beyond the connection limit, up to the number.
const OVERLOAD_PREFIX: &str = "too many connections to netloomd (limit ";
const OVERLOAD_SUFFIX: &str = "): retry later";

/// The pid of this test's netloomd (not of its shims, which re-execute the binary).
fn daemon_pid(d: &Daemon) -> i32 {
    let data_root = format!("{}/data", d.dir.display());
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmd = fs::read(e.path().join("cmdline")).unwrap_or_default();
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_daemon = args.first().is_some_and(|a| a.ends_with("/netloomd"))
            && args
                .windows(2)
                .any(|w| w[0] == "--data-root" && w[1] == data_root);
        if is_daemon {
            return pid;
        }
    }
    panic!("netloomd of {} not found in /proc", d.dir.display());
}

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: i32) -> u64 {
    let st = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    st.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// Open file descriptors of `pid`.
fn fd_count(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

/// Makes sure this process may open `n` more descriptors.
fn ensure_fds(n: u64) {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl), 0);
        if rl.rlim_cur != libc::RLIM_INFINITY && rl.rlim_cur < n + 256 {
            rl.rlim_cur = (n + 256).min(rl.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &rl), 0);
        }
    }
}

/// One request on a fresh connection (`Connection: close`): (status, body).
fn raw_request(sock: &Path, method: &str, path: &str) -> (u16, String) {
    let mut s = UnixStream::connect(sock).unwrap_or_else(|e| panic!("connect: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)
        .unwrap_or_else(|e| panic!("{method} {path}: read: {e}"));
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Names from `ip -o link` output (`2: eth0@if7: <...`).
fn link_names(out: &str) -> BTreeSet<String> {
    out.lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
        .filter(|n| !n.is_empty())
        .collect()
}

fn is_overload_message(s: &str) -> bool {
    s.find(OVERLOAD_PREFIX).is_some_and(|i| {
        let rest = &s[i + OVERLOAD_PREFIX.len()..];
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        digits > 0 && rest[digits..].starts_with(OVERLOAD_SUFFIX)
    })
}

/// True once the peer closed `s` (EOF or error on read); never blocks long.
fn peer_closed(s: &UnixStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut b = [0u8; 4096];
    let closed = loop {
        match (&mut &*s).read(&mut b) {
            Ok(0) => break true,
            Ok(_) => continue, // e.g. an error response before the close
            Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    s.set_nonblocking(false).unwrap();
    closed
}

/// (1) The socket is 0660 root:root; an unprivileged user cannot connect to it.
#[test]
fn api_socket_is_root_only() {
    let d = daemon_or_skip!();
    let sock = d.sock();
    let md = fs::metadata(&sock).unwrap();
    assert!(
        md.file_type().is_socket(),
        "{} is not a socket",
        sock.display()
    );
    assert_eq!(
        md.mode() & 0o7777,
        0o660,
        "socket mode {:o}",
        md.mode() & 0o7777
    );
    assert_eq!((md.uid(), md.gid()), (0, 0), "socket owner");
    println!("socket {} mode 0660 root:root", sock.display());

    let sock_s = sock.to_str().unwrap();
    let curl_args = [
        "curl",
        "-sS",
        "-v",
        "--unix-socket",
        sock_s,
        "http://x/_ping",
    ];
    // Control: root can.
    let o = run_cmd(
        {
            let mut c = Command::new(curl_args[0]);
            c.args(&curl_args[1..]);
            c
        },
        Duration::from_secs(30),
    );
    assert!(o.ok() && o.stdout == "OK", "root curl _ping: {o}");
    // nobody:nogroup without supplementary groups cannot.
    let as_nobody = |args: &[&str]| {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .args(args);
        run_cmd(c, Duration::from_secs(30))
    };
    let o = as_nobody(&curl_args);
    let denied = o.stderr.lines().find(|l| l.contains("Permission denied"));
    println!("nobody curl: exit {} {denied:?}", o.code);
    assert!(!o.ok(), "nobody reached the API: {o}");
    assert!(
        denied.is_some(),
        "nobody's curl failed, but not with permission denied: {o}"
    );
    assert!(!o.stdout.contains("OK"), "{o}");
    // The CLI cannot either (it does not name the errno: "Cannot connect ...").
    let host = d.host_arg();
    let bin = std::env::var_os("NETLOOM_BIN_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug"))
        .join("netloom");
    let o = as_nobody(&[bin.to_str().unwrap(), "-H", &host, "version"]);
    println!(
        "nobody netloom version: exit {} {:?}",
        o.code,
        o.stderr.trim()
    );
    assert!(!o.ok(), "nobody ran netloom version: {o}");
    assert!(
        o.stderr.contains("Cannot connect") || o.all().contains("ermission denied"),
        "nobody's netloom version failed oddly: {o}"
    );
    // And the daemon is unharmed.
    d.ok(&["version"]);
}

/// (2) netloomd listens on no TCP/UDP port in its own namespace, not even with
/// containers, user networks (embedded DNS) and published ports; the DNS listeners
/// live in the containers' namespaces.
#[test]
fn daemon_listens_on_no_inet_port() {
    let d = daemon_or_skip!();
    d.ok(&["network", "create", "expnet"]);
    d.run_sleeper("dnsc", &["--network", "expnet"]);
    d.run_sleeper("pub", &["-p", "18080:80", "-p", "18053:53/udp"]);
    let pid = daemon_pid(&d);
    let o = d.netns(&["ss", "-H", "-l", "-n", "-t", "-u", "-w", "-p"]);
    assert!(o.ok(), "ss -l: {o}");
    println!("listening sockets in {}:\n{}", d.name, o.stdout);
    let pid_tag = format!("pid={pid},");
    for l in o.stdout.lines() {
        assert!(
            !l.contains("netloomd") && !l.contains(&pid_tag),
            "netloomd listens in its namespace: {l}"
        );
    }
    // Not even a connected or unbound inet socket (on etcd, except its client
    // connections to the cluster store).
    let o = d.netns(&["ss", "-H", "-a", "-n", "-t", "-u", "-w", "-p"]);
    for l in o.stdout.lines() {
        if d.etcd.is_some() && l.split_whitespace().nth(5) == Some("127.0.0.1:2379") {
            continue;
        }
        assert!(
            !l.contains(&pid_tag),
            "netloomd holds an inet socket in its namespace: {l}"
        );
    }
    // The resolver's listeners are inside the container.
    let inside = d.exec_ok("dnsc", "netstat -lnut");
    println!("inside dnsc:\n{inside}");
    assert!(
        inside.contains("127.0.0.11:53"),
        "no DNS listener inside the container: {inside}"
    );
}

/// (3) A container sees neither the API socket nor the host's filesystem, and can
/// only see its own interfaces, and change them only with NET_ADMIN.
#[test]
fn container_cannot_reach_socket_host_files_or_foreign_links() {
    let d = daemon_or_skip!();
    let marker = d.dir.join("host-marker");
    fs::write(&marker, "host only").unwrap();
    d.ok(&["network", "create", "expnet"]);
    // c1 holds NET_ADMIN (Docker's default set has none), so what stops it below is its
    // network namespace, not a missing capability.
    d.run_sleeper("c1", &["--network", "expnet", "--cap-add", "NET_ADMIN"]);
    d.run_sleeper("c2", &["--network", "expnet"]);
    d.run_sleeper("c3", &[]);

    // Filesystem.
    let sock = d.sock();
    let script = format!(
        "for p in {sock} {dir} {exec} {data} {marker} /work /root/.cargo; do \
           test -e $p && echo VISIBLE $p; done; \
         ls -la /run /tmp 2>&1; \
         echo SOCKETS:; find / \\( -path /proc -o -path /sys \\) -prune -o -type s -print 2>/dev/null; \
         echo END",
        sock = sock.display(),
        dir = d.dir.display(),
        exec = d.dir.join("exec").display(),
        data = d.dir.join("data").display(),
        marker = marker.display(),
    );
    let out = d.exec_ok("c1", &script);
    println!("inside c1:\n{out}");
    assert!(!out.contains("VISIBLE"), "host paths visible inside: {out}");
    assert!(
        !out.contains("netloom.sock"),
        "API socket visible inside: {out}"
    );
    let sockets = out
        .split_once("SOCKETS:")
        .map(|x| x.1.replace("END", ""))
        .unwrap_or_default();
    assert!(
        sockets.trim().is_empty(),
        "unix sockets inside a fresh container: {sockets}"
    );

    // Interfaces: only its own.
    let own = link_names(&d.exec_ok("c1", "ip -o link"));
    assert_eq!(
        own,
        BTreeSet::from(["lo".to_string(), "eth0".to_string()]),
        "c1 sees"
    );
    let daemon_links_before = link_names(&d.netns(&["ip", "-o", "link"]).stdout);
    let c2_before = net_state(&d, "c2");
    let c3_before = net_state(&d, "c3");
    let foreign: Vec<&String> = daemon_links_before
        .iter()
        .filter(|n| !own.contains(*n))
        .collect();
    assert!(
        !foreign.is_empty(),
        "no bridge/veth in the daemon namespace?"
    );
    println!("daemon namespace links: {daemon_links_before:?}");
    let mut script = String::new();
    for n in &foreign {
        script.push_str(&format!(
            "ip link set {n} name stolen 2>/dev/null && echo RENAMED {n}; \
             ip link set {n} down 2>/dev/null && echo DOWNED {n}; \
             ip link del {n} 2>/dev/null && echo DELETED {n}; "
        ));
    }
    script.push_str("echo DONE");
    let out = d.exec_ok("c1", &script);
    assert_eq!(
        out.trim(),
        "DONE",
        "c1 changed interfaces that are not its own"
    );
    // One spelled-out case with its message.
    let o = d.exec("c1", &format!("ip link del {}", foreign[0]));
    println!("c1: ip link del {}: {}", foreign[0], o.all().trim());
    assert!(!o.ok(), "c1 deleted {}: {o}", foreign[0]);

    // Without NET_ADMIN a container cannot even change its own interfaces.
    let o = d.exec("c2", "ip link set eth0 down");
    assert!(
        !o.ok() && o.all().contains("Operation not permitted"),
        "c2 (default capabilities) set its eth0 down: {o}"
    );
    // Its own eth0 c1 may rename (and rename back, restoring the default route).
    let out = d.exec_ok(
        "c1",
        "gw=$(ip route | awk '/^default/{print $3}'); \
         ip link set eth0 down && ip link set eth0 name renamed0 && ip -o link show renamed0 \
         && ip link set renamed0 name eth0 && ip link set eth0 up \
         && { [ -z \"$gw\" ] || ip route add default via $gw; } && echo RENAMED-OWN",
    );
    assert!(
        out.contains("renamed0") && out.contains("RENAMED-OWN"),
        "{out}"
    );

    // Nobody else noticed.
    let daemon_links_after = link_names(&d.netns(&["ip", "-o", "link"]).stdout);
    assert_eq!(
        daemon_links_before, daemon_links_after,
        "daemon links changed"
    );
    assert_eq!(c2_before, net_state(&d, "c2"), "c2 changed");
    assert_eq!(c3_before, net_state(&d, "c3"), "c3 changed");
    // And the network still works for all three.
    d.exec_ok("c2", "ping -c1 -W5 c1 >/dev/null");
    d.exec_ok("c1", "ping -c1 -W5 c2 >/dev/null");
}

/// (4) A client sending its request head slowly is cut off after the header-read
/// timeout; an idle connection too; meanwhile everybody else is served.
#[test]
fn slow_clients_are_cut_off() {
    let d = daemon_or_skip!();
    let sock = d.sock();
    let start = Instant::now();
    let mut slow = UnixStream::connect(&sock).unwrap();
    let idle = UnixStream::connect(&sock).unwrap();
    slow.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    // The slowloris: one more header byte every 500 ms until the daemon hangs up.
    let slow_thread = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut sent = 0usize;
            let closed_after = loop {
                if peer_closed(&slow) {
                    break Some(start.elapsed());
                }
                if slow.write_all(b"X").is_err() {
                    break Some(start.elapsed());
                }
                sent += 1;
                if start.elapsed() > Duration::from_secs(60) {
                    break None;
                }
                std::thread::sleep(Duration::from_millis(500));
            };
            done.store(true, Ordering::SeqCst);
            (closed_after, sent)
        })
    };
    let idle_thread = std::thread::spawn(move || {
        while start.elapsed() < Duration::from_secs(60) {
            if peer_closed(&idle) {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    });
    // A slow but not too slow client: its head trickles in over ~3 s and is served.
    let patient = std::thread::spawn({
        let sock = sock.clone();
        move || {
            let mut s = UnixStream::connect(&sock).unwrap();
            for part in [
                "GET /_ping HTTP/1.1\r\n",
                "Host: x\r\n",
                "Connection: close\r\n",
                "\r\n",
            ] {
                s.write_all(part.as_bytes()).unwrap();
                std::thread::sleep(Duration::from_secs(1));
            }
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let mut r = String::new();
            let _ = s.read_to_string(&mut r);
            r
        }
    });
    // Meanwhile the API answers everybody else.
    let (mut n, mut worst) = (0u32, Duration::ZERO);
    while !done.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(60) {
        let t = Instant::now();
        let o = d.cli(&["version"]);
        assert!(o.ok(), "version while a slow client is connected: {o}");
        let (st, body) = d.api("GET", "/_ping", None);
        assert_eq!((st, body.as_str()), (200, "OK"));
        worst = worst.max(t.elapsed());
        n += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    let (slow_closed, sent) = slow_thread.join().unwrap();
    let idle_closed = idle_thread.join().unwrap();
    let patient = patient.join().unwrap();
    println!(
        "FIGURE slowloris: cut off after {slow_closed:?} ({sent} header bytes dribbled); \
         idle connection closed after {idle_closed:?}; timeout {HEADER_READ_TIMEOUT:?}; \
         {n} version+_ping rounds meanwhile, slowest {worst:?}"
    );
    let margin = Duration::from_secs(8);
    let slow_closed = slow_closed.expect("slow client never cut off");
    assert!(
        slow_closed >= HEADER_READ_TIMEOUT - Duration::from_secs(1)
            && slow_closed <= HEADER_READ_TIMEOUT + margin,
        "slow client cut off after {slow_closed:?}"
    );
    let idle_closed = idle_closed.expect("idle connection never closed");
    assert!(
        idle_closed >= HEADER_READ_TIMEOUT - Duration::from_secs(1)
            && idle_closed <= HEADER_READ_TIMEOUT + margin,
        "idle connection closed after {idle_closed:?}"
    );
    assert!(n > 0, "no request ran while the slow client was connected");
    assert!(
        patient.starts_with("HTTP/1.1 200") && patient.ends_with("OK"),
        "slow-but-complete client: {patient:?}"
    );
    d.ok(&["ps"]);
}

/// (5) 600 idle connections: the API answers (or says clearly that it is full),
/// recovers on its own, and is fully usable once they are gone.
#[test]
fn many_idle_connections() {
    let d = daemon_or_skip!();
    let sock = d.sock();
    let pid = daemon_pid(&d);
    ensure_fds(700);
    let fds_before = fd_count(pid);
    let rss_before = rss_kib(pid);
    let t0 = Instant::now();
    let conns: Vec<UnixStream> = (0..600)
        .map(|i| UnixStream::connect(&sock).unwrap_or_else(|e| panic!("connection {i}: {e}")))
        .collect();
    let opened = t0.elapsed();
    // Let the daemon accept them all.
    std::thread::sleep(Duration::from_millis(500));
    let fds_loaded = fd_count(pid);

    // A raw request on top: 503 with the clear message (or, on a machine so slow
    // that the idle ones were already reaped, 200).
    let t = Instant::now();
    let (st, body) = raw_request(&sock, "GET", "/_ping");
    let raw_took = t.elapsed();
    println!("raw _ping with 600 idle: {st} {body:?} in {raw_took:?}");
    if st == 503 {
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let m = v["message"].as_str().unwrap_or("");
        assert!(is_overload_message(m), "503 message: {m:?}");
    } else {
        assert_eq!(st, 200, "{body}");
        assert!(t0.elapsed() >= HEADER_READ_TIMEOUT, "200 with 600 idle");
    }
    assert!(
        raw_took < Duration::from_secs(5),
        "raw _ping took {raw_took:?}"
    );

    let t = Instant::now();
    let first = d.cli(&["version"]);
    let first_took = t.elapsed();
    println!("netloom version with 600 idle: {first} in {first_took:?}");
    assert!(
        first.ok() || is_overload_message(&first.stderr),
        "version with 600 idle connections: neither an answer nor the overload message: {first}"
    );
    assert!(first_took < Duration::from_secs(5), "took {first_took:?}");

    // Still holding them: the daemon reaps idle connections after the header-read
    // timeout, and the API answers again.
    let answered = wait_for(Duration::from_secs(40), || d.cli(&["version"]).ok());
    let recovered_after = t0.elapsed();
    assert!(answered, "version never answered again");
    let mut reaped = 0;
    wait_for(Duration::from_secs(15), || {
        reaped = conns.iter().filter(|c| peer_closed(c)).count();
        reaped == conns.len()
    });
    println!("{reaped} of 600 idle connections closed by the daemon after {recovered_after:?}");
    assert_eq!(reaped, 600, "idle connections not closed by the daemon");
    drop(conns);

    let t = Instant::now();
    d.ok(&["version"]);
    d.ok(&["ps", "-a"]);
    d.ok(&["network", "ls"]);
    let after_took = t.elapsed();
    let settled = wait_for(Duration::from_secs(10), || fd_count(pid) <= fds_before + 2);
    let fds_after = fd_count(pid);
    let rss_after = rss_kib(pid);
    println!(
        "FIGURE many connections: opened 600 in {opened:?}; raw _ping -> {st} in {raw_took:?}; \
         netloom version -> {} in {first_took:?}; answering again {recovered_after:?} after opening \
         ({reaped} reaped); version+ps+network ls after closing: {after_took:?}; \
         daemon fds {fds_before} -> {fds_loaded} (600 open) -> {fds_after}; \
         VmRSS {rss_before} KiB -> {rss_after} KiB",
        if first.ok() {
            "answer".to_string()
        } else {
            format!("{:?}", first.stderr.trim())
        }
    );
    assert!(
        settled,
        "daemon fds {fds_before} -> {fds_after} after closing"
    );
    d.run_sleeper("afterwards", &[]);
    assert!(d.exec_ok("afterwards", "echo hi").contains("hi"));
}

/// RSS and descriptors of netloomd before and after 2,000 API requests.
#[test]
fn rss_and_fds_over_2000_requests() {
    let d = daemon_or_skip!();
    d.ok(&["network", "create", "expnet"]);
    d.run_sleeper("c1", &["--network", "expnet"]);
    let sock = d.sock();
    let pid = daemon_pid(&d);
    // Warm up (first-use allocations), then measure.
    for _ in 0..50 {
        raw_request(&sock, "GET", "/v1.47/containers/json?all=1");
        raw_request(&sock, "GET", "/v1.47/networks");
    }
    let rss_before = rss_kib(pid);
    let fds_before = fd_count(pid);
    let t = Instant::now();
    for i in 0..2000 {
        let path = if i % 2 == 0 {
            "/v1.47/containers/json?all=1"
        } else {
            "/v1.47/networks"
        };
        let (st, body) = raw_request(&sock, "GET", path);
        assert_eq!(st, 200, "request {i} {path}: {body}");
    }
    let took = t.elapsed();
    // A few through the CLI too.
    for _ in 0..20 {
        d.ok(&["ps"]);
        d.ok(&["network", "ls"]);
    }
    let rss_after = rss_kib(pid);
    let settled = wait_for(Duration::from_secs(10), || fd_count(pid) <= fds_before + 2);
    let fds_after = fd_count(pid);
    println!(
        "FIGURE 2000 requests (ps/network ls, one connection each) in {took:?}: \
         VmRSS {rss_before} KiB -> {rss_after} KiB ({:+} KiB); fds {fds_before} -> {fds_after}",
        rss_after as i64 - rss_before as i64
    );
    assert!(settled, "fds {fds_before} -> {fds_after}");
    assert!(
        rss_after < rss_before + 64 * 1024,
        "VmRSS grew from {rss_before} to {rss_after} KiB"
    );
}

/// A container's links, addresses and routes, without the IPv6 duplicate address
/// detection state (`tentative` turns off by itself a second or so after a link comes up,
/// which is no change anybody made).
fn net_state(d: &Daemon, name: &str) -> String {
    d.exec_ok(name, "ip -o link; ip -o addr; ip route")
        .replace(" tentative", "")
}
