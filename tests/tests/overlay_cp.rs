//! The overlay control plane's bookkeeping, on the multi-host harness (198.18.0.0/15
//! underlay, 10.x overlays): an address a node tried and lost to another node is
//! given back to that node's IPAM; a node cannot overwrite another node's endpoint
//! record; a `Down` node's endpoint records do not keep `network rm` from removing a
//! network; `swarm leave` removes the node's copies of the swarm's networks.

use std::time::Duration;

use netloom_e2e::multihost::{self, Cluster, Host};
use netloom_e2e::{Out, wait_for};

fn curl(h: &Host, args: &[&str]) -> Out {
    let mut a = vec!["curl", "-s", "-S", "--max-time", "5"];
    a.extend_from_slice(args);
    h.exec(&a)
}

/// Node `i`'s certificate and key, written as PEM files (for curl).
fn pem_files(c: &Cluster, i: usize, tag: &str) -> (String, String) {
    let dir = &c.host(i).daemon.dir;
    let st = std::fs::read_to_string(dir.join("data/swarm/state.json")).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&st).unwrap_or_default();
    let (cert, key) = (
        dir.join(format!("{tag}.crt")),
        dir.join(format!("{tag}.key")),
    );
    let (Some(cp), Some(kp)) = (
        v["cert"]["cert_pem"].as_str(),
        v["cert"]["key_pem"].as_str(),
    ) else {
        panic!("node {i} has no certificate in its swarm state: {st}");
    };
    std::fs::write(&cert, cp).unwrap_or_default();
    std::fs::write(&key, kp).unwrap_or_default();
    (cert.display().to_string(), key.display().to_string())
}

fn node_id(h: &Host) -> String {
    h.daemon.ok(&["info", "--format", "{{.Swarm.NodeID}}"])
}

fn net_names(h: &Host) -> Vec<String> {
    h.daemon
        .ok(&["network", "ls", "--format", "{{.Name}}"])
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn overlay_control_plane_bookkeeping() {
    let Some(mut c) = multihost::cluster(2, &[]) else {
        return;
    };
    let tar = netloom_e2e::busybox_tar();
    for i in 1..=2 {
        c.host(i).daemon.ok(&[
            "image",
            "import",
            tar.to_str().unwrap_or_default(),
            "busybox",
        ]);
    }
    let (m, w) = (c.host(1), c.host(2));
    m.daemon
        .ok(&["swarm", "init", "--advertise-addr", "198.18.1.11"]);
    let tok = m.daemon.ok(&["swarm", "join-token", "-q", "worker"]);
    w.daemon
        .ok(&["swarm", "join", "--token", &tok, "198.18.1.11:2377"]);
    let net = m.daemon.ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--attachable",
        "--subnet",
        "10.61.0.0/24",
        "cp-net",
    ]);

    // The worker's IPAM picks 10.61.0.2 first, which the manager holds: it takes the
    // next one. Once the manager's container is gone, 10.61.0.2 is free swarm-wide and
    // the worker may use it (the address it tried is not kept reserved there).
    m.daemon
        .run_sleeper("a1", &["--network", "cp-net", "--ip", "10.61.0.2"]);
    w.daemon.run_sleeper("b1", &["--network", "cp-net"]);
    assert_eq!(w.daemon.ip("b1", "cp-net"), "10.61.0.3");
    m.daemon.ok(&["rm", "-f", "a1"]);
    let o = w.daemon.cli(&[
        "run",
        "-d",
        "--name",
        "b2",
        "--network",
        "cp-net",
        "--ip",
        "10.61.0.2",
        "busybox",
        "sleep",
        "100000",
    ]);
    assert!(
        o.ok(),
        "an address the worker lost once stayed reserved: {o}"
    );

    // The worker, with its own certificate, publishes a record under the manager's
    // endpoint: refused, and the manager's container stays reachable by name.
    m.daemon.run_sleeper("a2", &["--network", "cp-net"]);
    let nets: serde_json::Value = serde_json::from_str(&m.daemon.ok(&[
        "inspect",
        "-f",
        "{{json .NetworkSettings.Networks}}",
        "a2",
    ]))
    .unwrap_or_default();
    let ep = nets["cp-net"]["EndpointID"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!ep.is_empty(), "{nets}");
    let cid = m.daemon.ok(&["inspect", "-f", "{{.Id}}", "a2"]);
    let record = serde_json::json!({
        "publish": true,
        "reclaim": false,
        "record": {
            "node_id": node_id(w),
            "network_id": net,
            "endpoint_id": ep,
            "container_id": cid,
            "container_name": "a2",
            "ipv4": "10.61.0.200/24",
            "mac": "02:42:0a:3d:00:c8",
            "vtep": "198.18.2.12",
            "names": ["a2"],
        }
    })
    .to_string();
    let (cert, key) = pem_files(&c, 2, "w");
    let o = curl(
        w,
        &[
            "-k",
            "--cert",
            &cert,
            "--key",
            &key,
            "-d",
            &record,
            "https://198.18.1.11:2377/endpoints",
        ],
    );
    assert!(o.stdout.contains("belongs to node"), "{o}");
    std::thread::sleep(Duration::from_secs(7));
    assert!(
        w.daemon.exec("b1", "ping -c 1 -W 2 a2").ok(),
        "a2 unreachable by name from the worker after the refused overwrite"
    );

    // The worker is killed: once it is Down, its endpoints' records do not keep the
    // network from being removed.
    let wid = node_id(w);
    c.crash(2);
    let m = c.host(1);
    assert!(
        wait_for(Duration::from_secs(30), || {
            m.daemon
                .ok(&["node", "ls", "--format", "{{.ID}} {{.Status}}"])
                .lines()
                .any(|l| l == format!("{wid} Down"))
        }),
        "node2 never went Down"
    );
    m.daemon.ok(&["rm", "-f", "a2"]);
    let o = m.daemon.cli(&["network", "rm", "cp-net"]);
    assert!(o.ok(), "a Down node's endpoints pinned the network: {o}");
    assert!(!net_names(m).contains(&"cp-net".to_string()));

    // `swarm leave`: the swarm's networks leave this node with it.
    m.daemon
        .ok(&["network", "create", "-d", "overlay", "cp-two"]);
    assert!(net_names(m).contains(&"cp-two".to_string()));
    m.daemon.ok(&["swarm", "leave", "--force"]);
    assert!(
        !net_names(m).contains(&"cp-two".to_string()),
        "swarm network's copy left after swarm leave: {:?}",
        net_names(m)
    );
    let left = m.overlay_leftovers(&[]);
    assert!(
        left.is_empty(),
        "overlay state left after swarm leave: {left:#?}"
    );
    c.restart(2);
}

/// Three managers on managed etcd (`swarm init --cluster-store etcd`).
fn three_managers() -> Option<Cluster> {
    let c = multihost::cluster(3, &[])?;
    let m1 = c.host(1);
    m1.daemon.ok(&[
        "swarm",
        "init",
        "--advertise-addr",
        "198.18.1.11",
        "--cluster-store",
        "etcd",
    ]);
    let mt = m1.daemon.ok(&["swarm", "join-token", "-q", "manager"]);
    for i in 2..=3 {
        let h = c.host(i);
        let o = h.daemon.cli_t(
            &[
                "swarm",
                "join",
                "--token",
                &mt,
                "--advertise-addr",
                &h.addr.to_string(),
                "198.18.1.11:2377",
            ],
            Duration::from_secs(90),
        );
        assert!(o.ok(), "join of host {i}: {o}");
    }
    assert!(
        wait_for(Duration::from_secs(30), || {
            m1.daemon
                .cli(&["node", "ls", "--format", "{{.Status}}"])
                .stdout
                .lines()
                .filter(|l| *l == "Ready")
                .count()
                == 3
        }),
        "the three managers never were Ready"
    );
    Some(c)
}

#[test]
fn managers_creating_at_once_get_one_network_per_name_and_disjoint_subnets() {
    let Some(c) = three_managers() else {
        return;
    };
    // Every manager creates "same" and two networks of its own, all at once.
    let outs: Vec<(usize, String, Out)> = std::thread::scope(|s| {
        let mut hs = Vec::new();
        for i in 1..=3 {
            for name in ["same".to_string(), format!("own{i}a"), format!("own{i}b")] {
                let h = c.host(i);
                hs.push(s.spawn(move || {
                    let o = h.daemon.cli_t(
                        &["network", "create", "-d", "overlay", &name],
                        Duration::from_secs(60),
                    );
                    (i, name, o)
                }));
            }
        }
        hs.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let same_ok = outs
        .iter()
        .filter(|(_, n, o)| n == "same" && o.ok())
        .count();
    assert_eq!(same_ok, 1, "{outs:?}");
    for (i, n, o) in &outs {
        assert!(n == "same" || o.ok(), "create of {n} on manager {i}: {o}");
    }
    // Every manager lists the same networks, each once, with disjoint subnets.
    let names = ["same", "own1a", "own1b", "own2a", "own2b", "own3a", "own3b"];
    for i in 1..=3 {
        let h = c.host(i);
        assert!(
            wait_for(Duration::from_secs(15), || {
                let ls = h
                    .daemon
                    .cli(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"])
                    .stdout;
                let mut got: Vec<&str> = ls
                    .lines()
                    .filter_map(|l| l.strip_suffix(" overlay"))
                    .collect();
                got.sort_unstable();
                let mut want = names.to_vec();
                want.sort_unstable();
                got == want
            }),
            "manager {i} lists {:?}",
            h.daemon.cli(&["network", "ls"]).stdout
        );
    }
    let mut subnets: Vec<String> = names
        .iter()
        .map(|n| {
            c.host(3)
                .daemon
                .ok(&["network", "inspect", "-f", "{{json .IPAM.Config}}", n])
        })
        .collect();
    let all = subnets.len();
    subnets.sort();
    subnets.dedup();
    assert_eq!(subnets.len(), all, "subnets handed out twice: {subnets:?}");
    for n in names {
        c.host(1).daemon.ok(&["network", "rm", n]);
    }
}

/// `etcdctl` inside host `h`'s namespace (its daemon's own etcd).
fn etcdctl(h: &Host, args: &[&str]) -> Out {
    let mut a = vec!["etcdctl", "--endpoints", "127.0.0.1:2379"];
    a.extend_from_slice(args);
    h.exec(&a)
}

#[test]
fn a_removal_marker_whose_removal_is_over_does_not_block_publishes() {
    let Some(c) = multihost::cluster_on_etcd(2, &[]) else {
        return;
    };
    let tar = netloom_e2e::busybox_tar();
    for i in 1..=2 {
        c.host(i).daemon.ok(&[
            "image",
            "import",
            tar.to_str().unwrap_or_default(),
            "busybox",
        ]);
    }
    let (m, w) = (c.host(1), c.host(2));
    m.daemon
        .ok(&["swarm", "init", "--advertise-addr", "198.18.1.11"]);
    let tok = m.daemon.ok(&["swarm", "join-token", "-q", "worker"]);
    w.daemon
        .ok(&["swarm", "join", "--token", &tok, "198.18.1.11:2377"]);
    let net = m.daemon.ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--attachable",
        "--subnet",
        "10.62.0.0/24",
        "marked",
    ]);
    let key = format!("/netloom/swarm/alloc/removing/{net}");
    // What the manager leaves when it dies in the middle of `network rm` and comes
    // back: a marker naming itself, while it removes nothing.
    let me = format!("\"{}\"", node_id(m));
    let o = etcdctl(m, &["put", &key, &me]);
    assert!(o.ok(), "{o}");
    let o = w.daemon.cli(&[
        "run",
        "-d",
        "--name",
        "w1",
        "--network",
        "marked",
        "busybox",
        "sleep",
        "100000",
    ]);
    assert!(
        o.ok(),
        "a stale removal marker blocked the worker's run: {o}"
    );
    // A marker of a node that is not up (a manager that is gone).
    let o = etcdctl(m, &["put", &key, "\"gone0000000000000000000000\""]);
    assert!(o.ok(), "{o}");
    let o = m.daemon.cli(&[
        "run",
        "-d",
        "--name",
        "m1",
        "--network",
        "marked",
        "busybox",
        "sleep",
        "100000",
    ]);
    assert!(
        o.ok(),
        "a stale removal marker blocked the manager's run: {o}"
    );
    let left = etcdctl(m, &["get", "--keys-only", &key]);
    assert!(left.stdout.trim().is_empty(), "marker kept: {left}");

    // A real removal still works and leaves no marker.
    m.daemon.ok(&["rm", "-f", "m1"]);
    w.daemon.ok(&["rm", "-f", "w1"]);
    assert!(wait_for(Duration::from_secs(10), || m
        .daemon
        .cli(&["network", "rm", "marked"])
        .ok()));
    let left = etcdctl(
        m,
        &[
            "get",
            "--prefix",
            "--keys-only",
            "/netloom/swarm/alloc/removing/",
        ],
    );
    assert!(left.stdout.trim().is_empty(), "marker left: {left}");
    c.assert_no_overlay_leftovers();
}
