//! Overlay networks across hosts on the multi-host harness (two L2 segments joined by
//! a router, 198.18.0.0/15 underlay, 10.x overlays): the seed's walkthrough with the
//! real docker CLI and with netloom's CLI (swarm init and join, Docker's refusals on a
//! non-swarm daemon and a worker, `network create -d overlay --attachable`, the network
//! absent on the worker until a container there uses it and gone after it leaves,
//! inspect with the subnet and both containers, ping by address and by name across
//! the router); a restarted node keeps its reachability; a Down node's endpoints
//! leave the other nodes and come back with it.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use netloom_e2e::multihost::{self, Cluster, Host};
use netloom_e2e::{Out, run_cmd, wait_for};

const NOT_SWARM: &str = "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";
const ON_WORKER: &str = "Cannot create a multi-host network from a worker node. Please create the network from a manager node.";

fn docker_bin() -> Option<PathBuf> {
    let fixed = PathBuf::from("/usr/local/bin/docker");
    fixed.is_file().then_some(fixed)
}

/// A CLI against one host: the real docker CLI or netloom's.
#[derive(Clone, Copy)]
enum Cli<'a> {
    Docker(&'a PathBuf),
    Netloom,
}

fn cli(c: Cli<'_>, h: &Host, args: &[&str]) -> Out {
    match c {
        Cli::Netloom => h.daemon.cli(args),
        Cli::Docker(bin) => {
            let config = h.daemon.dir.join("docker-config");
            let _ = std::fs::create_dir_all(&config);
            let mut cmd = Command::new(bin);
            cmd.args(args)
                .env("DOCKER_HOST", h.daemon.host_arg())
                .env("DOCKER_CONFIG", &config)
                .env("DOCKER_CLI_HINTS", "false")
                .env_remove("DOCKER_CONTEXT")
                .env_remove("DOCKER_API_VERSION");
            run_cmd(cmd, Duration::from_secs(60))
        }
    }
}

#[track_caller]
fn ok(c: Cli<'_>, h: &Host, args: &[&str]) -> String {
    let o = cli(c, h, args);
    assert!(o.ok(), "{args:?} failed: {o}");
    o.stdout
}

/// `network ls` names with their scope.
fn nets(c: Cli<'_>, h: &Host) -> Vec<(String, String)> {
    ok(c, h, &["network", "ls", "--format", "{{.Name}} {{.Scope}}"])
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn has_net(c: Cli<'_>, h: &Host, name: &str) -> bool {
    nets(c, h).iter().any(|(n, _)| n == name)
}

fn pings(h: &Host, from: &str, to: &str) -> bool {
    h.daemon.exec(from, &format!("ping -c 1 -W 1 {to}")).ok()
}

/// Forms a swarm of node1 (manager) and node2 (worker), checking Docker's refusal of
/// an overlay network on node2 before it joins and once it is a worker.
fn form_swarm(c: Cli<'_>, m: &Host, w: &Host) {
    let tar = netloom_e2e::busybox_tar();
    for h in [m, w] {
        h.daemon.ok(&[
            "image",
            "import",
            tar.to_str().unwrap_or_default(),
            "busybox",
        ]);
    }
    let o = cli(c, w, &["network", "create", "-d", "overlay", "early"]);
    assert!(!o.ok() && o.stderr.contains(NOT_SWARM), "{o}");
    ok(c, m, &["swarm", "init", "--advertise-addr", "198.18.1.11"]);
    let tok = ok(c, m, &["swarm", "join-token", "-q", "worker"]);
    ok(
        c,
        w,
        &["swarm", "join", "--token", tok.trim(), "198.18.1.11:2377"],
    );
    let o = cli(c, w, &["network", "create", "-d", "overlay", "early"]);
    assert!(!o.ok() && o.stderr.contains(ON_WORKER), "{o}");
}

/// The walkthrough after the swarm is formed; returns the addresses of c1 and c2.
fn walkthrough(c: Cli<'_>, m: &Host, w: &Host) -> (String, String) {
    // A pool that does not hold together is refused as for a local network, and
    // nothing is made.
    let o = cli(
        c,
        m,
        &[
            "network",
            "create",
            "-d",
            "overlay",
            "--subnet",
            "10.9.0.0/24",
            "--gateway",
            "10.9.0.0",
            "bad-pool",
        ],
    );
    assert!(
        !o.ok()
            && o.stderr
                .contains("it is the network or broadcast address of subnet 10.9.0.0/24"),
        "{o}"
    );
    assert!(!has_net(c, m, "bad-pool"), "{:?}", nets(c, m));
    ok(
        c,
        m,
        &[
            "network",
            "create",
            "-d",
            "overlay",
            "--attachable",
            "uber-net",
        ],
    );
    assert!(
        nets(c, m).contains(&("uber-net".into(), "swarm".into())),
        "{:?}",
        nets(c, m)
    );
    // Lazy extension: nothing on the worker until a container there uses it.
    assert!(!has_net(c, w, "uber-net"), "{:?}", nets(c, w));
    ok(
        c,
        m,
        &[
            "run",
            "-d",
            "--name",
            "c1",
            "--network",
            "uber-net",
            "busybox",
            "sleep",
            "100000",
        ],
    );
    ok(
        c,
        w,
        &[
            "run",
            "-d",
            "--name",
            "c2",
            "--network",
            "uber-net",
            "busybox",
            "sleep",
            "100000",
        ],
    );
    assert!(has_net(c, w, "uber-net"), "{:?}", nets(c, w));
    let ip1 = m.daemon.ip("c1", "uber-net");
    let ip2 = w.daemon.ip("c2", "uber-net");
    assert!(
        ip1.starts_with("10.0.0.") && ip2.starts_with("10.0.0."),
        "{ip1} {ip2}"
    );
    assert_ne!(ip1, ip2, "two nodes handed out one address");
    // Inspect on the manager: the subnet and both containers.
    let mut inspect = String::new();
    assert!(
        wait_for(Duration::from_secs(10), || {
            inspect = ok(c, m, &["network", "inspect", "uber-net"]);
            inspect.contains("\"c2\"")
        }),
        "{inspect}"
    );
    assert!(
        inspect.contains("10.0.0.0/24") && inspect.contains("\"c1\""),
        "{inspect}"
    );
    // Across the router, by address and by name.
    assert!(
        wait_for(Duration::from_secs(10), || pings(m, "c1", &ip2)),
        "c1 cannot reach c2 at {ip2}"
    );
    assert!(pings(w, "c2", &ip1), "c2 cannot reach c1 at {ip1}");
    assert!(
        wait_for(Duration::from_secs(10), || pings(m, "c1", "c2")),
        "c1 cannot reach c2 by name: {}",
        m.daemon.exec("c1", "nslookup c2 127.0.0.11")
    );
    assert!(pings(w, "c2", "c1.uber-net"), "c2 cannot reach c1 by name");
    // One L2 hop across the router, and the MTU left by VXLAN on a 1500 underlay.
    let tr = m
        .daemon
        .exec("c1", &format!("traceroute -n -m 5 -w 1 -q 1 {ip2}"));
    let hops: Vec<&str> = tr
        .stdout
        .lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    assert_eq!(hops.len(), 1, "{tr}");
    assert!(hops[0].contains(&ip2), "{tr}");
    let mtu = m.daemon.exec_ok("c1", "cat /sys/class/net/eth0/mtu");
    assert_eq!(mtu.trim(), "1450");
    (ip1, ip2)
}

#[test]
fn docker_cli_overlay_walkthrough() {
    let Some(bin) = docker_bin() else {
        eprintln!("SKIP: no docker CLI at /usr/local/bin/docker");
        return;
    };
    let Some(c) = multihost::cluster(2, &[]) else {
        return;
    };
    let d = Cli::Docker(&bin);
    let (m, w) = (c.host(1), c.host(2));
    form_swarm(d, m, w);
    walkthrough(d, m, w);
    // Not attachable: standalone containers are refused, on the manager too.
    ok(d, m, &["network", "create", "-d", "overlay", "svc-only"]);
    let o = cli(
        d,
        m,
        &[
            "run",
            "-d",
            "--name",
            "c3",
            "--network",
            "svc-only",
            "busybox",
            "true",
        ],
    );
    assert!(
        !o.ok()
            && o.stderr
                .contains("network svc-only not manually attachable"),
        "{o}"
    );
    // Two overlays are isolated from each other (addresses and names).
    ok(
        d,
        m,
        &[
            "network",
            "create",
            "-d",
            "overlay",
            "--attachable",
            "other-net",
        ],
    );
    ok(
        d,
        w,
        &[
            "run",
            "-d",
            "--name",
            "c4",
            "--network",
            "other-net",
            "busybox",
            "sleep",
            "100000",
        ],
    );
    let ip4 = w.daemon.ip("c4", "other-net");
    assert!(
        ip4.starts_with("10.0.") && !ip4.starts_with("10.0.0."),
        "{ip4}"
    );
    assert!(!pings(m, "c1", &ip4), "uber-net reached other-net's {ip4}");
    assert!(
        !m.daemon
            .exec("c1", "nslookup c4 127.0.0.11")
            .stdout
            .contains(&ip4)
    );
    ok(d, w, &["rm", "-f", "c4"]);
    ok(d, m, &["network", "rm", "other-net"]);
    // The worker's copy goes with its last container.
    ok(d, w, &["rm", "-f", "c2"]);
    assert!(
        wait_for(Duration::from_secs(15), || !has_net(d, w, "uber-net")),
        "{:?}",
        nets(d, w)
    );
    // Its sandbox and VXLAN device go with it, right then.
    let left = w.overlay_leftovers(&[]);
    assert!(
        left.is_empty(),
        "the worker's overlay state stayed: {left:#?}\n{}",
        w.daemon.log()
    );
    // network connect extends the network again (a container on a worker's bridge).
    ok(
        d,
        w,
        &["run", "-d", "--name", "c5", "busybox", "sleep", "100000"],
    );
    ok(d, w, &["network", "connect", "uber-net", "c5"]);
    let ip1 = m.daemon.ip("c1", "uber-net");
    assert!(
        wait_for(Duration::from_secs(10), || pings(w, "c5", &ip1)),
        "c5 cannot reach c1 after network connect"
    );
    ok(d, w, &["rm", "-f", "c5"]);
    assert!(
        wait_for(Duration::from_secs(15), || !has_net(d, w, "uber-net")),
        "{:?}",
        nets(d, w)
    );
    ok(d, m, &["rm", "-f", "c1"]);
    ok(d, m, &["network", "rm", "uber-net", "svc-only"]);
    assert!(!has_net(d, m, "uber-net"));
    // Nothing of the overlay is left on either node.
    for h in [m, w] {
        let left = h.overlay_leftovers(&[]);
        assert!(left.is_empty(), "overlay state left: {left:#?}");
        let dir = h.daemon.dir.join("exec/overlay");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .map(|r| r.filter_map(Result::ok).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "overlay sandboxes left: {left:?}");
    }
    let prefix = c.prefix.clone();
    drop(c);
    assert!(
        Cluster::namespaces_left(&prefix).is_empty(),
        "{:?}",
        Cluster::namespaces_left(&prefix)
    );
}

/// The sandbox's permanent neighbour entries on `h` for network `net`.
fn neighbours(h: &Host, net_id: &str) -> String {
    let path = h
        .daemon
        .dir
        .join("exec/overlay")
        .join(format!("ov-{}", &net_id[..12]));
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", path.display()))
        .args(["ip", "neigh", "show", "nud", "permanent"]);
    run_cmd(cmd, Duration::from_secs(10)).stdout
}

#[test]
fn netloom_cli_overlay_restart_and_down_node() {
    let Some(mut c) = multihost::cluster(2, &[]) else {
        return;
    };
    let n = Cli::Netloom;
    form_swarm(n, c.host(1), c.host(2));
    let (ip1, ip2) = walkthrough(n, c.host(1), c.host(2));
    let id = ok(
        n,
        c.host(1),
        &["network", "inspect", "-f", "{{.Id}}", "uber-net"],
    );
    let id = id.trim().to_string();
    assert!(
        neighbours(c.host(1), &id).contains(&ip2),
        "{}",
        neighbours(c.host(1), &id)
    );

    // A restart (SIGTERM) of the worker's daemon keeps reachability both ways.
    c.host_mut(2).daemon.stop();
    c.restart(2);
    assert!(
        wait_for(Duration::from_secs(15), || pings(c.host(2), "c2", &ip1)),
        "c2 lost c1 after its node restarted"
    );
    assert!(
        pings(c.host(1), "c1", &ip2),
        "c1 lost c2 after node2 restarted"
    );
    assert!(
        pings(c.host(1), "c1", "c2"),
        "c1 lost c2's name after node2 restarted"
    );

    // Node2 killed: once it is Down its endpoint leaves node1 (peer entry and inspect).
    c.crash(2);
    assert!(
        wait_for(Duration::from_secs(20), || !neighbours(c.host(1), &id)
            .contains(&ip2)),
        "node2's endpoint stayed on node1: {}",
        neighbours(c.host(1), &id)
    );
    let inspect = ok(n, c.host(1), &["network", "inspect", "uber-net"]);
    assert!(!inspect.contains("\"c2\""), "{inspect}");
    // Back: its endpoint returns and the containers talk again.
    c.restart(2);
    assert!(
        wait_for(Duration::from_secs(20), || pings(c.host(1), "c1", &ip2)),
        "c1 cannot reach c2 after node2 came back"
    );
    assert!(neighbours(c.host(1), &id).contains(&ip2));

    // A partition between the underlays: node2 goes Down for node1 and its endpoint
    // with it; after the heal everything converges without a restart.
    c.partition(2);
    assert!(
        wait_for(Duration::from_secs(30), || !neighbours(c.host(1), &id)
            .contains(&ip2)),
        "node2's endpoint stayed on node1 during the partition"
    );
    c.heal(2);
    assert!(
        wait_for(Duration::from_secs(30), || pings(c.host(1), "c1", &ip2)
            && pings(c.host(2), "c2", &ip1)),
        "no convergence after the heal"
    );

    // c2 dies while its node's daemon is down: after the restart its endpoint leaves
    // node1 (the record is withdrawn, not only filtered).
    let pid = c
        .host(2)
        .daemon
        .ok(&["inspect", "-f", "{{.State.Pid}}", "c2"]);
    c.crash(2);
    let o = netloom_e2e::sh("kill", &["-9", pid.trim()]);
    assert!(o.ok(), "{o}");
    c.restart(2);
    assert!(
        wait_for(Duration::from_secs(30), || {
            !neighbours(c.host(1), &id).contains(&ip2)
                && !ok(n, c.host(1), &["network", "inspect", "uber-net"]).contains("\"c2\"")
        }),
        "c2's endpoint stayed on node1 after it died: {}",
        neighbours(c.host(1), &id)
    );
}
