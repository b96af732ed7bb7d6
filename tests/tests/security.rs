//! Containers run by runc with Docker's security defaults, seen from inside a
//! container of the real daemon: capability denials, the default seccomp profile,
//! masked and read-only paths, and what `--cap-add`, `--privileged`,
//! `--security-opt` and `exec --privileged` restore. Also sysctls, mounts, ulimits,
//! cgroup limits, stats and runtime selection.

use netloom_e2e::{Daemon, daemon_or_skip};

/// `run --rm [opts] busybox sh -c SCRIPT`.
fn run_sh(d: &Daemon, opts: &[&str], script: &str) -> netloom_e2e::Out {
    let mut a = vec!["run", "--rm"];
    a.extend_from_slice(opts);
    a.extend_from_slice(&["busybox", "sh", "-c", script]);
    d.cli(&a)
}

fn cap_eff(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Every capability a container can get here: the kernel's, within the bounding
/// set of this (root) process, as `--privileged` grants them.
fn all_caps() -> String {
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
    let bnd = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    format!("{:016x}", ((1u64 << (last + 1)) - 1) & bnd)
}

#[test]
fn default_confinement_denies_and_privileged_restores() {
    let d = daemon_or_skip!();
    d.ok(&["network", "create", "--subnet", "10.91.0.0/24", "secnet"]);
    d.run_sleeper("victim", &["--network", "secnet"]);
    d.run_sleeper("c1", &["--network", "secnet"]);
    let victim = d.ip("victim", "secnet");

    // Docker's default capability set: no NET_ADMIN, no SYS_ADMIN.
    let o = d.exec_ok("c1", "grep Cap /proc/self/status");
    assert_eq!(cap_eff(&o), "00000000a80425fb", "{o}");
    // Taking a neighbour's address needs NET_ADMIN.
    let o = d.exec("c1", &format!("ip addr add {victim}/24 dev eth0"));
    assert_ne!(o.code, 0, "{o}");
    assert!(o.all().contains("Operation not permitted"), "{o}");
    // /proc/sys is read-only.
    let o = d.exec("c1", "echo 1 > /proc/sys/net/ipv4/ip_forward");
    assert_ne!(o.code, 0, "{o}");
    assert!(o.all().contains("Read-only file system"), "{o}");
    // The default seccomp profile: a new user namespace needs no capability, the
    // profile alone forbids it.
    let o = d.exec("c1", "unshare -U true");
    assert_ne!(o.code, 0, "{o}");
    assert!(o.all().contains("Operation not permitted"), "{o}");
    // Masked paths read empty.
    assert_eq!(d.exec_ok("c1", "wc -c < /proc/timer_list").trim(), "0");
    // exec gets the same confinement...
    let o = d.cli(&["exec", "c1", "sh", "-c", "grep CapEff /proc/self/status"]);
    assert_eq!(cap_eff(&o.stdout), "00000000a80425fb", "{o}");
    // ...and `exec --privileged` every capability (the container's seccomp stays).
    let o = d.cli(&[
        "exec",
        "--privileged",
        "c1",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert_eq!(cap_eff(&o.stdout), all_caps(), "{o}");
    let o = d.cli(&["exec", "--privileged", "c1", "unshare", "-U", "true"]);
    assert_ne!(o.code, 0, "seccomp is the container's: {o}");
    let o = d.cli(&[
        "exec",
        "--privileged",
        "c1",
        "ip",
        "addr",
        "add",
        "10.91.0.250/24",
        "dev",
        "eth0",
    ]);
    assert!(o.ok(), "{o}");

    // --cap-add NET_ADMIN restores the address change.
    let o = run_sh(
        &d,
        &["--network", "secnet", "--cap-add", "NET_ADMIN"],
        "ip addr add 10.91.0.251/24 dev eth0 && ip -o addr show eth0",
    );
    assert!(o.ok() && o.stdout.contains("10.91.0.251"), "{o}");
    // seccomp=unconfined lifts the profile only.
    let o = run_sh(
        &d,
        &["--security-opt", "seccomp=unconfined"],
        "unshare -U true && echo ok",
    );
    assert_eq!(o.stdout.trim(), "ok", "{o}");
    // --privileged lifts everything.
    let o = run_sh(
        &d,
        &["--privileged"],
        "grep CapEff /proc/self/status; echo 1 > /proc/sys/net/ipv4/ip_forward && cat /proc/sys/net/ipv4/ip_forward; unshare -U true && echo userns; wc -c < /proc/timer_list",
    );
    assert!(o.ok(), "{o}");
    assert_eq!(cap_eff(&o.stdout), all_caps(), "{o}");
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines.get(1), Some(&"1"), "{o}");
    assert_eq!(lines.get(2), Some(&"userns"), "{o}");
    assert_ne!(lines.get(3).map(|s| s.trim()), Some("0"), "unmasked: {o}");
    // The privileged container's sysctl stayed in its own namespace.
    assert_eq!(
        d.exec_ok("c1", "cat /proc/sys/net/ipv4/ip_forward").trim(),
        "0"
    );
}

#[test]
fn cap_drop_no_new_privileges_and_seccomp_profiles() {
    let d = daemon_or_skip!();
    let o = run_sh(
        &d,
        &["--cap-drop", "ALL"],
        "grep CapEff /proc/self/status; chown 1 /tmp",
    );
    assert_eq!(cap_eff(&o.stdout), "0000000000000000", "{o}");
    assert!(o.all().contains("Operation not permitted"), "{o}");
    let o = run_sh(
        &d,
        &["--cap-drop", "ALL", "--cap-add", "CHOWN"],
        "grep CapEff /proc/self/status; chown 1 /tmp && echo chowned",
    );
    assert_eq!(cap_eff(&o.stdout), "0000000000000001", "{o}");
    assert!(o.stdout.contains("chowned"), "{o}");
    let o = run_sh(&d, &["--cap-drop", "NET_RAW"], "ping -c 1 -W 1 127.0.0.1");
    assert!(
        o.all().contains("permission denied") || o.all().contains("Operation not permitted"),
        "{o}"
    );

    let o = run_sh(&d, &[], "grep NoNewPrivs /proc/self/status");
    assert!(o.stdout.contains("NoNewPrivs:\t0"), "{o}");
    let o = run_sh(
        &d,
        &["--security-opt", "no-new-privileges"],
        "grep NoNewPrivs /proc/self/status",
    );
    assert!(o.stdout.contains("NoNewPrivs:\t1"), "{o}");

    // A profile of one's own (Docker's format), read by the CLI from a file.
    let profile = d.dir.join("nomkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let o = run_sh(&d, &["--security-opt", &opt], "mkdir /x");
    assert_ne!(o.code, 0, "{o}");
    assert!(o.all().contains("Operation not permitted"), "{o}");

    // Bad options are refused at create, naming the problem.
    let o = d.fail(&["run", "--rm", "--cap-add", "FLY", "busybox", "true"]);
    assert!(o.stderr.contains("unknown capability"), "{o}");
    let o = d.fail(&["run", "--rm", "--security-opt", "bogus", "busybox", "true"]);
    assert!(o.stderr.contains("invalid --security-opt"), "{o}");
    let (code, body) = d.api(
        "POST",
        "/containers/create",
        Some(r#"{"Image":"busybox","HostConfig":{"SecurityOpt":["seccomp={\"defaultAction\":\"NOPE\"}"]}}"#),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("decoding seccomp profile failed"), "{body}");
    assert_eq!(d.ok(&["ps", "-aq"]), "", "nothing created");
}

#[test]
fn sysctls_applied_or_refused() {
    let d = daemon_or_skip!();
    let o = run_sh(
        &d,
        &[
            "--sysctl",
            "net.ipv4.ip_forward=1",
            "--sysctl",
            "kernel.shmmax=12345678",
            "--sysctl",
            "net.ipv4.conf.all.rp_filter=2",
        ],
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax /proc/sys/net/ipv4/conf/all/rp_filter",
    );
    assert_eq!(o.stdout, "1\n12345678\n2\n", "{o}");
    let o = d.fail(&[
        "run",
        "--rm",
        "--sysctl",
        "kernel.hostname=x",
        "busybox",
        "true",
    ]);
    assert!(
        o.stderr
            .contains("sysctl 'kernel.hostname=x' is not whitelisted"),
        "{o}"
    );
    let o = d.fail(&[
        "run",
        "--rm",
        "--network",
        "host",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "busybox",
        "true",
    ]);
    assert!(
        o.stderr
            .contains("sysctl \"net.ipv4.ip_forward\" not allowed in host network namespace"),
        "{o}"
    );
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}

#[test]
fn bind_mounts_tmpfs_read_only_and_ulimits() {
    let d = daemon_or_skip!();
    let host = d.dir.join("share");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("hello"), "from-host\n").unwrap();
    let h = host.display().to_string();
    // -v rw: both ways.
    let o = run_sh(
        &d,
        &["-v", &format!("{h}:/data")],
        "cat /data/hello; echo from-ctr > /data/back",
    );
    assert_eq!(o.stdout, "from-host\n", "{o}");
    assert_eq!(
        std::fs::read_to_string(host.join("back")).unwrap_or_default(),
        "from-ctr\n"
    );
    // -v ro.
    let o = run_sh(&d, &["-v", &format!("{h}:/data:ro")], "echo x > /data/y");
    assert!(o.all().contains("Read-only file system"), "{o}");
    // A missing -v source is created; a missing --mount source is refused.
    let missing = d.dir.join("made-by-v");
    let o = run_sh(
        &d,
        &["-v", &format!("{}:/m", missing.display())],
        "touch /m/f",
    );
    assert!(o.ok(), "{o}");
    assert!(missing.join("f").is_file());
    let gone = d.dir.join("not-there");
    let o = d.fail(&[
        "run",
        "--rm",
        "--mount",
        &format!("type=bind,source={},target=/m", gone.display()),
        "busybox",
        "true",
    ]);
    assert!(o.stderr.contains("bind source path does not exist"), "{o}");
    let o = run_sh(
        &d,
        &[
            "--mount",
            &format!("type=bind,source={h},target=/m,readonly"),
        ],
        "cat /m/hello; touch /m/z",
    );
    assert!(
        o.stdout.contains("from-host") && o.all().contains("Read-only file system"),
        "{o}"
    );
    // Named volumes: not yet.
    let o = d.fail(&["run", "--rm", "-v", "data:/data", "busybox", "true"]);
    assert!(
        o.stderr.contains(
            "named volumes are not supported yet: use a bind mount with an absolute host path"
        ),
        "{o}"
    );
    // tmpfs, --read-only.
    let o = run_sh(
        &d,
        &[
            "--tmpfs",
            "/scratch:size=1m",
            "--mount",
            "type=tmpfs,target=/t2",
        ],
        "grep -E ' /(scratch|t2) ' /proc/mounts",
    );
    assert!(
        o.stdout.contains("/scratch tmpfs") && o.stdout.contains("size=1024k"),
        "{o}"
    );
    assert!(o.stdout.contains("/t2 tmpfs"), "{o}");
    let o = run_sh(
        &d,
        &["--read-only", "--tmpfs", "/tmp"],
        "touch /tmp/ok && echo tmp-ok; touch /x",
    );
    assert!(
        o.stdout.contains("tmp-ok") && o.all().contains("Read-only file system"),
        "{o}"
    );
    // --ulimit.
    let o = run_sh(
        &d,
        &["--ulimit", "nofile=1024:2048"],
        "ulimit -n; ulimit -Hn",
    );
    assert_eq!(o.stdout, "1024\n2048\n", "{o}");
    let o = d.fail(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=2048:1024",
        "busybox",
        "true",
    ]);
    assert!(
        o.stderr
            .contains("ulimit soft limit must be less than or equal to hard limit: 2048 > 1024"),
        "{o}"
    );
    // Inspect shows them.
    d.ok(&[
        "create",
        "--name",
        "insp",
        "-v",
        &format!("{h}:/data:ro"),
        "--cap-add",
        "NET_ADMIN",
        "--read-only",
        "busybox",
        "true",
    ]);
    let o = d.ok(&[
        "inspect",
        "-f",
        "{{json .HostConfig.Binds}} {{json .HostConfig.CapAdd}} {{.HostConfig.ReadonlyRootfs}}",
        "insp",
    ]);
    assert_eq!(o, format!("[\"{h}:/data:ro\"] [\"NET_ADMIN\"] true"));
    let m = d.ok(&["inspect", "-f", "{{json .Mounts}}", "insp"]);
    assert!(
        m.contains("\"Destination\":\"/data\"") && m.contains("\"RW\":false"),
        "{m}"
    );
}

#[test]
fn cgroup_limits_and_stats() {
    let d = daemon_or_skip!();
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let (pids, mem) = if v2 {
        ("/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/memory.max")
    } else {
        (
            "/sys/fs/cgroup/pids/pids.max",
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        )
    };
    let o = run_sh(
        &d,
        &["--pids-limit", "12", "-m", "64m", "--cpus", "0.5"],
        &format!("cat {pids} {mem}"),
    );
    assert_eq!(o.stdout, "12\n67108864\n", "{o}");
    // A fork bomb stops at the limit.
    let o = run_sh(
        &d,
        &["--pids-limit", "8"],
        "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 5 & done 2>&1; wait",
    );
    assert!(
        o.all().contains("can't fork") || o.all().contains("Resource temporarily unavailable"),
        "{o}"
    );
    // Refused limits.
    let o = d.fail(&["run", "--rm", "-m", "1m", "busybox", "true"]);
    assert!(
        o.stderr.contains("Minimum memory limit allowed is 6MB"),
        "{o}"
    );
    let o = d.fail(&["run", "--rm", "--cpus", "64", "busybox", "true"]);
    assert!(o.stderr.contains("Range of CPUs is from 0.01 to"), "{o}");
    let (code, body) = d.api(
        "POST",
        "/containers/create",
        Some(r#"{"Image":"busybox","HostConfig":{"CpuQuota":5000}}"#),
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("HostConfig.CpuQuota is not supported"),
        "{body}"
    );

    // Stats from the cgroup and the sandbox's interfaces.
    d.ok(&["network", "create", "statnet"]);
    d.run_sleeper(
        "st",
        &["--network", "statnet", "-m", "128m", "--pids-limit", "50"],
    );
    let (code, body) = d.api("GET", "/containers/st/stats?stream=0", None);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(body.trim()).unwrap_or_default();
    assert_eq!(v["name"], "/st");
    assert!(
        v["memory_stats"]["usage"].as_u64().unwrap_or(0) > 0,
        "{body}"
    );
    assert_eq!(v["memory_stats"]["limit"], 128 << 20, "{body}");
    assert!(
        v["pids_stats"]["current"].as_u64().unwrap_or(0) >= 1,
        "{body}"
    );
    assert_eq!(v["pids_stats"]["limit"], 50, "{body}");
    assert!(
        v["cpu_stats"]["system_cpu_usage"].as_u64().unwrap_or(0) > 0,
        "{body}"
    );
    assert!(
        v["precpu_stats"]["system_cpu_usage"].as_u64().unwrap_or(0) > 0,
        "{body}"
    );
    assert!(v["networks"]["eth0"]["rx_bytes"].is_u64(), "{body}");
    // A stopped container's stats are zero, as in Docker.
    d.ok(&["create", "--name", "idle", "busybox", "true"]);
    let (code, body) = d.api("GET", "/containers/idle/stats?stream=0", None);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"read\":\"0001-01-01T00:00:00Z\""), "{body}");
}

#[test]
fn runtime_selection() {
    let mut d = daemon_or_skip!();
    // The runtime's refusal to start a missing command: Docker's 127, and `--rm`
    // removes the container (no client waits forever).
    let o = d.cli(&["run", "--rm", "busybox", "no-such-cmd"]);
    assert_eq!(o.code, 127, "{o}");
    assert!(
        o.stderr
            .contains("exec: \"no-such-cmd\": executable file not found in $PATH"),
        "{o}"
    );
    assert_eq!(d.ok(&["ps", "-aq"]), "", "the --rm container is gone");
    let o = d.fail(&["run", "--rm", "--runtime", "kata", "busybox", "true"]);
    assert!(
        o.stderr.contains("unknown or invalid runtime name: kata"),
        "{o}"
    );
    // Named runtimes from daemon.json; runc by its path under another name.
    d.stop();
    d.write_config(r#"{"runtimes": {"myrunc": {"path": "runc"}, "crun": {"path": "crun"}}}"#);
    d.start();
    let o = d.cli(&[
        "run",
        "--rm",
        "--runtime",
        "myrunc",
        "busybox",
        "echo",
        "via-myrunc",
    ]);
    assert_eq!(o.stdout, "via-myrunc\n", "{o}");
    // Debian's crun 1.8 cannot run here (hybrid cgroups): the start says so.
    // (scripts/deps.sh installs crun.)
    if std::path::Path::new("/sys/fs/cgroup/unified").is_dir() {
        let o = d.fail(&["run", "--rm", "--runtime", "crun", "busybox", "true"]);
        assert!(o.stderr.contains("hybrid mode not supported"), "{o}");
        assert!(o.stderr.contains("run them with runc"), "{o}");
    }
    let o = d.ok(&[
        "inspect",
        "-f",
        "{{.HostConfig.Runtime}}",
        &d.ok(&["create", "--runtime", "myrunc", "busybox", "true"]),
    ]);
    assert_eq!(o, "myrunc");
}
