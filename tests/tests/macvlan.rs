//! macvlan and ipvlan networks on a "physical" parent: a veth in the daemon's namespace
//! whose other end sits in a peer namespace on the same L2 segment (another host on
//! the wire). Kernel features this kernel may lack (ipvlan, 802.1q VLAN, dummy links)
//! are probed with `ip` in a throwaway namespace: where one is missing, netloom must
//! refuse up front naming it and change nothing; the functional part of that test is
//! skipped with the reason — only there.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use netloom_e2e::{Daemon, daemon_or_skip, sh, wait_for};

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A peer host: a namespace whose `eth0` is the far end of the daemon namespace's
/// `parent` veth, addressed `addr` (CIDR).
struct Peer {
    ns: String,
}

impl Peer {
    fn new(d: &Daemon, parent: &str, addr: &str, mtu: &str) -> Peer {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let ns = format!("nlmv-{}-{n}", std::process::id());
        let _ = sh("ip", &["netns", "del", &ns]);
        let p = Peer { ns };
        let ns = p.ns.as_str();
        let dn = d.name.as_str();
        let steps: Vec<Vec<&str>> = vec![
            vec!["netns", "add", ns],
            vec!["-n", ns, "link", "set", "lo", "up"],
            vec![
                "link", "add", parent, "netns", dn, "mtu", mtu, "type", "veth", "peer", "name",
                "eth0", "netns", ns, "mtu", mtu,
            ],
            vec!["-n", dn, "link", "set", parent, "up"],
            vec!["-n", ns, "addr", "add", addr, "dev", "eth0"],
            vec!["-n", ns, "link", "set", "eth0", "up"],
        ];
        for s in steps {
            let r = sh("ip", &s);
            assert!(r.ok(), "ip {s:?}: {r}");
        }
        p
    }

    fn ip(&self, args: &[&str]) -> netloom_e2e::Out {
        let mut a = vec!["-n", self.ns.as_str()];
        a.extend_from_slice(args);
        sh("ip", &a)
    }

    fn ping(&self, ip: &str) -> bool {
        sh(
            "ip",
            &["netns", "exec", &self.ns, "ping", "-c", "1", "-W", "1", ip],
        )
        .ok()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Deleting the namespace deletes eth0 and with it the parent veth.
        let _ = sh("ip", &["netns", "del", &self.ns]);
    }
}

/// Whether this kernel can create a link of `kind` (probed in a throwaway namespace).
fn kernel_has(kind: &str) -> bool {
    let ns = format!(
        "nlmvp-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    );
    let _ = sh("ip", &["netns", "add", &ns]);
    let _ = sh(
        "ip",
        &[
            "-n", &ns, "link", "add", "p0", "type", "veth", "peer", "name", "p1",
        ],
    );
    let ok = match kind {
        "dummy" => sh("ip", &["-n", &ns, "link", "add", "d0", "type", "dummy"]).ok(),
        "vlan" => sh(
            "ip",
            &[
                "-n", &ns, "link", "add", "link", "p0", "name", "p0.7", "type", "vlan", "id", "7",
            ],
        )
        .ok(),
        other => sh(
            "ip",
            &[
                "-n", &ns, "link", "add", "link", "p0", "name", "x0", "type", other,
            ],
        )
        .ok(),
    };
    let _ = sh("ip", &["netns", "del", &ns]);
    ok
}

/// `ip -o link` names in the daemon's namespace.
fn daemon_links(d: &Daemon) -> Vec<String> {
    let o = d.netns(&["ip", "-o", "link"]);
    o.stdout
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
        .collect()
}

fn mac_of(d: &Daemon, c: &str, net: &str) -> String {
    d.ok(&[
        "inspect",
        "-f",
        &format!("{{{{.NetworkSettings.Networks.{net}.MacAddress}}}}"),
        c,
    ])
    .trim()
    .to_string()
}

#[test]
fn macvlan_containers_reach_l2_peer_and_each_other() {
    let mut d = daemon_or_skip!();
    let peer = Peer::new(&d, "phys0", "192.0.2.254/24", "1400");
    d.ok(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        "192.0.2.0/24",
        "--gateway",
        "192.0.2.254",
        "--ip-range",
        "192.0.2.64/26",
        "-o",
        "parent=phys0",
        "mvnet",
    ]);
    d.run_sleeper("mv1", &["--network", "mvnet"]);
    d.run_sleeper(
        "mv2",
        &[
            "--network",
            "mvnet",
            "--ip",
            "192.0.2.10",
            "--mac-address",
            "02:00:00:AA:BB:CC",
        ],
    );
    let ip1 = d.ip("mv1", "mvnet").trim().to_string();
    assert!(ip1.starts_with("192.0.2."), "mv1 address {ip1:?}");
    let last: u8 = ip1.rsplit('.').next().unwrap().parse().unwrap();
    assert!((64..128).contains(&last), "{ip1} outside --ip-range");

    // The container's eth0 is a macvlan link with its own MAC; the MTU follows the parent.
    let link = d.exec_ok("mv1", "ip -o link show eth0");
    let mac1 = mac_of(&d, "mv1", "mvnet");
    assert!(!mac1.is_empty(), "no MacAddress in inspect");
    assert!(link.contains(&mac1), "eth0 {link:?} lacks MAC {mac1}");
    assert!(
        link.contains("mtu 1400"),
        "eth0 MTU should follow parent: {link}"
    );
    let route = d.exec_ok("mv1", "ip route");
    assert!(
        route.contains("default via 192.0.2.254"),
        "default route via the gateway: {route}"
    );

    // The peer on the wire reaches the container, and sees the container's own MAC.
    assert!(
        wait_for(Duration::from_secs(5), || peer.ping(&ip1)),
        "peer cannot ping mv1 ({ip1})"
    );
    let neigh = peer.ip(&["neigh", "show", &ip1]).stdout;
    assert!(
        neigh.to_lowercase().contains(&mac1.to_lowercase()),
        "peer's neighbour entry for {ip1} = {neigh:?}, want MAC {mac1}"
    );
    // --mac-address: the wire sees the requested MAC.
    assert_eq!(mac_of(&d, "mv2", "mvnet"), "02:00:00:aa:bb:cc");
    assert!(peer.ping("192.0.2.10"), "peer cannot ping mv2");
    let neigh = peer.ip(&["neigh", "show", "192.0.2.10"]).stdout;
    assert!(
        neigh.contains("02:00:00:aa:bb:cc"),
        "mv2 neighbour: {neigh:?}"
    );
    // The container reaches the peer and the other container (by address and by name).
    assert!(d.exec("mv1", "ping -c 1 -W 2 192.0.2.254").ok());
    assert!(d.exec("mv1", "ping -c 1 -W 2 192.0.2.10").ok());
    let o = d.exec("mv2", "ping -c 1 -W 2 mv1");
    assert!(o.ok(), "mv2 -> mv1 by name: {o}");
    assert!(o.stdout.contains(&ip1), "mv1 resolved to {:?}", o.stdout);

    // Disconnect removes the interface; reconnect brings it back.
    d.ok(&["network", "disconnect", "mvnet", "mv2"]);
    assert!(!d.exec("mv2", "ip link show eth0").ok());
    assert!(!peer.ping("192.0.2.10"), "disconnected mv2 still answers");
    d.ok(&["network", "connect", "--ip", "192.0.2.11", "mvnet", "mv2"]);
    assert!(
        wait_for(Duration::from_secs(5), || peer.ping("192.0.2.11")),
        "reconnected mv2 unreachable"
    );

    // A daemon restart keeps the running containers on the wire and the network usable.
    d.stop();
    d.start();
    assert!(peer.ping(&ip1), "mv1 unreachable after a daemon restart");
    d.run_sleeper("mv3", &["--network", "mvnet", "--ip", "192.0.2.12"]);
    assert!(
        wait_for(Duration::from_secs(5), || peer.ping("192.0.2.12")),
        "mv3 (started after the restart) unreachable"
    );
    assert!(
        d.exec("mv3", "ping -c 1 -W 2 mv1").ok(),
        "mv3 -> mv1 by name"
    );

    // Removal cleans up: no container link answers, the parent stays.
    d.ok(&["rm", "-f", "mv1", "mv2", "mv3"]);
    // The kernel tears a namespace down off the caller's path: allow it a moment.
    assert!(
        wait_for(Duration::from_secs(3), || !peer.ping(&ip1)),
        "removed mv1 still answers"
    );
    d.ok(&["network", "rm", "mvnet"]);
    let links = daemon_links(&d);
    assert!(
        links.iter().any(|l| l == "phys0"),
        "parent removed: {links:?}"
    );
    assert!(
        !links
            .iter()
            .any(|l| l.starts_with("dm-") || l.contains('.')),
        "leftover links: {links:?}"
    );
}

#[test]
fn macvlan_refuses_bad_requests_and_changes_nothing() {
    let d = daemon_or_skip!();
    let _peer = Peer::new(&d, "phys1", "198.18.0.254/24", "1500");
    d.ok(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        "198.18.0.0/24",
        "-o",
        "parent=phys1",
        "first",
    ]);
    let before = d.state_dump();
    let cases: &[(&[&str], &str)] = &[
        (
            &["-o", "parent=nope0"],
            "parent interface was not found on the host: nope0",
        ),
        (
            &["-o", "parent=phys1"],
            "network first is already using parent interface phys1",
        ),
        (
            &["-o", "parent=phys1", "-o", "macvlan_mode=l3"],
            "invalid macvlan_mode",
        ),
        (
            &["-o", "parent=phys1", "-o", "bogus=1"],
            "unknown macvlan driver option \"bogus\"",
        ),
        (&["-o", "parent=phys1.5000"], "between 1 and 4094"),
    ];
    for (extra, want) in cases {
        let mut a = vec!["network", "create", "-d", "macvlan"];
        a.extend_from_slice(extra);
        a.push("second");
        let o = d.fail(&a);
        assert!(o.stderr.contains(want), "{extra:?}: want {want:?} in {o}");
        assert_eq!(d.state_dump(), before, "{extra:?} changed state");
    }
    let o = d.fail(&["network", "create", "-d", "ipvlan", "second"]);
    assert!(o.stderr.contains("needs -o parent"), "{o}");
    assert_eq!(d.state_dump(), before);
}

/// ipvlan: works where the kernel has it; elsewhere a clear refusal and no change.
#[test]
fn ipvlan_works_or_names_missing_kernel_feature() {
    let d = daemon_or_skip!();
    let peer = Peer::new(&d, "phys2", "203.0.113.254/24", "1500");
    let args = [
        "network",
        "create",
        "-d",
        "ipvlan",
        "--subnet",
        "203.0.113.0/24",
        "--gateway",
        "203.0.113.254",
        "-o",
        "parent=phys2",
        "ipv",
    ];
    if !kernel_has("ipvlan") {
        let before = d.state_dump();
        let o = d.fail(&args);
        assert!(
            o.stderr
                .contains("the kernel does not support ipvlan links (kernel module ipvlan"),
            "{o}"
        );
        assert_eq!(
            d.state_dump(),
            before,
            "refused ipvlan create changed state"
        );
        println!("SKIP: ipvlan data path: this kernel lacks ipvlan (CONFIG_IPVLAN)");
        return;
    }
    d.ok(&args);
    d.run_sleeper("iv1", &["--network", "ipv"]);
    let ip = d.ip("iv1", "ipv").trim().to_string();
    assert!(
        wait_for(Duration::from_secs(5), || peer.ping(&ip)),
        "peer cannot ping ipvlan container {ip}"
    );
    let link = d.exec_ok("iv1", "ip -d link show eth0");
    assert!(link.contains("ipvlan"), "{link}");
    d.ok(&["rm", "-f", "iv1"]);
    d.ok(&["network", "rm", "ipv"]);
}

/// `parent=IFACE.VLAN` creates the 802.1q link and removes it with the network; several
/// VLANs trunk on one parent. Where the kernel lacks 802.1q: refused, nothing made.
#[test]
fn vlan_parent_is_created_and_removed_or_refused() {
    let d = daemon_or_skip!();
    let _peer = Peer::new(&d, "phys3", "198.51.100.254/24", "1500");
    let create = |name: &str, vlan: &str, subnet: &str| {
        d.cli(&[
            "network",
            "create",
            "-d",
            "macvlan",
            "--subnet",
            subnet,
            "-o",
            &format!("parent=phys3.{vlan}"),
            name,
        ])
    };
    if !kernel_has("vlan") {
        let before = d.state_dump();
        let o = create("v100", "100", "10.100.0.0/24");
        assert!(!o.ok());
        assert!(
            o.stderr
                .contains("the kernel does not support 802.1q VLAN links (kernel module 8021q"),
            "{o}"
        );
        assert_eq!(d.state_dump(), before, "refused VLAN create changed state");
        assert!(!daemon_links(&d).iter().any(|l| l == "phys3.100"));
        println!(
            "SKIP: VLAN trunking data path: this kernel lacks 802.1q VLAN (CONFIG_VLAN_8021Q)"
        );
        return;
    }
    assert!(create("v100", "100", "10.100.0.0/24").ok());
    assert!(create("v200", "200", "10.200.0.0/24").ok());
    let links = daemon_links(&d);
    assert!(links.iter().any(|l| l == "phys3.100") && links.iter().any(|l| l == "phys3.200"));
    d.run_sleeper("vl1", &["--network", "v100"]);
    d.ok(&["rm", "-f", "vl1"]);
    d.ok(&["network", "rm", "v100"]);
    let links = daemon_links(&d);
    assert!(!links.iter().any(|l| l == "phys3.100"), "{links:?}");
    assert!(links.iter().any(|l| l == "phys3.200"), "{links:?}");
    d.ok(&["network", "rm", "v200"]);
    assert!(!daemon_links(&d).iter().any(|l| l == "phys3.200"));
}

/// No parent: Docker gives a macvlan network an internal dummy parent. Where the
/// kernel lacks dummy links: refused naming them, nothing made.
#[test]
fn macvlan_without_parent_uses_dummy_or_is_refused() {
    let d = daemon_or_skip!();
    let args = [
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        "10.9.0.0/24",
        "lonely",
    ];
    if !kernel_has("dummy") {
        let before = d.state_dump();
        let o = d.fail(&args);
        assert!(
            o.stderr
                .contains("the kernel does not support dummy links (kernel module dummy"),
            "{o}"
        );
        assert!(o.stderr.contains("-o parent=IFACE"), "{o}");
        assert_eq!(d.state_dump(), before, "refused create changed state");
        println!(
            "SKIP: parent-less macvlan data path: this kernel lacks dummy links (CONFIG_DUMMY)"
        );
        return;
    }
    d.ok(&args);
    assert!(daemon_links(&d).iter().any(|l| l.starts_with("dm-")));
    d.run_sleeper("dm1", &["--network", "lonely"]);
    let route = d.exec_ok("dm1", "ip route");
    assert!(
        !route.contains("default"),
        "internal network has a default route: {route}"
    );
    d.ok(&["rm", "-f", "dm1"]);
    d.ok(&["network", "rm", "lonely"]);
    assert!(!daemon_links(&d).iter().any(|l| l.starts_with("dm-")));
}

/// A macvlan network on a parent it did not create — here a netloom bridge — never
/// deletes that parent when it goes.
#[test]
fn removing_a_macvlan_network_keeps_a_parent_it_did_not_create() {
    let d = daemon_or_skip!();
    d.ok(&[
        "network",
        "create",
        "--subnet",
        "10.71.0.0/24",
        "-o",
        "com.docker.network.bridge.name=brmv0",
        "under",
    ]);
    d.ok(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        "10.72.0.0/24",
        "-o",
        "parent=brmv0",
        "over",
    ]);
    d.ok(&["network", "rm", "over"]);
    assert!(
        daemon_links(&d).iter().any(|l| l == "brmv0"),
        "the bridge of network 'under' was deleted with the macvlan network on it"
    );
    d.run_sleeper("un1", &["--network", "under"]);
    d.ok(&["rm", "-f", "un1"]);
    d.ok(&["network", "rm", "under"]);
}
