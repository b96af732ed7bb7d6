//! Walks every field of the Engine API's container `Config` and `HostConfig` (the
//! field list of moby's API 1.47 spec, `tests/fixtures/engine-api-1.47-create.json`)
//! and sends, for each, a create with a value other than the default. Each field is
//! either honoured — visible in inspect (and, for some, in the running container) —
//! or refused with a 4xx that names it. None may be accepted and dropped.

use std::collections::BTreeSet;

use netloom_e2e::daemon_or_skip;
use serde_json::{Value, json};

/// What a field's probe must show.
enum Want {
    /// 201, and inspect at `path` holds the value sent (or `Some(v)`: holds `v`);
    /// `start`: the container is started first.
    Honoured {
        path: &'static str,
        shows: Option<Value>,
        start: bool,
    },
    /// A 4xx whose message contains this text (the field's name, unless given).
    Refused(&'static str),
}

struct Case {
    section: &'static str,
    field: &'static str,
    value: Value,
    want: Want,
    /// Other fields the probe needs (`HostConfig` ones under `"HostConfig"`).
    with: Value,
}

fn honoured(section: &'static str, field: &'static str, value: Value) -> Case {
    Case {
        section,
        field,
        value,
        want: Want::Honoured {
            path: "",
            shows: None,
            start: false,
        },
        with: json!({}),
    }
}

fn shown_at(mut c: Case, path: &'static str, shows: Option<Value>, start: bool) -> Case {
    c.want = Want::Honoured { path, shows, start };
    c
}

fn refused(section: &'static str, field: &'static str, value: Value) -> Case {
    Case {
        section,
        field,
        value,
        want: Want::Refused(""),
        with: json!({}),
    }
}

fn refused_as(mut c: Case, text: &'static str) -> Case {
    c.want = Want::Refused(text);
    c
}

fn with(mut c: Case, extra: Value) -> Case {
    c.with = extra;
    c
}

/// Whether `got` holds everything `want` has (objects: every key; arrays: every item).
fn holds(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            w.iter().all(|(k, v)| g.get(k).is_some_and(|x| holds(v, x)))
        }
        (Value::Array(w), Value::Array(g)) => w.iter().all(|x| g.iter().any(|y| holds(x, y))),
        (w, g) => w == g,
    }
}

fn cases(dir: &std::path::Path) -> Vec<Case> {
    let bind = format!("{}:/walk", dir.join("walk-bind").display());
    let c = "Config";
    let h = "HostConfig";
    vec![
        honoured(c, "Hostname", json!("walk-host")),
        honoured(c, "Domainname", json!("walk.example")),
        honoured(c, "User", json!("1:1")),
        honoured(c, "AttachStdin", json!(true)),
        honoured(c, "AttachStdout", json!(true)),
        honoured(c, "AttachStderr", json!(true)),
        honoured(c, "ExposedPorts", json!({"81/tcp": {}})),
        honoured(c, "Tty", json!(true)),
        honoured(c, "OpenStdin", json!(true)),
        honoured(c, "StdinOnce", json!(true)),
        honoured(c, "Env", json!(["WALK=1"])),
        honoured(c, "Cmd", json!(["sleep", "999"])),
        honoured(
            c,
            "Healthcheck",
            json!({"Test": ["CMD", "true"], "Interval": 1_000_000_000i64}),
        ),
        honoured(c, "ArgsEscaped", json!(true)),
        honoured(c, "Image", json!("busybox")),
        honoured(c, "Volumes", json!({"/anon": {}})),
        honoured(c, "WorkingDir", json!("/tmp")),
        honoured(c, "Entrypoint", json!(["env"])),
        shown_at(
            honoured(c, "NetworkDisabled", json!(true)),
            "/HostConfig/NetworkMode",
            Some(json!("none")),
            false,
        ),
        shown_at(
            honoured(c, "MacAddress", json!("02:42:0a:0b:0c:0d")),
            "/NetworkSettings/MacAddress",
            None,
            true,
        ),
        honoured(c, "OnBuild", json!(["RUN true"])),
        honoured(c, "Labels", json!({"walk": "1"})),
        honoured(c, "StopSignal", json!("SIGUSR1")),
        honoured(c, "StopTimeout", json!(3)),
        honoured(c, "Shell", json!(["/bin/ash", "-c"])),
        honoured(h, "CpuShares", json!(512)),
        honoured(h, "Memory", json!(64 << 20)),
        refused(h, "CgroupParent", json!("walk")),
        refused(h, "BlkioWeight", json!(500)),
        refused(
            h,
            "BlkioWeightDevice",
            json!([{"Path": "/dev/null", "Weight": 100}]),
        ),
        refused(
            h,
            "BlkioDeviceReadBps",
            json!([{"Path": "/dev/null", "Rate": 1}]),
        ),
        refused(
            h,
            "BlkioDeviceWriteBps",
            json!([{"Path": "/dev/null", "Rate": 1}]),
        ),
        refused(
            h,
            "BlkioDeviceReadIOps",
            json!([{"Path": "/dev/null", "Rate": 1}]),
        ),
        refused(
            h,
            "BlkioDeviceWriteIOps",
            json!([{"Path": "/dev/null", "Rate": 1}]),
        ),
        refused(h, "CpuPeriod", json!(100_000)),
        refused(h, "CpuQuota", json!(50_000)),
        refused(h, "CpuRealtimePeriod", json!(1000)),
        refused(h, "CpuRealtimeRuntime", json!(100)),
        honoured(h, "CpusetCpus", json!("0")),
        refused(h, "CpusetMems", json!("0")),
        refused(
            h,
            "Devices",
            json!([{"PathOnHost": "/dev/null", "PathInContainer": "/dev/n2", "CgroupPermissions": "rwm"}]),
        ),
        refused(h, "DeviceCgroupRules", json!(["c 1:3 mr"])),
        refused(
            h,
            "DeviceRequests",
            json!([{"Count": 1, "Capabilities": [["gpu"]]}]),
        ),
        refused(h, "KernelMemoryTCP", json!(1 << 20)),
        refused(h, "MemoryReservation", json!(1 << 20)),
        with(
            honoured(h, "MemorySwap", json!(128 << 20)),
            json!({"HostConfig": {"Memory": 64 << 20}}),
        ),
        refused(h, "MemorySwappiness", json!(10)),
        honoured(h, "NanoCpus", json!(500_000_000)),
        refused(h, "OomKillDisable", json!(true)),
        refused(h, "Init", json!(true)),
        honoured(h, "PidsLimit", json!(50)),
        honoured(
            h,
            "Ulimits",
            json!([{"Name": "nofile", "Soft": 100, "Hard": 200}]),
        ),
        refused(h, "CpuCount", json!(1)),
        refused(h, "CpuPercent", json!(10)),
        refused(h, "IOMaximumIOps", json!(10)),
        refused(h, "IOMaximumBandwidth", json!(10)),
        honoured(h, "Binds", json!([bind])),
        honoured(h, "ContainerIDFile", json!("/tmp/walk.cid")),
        refused_as(
            refused(
                h,
                "LogConfig",
                json!({"Type": "json-file", "Config": {"max-size": "1m"}}),
            ),
            "HostConfig.LogConfig.Config",
        ),
        honoured(h, "NetworkMode", json!("none")),
        honoured(
            h,
            "PortBindings",
            json!({"80/tcp": [{"HostIp": "", "HostPort": "18181"}]}),
        ),
        honoured(
            h,
            "RestartPolicy",
            json!({"Name": "on-failure", "MaximumRetryCount": 2}),
        ),
        honoured(h, "AutoRemove", json!(true)),
        refused(h, "VolumeDriver", json!("local")),
        refused(h, "VolumesFrom", json!(["walk-target"])),
        honoured(h, "Mounts", json!([{"Type": "tmpfs", "Target": "/walkt"}])),
        honoured(h, "ConsoleSize", json!([10, 20])),
        honoured(h, "Annotations", json!({"walk.example/a": "b"})),
        honoured(h, "CapAdd", json!(["NET_ADMIN"])),
        honoured(h, "CapDrop", json!(["MKNOD"])),
        honoured(h, "CgroupnsMode", json!("private")),
        honoured(h, "Dns", json!(["10.0.0.53"])),
        honoured(h, "DnsOptions", json!(["ndots:2"])),
        honoured(h, "DnsSearch", json!(["walk.example"])),
        honoured(h, "ExtraHosts", json!(["walk:10.1.2.3"])),
        refused(h, "GroupAdd", json!(["10"])),
        refused(h, "IpcMode", json!("shareable")),
        refused(h, "Cgroup", json!("walk")),
        shown_at(
            honoured(h, "Links", json!(["walk-target:alias"])),
            "/NetworkSettings/Networks/bridge/Links",
            Some(json!(["walk-target:alias"])),
            false,
        ),
        refused(h, "OomScoreAdj", json!(100)),
        refused(h, "PidMode", json!("host")),
        honoured(h, "Privileged", json!(true)),
        honoured(h, "PublishAllPorts", json!(true)),
        honoured(h, "ReadonlyRootfs", json!(true)),
        honoured(h, "SecurityOpt", json!(["no-new-privileges"])),
        refused(h, "StorageOpt", json!({"size": "1G"})),
        honoured(h, "Tmpfs", json!({"/walktmp": ""})),
        refused(h, "UTSMode", json!("host")),
        honoured(h, "UsernsMode", json!("host")),
        refused(h, "ShmSize", json!(128 << 20)),
        honoured(h, "Sysctls", json!({"net.ipv4.ip_forward": "1"})),
        honoured(h, "Runtime", json!("runc")),
        honoured(h, "Isolation", json!("default")),
        refused(h, "MaskedPaths", json!(["/proc/kcore"])),
        refused(h, "ReadonlyPaths", json!(["/proc/sys"])),
    ]
}

#[test]
fn every_create_field_is_honoured_or_refused() {
    let d = daemon_or_skip!();
    let spec: Value = serde_json::from_str(include_str!("../fixtures/engine-api-1.47-create.json"))
        .unwrap_or_else(|e| panic!("fixture: {e}"));
    let all = cases(&d.dir);
    // The table covers the whole schema, each field once.
    for section in ["Config", "HostConfig"] {
        let fields: BTreeSet<&str> = spec[section]
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let probed: Vec<&str> = all
            .iter()
            .filter(|c| c.section == section)
            .map(|c| c.field)
            .collect();
        let uniq: BTreeSet<&str> = probed.iter().copied().collect();
        assert_eq!(uniq.len(), probed.len(), "{section}: a field probed twice");
        assert_eq!(uniq, fields, "{section}: probes vs the API's fields");
    }
    d.ok(&[
        "run",
        "-d",
        "--name",
        "walk-target",
        "busybox",
        "sleep",
        "1000",
    ]);
    let mut problems = Vec::new();
    for (i, c) in all.iter().enumerate() {
        let mut body = json!({"Image": "busybox", "Cmd": ["sleep", "1000"], "HostConfig": {}});
        if let Some(extra) = c.with.as_object() {
            for (k, v) in extra {
                if k == "HostConfig" {
                    for (hk, hv) in v.as_object().into_iter().flatten() {
                        body["HostConfig"][hk] = hv.clone();
                    }
                } else {
                    body[k] = v.clone();
                }
            }
        }
        if c.section == "Config" {
            body[c.field] = c.value.clone();
        } else {
            body["HostConfig"][c.field] = c.value.clone();
        }
        let name = format!("walk{i}");
        let (code, resp) = d.api(
            "POST",
            &format!("/containers/create?name={name}"),
            Some(&body.to_string()),
        );
        let what = format!("{}.{} = {}", c.section, c.field, c.value);
        match &c.want {
            Want::Refused(text) => {
                let text = if text.is_empty() { c.field } else { text };
                if !(400..500).contains(&code) {
                    problems.push(format!(
                        "{what}: expected a 4xx naming it, got {code} {resp}"
                    ));
                } else if !resp.to_lowercase().contains(&text.to_lowercase()) {
                    problems.push(format!(
                        "{what}: refused ({code}) without naming {text:?}: {resp}"
                    ));
                }
            }
            Want::Honoured { path, shows, start } => {
                if code != 201 {
                    problems.push(format!("{what}: expected 201, got {code} {resp}"));
                    continue;
                }
                if *start {
                    let (sc, sr) = d.api("POST", &format!("/containers/{name}/start"), None);
                    if sc != 204 {
                        problems.push(format!("{what}: start answered {sc} {sr}"));
                    }
                }
                let (_, j) = d.api("GET", &format!("/containers/{name}/json"), None);
                let v: Value = serde_json::from_str(&j).unwrap_or_default();
                let path = if path.is_empty() {
                    format!("/{}/{}", c.section, c.field)
                } else {
                    path.to_string()
                };
                let want = shows.clone().unwrap_or_else(|| c.value.clone());
                let got = v.pointer(&path).cloned().unwrap_or(Value::Null);
                if !holds(&want, &got) {
                    problems.push(format!(
                        "{what}: accepted but inspect {path} shows {got} (dropped?)"
                    ));
                }
            }
        }
        let _ = d.api("DELETE", &format!("/containers/{name}?force=1"), None);
    }
    assert!(
        problems.is_empty(),
        "{} fields dropped or refused without naming them:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn honoured_fields_reach_the_container() {
    let d = daemon_or_skip!();
    // NetworkDisabled: only the loopback.
    let (code, r) = d.api(
        "POST",
        "/containers/create?name=nonet",
        Some(r#"{"Image":"busybox","Cmd":["sleep","1000"],"NetworkDisabled":true}"#),
    );
    assert_eq!(code, 201, "{r}");
    d.ok(&["start", "nonet"]);
    let links = d.exec_ok("nonet", "ls /sys/class/net");
    assert_eq!(
        links.split_whitespace().collect::<Vec<_>>(),
        ["lo"],
        "{links}"
    );
    // Annotations reach the OCI spec the runtime runs.
    let (code, r) = d.api(
        "POST",
        "/containers/create?name=ann",
        Some(r#"{"Image":"busybox","Cmd":["sleep","1000"],"HostConfig":{"Annotations":{"walk.example/a":"b"}}}"#),
    );
    assert_eq!(code, 201, "{r}");
    d.ok(&["start", "ann"]);
    let id = d.ok(&["inspect", "-f", "{{.Id}}", "ann"]);
    let spec = std::fs::read_to_string(d.dir.join("exec/containers").join(&id).join("config.json"))
        .unwrap_or_default();
    let spec: Value = serde_json::from_str(&spec).unwrap_or_default();
    assert_eq!(spec["annotations"]["walk.example/a"], "b", "{spec}");
    // A private cgroup namespace: the container sees its own cgroup as the root.
    let (code, r) = d.api(
        "POST",
        "/containers/create?name=cgns",
        Some(
            r#"{"Image":"busybox","Cmd":["sleep","1000"],"HostConfig":{"CgroupnsMode":"private"}}"#,
        ),
    );
    assert_eq!(code, 201, "{r}");
    d.ok(&["start", "cgns"]);
    let cg = d.exec_ok("cgns", "cat /proc/self/cgroup");
    assert!(
        cg.lines().all(|l| l.ends_with(":/")),
        "a private cgroup namespace shows / for every hierarchy: {cg}"
    );
    let (code, r) = d.api(
        "POST",
        "/containers/create",
        Some(r#"{"Image":"busybox","NetworkDisabled":true,"HostConfig":{"NetworkMode":"host"}}"#),
    );
    assert_eq!(code, 400, "{r}");
    assert!(r.contains("NetworkDisabled"), "{r}");
}
