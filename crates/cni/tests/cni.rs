//! netloom-cni run exactly as a container runtime runs it: `CNI_*` environment, the
//! network config on stdin, the result on stdout. Privileged tests (root) work only in
//! namespaces they create: a "host" namespace (the plugin runs there through
//! `nsenter --net=`, so bridges and parents never touch the real host) and container
//! namespaces. Without root they print `SKIP` (or fail with NETLOOM_REQUIRE_PRIV=1).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_netloom-cni");
static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// True if privileged tests can run; otherwise prints a loud SKIP (or panics when
/// NETLOOM_REQUIRE_PRIV=1).
fn privileged(test: &str) -> bool {
    let why = if !nix::unistd::geteuid().is_root() {
        Some("not root")
    } else if Command::new("ip").arg("-V").output().is_err() {
        Some("iproute2 (ip) missing")
    } else if Command::new("nsenter").arg("--version").output().is_err() {
        Some("nsenter (util-linux) missing")
    } else {
        None
    };
    match why {
        None => true,
        Some(r) => {
            if std::env::var("NETLOOM_REQUIRE_PRIV").as_deref() == Ok("1") {
                panic!("{test}: privileged prerequisites missing (NETLOOM_REQUIRE_PRIV=1): {r}");
            }
            println!("SKIP {test}: {r} — netloom-cni namespace tests need root");
            false
        }
    }
}

/// A throwaway network namespace, deleted on drop (also on panic).
struct Ns {
    name: String,
}

impl Ns {
    fn new(tag: &str) -> Ns {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("nlc-{}-{n}-{tag}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let o = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .unwrap();
        assert!(o.status.success(), "ip netns add {name}: {o:?}");
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        Ns { name }
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

fn ip(args: &[&str]) -> String {
    let o = Command::new("ip").args(args).output().unwrap();
    assert!(
        o.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ip_ok(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
    /// The CNI error code of a failed run.
    fn err_code(&self) -> u64 {
        assert_ne!(self.code, 0, "expected failure: {self:?}");
        self.json()["code"].as_u64().unwrap()
    }
}

/// One CNI invocation of `plugin`, inside `host` (through nsenter) when given.
fn cni(plugin: &str, host: Option<&Ns>, env: &[(&str, &str)], stdin: &str) -> Out {
    let mut cmd = match host {
        Some(h) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net={}", h.path())).arg(plugin);
            c
        }
        None => Command::new(plugin),
    };
    for k in [
        "CNI_COMMAND",
        "CNI_CONTAINERID",
        "CNI_NETNS",
        "CNI_IFNAME",
        "CNI_ARGS",
        "CNI_PATH",
    ] {
        cmd.env_remove(k);
    }
    cmd.env("CNI_PATH", "/usr/lib/cni:/opt/cni/bin");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Runs netloom-cni command `cmd` for container `id` (`CNI_NETNS` = `ns`).
fn run(cmd: &str, host: &Ns, id: &str, ns: Option<&Ns>, ifname: &str, conf: &Value) -> Out {
    let netns = ns.map(Ns::path).unwrap_or_default();
    let mut env = vec![
        ("CNI_COMMAND", cmd),
        ("CNI_CONTAINERID", id),
        ("CNI_IFNAME", ifname),
    ];
    if ns.is_some() {
        env.push(("CNI_NETNS", &netns));
    }
    cni(BIN, Some(host), &env, &conf.to_string())
}

fn ok(o: Out) -> Out {
    assert_eq!(o.code, 0, "plugin failed: {o:?}");
    o
}

fn bridge_conf(version: &str, bridge: &str, data: &Path, extra_ipam: Value) -> Value {
    let mut ipam = json!({"type": "host-local", "subnet": "10.77.0.0/24",
        "dataDir": data, "routes": [{"dst": "0.0.0.0/0"}]});
    if let (Some(m), Some(e)) = (ipam.as_object_mut(), extra_ipam.as_object()) {
        m.extend(e.clone());
    }
    json!({"cniVersion": version, "name": "nlcnet", "type": "netloom-cni",
        "bridge": bridge, "isGateway": true, "ipam": ipam, "dns": {"nameservers": ["10.77.0.1"]}})
}

/// `ip -j addr show dev <ifname>` inside `ns`.
fn link_json(ns: &Ns, ifname: &str) -> Value {
    let s = ip(&["-n", &ns.name, "-j", "addr", "show", "dev", ifname]);
    let v: Value = serde_json::from_str(&s).unwrap();
    v[0].clone()
}

/// True once `ifname` is gone from `ns` (DEL deletes the link from a detached child,
/// so it may linger for a few tens of milliseconds).
fn link_gone(ns: &Ns, ifname: &str) -> bool {
    for _ in 0..100 {
        if !ip_ok(&["-n", &ns.name, "link", "show", ifname]) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

fn ping(from: &Ns, to: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", &from.name, "ping", "-c1", "-W2", to])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn bridge_add_check_del_and_traffic() {
    if !privileged("bridge_add_check_del_and_traffic") {
        return;
    }
    let host = Ns::new("h");
    let c1 = Ns::new("c1");
    let c2 = Ns::new("c2");
    let data = tempfile::tempdir().unwrap();
    let mut conf = bridge_conf("1.1.0", "nlcbr0", data.path(), json!({}));
    conf["hairpinMode"] = json!(true);
    let store = data.path().join("nlcnet");

    let r1 = ok(run("ADD", &host, "ctr-one", Some(&c1), "eth0", &conf)).json();
    assert_eq!(r1["cniVersion"], "1.1.0");
    let ifs = r1["interfaces"].as_array().unwrap();
    assert_eq!(ifs.len(), 3, "{r1}");
    assert_eq!(ifs[0]["name"], "nlcbr0");
    assert!(ifs[1]["name"].as_str().unwrap().starts_with("veth"));
    assert!(ifs[1].get("sandbox").is_none());
    assert_eq!(ifs[2]["name"], "eth0");
    assert_eq!(ifs[2]["sandbox"], c1.path());
    assert_eq!(r1["ips"][0]["interface"], 2);
    assert_eq!(r1["ips"][0]["address"], "10.77.0.2/24");
    assert_eq!(r1["ips"][0]["gateway"], "10.77.0.1");
    assert_eq!(r1["routes"][0]["dst"], "0.0.0.0/0");
    assert_eq!(r1["dns"]["nameservers"][0], "10.77.0.1");

    // The kernel agrees with the result: address and MAC on eth0, default route, the
    // bridge (with the gateway) in the test's host namespace and not in the real one.
    let l = link_json(&c1, "eth0");
    assert_eq!(l["address"], ifs[2]["mac"]);
    assert!(
        l["addr_info"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["local"] == "10.77.0.2" && a["prefixlen"] == 24),
        "{l}"
    );
    let routes = ip(&["-n", &c1.name, "route", "show", "default"]);
    assert!(routes.contains("via 10.77.0.1 dev eth0"), "{routes}");
    let veth = ifs[1]["name"].as_str().unwrap();
    let port = ip(&["-n", &host.name, "-d", "link", "show", "dev", veth]);
    assert!(
        port.contains("master nlcbr0") && port.contains("hairpin on"),
        "{port}"
    );
    assert!(port.contains(ifs[1]["mac"].as_str().unwrap()), "{port}");
    let br = ip(&["-n", &host.name, "addr", "show", "dev", "nlcbr0"]);
    assert!(br.contains("10.77.0.1/24"), "{br}");
    assert!(
        !ip_ok(&["link", "show", "dev", "nlcbr0"]),
        "bridge leaked into the real host"
    );
    assert_eq!(
        std::fs::read_to_string(store.join("10.77.0.2")).unwrap(),
        "ctr-one\r\neth0"
    );

    // ADD twice for the same interface is refused and changes nothing.
    let again = run("ADD", &host, "ctr-one", Some(&c1), "eth0", &conf);
    assert_eq!(again.err_code(), 103, "{again:?}");
    assert!(
        again.json()["msg"]
            .as_str()
            .unwrap()
            .contains("already exists")
    );

    // Two containers on one bridge talk.
    let r2 = ok(run("ADD", &host, "ctr-two", Some(&c2), "eth0", &conf)).json();
    assert_eq!(r2["ips"][0]["address"], "10.77.0.3/24");
    assert!(ping(&c1, "10.77.0.3"), "c1 cannot ping c2");
    assert!(ping(&c2, "10.77.0.1"), "c2 cannot ping the gateway");

    // CHECK passes with the ADD result, fails once the interface is gone.
    let mut check = conf.clone();
    check["prevResult"] = r1.clone();
    ok(run("CHECK", &host, "ctr-one", Some(&c1), "eth0", &check));
    let out = run("CHECK", &host, "ctr-one", Some(&c1), "eth0", &conf);
    assert_eq!(out.err_code(), 7, "CHECK without prevResult: {out:?}");
    ip(&["-n", &c1.name, "link", "del", "eth0"]);
    let out = run("CHECK", &host, "ctr-one", Some(&c1), "eth0", &check);
    assert_eq!(out.err_code(), 104, "{out:?}");
    assert!(out.stdout.contains("eth0 not found"), "{out:?}");

    // DEL removes the interface and releases the address; twice is fine, and so is a
    // missing namespace.
    let mut del = conf.clone();
    del["prevResult"] = r2.clone();
    ok(run("DEL", &host, "ctr-two", Some(&c2), "eth0", &del));
    assert!(!store.join("10.77.0.3").exists(), "IP file left after DEL");
    // The name is usable again at once (ADD waits for the detached delete), and a
    // synchronous DEL leaves nothing behind when it returns.
    ok(run("ADD", &host, "ctr-two", Some(&c2), "eth0", &conf));
    let mut sync = del.clone();
    sync["syncDelete"] = json!(true);
    ok(run("DEL", &host, "ctr-two", Some(&c2), "eth0", &sync));
    assert!(
        !ip_ok(&["-n", &c2.name, "link", "show", "eth0"]),
        "eth0 left after sync DEL"
    );
    assert!(link_gone(&c2, "eth0"), "eth0 left in c2");
    ok(run("DEL", &host, "ctr-two", Some(&c2), "eth0", &del));
    ok(run("DEL", &host, "ctr-one", Some(&c1), "eth0", &conf));
    assert!(!store.join("10.77.0.2").exists());
    let gone = Ns::new("gone");
    let gone_path = gone.path();
    drop(gone);
    ok(cni(
        BIN,
        Some(&host),
        &[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "ctr-three"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", &gone_path),
        ],
        &conf.to_string(),
    ));
    // Host-side veths went with their peers.
    assert!(link_gone(&c1, "eth0"));
    let links = ip(&["-n", &host.name, "-o", "link", "show", "type", "veth"]);
    assert!(links.trim().is_empty(), "veths left: {links}");
}

#[test]
fn version_and_input_errors() {
    let out = cni(
        BIN,
        None,
        &[("CNI_COMMAND", "VERSION")],
        r#"{"cniVersion":"1.0.0"}"#,
    );
    assert_eq!(out.code, 0, "{out:?}");
    let v = out.json();
    assert_eq!(v["cniVersion"], "1.0.0");
    let sv: Vec<&str> = v["supportedVersions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for want in ["0.4.0", "1.0.0", "1.1.0"] {
        assert!(sv.contains(&want), "{sv:?}");
    }
    // No CNI_COMMAND: an "about" line, as the reference plugins.
    let out = cni(BIN, None, &[], "");
    assert_eq!(out.code, 0);
    assert!(
        out.stderr.contains("CNI protocol versions supported"),
        "{out:?}"
    );

    let add = |stdin: &str, env: &[(&str, &str)]| {
        let mut e = vec![("CNI_COMMAND", "ADD")];
        e.extend_from_slice(env);
        cni(BIN, None, &e, stdin)
    };
    let full = [
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/run/netns/nlc-does-not-exist"),
        ("CNI_IFNAME", "eth0"),
    ];
    let good = r#"{"cniVersion":"1.1.0","name":"n","type":"netloom-cni"}"#;

    let out = add("not json", &full);
    assert_eq!(out.err_code(), 6, "{out:?}");
    let out = add(good, &full[..2]);
    assert_eq!(out.err_code(), 4, "{out:?}");
    assert!(out.stdout.contains("CNI_IFNAME"), "{out:?}");
    let out = add(good, &[full[0], full[2]]);
    assert_eq!(out.err_code(), 4);
    assert!(out.stdout.contains("CNI_NETNS"), "{out:?}");
    let out = add(good, &[("CNI_CONTAINERID", "-bad id"), full[1], full[2]]);
    assert_eq!(out.err_code(), 4, "{out:?}");
    let out = add(
        r#"{"cniVersion":"9.9.9","name":"n","type":"netloom-cni"}"#,
        &full,
    );
    assert_eq!(out.err_code(), 1, "{out:?}");
    assert!(out.stdout.contains("9.9.9"), "{out:?}");
    let out = add(
        r#"{"cniVersion":"1.1.0","name":"n","type":"netloom-cni","driver":"macvlan","ipMasq":true}"#,
        &full,
    );
    assert_eq!(out.err_code(), 2, "{out:?}");
    assert!(out.stdout.contains("ipMasq"), "{out:?}");
    let out = add(
        r#"{"cniVersion":"1.1.0","name":"n","type":"netloom-cni","ipMasq":true,"ipMasqBackend":"iptables"}"#,
        &full,
    );
    assert_eq!(out.err_code(), 2, "{out:?}");
    assert!(out.stdout.contains("nftables"), "{out:?}");
    // A bridge name that cannot be an interface name (or stand in an nft element).
    let out = add(
        r#"{"cniVersion":"1.1.0","name":"n","type":"netloom-cni","bridge":"br\"x","ipMasq":true}"#,
        &full,
    );
    assert_eq!(out.err_code(), 7, "{out:?}");
    assert!(out.stdout.contains("quotes"), "{out:?}");
    let out = add(
        r#"{"cniVersion":"1.1.0","name":"n","type":"netloom-cni","ipam":{"type":"host-local","subnet":"10.9.9.0/31"}}"#,
        &full,
    );
    assert_eq!(out.err_code(), 7, "{out:?}");
    assert!(out.stdout.contains("too small"), "{out:?}");
    let out = add(
        r#"{"cniVersion":"1.1.0","name":"n","type":"netloom-cni","driver":"ipvlan"}"#,
        &full,
    );
    assert_eq!(out.err_code(), 7, "{out:?}");
    let out = add(good, &full);
    assert_eq!(out.err_code(), 4, "missing netns: {out:?}");
    let out = cni(BIN, None, &[("CNI_COMMAND", "BOGUS")], good);
    assert_eq!(out.err_code(), 4, "{out:?}");
    // GC and STATUS are 1.1 commands.
    let out = cni(
        BIN,
        None,
        &[("CNI_COMMAND", "STATUS")],
        r#"{"cniVersion":"1.0.0","name":"n","type":"netloom-cni"}"#,
    );
    assert_eq!(out.err_code(), 1, "{out:?}");
}

#[test]
fn exhausted_range_gc_and_status() {
    if !privileged("exhausted_range_gc_and_status") {
        return;
    }
    let host = Ns::new("h");
    let c: Vec<Ns> = (0..3).map(|i| Ns::new(&format!("c{i}"))).collect();
    let data = tempfile::tempdir().unwrap();
    let conf = bridge_conf(
        "1.1.0",
        "nlcbr1",
        data.path(),
        json!({"rangeStart": "10.77.0.10", "rangeEnd": "10.77.0.11"}),
    );
    let store = data.path().join("nlcnet");
    let a = ok(run("ADD", &host, "gc-a", Some(&c[0]), "eth0", &conf)).json();
    let b = ok(run("ADD", &host, "gc-b", Some(&c[1]), "eth0", &conf)).json();
    assert_eq!(a["ips"][0]["address"], "10.77.0.10/24");
    assert_eq!(b["ips"][0]["address"], "10.77.0.11/24");
    let out = run("ADD", &host, "gc-c", Some(&c[2]), "eth0", &conf);
    assert_eq!(out.err_code(), 101, "{out:?}");
    assert!(out.stdout.contains("10.77.0.10-10.77.0.11"), "{out:?}");
    assert!(
        !ip_ok(&["-n", &c[2].name, "link", "show", "eth0"]),
        "failed ADD left eth0"
    );

    // GC keeps valid attachments, frees the rest.
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "gc-a", "ifname": "eth0"}]);
    let out = cni(BIN, Some(&host), &[("CNI_COMMAND", "GC")], &gc.to_string());
    assert_eq!(out.code, 0, "{out:?}");
    assert!(store.join("10.77.0.10").exists());
    assert!(
        !store.join("10.77.0.11").exists(),
        "GC kept a stale allocation"
    );
    let r = ok(run("ADD", &host, "gc-c", Some(&c[2]), "eth0", &conf)).json();
    assert_eq!(r["ips"][0]["address"], "10.77.0.11/24");

    // STATUS: ready; a macvlan whose parent is missing is not (code 50).
    let out = cni(
        BIN,
        Some(&host),
        &[("CNI_COMMAND", "STATUS")],
        &conf.to_string(),
    );
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{out:?}");
    let mv = json!({"cniVersion": "1.1.0", "name": "mv", "type": "netloom-cni",
        "driver": "macvlan", "master": "nlc-nothere"});
    let out = cni(
        BIN,
        Some(&host),
        &[("CNI_COMMAND", "STATUS")],
        &mv.to_string(),
    );
    assert_eq!(out.err_code(), 50, "{out:?}");
}

#[test]
fn macvlan_on_a_veth_parent_reaches_a_peer() {
    if !privileged("macvlan_on_a_veth_parent_reaches_a_peer") {
        return;
    }
    // host: phys0 ("physical" parent)  <-- veth -->  peer: phys1 10.78.0.100/24
    let host = Ns::new("h");
    let peer = Ns::new("p");
    let ctr = Ns::new("c");
    ip(&[
        "-n", &host.name, "link", "add", "phys0", "type", "veth", "peer", "name", "phys1", "netns",
        &peer.name,
    ]);
    ip(&["-n", &host.name, "link", "set", "phys0", "up"]);
    ip(&[
        "-n",
        &peer.name,
        "addr",
        "add",
        "10.78.0.100/24",
        "dev",
        "phys1",
    ]);
    ip(&["-n", &peer.name, "link", "set", "phys1", "up"]);
    let data = tempfile::tempdir().unwrap();
    let conf = json!({"cniVersion": "1.0.0", "name": "mvnet", "type": "netloom-cni",
        "driver": "macvlan", "master": "phys0", "mode": "bridge",
        "ipam": {"type": "host-local", "dataDir": data.path(),
            "ranges": [[{"subnet": "10.78.0.0/24", "rangeStart": "10.78.0.20", "rangeEnd": "10.78.0.29", "gateway": "10.78.0.100"}]]}});
    let r = ok(run("ADD", &host, "mv-one", Some(&ctr), "net1", &conf)).json();
    assert_eq!(r["interfaces"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["interfaces"][0]["name"], "net1");
    assert_eq!(r["interfaces"][0]["sandbox"], ctr.path());
    assert_eq!(r["ips"][0]["interface"], 0);
    assert_eq!(r["ips"][0]["address"], "10.78.0.20/24");
    let d = ip(&["-n", &ctr.name, "-d", "link", "show", "net1"]);
    assert!(d.contains("macvlan mode bridge"), "{d}");
    assert_eq!(
        link_json(&ctr, "net1")["address"],
        r["interfaces"][0]["mac"]
    );
    assert!(
        ping(&ctr, "10.78.0.100"),
        "macvlan cannot reach the peer on the parent's L2"
    );
    let mut check = conf.clone();
    check["prevResult"] = r;
    ok(run("CHECK", &host, "mv-one", Some(&ctr), "net1", &check));
    ok(run("DEL", &host, "mv-one", Some(&ctr), "net1", &check));
    assert!(link_gone(&ctr, "net1"));
    assert!(!data.path().join("mvnet/10.78.0.20").exists());
    ok(run("DEL", &host, "mv-one", Some(&ctr), "net1", &check));
    // A missing parent is a config error naming it, and nothing is allocated.
    let mut bad = conf.clone();
    bad["master"] = json!("nlc-nothere");
    let out = run("ADD", &host, "mv-two", Some(&ctr), "net1", &bad);
    assert_eq!(out.err_code(), 7, "{out:?}");
    assert!(out.stdout.contains("nlc-nothere"), "{out:?}");
    assert!(!data.path().join("mvnet/10.78.0.20").exists());
}

#[test]
fn chain_with_reference_tuning_plugin() {
    if !privileged("chain_with_reference_tuning_plugin") {
        return;
    }
    let tuning = "/usr/lib/cni/tuning";
    if !Path::new(tuning).exists() {
        if std::env::var("NETLOOM_REQUIRE_PRIV").as_deref() == Ok("1") {
            panic!("{tuning} missing: install containernetworking-plugins (scripts/deps.sh)");
        }
        println!(
            "SKIP chain_with_reference_tuning_plugin: {tuning} missing (apt-get install containernetworking-plugins)"
        );
        return;
    }
    let host = Ns::new("h");
    let ctr = Ns::new("c");
    let data = tempfile::tempdir().unwrap();
    let conf = bridge_conf("1.0.0", "nlcbr2", data.path(), json!({}));
    let env = |cmd: &'static str, netns: String| {
        move || {
            vec![
                ("CNI_COMMAND", cmd.to_string()),
                ("CNI_CONTAINERID", "chain-one".to_string()),
                ("CNI_IFNAME", "eth0".to_string()),
                ("CNI_NETNS", netns.clone()),
            ]
        }
    };
    let call = |plugin: &str, cmd: &'static str, stdin: &Value| {
        let e = env(cmd, ctr.path())();
        let e: Vec<(&str, &str)> = e.iter().map(|(k, v)| (*k, v.as_str())).collect();
        cni(plugin, Some(&host), &e, &stdin.to_string())
    };
    let r1 = ok(call(BIN, "ADD", &conf)).json();
    let tconf = |prev: &Value| {
        json!({"cniVersion": "1.0.0", "name": "nlcnet", "type": "tuning",
            "mac": "c2:11:22:33:44:55", "mtu": 1400,
            "sysctl": {"net.ipv4.conf.eth0.arp_notify": "1"}, "prevResult": prev})
    };
    let r2 = ok(call(tuning, "ADD", &tconf(&r1))).json();
    assert_eq!(r2["interfaces"][2]["mac"], "c2:11:22:33:44:55", "{r2}");
    let l = link_json(&ctr, "eth0");
    assert_eq!(l["address"], "c2:11:22:33:44:55");
    assert_eq!(l["mtu"], 1400);
    let sysctl = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ctr.name,
            "cat",
            "/proc/sys/net/ipv4/conf/eth0/arp_notify",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&sysctl.stdout).trim(), "1");

    // CHECK with the final (tuned) result passes; with netloom-cni's own it fails (MAC).
    let mut check = conf.clone();
    check["prevResult"] = r2.clone();
    ok(call(BIN, "CHECK", &check));
    check["prevResult"] = r1.clone();
    let out = call(BIN, "CHECK", &check);
    assert_eq!(out.err_code(), 104, "{out:?}");
    assert!(out.stdout.contains("MAC"), "{out:?}");

    // netloom-cni chained after another plugin merges its result into prevResult.
    let mut second = bridge_conf(
        "1.0.0",
        "nlcbr3",
        data.path(),
        json!({"subnet": "10.79.0.0/24"}),
    );
    second["name"] = json!("nlcnet2");
    second["ipam"]["routes"] = json!([]);
    second["prevResult"] = r2.clone();
    let e: Vec<(&str, &str)> = vec![
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "chain-one"),
        ("CNI_IFNAME", "eth1"),
    ];
    let netns = ctr.path();
    let mut e2 = e.clone();
    e2.push(("CNI_NETNS", &netns));
    let r3 = ok(cni(BIN, Some(&host), &e2, &second.to_string())).json();
    assert_eq!(r3["interfaces"].as_array().unwrap().len(), 6, "{r3}");
    assert_eq!(r3["ips"][0]["interface"], 2);
    assert_eq!(r3["ips"][1]["interface"], 5);
    assert_eq!(r3["ips"][1]["address"], "10.79.0.2/24");
    assert_eq!(r3["ips"][1]["version"], Value::Null);

    // DEL in reverse order, with the final result.
    let mut e3 = e2.clone();
    e3[0] = ("CNI_COMMAND", "DEL");
    ok(cni(BIN, Some(&host), &e3, &second.to_string()));
    ok(call(tuning, "DEL", &tconf(&r2)));
    let mut del = conf.clone();
    del["prevResult"] = r2;
    ok(call(BIN, "DEL", &del));
    assert!(link_gone(&ctr, "eth0"));
    assert!(link_gone(&ctr, "eth1"));
    assert!(!data.path().join("nlcnet/10.77.0.2").exists());
    assert!(!data.path().join("nlcnet2/10.79.0.2").exists());
}

/// The elements of netloom-cni's masquerade map in `ns` (empty if there is no table).
fn masq_elements(ns: &Ns) -> String {
    let o = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            "nft",
            "list",
            "map",
            "inet",
            "netloom_cni",
            "masq4",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn ip_masq_lets_containers_reach_beyond_their_subnet() {
    // A "peer" outside the container subnet, with no route back to it: only masqueraded
    // traffic gets answers. ipMasq adds the container to netloom-cni's nftables table in
    // the runtime's namespace; DEL and GC take it out again.
    if !privileged("ip_masq_lets_containers_reach_beyond_their_subnet") {
        return;
    }
    if Command::new("nft").arg("--version").output().is_err() {
        if std::env::var("NETLOOM_REQUIRE_PRIV").as_deref() == Ok("1") {
            panic!("nft missing: install nftables (scripts/deps.sh)");
        }
        println!("SKIP ip_masq_lets_containers_reach_beyond_their_subnet: nft (nftables) missing");
        return;
    }
    let host = Ns::new("mh");
    let peer = Ns::new("mp");
    let c1 = Ns::new("mc1");
    outside_link(&host, &peer);
    let data = tempfile::tempdir().unwrap();
    let plain = bridge_conf("1.1.0", "nlcbrm", data.path(), json!({}));
    let mut masq = plain.clone();
    masq["ipMasq"] = json!(true);

    // Without ipMasq the peer's answers have no way back.
    let r = ok(run("ADD", &host, "ctr-plain", Some(&c1), "eth0", &plain)).json();
    assert!(
        !ping(&c1, "192.0.2.2"),
        "the peer answered without masquerading: the test proves nothing"
    );
    let mut del = plain.clone();
    del["prevResult"] = r;
    ok(run("DEL", &host, "ctr-plain", Some(&c1), "eth0", &del));
    assert!(link_gone(&c1, "eth0"));

    // With ipMasq it reaches the peer; the container is in the map, not in the real host.
    let r = ok(run("ADD", &host, "ctr-masq", Some(&c1), "eth0", &masq)).json();
    let addr = r["ips"][0]["address"].as_str().unwrap().to_string();
    let addr = addr.split('/').next().unwrap().to_string();
    assert!(
        ping(&c1, "192.0.2.2"),
        "masqueraded ping to the peer failed"
    );
    assert!(
        masq_elements(&host).contains(&format!("{addr} : jump masq-")),
        "{}",
        masq_elements(&host)
    );
    assert!(
        !Command::new("nft")
            .args(["list", "table", "inet", "netloom_cni"])
            .output()
            .unwrap()
            .status
            .success(),
        "the table leaked into the real host"
    );
    // Traffic inside the subnet is not masqueraded: the gateway sees the container.
    assert!(ping(&c1, "10.77.0.1"));
    // ADD again (another container) keeps one copy of the fixed rules.
    let c2 = Ns::new("mc2");
    let r2 = ok(run("ADD", &host, "ctr-masq2", Some(&c2), "eth0", &masq)).json();
    let o = Command::new("ip")
        .args([
            "netns",
            "exec",
            &host.name,
            "nft",
            "list",
            "chain",
            "inet",
            "netloom_cni",
            "postrouting",
        ])
        .output()
        .unwrap();
    let rules = String::from_utf8_lossy(&o.stdout);
    assert_eq!(rules.matches("vmap @masq4").count(), 1, "{rules}");

    // DEL removes the element (and twice is fine); GC removes a leftover one.
    let mut del = masq.clone();
    del["prevResult"] = r;
    ok(run("DEL", &host, "ctr-masq", Some(&c1), "eth0", &del));
    ok(run("DEL", &host, "ctr-masq", Some(&c1), "eth0", &del));
    let left = masq_elements(&host);
    assert!(!left.contains(&format!("{addr} :")), "{left}");
    // The address goes to another container; a DEL repeated for the first one (with its
    // old result, as runtimes do) leaves the new owner's masquerading alone.
    let c3 = Ns::new("mc3");
    let mut again = masq.clone();
    again["args"] = json!({"cni": {"ips": [addr.clone()]}});
    ok(run("ADD", &host, "ctr-masq3", Some(&c3), "eth0", &again));
    ok(run("DEL", &host, "ctr-masq", Some(&c1), "eth0", &del));
    assert!(
        masq_elements(&host).contains(&format!("{addr} :")),
        "a stale DEL removed another container's element: {}",
        masq_elements(&host)
    );
    assert!(
        ping(&c3, "192.0.2.2"),
        "the new owner still reaches the peer"
    );
    let mut del3 = again.clone();
    del3["prevResult"] = del["prevResult"].clone();
    ok(run("DEL", &host, "ctr-masq3", Some(&c3), "eth0", &del3));
    let left = masq_elements(&host);
    assert!(!left.contains(&format!("{addr} :")), "{left}");
    let addr2 = r2["ips"][0]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert!(left.contains(&format!("{addr2} :")), "{left}");
    let mut gc = masq.clone();
    gc["cni.dev/valid-attachments"] = json!([]);
    ok(cni(
        BIN,
        Some(&host),
        &[("CNI_COMMAND", "GC")],
        &gc.to_string(),
    ));
    // A DEL with ipMasq where there never was a table creates none.
    let bare = Ns::new("mb");
    ok(run("DEL", &bare, "ctr-none", None, "eth0", &masq));
    assert!(
        !Command::new("ip")
            .args([
                "netns",
                "exec",
                &bare.name,
                "nft",
                "list",
                "table",
                "inet",
                "netloom_cni"
            ])
            .output()
            .unwrap()
            .status
            .success(),
        "DEL created the masquerade table"
    );
    assert!(
        !masq_elements(&host).contains(&format!("{addr2} :")),
        "{}",
        masq_elements(&host)
    );
}

#[test]
fn chain_with_reference_portmap_plugin() {
    // netloom-cni → Debian's reference `portmap` (iptables DNAT in the runtime's
    // namespace): a peer outside reaches the container through the host port; the
    // chain's DEL removes the mapping again.
    if !privileged("chain_with_reference_portmap_plugin") {
        return;
    }
    let portmap = "/usr/lib/cni/portmap";
    let have_iptables = Command::new("iptables").arg("-V").output().is_ok();
    if !Path::new(portmap).exists() || !have_iptables {
        if std::env::var("NETLOOM_REQUIRE_PRIV").as_deref() == Ok("1") {
            panic!(
                "{portmap} or iptables missing: install containernetworking-plugins (scripts/deps.sh)"
            );
        }
        println!(
            "SKIP chain_with_reference_portmap_plugin: {portmap} or iptables missing (apt-get install containernetworking-plugins)"
        );
        return;
    }
    let host = Ns::new("ph");
    let peer = Ns::new("pp");
    let ctr = Ns::new("pc");
    outside_link(&host, &peer);
    let data = tempfile::tempdir().unwrap();
    let conf = bridge_conf("1.0.0", "nlcbr4", data.path(), json!({}));
    let netns = ctr.path();
    let env = |cmd: &'static str| {
        vec![
            ("CNI_COMMAND", cmd),
            ("CNI_CONTAINERID", "pm-one"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", netns.as_str()),
        ]
    };
    let r1 = ok(cni(BIN, Some(&host), &env("ADD"), &conf.to_string())).json();
    let pconf = |prev: &Value| {
        json!({"cniVersion": "1.0.0", "name": "nlcnet", "type": "portmap",
            "capabilities": {"portMappings": true},
            "runtimeConfig": {"portMappings": [
                {"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]},
            "prevResult": prev})
    };
    let r2 = ok(cni(
        portmap,
        Some(&host),
        &env("ADD"),
        &pconf(&r1).to_string(),
    ))
    .json();
    assert_eq!(r2["ips"], r1["ips"], "portmap passes the result on: {r2}");

    // A one-shot listener in the container; the peer connects to the host's port.
    let got = tempfile::NamedTempFile::new().unwrap();
    let got_path = got.path().display().to_string();
    // `exec`: the spawned process is nc itself, so the guard's kill ends it.
    let server = Command::new("ip")
        .args(["netns", "exec", &ctr.name, "sh", "-c"])
        .arg(format!("exec busybox nc -l -p 80 > {got_path}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = KillOnDrop(server);
    let mut delivered = false;
    for _ in 0..50 {
        let o = Command::new("ip")
            .args(["netns", "exec", &peer.name, "sh", "-c"])
            .arg("echo through-portmap | busybox nc -w 2 192.0.2.1 18080")
            .output()
            .unwrap();
        if o.status.success()
            && std::fs::read_to_string(got.path()).is_ok_and(|s| s.contains("through-portmap"))
        {
            delivered = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(server);
    assert!(
        delivered,
        "the peer did not reach the container through host port 18080"
    );
    let nat = |h: &Ns| {
        let o = Command::new("ip")
            .args(["netns", "exec", &h.name, "iptables", "-t", "nat", "-S"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(nat(&host).contains("18080"), "{}", nat(&host));

    // DEL in reverse order with the final result: the mapping and the interface go.
    ok(cni(
        portmap,
        Some(&host),
        &env("DEL"),
        &pconf(&r2).to_string(),
    ));
    let mut del = conf.clone();
    del["prevResult"] = r2;
    ok(cni(BIN, Some(&host), &env("DEL"), &del.to_string()));
    assert!(!nat(&host).contains("18080"), "{}", nat(&host));
    assert!(link_gone(&ctr, "eth0"));
    assert!(!data.path().join("nlcnet/10.77.0.2").exists());
}

/// A child process killed (and reaped) when dropped, also on panic.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A veth between `host` (192.0.2.1/24) and `peer` (192.0.2.2/24, `pp0`): a machine
/// outside every container subnet, with no route back to them.
fn outside_link(host: &Ns, peer: &Ns) {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let up = format!("nlo{}-{n}", std::process::id() % 100_000);
    ip(&[
        "-n", &host.name, "link", "add", &up, "type", "veth", "peer", "name", "pp0", "netns",
        &peer.name,
    ]);
    ip(&["-n", &host.name, "addr", "add", "192.0.2.1/24", "dev", &up]);
    ip(&["-n", &host.name, "link", "set", &up, "up"]);
    ip(&[
        "-n",
        &peer.name,
        "addr",
        "add",
        "192.0.2.2/24",
        "dev",
        "pp0",
    ]);
    ip(&["-n", &peer.name, "link", "set", "pp0", "up"]);
}
