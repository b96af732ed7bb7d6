//! Core end-to-end behaviour: connectivity, isolation, multi-network,
//! predefined networks, restart, run/exec/logs, IPAM and IPv6.

use std::collections::BTreeSet;
use std::time::Duration;

use netloom_e2e::{Daemon, daemon_or_skip, wait_for};

/// `(iface, family, addr-without-prefix)` from `ip -o addr` output.
fn addrs(ip_o_addr: &str) -> Vec<(String, String, String)> {
    ip_o_addr
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 4 {
                return None;
            }
            let ifname = f[1].split('@').next()?.to_string();
            let addr = f[3].split('/').next()?.to_string();
            Some((ifname, f[2].to_string(), addr))
        })
        .collect()
}

/// Interface names from `ip -o link` output.
fn link_names(ip_o_link: &str) -> BTreeSet<String> {
    ip_o_link
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
        .filter(|n| !n.is_empty())
        .collect()
}

/// Starts a busybox httpd serving `token` at `/` on port 8080.
fn run_httpd(d: &Daemon, name: &str, extra: &[&str], token: &str) {
    let script =
        format!("mkdir -p /www && echo {token} > /www/index.html && exec httpd -f -p 8080 -h /www");
    let mut a = vec!["run", "-d", "--name", name];
    a.extend_from_slice(extra);
    a.extend_from_slice(&["busybox", "sh", "-c", &script]);
    d.ok(&a);
    // Wait until it listens (probe from inside its own namespace).
    assert!(
        wait_for(Duration::from_secs(5), || d
            .exec(name, &http_script("127.0.0.1"))
            .stdout
            .contains(token)),
        "httpd in {name} did not come up"
    );
}

fn can_ping(d: &Daemon, from: &str, ip: &str) -> bool {
    d.exec(from, &format!("ping -c 1 -W 1 {ip}")).ok()
}

/// HTTP GET via nc (busybox-static's wget segfaults on some distros).
/// Prints only the body; fails unless a 200 response arrived.
fn http_script(ip: &str) -> String {
    format!(
        "r=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {ip} 8080) || exit 1; \
         case \"$r\" in *' 200 OK'*) printf '%s\\n' \"$r\" | tail -n 1;; *) exit 1;; esac"
    )
}

fn http_get(d: &Daemon, from: &str, ip: &str) -> netloom_e2e::Out {
    d.exec(from, &http_script(ip))
}

#[test]
fn same_bridge_containers_talk_by_ip() {
    let d = daemon_or_skip!();
    d.ok(&["network", "create", "front"]);
    run_httpd(&d, "web", &["--network", "front"], "hello-from-web");
    d.run_sleeper("client", &["--network", "front"]);
    let web_ip = d.ip("web", "front");
    let client_ip = d.ip("client", "front");
    assert!(
        !web_ip.is_empty() && web_ip != client_ip,
        "{web_ip} {client_ip}"
    );

    let o = d.exec("client", &format!("ping -c 2 -W 2 {web_ip}"));
    assert!(o.ok(), "ping web from client: {o}");
    assert!(o.stdout.contains("2 packets received"), "{o}");

    let o = http_get(&d, "client", &web_ip);
    assert!(o.ok(), "wget: {o}");
    assert_eq!(o.stdout.trim(), "hello-from-web");

    // Raw TCP the other way: nc listener in client, web connects.
    d.ok(&[
        "exec",
        "-d",
        "client",
        "sh",
        "-c",
        "nc -l -p 9000 -e echo tcp-payload-42",
    ]);
    let script = format!(
        "for i in 1 2 3 4 5 6 7 8 9 10; do o=$(nc -w 2 {client_ip} 9000 </dev/null) && [ -n \"$o\" ] && echo \"$o\" && exit 0; sleep 0.3; done; exit 1"
    );
    let o = d.exec("web", &script);
    assert!(o.ok(), "nc web->client: {o}");
    assert_eq!(o.stdout.trim(), "tcp-payload-42");
}

#[test]
fn different_bridges_are_isolated() {
    let d = daemon_or_skip!();
    d.ok(&["network", "create", "neta"]);
    d.ok(&["network", "create", "netb"]);
    run_httpd(&d, "a1", &["--network", "neta"], "token-a1");
    run_httpd(&d, "b1", &["--network", "netb"], "token-b1");
    d.run_sleeper("a2", &["--network", "neta"]);
    let a1 = d.ip("a1", "neta");
    let b1 = d.ip("b1", "netb");

    // Same network still works.
    assert!(can_ping(&d, "a2", &a1), "a2 -> a1 ping should work");
    let o = http_get(&d, "a2", &a1);
    assert_eq!(o.stdout.trim(), "token-a1", "{o}");

    // Cross network fails both ways, ICMP and TCP.
    assert!(!can_ping(&d, "a1", &b1), "a1 -> b1 ping must fail");
    assert!(!can_ping(&d, "b1", &a1), "b1 -> a1 ping must fail");
    let o = http_get(&d, "a1", &b1);
    assert!(
        !o.ok() && !o.stdout.contains("token-b1"),
        "a1 -> b1 tcp must fail: {o}"
    );
    let o = http_get(&d, "b1", &a1);
    assert!(
        !o.ok() && !o.stdout.contains("token-a1"),
        "b1 -> a1 tcp must fail: {o}"
    );
    let o = http_get(&d, "a2", &b1);
    assert!(!o.ok(), "a2 -> b1 tcp must fail: {o}");
}

#[test]
fn multi_network_connect_disconnect_live() {
    let d = daemon_or_skip!();
    d.ok(&["network", "create", "mna"]);
    d.ok(&["network", "create", "mnb"]);
    d.run_sleeper("cc", &["--network", "mna"]);
    d.run_sleeper("peer", &["--network", "mnb"]);

    let before = addrs(&d.exec_ok("cc", "ip -o addr"));
    let v4: Vec<_> = before
        .iter()
        .filter(|a| a.1 == "inet" && a.0 != "lo")
        .collect();
    let ip_a = d.ip("cc", "mna");
    assert_eq!(v4.len(), 1, "one interface before connect: {before:?}");
    assert_eq!(
        (v4[0].0.as_str(), v4[0].2.as_str()),
        ("eth0", ip_a.as_str())
    );

    d.ok(&["network", "connect", "mnb", "cc"]);
    let ip_b = d.ip("cc", "mnb");
    assert!(!ip_b.is_empty(), "inspect reports an address on mnb");
    assert_eq!(d.ip("cc", "mna"), ip_a, "mna address unchanged by connect");
    let after = addrs(&d.exec_ok("cc", "ip -o addr"));
    let mut v4: Vec<(String, String)> = after
        .iter()
        .filter(|a| a.1 == "inet" && a.0 != "lo")
        .map(|a| (a.0.clone(), a.2.clone()))
        .collect();
    v4.sort();
    assert_eq!(
        v4,
        vec![
            ("eth0".to_string(), ip_a.clone()),
            ("eth1".to_string(), ip_b.clone())
        ],
        "addresses inside the container match inspect"
    );
    // The new leg is usable.
    assert!(
        can_ping(&d, "peer", &ip_b),
        "peer on mnb reaches c via eth1"
    );
    let nets: Vec<String> = d.nets("cc").into_keys().collect();
    assert_eq!(nets, ["mna", "mnb"]);

    d.ok(&["network", "disconnect", "mnb", "cc"]);
    let after = addrs(&d.exec_ok("cc", "ip -o addr"));
    let v4: Vec<_> = after
        .iter()
        .filter(|a| a.1 == "inet" && a.0 != "lo")
        .collect();
    assert_eq!(v4.len(), 1, "eth1 gone after disconnect: {after:?}");
    assert_eq!(v4[0].2, ip_a);
    let links = link_names(&d.exec_ok("cc", "ip -o link"));
    assert!(!links.contains("eth1"), "eth1 removed: {links:?}");
    assert!(
        !can_ping(&d, "peer", &ip_b),
        "old mnb address no longer answers"
    );
    let nets: Vec<String> = d.nets("cc").into_keys().collect();
    assert_eq!(nets, ["mna"]);
    // Network inspect no longer lists c on mnb.
    let cs = d.ok(&["network", "inspect", "-f", "{{len .Containers}}", "mnb"]);
    assert_eq!(cs, "1", "only peer remains on mnb");
}

#[test]
fn network_none_and_host() {
    let d = daemon_or_skip!();
    let o = d.cli(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "ip",
        "-o",
        "link",
    ]);
    assert!(o.ok(), "{o}");
    assert_eq!(
        link_names(&o.stdout),
        BTreeSet::from(["lo".to_string()]),
        "{o}"
    );
    let o = d.cli(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "ip",
        "-o",
        "addr",
    ]);
    assert!(
        addrs(&o.stdout).iter().all(|a| a.0 == "lo"),
        "no addresses outside lo: {o}"
    );

    let o = d.cli(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "ip",
        "-o",
        "link",
    ]);
    assert!(o.ok(), "{o}");
    let in_container = link_names(&o.stdout);
    assert!(
        in_container.contains("netloom0"),
        "host-network container sees netloom0: {o}"
    );
    let daemon_ns = link_names(&d.netns(&["ip", "-o", "link"]).stdout);
    assert_eq!(in_container, daemon_ns, "host network == daemon namespace");
}

#[test]
fn predefined_and_in_use_networks_refuse_removal_and_prune() {
    let d = daemon_or_skip!();
    for n in ["bridge", "host", "none"] {
        let o = d.cli(&["network", "rm", n]);
        assert_eq!(o.code, 1, "network rm {n}: {o}");
        assert!(
            o.stderr.contains(&format!(
                "{n} is a pre-defined network and cannot be removed"
            )),
            "{o}"
        );
    }
    d.ok(&["network", "create", "busy"]);
    d.ok(&["network", "create", "idle1"]);
    d.ok(&["network", "create", "idle2"]);
    d.run_sleeper("user", &["--network", "busy"]);
    let o = d.cli(&["network", "rm", "busy"]);
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("has active endpoints"), "{o}");

    let o = d.cli(&["network", "prune", "-f"]);
    assert!(o.ok(), "{o}");
    let printed: BTreeSet<&str> = o
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert!(
        printed.contains("idle1") && printed.contains("idle2"),
        "prune lists removed: {o}"
    );
    for keep in ["busy", "bridge", "host", "none"] {
        assert!(!printed.contains(keep), "prune must not list {keep}: {o}");
    }
    let left: BTreeSet<String> = d
        .ok(&["network", "ls", "--format", "{{.Name}}"])
        .lines()
        .map(str::to_string)
        .collect();
    let want: BTreeSet<String> = ["bridge", "busy", "host", "none"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(left, want);
    // Bridges of pruned networks are gone from the kernel (deletion
    // completes asynchronously, shortly after the API call).
    let bridges = || {
        link_names(&d.netns(&["ip", "-o", "link"]).stdout)
            .into_iter()
            .filter(|n| n.starts_with("br-"))
            .count()
    };
    wait_for(Duration::from_secs(3), || bridges() == 1);
    let links = d.netns(&["ip", "-o", "link"]).stdout;
    let busy_id = d.ok(&["network", "inspect", "-f", "{{.Id}}", "busy"]);
    let br: Vec<String> = link_names(&links)
        .into_iter()
        .filter(|n| n.starts_with("br-"))
        .collect();
    assert_eq!(br.len(), 1, "only busy's bridge remains: {br:?}");
    assert!(links.contains(&format!("br-{}", &busy_id[..12])), "{links}");
    // The container is unaffected.
    assert!(d.exec("user", "true").ok());
}

/// Everything user-visible about networks and containers, for restart checks.
fn snapshot(d: &Daemon) -> (String, Vec<(String, String, String)>) {
    let nets = d.ok(&[
        "network",
        "ls",
        "--no-trunc",
        "--format",
        "{{.ID}} {{.Name}} {{.Driver}}",
    ]);
    let mut nets: Vec<&str> = nets.lines().collect();
    nets.sort();
    let cs = d.ok(&[
        "ps",
        "-a",
        "--no-trunc",
        "--format",
        "{{.ID}} {{.Names}} {{.State}}",
    ]);
    let mut out = Vec::new();
    for l in cs.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        let ips = format!("{:?}", d.nets(f[0]));
        out.push((f[1].to_string(), f[2].to_string(), ips));
    }
    out.sort();
    (nets.join("\n"), out)
}

fn all_ips(d: &Daemon) -> Vec<String> {
    let mut v = Vec::new();
    for id in d.ok(&["ps", "-aq"]).split_whitespace() {
        v.extend(d.nets(id).into_values().filter(|ip| !ip.is_empty()));
    }
    v
}

fn check_after_restart(d: &Daemon, before: &(String, Vec<(String, String, String)>), round: &str) {
    let after = snapshot(d);
    assert_eq!(
        after.0, before.0,
        "{round}: networks changed across restart"
    );
    assert_eq!(
        after.1, before.1,
        "{round}: containers changed across restart"
    );
    for (name, state, _) in &after.1 {
        assert_eq!(state, "running", "{round}: {name} still running");
    }
    let ip1 = d.ip("r1", "rnet");
    assert!(
        can_ping(d, "r2", &ip1),
        "{round}: r2 -> r1 ping after restart"
    );
    let ipb = d.ip("r1", "bridge");
    assert!(
        can_ping(d, "r3", &ipb),
        "{round}: r3 -> r1 on default bridge"
    );
    // A new container gets a fresh address on each network.
    let existing = all_ips(d);
    let n = format!("new-{round}");
    d.run_sleeper(&n, &["--network", "rnet"]);
    let ip = d.ip(&n, "rnet");
    assert!(
        !existing.contains(&ip),
        "{round}: duplicate address {ip} in {existing:?}"
    );
    let nb = format!("newb-{round}");
    d.run_sleeper(&nb, &[]);
    let ip = d.ip(&nb, "bridge");
    assert!(
        !existing.contains(&ip),
        "{round}: duplicate address {ip} in {existing:?}"
    );
    assert!(can_ping(d, &n, &ip1), "{round}: new container reaches r1");
}

#[test]
fn daemon_restart_preserves_state() {
    let mut d = daemon_or_skip!();
    d.ok(&["network", "create", "rnet"]);
    d.run_sleeper("r1", &["--network", "rnet"]);
    d.ok(&["network", "connect", "bridge", "r1"]);
    d.run_sleeper("r2", &["--network", "rnet"]);
    d.run_sleeper("r3", &[]);

    for (round, hard) in [("term", false), ("kill9", true)] {
        // A --rm container that exits while the daemon is down.
        let gone = format!("gone-{round}");
        d.ok(&[
            "run", "-d", "--rm", "--name", &gone, "busybox", "sleep", "1",
        ]);
        let before = snapshot(&d);
        let before = (
            before.0,
            before
                .1
                .into_iter()
                .filter(|c| c.0 != gone)
                .collect::<Vec<_>>(),
        );
        if hard {
            d.kill9();
        } else {
            d.stop();
        }
        std::thread::sleep(Duration::from_millis(2000));
        d.start();
        // The exited --rm container disappears (allow the reconciler a moment).
        assert!(
            wait_for(Duration::from_secs(5), || !d
                .ok(&["ps", "-a", "--format", "{{.Names}}"])
                .lines()
                .any(|l| l == gone)),
            "{round}: --rm container {gone} still listed: {}",
            d.ok(&["ps", "-a"])
        );
        check_after_restart(&d, &before, round);
    }
}

#[test]
fn run_streams_output_and_exit_codes() {
    let d = daemon_or_skip!();
    let o = d.cli(&[
        "run",
        "--name",
        "fg",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(o.code, 3, "{o}");
    assert_eq!(o.stdout, "out\n", "{o}");
    assert_eq!(o.stderr, "err\n", "{o}");
    let o = d.cli(&["logs", "fg"]);
    assert!(o.ok(), "{o}");
    assert_eq!(o.stdout, "out\n", "{o}");
    assert_eq!(o.stderr, "err\n", "{o}");
    let st = d.ok(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        "fg",
    ]);
    assert_eq!(st, "exited 3");

    let o = d.cli(&["run", "--rm", "busybox", "true"]);
    assert_eq!(o.code, 0, "{o}");
    let o = d.cli(&["run", "--rm", "busybox", "sh", "-c", "exit 42"]);
    assert_eq!(o.code, 42, "{o}");

    d.run_sleeper("ex", &[]);
    let o = d.exec("ex", "echo in-exec; exit 7");
    assert_eq!(o.code, 7, "{o}");
    assert_eq!(o.stdout, "in-exec\n");
    let o = d.exec("ex", "echo e1 >&2");
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(o.stderr, "e1\n");
    // A command that does not exist: docker uses 126/127.
    let o = d.cli(&["exec", "ex", "/no/such/binary"]);
    assert!(
        o.code == 126 || o.code == 127,
        "missing binary exit code: {o}"
    );
}

#[test]
fn ipam_pin_range_gateway_internal() {
    let d = daemon_or_skip!();
    d.ok(&["network", "create", "--subnet", "10.77.0.0/24", "pin"]);
    d.run_sleeper("p1", &["--network", "pin", "--ip", "10.77.0.50"]);
    assert_eq!(d.ip("p1", "pin"), "10.77.0.50");
    let inside = addrs(&d.exec_ok("p1", "ip -o addr"));
    assert!(
        inside.iter().any(|a| a.0 == "eth0" && a.2 == "10.77.0.50"),
        "{inside:?}"
    );
    let o = d.cli(&[
        "run",
        "-d",
        "--name",
        "p2",
        "--network",
        "pin",
        "--ip",
        "10.77.0.50",
        "busybox",
        "sleep",
        "100",
    ]);
    assert_eq!(o.code, 125, "taken --ip refused: {o}");
    assert!(o.stderr.contains("already in use"), "{o}");
    // Like docker, the container may be left in "created" state, but it
    // must not run and must not have taken the address.
    let st = d.cli(&["inspect", "-f", "{{.State.Running}}", "p2"]);
    assert!(
        !st.ok() || st.stdout.trim() == "false",
        "p2 must not run: {st}"
    );
    assert_eq!(d.ip("p1", "pin"), "10.77.0.50");

    d.ok(&[
        "network",
        "create",
        "--subnet",
        "10.78.0.0/16",
        "--gateway",
        "10.78.0.254",
        "--ip-range",
        "10.78.5.0/24",
        "ranged",
    ]);
    let cfg = d.ok(&[
        "network",
        "inspect",
        "-f",
        "{{json .IPAM.Config}}",
        "ranged",
    ]);
    let cfg: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    assert_eq!(cfg[0]["Subnet"], "10.78.0.0/16", "{cfg}");
    assert_eq!(cfg[0]["Gateway"], "10.78.0.254", "{cfg}");
    assert_eq!(cfg[0]["IPRange"], "10.78.5.0/24", "{cfg}");
    for i in 0..3 {
        let n = format!("rg{i}");
        d.run_sleeper(&n, &["--network", "ranged"]);
        let ip = d.ip(&n, "ranged");
        assert!(ip.starts_with("10.78.5."), "{n} got {ip}, outside ip-range");
        let routes = d.exec_ok(&n, "ip route");
        assert!(
            routes.contains("default via 10.78.0.254"),
            "{n} routes: {routes}"
        );
    }
    assert!(can_ping(&d, "rg0", "10.78.0.254"), "gateway answers");
    let ip2 = d.ip("rg2", "ranged");
    assert!(can_ping(&d, "rg0", &ip2));

    d.ok(&["network", "create", "--internal", "intl"]);
    d.run_sleeper("i1", &["--network", "intl"]);
    d.run_sleeper("i2", &["--network", "intl"]);
    let ip1 = d.ip("i1", "intl");
    assert!(can_ping(&d, "i2", &ip1), "internal peers talk");
    for c in ["i1", "i2"] {
        let routes = d.exec_ok(c, "ip route; ip -6 route");
        assert!(
            !routes.contains("default"),
            "{c} on internal net has no default route: {routes}"
        );
    }
    let internal = d.ok(&["network", "inspect", "-f", "{{.Internal}}", "intl"]);
    assert_eq!(internal, "true");
}

#[test]
fn ipv6_network() {
    let d = daemon_or_skip!();
    d.ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd00:42::/64",
        "v6",
    ]);
    d.run_sleeper("s1", &["--network", "v6"]);
    d.run_sleeper("s2", &["--network", "v6"]);
    let a1 = d.ip6("s1", "v6");
    let a2 = d.ip6("s2", "v6");
    assert!(
        a1.starts_with("fd00:42::") && a2.starts_with("fd00:42::"),
        "{a1} {a2}"
    );
    assert_ne!(a1, a2);
    for (c, a) in [("s1", &a1), ("s2", &a2)] {
        let inside = addrs(&d.exec_ok(c, "ip -o -6 addr"));
        assert!(
            inside
                .iter()
                .any(|x| x.0 == "eth0" && x.1 == "inet6" && &x.2 == a),
            "{c} has {a}: {inside:?}"
        );
    }
    // Allow for duplicate address detection to finish.
    let ok = wait_for(Duration::from_secs(5), || {
        d.exec("s1", &format!("ping -6 -c 1 -W 1 {a2}")).ok()
    });
    assert!(
        ok,
        "s1 -> s2 ping6: {}",
        d.exec("s1", &format!("ping -6 -c 1 -W 1 {a2}"))
    );
    let o = d.exec("s2", &format!("ping -6 -c 1 -W 1 {a1}"));
    assert!(o.ok(), "s2 -> s1 ping6: {o}");
    // Dual-stack: v4 also present.
    assert!(!d.ip("s1", "v6").is_empty(), "IPv4 address alongside IPv6");
}

#[test]
fn start_running_and_stop_stopped_are_noops() {
    // docker: starting a running / stopping a stopped container succeeds
    // (the API answers 304 Not Modified, which the client treats as success).
    let d = daemon_or_skip!();
    d.run_sleeper("idem", &[]);
    let o = d.cli(&["start", "idem"]);
    assert!(o.ok(), "start of a running container must succeed: {o}");
    assert_eq!(o.stdout.trim(), "idem", "{o}");
    d.ok(&["stop", "-t", "1", "idem"]);
    let o = d.cli(&["stop", "idem"]);
    assert!(o.ok(), "stop of a stopped container must succeed: {o}");
    assert_eq!(o.stdout.trim(), "idem", "{o}");
    let (status, _) = d.api("POST", "/containers/idem/stop", None);
    assert_eq!(status, 304);
    let st = d.ok(&["inspect", "-f", "{{.State.Status}}", "idem"]);
    assert_eq!(st, "exited");
}

#[test]
fn run_and_exec_honour_user() {
    // `-u/--user` must not be silently dropped: the process runs as that
    // uid, or the request is refused.
    let d = daemon_or_skip!();
    let o = d.cli(&[
        "run",
        "--rm",
        "-u",
        "1000:1000",
        "busybox",
        "sh",
        "-c",
        "id -u; id -g",
    ]);
    assert!(o.ok(), "{o}");
    assert_eq!(
        o.stdout, "1000\n1000\n",
        "run -u 1000:1000 must run as uid/gid 1000: {o}"
    );
    d.run_sleeper("usr", &[]);
    let o = d.cli(&["exec", "-u", "1000", "usr", "id", "-u"]);
    assert!(o.ok(), "{o}");
    assert_eq!(
        o.stdout.trim(),
        "1000",
        "exec -u 1000 must run as uid 1000: {o}"
    );
    let u = d.ok(&["inspect", "-f", "{{.Config.User}}", "usr"]);
    assert_eq!(u, "", "no user configured for usr");
    // An unknown user name without /etc/passwd is an error, not root.
    let o = d.cli(&["exec", "-u", "nobodyxyz", "usr", "id", "-u"]);
    assert!(
        !o.ok() && o.stdout.trim() != "0",
        "unknown user must not run as root: {o}"
    );
}
