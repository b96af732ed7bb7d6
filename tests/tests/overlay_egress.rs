//! The overlay data plane beyond one L2 network, on the multi-host harness (two L2
//! segments joined by a router, 198.18.0.0/15 underlay, 10.x overlays), with netloom's
//! CLI: egress through the gateway bridge (`docker_gwbridge`, masqueraded: a peer on
//! the underlay sees the node's address; it survives a restart), an `--internal`
//! overlay (no default route, nothing but VXLAN on the underlay), several subnets
//! routed across nodes, the MTU derived from the underlay, isolation and DNS scope
//! between overlays and a bridge, and the data-path port kept across a restart.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use netloom_e2e::multihost::{self, Cluster, Host, Netns};
use netloom_e2e::{run_cmd, wait_for};

/// The underlay peer's address (on segment 1).
const PEER: &str = "198.18.1.50";

/// Imports busybox on every host, makes node1 the manager (with `init_args`) and the
/// others workers.
fn form_swarm(c: &Cluster, init_args: &[&str]) {
    let tar = netloom_e2e::busybox_tar();
    for h in &c.hosts {
        h.daemon.ok(&[
            "image",
            "import",
            tar.to_str().unwrap_or_default(),
            "busybox",
        ]);
    }
    let mut init = vec!["swarm", "init", "--advertise-addr", "198.18.1.11"];
    init.extend_from_slice(init_args);
    c.host(1).daemon.ok(&init);
    let tok = c
        .host(1)
        .daemon
        .ok(&["swarm", "join-token", "-q", "worker"]);
    for h in &c.hosts[1..] {
        h.daemon
            .ok(&["swarm", "join", "--token", tok.trim(), "198.18.1.11:2377"]);
    }
}

fn pings(h: &Host, from: &str, to: &str) -> bool {
    h.daemon.exec(from, &format!("ping -c 1 -W 1 {to}")).ok()
}

/// A DNS server answering NXDOMAIN to every query, on UDP port 53 of `argv[1]`.
const NXDOMAIN_PY: &str = r#"
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
while True:
    data, peer = s.recvfrom(65535)
    if len(data) < 12:
        continue
    qid, flags = struct.unpack('>HH', data[:4])
    if flags & 0x8000:
        continue
    hdr = struct.pack('>HHHHHH', qid, 0x8183 | (flags & 0x0100), 1, 0, 0, 0)
    s.sendto(hdr + data[12:], peer)
"#;

/// Runs a command inside the overlay sandbox of network `net` on host `h`.
fn in_sandbox(h: &Host, net: &str, args: &[&str]) -> String {
    let id = h.daemon.ok(&["network", "inspect", "-f", "{{.Id}}", net]);
    in_sandbox_of(h, &id, args)
}

/// Runs a command inside the overlay sandbox of the network with ID `id` on host `h`
/// (also while its daemon is down).
fn in_sandbox_of(h: &Host, id: &str, args: &[&str]) -> String {
    let path = h
        .daemon
        .dir
        .join("exec/overlay")
        .join(format!("ov-{}", &id[..12]));
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", path.display())).args(args);
    run_cmd(cmd, Duration::from_secs(10)).stdout
}

/// A busybox `nc` listener on the underlay peer, answering "hello"; killed on drop.
struct Listener(Child);

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A namespace on segment 1 at [`PEER`] (routed to segment 2 through the router)
/// running a TCP listener on port 8080, with nftables counters of what reaches it:
/// `node` (from node1's or node2's underlay address) and `inner` (from a container
/// address, i.e. not masqueraded).
fn underlay_peer(c: &Cluster) -> (Netns, Listener) {
    let peer = Netns::new(format!("{}-p", c.prefix));
    c.segments[0].ip(&[
        "link", "add", "p50", "type", "veth", "peer", "name", "eth0", "netns", &peer.name,
    ]);
    c.segments[0].ip(&["link", "set", "p50", "master", "br0", "up"]);
    peer.ip(&["addr", "add", &format!("{PEER}/24"), "dev", "eth0"]);
    peer.ip(&["link", "set", "eth0", "up"]);
    peer.ip(&["route", "add", "default", "via", "198.18.1.1"]);
    let rules = "table inet nltest {
        counter node {}
        counter inner {}
        chain input {
            type filter hook input priority 0;
            tcp dport 8080 ip saddr { 198.18.1.11, 198.18.2.12 } counter name node
            tcp dport 8080 ip saddr { 10.0.0.0/8, 172.16.0.0/12 } counter name inner
        }
    }";
    nft(&peer, rules);
    let child = Command::new("ip")
        .args([
            "netns", "exec", &peer.name, "busybox", "nc", "-ll", "-p", "8080",
        ])
        .args(["-e", "echo", "hello"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn nc listener: {e}"));
    (peer, Listener(child))
}

/// Loads an nftables ruleset into namespace `ns`.
fn nft(ns: &Netns, rules: &str) {
    let file = std::env::temp_dir().join(format!("{}.nft", ns.name));
    std::fs::write(&file, rules).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
    let o = ns.exec(&["nft", "-f", file.to_str().unwrap_or_default()]);
    let _ = std::fs::remove_file(&file);
    assert!(o.ok(), "nft: {o}");
}

/// The packets counted by nftables counter `name` of table `family nltest` in `ns`.
fn counter(ns: &Netns, family: &str, name: &str) -> u64 {
    let o = ns.exec(&["nft", "list", "counter", family, "nltest", name]);
    assert!(o.ok(), "nft list counter {name}: {o}");
    o.stdout
        .split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no packet count in {o}"))
}

/// The addresses of the containers' legs on the node's gateway bridge.
fn gateway_legs(h: &Host) -> Vec<String> {
    let js = h.daemon.ok(&[
        "network",
        "inspect",
        "-f",
        "{{json .Containers}}",
        "docker_gwbridge",
    ]);
    let v: serde_json::Value = serde_json::from_str(&js).unwrap_or_else(|e| panic!("{e}: {js}"));
    v.as_object()
        .map(|m| {
            m.values()
                .filter_map(|c| c["IPv4Address"].as_str())
                .filter_map(|a| a.split('/').next())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The container's `ip route` (its routing table).
fn routes(h: &Host, ctr: &str) -> String {
    h.daemon.exec_ok(ctr, "ip route")
}

#[test]
fn egress_through_the_gateway_bridge_is_masqueraded_and_survives_a_restart() {
    let Some(mut c) = multihost::cluster(2, &[]) else {
        return;
    };
    form_swarm(&c, &[]);
    let (peer, _listener) = underlay_peer(&c);
    c.host(1).daemon.ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--attachable",
        "--subnet",
        "10.31.0.0/24",
        "egress-net",
    ]);
    c.host(1)
        .daemon
        .run_sleeper("e1", &["--network", "egress-net"]);
    c.host(2)
        .daemon
        .run_sleeper("e2", &["--network", "egress-net"]);
    // The gateway bridge: a local bridge network from the local pools, listed as
    // Docker lists it; the container's default route is there, not on the overlay.
    let ls = c.host(1).daemon.ok(&[
        "network",
        "ls",
        "--format",
        "{{.Name}} {{.Driver}} {{.Scope}}",
    ]);
    assert!(ls.contains("docker_gwbridge bridge local"), "{ls}");
    let cfg = c.host(1).daemon.ok(&[
        "network",
        "inspect",
        "-f",
        "{{json .IPAM.Config}}",
        "docker_gwbridge",
    ]);
    let cfg: serde_json::Value =
        serde_json::from_str(&cfg).unwrap_or_else(|e| panic!("{e}: {cfg}"));
    assert_eq!(
        cfg[0]["Subnet"], "172.18.0.0/16",
        "gateway bridge pool: {cfg}"
    );
    let r = routes(c.host(1), "e1");
    assert!(
        r.lines()
            .any(|l| l.starts_with("default via 172.18.0.1 dev eth1")),
        "{r}"
    );
    assert!(r.contains("10.31.0.0/24 dev eth0"), "{r}");
    let insp = c
        .host(1)
        .daemon
        .ok(&["inspect", "-f", "{{json .NetworkSettings.Networks}}", "e1"]);
    assert!(!insp.contains("docker_gwbridge"), "{insp}");
    let e1 = c.host(1).daemon.ok(&["inspect", "-f", "{{.Id}}", "e1"]);
    let gw = c.host(1).daemon.ok(&[
        "network",
        "inspect",
        "-f",
        "{{json .Containers}}",
        "docker_gwbridge",
    ]);
    assert!(
        gw.contains(&format!("\"gateway_{}\"", &e1[..12])),
        "the leg is not named as Docker names it: {gw}"
    );
    // A peer on the underlay answers both nodes' containers and sees the nodes'
    // addresses, never a container's.
    for (i, ctr) in [(1, "e1"), (2, "e2")] {
        let out = c
            .host(i)
            .daemon
            .exec(ctr, &format!("nc -w 3 {PEER} 8080 </dev/null"));
        assert!(out.stdout.contains("hello"), "{ctr} got no answer: {out}");
    }
    assert!(
        counter(&peer, "inet", "node") >= 2,
        "no connection from the nodes"
    );
    assert_eq!(
        counter(&peer, "inet", "inner"),
        0,
        "a container address leaked"
    );
    // Egress and the overlay together: e1 still reaches e2 across the router.
    let ip2 = c.host(2).daemon.ip("e2", "egress-net");
    assert!(
        wait_for(Duration::from_secs(10), || pings(c.host(1), "e1", &ip2)),
        "e1 cannot reach e2"
    );

    // A restart keeps the one gateway bridge and the container's egress.
    c.host_mut(1).daemon.stop();
    c.restart(1);
    let ls = c
        .host(1)
        .daemon
        .ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert_eq!(
        ls.lines().filter(|l| *l == "docker_gwbridge").count(),
        1,
        "{ls}"
    );
    assert!(
        wait_for(Duration::from_secs(10), || c
            .host(1)
            .daemon
            .exec("e1", &format!("nc -w 3 {PEER} 8080 </dev/null"))
            .stdout
            .contains("hello")),
        "e1 lost its egress after the restart: {}",
        routes(c.host(1), "e1")
    );
    // A published port of an overlay container is reached through the gateway bridge.
    c.host(1).daemon.ok(&[
        "run",
        "-d",
        "--name",
        "e4",
        "--network",
        "egress-net",
        "-p",
        "18080:8080",
        "busybox",
        "nc",
        "-ll",
        "-p",
        "8080",
        "-e",
        "echo",
        "published",
    ]);
    assert!(
        wait_for(Duration::from_secs(10), || peer
            .exec(&["busybox", "nc", "-w", "3", "198.18.1.11", "18080"])
            .stdout
            .contains("published")),
        "the underlay peer cannot reach e4's published port"
    );
    c.host(1).daemon.ok(&["rm", "-f", "e4"]);
    // A new container after the restart uses the same bridge.
    c.host(1)
        .daemon
        .run_sleeper("e3", &["--network", "egress-net"]);
    let r = routes(c.host(1), "e3");
    assert!(r.contains("default via 172.18.0.1 dev eth1"), "{r}");
    // Its leg goes with the container.
    c.host(1).daemon.ok(&["rm", "-f", "e3"]);
    let legs = gateway_legs(c.host(1));
    assert_eq!(legs.len(), 1, "{legs:?}");
}

#[test]
fn internal_overlay_has_no_egress_and_only_vxlan_leaves_the_node() {
    let Some(c) = multihost::cluster(2, &[]) else {
        return;
    };
    form_swarm(&c, &[]);
    let (peer, _listener) = underlay_peer(&c);
    // What node1 puts on its segment: VXLAN, and anything for the peer or from a
    // container address.
    let rules = "table bridge nltest {
        counter vxlan {}
        counter other {}
        chain counting {
            type filter hook forward priority 0;
            iifname \"h1\" udp dport 4789 counter name vxlan
            iifname \"h1\" udp dport != 4789 ip daddr 198.18.1.50 counter name other
            iifname \"h1\" ip protocol != udp ip daddr 198.18.1.50 counter name other
            iifname \"h1\" ip saddr { 10.0.0.0/8, 172.16.0.0/12 } counter name other
        }
    }";
    nft(&c.segments[0], rules);
    c.host(1).daemon.ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--attachable",
        "--internal",
        "--subnet",
        "10.32.0.0/24",
        "int-net",
    ]);
    c.host(1)
        .daemon
        .run_sleeper("i1", &["--network", "int-net"]);
    c.host(2)
        .daemon
        .run_sleeper("i2", &["--network", "int-net"]);
    let r = routes(c.host(1), "i1");
    assert!(!r.contains("default"), "{r}");
    let links = c.host(1).daemon.exec_ok("i1", "ls /sys/class/net");
    assert!(!links.contains("eth1"), "{links}");
    // No egress: nothing answers, nothing reaches the underlay.
    let out = c
        .host(1)
        .daemon
        .exec("i1", &format!("nc -w 2 {PEER} 8080 </dev/null"));
    assert!(!out.stdout.contains("hello"), "{out}");
    assert!(!pings(c.host(1), "i1", PEER));
    // The overlay itself works, as VXLAN.
    let ip2 = c.host(2).daemon.ip("i2", "int-net");
    assert!(
        wait_for(Duration::from_secs(10), || pings(c.host(1), "i1", &ip2)),
        "i1 cannot reach i2"
    );
    assert!(
        counter(&c.segments[0], "bridge", "vxlan") > 0,
        "no VXLAN seen"
    );
    assert_eq!(
        counter(&c.segments[0], "bridge", "other"),
        0,
        "the internal container's traffic left the node outside VXLAN"
    );
    assert_eq!(
        counter(&peer, "inet", "node") + counter(&peer, "inet", "inner"),
        0
    );
    // The gateway bridge is not made for an internal overlay.
    let ls = c
        .host(1)
        .daemon
        .ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!ls.contains("docker_gwbridge"), "{ls}");

    // Connected to a non-internal overlay as well, the container gets its leg (and
    // egress); disconnected again, it loses both.
    c.host(1).daemon.ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--attachable",
        "--subnet",
        "10.32.1.0/24",
        "pub-net",
    ]);
    c.host(1)
        .daemon
        .ok(&["network", "connect", "pub-net", "i1"]);
    let r = routes(c.host(1), "i1");
    assert!(r.contains("default via 172.18.0.1"), "{r}");
    assert_eq!(gateway_legs(c.host(1)).len(), 1);
    let out = c
        .host(1)
        .daemon
        .exec("i1", &format!("nc -w 3 {PEER} 8080 </dev/null"));
    assert!(
        out.stdout.contains("hello"),
        "no egress once connected: {out}"
    );
    c.host(1)
        .daemon
        .ok(&["network", "disconnect", "pub-net", "i1"]);
    let r = routes(c.host(1), "i1");
    assert!(!r.contains("default"), "{r}");
    assert_eq!(gateway_legs(c.host(1)), Vec::<String>::new());
}

#[test]
fn several_subnets_of_one_overlay_are_routed_across_nodes() {
    let Some(c) = multihost::cluster(2, &[]) else {
        return;
    };
    form_swarm(&c, &[]);
    c.host(1).daemon.ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--attachable",
        "--subnet",
        "10.33.1.0/24",
        "--subnet",
        "10.33.2.0/24",
        "multi-net",
    ]);
    c.host(1)
        .daemon
        .run_sleeper("m1", &["--network", "multi-net", "--ip", "10.33.1.10"]);
    c.host(2)
        .daemon
        .run_sleeper("m2", &["--network", "multi-net", "--ip", "10.33.2.20"]);
    c.host(1)
        .daemon
        .run_sleeper("m3", &["--network", "multi-net", "--ip", "10.33.2.30"]);
    assert_eq!(c.host(2).daemon.ip("m2", "multi-net"), "10.33.2.20");
    // One bridge per subnet in the network's sandbox.
    let links = in_sandbox(c.host(1), "multi-net", &["ip", "-br", "addr"]);
    assert!(
        links.contains("10.33.1.1/24") && links.contains("10.33.2.1/24"),
        "{links}"
    );
    for (h, from, to) in [
        (1, "m1", "10.33.2.20"),
        (2, "m2", "10.33.1.10"),
        (1, "m1", "10.33.2.30"),
        (2, "m2", "10.33.2.30"),
    ] {
        assert!(
            wait_for(Duration::from_secs(10), || pings(c.host(h), from, to)),
            "{from} cannot reach {to}: {}",
            routes(c.host(h), from)
        );
    }
    assert!(
        wait_for(Duration::from_secs(10), || pings(c.host(1), "m1", "m2")),
        "m1 cannot reach m2 by name"
    );
}

#[test]
fn overlay_mtu_is_the_underlay_s_minus_vxlan_unless_given() {
    let Some(c) = multihost::cluster(2, &[]) else {
        return;
    };
    form_swarm(&c, &[]);
    let n1 = c.host(1).daemon.name.clone();
    let o = netloom_e2e::sh("ip", &["-n", &n1, "link", "set", "eth0", "mtu", "1400"]);
    assert!(o.ok(), "{o}");
    c.segments[0].ip(&["link", "set", "h1", "mtu", "1400"]);
    for (name, sub, opt) in [
        ("mtu-derived", "10.35.1.0/24", None),
        (
            "mtu-given",
            "10.35.2.0/24",
            Some("com.docker.network.driver.mtu=1300"),
        ),
    ] {
        let mut args = vec![
            "network",
            "create",
            "-d",
            "overlay",
            "--attachable",
            "--subnet",
            sub,
        ];
        if let Some(o) = opt {
            args.extend_from_slice(&["-o", o]);
        }
        args.push(name);
        c.host(1).daemon.ok(&args);
    }
    c.host(1)
        .daemon
        .run_sleeper("u1", &["--network", "mtu-derived"]);
    c.host(2)
        .daemon
        .run_sleeper("u2", &["--network", "mtu-derived"]);
    c.host(1)
        .daemon
        .run_sleeper("u3", &["--network", "mtu-given"]);
    let mtu = |h: usize, ctr: &str| {
        c.host(h)
            .daemon
            .exec_ok(ctr, "cat /sys/class/net/eth0/mtu")
            .trim()
            .to_string()
    };
    assert_eq!(mtu(1, "u1"), "1350", "underlay 1400 − 50");
    assert_eq!(mtu(2, "u2"), "1450", "underlay 1500 − 50");
    assert_eq!(mtu(1, "u3"), "1300", "the option wins");
    // A full-size packet from the smaller side crosses unfragmented.
    let ip2 = c.host(2).daemon.ip("u2", "mtu-derived");
    assert!(
        wait_for(Duration::from_secs(10), || c
            .host(1)
            .daemon
            .exec("u1", &format!("ping -c 1 -W 1 -s 1322 {ip2}"))
            .ok()),
        "a 1350-byte packet from u1 does not reach u2"
    );
}

#[test]
fn overlays_and_a_bridge_are_isolated_and_names_are_network_scoped() {
    let Some(c) = multihost::cluster(1, &[]) else {
        return;
    };
    form_swarm(&c, &[]);
    // The containers' upstream DNS: the underlay peer, NXDOMAIN for every name (what
    // a real upstream says of a container name it never heard of).
    let (peer, _listener) = underlay_peer(&c);
    let _upstream = Listener(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &peer.name,
                "python3",
                "-c",
                NXDOMAIN_PY,
                PEER,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn the upstream DNS server: {e}")),
    );
    let d = &c.host(1).daemon;
    d.ok(&["network", "create", "--subnet", "10.36.0.0/24", "iso-br"]);
    for (n, s) in [("iso-ov1", "10.36.1.0/24"), ("iso-ov2", "10.36.2.0/24")] {
        d.ok(&[
            "network",
            "create",
            "-d",
            "overlay",
            "--attachable",
            "--subnet",
            s,
            n,
        ]);
    }
    d.run_sleeper("b1", &["--network", "iso-br", "--dns", PEER]);
    d.run_sleeper("o1", &["--network", "iso-ov1", "--dns", PEER]);
    d.run_sleeper("o1b", &["--network", "iso-ov1"]);
    d.run_sleeper("o2", &["--network", "iso-ov2"]);
    let b1 = d.ip("b1", "iso-br");
    let o1 = d.ip("o1", "iso-ov1");
    let o2 = d.ip("o2", "iso-ov2");
    // Positive controls: same network, by address and by name.
    assert!(
        wait_for(Duration::from_secs(10), || pings(c.host(1), "o1", "o1b")),
        "o1 cannot reach o1b on their overlay"
    );
    // Overlay ↔ bridge and overlay ↔ overlay: no path, whichever way.
    for (from, to) in [("o1", &b1), ("b1", &o1), ("o1", &o2), ("o2", &o1)] {
        assert!(!pings(c.host(1), from, to), "{from} reached {to}");
    }
    // Nor through the gateway bridge (inter-container communication off there).
    let legs = gateway_legs(c.host(1));
    assert_eq!(legs.len(), 3, "{legs:?}");
    for a in &legs {
        for ctr in ["o1", "o2"] {
            let own = d.exec_ok(ctr, "ip -4 -o addr show dev eth1");
            if !own.contains(&format!("{a}/")) {
                assert!(
                    !pings(c.host(1), ctr, a),
                    "{ctr} reached {a} on the gateway bridge"
                );
            }
        }
    }
    // DNS is network-scoped: the bridge's and the other overlay's names do not resolve.
    let nxdomain = |from: &str, name: &str| {
        let mut o = d.exec(from, "true");
        let ok = wait_for(Duration::from_secs(10), || {
            o = d.exec(from, &format!("nslookup {name} 127.0.0.11"));
            !o.ok() && format!("{o}").contains("NXDOMAIN")
        });
        assert!(ok, "{name} from {from}: {o}");
    };
    nxdomain("o1", "b1");
    nxdomain("o1", "o2");
    nxdomain("b1", "o1");
    let o = d.exec_ok("o1", "nslookup o1b 127.0.0.11");
    assert!(o.contains("10.36.1."), "{o}");
}

#[test]
fn the_data_path_port_and_address_survive_a_restart() {
    let Some(mut c) = multihost::cluster(2, &[]) else {
        return;
    };
    form_swarm(&c, &["--data-path-port", "4790"]);
    c.host(1).daemon.ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--attachable",
        "--subnet",
        "10.37.0.0/24",
        "dp-net",
    ]);
    c.host(1).daemon.run_sleeper("d1", &["--network", "dp-net"]);
    c.host(2).daemon.run_sleeper("d2", &["--network", "dp-net"]);
    let ip1 = c.host(1).daemon.ip("d1", "dp-net");
    let ip2 = c.host(2).daemon.ip("d2", "dp-net");
    assert!(
        wait_for(Duration::from_secs(10), || pings(c.host(1), "d1", &ip2)),
        "d1 cannot reach d2: {} / {} / {}",
        in_sandbox(
            c.host(1),
            "dp-net",
            &["ip", "-d", "link", "show", "type", "vxlan"]
        ),
        in_sandbox(
            c.host(2),
            "dp-net",
            &["ip", "-d", "link", "show", "type", "vxlan"]
        ),
        in_sandbox(c.host(1), "dp-net", &["bridge", "fdb", "show"]),
    );
    let vx = |c: &Cluster| {
        in_sandbox(
            c.host(1),
            "dp-net",
            &["ip", "-d", "link", "show", "type", "vxlan"],
        )
    };
    let before = vx(&c);
    assert!(
        before.contains("dstport 4790") && before.contains("local 198.18.1.11"),
        "{before}"
    );
    // The VXLAN device goes while node1's daemon is down: the restarted daemon
    // reconciles its sandbox, with the swarm's data path (not 0.0.0.0:4789, what it
    // knows before it rejoins the swarm).
    let id = c
        .host(1)
        .daemon
        .ok(&["network", "inspect", "-f", "{{.Id}}", "dp-net"]);
    c.host_mut(1).daemon.stop();
    let dev = before
        .split_whitespace()
        .nth(1)
        .and_then(|d| d.split('@').next())
        .unwrap_or_default()
        .to_string();
    assert!(dev.starts_with("vx-"), "{before}");
    in_sandbox_of(c.host(1), &id, &["ip", "link", "del", &dev]);
    assert!(
        !in_sandbox_of(c.host(1), &id, &["ip", "link", "show", "type", "vxlan"]).contains(&dev),
        "{dev} still there"
    );
    c.restart(1);
    let mut after = String::new();
    assert!(
        wait_for(Duration::from_secs(15), || {
            after = vx(&c);
            after.contains("dstport 4790") && after.contains("local 198.18.1.11")
        }),
        "after the restart: {after}\n{}",
        c.host(1).daemon.log()
    );
    assert!(
        wait_for(Duration::from_secs(15), || pings(c.host(2), "d2", &ip1)
            && pings(c.host(1), "d1", &ip2)),
        "d1 and d2 lost each other after node1 restarted: {after}"
    );
}
