//! MTU, several subnets, internal networks, egress through the gateway bridge and
//! isolation between overlays.

use super::*;
use netloom_drivers::bridge::BridgeDriver;
use netloom_drivers::firewall::{Desired, Firewall};
use netloom_drivers::overlay::gateway::{GatewayBridge, gateway_network};

/// Counts the ICMP echo requests `c` receives from now on (see [`echo_requests`]).
fn count_echo_requests(c: &Ns) {
    c.sh(&["nft", "add table ip ovt; add counter ip ovt echo; add chain ip ovt inbound { type filter hook input priority 0; policy accept; }; add rule ip ovt inbound icmp type echo-request counter name echo"]);
}

fn echo_requests(c: &Ns) -> u64 {
    let out = c.sh(&["nft", "-j", "list", "counter", "ip", "ovt", "echo"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    v["nftables"]
        .as_array()
        .and_then(|a| a.iter().find_map(|o| o["counter"]["packets"].as_u64()))
        .unwrap_or_else(|| panic!("counter: {out}"))
}

/// A don't-fragment ping carrying `size` bytes of payload.
fn df_ping(c: &Ns, ip: &str, size: u32) -> bool {
    let s = size.to_string();
    c.exec(&["ping", "-c", "1", "-W", "2", "-M", "do", "-s", &s, ip])
        .status
        .success()
}

#[test]
fn mtu_is_the_underlay_s_minus_50_or_the_option_and_the_port_is_configurable() {
    if !privileged("mtu_is_the_underlay_s_minus_50_or_the_option_and_the_port_is_configurable") {
        return;
    }
    for (underlay, port) in [(1500u32, 4789u16), (9000, 4790)] {
        let lab = Lab::new(2, underlay, port);
        lab.watch_underlay(port);
        let net = overlay("mtu", &["10.15.0.0/24"], &[4500], false);
        let mut fixed = overlay("mtu-fixed", &["10.16.0.0/24"], &[4501], false);
        fixed
            .options
            .insert("com.docker.network.driver.mtu".into(), "1300".into());
        let (c1, c2) = (lab.container("c1"), lab.container("c2"));
        let (f1, f2) = (lab.container("f1"), lab.container("f2"));
        let e1 = endpoint(&net, "10.15.0.2/24", "eth0");
        let e2 = endpoint(&net, "10.15.0.3/24", "eth0");
        let g1 = endpoint(&fixed, "10.16.0.2/24", "eth0");
        let g2 = endpoint(&fixed, "10.16.0.3/24", "eth0");
        let (h1, h2) = (&lab.hosts[0], &lab.hosts[1]);
        for h in [h1, h2] {
            create(h, &net);
            create(h, &fixed);
        }
        join(h1, &net, &e1, &c1);
        join(h2, &net, &e2, &c2);
        join(h1, &fixed, &g1, &f1);
        join(h2, &fixed, &g2, &f2);
        announce(&lab, &net, &[0, 1], &[(&e1, 0), (&e2, 1)]);
        announce(&lab, &fixed, &[0, 1], &[(&g1, 0), (&g2, 1)]);

        let want = underlay - 50;
        assert_eq!(mtu_of(&c1, "eth0"), u64::from(want), "underlay {underlay}");
        // A full-size unfragmented packet crosses; one byte more does not leave.
        assert!(
            df_ping(&c1, &addr(&e2), want - 28),
            "DF ping of {want} bytes"
        );
        assert!(!df_ping(&c1, &addr(&e2), want - 27));
        assert_eq!(mtu_of(&f1, "eth0"), 1300);
        assert!(df_ping(&f1, &addr(&g2), 1300 - 28));
        // The tunnel runs on the configured port.
        assert!(lab.count("vxlan") > 0, "no VXLAN packet on port {port}");
        assert_eq!(lab.count("other"), 0);
        let vx = netloom_drivers::overlay::peers::vxlan_name(4500, &net.id);
        let d = in_sandbox(h1, &net, &["ip", "-d", "link", "show", &vx]);
        assert!(d.contains(&format!("dstport {port}")), "{d}");

        leave(h1, &net, &e1, &c1);
        leave(h2, &net, &e2, &c2);
        leave(h1, &fixed, &g1, &f1);
        leave(h2, &fixed, &g2, &f2);
        for h in [h1, h2] {
            delete(h, &net);
            delete(h, &fixed);
            h.assert_clean(&[]);
        }
    }
}

#[test]
fn several_subnets_of_one_overlay_are_routed() {
    if !privileged("several_subnets_of_one_overlay_are_routed") {
        return;
    }
    let lab = Lab::new(2, 1500, 4789);
    let net = overlay(
        "prod-net",
        &["10.20.1.0/24", "10.20.2.0/24"],
        &[4200, 4201],
        false,
    );
    let (h1, h2) = (&lab.hosts[0], &lab.hosts[1]);
    let a = endpoint(&net, "10.20.1.2/24", "eth0"); // h1, subnet 1
    let b = endpoint(&net, "10.20.2.2/24", "eth0"); // h2, subnet 2
    let c = endpoint(&net, "10.20.2.3/24", "eth0"); // h1, subnet 2
    let d = endpoint(&net, "10.20.1.3/24", "eth0"); // h2, subnet 1
    let (ca, cb, cc, cd) = (
        lab.container("a"),
        lab.container("b"),
        lab.container("c"),
        lab.container("d"),
    );
    create(h1, &net);
    create(h2, &net);
    join(h1, &net, &a, &ca);
    join(h2, &net, &b, &cb);
    join(h1, &net, &c, &cc);
    join(h2, &net, &d, &cd);
    announce(&lab, &net, &[0, 1], &[(&a, 0), (&b, 1), (&c, 0), (&d, 1)]);

    assert!(ca.pings(&addr(&d)), "same subnet across hosts");
    assert!(ca.pings(&addr(&b)), "other subnet across hosts");
    assert!(ca.pings(&addr(&c)), "other subnet on the same host");
    assert!(cb.pings(&addr(&a)), "back from subnet 2 to subnet 1");
    // Routed once, by the subnet's gateway in the sandbox.
    assert_eq!(hops(&ca, &addr(&b)), 2, "a -> gateway -> b");
    let r = cc.ip(&["route", "show", "10.20.1.0/24"]);
    assert!(r.contains("via 10.20.2.1"), "c's route to subnet 1: {r}");
    // Two bridges and two VXLAN devices (one VNI per subnet) in each sandbox.
    let links = in_sandbox(h1, &net, &["ip", "-br", "link", "show"]);
    for vni in [4200u32, 4201] {
        let p = netloom_drivers::overlay::peers::bridge_name(vni, &net.id);
        let v = netloom_drivers::overlay::peers::vxlan_name(vni, &net.id);
        assert!(links.contains(&p) && links.contains(&v), "{links}");
    }

    leave(h1, &net, &a, &ca);
    leave(h2, &net, &b, &cb);
    leave(h1, &net, &c, &cc);
    leave(h2, &net, &d, &cd);
    for h in [h1, h2] {
        delete(h, &net);
        h.assert_clean(&[]);
    }
}

#[test]
fn internal_overlay_has_no_egress_and_only_vxlan_reaches_the_underlay() {
    if !privileged("internal_overlay_has_no_egress_and_only_vxlan_reaches_the_underlay") {
        return;
    }
    let lab = Lab::new(2, 1500, 4789);
    lab.watch_underlay(4789);
    let net = overlay("internal", &["10.14.0.0/24"], &[4140], true);
    let (h1, h2) = (&lab.hosts[0], &lab.hosts[1]);
    let (c1, c2) = (lab.container("c1"), lab.container("c2"));
    let e1 = endpoint(&net, "10.14.0.2/24", "eth0");
    let e2 = endpoint(&net, "10.14.0.3/24", "eth0");
    create(h1, &net);
    create(h2, &net);
    join(h1, &net, &e1, &c1);
    join(h2, &net, &e2, &c2);
    announce(&lab, &net, &[0, 1], &[(&e1, 0), (&e2, 1)]);
    assert!(c1.pings(&addr(&e2)));
    assert!(lab.count("vxlan") > 0);
    assert!(
        c1.ip(&["route", "show", "default"]).trim().is_empty(),
        "a default route"
    );
    assert!(!c1.pings("198.18.2.1"), "the router is reachable");
    // Even a container that routes through its gateway gets nowhere.
    c1.ip(&["route", "add", "default", "via", "10.14.0.1"]);
    for target in ["198.18.2.1", "198.18.1.11", "198.18.2.12"] {
        assert!(
            !c1.pings(target),
            "{target} reachable from an internal overlay"
        );
    }
    assert_eq!(lab.count("other"), 0, "non-VXLAN packets on the underlay");
    assert_eq!(lab.count("masq") + lab.count("unmasq"), 0);

    leave(h1, &net, &e1, &c1);
    leave(h2, &net, &e2, &c2);
    for h in [h1, h2] {
        delete(h, &net);
        h.assert_clean(&[]);
    }
}

/// Runs `f` with a gateway bridge (made from a fresh bridge driver, as after a restart)
/// on `h`; firewall rules for it are applied first.
fn with_gw<T: Send + 'static>(
    h: &Host,
    gw_id: &str,
    f: impl FnOnce(GatewayBridge) -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>>
    + Send
    + 'static,
) -> T {
    let gw_id = gw_id.to_string();
    h.call(move |ctx| async move {
        let bridge = BridgeDriver::new(ctx.nl.clone(), "t", 1500, "netloom0");
        let net = gateway_network(&gw_id, "172.18.0.0/16".parse().unwrap_or_default(), "");
        let gw = GatewayBridge::new(bridge, net).unwrap_or_else(|e| panic!("{e}"));
        gw.ensure().await.unwrap_or_else(|e| panic!("{e:?}"));
        let fw = Firewall::new("netloom_t").unwrap_or_else(|e| panic!("{e}"));
        let d = Desired {
            nets: vec![gw.rules()],
            ports: Vec::new(),
        };
        let script = fw.render_full(&d).unwrap_or_else(|e| panic!("{e}"));
        netloom_kernel::nft::apply(&script)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        f(gw).await
    })
}

#[test]
fn egress_leaves_through_the_gateway_bridge_masqueraded() {
    if !privileged("egress_leaves_through_the_gateway_bridge_masqueraded") {
        return;
    }
    let lab = Lab::new(2, 1500, 4789);
    lab.watch_underlay(4789);
    let net = overlay("egress", &["10.13.0.0/24"], &[4130], false);
    let (h1, h2) = (&lab.hosts[0], &lab.hosts[1]);
    let (c1, c2, c3) = (
        lab.container("c1"),
        lab.container("c2"),
        lab.container("c3"),
    );
    let e1 = endpoint(&net, "10.13.0.2/24", "eth0");
    let e2 = endpoint(&net, "10.13.0.3/24", "eth0");
    let e3 = endpoint(&net, "10.13.0.4/24", "eth0");
    create(h1, &net);
    create(h2, &net);
    join(h1, &net, &e1, &c1);
    join(h2, &net, &e2, &c2);
    join(h1, &net, &e3, &c3);
    announce(&lab, &net, &[0, 1], &[(&e1, 0), (&e2, 1), (&e3, 0)]);
    let gw_id = lab::id();
    let mut legs = Vec::new();
    for (c, ip) in [(&c1, "172.18.0.2"), (&c3, "172.18.0.3")] {
        let (sb, ip) = (sandbox(c), ip.parse().unwrap_or_else(|_| panic!()));
        let cid = c.name.clone();
        let ep_id = lab::id();
        let ep = with_gw(h1, &gw_id, move |gw| {
            Box::pin(async move {
                let ep = gw.endpoint(&ep_id, &cid, ip, "eth1");
                gw.attach(&ep, &sb)
                    .await
                    .unwrap_or_else(|e| panic!("{e:?}"));
                ep
            })
        });
        legs.push((ep, sandbox(c)));
    }
    let r = c1.ip(&["route", "show", "default"]);
    assert!(r.contains("via 172.18.0.1 dev eth1"), "default route: {r}");
    // Out to a peer on the underlay, which sees the node's own address.
    assert!(c1.pings("198.18.2.1"), "no egress");
    assert!(
        lab.count("masq") > 0,
        "the router saw no echo request from the node"
    );
    assert_eq!(
        lab.count("unmasq"),
        0,
        "a container address reached the underlay"
    );
    // ICC is off on the gateway bridge; the overlay still connects the two.
    assert!(
        !c1.pings("172.18.0.3"),
        "containers talk over the gateway bridge"
    );
    assert!(c1.pings(&addr(&e3)));
    assert!(c1.pings(&addr(&e2)));

    // A restart finds the same bridge, containers still attached.
    let idx = |h: &Host| h.ns.ip(&["-j", "link", "show", "docker_gwbridge"]);
    let before = idx(h1);
    with_gw(h1, &gw_id, |_gw| Box::pin(async {}));
    assert_eq!(before, idx(h1), "the gateway bridge was re-created");
    assert!(c1.pings("198.18.2.1"), "no egress after a restart");

    for (ep, sb) in legs {
        with_gw(h1, &gw_id, move |gw| {
            Box::pin(async move {
                gw.detach(&ep, &sb)
                    .await
                    .unwrap_or_else(|e| panic!("{e:?}"))
            })
        });
    }
    with_gw(h1, &gw_id, |gw| {
        Box::pin(async move {
            gw.remove().await.unwrap_or_else(|e| panic!("{e:?}"));
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        })
    });
    h1.ns.sh(&["nft", "delete", "table", "inet", "netloom_t"]);
    leave(h1, &net, &e1, &c1);
    leave(h2, &net, &e2, &c2);
    leave(h1, &net, &e3, &c3);
    for h in [h1, h2] {
        delete(h, &net);
        h.assert_clean(&[]);
    }
}

#[test]
fn two_overlays_are_isolated_even_with_the_same_subnet() {
    if !privileged("two_overlays_are_isolated_even_with_the_same_subnet") {
        return;
    }
    let lab = Lab::new(2, 1500, 4789);
    let na = overlay("blue", &["10.30.0.0/24"], &[4300], false);
    let nb = overlay("red", &["10.30.0.0/24"], &[4301], false);
    let (h1, h2) = (&lab.hosts[0], &lab.hosts[1]);
    let a1 = endpoint(&na, "10.30.0.2/24", "eth0");
    let a2 = endpoint(&na, "10.30.0.3/24", "eth0");
    let b2 = endpoint(&nb, "10.30.0.4/24", "eth0");
    let b1 = endpoint(&nb, "10.30.0.5/24", "eth0");
    let (ca1, ca2, cb1, cb2) = (
        lab.container("a1"),
        lab.container("a2"),
        lab.container("b1"),
        lab.container("b2"),
    );
    for h in [h1, h2] {
        create(h, &na);
        create(h, &nb);
    }
    join(h1, &na, &a1, &ca1);
    join(h2, &na, &a2, &ca2);
    join(h1, &nb, &b1, &cb1);
    join(h2, &nb, &b2, &cb2);
    announce(&lab, &na, &[0, 1], &[(&a1, 0), (&a2, 1)]);
    announce(&lab, &nb, &[0, 1], &[(&b1, 0), (&b2, 1)]);
    assert!(ca1.pings(&addr(&a2)));
    assert!(cb1.pings(&addr(&b2)));
    assert!(!ca1.pings(&addr(&b1)), "blue reaches red on the same host");
    // A confused control plane announces red's b2 into blue on node1: frames go out
    // with blue's VNI and node2 delivers them into blue, where b2 is not.
    announce(&lab, &na, &[0], &[(&a1, 0), (&a2, 1), (&b2, 1)]);
    count_echo_requests(&cb2);
    assert!(!ca1.pings(&addr(&b2)), "blue reaches red across nodes");
    assert_eq!(
        echo_requests(&cb2),
        0,
        "a blue packet reached red's container"
    );
    assert!(cb1.pings(&addr(&b2)));
    assert_eq!(echo_requests(&cb2), 1, "the counter counts");

    leave(h1, &na, &a1, &ca1);
    leave(h2, &na, &a2, &ca2);
    leave(h1, &nb, &b1, &cb1);
    leave(h2, &nb, &b2, &cb2);
    for h in [h1, h2] {
        delete(h, &na);
        delete(h, &nb);
        h.assert_clean(&[]);
    }
}
