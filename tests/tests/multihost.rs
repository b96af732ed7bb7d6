//! The multi-host harness itself: hosts on two segments reach each other through the
//! router, a partition cuts them (and heals), a link failure isolates one host, a
//! crashed daemon restarts, and nothing is left behind.

use std::time::Duration;

use netloom_e2e::multihost::{self, Cluster};
use netloom_e2e::wait_for;

#[test]
fn harness_underlay_faults_and_cleanup() {
    let Some(mut c) = multihost::cluster(3, &[]) else {
        return;
    };
    let prefix = c.prefix.clone();
    let names: Vec<String> = c.hosts.iter().map(|h| h.daemon.name.clone()).collect();
    let (a1, a2, a3) = (c.host(1).addr, c.host(2).addr, c.host(3).addr);
    assert_eq!(
        (c.host(1).segment, c.host(2).segment, c.host(3).segment),
        (1, 2, 1)
    );

    // Through the router (node1 → node2) and on one segment (node1 → node3).
    assert!(
        c.host(1).pings(a2),
        "node1 cannot reach node2 via the router"
    );
    assert!(
        c.host(2).pings(a1),
        "node2 cannot reach node1 via the router"
    );
    assert!(
        c.host(1).pings(a3),
        "node1 cannot reach node3 on its segment"
    );
    let tr = c.host(1).exec(&["ip", "route", "get", &a2.to_string()]);
    assert!(tr.stdout.contains("via 198.18.1.1"), "{tr}");
    // The router knows only the two segments: nothing routes out of the test.
    let routes = c.router.exec(&["ip", "-4", "route", "show"]);
    let nets: Vec<&str> = routes
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(nets, ["198.18.1.0/24", "198.18.2.0/24"], "{routes}");

    // Partition: segment 2 is cut off from segment 1; segment 1 still works.
    c.partition(2);
    assert!(
        !c.host(1).pings(a2),
        "partition did not cut node1 from node2"
    );
    assert!(
        !c.host(2).pings(a1),
        "partition did not cut node2 from node1"
    );
    assert!(
        c.host(1).pings(a3),
        "partition cut node1 from node3 on its own segment"
    );
    c.heal(2);
    assert!(
        wait_for(Duration::from_secs(5), || c.host(1).pings(a2)),
        "heal did not restore node1 → node2"
    );

    // Link failure: node3 alone is off the underlay.
    c.link_down(3);
    assert!(!c.host(1).pings(a3), "link down did not isolate node3");
    assert!(c.host(1).pings(a2));
    c.link_up(3);
    assert!(
        wait_for(Duration::from_secs(5), || c.host(3).pings(a2)),
        "link up did not restore node3 (default route)"
    );

    // Crash and restart of one daemon.
    let pid = c.host(2).daemon.pid().expect("node2 running");
    c.crash(2);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert!(!c.host(2).daemon.cli(&["version"]).ok());
    c.restart(2);
    assert!(c.host(2).daemon.cli(&["version"]).ok());

    drop(c);
    assert!(
        Cluster::namespaces_left(&prefix).is_empty(),
        "namespaces left: {:?}",
        Cluster::namespaces_left(&prefix)
    );
    let all = netloom_e2e::sh("ip", &["netns", "list"]).stdout;
    for n in names {
        assert!(
            !all.lines().any(|l| l.split_whitespace().next() == Some(&n)),
            "host namespace {n} left"
        );
    }
}
