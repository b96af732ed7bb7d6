use super::*;

#[test]
fn binds() {
    assert_eq!(
        parse_bind("/srv/x/:/data:ro,rshared"),
        Ok(MountSpec::Bind {
            source: "/srv/x".into(),
            destination: "/data".into(),
            read_only: true,
            propagation: "rshared".into(),
            non_recursive: false,
        })
    );
    assert!(parse_bind("/a:/b:Z").is_ok());
    assert_eq!(
        parse_bind("/a:/b:xyz"),
        Err("invalid mode: xyz".to_string())
    );
    assert_eq!(
        parse_bind("/a:/b:ro,rw"),
        Err("invalid mode: ro,rw".to_string())
    );
    assert!(
        parse_bind("data:/b").is_err_and(|e| e.starts_with("named volumes are not supported yet"))
    );
    assert!(parse_bind("/data").is_err_and(|e| e.contains("anonymous volumes")));
    assert!(parse_bind("/a:b").is_err_and(|e| e.contains("mount path must be absolute")));
    assert!(parse_bind("/a:/").is_err_and(|e| e.contains("destination can't be '/'")));
    assert!(parse_bind("/a:/b:ro:x").is_err_and(|e| e.contains("invalid volume specification")));
}

#[test]
fn mounts() {
    let Ok(dir) = tempfile::tempdir() else { return };
    let src = dir.path().to_string_lossy().into_owned();
    let bind = |source: &str| MountRequest {
        typ: "bind".into(),
        source: source.into(),
        target: "/data".into(),
        ..MountRequest::default()
    };
    assert!(parse_mount(&bind(&src)).is_ok());
    let missing = format!("{src}/nope");
    assert_eq!(
        parse_mount(&bind(&missing)),
        Err(format!(
            "invalid mount config for type \"bind\": bind source path does not exist: {missing}"
        ))
    );
    assert!(
        parse_mount(&MountRequest {
            create_mountpoint: true,
            ..bind(&missing)
        })
        .is_ok()
    );
    let tmpfs = MountRequest {
        typ: "tmpfs".into(),
        target: "/t".into(),
        tmpfs_size: 1 << 20,
        tmpfs_mode: 0o1777,
        ..MountRequest::default()
    };
    assert_eq!(
        parse_mount(&tmpfs),
        Ok(MountSpec::Tmpfs {
            destination: "/t".into(),
            options: vec!["size=1048576".into(), "mode=1777".into()]
        })
    );
    assert!(
        parse_mount(&MountRequest {
            source: "x".into(),
            ..tmpfs.clone()
        })
        .is_err()
    );
    assert!(
        parse_mount(&MountRequest {
            typ: "volume".into(),
            source: "v".into(),
            ..tmpfs.clone()
        })
        .is_err_and(|e| e.starts_with("named volumes are not supported yet"))
    );
    assert!(
        parse_mount(&MountRequest {
            typ: "npipe".into(),
            ..tmpfs
        })
        .is_err_and(|e| e.contains("not supported"))
    );
}

#[test]
fn tmpfs_and_duplicates() {
    assert!(parse_tmpfs("/run", "rw,noexec,size=64k,mode=1777").is_ok());
    assert!(parse_tmpfs("/run", "bogus").is_err_and(|e| e.contains("invalid tmpfs option")));
    assert!(parse_tmpfs("run", "").is_err());
    let a = parse_tmpfs("/x", "").unwrap_or_else(|e| panic!("{e}"));
    let b = parse_bind("/y:/x/").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        check_duplicates(&[a, b]),
        Err("Duplicate mount point: /x".to_string())
    );
}

#[test]
fn ulimits() {
    assert_eq!(
        parse_ulimit("nofile=1024:2048"),
        Ok(Rlimit {
            name: "nofile".into(),
            soft: 1024,
            hard: 2048
        })
    );
    assert_eq!(
        parse_ulimit("nproc=50").map(|r| (r.soft, r.hard)),
        Ok((50, 50))
    );
    assert_eq!(parse_ulimit("core=-1").map(|r| r.hard), Ok(u64::MAX));
    assert_eq!(
        parse_ulimit("fly=1"),
        Err("invalid ulimit type: fly".to_string())
    );
    assert_eq!(
        parse_ulimit("nofile=2048:1024"),
        Err("ulimit soft limit must be less than or equal to hard limit: 2048 > 1024".to_string())
    );
    assert!(parse_ulimit("nofile").is_err_and(|e| e.starts_with("invalid ulimit argument")));
}

#[test]
fn sysctls() {
    assert!(check_sysctl("net.ipv4.ip_forward", "1", false).is_ok());
    assert!(check_sysctl("kernel.shmmax", "1", false).is_ok());
    assert!(check_sysctl("fs.mqueue.msg_max", "20", false).is_ok());
    assert!(
        check_sysctl("kernel.hostname", "x", false)
            .is_err_and(|e| e.starts_with("sysctl 'kernel.hostname=x' is not whitelisted"))
    );
    assert!(check_sysctl("vm.swappiness", "1", false).is_err());
    assert_eq!(
        check_sysctl("net.core.somaxconn", "1", true),
        Err("sysctl \"net.core.somaxconn\" not allowed in host network namespace".to_string())
    );
    assert!(check_sysctl("kernel.sem", "1 2 3 4", true).is_ok());
}

#[test]
fn security_opts() {
    let p = |v: &[&str]| parse_security_opts(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(
        p(&["no-new-privileges"]).map(|s| s.no_new_privileges),
        Ok(true)
    );
    assert_eq!(
        p(&["no-new-privileges:true"]).map(|s| s.no_new_privileges),
        Ok(true)
    );
    assert_eq!(
        p(&["no-new-privileges=false"]).map(|s| s.no_new_privileges),
        Ok(false)
    );
    assert_eq!(
        p(&["seccomp=unconfined"]).map(|s| s.seccomp),
        Ok(SeccompMode::Unconfined)
    );
    let json = r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#;
    assert_eq!(
        p(&[&format!("seccomp={json}")]).map(|s| s.seccomp),
        Ok(SeccompMode::Profile(json.into()))
    );
    assert!(
        p(&["seccomp={\"x\":1}"]).is_err_and(|e| e.contains("decoding seccomp profile failed"))
    );
    assert!(p(&["seccomp=/etc/profile.json"]).is_err_and(|e| e.contains("not a JSON profile")));
    assert!(p(&["label=disable", "apparmor=unconfined"]).is_ok());
    assert!(p(&["apparmor=docker-default"]).is_err_and(|e| e.contains("AppArmor is not enabled")));
    assert_eq!(
        p(&["systempaths=unconfined"]).map(|s| s.unmask_paths),
        Ok(true)
    );
    assert_eq!(
        p(&["bogus"]),
        Err("invalid --security-opt 2: \"bogus\"".to_string())
    );
}

#[test]
fn resources() {
    let ok = |r: Resources| check_resources(&r);
    assert!(
        ok(Resources {
            memory: 64 << 20,
            memory_swap: -1,
            ..Resources::default()
        })
        .is_ok()
    );
    assert_eq!(
        ok(Resources {
            memory: 1 << 20,
            ..Resources::default()
        }),
        Err("Minimum memory limit allowed is 6MB".to_string())
    );
    assert!(
        ok(Resources {
            memory: 64 << 20,
            memory_swap: 32 << 20,
            ..Resources::default()
        })
        .is_err_and(|e| e.starts_with("Minimum memoryswap limit should be larger"))
    );
    assert!(
        ok(Resources {
            memory_swap: 64 << 20,
            ..Resources::default()
        })
        .is_err_and(|e| e.contains("always set the Memory limit"))
    );
    let n = online_cpus().len() as i64;
    assert!(
        ok(Resources {
            nano_cpus: (n + 1) * 1_000_000_000,
            ..Resources::default()
        })
        .is_err_and(|e| e.starts_with("Range of CPUs is from 0.01 to"))
    );
    assert!(
        ok(Resources {
            nano_cpus: 500_000_000,
            ..Resources::default()
        })
        .is_ok()
    );
    assert!(
        ok(Resources {
            cpuset_cpus: "0".into(),
            ..Resources::default()
        })
        .is_ok()
    );
    assert!(
        ok(Resources {
            cpuset_cpus: "4000".into(),
            ..Resources::default()
        })
        .is_err_and(|e| e.starts_with("Requested CPUs are not available - requested 4000"))
    );
    assert_eq!(parse_cpu_list("0-2,4"), Ok(vec![0, 1, 2, 4]));
    assert_eq!(parse_size("64m"), Ok(64 << 20));
    assert_eq!(parse_size("1.5g"), Ok(3 << 29));
    assert_eq!(parse_size("100"), Ok(100));
    assert!(parse_size("lots").is_err());
}
