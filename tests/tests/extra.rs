//! Further end-to-end behaviour: published ports, ICC, IPAM exhaustion and
//! release, concurrency, and absence of kernel residue after a lifecycle.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use netloom_e2e::{Daemon, daemon_or_skip, wait_for};

fn http_script(ip: &str, port: u16) -> String {
    format!(
        "r=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {ip} {port}) || exit 1; \
         case \"$r\" in *' 200 OK'*) printf '%s\\n' \"$r\" | tail -n 1;; *) exit 1;; esac"
    )
}

fn run_httpd(d: &Daemon, name: &str, extra: &[&str], token: &str) {
    let script =
        format!("mkdir -p /www && echo {token} > /www/index.html && exec httpd -f -p 8080 -h /www");
    let mut a = vec!["run", "-d", "--name", name];
    a.extend_from_slice(extra);
    a.extend_from_slice(&["busybox", "sh", "-c", &script]);
    d.ok(&a);
    assert!(
        wait_for(Duration::from_secs(5), || d
            .exec(name, &http_script("127.0.0.1", 8080))
            .stdout
            .contains(token)),
        "httpd in {name} did not come up"
    );
}

/// HTTP GET from the daemon's namespace (the "host" of the containers).
fn http_from_daemon_ns(d: &Daemon, ip: &str, port: u16) -> netloom_e2e::Out {
    d.netns(&["/bin/busybox", "sh", "-c", &http_script(ip, port)])
}

fn gateway(d: &Daemon, net: &str) -> String {
    let cfg = d.ok(&["network", "inspect", "-f", "{{json .IPAM.Config}}", net]);
    let v: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["Gateway"].as_str())
        .find(|g| g.contains('.'))
        .unwrap_or_else(|| panic!("no v4 gateway for {net}: {cfg}"))
        .to_string()
}

#[test]
fn published_port_reachable_and_removed_with_container() {
    let d = daemon_or_skip!();
    d.ok(&["network", "create", "pub"]);
    d.ok(&["network", "create", "other"]);
    run_httpd(
        &d,
        "web",
        &["--network", "pub", "-p", "18080:8080"],
        "published-ok",
    );
    let port = d.ok(&["port", "web"]);
    assert!(
        port.contains("8080/tcp -> 0.0.0.0:18080"),
        "port output: {port}"
    );

    // From the host side (daemon namespace) via the default bridge address.
    let host_ip = gateway(&d, "bridge");
    let o = http_from_daemon_ns(&d, &host_ip, 18080);
    assert_eq!(
        o.stdout.trim(),
        "published-ok",
        "host -> {host_ip}:18080: {o}"
    );
    // From a container on another network, via its gateway (a host address).
    d.run_sleeper("cli", &["--network", "other"]);
    let gw_other = gateway(&d, "other");
    let o = d.exec("cli", &http_script(&gw_other, 18080));
    assert_eq!(
        o.stdout.trim(),
        "published-ok",
        "other net -> {gw_other}:18080: {o}"
    );
    // The unpublished container port is not reachable across networks.
    let web_ip = d.ip("web", "pub");
    let o = d.exec("cli", &http_script(&web_ip, 8080));
    assert!(!o.ok(), "direct cross-network access must fail: {o}");

    d.ok(&["rm", "-f", "web"]);
    let o = http_from_daemon_ns(&d, &host_ip, 18080);
    assert!(!o.ok(), "port must be closed after rm: {o}");
    let rules = d.netns(&["nft", "list", "ruleset"]).stdout;
    assert!(
        !rules.contains("18080"),
        "nft still mentions 18080:\n{rules}"
    );

    // The host port is free again.
    run_httpd(
        &d,
        "web2",
        &["--network", "pub", "-p", "18080:8080"],
        "second",
    );
    let o = http_from_daemon_ns(&d, &host_ip, 18080);
    assert_eq!(o.stdout.trim(), "second", "{o}");
    // And a second container cannot take the same host port.
    let o = d.cli(&[
        "run",
        "-d",
        "--name",
        "web3",
        "-p",
        "18080:8080",
        "busybox",
        "sleep",
        "100",
    ]);
    assert_ne!(o.code, 0, "duplicate host port must be refused: {o}");
    assert!(
        o.stderr.contains("already allocated") || o.stderr.contains("in use"),
        "{o}"
    );
}

#[test]
fn icc_disabled_blocks_peers_but_not_gateway() {
    let d = daemon_or_skip!();
    d.ok(&[
        "network",
        "create",
        "-o",
        "com.docker.network.bridge.enable_icc=false",
        "noicc",
    ]);
    d.run_sleeper("n1", &["--network", "noicc"]);
    d.run_sleeper("n2", &["--network", "noicc"]);
    let ip2 = d.ip("n2", "noicc");
    let gw = gateway(&d, "noicc");
    let o = d.exec("n1", &format!("ping -c 1 -W 1 {ip2}"));
    assert!(!o.ok(), "icc=false: n1 must not reach n2: {o}");
    let o = d.exec("n1", &format!("ping -c 1 -W 1 {gw}"));
    assert!(o.ok(), "icc=false: gateway still reachable: {o}");
}

#[test]
fn ipam_exhaustion_and_release() {
    let d = daemon_or_skip!();
    // /29: .0 network, .7 broadcast, .1 gateway -> .2 ... .6 usable.
    d.ok(&["network", "create", "--subnet", "10.90.0.0/29", "tiny"]);
    let mut ips = BTreeSet::new();
    for i in 0..5 {
        let n = format!("t{i}");
        d.run_sleeper(&n, &["--network", "tiny"]);
        ips.insert(d.ip(&n, "tiny"));
    }
    let want: BTreeSet<String> = (2..=6).map(|i| format!("10.90.0.{i}")).collect();
    assert_eq!(ips, want);
    let o = d.cli(&[
        "run",
        "-d",
        "--name",
        "t5",
        "--network",
        "tiny",
        "busybox",
        "sleep",
        "100",
    ]);
    assert_eq!(o.code, 125, "pool exhausted: {o}");
    assert!(o.stderr.contains("no available"), "{o}");
    let _ = d.cli(&["rm", "-f", "t5"]);

    let freed = d.ip("t3", "tiny");
    d.ok(&["rm", "-f", "t3"]);
    d.run_sleeper("t6", &["--network", "tiny"]);
    assert_eq!(d.ip("t6", "tiny"), freed, "released address is reused");

    // Disconnect also releases.
    let freed = d.ip("t1", "tiny");
    d.ok(&["network", "disconnect", "tiny", "t1"]);
    d.run_sleeper("t7", &["--network", "tiny"]);
    assert_eq!(d.ip("t7", "tiny"), freed);
    // ...and the disconnected container cannot come back: pool is full.
    let o = d.cli(&["network", "connect", "tiny", "t1"]);
    assert!(!o.ok(), "{o}");
    assert!(o.stderr.contains("no available"), "{o}");
}

#[test]
fn concurrent_runs_and_creates_do_not_collide() {
    let d = Arc::new(daemon_or_skip!());
    d.ok(&["network", "create", "par"]);
    let mut hs = Vec::new();
    for i in 0..8 {
        let d = Arc::clone(&d);
        hs.push(std::thread::spawn(move || {
            d.cli(&[
                "run",
                "-d",
                "--name",
                &format!("p{i}"),
                "--network",
                "par",
                "busybox",
                "sleep",
                "100000",
            ])
        }));
    }
    for i in 0..4 {
        let d = Arc::clone(&d);
        hs.push(std::thread::spawn(move || {
            d.cli(&["network", "create", &format!("cn{i}")])
        }));
    }
    for h in hs {
        let o = h.join().unwrap();
        assert!(o.ok(), "concurrent op failed: {o}");
    }
    let mut ips = BTreeSet::new();
    for i in 0..8 {
        let ip = d.ip(&format!("p{i}"), "par");
        assert!(ips.insert(ip.clone()), "duplicate address {ip}");
    }
    let mut subnets = BTreeSet::new();
    for n in ["bridge", "par", "cn0", "cn1", "cn2", "cn3"] {
        let s = d.ok(&["network", "inspect", "-f", "{{json .IPAM.Config}}", n]);
        assert!(subnets.insert(s.clone()), "duplicate subnet {s} for {n}");
    }
    let ip0 = d.ip("p0", "par");
    assert!(d.exec("p7", &format!("ping -c 1 -W 1 {ip0}")).ok());
    // Concurrent removal.
    let mut hs = Vec::new();
    for i in 0..8 {
        let d = Arc::clone(&d);
        hs.push(std::thread::spawn(move || {
            d.cli(&["rm", "-f", &format!("p{i}")])
        }));
    }
    for h in hs {
        let o = h.join().unwrap();
        assert!(o.ok(), "concurrent rm failed: {o}");
    }
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    let d = Arc::try_unwrap(d).ok().expect("threads joined");
    drop(d);
}

fn kernel_state(d: &Daemon) -> (BTreeSet<String>, String) {
    let links = d.netns(&["ip", "-o", "link"]).stdout;
    let names = links
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
        .collect();
    (names, d.netns(&["nft", "list", "ruleset"]).stdout)
}

#[test]
fn lifecycle_leaves_no_kernel_residue() {
    let d = daemon_or_skip!();
    let base = kernel_state(&d);
    d.ok(&["network", "create", "l4"]);
    d.ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd00:77::/64",
        "l6",
    ]);
    d.ok(&["network", "create", "--internal", "lint"]);
    d.ok(&[
        "network",
        "create",
        "-o",
        "com.docker.network.bridge.enable_icc=false",
        "-o",
        "com.docker.network.bridge.name=brcustom",
        "lnoicc",
    ]);
    d.run_sleeper(
        "la",
        &["--network", "l4", "-p", "18081:80", "-p", "18082:81/udp"],
    );
    d.run_sleeper("lb", &["--network", "l6"]);
    d.run_sleeper("c1", &["--network", "lint"]);
    d.run_sleeper("c2", &["--network", "lnoicc"]);
    d.run_sleeper("dd", &["-p", "18083:80"]);
    d.ok(&["network", "connect", "l6", "la"]);
    d.ok(&["network", "connect", "lint", "dd"]);
    d.ok(&["network", "disconnect", "lint", "dd"]);
    let o = d.cli(&[
        "run",
        "--rm",
        "--network",
        "l4",
        "-p",
        "18084:80",
        "busybox",
        "true",
    ]);
    assert!(o.ok(), "{o}");
    let mid = kernel_state(&d);
    assert!(
        mid.0.contains("brcustom"),
        "custom bridge name used: {:?}",
        mid.0
    );
    assert_ne!(mid, base);
    d.ok(&["stop", "-t", "1", "lb"]);
    d.ok(&["rm", "-f", "la", "lb", "c1", "c2", "dd"]);
    d.ok(&["network", "rm", "l4", "l6", "lint", "lnoicc"]);
    // Bridge deletion finishes asynchronously (RCU grace period) after the
    // API call returns; allow it a moment.
    wait_for(Duration::from_secs(3), || kernel_state(&d) == base);
    let end = kernel_state(&d);
    assert_eq!(end.0, base.0, "links back to baseline");
    assert_eq!(end.1, base.1, "nft ruleset back to baseline");
    let nsdir = d.dir.join("exec/netns");
    let left: Vec<_> = std::fs::read_dir(&nsdir)
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "netns files left: {left:?}");
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    // The sandbox directory itself stays a (shared) mount point, as /run/netns does.
    let sandbox_dir = format!(" {} ", nsdir.display());
    let ours: Vec<&str> = mi
        .lines()
        .filter(|l| l.contains(&format!("{}/", d.dir.display())))
        .filter(|l| {
            l.split(" - ")
                .next()
                .is_none_or(|head| !head.contains(&sandbox_dir))
        })
        .collect();
    assert!(ours.is_empty(), "mounts left: {ours:#?}");
}

/// `--mac-address`: the endpoint gets the requested MAC (bridge), in inspect and in the
/// kernel; API < 1.44 clients send it at the top level and read it back from
/// `Config.MacAddress`, newer ones from the endpoint settings only.
#[test]
fn requested_mac_address_is_applied_and_reported() {
    let d = daemon_or_skip!();
    d.ok(&["network", "create", "--subnet", "10.61.0.0/24", "macnet"]);
    d.run_sleeper(
        "macc",
        &["--network", "macnet", "--mac-address", "02:00:00:61:00:07"],
    );
    let link = d.exec_ok("macc", "ip -o link show eth0");
    assert!(link.contains("02:00:00:61:00:07"), "{link}");
    let mac = d.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.macnet.MacAddress}}",
        "macc",
    ]);
    assert_eq!(mac.trim(), "02:00:00:61:00:07");

    let body = r#"{"Image":"busybox","Cmd":["sleep","1000"],"MacAddress":"02:00:00:61:00:09","HostConfig":{"NetworkMode":"macnet"}}"#;
    let (code, out) = d.api("POST", "/v1.43/containers/create?name=oldmac", Some(body));
    assert_eq!(code, 201, "{out}");
    let (code, out) = d.api("GET", "/v1.43/containers/oldmac/json", None);
    assert_eq!(code, 200, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Config"]["MacAddress"], "02:00:00:61:00:09", "{out}");
    let (_, out) = d.api("GET", "/v1.47/containers/oldmac/json", None);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["Config"].get("MacAddress").is_none(), "{out}");
    d.ok(&["start", "oldmac"]);
    let mac = d.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.macnet.MacAddress}}",
        "oldmac",
    ]);
    assert_eq!(mac.trim(), "02:00:00:61:00:09");

    // The top-level MAC and endpoint settings keyed by the network's ID are one
    // network's settings: both apply.
    let id = d.ok(&["network", "inspect", "-f", "{{.Id}}", "macnet"]);
    let body = format!(
        r#"{{"Image":"busybox","Cmd":["sleep","1000"],"MacAddress":"02:00:00:61:00:0b","HostConfig":{{"NetworkMode":"macnet"}},"NetworkingConfig":{{"EndpointsConfig":{{"{}":{{"IPAMConfig":{{"IPv4Address":"10.61.0.77"}}}}}}}}}}"#,
        id.trim()
    );
    let (code, out) = d.api("POST", "/v1.43/containers/create?name=both", Some(&body));
    assert_eq!(code, 201, "{out}");
    d.ok(&["start", "both"]);
    let link = d.exec_ok("both", "ip -o link show eth0; ip -o addr show eth0");
    assert!(
        link.contains("02:00:00:61:00:0b") && link.contains("10.61.0.77"),
        "MAC and pinned address both applied: {link}"
    );

    // With host networking there is no MAC to set.
    let body = r#"{"Image":"busybox","Cmd":["true"],"MacAddress":"02:00:00:61:00:0a","HostConfig":{"NetworkMode":"host"}}"#;
    let (code, out) = d.api("POST", "/v1.43/containers/create?name=hostmac", Some(body));
    assert_eq!(code, 400, "{out}");
    assert!(out.contains("conflicting options: mac-address"), "{out}");
}

/// `stop` and `rm -f` of several containers work on them at once, as docker's CLI does
/// (50 at a time), and still report each name in the order given. Four containers that
/// ignore SIGTERM take one stop timeout together, not four one after another.
#[test]
fn stop_and_rm_of_many_run_at_once_in_order() {
    let d = daemon_or_skip!();
    let names = ["st1", "st2", "st3", "st4"];
    for n in names {
        d.ok(&[
            "run",
            "-d",
            "--name",
            n,
            "busybox",
            "sh",
            "-c",
            "trap '' TERM; sleep 100000",
        ]);
    }
    let t = std::time::Instant::now();
    d.ok(&["stop", "-t", "2", "st1"]);
    let one = t.elapsed();
    let t = std::time::Instant::now();
    let out = d.ok(&["stop", "-t", "2", "st2", "st3", "st4"]);
    let three = t.elapsed();
    assert_eq!(out, "st2\nst3\nst4", "names in the order given");
    assert!(
        three.as_secs_f64() < 2.0 * one.as_secs_f64(),
        "stopping 3 containers took {three:?}, one took {one:?}: not stopped at once"
    );
    for n in ["st1", "st2"] {
        d.ok(&["start", n]);
    }
    // rm -f: all in one call, a missing name in the middle is reported, not fatal.
    let o = d.cli(&["rm", "-f", "st4", "nosuch", "st2", "st3", "st1"]);
    assert!(o.ok(), "rm -f of a missing container is no failure: {o}");
    assert_eq!(o.stdout.trim(), "st4\nst2\nst3\nst1", "{o}");
    assert!(o.stderr.contains("nosuch"), "{o}");
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}
