//! Privileged end-to-end test: listeners at 127.0.0.11:53 inside a real network namespace,
//! queried with `dig` from inside it. Skips loudly without root; fails instead when
//! `NETLOOM_REQUIRE_PRIV=1`.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Mode, fake_upstream};
use netloom_resolver::{FlatSandbox, Record, Resolver, ResolverConfig, Snapshot};

/// `Some(reason)` when the test cannot run here.
fn missing_privileges() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root (CAP_SYS_ADMIN for ip netns, setns)".into());
    }
    for tool in ["ip", "dig"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !found {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    None
}

/// Print SKIP (and return true) or panic when privileged tests are required.
fn skip_unless_privileged() -> bool {
    let Some(reason) = missing_privileges() else {
        return false;
    };
    if std::env::var("NETLOOM_REQUIRE_PRIV").as_deref() == Ok("1") {
        panic!("NETLOOM_REQUIRE_PRIV=1 but: {reason}");
    }
    println!("SKIP: {reason}");
    true
}

/// A named netns (`ip netns add`), deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!("nlres-{}-{nanos:x}", std::process::id());
        run("ip", &["netns", "add", &name]);
        let ns = Self { name };
        run("ip", &["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run(cmd: &str, args: &[&str]) {
    let st = Command::new(cmd).args(args).status().unwrap();
    assert!(st.success(), "{cmd} {args:?} failed: {st}");
}

/// `dig` inside the namespace; (success, trimmed stdout).
async fn dig(ns: &Netns, extra: &[&str], name: &str) -> (bool, String) {
    let mut args = vec![
        "netns", "exec", &ns.name, "dig", "+short", "+time=2", "+tries=1",
    ];
    args.push("@127.0.0.11");
    args.extend_from_slice(extra);
    args.push(name);
    let out = tokio::process::Command::new("ip")
        .args(&args)
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_inside_netns() {
    if skip_unless_privileged() {
        return;
    }
    let ns = Netns::new();
    // The upstream lives in the daemon's (this test's) namespace: forwarding must go from
    // there, not from the sandbox.
    let up = fake_upstream(Mode::Answer { answers: 1 }).await;

    let r = Resolver::new(ResolverConfig::default());
    let mut sandboxes = HashMap::new();
    sandboxes.insert(
        "sb".to_owned(),
        FlatSandbox::new(
            vec![Record {
                names: vec!["c1".into(), "c1.localnet".into()],
                addrs: vec!["172.18.0.2".parse().unwrap()],
                ptr_name: "c1.localnet".into(),
            }],
            vec![up.addr],
            true,
        ),
    );
    r.publish(Snapshot { sandboxes });

    r.attach("sb", &ns.path()).unwrap();
    r.attach("sb", &ns.path()).unwrap(); // idempotent
    assert!(r.is_attached("sb"));

    assert_eq!(dig(&ns, &[], "c1").await, (true, "172.18.0.2".into()));
    assert_eq!(dig(&ns, &["+tcp"], "c1").await, (true, "172.18.0.2".into()));
    assert_eq!(
        dig(&ns, &["-x"], "172.18.0.2").await,
        (true, "c1.localnet.".into())
    );
    assert_eq!(
        dig(&ns, &[], "forwarded.example").await,
        (true, "10.9.9.1".into())
    );
    assert_eq!(up.udp_count(), 1);

    // Detach, then re-attach at once (the port must be reusable), then detach for good.
    r.detach("sb");
    r.attach("sb", &ns.path()).unwrap();
    assert_eq!(dig(&ns, &[], "c1").await, (true, "172.18.0.2".into()));
    r.detach("sb");
    assert!(!r.is_attached("sb"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (ok, out) = dig(&ns, &[], "c1").await;
    assert!(!ok || out.is_empty(), "still answering after detach: {out}");
    let (ok, out) = dig(&ns, &["+tcp"], "c1").await;
    assert!(
        !ok || out.is_empty(),
        "TCP still answering after detach: {out}"
    );
}

/// Blast `rounds` windows of `window` queries for `names` at 127.0.0.11 from inside `ns`,
/// over `socks` sockets (so one batch holds several peers); returns (sent, answers, wrong).
fn blast(
    ns: std::path::PathBuf,
    names: Vec<(String, std::net::IpAddr)>,
    socks: usize,
    rounds: usize,
    window: usize,
) -> std::thread::JoinHandle<(usize, usize, Vec<String>)> {
    std::thread::spawn(move || {
        let f = std::fs::File::open(&ns).unwrap();
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let socks: Vec<std::net::UdpSocket> = (0..socks)
            .map(|_| {
                let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                s.set_read_timeout(Some(Duration::from_millis(500)))
                    .unwrap();
                s
            })
            .collect();
        let (mut sent, mut got, mut wrong) = (0usize, 0usize, Vec::new());
        let mut buf = [0u8; 4096];
        for round in 0..rounds {
            for k in 0..window {
                let id = u16::try_from((round * window + k) % 65536).unwrap();
                let (name, _) = &names[usize::from(id) % names.len()];
                // Mixed case, and EDNS on every other query.
                let spelled: String = name
                    .chars()
                    .enumerate()
                    .map(|(i, c)| {
                        if (i + k) % 2 == 0 {
                            c.to_ascii_uppercase()
                        } else {
                            c
                        }
                    })
                    .collect();
                let edns = (k % 2 == 0).then_some(1232);
                let q = common::query(&spelled, hickory_proto::rr::RecordType::A, id, edns);
                socks[k % socks.len()].send_to(&q, "127.0.0.11:53").unwrap();
                sent += 1;
            }
            for k in 0..window {
                let Ok((n, _)) = socks[k % socks.len()].recv_from(&mut buf) else {
                    break; // the rest of this window is lost too
                };
                got += 1;
                let m = common::parse(&buf[..n]);
                let (name, want) = &names[usize::from(m.metadata.id) % names.len()];
                let asked = m.queries[0].name().to_ascii();
                let answer = common::addrs(&m);
                if !asked.eq_ignore_ascii_case(&format!("{name}.")) || answer != vec![*want] {
                    wrong.push(format!(
                        "id {} asked {asked} got {answer:?}, want {name} {want}",
                        m.metadata.id
                    ));
                }
            }
        }
        (sent, got, wrong)
    })
}

/// Batched receive and send, pre-encoded answers: two sandboxes asking the same names at
/// the same time over several sockets each get their own network's answers, every answer
/// to the socket that asked, with its ID and spelling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_keep_sandboxes_and_peers_apart() {
    if skip_unless_privileged() {
        return;
    }
    let (ns1, ns2) = (Netns::new(), Netns::new());
    let r = Resolver::new(ResolverConfig::default());
    let mut names = [Vec::new(), Vec::new()];
    for (n, net) in ["n1", "n2"].iter().enumerate() {
        for i in 0..300usize {
            let addr =
                std::net::IpAddr::from([10, n as u8 + 1, (i / 250) as u8, (i % 250 + 1) as u8]);
            let name = format!("svc{i}");
            r.set_records(
                &format!("{net}-{i}"),
                vec![(
                    net.to_string(),
                    Record {
                        names: vec![name.clone(), format!("{name}.{net}")],
                        addrs: vec![addr],
                        ptr_name: format!("{name}.{net}"),
                    },
                )],
            );
            names[n].push((name, addr));
        }
    }
    r.set_sandbox("sb1", &["n1".into()], vec![], true);
    r.set_sandbox("sb2", &["n2".into()], vec![], true);
    r.attach("sb1", &ns1.path()).unwrap();
    r.attach("sb2", &ns2.path()).unwrap();
    let [names1, names2] = names;
    let t1 = blast(ns1.path(), names1, 4, 40, 64);
    let t2 = blast(ns2.path(), names2, 4, 40, 64);
    for (sb, t) in [("sb1", t1), ("sb2", t2)] {
        let (sent, got, wrong) = tokio::task::spawn_blocking(move || t.join().unwrap())
            .await
            .unwrap();
        assert!(
            wrong.is_empty(),
            "{sb}: {} wrong answers, e.g. {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(5)]
        );
        assert!(
            got * 100 >= sent * 95,
            "{sb}: {got} answers to {sent} queries"
        );
    }
    r.detach("sb1");
    r.detach("sb2");
}
