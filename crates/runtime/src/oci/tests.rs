//! Spec generation without root: assertions on the generated `config.json`.

use super::*;
use serde_json::Value;

fn base() -> RunOptions {
    RunOptions {
        rootfs: "/var/lib/netloom/containers/abc/layer/merged".into(),
        hostname: "abc".into(),
        args: vec!["sh".into()],
        netns: Some("/run/netloom/netns/abc".into()),
        bind_files: vec![(
            "/var/lib/netloom/containers/abc/hosts".into(),
            "/etc/hosts".into(),
        )],
        cgroups_path: "/netloom/abc".into(),
        ..RunOptions::default()
    }
}

fn json(o: &RunOptions) -> Value {
    let spec = build_spec(o).unwrap_or_else(|e| panic!("build_spec: {e}"));
    serde_json::to_value(&spec).unwrap_or_default()
}

/// The capability bitmask of a list, as `/proc/<pid>/status` shows it.
fn mask(v: &Value) -> u64 {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str())
        .filter_map(|c| ALL_CAPS.iter().position(|x| *x == c))
        .fold(0, |m, bit| m | (1u64 << bit))
}

#[test]
fn docker_defaults() {
    let j = json(&base());
    let caps = &j["process"]["capabilities"];
    for set in ["bounding", "effective", "permitted"] {
        assert_eq!(
            format!("{:016x}", mask(&caps[set])),
            "00000000a80425fb",
            "{set}"
        );
    }
    assert!(caps.get("inheritable").is_none_or(Value::is_null));
    assert!(caps.get("ambient").is_none_or(Value::is_null));
    assert_eq!(j["process"]["noNewPrivileges"], false);
    assert_eq!(j["process"]["terminal"], false);
    assert_eq!(
        j["root"]["path"],
        "/var/lib/netloom/containers/abc/layer/merged"
    );
    assert_eq!(j["root"]["readonly"], false);
    let masked: Vec<&str> = j["linux"]["maskedPaths"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for p in [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/sys/firmware",
    ] {
        assert!(masked.contains(&p), "{p} not masked: {masked:?}");
    }
    let ro: Vec<&str> = j["linux"]["readonlyPaths"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        ro,
        [
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger"
        ]
    );
    // The network namespace is the sandbox, by path; the others are new.
    let ns = j["linux"]["namespaces"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let net = ns.iter().find(|n| n["type"] == "network");
    assert_eq!(
        net.map(|n| n["path"].clone()),
        Some(Value::from("/run/netloom/netns/abc"))
    );
    for t in ["pid", "ipc", "uts", "mount"] {
        assert!(
            ns.iter().any(|n| n["type"] == t && n.get("path").is_none()),
            "{t}"
        );
    }
    assert_eq!(j["linux"]["cgroupsPath"], "/netloom/abc");
    assert_eq!(j["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(j["linux"]["seccomp"]["defaultErrnoRet"], 1);
    // /sys and the cgroup fs read-only; the generated files bound in.
    let mounts = j["mounts"].as_array().cloned().unwrap_or_default();
    let find = |d: &str| mounts.iter().find(|m| m["destination"] == d).cloned();
    let sys = find("/sys").unwrap_or_default();
    assert!(
        sys["options"]
            .as_array()
            .is_some_and(|o| o.contains(&Value::from("ro")))
    );
    let hosts = find("/etc/hosts").unwrap_or_default();
    assert_eq!(hosts["type"], "bind");
    assert_eq!(hosts["source"], "/var/lib/netloom/containers/abc/hosts");
    // Only Docker's device allow-list.
    let devs = j["linux"]["resources"]["devices"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(devs[0]["allow"], false);
    assert!(
        devs.iter()
            .any(|d| d["allow"] == true && d["major"] == 10 && d["minor"] == 200)
    );
    assert!(j["linux"]["devices"].is_null());
}

#[test]
fn cap_add_drop_privileged() {
    let mut o = base();
    o.security.cap_add = vec!["net_admin".into()];
    o.security.cap_drop = vec!["CAP_NET_RAW".into(), "mknod".into()];
    let j = json(&o);
    let m = mask(&j["process"]["capabilities"]["effective"]);
    assert_ne!(m & (1 << 12), 0, "NET_ADMIN added");
    assert_eq!(m & (1 << 13), 0, "NET_RAW dropped");
    assert_eq!(m & (1 << 27), 0, "MKNOD dropped");

    o.security.cap_add = vec!["NET_BIND_SERVICE".into()];
    o.security.cap_drop = vec!["ALL".into()];
    let j = json(&o);
    assert_eq!(mask(&j["process"]["capabilities"]["bounding"]), 1 << 10);

    o.security.cap_add = vec!["ALL".into()];
    o.security.cap_drop = vec!["SYS_ADMIN".into()];
    let m = mask(&json(&o)["process"]["capabilities"]["bounding"]);
    assert_eq!(m & (1 << 21), 0);
    assert_ne!(m & (1 << 12), 0);

    let mut p = base();
    p.security.privileged = true;
    let j = json(&p);
    let all: u64 = kernel_caps()
        .iter()
        .filter_map(|c| ALL_CAPS.iter().position(|x| x == c))
        .fold(0, |m, b| m | (1 << b));
    assert_eq!(mask(&j["process"]["capabilities"]["effective"]), all);
    assert!(j["linux"]["seccomp"].is_null());
    assert!(j["linux"]["maskedPaths"].is_null());
    assert!(j["linux"]["readonlyPaths"].is_null());
    let devs = j["linux"]["resources"]["devices"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(devs.len(), 1);
    assert_eq!(devs[0]["allow"], true);
    let mounts = j["mounts"].as_array().cloned().unwrap_or_default();
    let sys = mounts
        .iter()
        .find(|m| m["destination"] == "/sys")
        .cloned()
        .unwrap_or_default();
    assert!(
        sys["options"]
            .as_array()
            .is_some_and(|o| o.contains(&Value::from("rw")))
    );

    let mut bad = base();
    bad.security.cap_add = vec!["CAP_FLY".into()];
    assert!(build_spec(&bad).is_err_and(|e| e.to_string().contains("unknown capability")));
}

#[test]
fn security_opts_in_spec() {
    let mut o = base();
    o.security.no_new_privileges = true;
    o.security.seccomp = SeccompMode::Unconfined;
    let j = json(&o);
    assert_eq!(j["process"]["noNewPrivileges"], true);
    assert!(j["linux"]["seccomp"].is_null());
    o.security.seccomp = SeccompMode::Profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#.into(),
    );
    let j = json(&o);
    assert_eq!(j["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ALLOW");
    assert_eq!(j["linux"]["seccomp"]["syscalls"][0]["names"][0], "mkdir");
}

#[test]
fn mounts_rlimits_sysctls_resources() {
    let mut o = base();
    o.read_only = true;
    o.tty = true;
    o.console_size = Some([40, 120]);
    o.mounts = vec![
        MountSpec::Tmpfs {
            destination: "/data/tmp".into(),
            options: vec!["size=1m".into(), "exec".into()],
        },
        MountSpec::Bind {
            source: "/srv/data".into(),
            destination: "/data".into(),
            read_only: true,
            propagation: String::new(),
            non_recursive: false,
        },
    ];
    o.rlimits = vec![Rlimit {
        name: "nofile".into(),
        soft: 1024,
        hard: 2048,
    }];
    o.sysctls = [("net.ipv4.ip_forward".to_string(), "1".to_string())].into();
    o.resources = Resources {
        memory: 64 << 20,
        memory_swap: 0,
        nano_cpus: 500_000_000,
        cpu_shares: 512,
        cpuset_cpus: "0".into(),
        pids_limit: 20,
    };
    let j = json(&o);
    assert_eq!(j["root"]["readonly"], true);
    assert_eq!(j["process"]["terminal"], true);
    assert_eq!(
        j["process"]["consoleSize"],
        serde_json::json!({"height": 40, "width": 120})
    );
    let mounts = j["mounts"].as_array().cloned().unwrap_or_default();
    let dests: Vec<&str> = mounts
        .iter()
        .filter_map(|m| m["destination"].as_str())
        .collect();
    // Parents before children, after the defaults and generated files.
    let (d, t) = (
        dests.iter().position(|x| *x == "/data"),
        dests.iter().position(|x| *x == "/data/tmp"),
    );
    assert!(d < t && d.is_some(), "{dests:?}");
    let data = &mounts[d.unwrap_or_default()];
    assert_eq!(
        data["options"],
        serde_json::json!(["rbind", "rprivate", "ro"])
    );
    let tmp = &mounts[t.unwrap_or_default()];
    assert_eq!(
        tmp["options"],
        serde_json::json!(["noexec", "nosuid", "nodev", "size=1m", "exec"])
    );
    assert_eq!(
        j["process"]["rlimits"],
        serde_json::json!([{"type": "RLIMIT_NOFILE", "hard": 2048, "soft": 1024}])
    );
    assert_eq!(j["linux"]["sysctl"]["net.ipv4.ip_forward"], "1");
    let r = &j["linux"]["resources"];
    assert_eq!(r["memory"]["limit"], 64 << 20);
    assert_eq!(r["memory"]["swap"], 128 << 20);
    assert_eq!(r["cpu"]["quota"], 50_000);
    assert_eq!(r["cpu"]["period"], 100_000);
    assert_eq!(r["cpu"]["shares"], 512);
    assert_eq!(r["cpu"]["cpus"], "0");
    assert_eq!(r["pids"]["limit"], 20);
}

#[test]
fn host_network_has_no_netns_entry() {
    let mut o = base();
    o.netns = None;
    let j = json(&o);
    let ns = j["linux"]["namespaces"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!ns.iter().any(|n| n["type"] == "network"));
}
