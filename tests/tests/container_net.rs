//! Networking pieces a Docker user relies on: a restart of netloomd from another mount
//! namespace, `--network container:NAME`, `--link`, `--add-host NAME:host-gateway`,
//! `-p` with `--network host`, and the network plugins `info` lists. Each is checked
//! with netloom's CLI and, where it applies, the real docker CLI 28.

use std::time::Duration;

use netloom_e2e::dockercli::{Docker, docker_bin};
use netloom_e2e::{
    Daemon, Launch, Out, busybox_tar, daemon_or_skip, sh, unstarted_daemon, wait_for,
};

/// A daemon (not started) whose next start uses `launch`, or a skip.
macro_rules! unstarted_or_skip {
    () => {
        match unstarted_daemon() {
            Some(d) => d,
            None => return,
        }
    };
}

/// The main process ID of container `c`.
#[track_caller]
fn pid_of(d: &Daemon, c: &str) -> String {
    let pid = d.ok(&["inspect", "-f", "{{.State.Pid}}", c]);
    assert!(
        pid.parse::<u32>().is_ok_and(|p| p > 0),
        "pid of {c}: {pid:?}"
    );
    pid
}

/// Runs `args` (a host binary) inside the network namespace of process `pid` only: the
/// test's own mount namespace, so nothing depends on the daemon's mounts.
fn in_netns_of(pid: &str, args: &[&str]) -> Out {
    let mut a = vec!["--net", "-t", pid];
    a.extend_from_slice(args);
    sh("nsenter", &a)
}

/// `nslookup NAME 127.0.0.11` from inside the network namespace of `pid`.
fn lookup_from(pid: &str, name: &str) -> Out {
    in_netns_of(pid, &["/bin/busybox", "nslookup", name, "127.0.0.11"])
}

/// A restart of netloomd from another mount namespace (`ip netns exec` gives every start
/// a fresh one, whose mounts do not propagate back) still reaches the sandboxes of the
/// containers it left running: their DNS answers and `network connect` works.
#[test]
fn restart_from_another_mount_namespace_keeps_sandboxes() {
    let mut d = unstarted_or_skip!();
    d.launch = Launch::FreshMountNs;
    d.start();
    d.ok(&[
        "image",
        "import",
        busybox_tar().to_str().unwrap(),
        "busybox",
    ]);
    d.ok(&["network", "create", "--subnet", "10.231.0.0/24", "mnt1"]);
    d.run_sleeper("m1", &["--network", "mnt1"]);
    d.run_sleeper("m2", &["--network", "mnt1"]);
    let p1 = pid_of(&d, "m1");
    let o = lookup_from(&p1, "m2");
    assert!(
        o.ok() && o.stdout.contains(&d.ip("m2", "mnt1")),
        "before: {o}"
    );

    // The issue's recipe: the next daemon runs under `ip netns exec` (a fresh mount
    // namespace and /sys; it cannot start containers there, only serve the old ones).
    d.stop();
    d.launch = Launch::IpNetnsExec;
    d.start();
    let ip2 = d.ip("m2", "mnt1");
    let answered = wait_for(Duration::from_secs(5), || {
        let o = lookup_from(&p1, "m2");
        o.ok() && o.stdout.contains(&ip2)
    });
    assert!(
        answered,
        "DNS in an old container after a restart from another mount namespace: {}\ndaemon log:\n{}",
        lookup_from(&p1, "m2"),
        d.log()
    );
    d.ok(&["network", "create", "--subnet", "10.232.0.0/24", "mnt2"]);
    d.ok(&["network", "connect", "mnt2", "m1"]);
    let links = in_netns_of(&p1, &["ip", "-o", "-4", "addr", "show", "eth1"]);
    assert!(
        links.ok() && links.stdout.contains(&d.ip("m1", "mnt2")),
        "network connect reached the old sandbox: {links}"
    );

    // And once more from a fresh mount namespace that keeps /sys: exec and DNS inside
    // the container, a disconnect, and a removal that leaves no sandbox behind.
    d.stop();
    d.launch = Launch::FreshMountNs;
    d.start();
    let out = d.exec_ok("m1", "nslookup m2 127.0.0.11");
    assert!(out.contains(&ip2), "{out}");
    d.ok(&["network", "disconnect", "mnt2", "m1"]);
    let o = in_netns_of(&p1, &["ip", "-o", "link", "show", "eth1"]);
    assert!(!o.ok(), "eth1 gone after disconnect: {o}");
    d.ok(&["rm", "-f", "m1", "m2"]);
    let left = std::fs::read_dir(d.dir.join("exec/netns"))
        .map(|r| r.count())
        .unwrap_or(0);
    assert_eq!(left, 0, "sandbox files left after rm -f");
}

/// The sandbox directory is a shared mount (as `ip netns` makes /run/netns): a sandbox
/// made by a daemon running in a mount namespace that is a peer of the host's appears
/// in the host's mount namespace too, so `nsenter --net=<exec-root>/netns/<id>` works
/// there and the next daemon started from the host sees it without help.
#[test]
fn sandbox_directory_is_a_shared_mount() {
    let mut d = unstarted_or_skip!();
    d.start();
    d.ok(&[
        "image",
        "import",
        busybox_tar().to_str().unwrap(),
        "busybox",
    ]);
    d.ok(&["network", "create", "--subnet", "10.233.0.0/24", "shr"]);
    d.stop();
    d.launch = Launch::PeerMountNs;
    d.start();
    let id = d.run_sleeper("s1", &["--network", "shr"]);
    let sb = d.dir.join("exec/netns").join(&id[..12]);
    let o = sh(
        "nsenter",
        &[
            &format!("--net={}", sb.display()),
            "ip",
            "-o",
            "-4",
            "addr",
            "show",
            "eth0",
        ],
    );
    assert!(
        o.ok() && o.stdout.contains(&d.ip("s1", "shr")),
        "the sandbox made in the daemon's mount namespace, entered from the test's: {o}"
    );
    d.ok(&["rm", "-f", "s1"]);
    assert!(!sb.exists(), "{} left after rm -f", sb.display());
}

/// The docker CLI for `d` if it is installed (else a note: the netloom half still runs).
fn docker(d: &Daemon) -> Option<Docker<'_>> {
    let dk = docker_bin().map(|b| Docker::new(d, b));
    if dk.is_none() {
        println!("SKIP (docker CLI half): no docker CLI binary");
    }
    dk
}

/// The `/etc/hosts` lines of a throw-away container run with `args` before the image.
#[track_caller]
fn hosts_of(d: &Daemon, args: &[&str]) -> Vec<String> {
    let mut a = vec!["run", "--rm"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["busybox", "cat", "/etc/hosts"]);
    d.ok(&a).lines().map(str::to_string).collect()
}

/// `--add-host NAME:host-gateway` writes the default bridge's gateway, or the daemon's
/// `host-gateway-ip` (daemon.json, then `--host-gateway-ip` over it), never the word.
#[test]
fn add_host_host_gateway_is_the_gateway_address() {
    let mut d = daemon_or_skip!();
    let cfg = d.ok(&[
        "network",
        "inspect",
        "bridge",
        "-f",
        "{{json .IPAM.Config}}",
    ]);
    let cfg: serde_json::Value = serde_json::from_str(&cfg).unwrap_or_default();
    let gw = cfg[0]["Gateway"].as_str().unwrap_or_default().to_string();
    assert!(gw.parse::<std::net::Ipv4Addr>().is_ok(), "{gw}");
    d.ok(&["network", "create", "--subnet", "10.234.0.0/24", "hg"]);
    for net in ["bridge", "hg"] {
        let hosts = hosts_of(
            &d,
            &[
                "--network",
                net,
                "--add-host",
                "gw:host-gateway",
                "--add-host",
                "db:10.1.2.3",
            ],
        );
        assert!(hosts.contains(&format!("{gw}\tgw")), "{net}: {hosts:?}");
        assert!(hosts.contains(&"10.1.2.3\tdb".to_string()), "{hosts:?}");
        assert!(
            !hosts.iter().any(|l| l.contains("host-gateway")),
            "{hosts:?}"
        );
    }
    if let Some(dk) = docker(&d) {
        let hosts = dk.ok(&[
            "run",
            "--rm",
            "--add-host",
            "gw:host-gateway",
            "busybox",
            "cat",
            "/etc/hosts",
        ]);
        assert!(hosts.lines().any(|l| l == format!("{gw}\tgw")), "{hosts}");
    }
    d.stop();
    d.write_config(r#"{"host-gateway-ip": "10.250.0.9"}"#);
    d.start();
    let hosts = hosts_of(&d, &["--add-host", "gw:host-gateway"]);
    assert!(hosts.contains(&"10.250.0.9\tgw".to_string()), "{hosts:?}");
    d.stop();
    d.extra_args = vec!["--host-gateway-ip".into(), "10.250.0.10".into()];
    d.start();
    let hosts = hosts_of(&d, &["--add-host", "gw:host-gateway"]);
    assert!(hosts.contains(&"10.250.0.10\tgw".to_string()), "{hosts:?}");
}

/// `-p` with `--network host`: Docker's warning in the create answer, printed by both
/// CLIs, and nothing published.
#[test]
fn publish_with_host_network_warns_and_publishes_nothing() {
    let d = daemon_or_skip!();
    const W: &str = "WARNING: Published ports are discarded when using host network mode";
    let o = d.cli(&[
        "run",
        "-d",
        "--name",
        "hp",
        "--network",
        "host",
        "-p",
        "18080:80",
        "busybox",
        "sleep",
        "100000",
    ]);
    assert!(o.ok(), "{o}");
    assert!(o.stderr.lines().any(|l| l == W), "{o}");
    assert_eq!(d.ok(&["port", "hp"]), "", "no published port");
    let nft = d.netns(&["nft", "list", "ruleset"]);
    assert!(
        !nft.stdout.contains("18080"),
        "no DNAT for 18080: {}",
        nft.stdout
    );
    let (code, body) = d.api(
        "POST",
        "/containers/create",
        Some(r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"NetworkMode":"host","PortBindings":{"80/tcp":[{"HostPort":"18081"}]}}}"#),
    );
    assert_eq!(code, 201, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    assert_eq!(
        v["Warnings"],
        serde_json::json!(["Published ports are discarded when using host network mode"]),
        "{body}"
    );
    // No warning without -p, nor off the host network.
    let o = d.cli(&["create", "--network", "host", "busybox", "true"]);
    assert!(o.ok() && !o.stderr.contains("WARNING"), "{o}");
    let o = d.cli(&["create", "-p", "18082:80", "busybox", "true"]);
    assert!(o.ok() && !o.stderr.contains("WARNING"), "{o}");
    if let Some(dk) = docker(&d) {
        let o = dk.run(&[
            "run",
            "-d",
            "--name",
            "hp2",
            "--network",
            "host",
            "-p",
            "18083:80",
            "busybox",
            "sleep",
            "100000",
        ]);
        assert!(o.ok(), "{o}");
        assert!(o.stderr.lines().any(|l| l == W), "{o}");
        assert_eq!(dk.ok(&["port", "hp2"]), "");
    }
}

/// `nslookup NAME 127.0.0.11` in a throw-away container run with `args` before the image.
fn lookup_in_new(d: &Daemon, args: &[&str], name: &str) -> Out {
    let mut a = vec!["run", "--rm"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["busybox", "nslookup", name, "127.0.0.11"]);
    d.cli(&a)
}

/// `--link NAME:ALIAS` on a user-defined network: the alias resolves to the linked
/// container in the linking container only (Docker's endpoint-scoped alias); no hosts
/// lines, no variables there.
#[test]
fn link_on_a_user_network_is_an_alias_of_the_linking_container() {
    let d = daemon_or_skip!();
    d.ok(&["network", "create", "--subnet", "10.237.0.0/24", "lk"]);
    d.run_sleeper("t1", &["--network", "lk"]);
    let ip = d.ip("t1", "lk");
    for name in ["tt", "TT", "tt.lk"] {
        let o = lookup_in_new(&d, &["--network", "lk", "--link", "t1:tt"], name);
        assert!(o.ok() && o.stdout.contains(&ip), "{name}: {o}");
    }
    // Another container on the network does not resolve it.
    let o = lookup_in_new(&d, &["--network", "lk"], "tt");
    assert!(
        !o.stdout.contains(&ip),
        "tt from a container without the link: {o}"
    );
    let out = d.ok(&[
        "run",
        "--rm",
        "--name",
        "linker",
        "--network",
        "lk",
        "--link",
        "t1:tt",
        "busybox",
        "sh",
        "-c",
        "cat /etc/hosts; env",
    ]);
    assert!(!out.contains("\ttt") && !out.contains("TT_"), "{out}");
    d.run_sleeper("l2", &["--network", "lk", "--link", "t1:tt"]);
    let links = d.ok(&[
        "inspect",
        "-f",
        "{{json .NetworkSettings.Networks.lk.Links}}",
        "l2",
    ]);
    assert_eq!(links, r#"["t1:tt"]"#);
    // The alias follows the linked container's address at query time.
    d.ok(&["stop", "-t", "0", "t1"]);
    d.run_sleeper("filler", &["--network", "lk", "--ip", &ip]);
    d.ok(&["start", "t1"]);
    let new_ip = d.ip("t1", "lk");
    assert_ne!(new_ip, ip);
    let out = d.exec_ok("l2", "nslookup tt 127.0.0.11");
    assert!(out.contains(&new_ip) && !out.contains(&ip), "{out}");
    if let Some(dk) = docker(&d) {
        let o = dk.run(&[
            "run",
            "--rm",
            "--network",
            "lk",
            "--link",
            "t1:db",
            "busybox",
            "nslookup",
            "db",
            "127.0.0.11",
        ]);
        assert!(o.ok() && o.stdout.contains(&new_ip), "{o}");
    }
}

/// Legacy links on the default bridge, as Docker writes them: a hosts line with the
/// alias, the linked container's hostname and its name, Docker's variables; and Docker's
/// refusals.
#[test]
fn legacy_links_on_the_default_bridge_as_docker() {
    let d = daemon_or_skip!();
    d.run_sleeper(
        "b1",
        &[
            "-h", "b1host", "--expose", "80", "--expose", "53/udp", "-e", "FOO=bar",
        ],
    );
    let ip = d.ip("b1", "bridge");
    let out = d.ok(&[
        "run",
        "--rm",
        "--name",
        "lnk",
        "--link",
        "b1:my-db",
        "--link",
        "b1",
        "busybox",
        "sh",
        "-c",
        "cat /etc/hosts; env",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    for want in [
        format!("{ip}\tmy-db b1host b1"),
        format!("{ip}\tb1 b1host"),
        "MY_DB_NAME=/lnk/my-db".to_string(),
        format!("MY_DB_PORT=udp://{ip}:53"),
        format!("MY_DB_PORT_80_TCP=tcp://{ip}:80"),
        format!("MY_DB_PORT_80_TCP_ADDR={ip}"),
        "MY_DB_PORT_80_TCP_PORT=80".to_string(),
        "MY_DB_PORT_80_TCP_PROTO=tcp".to_string(),
        "MY_DB_ENV_FOO=bar".to_string(),
        "B1_NAME=/lnk/b1".to_string(),
    ] {
        assert!(lines.contains(&want.as_str()), "{want:?} in {out}");
    }
    d.ok(&["network", "create", "lk2"]);
    d.run_sleeper("u1", &["--network", "lk2"]);
    d.run_sleeper("hostnet", &["--network", "host"]);
    d.ok(&["create", "--name", "idle", "busybox", "true"]);
    let refusals: [(&[&str], &str); 4] = [
        (
            &["--link", "u1:x"],
            "Cannot link to /u1, as it does not belong to the default network",
        ),
        (
            &["--link", "idle:x"],
            "Cannot link to a non running container: /idle AS /",
        ),
        (
            &["--network", "host", "--link", "b1:x"],
            "conflicting options: host type networking can't be used with links. This would result in undefined behavior",
        ),
        (
            &["--link", "hostnet:x"],
            "conflicting options: host type networking can't be used with links. This would result in undefined behavior",
        ),
    ];
    let dk = docker(&d);
    for (flags, msg) in refusals {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(flags);
        a.extend_from_slice(&["busybox", "true"]);
        let o = d.cli(&a);
        assert_eq!(o.code, 125, "{flags:?}: {o}");
        assert!(o.stderr.contains(msg), "{flags:?}: {o}");
        if let Some(dk) = &dk {
            let o = dk.run(&a);
            assert_eq!(o.code, 125, "docker {flags:?}: {o}");
            assert!(o.stderr.contains(msg), "docker {flags:?}: {o}");
        }
    }
    if let Some(dk) = &dk {
        let out = dk.ok(&[
            "run",
            "--rm",
            "--link",
            "b1:db",
            "busybox",
            "cat",
            "/etc/hosts",
        ]);
        assert!(
            out.lines().any(|l| l == format!("{ip}\tdb b1host b1")),
            "{out}"
        );
    }
}

/// Interface names in `ip -o link` output.
fn ifnames(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
        .collect()
}

/// `--network container:NAME`: the joiner runs in the owner's sandbox (its interfaces,
/// addresses, hostname, resolv.conf, DNS and published ports), what that sandbox decides
/// is refused with Docker's messages, and the owner's stop, restart and removal behave
/// as with Docker.
#[test]
fn network_container_mode_joins_the_owners_sandbox() {
    let d = daemon_or_skip!();
    d.ok(&["network", "create", "--subnet", "10.236.0.0/24", "cm"]);
    let own_id = d.run_sleeper(
        "own",
        &[
            "--network",
            "cm",
            "-h",
            "ownhost",
            "--dns-search",
            "ex.test",
            "-p",
            "18095:80",
        ],
    );
    d.run_sleeper("peer", &["--network", "cm"]);
    let own_ip = d.ip("own", "cm");
    d.ok(&[
        "run",
        "-d",
        "--name",
        "j1",
        "--network",
        "container:own",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /www && echo joined > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    let addr = d.exec_ok("j1", "hostname; ip -o -4 addr show eth0");
    assert!(
        addr.starts_with("ownhost\n") && addr.contains(&own_ip),
        "{addr}"
    );
    assert_eq!(
        d.exec_ok("j1", "cat /etc/resolv.conf /etc/hosts /etc/hostname"),
        d.exec_ok("own", "cat /etc/resolv.conf /etc/hosts /etc/hostname"),
        "the owner's files"
    );
    let out = d.exec_ok("j1", "nslookup peer 127.0.0.11");
    assert!(out.contains(&d.ip("peer", "cm")), "the owner's DNS: {out}");
    // The owner's published port reaches the server in the joiner.
    let got = wait_for(Duration::from_secs(5), || {
        d.netns(&["curl", "-s", "-m", "2", "http://127.0.0.1:18095/"])
            .stdout
            .contains("joined")
    });
    assert!(got, "published port of the owner reaches the joiner");
    let mode = d.ok(&[
        "inspect",
        "-f",
        "{{.HostConfig.NetworkMode}} {{json .NetworkSettings.Networks}} [{{.NetworkSettings.SandboxKey}}]",
        "j1",
    ]);
    assert_eq!(mode, format!("container:{own_id} {{}} []"));
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.HostsPath}}", "j1"]),
        d.ok(&["inspect", "-f", "{{.HostsPath}}", "own"])
    );
    let o = d.fail(&["network", "connect", "cm", "j1"]);
    assert!(
        o.stderr.contains("container sharing network namespace with another container or host cannot be connected to any other network"),
        "{o}"
    );

    // What the joined sandbox decides: refused with Docker's messages, by both CLIs.
    let dk = docker(&d);
    let refusals: [(&[&str], &str); 12] = [
        (
            &["-p", "81:80"],
            "conflicting options: port publishing and the container type network mode",
        ),
        (
            &["-P"],
            "conflicting options: port publishing and the container type network mode",
        ),
        (
            &["--expose", "80"],
            "conflicting options: port exposing and the container type network mode",
        ),
        (
            &["--hostname", "h"],
            "conflicting options: hostname and the network mode",
        ),
        (
            &["--dns", "10.0.0.1"],
            "conflicting options: dns and the network mode",
        ),
        (
            &["--add-host", "a:10.0.0.2"],
            "conflicting options: custom host-to-IP mapping and the network mode",
        ),
        (
            &["--mac-address", "02:42:0a:00:00:09"],
            "conflicting options: mac-address and the network mode",
        ),
        (
            &["--ip", "10.236.0.99"],
            "user specified IP address is supported on user defined networks only",
        ),
        (
            &["--link", "peer:x"],
            "conflicting options: container type network can't be used with links",
        ),
        (
            &["--dns-search", "a.test"],
            "conflicting options: dns search domains and the network mode",
        ),
        (
            &["--dns-option", "ndots:2"],
            "conflicting options: dns options and the network mode",
        ),
        (
            &["--domainname", "a.test"],
            "conflicting options: domainname and the network mode",
        ),
    ];
    for (flags, msg) in refusals {
        let mut a = vec!["run", "--rm", "--network", "container:own"];
        a.extend_from_slice(flags);
        a.extend_from_slice(&["busybox", "true"]);
        let o = d.cli(&a);
        assert_eq!(o.code, 125, "{flags:?}: {o}");
        assert!(o.stderr.contains(msg), "{flags:?}: {o}");
        if let Some(dk) = &dk {
            let o = dk.run(&a);
            assert_eq!(o.code, 125, "docker {flags:?}: {o}");
            assert!(o.stderr.contains(msg), "docker {flags:?}: {o}");
        }
    }
    let o = d.cli(&[
        "run",
        "--rm",
        "--network",
        "container:own",
        "--network-alias",
        "x",
        "busybox",
        "true",
    ]);
    assert_eq!(o.code, 125, "{o}");
    assert!(o.stderr.contains("alias"), "{o}");
    let o = d.cli(&["create", "--network", "container:nosuch", "busybox", "true"]);
    assert_eq!(o.code, 125, "{o}");
    assert!(o.stderr.contains("No such container: nosuch"), "{o}");
    if let Some(dk) = &dk {
        assert_eq!(
            dk.ok(&[
                "run",
                "--rm",
                "--network",
                "container:own",
                "busybox",
                "hostname"
            ]),
            "ownhost"
        );
    }

    // The owner stops: the joiner keeps running with only lo, and the owner's interface
    // is gone from the bridge (its address is free for others).
    let own_links = d.netns(&["ip", "-o", "link"]).stdout;
    d.ok(&["stop", "-t", "0", "own"]);
    assert_eq!(ifnames(&d.exec_ok("j1", "ip -o link")), ["lo"]);
    let gone = wait_for(Duration::from_secs(5), || {
        let now = d.netns(&["ip", "-o", "link"]).stdout;
        ifnames(&now).len() < ifnames(&own_links).len()
    });
    assert!(gone, "the owner's veth left the bridge");
    // A restarted owner has a new sandbox; the running joiner stays where it is.
    d.ok(&["start", "own"]);
    assert_eq!(ifnames(&d.exec_ok("j1", "ip -o link")), ["lo"]);
    // A joiner started again joins the owner's new sandbox.
    d.ok(&["stop", "-t", "0", "j1"]);
    d.ok(&["start", "j1"]);
    let addr = d.exec_ok("j1", "ip -o -4 addr show eth0");
    assert!(addr.contains(&d.ip("own", "cm")), "{addr}");
    // Not while the owner is stopped.
    d.ok(&["stop", "-t", "0", "j1"]);
    d.ok(&["stop", "-t", "0", "own"]);
    let o = d.fail(&["start", "j1"]);
    assert!(
        o.stderr.contains(&format!(
            "cannot join network of a non running container: {own_id}"
        )),
        "{o}"
    );
    // Removing an owner whose joiner runs is allowed; the joiner cannot start again.
    d.ok(&["start", "own"]);
    d.ok(&["start", "j1"]);
    d.ok(&["rm", "-f", "own"]);
    assert_eq!(ifnames(&d.exec_ok("j1", "ip -o link")), ["lo"]);
    d.ok(&["stop", "-t", "0", "j1"]);
    let o = d.fail(&["start", "j1"]);
    assert!(
        o.stderr.contains(&format!("No such container: {own_id}")),
        "{o}"
    );
}

/// docker-compose's `network_mode: service:NAME` (it asks for `container:<ID>`).
#[test]
fn compose_network_mode_service() {
    let d = daemon_or_skip!();
    if sh("docker-compose", &["version"]).code != 0 {
        println!("SKIP: no docker-compose");
        return;
    }
    let dir = d.dir.join("compose");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("docker-compose.yml"),
        "version: \"2.4\"\nservices:\n  web:\n    image: busybox\n    command: sh -c 'mkdir -p /www && echo from-web > /www/index.html && exec httpd -f -p 80 -h /www'\n  side:\n    image: busybox\n    network_mode: \"service:web\"\n    depends_on: [web]\n    command: sleep 100000\n",
    )
    .unwrap();
    let compose = |args: &[&str]| {
        let mut c = std::process::Command::new("docker-compose");
        c.current_dir(&dir)
            .args(["-p", "nlc"])
            .args(args)
            .env("DOCKER_HOST", d.host_arg());
        netloom_e2e::run_cmd(c, Duration::from_secs(60))
    };
    let o = compose(&["up", "-d"]);
    assert!(o.ok(), "compose up: {o}\n{}", d.log());
    let web = d.ok(&["inspect", "-f", "{{.Id}}", "nlc_web_1"]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.HostConfig.NetworkMode}}", "nlc_side_1"]),
        format!("container:{web}")
    );
    let out = d.exec_ok(
        "nlc_side_1",
        "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 80",
    );
    assert!(
        out.contains("from-web"),
        "side reaches web on its own loopback: {out}"
    );
    let o = compose(&["down"]);
    assert!(o.ok(), "compose down: {o}");
}
