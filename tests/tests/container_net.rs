//! Networking pieces a Docker user relies on: a restart of netloomd from another mount
//! namespace, `--network container:NAME`, `--link`, `--add-host NAME:host-gateway`,
//! `-p` with `--network host`, and the network plugins `info` lists. Each is checked
//! with netloom's CLI and, where it applies, the real docker CLI 28.

use std::time::Duration;

use netloom_e2e::{Daemon, Launch, Out, busybox_tar, sh, unstarted_daemon, wait_for};

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

    // The recipe: the next daemon runs under `ip netns exec` (a fresh mount
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
