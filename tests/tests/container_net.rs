//! Networking pieces a Docker user relies on: a restart of netloomd from another mount
//! namespace, `--network container:NAME`, `--link`, `--add-host NAME:host-gateway`,
//! `-p` with `--network host`, and the network plugins `info` lists. Each is checked
//! with netloom's CLI and, where it applies, the real docker CLI 28.

use std::time::Duration;

use netloom_e2e::docker::{Docker, docker_bin};
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
