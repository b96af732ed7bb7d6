//! At the limit: when a kernel or pool limit is hit, the user gets an error that names
//! the limit and the fix (Docker's words where Docker has them), the request leaves
//! nothing behind (the whole observable state — store, links, nftables — is what it was
//! before it), and the daemon goes on serving: once the cause is gone, the same request
//! works.
//!
//! The limits are reached for real, cheaply:
//! - a bridge's 1,023 ports: the test fills the network's bridge with veths of its own
//!   (`ip -batch`, about a second) instead of starting a thousand containers;
//! - a subnet: `--subnet` /29 (5 addresses for containers);
//! - the default pools: `default-address-pools` of one /24 cut into four /26;
//! - the kernel refusing an interface: a macvlan parent that is a bridge port (EBUSY);
//! - descriptors: netloomd started with a low hard `RLIMIT_NOFILE`.

use std::time::Duration;

use netloom_e2e::{Daemon, daemon_or_skip, wait_for};

/// `ip` in the daemon's namespace, which must succeed.
#[track_caller]
fn ip_ok(d: &Daemon, args: &[&str]) {
    let mut a = vec!["ip"];
    a.extend_from_slice(args);
    let o = d.netns(&a);
    assert!(o.ok(), "ip {args:?}: {o}");
}

/// `start` of a created container fails with a message holding every one of `want`, and
/// the daemon's whole state is the same afterwards.
#[track_caller]
fn start_fails_cleanly(d: &Daemon, name: &str, want: &[&str]) -> String {
    let before = d.state_dump();
    let o = d.fail(&["start", name]);
    let msg = o.all();
    for w in want {
        assert!(msg.contains(w), "start {name}: {w:?} missing from: {msg}");
    }
    let after = d.state_dump();
    assert_eq!(
        before, after,
        "a failed start of {name} left something behind ({msg})"
    );
    msg
}

#[test]
fn bridge_port_cap_is_a_clear_error_and_leaves_nothing() {
    let d = daemon_or_skip!();
    d.ok(&["network", "create", "--subnet", "10.151.0.0/21", "full"]);
    let id = d.ok(&["network", "inspect", "-f", "{{.Id}}", "full"]);
    let br = format!("br-{}", &id[..12]);
    d.run_sleeper("c1", &["--network", "full"]);
    // Fill the bridge: veth pairs of the test's own, one end a port, until the kernel
    // says no (`-force` goes on after the first refusal).
    let batch = d.dir.join("fill.batch");
    let mut s = String::new();
    for i in 0..1030 {
        s.push_str(&format!(
            "link add tfill{i} type veth peer name tfillp{i}\nlink set tfill{i} master {br}\n"
        ));
    }
    std::fs::write(&batch, s).expect("write batch");
    let _ = d.netns(&["ip", "-force", "-batch", batch.to_str().unwrap()]);
    let ports = d.netns(&["ip", "-o", "link", "show", "master", &br]);
    assert_eq!(
        ports.stdout.lines().count(),
        1023,
        "the kernel takes 1,023 ports per bridge: {}",
        ports.stderr
    );
    let batch = d.dir.join("unfill.batch");
    let mut s = String::new();
    for i in 1021..1030 {
        s.push_str(&format!("link del tfill{i}\n"));
    }
    std::fs::write(&batch, s).expect("write batch");
    let _ = d.netns(&["ip", "-force", "-batch", batch.to_str().unwrap()]);
    // One port is free again (tfill1021 went too): c2 takes the last one.
    d.run_sleeper("c2", &["--network", "full"]);
    d.ok(&[
        "create",
        "--name",
        "over",
        "--network",
        "full",
        "busybox",
        "sleep",
        "100000",
    ]);
    start_fails_cleanly(
        &d,
        "over",
        &[&br, "no free port", "1023", "another network"],
    );
    // The daemon goes on: with a port freed, the same container starts and is reachable.
    ip_ok(&d, &["link", "del", "tfill0"]);
    d.ok(&["start", "over"]);
    let ip = d.ip("over", "full");
    assert!(ip.starts_with("10.151."), "over got {ip:?}");
    d.exec_ok("c1", &format!("ping -c 1 -W 2 {ip}"));
}

#[test]
fn subnet_exhausted_is_dockers_error_and_leaves_nothing() {
    let d = daemon_or_skip!();
    d.ok(&["network", "create", "--subnet", "10.152.0.0/29", "tiny"]);
    // .1 is the gateway, .0 and .7 are taken: five containers fit.
    for i in 1..=5 {
        d.run_sleeper(&format!("t{i}"), &["--network", "tiny"]);
    }
    d.ok(&[
        "create",
        "--name",
        "t6",
        "--network",
        "tiny",
        "busybox",
        "sleep",
        "100000",
    ]);
    start_fails_cleanly(
        &d,
        "t6",
        &[
            "no available IPv4 addresses on this network's address pools",
            "10.152.0.0/29",
            "larger --subnet",
        ],
    );
    // A run -d says the same and leaves a created container only, as Docker does.
    let o = d.fail(&[
        "run",
        "-d",
        "--name",
        "t7",
        "--network",
        "tiny",
        "busybox",
        "true",
    ]);
    assert!(o.all().contains("no available IPv4 addresses"), "{o}");
    d.ok(&["rm", "t7"]);
    // The daemon goes on: an address freed, the container starts with it.
    let freed = d.ip("t3", "tiny");
    d.ok(&["rm", "-f", "t3"]);
    d.ok(&["start", "t6"]);
    assert_eq!(d.ip("t6", "tiny"), freed);
}

#[test]
fn default_pools_exhausted_is_dockers_error_and_leaves_nothing() {
    let mut d = daemon_or_skip!();
    d.stop();
    std::fs::write(
        d.dir.join("none.json"),
        r#"{"default-address-pools": [{"base": "10.153.0.0/24", "size": 26}]}"#,
    )
    .expect("write daemon.json");
    d.start();
    let mut made = Vec::new();
    let err = loop {
        let name = format!("p{}", made.len());
        let o = d.cli(&["network", "create", &name]);
        if !o.ok() {
            break o;
        }
        made.push(name);
        assert!(made.len() <= 4, "more networks than 10.153.0.0/24 has /26s");
    };
    assert!(!made.is_empty(), "no network from the pool at all: {err}");
    let before = d.state_dump();
    let o = d.fail(&["network", "create", "one-too-many"]);
    let msg = o.all();
    for w in [
        "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network",
        "--subnet",
        "default-address-pools",
    ] {
        assert!(msg.contains(w), "{w:?} missing from: {msg}");
    }
    assert_eq!(
        before,
        d.state_dump(),
        "a refused network create left something"
    );
    // The daemon goes on: a network removed, its pool is free again.
    d.ok(&["network", "rm", &made[0]]);
    d.ok(&["network", "create", "one-too-many"]);
    d.run_sleeper("pc", &["--network", "one-too-many"]);
    assert!(d.ip("pc", "one-too-many").starts_with("10.153.0."));
}

#[test]
fn kernel_refusing_an_interface_is_a_clear_error_and_leaves_nothing() {
    let d = daemon_or_skip!();
    // A host bridge with a port, and that port asked to be a macvlan parent: the kernel
    // gives an interface's receive path to one user only (EBUSY).
    ip_ok(&d, &["link", "add", "tbr", "type", "bridge"]);
    ip_ok(
        &d,
        &[
            "link", "add", "tpar", "type", "veth", "peer", "name", "tpar2",
        ],
    );
    ip_ok(&d, &["link", "set", "tpar", "master", "tbr"]);
    ip_ok(&d, &["link", "set", "tpar", "up"]);
    let before = d.state_dump();
    let o = d.fail(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "-o",
        "parent=tpar",
        "mv",
    ]);
    for w in ["tpar", "port of tbr", "nomaster"] {
        assert!(o.all().contains(w), "{w:?} missing from: {o}");
    }
    assert_eq!(
        before,
        d.state_dump(),
        "a refused network create left something"
    );
    // The parent free at create time, a bridge port by the time a container starts.
    ip_ok(&d, &["link", "set", "tpar", "nomaster"]);
    d.ok(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "-o",
        "parent=tpar",
        "mv",
    ]);
    ip_ok(&d, &["link", "set", "tpar", "master", "tbr"]);
    d.ok(&[
        "create",
        "--name",
        "m1",
        "--network",
        "mv",
        "busybox",
        "sleep",
        "100000",
    ]);
    start_fails_cleanly(&d, "m1", &["tpar", "port of tbr", "nomaster"]);
    // The daemon goes on: the parent freed, the container starts on it.
    ip_ok(&d, &["link", "set", "tpar", "nomaster"]);
    d.ok(&["start", "m1"]);
    assert!(!d.ip("m1", "mv").is_empty());
}

/// Starts `d` again with `RLIMIT_NOFILE` (soft, hard).
fn restart_with_nofile(d: &mut Daemon, soft: u64, hard: u64) {
    d.stop();
    d.nofile = Some((soft, hard));
    d.start();
}

#[test]
fn open_file_limit_raised_to_hard_and_containers_keep_the_original() {
    let mut d = daemon_or_skip!();
    // 96 descriptors would hold about 20 containers; the hard limit allows far more.
    restart_with_nofile(&mut d, 96, 4096);
    let pid = d.pid().expect("pid");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    let nums: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(nums, ["4096", "4096"], "{line}");
    d.ok(&["network", "create", "--subnet", "10.154.0.0/24", "many"]);
    for i in 0..30 {
        d.run_sleeper(&format!("n{i}"), &["--network", "many"]);
    }
    assert!(
        d.fds().len() > 96,
        "30 containers hold more than 96 descriptors"
    );
    // A container keeps the soft limit netloomd was started with.
    assert_eq!(d.exec_ok("n0", "ulimit -n").trim(), "96");
    let o = d.exec_ok("n0", "nslookup n29 127.0.0.11 >/dev/null && echo ok");
    assert!(o.contains("ok"), "{o}");
}

#[test]
fn out_of_descriptors_is_a_clear_error_and_the_daemon_goes_on() {
    let mut d = daemon_or_skip!();
    restart_with_nofile(&mut d, 200, 200);
    d.ok(&["network", "create", "--subnet", "10.155.0.0/24", "fds"]);
    let mut started = Vec::new();
    let refused = loop {
        let name = format!("f{}", started.len());
        d.ok(&[
            "create",
            "--name",
            &name,
            "--network",
            "fds",
            "busybox",
            "sleep",
            "100000",
        ]);
        let o = d.cli(&["start", &name]);
        if !o.ok() {
            break name;
        }
        started.push(name);
        assert!(
            started.len() < 100,
            "200 descriptors cannot hold 100 containers"
        );
    };
    assert!(started.len() >= 10, "only {} containers fit", started.len());
    let msg = start_fails_cleanly(
        &d,
        &refused,
        &["open-file limit", "LimitNOFILE", "remove containers"],
    );
    println!(
        "FIGURE nofile 200: {} containers, then: {msg}",
        started.len()
    );
    // Every container that started is running, tracked and served by the DNS.
    let running = d.ok(&["ps", "-q"]).lines().count();
    assert_eq!(running, started.len(), "{}", d.ok(&["ps", "-a"]));
    let last = started.last().expect("one started");
    let o = d.exec_ok(
        &started[0],
        &format!("nslookup {last} 127.0.0.11 >/dev/null && echo ok"),
    );
    assert!(o.contains("ok"), "{o}");
    // The daemon goes on serving, and with containers removed the refused one starts.
    let o = d.cli_t(
        &["rm", "-f", &started[0], &started[1]],
        Duration::from_secs(30),
    );
    assert!(o.ok(), "{o}");
    // The removed containers' descriptors (DNS sockets, pidfds) close as their tasks
    // end, a moment after `rm` answers.
    assert!(
        wait_for(Duration::from_secs(5), || d.cli(&["start", &refused]).ok()),
        "{refused} does not start after two containers were removed"
    );
    let o = d.exec_ok(
        &refused,
        &format!("nslookup {last} 127.0.0.11 >/dev/null && echo ok"),
    );
    assert!(o.contains("ok"), "{o}");
}
