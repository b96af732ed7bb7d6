//! The `HostConfig` fields that the OCI runtime applies: security options, mounts,
//! ulimits, sysctls and cgroup limits. Each is parsed into [`HostOptions`] (and
//! checked by the controller); the fields netloom does not implement are refused
//! when they ask for anything but the default, naming the field.

use netloom_model::{HostOptions, MountPoint, Resources, Ulimit};
use serde_json::Value;

use super::body;
use crate::error::CtlError;

fn wrong(field: &str, want: &str) -> CtlError {
    CtlError::invalid(format!(
        "invalid request body: field HostConfig.{field} must be {want}"
    ))
}

fn int(v: &Value, field: &str) -> Result<i64, CtlError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| wrong(field, "an integer")),
        Some(_) => Err(wrong(field, "an integer")),
    }
}

/// Fields netloom refuses unless they hold their default (zero, empty, false...).
const UNSUPPORTED: &[&str] = &[
    "CpuPeriod",
    "CpuQuota",
    "CpuRealtimePeriod",
    "CpuRealtimeRuntime",
    "CpusetMems",
    "CpuCount",
    "CpuPercent",
    "MemoryReservation",
    "KernelMemory",
    "KernelMemoryTCP",
    "OomKillDisable",
    "OomScoreAdj",
    "BlkioWeight",
    "BlkioWeightDevice",
    "BlkioDeviceReadBps",
    "BlkioDeviceWriteBps",
    "BlkioDeviceReadIOps",
    "BlkioDeviceWriteIOps",
    "IOMaximumIOps",
    "IOMaximumBandwidth",
    "Devices",
    "DeviceCgroupRules",
    "DeviceRequests",
    "CgroupParent",
    "Cgroup",
    "ShmSize",
    "Init",
    "GroupAdd",
    "VolumeDriver",
    "VolumesFrom",
    "StorageOpt",
];

fn is_default(field: &str, v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty() || field == "BlkioWeightDevice",
    }
}

/// Refuses what netloom cannot do, before anything is created.
fn refuse_unsupported(hc: &Value) -> Result<(), CtlError> {
    for f in UNSUPPORTED {
        if let Some(v) = hc.get(*f)
            && !is_default(f, v)
        {
            return Err(CtlError::invalid(format!(
                "HostConfig.{f} is not supported by netloom: remove it (netloom applies Memory, MemorySwap, NanoCpus, CpuShares, CpusetCpus, PidsLimit, Ulimits, Sysctls, CapAdd, CapDrop, Privileged, SecurityOpt, Binds, Mounts, Tmpfs and ReadonlyRootfs)"
            )));
        }
    }
    // -1 is the docker CLI's "not set".
    match hc.get("MemorySwappiness") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.as_i64() == Some(-1) => {}
        Some(_) => {
            return Err(CtlError::invalid(
                "HostConfig.MemorySwappiness is not supported by netloom: remove --memory-swappiness",
            ));
        }
    }
    for (f, ok) in [
        ("IpcMode", &["", "private"][..]),
        ("PidMode", &[""][..]),
        ("UTSMode", &[""][..]),
        ("UsernsMode", &["", "host"][..]),
        ("CgroupnsMode", &["", "host", "private"][..]),
        ("Isolation", &["", "default"][..]),
    ] {
        let s = body::string(hc, f)?;
        if !ok.contains(&s.as_str()) {
            return Err(CtlError::invalid(format!(
                "HostConfig.{f} {s:?} is not supported by netloom: containers get their own namespaces"
            )));
        }
    }
    Ok(())
}

fn mounts(hc: &Value) -> Result<Vec<MountPoint>, CtlError> {
    let list = match hc.get("Mounts") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(wrong("Mounts", "a list")),
    };
    let mut out = Vec::new();
    for m in list {
        if !m.is_object() {
            return Err(wrong("Mounts", "a list of objects"));
        }
        let bind = body::object(m, "BindOptions")?;
        let tmpfs = body::object(m, "TmpfsOptions")?;
        let vol = body::object(m, "VolumeOptions")?;
        let driver = vol
            .map(|v| body::object(v, "DriverConfig"))
            .transpose()?
            .flatten();
        let target = match body::string(m, "Target")? {
            t if t.is_empty() => body::string(m, "Destination")?,
            t => t,
        };
        let mode = match tmpfs.and_then(|t| t.get("Mode")) {
            None | Some(Value::Null) => 0,
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| wrong("Mounts.TmpfsOptions.Mode", "a file mode"))?,
        };
        out.push(MountPoint {
            typ: body::string(m, "Type")?,
            source: body::string(m, "Source")?,
            target,
            read_only: body::boolean(m, "ReadOnly")?.unwrap_or(false),
            propagation: bind
                .map(|b| body::string(b, "Propagation"))
                .transpose()?
                .unwrap_or_default(),
            non_recursive: bind
                .map(|b| body::boolean(b, "NonRecursive"))
                .transpose()?
                .flatten()
                .unwrap_or(false),
            create_mountpoint: bind
                .map(|b| body::boolean(b, "CreateMountpoint"))
                .transpose()?
                .flatten()
                .unwrap_or(false),
            tmpfs_size: tmpfs.map(|t| int(t, "SizeBytes")).transpose()?.unwrap_or(0),
            tmpfs_mode: mode,
            volume_nocopy: vol
                .map(|v| body::boolean(v, "NoCopy"))
                .transpose()?
                .flatten()
                .unwrap_or(false),
            volume_labels: vol
                .map(|v| body::string_map(v, "Labels"))
                .transpose()?
                .unwrap_or_default(),
            volume_driver: driver
                .map(|d| body::string(d, "Name"))
                .transpose()?
                .unwrap_or_default(),
            volume_opts: driver
                .map(|d| body::string_map(d, "Options"))
                .transpose()?
                .unwrap_or_default(),
        });
        if let Some(last) = out.last()
            && last.typ != "volume"
            && vol.is_some_and(|v| v.as_object().is_some_and(|o| !o.is_empty()))
        {
            return Err(CtlError::invalid(format!(
                "invalid mount config for type \"{}\": field VolumeOptions must not be specified",
                last.typ
            )));
        }
    }
    Ok(out)
}

fn ulimits(hc: &Value) -> Result<Vec<Ulimit>, CtlError> {
    let list = match hc.get("Ulimits") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(wrong("Ulimits", "a list")),
    };
    list.iter()
        .map(|u| {
            Ok(Ulimit {
                name: body::string(u, "Name")?,
                soft: int(u, "Soft")?,
                hard: int(u, "Hard")?,
            })
        })
        .collect()
}

/// Parses the runtime part of a create body (`HostConfig` and `Config.Volumes`).
pub fn host_options(v: &Value, hc: &Value) -> Result<HostOptions, CtlError> {
    refuse_unsupported(hc)?;
    // `Config.Volumes`: paths that get an anonymous volume unless a bind covers them.
    let anonymous_volumes = match v.get("Volumes") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(m)) => m.keys().cloned().collect(),
        Some(_) => {
            return Err(CtlError::invalid(
                "invalid request body: field Volumes must be an object",
            ));
        }
    };
    let mut security_opt = body::strings(hc, "SecurityOpt")?;
    // The docker CLI sends empty MaskedPaths/ReadonlyPaths for
    // `--security-opt systempaths=unconfined`.
    let masked = hc.get("MaskedPaths").filter(|m| !m.is_null());
    let readonly = hc.get("ReadonlyPaths").filter(|m| !m.is_null());
    if masked.is_some() || readonly.is_some() {
        let empty =
            |m: Option<&Value>| m.is_none_or(|m| m.as_array().is_some_and(|a| a.is_empty()));
        if !empty(masked) || !empty(readonly) {
            return Err(CtlError::invalid(
                "custom HostConfig.MaskedPaths and ReadonlyPaths are not supported by netloom: use the defaults or --security-opt systempaths=unconfined",
            ));
        }
        if !security_opt.iter().any(|o| o == "systempaths=unconfined") {
            security_opt.push("systempaths=unconfined".into());
        }
    }
    let tmpfs = body::string_map(hc, "Tmpfs")?;
    let pids = int(hc, "PidsLimit")?;
    Ok(HostOptions {
        runtime: body::string(hc, "Runtime")?,
        privileged: body::boolean(hc, "Privileged")?.unwrap_or(false),
        cap_add: body::strings(hc, "CapAdd")?,
        cap_drop: body::strings(hc, "CapDrop")?,
        security_opt,
        sysctls: body::string_map(hc, "Sysctls")?,
        binds: body::strings(hc, "Binds")?,
        mounts: mounts(hc)?,
        anonymous_volumes,
        tmpfs,
        read_only_rootfs: body::boolean(hc, "ReadonlyRootfs")?.unwrap_or(false),
        ulimits: ulimits(hc)?,
        cgroupns_mode: body::string(hc, "CgroupnsMode")?,
        userns_mode: body::string(hc, "UsernsMode")?,
        isolation: body::string(hc, "Isolation")?,
        resources: Resources {
            memory: int(hc, "Memory")?,
            memory_swap: int(hc, "MemorySwap")?,
            nano_cpus: int(hc, "NanoCpus")?,
            cpu_shares: int(hc, "CpuShares")?,
            cpuset_cpus: body::string(hc, "CpusetCpus")?,
            pids_limit: if pids < 0 { 0 } else { pids },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn docker_cli_defaults_pass() {
        // What docker 28 sends for `docker create busybox true`.
        let hc = json!({"Binds": null, "CapAdd": null, "CgroupnsMode": "", "IpcMode": "",
            "OomScoreAdj": 0, "ShmSize": 0, "CpuShares": 0, "Memory": 0, "NanoCpus": 0,
            "CgroupParent": "", "BlkioWeight": 0, "BlkioWeightDevice": [], "CpuPeriod": 0,
            "Devices": [], "DeviceCgroupRules": null, "MemorySwappiness": -1,
            "OomKillDisable": false, "PidsLimit": 0, "Ulimits": [], "MaskedPaths": null,
            "ReadonlyPaths": null, "Isolation": "", "VolumesFrom": null});
        let o = host_options(&json!({}), &hc).unwrap_or_else(|e| panic!("{}", e.message));
        assert_eq!(o, HostOptions::default());
        let e = host_options(&json!({}), &json!({"StorageOpt": {"size": "1G"}})).err();
        assert!(e.is_some_and(|e| e.message.contains("HostConfig.StorageOpt")));
    }

    #[test]
    fn fields_parsed_or_refused() {
        let hc = json!({"CapAdd": ["NET_ADMIN"], "Privileged": true, "Sysctls": {"net.ipv4.ip_forward": "1"},
            "Mounts": [{"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1024, "Mode": 511}}],
            "Ulimits": [{"Name": "nofile", "Soft": 10, "Hard": 20}], "Memory": 67108864,
            "PidsLimit": -1, "Runtime": "crun", "MaskedPaths": [], "ReadonlyPaths": []});
        let o = host_options(&json!({}), &hc).unwrap_or_else(|e| panic!("{}", e.message));
        assert_eq!(o.cap_add, ["NET_ADMIN"]);
        assert!(o.privileged);
        assert_eq!(o.mounts[0].tmpfs_mode, 511);
        assert_eq!(o.ulimits[0].hard, 20);
        assert_eq!(o.resources.memory, 64 << 20);
        assert_eq!(o.resources.pids_limit, 0);
        assert_eq!(o.runtime, "crun");
        assert_eq!(o.security_opt, ["systempaths=unconfined"]);
        for (f, v) in [
            ("CpuQuota", json!(5000)),
            ("Devices", json!([{"PathOnHost": "/dev/kvm"}])),
            ("MemorySwappiness", json!(10)),
            ("PidMode", json!("host")),
            ("Init", json!(true)),
        ] {
            let e = host_options(&json!({}), &json!({f: v})).err();
            assert!(e.is_some_and(|e| e.message.contains(f)), "{f}");
        }
        let o = host_options(&json!({"Volumes": {"/data": {}}}), &json!({}))
            .unwrap_or_else(|e| panic!("{}", e.message));
        assert_eq!(o.anonymous_volumes, ["/data"]);
        let m = json!({"Mounts": [{"Type": "volume", "Source": "v", "Target": "/v",
            "VolumeOptions": {"NoCopy": true, "Labels": {"a": "b"},
                "DriverConfig": {"Name": "local", "Options": {"type": "tmpfs", "device": "tmpfs"}}}}]});
        let o = host_options(&json!({}), &m).unwrap_or_else(|e| panic!("{}", e.message));
        assert!(o.mounts[0].volume_nocopy);
        assert_eq!(o.mounts[0].volume_opts["type"], "tmpfs");
        assert_eq!(o.mounts[0].volume_labels["a"], "b");
        let bad = json!({"Mounts": [{"Type": "bind", "Source": "/", "Target": "/v",
            "VolumeOptions": {"NoCopy": true}}]});
        assert!(
            host_options(&json!({}), &bad)
                .is_err_and(|e| e.message.contains("VolumeOptions must not be specified"))
        );
    }
}
