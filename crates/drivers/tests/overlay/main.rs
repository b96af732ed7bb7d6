//! The overlay driver's data plane on simulated hosts (root, no daemon): hosts on two
//! L2 segments joined by a router, each running the driver; "containers" are
//! namespaces joined to the overlay; the test announces remote endpoints as the control
//! plane will. Without root the tests print `SKIP:` (or fail with
//! `NETLOOM_REQUIRE_PRIV=1`).

mod lab;

use lab::{Host, Lab, Ns, addr, endpoint, overlay, peer, privileged, sandbox};
use netloom_drivers::overlay::PeerEndpoint;
use netloom_model::{Driver, Endpoint, Network};

fn create(h: &Host, net: &Network) {
    let net = net.clone();
    h.call(move |ctx| async move { ctx.drv().create_network(&net).await })
        .unwrap_or_else(|e| panic!("create network on {}: {e:?}", h.ns.name));
}

fn delete(h: &Host, net: &Network) {
    let net = net.clone();
    h.call(move |ctx| async move { ctx.drv().delete_network(&net).await })
        .unwrap_or_else(|e| panic!("delete network on {}: {e:?}", h.ns.name));
}

fn join(h: &Host, net: &Network, ep: &Endpoint, c: &Ns) {
    let (net, ep, sb) = (net.clone(), ep.clone(), sandbox(c));
    h.call(move |ctx| async move {
        let d = ctx.drv();
        d.create_endpoint(&net, &ep).await?;
        d.join(&net, &ep, &sb).await
    })
    .unwrap_or_else(|e| panic!("join {} on {}: {e:?}", c.name, h.ns.name));
}

fn leave(h: &Host, net: &Network, ep: &Endpoint, c: &Ns) {
    let (net, ep, sb) = (net.clone(), ep.clone(), sandbox(c));
    h.call(move |ctx| async move {
        let d = ctx.drv();
        d.leave(&net, &ep, &sb).await?;
        d.delete_endpoint(&net, &ep).await
    })
    .unwrap_or_else(|e| panic!("leave on {}: {e:?}", h.ns.name));
}

/// Announces `eps` (endpoint, index of its host) to every host in `on`, as the control
/// plane will.
fn announce(lab: &Lab, net: &Network, on: &[usize], eps: &[(&Endpoint, usize)]) {
    let list: Vec<PeerEndpoint> = eps.iter().map(|(e, h)| peer(e, &lab.hosts[*h])).collect();
    for &i in on {
        let (id, list) = (net.id.clone(), list.clone());
        lab.hosts[i]
            .call(move |ctx| async move { ctx.drv().sync_peers(&id, &list).await })
            .unwrap_or_else(|e| panic!("sync peers on host {i}: {e:?}"));
    }
}

/// `nsenter --net=<sandbox> ARGS…` (the overlay sandbox is not under /run/netns).
fn in_sandbox(h: &Host, net: &Network, args: &[&str]) -> String {
    let p = h
        .dir
        .join(netloom_drivers::overlay::peers::sandbox_name(&net.id));
    let mut a = vec![format!("--net={}", p.display())];
    a.extend(args.iter().map(|s| s.to_string()));
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    lab::must("nsenter", &a)
}

fn mtu_of(c: &Ns, ifname: &str) -> u64 {
    let out = c.ip(&["-j", "link", "show", ifname]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    v[0]["mtu"].as_u64().unwrap_or(0)
}

/// Number of hop lines busybox traceroute prints to reach `ip`.
fn hops(c: &Ns, ip: &str) -> usize {
    let out = c.sh(&[
        "/bin/busybox",
        "traceroute",
        "-n",
        "-m",
        "5",
        "-w",
        "1",
        "-q",
        "1",
        ip,
    ]);
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| {
            l.trim_start()
                .chars()
                .next()
                .is_some_and(|ch| ch.is_ascii_digit())
        })
        .collect();
    assert!(
        lines.last().is_some_and(|l| l.contains(ip)),
        "traceroute did not reach {ip}: {out}"
    );
    lines.len()
}

#[test]
fn containers_on_three_hosts_talk_across_the_router_in_one_hop() {
    if !privileged("containers_on_three_hosts_talk_across_the_router_in_one_hop") {
        return;
    }
    let lab = Lab::new(3, 1500, 4789);
    lab.watch_underlay(4789);
    let net = overlay("uber-net", &["10.10.0.0/24"], &[4096], false);
    let cs: Vec<Ns> = (1..=3).map(|i| lab.container(&format!("c{i}"))).collect();
    let eps: Vec<Endpoint> = (0..3)
        .map(|i| endpoint(&net, &format!("10.10.0.{}/24", i + 2), "eth0"))
        .collect();
    for i in 0..3 {
        create(&lab.hosts[i], &net);
        // Lazy: no sandbox before a local endpoint joins.
        assert!(
            !lab.hosts[i]
                .dir
                .join(netloom_drivers::overlay::peers::sandbox_name(&net.id))
                .exists()
        );
        join(&lab.hosts[i], &net, &eps[i], &cs[i]);
    }
    let all: Vec<(&Endpoint, usize)> = eps.iter().zip(0..3).collect();
    announce(&lab, &net, &[0, 1, 2], &all);

    // node1 (segment 1) -> node2 (segment 2): across the router, one hop.
    assert!(
        cs[0].pings(&addr(&eps[1])),
        "c1 cannot ping c2 across the router"
    );
    assert!(cs[1].pings(&addr(&eps[0])), "c2 cannot ping c1");
    assert!(
        cs[0].pings(&addr(&eps[2])),
        "c1 cannot ping c3 on its segment"
    );
    assert!(cs[1].pings(&addr(&eps[2])), "c2 cannot ping c3");
    assert_eq!(hops(&cs[0], &addr(&eps[1])), 1, "traceroute c1 -> c2");

    // ARP is answered on the node: flush c1's cache, talk again; no ARP frame went
    // through a VXLAN tunnel across the router, yet c1 learnt c2's real MAC.
    let arp_before = lab.count("vxlan_arp");
    cs[0].ip(&["neigh", "flush", "all"]);
    let vx_before = lab.count("vxlan");
    assert!(cs[0].pings(&addr(&eps[1])));
    assert!(
        lab.count("vxlan") > vx_before,
        "no VXLAN packet crossed the router"
    );
    assert_eq!(
        lab.count("vxlan_arp"),
        arp_before,
        "an ARP frame left the node"
    );
    assert_eq!(arp_before, 0, "an ARP frame left a node");
    let neigh = cs[0].ip(&["neigh", "show", &addr(&eps[1])]);
    assert!(
        neigh.contains(&eps[1].mac),
        "c1's neighbour entry for c2: {neigh}"
    );
    assert_eq!(
        lab.count("other"),
        0,
        "something else than VXLAN crossed the router"
    );

    // The VXLAN device: learning off, proxy on, port 4789, sending from node1's address.
    let vx = netloom_drivers::overlay::peers::vxlan_name(4096, &net.id);
    let d = in_sandbox(&lab.hosts[0], &net, &["ip", "-d", "link", "show", &vx]);
    for want in [
        "vxlan id 4096",
        "local 198.18.1.11",
        "dstport 4789",
        "nolearning",
        "proxy",
    ] {
        assert!(d.contains(want), "{want:?} not in {d}");
    }
    let fdb = in_sandbox(&lab.hosts[0], &net, &["bridge", "fdb", "show", "dev", &vx]);
    let line = fdb
        .lines()
        .find(|l| l.starts_with(&format!("{} dst 198.18.2.12", eps[1].mac)));
    assert!(line.is_some_and(|l| l.contains("self permanent")), "{fdb}");
    assert!(
        !fdb.contains("00:00:00:00:00:00"),
        "a flooding entry: {fdb}"
    );

    for i in 0..3 {
        leave(&lab.hosts[i], &net, &eps[i], &cs[i]);
        lab.hosts[i].assert_clean(&[]);
        delete(&lab.hosts[i], &net);
        lab.hosts[i].assert_clean(&[]);
    }
}

#[test]
fn removing_a_peer_or_its_node_cuts_it_and_sync_repairs_drift() {
    if !privileged("removing_a_peer_or_its_node_cuts_it_and_sync_repairs_drift") {
        return;
    }
    let lab = Lab::new(2, 1500, 4789);
    let net = overlay("cut", &["10.11.0.0/24"], &[4100], false);
    let (c1, c2) = (lab.container("c1"), lab.container("c2"));
    let e1 = endpoint(&net, "10.11.0.2/24", "eth0");
    let e2 = endpoint(&net, "10.11.0.3/24", "eth0");
    let (h1, h2) = (&lab.hosts[0], &lab.hosts[1]);
    create(h1, &net);
    create(h2, &net);
    join(h1, &net, &e1, &c1);
    join(h2, &net, &e2, &c2);
    announce(&lab, &net, &[0, 1], &[(&e1, 0), (&e2, 1)]);
    assert!(c1.pings(&addr(&e2)));

    // The endpoint goes: its entries go, traffic stops.
    let (id, ip) = (
        net.id.clone(),
        e2.ipv4.map(|n| n.addr()).unwrap_or_else(|| panic!()),
    );
    h1.call(move |ctx| async move { ctx.drv().remove_peer(&id, ip).await })
        .unwrap_or_else(|e| panic!("{e:?}"));
    let vx = netloom_drivers::overlay::peers::vxlan_name(4100, &net.id);
    let fdb = in_sandbox(h1, &net, &["bridge", "fdb", "show", "dev", &vx]);
    let remote = fdb
        .lines()
        .any(|l| l.starts_with(&e2.mac) && l.contains(" dst "));
    assert!(!remote, "FDB entry of a removed peer: {fdb}");
    let neigh = in_sandbox(h1, &net, &["ip", "neigh", "show", "dev", &vx]);
    assert!(
        !neigh.contains(&addr(&e2)),
        "neighbour of a removed peer: {neigh}"
    );
    c1.ip(&["neigh", "flush", "all"]);
    assert!(!c1.pings(&addr(&e2)), "c1 still reaches a removed peer");

    // Back, then its node goes down.
    announce(&lab, &net, &[0], &[(&e1, 0), (&e2, 1)]);
    assert!(c1.pings(&addr(&e2)));
    let vtep = std::net::IpAddr::V4(h2.addr);
    let n = h1
        .call(move |ctx| async move { ctx.drv().remove_vtep(vtep).await })
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(n, 1);
    c1.ip(&["neigh", "flush", "all"]);
    assert!(
        !c1.pings(&addr(&e2)),
        "c1 still reaches a peer of a node that went down"
    );

    // Drift: a stale entry, a lost one; sync brings back exactly the announced set.
    announce(&lab, &net, &[0], &[(&e1, 0), (&e2, 1)]);
    in_sandbox(
        h1,
        &net,
        &[
            "bridge",
            "fdb",
            "add",
            "02:42:0a:0b:00:63",
            "dev",
            &vx,
            "dst",
            "198.18.2.99",
            "self",
            "permanent",
        ],
    );
    in_sandbox(
        h1,
        &net,
        &[
            "ip",
            "neigh",
            "add",
            "10.11.0.99",
            "lladdr",
            "02:42:0a:0b:00:63",
            "dev",
            &vx,
            "nud",
            "permanent",
        ],
    );
    in_sandbox(
        h1,
        &net,
        &[
            "bridge",
            "fdb",
            "del",
            &e2.mac,
            "dev",
            &vx,
            "dst",
            "198.18.2.12",
            "self",
        ],
    );
    announce(&lab, &net, &[0], &[(&e1, 0), (&e2, 1)]);
    let fdb = in_sandbox(h1, &net, &["bridge", "fdb", "show", "dev", &vx]);
    assert!(
        !fdb.contains("02:42:0a:0b:00:63"),
        "stale FDB entry kept: {fdb}"
    );
    assert!(fdb.contains(&e2.mac), "lost FDB entry not restored: {fdb}");
    let neigh = in_sandbox(h1, &net, &["ip", "neigh", "show", "dev", &vx]);
    assert!(
        !neigh.contains("10.11.0.99"),
        "stale neighbour kept: {neigh}"
    );
    assert!(c1.pings(&addr(&e2)));

    // A peer outside the network's subnets is refused, nothing changes.
    let bad = PeerEndpoint {
        ip: "10.99.0.2".parse().unwrap_or_else(|_| panic!()),
        ..peer(&e2, h2)
    };
    let id = net.id.clone();
    let r = h1.call(move |ctx| async move { ctx.drv().add_peer(&id, bad).await });
    let msg = r.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        msg.contains("10.99.0.2") && msg.contains("none of the network's subnets"),
        "{msg}"
    );

    leave(h1, &net, &e1, &c1);
    leave(h2, &net, &e2, &c2);
    for h in &lab.hosts {
        delete(h, &net);
        h.assert_clean(&[]);
    }
}

#[test]
fn restart_keeps_traffic_and_adopts_the_sandbox() {
    if !privileged("restart_keeps_traffic_and_adopts_the_sandbox") {
        return;
    }
    let lab = Lab::new(2, 1500, 4789);
    let net = overlay("rs", &["10.12.0.0/24"], &[4110], false);
    let (c1, c2) = (lab.container("c1"), lab.container("c2"));
    let e1 = endpoint(&net, "10.12.0.2/24", "eth0");
    let e2 = endpoint(&net, "10.12.0.3/24", "eth0");
    let (h1, h2) = (&lab.hosts[0], &lab.hosts[1]);
    for (h, e, c) in [(h1, &e1, &c1), (h2, &e2, &c2)] {
        create(h, &net);
        join(h, &net, e, c);
    }
    announce(&lab, &net, &[0, 1], &[(&e1, 0), (&e2, 1)]);
    assert!(c1.pings(&addr(&e2)));
    let vx = netloom_drivers::overlay::peers::vxlan_name(4110, &net.id);
    let before = in_sandbox(h1, &net, &["ip", "-j", "link", "show", &vx]);

    // The daemon goes away: the kernel keeps carrying traffic.
    h1.call(|ctx| async move { ctx.restart() });
    assert!(c1.pings(&addr(&e2)), "traffic stopped with the daemon");
    // It comes back: the network is created again and the peers re-announced; the
    // sandbox is adopted, not re-made.
    create(h1, &net);
    announce(&lab, &net, &[0], &[(&e1, 0), (&e2, 1)]);
    let after = in_sandbox(h1, &net, &["ip", "-j", "link", "show", &vx]);
    let idx = |s: &str| {
        serde_json::from_str::<serde_json::Value>(s).unwrap_or_default()[0]["ifindex"].as_u64()
    };
    assert_eq!(idx(&before), idx(&after), "the VXLAN device was re-created");
    assert!(c1.pings(&addr(&e2)));
    // And its last endpoint leaving still takes the sandbox with it.
    leave(h1, &net, &e1, &c1);
    h1.assert_clean(&[]);
    // node2's daemon restarts after the network was removed elsewhere: the sandbox it
    // finds is an orphan and goes.
    let left = h2.call(|ctx| async move {
        ctx.restart();
        ctx.drv().remove_orphans(&[]).await
    });
    assert_eq!(
        left.map(|v| v.len()).ok(),
        Some(1),
        "orphan sandbox not removed"
    );
    assert!(!c2.pings(&addr(&e1)));
    for h in &lab.hosts {
        h.assert_clean(&[]);
    }
}

mod more;

#[test]
fn refusals_and_a_failed_join_leave_nothing() {
    if !privileged("refusals_and_a_failed_join_leave_nothing") {
        return;
    }
    let lab = Lab::new(1, 1500, 4789);
    let h1 = &lab.hosts[0];
    // No VNI yet (the manager has not allocated one): refused, naming the fix.
    let mut net = overlay("novni", &["10.17.0.0/24"], &[4170], false);
    net.options.clear();
    let n = net.clone();
    let msg = h1
        .call(move |ctx| async move { ctx.drv().create_network(&n).await })
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        msg.contains("no VNI") && msg.contains("vxlanid_list"),
        "{msg}"
    );
    // Peers of a network this node does not know.
    let id = net.id.clone();
    let p = PeerEndpoint {
        ip: "10.17.0.5".parse().unwrap_or_else(|_| panic!()),
        mac: [2, 0x42, 10, 17, 0, 5],
        vtep: "198.18.2.12".parse().unwrap_or_else(|_| panic!()),
    };
    let msg = h1
        .call(move |ctx| async move { ctx.drv().add_peer(&id, p).await })
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(msg.contains("not known on this node"), "{msg}");
    h1.assert_clean(&[]);

    // A join that fails (the container already has an eth0) undoes the sandbox it made.
    let net = overlay("fail", &["10.17.0.0/24"], &[4171], false);
    create(h1, &net);
    let c = lab.container("c1");
    c.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "other0",
    ]);
    let (n, ep, sb) = (
        net.clone(),
        endpoint(&net, "10.17.0.2/24", "eth0"),
        sandbox(&c),
    );
    let r = h1.call(move |ctx| async move {
        let d = ctx.drv();
        d.create_endpoint(&n, &ep).await?;
        d.join(&n, &ep, &sb).await
    });
    assert!(r.is_err(), "join into a taken eth0 succeeded");
    h1.assert_clean(&[]);
    delete(h1, &net);
    h1.assert_clean(&[]);
}
