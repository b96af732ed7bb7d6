//! Swarm mode on the multi-host harness: 1 manager + 2 workers formed with the real
//! docker CLI and with netloom's CLI; Docker's errors for bad input; failure
//! detection (a killed node is Down, then Ready after a restart); restart of every
//! node; leave and node rm on both sides; and the security refusals seen from outside
//! (wrong secret, another CA's digest, a manager token on the embedded store, a plain
//! TCP client, another swarm's certificate, a removed node's certificate).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use netloom_e2e::multihost::{self, Cluster, Host};
use netloom_e2e::{Out, run_cmd, wait_for};

fn docker_bin() -> Option<PathBuf> {
    let fixed = PathBuf::from("/usr/local/bin/docker");
    fixed.is_file().then_some(fixed)
}

/// Runs the docker CLI against host `h`.
fn docker(bin: &PathBuf, h: &Host, args: &[&str]) -> Out {
    let config = h.daemon.dir.join("docker-config");
    let _ = std::fs::create_dir_all(&config);
    let mut c = Command::new(bin);
    c.args(args)
        .env("DOCKER_HOST", h.daemon.host_arg())
        .env("DOCKER_CONFIG", &config)
        .env("DOCKER_CLI_HINTS", "false")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_API_VERSION");
    run_cmd(c, Duration::from_secs(60))
}

fn node_id(h: &Host) -> String {
    h.daemon.ok(&["info", "--format", "{{.Swarm.NodeID}}"])
}

/// `node ls` on `m` as `ID STATUS` pairs.
fn states(m: &Host) -> Vec<(String, String)> {
    let o = m
        .daemon
        .cli(&["node", "ls", "--format", "{{.ID}} {{.Status}}"]);
    o.stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn state_of(m: &Host, id: &str) -> Option<String> {
    states(m).into_iter().find(|(i, _)| i == id).map(|(_, s)| s)
}

fn worker_token(m: &Host) -> String {
    m.daemon.ok(&["swarm", "join-token", "-q", "worker"])
}

#[test]
fn docker_cli_forms_a_swarm_and_gets_dockers_errors() {
    let Some(bin) = docker_bin() else {
        println!("SKIP: docker CLI not installed");
        return;
    };
    let Some(c) = multihost::cluster(3, &[]) else {
        return;
    };
    let (m, w1, w2) = (c.host(1), c.host(2), c.host(3));
    let o = docker(
        &bin,
        m,
        &["swarm", "init", "--advertise-addr", "198.18.1.11"],
    );
    assert!(o.ok(), "{o}");
    assert!(
        o.stdout.contains("Swarm initialized: current node ("),
        "{o}"
    );
    assert!(
        o.stdout.contains("docker swarm join --token SWMTKN-1-"),
        "{o}"
    );
    assert!(o.stdout.contains(" 198.18.1.11:2377"), "{o}");
    let tok = docker(&bin, m, &["swarm", "join-token", "-q", "worker"])
        .stdout
        .trim()
        .to_string();
    assert!(tok.starts_with("SWMTKN-1-") && tok.len() == 85, "{tok}");
    for w in [w1, w2] {
        let o = docker(
            &bin,
            w,
            &["swarm", "join", "--token", &tok, "198.18.1.11:2377"],
        );
        assert!(o.ok(), "{o}");
        assert_eq!(o.stdout.trim(), "This node joined a swarm as a worker.");
    }
    let ls = docker(&bin, m, &["node", "ls"]);
    assert!(ls.ok(), "{ls}");
    assert_eq!(
        ls.stdout.lines().filter(|l| l.contains("Ready")).count(),
        3,
        "{ls}"
    );
    assert!(ls.stdout.contains("Leader"), "{ls}");
    let info = docker(
        &bin,
        w1,
        &[
            "info",
            "--format",
            "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
        ],
    );
    assert_eq!(info.stdout.trim(), "active false", "{info}");
    let pretty = docker(&bin, m, &["node", "inspect", "--pretty", "self"]);
    assert!(
        pretty.stdout.contains("Leader:") && pretty.stdout.contains("Yes"),
        "{pretty}"
    );

    // Docker's errors, and nothing changed.
    let o = docker(&bin, w1, &["node", "ls"]);
    assert!(!o.ok() && o.stderr.contains("This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state."), "{o}");
    let o = docker(
        &bin,
        w1,
        &["swarm", "join", "--token", &tok, "198.18.1.11:2377"],
    );
    assert!(
        !o.ok() && o.stderr.contains("This node is already part of a swarm"),
        "{o}"
    );
    let o = docker(&bin, m, &["swarm", "init"]);
    assert!(
        !o.ok() && o.stderr.contains("This node is already part of a swarm"),
        "{o}"
    );
    let o = docker(&bin, m, &["swarm", "leave"]);
    assert!(
        !o.ok()
            && o.stderr.contains(
                "Removing the last manager erases all current state of the swarm. Use `--force`"
            ),
        "{o}"
    );
    let o = docker(&bin, m, &["node", "promote", &node_id(w1)]);
    assert!(!o.ok() && o.stderr.contains("--cluster-store etcd"), "{o}");
    let mt = docker(&bin, m, &["swarm", "join-token", "-q", "manager"])
        .stdout
        .trim()
        .to_string();
    let o = docker(&bin, w2, &["swarm", "leave"]);
    assert!(o.ok(), "{o}");
    let o = docker(
        &bin,
        w2,
        &["swarm", "join", "--token", &mt, "198.18.1.11:2377"],
    );
    assert!(!o.ok() && o.stderr.contains("--cluster-store etcd"), "{o}");
    assert_eq!(
        docker(&bin, w2, &["info", "--format", "{{.Swarm.LocalNodeState}}"])
            .stdout
            .trim(),
        "inactive"
    );
    // The worker that left is Down on the manager; node rm removes it there.
    let id2 = states(m)
        .into_iter()
        .find(|(i, _)| *i != node_id(m) && *i != node_id(w1))
        .map(|(i, _)| i)
        .unwrap();
    assert!(wait_for(Duration::from_secs(10), || state_of(m, &id2)
        .as_deref()
        == Some("Down")));
    let o = docker(&bin, m, &["node", "rm", &id2]);
    assert!(o.ok(), "{o}");
    assert_eq!(states(m).len(), 2);
    // A node that is up cannot be removed without --force.
    let id1 = node_id(w1);
    let o = docker(&bin, m, &["node", "rm", &id1]);
    assert!(
        !o.ok() && o.stderr.contains("is not down and can't be removed"),
        "{o}"
    );
    let o = docker(
        &bin,
        m,
        &[
            "node",
            "update",
            "--availability",
            "drain",
            "--label-add",
            "zone=a",
            &id1,
        ],
    );
    assert!(o.ok(), "{o}");
    let f = docker(
        &bin,
        m,
        &[
            "node",
            "inspect",
            "-f",
            "{{.Spec.Availability}} {{.Spec.Labels.zone}}",
            &id1,
        ],
    );
    assert_eq!(f.stdout.trim(), "drain a", "{f}");
    let o = docker(&bin, m, &["swarm", "leave", "--force"]);
    assert_eq!(o.stdout.trim(), "Node left the swarm.", "{o}");
    drop(c);
}

#[test]
fn netloom_cli_swarm_failure_detection_and_restarts() {
    let Some(mut c) = multihost::cluster(3, &[]) else {
        return;
    };
    let o = c.host(1).daemon.cli(&[
        "swarm",
        "init",
        "--advertise-addr",
        "198.18.1.11",
        "--default-addr-pool",
        "10.20.0.0/16",
        "--default-addr-pool-mask-length",
        "26",
    ]);
    assert!(
        o.ok() && o.stdout.contains("netloom swarm join --token SWMTKN-1-"),
        "{o}"
    );
    let tok = worker_token(c.host(1));
    for i in [2, 3] {
        let o = c
            .host(i)
            .daemon
            .cli(&["swarm", "join", "--token", &tok, "198.18.1.11:2377"]);
        assert_eq!(
            o.stdout.trim(),
            "This node joined a swarm as a worker.",
            "{o}"
        );
    }
    let ids: Vec<String> = (1..=3).map(|i| node_id(c.host(i))).collect();
    assert!(wait_for(Duration::from_secs(10), || states(c.host(1))
        .iter()
        .all(|(_, s)| s == "Ready")
        && states(c.host(1)).len() == 3));
    let info = c.host(1).daemon.ok(&["info"]);
    assert!(
        info.contains("Is Manager: true")
            && info.contains("Nodes: 3")
            && info.contains("Default Address Pool: 10.20.0.0/16")
            && info.contains("SubnetSize: 26"),
        "{info}"
    );

    // A killed node is Down within 10 s, Ready again after a restart (same ID).
    c.crash(3);
    let t0 = Instant::now();
    assert!(
        wait_for(Duration::from_secs(10), || state_of(c.host(1), &ids[2])
            .as_deref()
            == Some("Down")),
        "node3 not Down within 10 s: {:?}",
        states(c.host(1))
    );
    println!("down after {:?}", t0.elapsed());
    c.restart(3);
    assert!(
        wait_for(Duration::from_secs(10), || state_of(c.host(1), &ids[2])
            .as_deref()
            == Some("Ready")),
        "{:?}",
        states(c.host(1))
    );
    assert_eq!(node_id(c.host(3)), ids[2]);

    // A partition is seen on both sides and heals by itself.
    c.partition(2);
    assert!(
        wait_for(Duration::from_secs(15), || state_of(c.host(1), &ids[1])
            .as_deref()
            == Some("Down")),
        "{:?}",
        states(c.host(1))
    );
    c.heal(2);
    assert!(
        wait_for(Duration::from_secs(20), || state_of(c.host(1), &ids[1])
            .as_deref()
            == Some("Ready")),
        "partition did not heal: {:?}",
        states(c.host(1))
    );

    // Restart of every node keeps the cluster.
    for i in 1..=3 {
        c.host_mut(i).daemon.stop();
    }
    for i in 1..=3 {
        c.restart(i);
    }
    assert!(
        wait_for(Duration::from_secs(15), || {
            let s = states(c.host(1));
            s.len() == 3 && s.iter().all(|(_, st)| st == "Ready")
        }),
        "{:?}",
        states(c.host(1))
    );
    for i in 1..=3 {
        assert_eq!(node_id(c.host(i)), ids[i - 1]);
    }
    // join-token --rotate invalidates the old token.
    c.host(2).daemon.ok(&["swarm", "leave"]);
    assert!(wait_for(Duration::from_secs(10), || state_of(
        c.host(1),
        &ids[1]
    )
    .as_deref()
        == Some("Down")));
    c.host(1).daemon.ok(&["node", "rm", &ids[1]]);
    let o = c
        .host(1)
        .daemon
        .cli(&["swarm", "join-token", "--rotate", "worker"]);
    assert!(
        o.stdout.contains("Successfully rotated worker join token."),
        "{o}"
    );
    let o = c
        .host(2)
        .daemon
        .cli(&["swarm", "join", "--token", &tok, "198.18.1.11:2377"]);
    assert!(
        !o.ok()
            && o.stderr
                .contains("A valid join token is necessary to join this cluster"),
        "{o}"
    );
    let o = c.host(2).daemon.cli(&[
        "swarm",
        "join",
        "--token",
        &worker_token(c.host(1)),
        "198.18.1.11:2377",
    ]);
    assert!(o.ok(), "{o}");
    // Root rotation with no downtime: every node renews, the old root goes.
    let old_root = c.host(1).daemon.ok(&["swarm", "ca"]);
    let o = c
        .host(1)
        .daemon
        .cli_t(&["swarm", "ca", "--rotate"], Duration::from_secs(150));
    assert!(o.ok(), "{o}");
    assert_ne!(o.stdout.trim(), old_root, "root unchanged");
    let s = states(c.host(1));
    assert!(
        s.len() == 3 && s.iter().all(|(_, st)| st == "Ready"),
        "{s:?}"
    );
    let o = c
        .host(3)
        .daemon
        .cli(&["info", "--format", "{{.Swarm.Error}}"]);
    assert_eq!(
        o.stdout.trim(),
        "",
        "worker session broken after rotation: {o}"
    );
    drop(c);
}

/// `curl` from inside host `h`'s namespace to the manager's cluster port.
fn curl(h: &Host, args: &[&str]) -> Out {
    let mut a = vec!["curl", "-s", "-S", "--max-time", "5"];
    a.extend_from_slice(args);
    h.exec(&a)
}

fn pem_files(c: &Cluster, i: usize, tag: &str) -> (String, String) {
    let st = std::fs::read_to_string(c.host(i).daemon.dir.join("data/swarm/state.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&st).unwrap();
    let dir = &c.host(i).daemon.dir;
    let (cert, key) = (
        dir.join(format!("{tag}.crt")),
        dir.join(format!("{tag}.key")),
    );
    std::fs::write(&cert, v["cert"]["cert_pem"].as_str().unwrap()).unwrap();
    std::fs::write(&key, v["cert"]["key_pem"].as_str().unwrap()).unwrap();
    (cert.display().to_string(), key.display().to_string())
}

#[test]
fn security_refusals_change_nothing() {
    let Some(c) = multihost::cluster(4, &[]) else {
        return;
    };
    let (m, a, b) = (c.host(1), c.host(2), c.host(4));
    m.daemon
        .ok(&["swarm", "init", "--advertise-addr", "198.18.1.11"]);
    let tok = worker_token(m);
    let count = || states(m).len();
    // Wrong secret.
    let (head, _) = tok.rsplit_once('-').unwrap();
    let wrong = format!("{head}-{}", "0".repeat(25));
    let o = a
        .daemon
        .cli(&["swarm", "join", "--token", &wrong, "198.18.1.11:2377"]);
    assert!(
        !o.ok()
            && o.stderr
                .contains("A valid join token is necessary to join this cluster"),
        "{o}"
    );
    // A tampered CA digest: refused before the secret is sent.
    let parts: Vec<&str> = tok.split('-').collect();
    let tampered = format!("SWMTKN-1-{}-{}", "1".repeat(50), parts[3]);
    let o = a
        .daemon
        .cli(&["swarm", "join", "--token", &tampered, "198.18.1.11:2377"]);
    assert!(
        !o.ok() && o.stderr.contains("remote CA does not match fingerprint"),
        "{o}"
    );
    // A manager join on the embedded store.
    let mt = m.daemon.ok(&["swarm", "join-token", "-q", "manager"]);
    let o = a
        .daemon
        .cli(&["swarm", "join", "--token", &mt, "198.18.1.11:2377"]);
    assert!(!o.ok() && o.stderr.contains("--cluster-store etcd"), "{o}");
    // A worker token presented for a manager role (the protocol's own field).
    let body = format!(
        r#"{{"token":"{tok}","csr":"x","role":"manager","hostname":"h","advertise_addr":"","gossip_port":7946,"availability":"active"}}"#
    );
    let o = curl(
        a,
        &[
            "-k",
            "--tlsv1.3",
            "-d",
            &body,
            "https://198.18.1.11:2377/join",
        ],
    );
    assert!(
        o.stdout
            .contains("a worker join token cannot make a manager"),
        "{o}"
    );
    for x in [a, b] {
        assert_eq!(
            x.daemon
                .ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"]),
            "inactive"
        );
    }
    assert_eq!(count(), 1, "a refused join changed the node list");
    // A plain-TCP (HTTP) client gets no answer.
    let o = curl(a, &["http://198.18.1.11:2377/ca"]);
    assert!(!o.ok() && !o.stdout.contains("BEGIN CERTIFICATE"), "{o}");
    // TLS 1.2 is refused.
    let o = curl(
        a,
        &["-k", "--tls-max", "1.2", "https://198.18.1.11:2377/ca"],
    );
    assert!(!o.ok(), "{o}");
    // A certificate of another swarm: node4 makes its own swarm.
    b.daemon
        .ok(&["swarm", "init", "--advertise-addr", "198.18.2.14"]);
    let (cert, key) = pem_files(&c, 4, "other");
    let o = curl(
        a,
        &[
            "-k",
            "--cert",
            &cert,
            "--key",
            &key,
            "-d",
            "{}",
            "https://198.18.1.11:2377/session",
        ],
    );
    assert!(!o.ok() && !o.stdout.contains("\"role\""), "{o}");
    // Without a certificate, /session is refused.
    let o = curl(a, &["-k", "-d", "{}", "https://198.18.1.11:2377/session"]);
    assert!(
        o.stdout
            .contains("a node certificate of this swarm is required"),
        "{o}"
    );
    // A removed node's certificate is refused from then on, and the node leaves.
    a.daemon
        .ok(&["swarm", "join", "--token", &tok, "198.18.1.11:2377"]);
    let hb = r#"{"heartbeat":{"hostname":"h","engine_version":"x","state":"ready"},"wait_ms":0}"#;
    let (cert, key) = pem_files(&c, 2, "removed");
    let o = curl(
        a,
        &[
            "-k",
            "--cert",
            &cert,
            "--key",
            &key,
            "-d",
            hb,
            "https://198.18.1.11:2377/session",
        ],
    );
    assert!(
        o.stdout.contains("\"role\":\"worker\""),
        "valid certificate refused: {o}"
    );
    let ida = node_id(a);
    m.daemon.ok(&["node", "rm", "--force", &ida]);
    let o = curl(
        a,
        &[
            "-k",
            "--cert",
            &cert,
            "--key",
            &key,
            "-d",
            hb,
            "https://198.18.1.11:2377/session",
        ],
    );
    assert!(
        !o.ok() && !o.stdout.contains("\"role\""),
        "removed node's certificate accepted: {o}"
    );
    assert!(
        wait_for(Duration::from_secs(15), || a.daemon.ok(&[
            "info",
            "--format",
            "{{.Swarm.LocalNodeState}}"
        ]) == "inactive"),
        "removed node did not leave"
    );
    assert_eq!(count(), 1);
    drop(c);
}

#[test]
fn a_node_whose_certificate_expired_says_so() {
    use netloom_cluster::{Role, RootCa};
    let Some(mut c) = multihost::cluster(2, &[]) else {
        return;
    };
    c.host(1)
        .daemon
        .ok(&["swarm", "init", "--advertise-addr", "198.18.1.11"]);
    let tok = worker_token(c.host(1));
    c.host(2)
        .daemon
        .ok(&["swarm", "join", "--token", &tok, "198.18.1.11:2377"]);
    let id = node_id(c.host(2));
    // The node was down past its certificate's end: replace it with an expired one.
    c.host_mut(2).daemon.stop();
    let p = c.host(2).daemon.dir.join("data/swarm/state.json");
    let mut st: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    let past = std::time::SystemTime::now() - Duration::from_secs(3600);
    let cluster_id = st["cluster_id"].as_str().unwrap().to_string();
    let old = RootCa::generate()
        .unwrap()
        .issue_new(&id, Role::Worker, &cluster_id, past)
        .unwrap();
    st["cert"]["cert_pem"] = old.cert_pem.into();
    st["cert"]["key_pem"] = old.key_pem.into();
    std::fs::write(&p, serde_json::to_vec(&st).unwrap()).unwrap();
    c.restart(2);
    let err = || {
        c.host(2)
            .daemon
            .ok(&["info", "--format", "{{.Swarm.Error}}"])
    };
    assert!(
        wait_for(Duration::from_secs(10), || err().contains(
            "Swarm certificates have expired. To replace them, leave the swarm and join again."
        )),
        "{}",
        err()
    );
    // As the message says: leave and join again.
    c.host(2).daemon.ok(&["swarm", "leave"]);
    c.host(2)
        .daemon
        .ok(&["swarm", "join", "--token", &tok, "198.18.1.11:2377"]);
    assert_eq!(err(), "");
}
