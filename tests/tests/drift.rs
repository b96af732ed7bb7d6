//! Drift repair: a netloom bridge or veth deleted by hand comes back by itself, within
//! a second, and the containers on it talk again (issue 12: "drift in the kernel is
//! repaired").

use std::time::Duration;

use netloom_e2e::{Daemon, daemon_or_skip, wait_for};

/// The bridge of network `net`.
fn bridge_of(d: &Daemon, net: &str) -> String {
    let id = d.ok(&["network", "inspect", "-f", "{{.Id}}", net]);
    format!("br-{}", &id[..12])
}

/// Whether `c1` reaches `c2` by name.
fn pings(d: &Daemon, from: &str, to: &str) -> bool {
    d.exec(from, &format!("ping -c 1 -W 1 {to}")).ok()
}

#[test]
fn a_bridge_deleted_by_hand_comes_back_with_its_ports() {
    let d = daemon_or_skip!();
    d.ok(&["network", "create", "--subnet", "10.241.0.0/24", "drift1"]);
    d.run_sleeper("dr1", &["--network", "drift1"]);
    d.run_sleeper("dr2", &["--network", "drift1"]);
    assert!(pings(&d, "dr1", "dr2"), "before: dr1 cannot reach dr2");
    let br = bridge_of(&d, "drift1");

    let o = d.netns(&["ip", "link", "del", &br]);
    assert!(o.ok(), "ip link del {br}: {o}");
    let back = wait_for(Duration::from_secs(1), || {
        let o = d.netns(&["ip", "-o", "-4", "addr", "show", "dev", &br]);
        o.ok() && o.stdout.contains("10.241.0.1/24")
    });
    assert!(
        back,
        "bridge {br} (with gateway 10.241.0.1) not back within 1 s: {}\ndaemon log:\n{}",
        d.netns(&["ip", "-o", "addr", "show", "dev", &br]),
        d.log()
    );
    assert!(
        wait_for(Duration::from_secs(3), || pings(&d, "dr1", "dr2")),
        "after the bridge came back, dr1 cannot reach dr2: ports not plugged in again? {}",
        d.netns(&["ip", "-o", "link", "show", "master", &br])
    );
    assert!(
        pings(&d, "dr1", "10.241.0.1"),
        "dr1 cannot reach its gateway"
    );
}

#[test]
fn a_veth_deleted_by_hand_comes_back_in_the_container() {
    let d = daemon_or_skip!();
    d.ok(&["network", "create", "--subnet", "10.242.0.0/24", "drift2"]);
    d.run_sleeper("dv1", &["--network", "drift2"]);
    d.run_sleeper("dv2", &["--network", "drift2"]);
    assert!(pings(&d, "dv1", "dv2"), "before: dv1 cannot reach dv2");
    let ep = d.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.drift2.EndpointID}}",
        "dv1",
    ]);
    let veth = format!("nl{}", &ep[..12]);
    let o = d.netns(&["ip", "link", "del", &veth]);
    assert!(o.ok(), "ip link del {veth}: {o}");
    let back = wait_for(Duration::from_secs(3), || pings(&d, "dv1", "dv2"));
    assert!(
        back,
        "dv1 has no working interface on drift2 3 s after its veth was deleted: {}\ndaemon log:\n{}",
        d.exec("dv1", "ip -o addr"),
        d.log()
    );
    // DNS follows the (possibly new) address.
    let ip = d.ip("dv1", "drift2");
    let o = d.exec("dv2", "nslookup dv1 127.0.0.11");
    assert!(
        o.ok() && o.stdout.contains(&ip),
        "dv1 resolves to {ip}? {o}"
    );
}
