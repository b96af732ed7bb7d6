//! `load` / `save` against Debian's dockerd (archives both ways, IDs kept), OCI image
//! layouts, damaged archives; and bad pull / save / load / tag requests. The registry
//! and helpers are `netloom_e2e::registry`'s.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use netloom_e2e::registry::{Auth, assert_nothing_new, layout, setup, store};
use netloom_e2e::{Daemon, Out, run_cmd, sh, wait_for};

/// Debian's dockerd in `d`'s namespace, its own data and exec roots under `d`'s dir.
struct Dockerd {
    child: std::process::Child,
    sock: PathBuf,
    cfg: PathBuf,
}

impl Dockerd {
    fn start(d: &Daemon) -> Option<Dockerd> {
        if !Path::new("/usr/sbin/dockerd").is_file() {
            if std::env::var("NETLOOM_REQUIRE_PRIV").as_deref() == Ok("1") {
                panic!(
                    "/usr/sbin/dockerd missing (NETLOOM_REQUIRE_PRIV=1): apt-get install docker.io"
                );
            }
            println!("SKIP: /usr/sbin/dockerd missing (apt-get install docker.io)");
            return None;
        }
        let dir = d.dir.join("dk");
        fs::create_dir_all(&dir).unwrap();
        let log = fs::File::create(dir.join("dockerd.log")).unwrap();
        fs::write(dir.join("daemon.json"), "{}").unwrap();
        let ns = format!("{}-dk", d.name);
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", d.name))
            .arg("/usr/sbin/dockerd")
            .arg("--data-root")
            .arg(dir.join("root"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("-H")
            .arg(format!("unix://{}", dir.join("docker.sock").display()))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .args([
                "--containerd-namespace",
                &ns,
                "--containerd-plugins-namespace",
                &format!("{ns}-p"),
            ])
            .args([
                "--bridge",
                "none",
                "--iptables=false",
                "--ip6tables=false",
                "--config-file",
            ])
            .arg(dir.join("daemon.json"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let dk = Dockerd {
            child,
            sock: dir.join("docker.sock"),
            cfg: dir.join("config"),
        };
        fs::create_dir_all(&dk.cfg).unwrap();
        let up = wait_for(Duration::from_secs(30), || dk.run(&["version"]).ok());
        assert!(
            up,
            "dockerd did not start: {}",
            fs::read_to_string(dir.join("dockerd.log")).unwrap_or_default()
        );
        Some(dk)
    }

    fn run(&self, args: &[&str]) -> Out {
        let bin = if Path::new("/usr/bin/docker").is_file() {
            "/usr/bin/docker"
        } else {
            "/usr/local/bin/docker"
        };
        let mut c = Command::new(bin);
        c.args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", &self.cfg)
            .env_remove("DOCKER_CONTEXT");
        run_cmd(c, Duration::from_secs(60))
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        if !wait_for(Duration::from_secs(20), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        }) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

#[test]
fn load_and_save_round_trip_with_dockerd_and_oci_layouts() {
    let Some((d, _r)) = setup(None, Auth::None) else {
        return;
    };
    let Some(dk) = Dockerd::start(&d) else { return };
    let o = dk.run(&["pull", "127.0.0.1:5000/test/bb:single"]);
    assert!(o.ok(), "dockerd pull: {o}");
    let dk_id = dk
        .run(&[
            "image",
            "inspect",
            "-f",
            "{{.Id}}",
            "127.0.0.1:5000/test/bb:single",
        ])
        .stdout
        .trim()
        .to_string();
    // dockerd's archive into netloomd.
    let a = d.dir.join("from-dockerd.tar");
    let o = dk.run(&[
        "save",
        "-o",
        a.to_str().unwrap(),
        "127.0.0.1:5000/test/bb:single",
    ]);
    assert!(o.ok(), "{o}");
    let o = d.cli(&["load", "-i", a.to_str().unwrap()]);
    assert!(o.ok(), "{o}");
    assert_eq!(
        o.stdout, "Loaded image: 127.0.0.1:5000/test/bb:single\n",
        "{o}"
    );
    let id = d.ok(&[
        "image",
        "inspect",
        "-f",
        "{{.Id}}",
        "127.0.0.1:5000/test/bb:single",
    ]);
    assert_eq!(id, dk_id, "the image keeps its ID");
    let o = d.cli(&[
        "run",
        "--rm",
        "127.0.0.1:5000/test/bb:single",
        "-c",
        "cat /etc/motd; ls -A /opt/old",
    ]);
    assert_eq!(o.stdout, "layer two\nc\n", "{o}");
    // netloomd's archive into dockerd, under a new tag.
    d.ok(&["tag", "127.0.0.1:5000/test/bb:single", "mine/bb:v1"]);
    let b = d.dir.join("from-netloomd.tar");
    d.ok(&["save", "-o", b.to_str().unwrap(), "mine/bb:v1"]);
    let o = dk.run(&["load", "-i", b.to_str().unwrap()]);
    assert!(o.ok(), "dockerd load: {o}");
    assert!(o.stdout.contains("Loaded image: mine/bb:v1"), "{o}");
    let o = dk.run(&["image", "inspect", "-f", "{{.Id}}", "mine/bb:v1"]);
    assert_eq!(o.stdout.trim(), dk_id, "{o}");
    let o = dk.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "mine/bb:v1",
        "-c",
        "cat /etc/motd",
    ]);
    assert_eq!(
        o.stdout, "layer two\n",
        "dockerd runs netloomd's archive: {o}"
    );
    // An OCI image layout (the skopeo source itself), tarred.
    let (oci, _) = layout();
    let t = d.dir.join("layout.tar");
    let o = sh(
        "tar",
        &["-C", oci.to_str().unwrap(), "-cf", t.to_str().unwrap(), "."],
    );
    assert!(o.ok(), "{o}");
    let o = d.cli(&["load", "-i", t.to_str().unwrap()]);
    assert!(o.ok(), "{o}");
    // Its entries carry only tags (`single`, `multi`): loaded by ID, as Docker does.
    assert!(o.stdout.contains("Loaded image ID: sha256:"), "{o}");
    // docker save | netloom load through a pipe, and save of an imported image.
    let o = d.cli(&["save", "busybox"]);
    assert!(o.ok(), "save busybox to a pipe");
    let c = d.dir.join("busybox.tar");
    d.ok(&["save", "-o", c.to_str().unwrap(), "busybox"]);
    let o = dk.run(&["load", "-i", c.to_str().unwrap()]);
    assert!(
        o.ok() && o.stdout.contains("Loaded image: busybox:latest"),
        "{o}"
    );
    let o = dk.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "echo",
        "imported",
    ]);
    assert_eq!(o.stdout, "imported\n", "{o}");
    // A bad archive: refused, nothing stored.
    let before = store(&d);
    let bad = d.dir.join("bad.tar");
    let mut data = fs::read(&a).unwrap();
    // Damage a layer's bytes (its DiffID no longer matches the config).
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    fs::write(&bad, &data).unwrap();
    d.ok(&["rmi", "-f", "127.0.0.1:5000/test/bb:single", "mine/bb:v1"]);
    let before2 = store(&d);
    let o = d.fail(&["load", "-i", bad.to_str().unwrap()]);
    assert!(
        o.stderr.contains("failed verification") || o.stderr.contains("invalid image archive"),
        "{o}"
    );
    assert_nothing_new(&d, &before2, "load of a damaged archive");
    let _ = before;
    let o = d.fail(&["load", "-i", "/etc/hostname"]);
    assert!(o.stderr.contains("invalid image archive"), "{o}");
}

#[test]
fn bad_pull_save_load_and_tag_requests() {
    let Some((d, _r)) = setup(None, Auth::None) else {
        return;
    };
    let before = store(&d);
    for (args, want) in [
        (&["pull", "Bad/Name"][..], "must be lowercase"),
        (&["pull", "-a", "127.0.0.1:5000/test/bb"][..], "--all-tags"),
        (
            &[
                "pull",
                "--platform",
                "linux/",
                "127.0.0.1:5000/test/bb:single",
            ][..],
            "invalid platform",
        ),
        (&["history", "nope"][..], "No such image: nope:latest"),
        (
            &["save", "-o", "/dev/null", "nope"][..],
            "No such image: nope:latest",
        ),
        (&["tag", "nope", "x"][..], "No such image: nope:latest"),
        (
            &[
                "tag",
                "busybox",
                "x@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            ][..],
            "digest",
        ),
    ] {
        let o = d.fail(args);
        assert!(o.stderr.contains(want), "{args:?}: {o}");
    }
    let (code, body) = d.api(
        "POST",
        "/images/create?fromImage=127.0.0.1:5000/test/bb&tag=single",
        None,
    );
    assert_eq!(code, 200, "{body}");
    let garbage = "/images/create?fromImage=127.0.0.1:5000/test/bb&tag=single";
    let mut c = Command::new("curl");
    c.arg("--unix-socket").arg(d.sock()).args([
        "-s",
        "-w",
        "\n%{http_code}",
        "-X",
        "POST",
        "-H",
        "X-Registry-Auth: %%%",
        &format!("http://localhost/v1.47{garbage}"),
    ]);
    let o = run_cmd(c, Duration::from_secs(30));
    assert!(
        o.stdout.ends_with("400") && o.stdout.contains("invalid X-Registry-Auth header"),
        "{o}"
    );
    let (code, body) = d.api("POST", "/images/create?fromImage=x&tag=1&bogus=1", None);
    assert_eq!(code, 400, "{body}");
    let (code, body) = d.api("POST", "/images/busybox/push", None);
    assert_eq!(code, 501, "{body}");
    let (code, body) = d.api("POST", "/images/busybox/tag", None);
    assert_eq!(code, 400, "{body}");
    let (code, body) = d.api("POST", "/images/busybox/tag?repo=again&tag=v2", None);
    assert_eq!(code, 201, "{body}");
    let _ = before;
}
