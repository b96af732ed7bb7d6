//! `docker_gwbridge` as a network of its own, on the multi-host harness: a container
//! may ask for it (`run --network`, `network connect`), alone or with an overlay, and
//! then has one endpoint there that carries its default route (Docker's
//! `needDefaultGW`: no `gateway_…` leg besides it); `network prune` removes it like any
//! unused user network (Docker's prune), never while an overlay container's leg uses
//! it, and the next overlay container makes it again.

use netloom_e2e::multihost::{self, Cluster, Host};

fn form_swarm(c: &Cluster) {
    let tar = netloom_e2e::busybox_tar();
    for h in &c.hosts {
        h.daemon.ok(&[
            "image",
            "import",
            tar.to_str().unwrap_or_default(),
            "busybox",
        ]);
    }
    c.host(1)
        .daemon
        .ok(&["swarm", "init", "--advertise-addr", "198.18.1.11"]);
}

/// The names `network inspect docker_gwbridge` lists, sorted.
fn on_gwbridge(h: &Host) -> Vec<String> {
    let js = h.daemon.ok(&[
        "network",
        "inspect",
        "-f",
        "{{json .Containers}}",
        "docker_gwbridge",
    ]);
    let v: serde_json::Value = serde_json::from_str(&js).unwrap_or_else(|e| panic!("{e}: {js}"));
    let mut names: Vec<String> = v
        .as_object()
        .map(|m| {
            m.values()
                .filter_map(|c| c["Name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// How many interfaces of the container are on 172.16.0.0/12-style gateway subnets:
/// the number of its addresses in docker_gwbridge's subnet.
fn gw_ifaces(h: &Host, ctr: &str) -> usize {
    let sub = h.daemon.ok(&[
        "network",
        "inspect",
        "-f",
        "{{json .IPAM.Config}}",
        "docker_gwbridge",
    ]);
    let sub: ipnet::Ipv4Net = serde_json::from_str::<serde_json::Value>(&sub)
        .ok()
        .and_then(|v| v[0]["Subnet"].as_str().map(str::to_string))
        .unwrap_or_default()
        .parse()
        .unwrap_or_else(|e| panic!("{e}: {sub}"));
    let a = h.daemon.exec_ok(ctr, "ip -o -4 addr show");
    a.lines()
        .filter_map(|l| l.split_whitespace().skip_while(|w| *w != "inet").nth(1))
        .filter_map(|a| a.parse::<ipnet::Ipv4Net>().ok())
        .filter(|a| sub.contains(&a.addr()))
        .count()
}

#[test]
fn docker_gwbridge_asked_for_is_the_one_endpoint_there_and_prune_matches_docker() {
    let Some(c) = multihost::cluster(1, &[]) else {
        return;
    };
    form_swarm(&c);
    let h = c.host(1);
    h.daemon.ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--attachable",
        "--subnet",
        "10.63.0.0/24",
        "gw-ov",
    ]);
    // An overlay container gets its leg (and docker_gwbridge is made).
    h.daemon.run_sleeper("legged", &["--network", "gw-ov"]);
    let leg = on_gwbridge(h);
    assert_eq!(leg.len(), 1, "{leg:?}");
    assert!(leg[0].starts_with("gateway_"), "{leg:?}");

    // Connecting it to docker_gwbridge itself: its leg gives way, one endpoint there,
    // carrying the default route.
    h.daemon
        .ok(&["network", "connect", "docker_gwbridge", "legged"]);
    assert_eq!(on_gwbridge(h), ["legged"]);
    assert_eq!(
        gw_ifaces(h, "legged"),
        1,
        "two interfaces on docker_gwbridge"
    );
    let r = h.daemon.exec_ok("legged", "ip route");
    assert!(r.contains("default via"), "{r}");
    // Disconnecting it: the leg comes back while the overlay needs it.
    h.daemon
        .ok(&["network", "disconnect", "docker_gwbridge", "legged"]);
    let leg = on_gwbridge(h);
    assert!(leg.len() == 1 && leg[0].starts_with("gateway_"), "{leg:?}");
    assert_eq!(gw_ifaces(h, "legged"), 1);

    // run with both networks: one endpoint on docker_gwbridge, the container's own.
    h.daemon.run_sleeper(
        "both",
        &["--network", "gw-ov", "--network", "docker_gwbridge"],
    );
    assert_eq!(gw_ifaces(h, "both"), 1, "two interfaces on docker_gwbridge");
    let names = on_gwbridge(h);
    assert_eq!(
        names.iter().filter(|n| *n == "both").count(),
        1,
        "{names:?}"
    );
    assert!(
        !names.contains(&format!(
            "gateway_{}",
            &h.daemon.ok(&["inspect", "-f", "{{.Id}}", "both"])[..12]
        )),
        "{names:?}"
    );
    // And alone: an ordinary bridge container.
    h.daemon
        .run_sleeper("alone", &["--network", "docker_gwbridge"]);
    assert_eq!(gw_ifaces(h, "alone"), 1);

    // prune: docker_gwbridge stays while it has endpoints (legs included)...
    h.daemon.ok(&["rm", "-f", "both", "alone"]);
    h.daemon.ok(&["network", "prune", "-f"]);
    assert!(
        h.daemon
            .cli(&["network", "inspect", "docker_gwbridge"])
            .ok()
    );
    // ...and goes like any unused user network (Docker's prune), then comes back
    // with the next overlay container.
    h.daemon.ok(&["rm", "-f", "legged"]);
    let out = h.daemon.ok(&["network", "prune", "-f"]);
    assert!(out.contains("docker_gwbridge"), "{out}");
    assert!(
        !h.daemon
            .cli(&["network", "inspect", "docker_gwbridge"])
            .ok()
    );
    h.daemon.run_sleeper("again", &["--network", "gw-ov"]);
    assert_eq!(on_gwbridge(h).len(), 1);
}
