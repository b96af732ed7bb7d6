//! Swarm mode with highly available managers on the multi-host harness: 3 managers
//! that run their own etcd members (`swarm init --cluster-store etcd`, real `etcd`
//! processes started by the daemons) and workers.
//!
//! - `a_dead_leader_is_replaced_and_workers_fail_over`: killing the leader's netloomd
//!   and its etcd member leaves a cluster that accepts `node update` and an overlay
//!   `network create` from the others
//!   within 15 s and elects a new leader; a worker whose manager is killed fails over
//!   and keeps receiving watch updates, with nothing lost or repeated.
//! - `etcd_members_follow_manager_roles`: join, promote, demote, `node rm --force`
//!   of a dead manager and leave add and remove the node's etcd member (as etcd
//!   itself reports); a manager demoted while it was down continues as a worker.
//! - `lost_quorum_is_reported_and_recovers`: 2 of 3 managers down is reported as
//!   Docker reports it while the data plane keeps running; it recovers without a
//!   restart when they come back, and a restart of every node keeps the cluster.
//!
//! - `an_existing_etcd_cluster_serves_the_managers`: `--cluster-store etcd://…` uses an
//!   etcd the managers do not run; a dead manager is replaced there too.
//!
//! `NETLOOM_LONG=1` adds `repeated_leader_kills_under_writes`.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use netloom_e2e::multihost::{self, Cluster, Host};
use netloom_e2e::{Out, run_cmd, wait_for};
use serde_json::Value;

const MANAGERS: [usize; 3] = [1, 2, 3];

fn node_id(h: &Host) -> String {
    h.daemon.ok(&["info", "--format", "{{.Swarm.NodeID}}"])
}

/// The member directory of a host's etcd.
fn member_dir(h: &Host) -> PathBuf {
    h.daemon.dir.join("data/swarm/etcd")
}

/// The pid of the host's etcd member, from /proc.
fn etcd_pid(h: &Host) -> Option<i32> {
    let data = format!("--data-dir={}", member_dir(h).join("data").display());
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        let cmd = String::from_utf8_lossy(&cmd);
        cmd.split('\0').any(|a| a == data).then_some(pid)
    })
}

/// Kills host `i`'s etcd member and netloomd (SIGKILL both: a crash).
fn kill_manager(c: &mut Cluster, i: usize) {
    if let Some(pid) = etcd_pid(c.host(i)) {
        // SAFETY: kill(2) on the pid of an etcd this test's daemon started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    c.crash(i);
    assert!(
        wait_for(Duration::from_secs(5), || etcd_pid(c.host(i)).is_none()),
        "etcd of host {i} still runs"
    );
}

/// etcdctl in host `via`'s namespace with its member's certificate.
fn etcdctl(via: &Host, args: &[&str]) -> Out {
    let d = member_dir(via);
    let ep = format!("https://{}:2379", via.addr);
    let mut a: Vec<String> = [
        "etcdctl",
        "--endpoints",
        &ep,
        "--cacert",
        &d.join("ca.pem").display().to_string(),
        "--cert",
        &d.join("member.pem").display().to_string(),
        "--key",
        &d.join("member-key.pem").display().to_string(),
        "--command-timeout=3s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(args.iter().map(|s| s.to_string()));
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &via.daemon.name])
        .args(&a)
        .env("ETCDCTL_API", "3");
    run_cmd(cmd, Duration::from_secs(10))
}

/// etcd's members as `(name, is_learner)`, asked through host `via`.
fn members(via: &Host) -> Option<Vec<(String, bool)>> {
    let o = etcdctl(via, &["member", "list", "-w", "json"]);
    if !o.ok() {
        return None;
    }
    let v: Value = serde_json::from_str(&o.stdout).ok()?;
    let mut out: Vec<(String, bool)> = v["members"]
        .as_array()?
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap_or("").to_string(),
                m["isLearner"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    out.sort();
    Some(out)
}

fn voting(ids: &[&str]) -> Vec<(String, bool)> {
    let mut v: Vec<(String, bool)> = ids.iter().map(|i| (i.to_string(), false)).collect();
    v.sort();
    v
}

/// `node ls` on `m`: `(id, status, manager status)`.
fn nodes(m: &Host) -> Option<Vec<(String, String, String)>> {
    let o = m.daemon.cli_t(
        &[
            "node",
            "ls",
            "--format",
            "{{.ID}}|{{.Status}}|{{.ManagerStatus}}",
        ],
        Duration::from_secs(10),
    );
    o.ok().then(|| {
        o.stdout
            .lines()
            .filter_map(|l| {
                let mut p = l.split('|');
                Some((p.next()?.into(), p.next()?.into(), p.next()?.into()))
            })
            .collect()
    })
}

fn leader(m: &Host) -> Option<String> {
    nodes(m)?
        .into_iter()
        .find(|(_, _, ms)| ms == "Leader")
        .map(|(id, _, _)| id)
}

fn all_ready(m: &Host, n: usize) -> bool {
    nodes(m).is_some_and(|ns| ns.len() == n && ns.iter().all(|(_, s, _)| s == "Ready"))
}

fn relay(h: &Host) -> Value {
    let (code, body) = h.daemon.api("GET", "/swarm/relay", None);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The versions of the node records a host's relay holds.
fn relayed(h: &Host) -> Vec<(String, u64)> {
    let p = nodes_mirror(&relay(h));
    let mut out: Vec<(String, u64)> = p["Keys"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    (
                        k.trim_start_matches("swarm/nodes/").to_string(),
                        v.as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The node records' versions as manager `m` reads them.
fn versions(m: &Host) -> Vec<(String, u64)> {
    let o = m.daemon.ok(&["node", "ls", "-q"]);
    let mut out: Vec<(String, u64)> = o
        .lines()
        .map(|id| {
            let v = m
                .daemon
                .ok(&["node", "inspect", "--format", "{{.Version.Index}}", id]);
            (id.to_string(), v.parse().unwrap())
        })
        .collect();
    out.sort();
    out
}

/// The mirror of the node records in a relay status.
fn nodes_mirror(r: &Value) -> Value {
    r["Prefixes"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["Prefix"] == "swarm/nodes/"))
        .cloned()
        .unwrap_or_default()
}

fn relay_counter(h: &Host, what: &str) -> u64 {
    nodes_mirror(&relay(h))[what].as_u64().unwrap_or(0)
}

/// The swarm lines of every daemon's log and the end of every etcd log (for failures).
fn logs(c: &Cluster) -> String {
    let mut out = String::new();
    for (i, h) in c.hosts.iter().enumerate() {
        out.push_str(&format!("--- host {} netloomd\n", i + 1));
        for l in h.daemon.log().lines().filter(|l| l.contains("cluster")) {
            out.push_str(l);
            out.push('\n');
        }
        let etcd = std::fs::read_to_string(member_dir(h).join("etcd.log")).unwrap_or_default();
        let tail: Vec<&str> = etcd.lines().rev().take(15).collect();
        out.push_str(&format!("--- host {} etcd\n", i + 1));
        for l in tail.into_iter().rev() {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

/// `n` hosts: 1–3 managers on managed etcd, the rest workers.
fn ha(n: usize) -> Option<Cluster> {
    let c = multihost::cluster(n, &[])?;
    let m1 = c.host(1);
    let o = m1.daemon.cli(&[
        "swarm",
        "init",
        "--advertise-addr",
        "198.18.1.11",
        "--cluster-store",
        "etcd",
    ]);
    assert!(o.ok(), "{o}\n{}", m1.daemon.log());
    let mt = m1.daemon.ok(&["swarm", "join-token", "-q", "manager"]);
    let wt = m1.daemon.ok(&["swarm", "join-token", "-q", "worker"]);
    for i in 2..=n {
        let h = c.host(i);
        let tok = if MANAGERS.contains(&i) { &mt } else { &wt };
        let o = h.daemon.cli_t(
            &[
                "swarm",
                "join",
                "--token",
                tok,
                "--advertise-addr",
                &h.addr.to_string(),
                "198.18.1.11:2377",
            ],
            Duration::from_secs(90),
        );
        assert!(o.ok(), "join of host {i}: {o}\n{}", logs(&c));
        let want = if MANAGERS.contains(&i) {
            "manager"
        } else {
            "worker"
        };
        assert_eq!(
            o.stdout.trim(),
            format!("This node joined a swarm as a {want}.")
        );
    }
    assert!(
        wait_for(Duration::from_secs(20), || all_ready(m1, n)),
        "{:?}",
        nodes(m1)
    );
    Some(c)
}

fn update_label(m: &Host, node: &str, label: &str) -> Out {
    m.daemon.cli_t(
        &["node", "update", "--label-add", label, node],
        Duration::from_secs(10),
    )
}

#[test]
fn a_dead_leader_is_replaced_and_workers_fail_over() {
    let Some(mut c) = ha(5) else { return };
    let ids: Vec<String> = (1..=5).map(|i| node_id(c.host(i))).collect();
    let mids: Vec<&str> = ids[..3].iter().map(String::as_str).collect();
    assert_eq!(members(c.host(1)), Some(voting(&mids)));
    // Every node's etcd listens with TLS on its own address only; a worker runs none.
    assert!(etcd_pid(c.host(4)).is_none());
    let o = c.host(1).daemon.netns(&["ss", "-Hltn", "sport = :2379"]);
    assert!(
        o.stdout.contains("198.18.1.11:2379") && !o.stdout.contains("0.0.0.0:2379"),
        "{o}"
    );
    // Workers mirror the node records by watch.
    for w in [4, 5] {
        assert!(
            wait_for(Duration::from_secs(10), || relayed(c.host(w)).len() == 5),
            "{}",
            relay(c.host(w))
        );
    }

    // Kill the leader's netloomd and its etcd member.
    let l = leader(c.host(1)).expect("a leader");
    let li = 1 + ids.iter().position(|x| *x == l).unwrap();
    assert!(MANAGERS.contains(&li));
    kill_manager(&mut c, li);
    let killed = Instant::now();
    let other = *MANAGERS.iter().find(|i| **i != li).unwrap();
    let third = *MANAGERS.iter().find(|i| **i != li && **i != other).unwrap();
    // The others accept node update within 15 s, and elect a new leader.
    let mut updated = false;
    while killed.elapsed() < Duration::from_secs(15) {
        let o = update_label(c.host(other), &ids[3], "after=kill");
        if o.ok() {
            updated = true;
            break;
        }
        println!("{:?}: {}", killed.elapsed(), o.stderr.trim());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        updated,
        "no node update within 15 s: {}",
        c.host(other).daemon.log()
    );
    // And a network create within the same 15 s: an overlay made on a surviving
    // manager (its subnet and VNI allocated in etcd), listed by the other one.
    let mut created = false;
    while killed.elapsed() < Duration::from_secs(15) {
        let o = c.host(other).daemon.cli(&[
            "network",
            "create",
            "-d",
            "overlay",
            "--attachable",
            "after-kill",
        ]);
        if o.ok() || o.stderr.contains("already exists") {
            created = true;
            break;
        }
        println!("{:?}: {}", killed.elapsed(), o.stderr.trim());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        created,
        "no overlay network create within 15 s: {}",
        c.host(other).daemon.log()
    );
    println!(
        "network create accepted {:?} after the kill",
        killed.elapsed()
    );
    assert!(
        wait_for(Duration::from_secs(10), || c
            .host(third)
            .daemon
            .cli(&["network", "ls", "--format", "{{.Name}} {{.Scope}}"])
            .stdout
            .lines()
            .any(|l| l == "after-kill swarm")),
        "{}",
        c.host(third).daemon.cli(&["network", "ls"])
    );
    assert!(
        wait_for(Duration::from_secs(15), || leader(c.host(third))
            .is_some_and(|x| x != l)),
        "{:?}",
        nodes(c.host(third))
    );
    println!("new leader {:?} after the kill", killed.elapsed());
    assert!(update_label(c.host(third), &ids[4], "after=kill").ok());
    // Both workers see both changes (whichever manager they were on).
    for w in [4, 5] {
        assert!(
            wait_for(Duration::from_secs(15), || relayed(c.host(w))
                == versions(c.host(other))),
            "{} vs {:?}",
            relay(c.host(w)),
            versions(c.host(other))
        );
    }
    // The dead manager is Down and Unreachable.
    assert!(wait_for(Duration::from_secs(10), || nodes(c.host(other))
        .is_some_and(|ns| ns.iter().any(|(id, s, ms)| *id == l
            && s == "Down"
            && ms == "Unreachable"))));

    // It comes back with its member; the cluster is whole again.
    c.restart(li);
    assert!(wait_for(Duration::from_secs(30), || all_ready(
        c.host(li),
        5
    )));
    assert!(wait_for(Duration::from_secs(20), || members(c.host(other))
        == Some(voting(&mids))));

    // Kill the manager worker 4 is on: it fails over and keeps receiving updates,
    // with nothing lost or repeated.
    let src = relay(c.host(4))["Source"].as_str().unwrap().to_string();
    let si = 1 + ids.iter().position(|x| *x == src).unwrap();
    let events_before = relay_counter(c.host(4), "Events");
    kill_manager(&mut c, si);
    let live = *MANAGERS.iter().find(|i| **i != si).unwrap();
    let mut changes = 0;
    for k in 0..6 {
        let o = update_label(c.host(live), &ids[3], &format!("k{k}=v"));
        if o.ok() {
            changes += 1;
        } else {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    assert!(changes >= 4, "node updates failed after the kill");
    assert!(
        wait_for(Duration::from_secs(20), || relayed(c.host(4))
            == versions(c.host(live))),
        "{} vs {:?}",
        relay(c.host(4)),
        versions(c.host(live))
    );
    let r = relay(c.host(4));
    assert_ne!(r["Source"], src.as_str(), "{r}");
    assert_eq!(nodes_mirror(&r)["Duplicates"], 0, "{r}");
    assert_eq!(nodes_mirror(&r)["Resets"], 1, "{r}");
    // One event per change of its record (others may change through heartbeats).
    assert!(relay_counter(c.host(4), "Events") >= events_before + changes);
    c.restart(si);
    assert!(wait_for(Duration::from_secs(30), || all_ready(
        c.host(si),
        5
    )));
}

#[test]
fn etcd_members_follow_manager_roles() {
    let Some(mut c) = ha(4) else { return };
    let ids: Vec<String> = (1..=4).map(|i| node_id(c.host(i))).collect();
    let id = |i: usize| ids[i - 1].as_str();
    let m1 = c.host(1);
    assert_eq!(members(m1), Some(voting(&[id(1), id(2), id(3)])));

    // A manager's leave without --force: Docker's refusal, nothing changed.
    let o = c.host(3).daemon.fail(&["swarm", "leave"]);
    assert!(
        o.stderr.contains(
            "You are attempting to leave the swarm on a node that is participating as a manager."
        ) && o.stderr.contains("Use `--force` to suppress this message."),
        "{o}"
    );

    // Demote: the member goes, the node continues as a worker.
    m1.daemon.ok(&["node", "demote", id(3)]);
    assert!(wait_for(Duration::from_secs(20), || members(m1)
        == Some(voting(&[id(1), id(2)]))));
    assert!(wait_for(Duration::from_secs(20), || c
        .host(3)
        .daemon
        .cli(&["info", "--format", "{{.Swarm.ControlAvailable}}"])
        .stdout
        .trim()
        == "false"));
    // The member's process goes first, then its data directory.
    assert!(wait_for(Duration::from_secs(10), || etcd_pid(c.host(3))
        .is_none()
        && !member_dir(c.host(3)).exists()));
    let o = c.host(3).daemon.fail(&["node", "ls"]);
    assert!(o.stderr.contains("This node is not a swarm manager"), "{o}");

    // Promote it again, and the worker too: each gets a voting member.
    m1.daemon.ok(&["node", "promote", id(3), id(4)]);
    assert!(
        wait_for(Duration::from_secs(60), || members(m1)
            == Some(voting(&[id(1), id(2), id(3), id(4)]))),
        "{:?}\n{}",
        members(m1),
        c.host(4).daemon.log()
    );
    for i in [3, 4] {
        assert!(
            wait_for(Duration::from_secs(20), || all_ready(c.host(i), 4)),
            "host {i}: {:?}",
            nodes(c.host(i))
        );
    }

    // node rm of a dead manager: refused without --force, removes its member with.
    kill_manager(&mut c, 2);
    let m1 = c.host(1);
    let o = m1.daemon.fail(&["node", "rm", id(2)]);
    assert!(
        o.stderr
            .contains("It must be demoted to worker before removal"),
        "{o}"
    );
    assert!(wait_for(Duration::from_secs(15), || m1
        .daemon
        .cli(&["node", "rm", "--force", id(2)])
        .ok()));
    assert_eq!(members(m1), Some(voting(&[id(1), id(3), id(4)])));
    assert_eq!(nodes(m1).map(|n| n.len()), Some(3));

    // Demoted while it was down: when it comes back, its etcd member learns from
    // the others that it was removed, and the node continues as a worker.
    kill_manager(&mut c, 3);
    let m1 = c.host(1);
    m1.daemon.ok(&["node", "demote", id(3)]);
    assert_eq!(members(m1), Some(voting(&[id(1), id(4)])));
    c.restart(3);
    assert!(
        wait_for(Duration::from_secs(30), || c
            .host(3)
            .daemon
            .cli(&[
                "info",
                "--format",
                "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}"
            ])
            .stdout
            .trim()
            == "active false"),
        "{}",
        logs(&c)
    );
    assert!(
        wait_for(Duration::from_secs(15), || all_ready(c.host(1), 3)),
        "{:?}",
        nodes(c.host(1))
    );
    assert!(wait_for(Duration::from_secs(10), || etcd_pid(c.host(3)).is_none()));
    assert!(!member_dir(c.host(3)).exists(), "{}", logs(&c));
    assert_eq!(members(c.host(1)), Some(voting(&[id(1), id(4)])));
    let o = c.host(3).daemon.fail(&["node", "ls"]);
    assert!(o.stderr.contains("This node is not a swarm manager"), "{o}");
    // As a worker it receives the managers' changes again.
    assert!(update_label(c.host(4), id(3), "back=worker").ok());
    assert!(
        wait_for(Duration::from_secs(15), || relayed(c.host(3))
            == versions(c.host(1))),
        "{} vs {:?}",
        relay(c.host(3)),
        versions(c.host(1))
    );

    // Leave of a manager with --force: its member goes; it stays listed, Down.
    let m1 = c.host(1);
    c.host(4).daemon.ok(&["swarm", "leave", "--force"]);
    assert!(wait_for(Duration::from_secs(20), || members(m1)
        == Some(voting(&[id(1)]))));
    assert!(!member_dir(c.host(4)).exists());
    assert!(wait_for(Duration::from_secs(15), || nodes(m1).is_some_and(
        |ns| ns
            .iter()
            .any(|(i, s, ms)| i == id(4) && s == "Down" && ms.is_empty())
    )));
    m1.daemon.ok(&["node", "rm", id(4)]);
    assert_eq!(nodes(m1).map(|n| n.len()), Some(2));
    // The last manager keeps working alone.
    assert!(update_label(m1, id(3), "one=manager").ok());
}

#[test]
fn lost_quorum_is_reported_and_recovers() {
    let Some(mut c) = ha(4) else { return };
    let ids: Vec<String> = (1..=4).map(|i| node_id(c.host(i))).collect();
    // A container on the worker: its data plane must not depend on the quorum.
    let w = c.host(4);
    let tar = netloom_e2e::busybox_tar();
    w.daemon
        .ok(&["image", "import", tar.to_str().unwrap(), "busybox"]);
    w.daemon
        .ok(&["network", "create", "--subnet", "10.77.0.0/24", "local"]);
    w.daemon.run_sleeper("c1", &["--network", "local"]);

    kill_manager(&mut c, 2);
    kill_manager(&mut c, 3);
    let m1 = c.host(1);
    let lost = Instant::now();
    assert!(
        wait_for(Duration::from_secs(20), || {
            let o = m1.daemon.cli_t(&["node", "ls"], Duration::from_secs(10));
            !o.ok() && o.stderr.contains("The swarm does not have a leader. It's possible that too few managers are online. Make sure more than half of the managers are online.")
        }),
        "{}",
        m1.daemon.cli(&["node", "ls"])
    );
    println!("quorum loss reported after {:?}", lost.elapsed());
    assert!(wait_for(Duration::from_secs(15), || m1
        .daemon
        .cli(&["info", "--format", "{{.Swarm.Error}}"])
        .stdout
        .contains("The swarm does not have a leader")));
    let o = m1
        .daemon
        .fail(&["node", "update", "--label-add", "x=y", &ids[3]]);
    assert!(o.stderr.contains("does not have a leader"), "{o}");
    // The worker's container still runs and reaches its gateway.
    let w = c.host(4);
    w.daemon.exec_ok("c1", "ping -c 1 -W 2 10.77.0.1");

    // One manager back: quorum again, without restarting the survivor.
    c.restart(2);
    let m1 = c.host(1);
    assert!(
        wait_for(Duration::from_secs(30), || update_label(
            m1,
            &ids[3],
            "quorum=back"
        )
        .ok()),
        "{}",
        m1.daemon.log()
    );
    assert!(wait_for(Duration::from_secs(15), || m1
        .daemon
        .cli(&["info", "--format", "{{.Swarm.Error}}"])
        .stdout
        .trim()
        .is_empty()));
    c.restart(3);
    assert!(wait_for(Duration::from_secs(30), || all_ready(
        c.host(1),
        4
    )));

    // Restart of every node keeps the cluster.
    for i in 1..=4 {
        c.host_mut(i).daemon.stop();
    }
    for i in 1..=4 {
        c.restart(i);
    }
    let mids: Vec<&str> = ids[..3].iter().map(String::as_str).collect();
    assert!(
        wait_for(Duration::from_secs(45), || all_ready(c.host(2), 4)),
        "{:?}\n{}",
        nodes(c.host(2)),
        c.host(2).daemon.log()
    );
    assert_eq!(members(c.host(1)), Some(voting(&mids)));
    assert!(leader(c.host(3)).is_some());
    let labels = c.host(1).daemon.ok(&[
        "node",
        "inspect",
        "--format",
        "{{index .Spec.Labels \"quorum\"}}",
        &ids[3],
    ]);
    assert_eq!(labels, "back");
    assert!(wait_for(Duration::from_secs(15), || relayed(c.host(4))
        == versions(c.host(1))));
    c.host(4).daemon.exec_ok("c1", "ping -c 1 -W 2 10.77.0.1");
}

#[test]
fn repeated_leader_kills_under_writes() {
    if std::env::var("NETLOOM_LONG").as_deref() != Ok("1") {
        println!("SKIP: long variant (NETLOOM_LONG=1)");
        return;
    }
    let Some(mut c) = ha(4) else { return };
    let ids: Vec<String> = (1..=4).map(|i| node_id(c.host(i))).collect();
    for round in 0..5 {
        let l = leader(c.host(1 + (round % 3)))
            .or_else(|| leader(c.host(1)))
            .expect("a leader");
        let li = 1 + ids.iter().position(|x| *x == l).unwrap();
        kill_manager(&mut c, li);
        let other = *MANAGERS.iter().find(|i| **i != li).unwrap();
        let t = Instant::now();
        assert!(wait_for(Duration::from_secs(15), || update_label(
            c.host(other),
            &ids[3],
            &format!("round={round}")
        )
        .ok()));
        println!("round {round}: node update after {:?}", t.elapsed());
        c.restart(li);
        assert!(wait_for(Duration::from_secs(30), || all_ready(
            c.host(li),
            4
        )));
        assert!(wait_for(Duration::from_secs(15), || relayed(c.host(4))
            == versions(c.host(other))));
        assert_eq!(nodes_mirror(&relay(c.host(4)))["Duplicates"], 0);
    }
}

/// An etcd of the test's own in the router namespace (198.18.1.1), removed on drop.
struct External {
    etcd: Option<netloom_store::testing::Etcd>,
    dir: PathBuf,
}

impl Drop for External {
    fn drop(&mut self) {
        self.etcd.take();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn an_existing_etcd_cluster_serves_the_managers() {
    let Some(mut c) = multihost::cluster(3, &[]) else {
        return;
    };
    let dir = PathBuf::from(format!("/tmp/{}-etcd", c.prefix));
    let _ = std::fs::remove_dir_all(&dir);
    let ext = External {
        etcd: Some(netloom_store::testing::Etcd::start_with(
            netloom_store::testing::EtcdSpec {
                dir: dir.clone(),
                client_port: 2379,
                peer_port: 2380,
                netns: Some(PathBuf::from(format!("/run/netns/{}", c.router.name))),
                addr: Some("198.18.1.1".parse().unwrap()),
            },
        )),
        dir,
    };
    let url = ext.etcd.as_ref().unwrap().url();
    assert_eq!(url, "etcd://198.18.1.1:2379");
    let m1 = c.host(1);
    m1.daemon.ok(&[
        "swarm",
        "init",
        "--advertise-addr",
        "198.18.1.11",
        "--cluster-store",
        &url,
    ]);
    let mt = m1.daemon.ok(&["swarm", "join-token", "-q", "manager"]);
    let wt = m1.daemon.ok(&["swarm", "join-token", "-q", "worker"]);
    c.host(2)
        .daemon
        .ok(&["swarm", "join", "--token", &mt, "198.18.1.11:2377"]);
    c.host(3)
        .daemon
        .ok(&["swarm", "join", "--token", &wt, "198.18.1.11:2377"]);
    assert!(wait_for(Duration::from_secs(20), || all_ready(
        c.host(2),
        3
    )));
    // The managers run no etcd of their own.
    assert!((1..=3).all(|i| etcd_pid(c.host(i)).is_none()));
    let ids: Vec<String> = (1..=3).map(|i| node_id(c.host(i))).collect();
    assert_eq!(leader(c.host(2)).as_deref(), Some(ids[0].as_str()));
    c.crash(1);
    let t = Instant::now();
    assert!(wait_for(Duration::from_secs(15), || update_label(
        c.host(2),
        &ids[2],
        "after=kill"
    )
    .ok()));
    assert!(wait_for(Duration::from_secs(15), || leader(c.host(2))
        .as_deref()
        == Some(ids[1].as_str())));
    println!("external etcd: new leader {:?} after the kill", t.elapsed());
    assert!(wait_for(Duration::from_secs(15), || relayed(c.host(3))
        == versions(c.host(2))));
    // A new swarm on a store that holds one already is refused, nothing changed.
    c.host(3).daemon.ok(&["swarm", "leave"]);
    let o = c.host(3).daemon.fail(&[
        "swarm",
        "init",
        "--advertise-addr",
        "198.18.1.13",
        "--cluster-store",
        &url,
    ]);
    assert!(
        o.stderr
            .contains(&format!("cluster store {url} already holds swarm")),
        "{o}"
    );
    assert_eq!(nodes(c.host(2)).map(|n| n.len()), Some(3));
    c.host_mut(1).daemon.start();
    drop(ext);
}
