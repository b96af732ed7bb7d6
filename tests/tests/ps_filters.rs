//! Every `docker ps` filter, as the real docker CLI (and netloom's) sees them: each
//! one selects exactly the containers Docker would, and an unknown or malformed one is
//! refused with Docker's message — never ignored (`docker rm -f $(docker ps -q
//! --filter ancestor=X)` must not remove everything).

use std::collections::BTreeSet;

use netloom_e2e::dockercli::Docker;
use netloom_e2e::{busybox_tar, docker_or_skip, sh, wait_for};

/// A `docker save` tarball of an image built on the test's busybox image: its layers
/// are busybox's (the same diff ID) plus one, so busybox is its parent.
fn child_image_tar(dir: &std::path::Path) -> std::path::PathBuf {
    let out = dir.join("child.tar");
    let script = r#"
import hashlib, io, json, platform, sys, tarfile
bb = open(sys.argv[1], 'rb').read()
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode='w') as t:
    data = b'child\n'
    ti = tarfile.TarInfo('etc/child'); ti.size = len(data); ti.mtime = 1700000000
    t.addfile(ti, io.BytesIO(data))
l2 = buf.getvalue()
d1, d2 = hashlib.sha256(bb).hexdigest(), hashlib.sha256(l2).hexdigest()
arch = {'x86_64': 'amd64', 'aarch64': 'arm64'}.get(platform.machine(), platform.machine())
cfg = json.dumps({'architecture': arch, 'os': 'linux', 'created': '2024-01-01T00:00:00Z',
    'config': {'Env': ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], 'Cmd': ['sh']},
    'rootfs': {'type': 'layers', 'diff_ids': ['sha256:' + d1, 'sha256:' + d2]},
    'history': [{'created_by': 'busybox'}, {'created_by': 'child'}]}).encode()
cid = hashlib.sha256(cfg).hexdigest()
with tarfile.open(sys.argv[2], 'w') as out:
    def add(name, data):
        ti = tarfile.TarInfo(name); ti.size = len(data); ti.mtime = 1700000000
        out.addfile(ti, io.BytesIO(data))
    add(d1 + '/layer.tar', bb)
    add(d2 + '/layer.tar', l2)
    add(cid + '.json', cfg)
    add('manifest.json', json.dumps([{'Config': cid + '.json', 'RepoTags': ['child:latest'],
        'Layers': [d1 + '/layer.tar', d2 + '/layer.tar']}]).encode())
"#;
    let o = sh(
        "python3",
        &[
            "-c",
            script,
            busybox_tar().to_str().unwrap_or_default(),
            out.to_str().unwrap_or_default(),
        ],
    );
    assert!(o.ok(), "make child image: {o}");
    out
}

/// The names `docker ps -a --filter F...` lists.
fn ps(dk: &Docker, filters: &[&str]) -> BTreeSet<String> {
    let mut a = vec!["ps", "-a", "--format", "{{.Names}}"];
    for f in filters {
        a.push("--filter");
        a.push(f);
    }
    dk.ok(&a).lines().map(str::to_string).collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn every_ps_filter_as_docker() {
    docker_or_skip!(d, dk);
    let tar = child_image_tar(&d.dir);
    d.ok(&["load", "-i", tar.to_str().unwrap_or_default()]);
    dk.ok(&["tag", "busybox", "bb:v2"]);
    dk.ok(&["network", "create", "fnet"]);
    let src = d.dir.join("vol");
    std::fs::create_dir_all(&src).unwrap_or_default();
    let bind = format!("{}:/data", src.display());
    // Created in this order (before/since go by it).
    dk.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--label",
        "app=web",
        "-p",
        "18080:80",
        "--expose",
        "90",
        "-v",
        &bind,
        "--network",
        "fnet",
        "busybox",
        "sleep",
        "1000",
    ]);
    dk.ok(&[
        "run", "-d", "--name", "db", "--label", "app=db", "busybox", "sh", "-c", "exit 3",
    ]);
    dk.ok(&["create", "--name", "idle", "busybox", "true"]);
    dk.ok(&["run", "-d", "--name", "kid", "child", "sleep", "1000"]);
    assert!(wait_for(std::time::Duration::from_secs(10), || {
        dk.ok(&["inspect", "-f", "{{.State.Status}}", "db"]) == "exited"
    }));
    let all = set(&["web", "db", "idle", "kid"]);
    let web_id = dk.ok(&["inspect", "-f", "{{.Id}}", "web"]);
    let bb_id = dk.ok(&["image", "inspect", "-f", "{{.Id}}", "busybox"]);
    let cases: Vec<(Vec<String>, BTreeSet<String>)> = vec![
        (vec![format!("id={}", &web_id[..10])], set(&["web"])),
        (vec!["name=^web$".into()], set(&["web"])),
        (vec!["name=d".into()], set(&["db", "idle", "kid"])),
        (vec!["name=/db".into()], set(&["db"])),
        (vec!["label=app".into()], set(&["web", "db"])),
        (vec!["label=app=db".into()], set(&["db"])),
        (
            vec!["label=app".into(), "label=app=web".into()],
            set(&["web"]),
        ),
        (vec!["status=exited".into()], set(&["db"])),
        (vec!["status=created".into()], set(&["idle"])),
        (vec!["status=running".into()], set(&["web", "kid"])),
        (vec!["exited=3".into()], set(&["db"])),
        (vec!["exited=0".into()], set(&[])),
        (vec!["ancestor=busybox".into()], all.clone()),
        (vec!["ancestor=bb:v2".into()], all.clone()),
        (vec![format!("ancestor={bb_id}")], all.clone()),
        (vec!["ancestor=child".into()], set(&["kid"])),
        (vec!["ancestor=nosuchimage".into()], set(&[])),
        (vec!["before=idle".into()], set(&["web", "db"])),
        (vec!["since=db".into()], set(&["idle", "kid"])),
        (vec!["volume=/data".into()], set(&["web"])),
        (vec![format!("volume={}", src.display())], set(&["web"])),
        (vec!["network=fnet".into()], set(&["web"])),
        (vec!["network=bridge".into()], set(&["db", "idle", "kid"])),
        (vec!["publish=18080".into()], set(&["web"])),
        (vec!["publish=18080/udp".into()], set(&[])),
        (vec!["publish=18000-18100/tcp".into()], set(&["web"])),
        (vec!["publish=80".into()], set(&[])),
        (vec!["expose=80".into()], set(&["web"])),
        (vec!["expose=90/tcp".into()], set(&["web"])),
        (vec!["health=none".into()], all.clone()),
        (vec!["health=healthy".into()], set(&[])),
        (vec!["isolation=default".into()], all.clone()),
        (vec!["is-task=true".into()], set(&[])),
        (vec!["is-task=false".into()], all.clone()),
    ];
    for (f, want) in &cases {
        let refs: Vec<&str> = f.iter().map(String::as_str).collect();
        assert_eq!(&ps(&dk, &refs), want, "docker ps -a --filter {f:?}");
    }
    // Without -a, stopped containers are left out (status= implies -a, as in Docker).
    let running: BTreeSet<String> = dk
        .ok(&["ps", "--format", "{{.Names}}", "--filter", "label=app"])
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(running, set(&["web"]));
    let exited: BTreeSet<String> = dk
        .ok(&["ps", "--format", "{{.Names}}", "--filter", "status=exited"])
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(exited, set(&["db"]));
    // Refused with Docker's messages.
    for (f, msg) in [
        ("bogus=1", "invalid filter 'bogus'"),
        ("exited=x", "invalid filter 'exited=x'"),
        ("status=sleeping", "invalid filter 'status=sleeping'"),
        ("health=sick", "invalid filter 'health=sick'"),
        ("is-task=maybe", "invalid filter 'is-task=[maybe]'"),
        (
            "publish=1:2",
            "filter for 'publish' should not contain ':': 1:2",
        ),
        ("before=nosuch", "No such container: nosuch"),
    ] {
        let o = dk.fail(&["ps", "-a", "--filter", f]);
        assert!(o.stderr.contains(msg), "--filter {f}: {o}");
        let o = d.fail(&["ps", "-a", "--filter", f]);
        assert!(o.stderr.contains(msg), "netloom ps --filter {f}: {o}");
    }
    // netloom's CLI sends the same filters.
    assert_eq!(
        d.ok(&[
            "ps",
            "-a",
            "--format",
            "{{.Names}}",
            "--filter",
            "ancestor=child"
        ]),
        "kid"
    );
    // The script that used to remove everything removes nothing.
    let ids = dk.ok(&["ps", "-aq", "--filter", "ancestor=nosuchimage"]);
    assert!(ids.is_empty(), "{ids}");
    assert_eq!(ps(&dk, &[]).len(), 4);
}
