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
