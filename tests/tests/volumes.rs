//! Volumes with the `local` driver: named volumes created by `volume create` or on
//! first use by `-v NAME:/path` / `--mount type=volume`, whose data outlives its
//! containers and a daemon restart; anonymous volumes removed by `rm -v` and `--rm`;
//! `volume ls` filters, `inspect`, `rm` (in use → 409), `prune`; the driver's
//! `type`/`device`/`o` options (tmpfs, bind); the copy of the image's content into a
//! new volume; and bad input refused with nothing made.

use std::path::Path;

use netloom_e2e::{Daemon, daemon_or_skip};

fn volumes(d: &Daemon, filters: &[&str]) -> Vec<String> {
    let mut a = vec!["volume", "ls", "-q"];
    for f in filters {
        a.extend(["--filter", f]);
    }
    let mut v: Vec<String> = d.ok(&a).lines().map(str::to_string).collect();
    v.sort();
    v
}

fn mounted(p: &str) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(p))
}

#[test]
fn named_volume_outlives_containers_and_restarts() {
    let d = daemon_or_skip!();
    assert_eq!(
        d.ok(&["volume", "create", "--label", "env=test", "data"]),
        "data"
    );
    let mp = d.ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "data"]);
    assert!(
        mp.starts_with(&d.dir.display().to_string()) && mp.ends_with("/volumes/data/_data"),
        "{mp}"
    );
    assert_eq!(
        d.ok(&[
            "volume",
            "inspect",
            "-f",
            "{{.Driver}} {{.Scope}} {{.Labels.env}}",
            "data"
        ]),
        "local local test"
    );
    // Created again: the same volume, no error (as Docker).
    assert_eq!(d.ok(&["volume", "create", "data"]), "data");

    let w = d.ok(&[
        "run",
        "-d",
        "--name",
        "writer",
        "-v",
        "data:/data",
        "busybox",
        "sh",
        "-c",
        "echo hello > /data/f && sleep 1000",
    ]);
    netloom_e2e::wait_for(std::time::Duration::from_secs(5), || {
        Path::new(&mp).join("f").exists()
    });
    assert_eq!(
        std::fs::read_to_string(Path::new(&mp).join("f")).unwrap_or_default(),
        "hello\n"
    );
    let mounts = d.ok(&["inspect", "-f", "{{json .Mounts}}", "writer"]);
    let m: serde_json::Value = serde_json::from_str(&mounts).expect("json mounts");
    assert_eq!(
        (
            &m[0]["Type"],
            &m[0]["Name"],
            &m[0]["Source"],
            &m[0]["Destination"],
            &m[0]["RW"]
        ),
        (
            &"volume".into(),
            &"data".into(),
            &mp.as_str().into(),
            &"/data".into(),
            &true.into()
        ),
        "{mounts}"
    );
    // In use, even by a stopped container: Docker's 409.
    d.ok(&["stop", "-t", "0", "writer"]);
    let (code, body) = d.api("DELETE", "/volumes/data", None);
    assert_eq!(code, 409, "{body}");
    assert!(
        body.contains(&format!("remove data: volume is in use - [{w}]")),
        "{body}"
    );
    let o = d.fail(&["volume", "rm", "data"]);
    assert!(o.stderr.contains("volume is in use"), "{o}");
    assert_eq!(volumes(&d, &["dangling=false"]), ["data"]);
    assert_eq!(
        d.ok(&["ps", "-aq", "--no-trunc", "--filter", "volume=data"]),
        w
    );
    assert_eq!(d.ok(&["ps", "-aq", "--filter", "volume=other"]), "");
    assert!(volumes(&d, &["dangling=true"]).is_empty());
    d.ok(&["rm", "-v", "writer"]);
    assert_eq!(volumes(&d, &[]), ["data"], "rm -v keeps named volumes");
    assert_eq!(volumes(&d, &["dangling=true"]), ["data"]);

    // The data is there for the next container, also after a daemon restart, through
    // --mount and read-only.
    let out = d.ok(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,source=data,target=/d,readonly",
        "busybox",
        "sh",
        "-c",
        "cat /d/f; touch /d/x 2>/dev/null || echo read-only",
    ]);
    assert_eq!(out, "hello\nread-only");
    let mut d = d;
    d.stop();
    d.start();
    assert_eq!(volumes(&d, &["label=env=test"]), ["data"]);
    assert_eq!(
        d.ok(&["run", "--rm", "-v", "data:/d", "busybox", "cat", "/d/f"]),
        "hello"
    );

    // Removed once unused: gone from ls, inspect and disk.
    d.ok(&["volume", "rm", "data"]);
    let o = d.fail(&["volume", "inspect", "data"]);
    assert!(o.stderr.contains("get data: no such volume"), "{o}");
    assert!(!Path::new(&mp).exists());
    assert!(
        d.fail(&["volume", "rm", "data"])
            .stderr
            .contains("no such volume")
    );
    assert!(
        d.cli(&["volume", "rm", "-f", "data"]).ok(),
        "rm -f of a missing volume"
    );
}

#[test]
fn created_on_first_use_and_anonymous_volumes() {
    let d = daemon_or_skip!();
    d.ok(&[
        "run", "--rm", "-v", "fresh:/x", "busybox", "touch", "/x/made",
    ]);
    assert_eq!(
        volumes(&d, &[]),
        ["fresh"],
        "created on first use, kept after --rm"
    );
    d.ok(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,source=viamount,target=/y,volume-label=k=v",
        "busybox",
        "true",
    ]);
    assert_eq!(volumes(&d, &["label=k=v"]), ["viamount"]);

    // Anonymous: one per container path, gone with `rm -v` and `--rm`.
    d.ok(&[
        "run", "-d", "--name", "anon", "-v", "/cache", "busybox", "sleep", "1000",
    ]);
    let anon: Vec<String> = volumes(&d, &["label=com.docker.volume.anonymous"]);
    assert_eq!(anon.len(), 1, "{anon:?}");
    assert_eq!(anon[0].len(), 64, "an anonymous volume has a 64-hex name");
    d.exec_ok("anon", "echo x > /cache/y");
    d.ok(&["rm", "-f", "-v", "anon"]);
    assert!(
        volumes(&d, &["label=com.docker.volume.anonymous"]).is_empty(),
        "rm -v removed it"
    );
    d.ok(&["run", "--rm", "-v", "/tmpdata", "busybox", "true"]);
    assert!(
        volumes(&d, &["label=com.docker.volume.anonymous"]).is_empty(),
        "--rm removed it"
    );
    // API: Config.Volumes (what the docker CLI sends for -v /path).
    let (code, body) = d.api(
        "POST",
        "/containers/create?name=cv",
        Some(r#"{"Image":"busybox","Cmd":["true"],"Volumes":{"/v":{}}}"#),
    );
    assert_eq!(code, 201, "{body}");
    assert_eq!(volumes(&d, &["label=com.docker.volume.anonymous"]).len(), 1);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{json .Config.Volumes}}", "cv"]),
        r#"{"/v":{}}"#
    );
    d.ok(&["rm", "cv"]);
    assert_eq!(
        volumes(&d, &["label=com.docker.volume.anonymous"]).len(),
        1,
        "rm without -v keeps it"
    );

    // Prune: anonymous unused ones by default, every unused one with --all.
    d.ok(&[
        "run", "-d", "--name", "user", "-v", "fresh:/x", "busybox", "sleep", "1000",
    ]);
    let out = d.ok(&["volume", "prune", "-f"]);
    assert!(
        out.starts_with("Deleted Volumes:") && out.contains("Total reclaimed space"),
        "{out}"
    );
    assert_eq!(volumes(&d, &[]), ["fresh", "viamount"]);
    d.ok(&["volume", "prune", "-f", "--all", "--filter", "label!=k"]);
    assert_eq!(
        volumes(&d, &[]),
        ["fresh", "viamount"],
        "label! kept viamount, fresh in use"
    );
    d.ok(&["volume", "prune", "-f", "--all"]);
    assert_eq!(volumes(&d, &[]), ["fresh"], "in use: kept");
    assert_eq!(volumes(&d, &["name=fre"]), ["fresh"]);
    assert_eq!(volumes(&d, &["driver=local"]), ["fresh"]);
    assert!(volumes(&d, &["driver=other"]).is_empty());
}

#[test]
fn local_driver_tmpfs_and_bind_options() {
    let d = daemon_or_skip!();
    d.ok(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=size=1m,mode=0750",
        "tv",
    ]);
    let mp = d.ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "tv"]);
    assert_eq!(
        d.ok(&[
            "volume",
            "inspect",
            "-f",
            "{{.Options.type}} {{.Options.o}}",
            "tv"
        ]),
        "tmpfs size=1m,mode=0750"
    );
    assert!(!mounted(&mp), "mounted only while a container uses it");
    d.ok(&[
        "run", "-d", "--name", "t1", "-v", "tv:/t", "busybox", "sleep", "1000",
    ]);
    let df = d.exec_ok("t1", "df -k /t | tail -1; stat -c %a /t; echo data > /t/f");
    assert!(df.contains("tmpfs") && df.contains(" 1024 "), "{df}");
    assert!(df.contains("\n750\n"), "{df}");
    assert!(mounted(&mp));
    // A second user shares the same tmpfs.
    assert_eq!(
        d.ok(&["run", "--rm", "-v", "tv:/t", "busybox", "cat", "/t/f"]),
        "data"
    );
    assert!(mounted(&mp), "still used by t1");
    d.ok(&["stop", "-t", "0", "t1"]);
    assert!(!mounted(&mp), "unmounted once no running container uses it");
    d.ok(&["rm", "t1"]);

    let host = d.dir.join("share");
    std::fs::create_dir_all(&host).expect("mkdir share");
    std::fs::write(host.join("from-host"), "h\n").expect("write");
    let dev = format!("device={}", host.display());
    d.ok(&[
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        &dev,
        "-o",
        "o=bind",
        "bv",
    ]);
    let out = d.ok(&[
        "run",
        "--rm",
        "-v",
        "bv:/s",
        "busybox",
        "sh",
        "-c",
        "cat /s/from-host; echo c > /s/from-ctr",
    ]);
    assert_eq!(out, "h");
    assert_eq!(
        std::fs::read_to_string(host.join("from-ctr")).unwrap_or_default(),
        "c\n"
    );
    d.ok(&["volume", "rm", "bv"]);
    assert!(
        host.join("from-host").exists(),
        "removing a bind volume leaves the host's files"
    );
    let mounts = d.ok(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,source=mv,target=/m,volume-opt=type=tmpfs,volume-opt=device=tmpfs",
        "busybox",
        "sh",
        "-c",
        "df /m | tail -1",
    ]);
    assert!(mounts.starts_with("tmpfs"), "{mounts}");
}

#[test]
fn image_content_copied_into_new_volume_unless_nocopy() {
    let d = daemon_or_skip!();
    // /bin of the image is copied into the new volume: the shell still runs.
    let out = d.ok(&[
        "run",
        "--rm",
        "-v",
        "binvol:/bin",
        "busybox",
        "sh",
        "-c",
        "ls /bin | grep -c .",
    ]);
    assert!(out.parse::<u32>().unwrap_or(0) > 100, "{out}");
    let mp = d.ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "binvol"]);
    assert!(Path::new(&mp).join("busybox").is_file());
    // nocopy: the volume stays empty, so the image's /bin is hidden.
    let o = d.cli(&[
        "run",
        "--rm",
        "-v",
        "empty:/bin:nocopy",
        "busybox",
        "sh",
        "-c",
        "true",
    ]);
    assert!(!o.ok(), "{o}");
    let mp = d.ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "empty"]);
    assert!(
        std::fs::read_dir(&mp)
            .map(|mut r| r.next().is_none())
            .unwrap_or(false)
    );
}

#[test]
fn bad_volume_input_changes_nothing() {
    let d = daemon_or_skip!();
    for (args, want) in [
        (
            vec!["volume", "create", "-o", "colour=red", "v1"],
            "invalid option: \"colour\"",
        ),
        (
            vec!["volume", "create", "-o", "type=tmpfs", "v1"],
            "missing required option: \"device\"",
        ),
        (vec!["volume", "create", "-o", "size=1g", "v1"], "quota"),
        (
            vec!["volume", "create", "a b"],
            "includes invalid characters for a local volume name",
        ),
        (
            vec!["volume", "create", "-d", "nfsplugin", "v1"],
            "plugin \"nfsplugin\" not found",
        ),
        (
            vec!["run", "--rm", "-v", "v1:/x:rshared", "busybox", "true"],
            "propagation",
        ),
        (
            vec!["run", "--rm", "-v", "v 1:/x", "busybox", "true"],
            "invalid characters",
        ),
        (
            vec!["run", "--rm", "-v", "v1:rel", "busybox", "true"],
            "must be absolute",
        ),
        (
            vec![
                "run", "--rm", "-v", "v1:/x", "-v", "v2:/x", "busybox", "true",
            ],
            "Duplicate mount point: /x",
        ),
        (
            vec![
                "run",
                "--rm",
                "--mount",
                "type=volume,source=v1,target=/x,volume-opt=bogus=1",
                "busybox",
                "true",
            ],
            "invalid option: \"bogus\"",
        ),
        (
            vec![
                "run",
                "--rm",
                "--mount",
                "type=volume,source=v1,target=/x,volume-driver=nfsplugin",
                "busybox",
                "true",
            ],
            "not found",
        ),
        (
            vec![
                "run",
                "--rm",
                "--mount",
                "type=volume,source=v1,target=/x,bind-propagation=rslave",
                "busybox",
                "true",
            ],
            "BindOptions must not be specified",
        ),
        (vec!["volume", "rm", "nosuch"], "get nosuch: no such volume"),
    ] {
        let o = d.fail(&args);
        assert!(o.stderr.contains(want), "{args:?}: want {want:?}: {o}");
    }
    assert!(volumes(&d, &[]).is_empty(), "nothing was created");
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    let (code, body) = d.api(
        "GET",
        "/volumes?filters=%7B%22colour%22%3A%5B%22x%22%5D%7D",
        None,
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("invalid filter 'colour'"), "{body}");
    let (code, body) = d.api(
        "POST",
        "/volumes/create",
        Some(r#"{"Name":"x","ClusterVolumeSpec":{"Group":"g"}}"#),
    );
    assert_eq!(code, 400, "{body}");
    let help = d.ok(&["volume", "create", "--help"]);
    assert!(help.contains("type=tmpfs"), "{help}");
}
