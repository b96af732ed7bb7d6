//! Images from a real registry: Debian's `docker-registry` in each test daemon's
//! namespace, images pushed by Debian's `skopeo` from an OCI layout of busybox in
//! three layers (a whiteout, an opaque directory), a two-platform index, Docker
//! schema 2 and zstd variants. Pulled by netloom's CLI, the real docker CLI and (in
//! tests/python) docker-py; token and basic auth; a tampered blob; registries that
//! hang or reset; mirrors and insecure registries; `load` / `save` with Debian's
//! dockerd. Every failure is checked to leave nothing stored.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use netloom_e2e::registry::{
    self, Auth, REG, Registry, assert_nothing_new, daemon, layout, setup, store,
};
use netloom_e2e::{Daemon, Out, run_cmd, sh};

fn image_ids(d: &Daemon) -> Vec<String> {
    let mut v: Vec<String> = d
        .ok(&["images", "-q", "--no-trunc"])
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

#[test]
fn pull_stacks_layers_and_run_uses_the_image_config() {
    let Some((d, r)) = setup(None, Auth::None) else {
        return;
    };
    let o = d.cli_t(
        &["pull", "127.0.0.1:5000/test/bb:single"],
        Duration::from_secs(60),
    );
    assert!(o.ok(), "pull: {o}");
    for want in [
        "single: Pulling from test/bb",
        ": Pulling fs layer",
        ": Download complete",
        ": Pull complete",
        "Digest: sha256:",
        "Status: Downloaded newer image for 127.0.0.1:5000/test/bb:single",
        "127.0.0.1:5000/test/bb:single",
    ] {
        assert!(o.stdout.contains(want), "pull output lacks {want:?}: {o}");
    }
    // The manifest's digest is the repo digest; the config's, the image ID.
    let m = r.manifest(&d, "test/bb", "single");
    let cfg = m["config"]["digest"].as_str().unwrap().to_string();
    let id = d.ok(&[
        "image",
        "inspect",
        "-f",
        "{{.Id}}",
        "127.0.0.1:5000/test/bb:single",
    ]);
    assert_eq!(id, cfg);
    let v: serde_json::Value = serde_json::from_str(&d.ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .}}",
        "127.0.0.1:5000/test/bb:single",
    ]))
    .unwrap();
    let digests = v["RepoDigests"].to_string();
    assert!(digests.contains("127.0.0.1:5000/test/bb@sha256:"), "{v}");
    assert_eq!(v["Config"]["User"], "1000");
    assert_eq!(v["Config"]["WorkingDir"], "/opt/old");
    assert_eq!(v["Config"]["Entrypoint"][0], "/bin/sh");
    assert_eq!(v["Config"]["Labels"]["org.netloom.test"], "registry");
    assert!(v["Config"]["ExposedPorts"]["8080/tcp"].is_object(), "{v}");
    assert_eq!(
        v["Config"]["Healthcheck"]["Test"][1], "true",
        "kept for later: {v}"
    );
    assert_eq!(v["RootFS"]["Layers"].as_array().map(Vec::len), Some(3));
    // The image's Entrypoint + Cmd.
    let o = d.cli(&["run", "--rm", "127.0.0.1:5000/test/bb:single"]);
    assert_eq!(o.stdout.trim(), "hello from the registry", "{o}");
    // Layers stacked: the whiteout removed /etc/gone, the opaque dir hides a and b;
    // User, WorkingDir, Env of the image, with -e merged into it.
    let o = d.cli(&[
        "run", "--rm", "-e", "X=1", "-e", "IMG_GREETING=hi", "127.0.0.1:5000/test/bb:single", "-c",
        "id -u; pwd; ls -A /opt/old | tr '\\n' ' '; echo; ls /etc/gone 2>&1 | grep -c 'No such'; cat /etc/motd; echo $IMG_GREETING $X; echo $PATH; ls -A /etc | grep -c '^.wh.'; true",
    ]);
    assert!(o.ok(), "{o}");
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(
        lines,
        vec![
            "1000",
            "/opt/old",
            "c ",
            "1",
            "layer two",
            "hi 1",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "0"
        ],
        "{o}"
    );
    // `--user` and `-w` still win over the image's.
    let o = d.cli(&[
        "run",
        "--rm",
        "-u",
        "0",
        "-w",
        "/",
        "127.0.0.1:5000/test/bb:single",
        "-c",
        "id -u; pwd",
    ]);
    assert_eq!(o.stdout, "0\n/\n", "{o}");
    // A second pull: nothing to download.
    let o = d.cli(&["pull", "127.0.0.1:5000/test/bb:single"]);
    assert!(o.ok(), "{o}");
    assert!(
        o.stdout
            .contains("Status: Image is up to date for 127.0.0.1:5000/test/bb:single"),
        "{o}"
    );
    assert!(!o.stdout.contains("Pull complete"), "{o}");
    // History from the config: four steps, the top one the image.
    let h = d.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.ID}}|{{.CreatedBy}}|{{.Size}}",
        "127.0.0.1:5000/test/bb:single",
    ]);
    let rows: Vec<&str> = h.lines().collect();
    assert_eq!(rows.len(), 4, "{h}");
    assert!(
        rows[0].starts_with(&format!("{cfg}|/bin/sh -c #(nop) CMD")),
        "{h}"
    );
    assert!(
        rows[3].starts_with("<missing>|/bin/sh -c #(nop) ADD busybox /|2."),
        "{h}"
    );
    // rmi of the last tag removes the image and its blobs.
    d.ok(&["rmi", "127.0.0.1:5000/test/bb:single"]);
    let (blobs, roots, tmp) = store(&d);
    let hex = cfg.trim_start_matches("sha256:");
    assert!(
        !roots.iter().any(|r| r == hex) && tmp.is_empty(),
        "{roots:?} {tmp:?}"
    );
    let layer = m["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    assert!(
        !blobs.iter().any(|b| b.contains(hex) || b.contains(layer)),
        "{blobs:?}"
    );
}

#[test]
fn manifest_lists_resolve_to_this_platform_or_the_one_asked() {
    let Some((d, _r)) = setup(None, Auth::None) else {
        return;
    };
    d.ok(&["pull", "127.0.0.1:5000/test/bb:multi"]);
    let o = d.cli(&[
        "run",
        "--rm",
        "127.0.0.1:5000/test/bb:multi",
        "-c",
        "cat /etc/platform",
    ]);
    assert_eq!(o.stdout.trim(), "linux/amd64", "{o}");
    let o = d.cli_t(
        &[
            "pull",
            "--platform",
            "linux/arm64",
            "127.0.0.1:5000/test/bb:multi",
        ],
        Duration::from_secs(60),
    );
    assert!(o.ok(), "{o}");
    assert!(
        o.stdout.contains(": Already exists"),
        "shared layers are reused: {o}"
    );
    let arch = d.ok(&[
        "image",
        "inspect",
        "-f",
        "{{.Architecture}}",
        "127.0.0.1:5000/test/bb:multi",
    ]);
    assert_eq!(arch, "arm64");
    let o = d.cli(&[
        "run",
        "--rm",
        "127.0.0.1:5000/test/bb:multi",
        "-c",
        "cat /etc/platform",
    ]);
    assert_eq!(o.stdout.trim(), "linux/arm64", "{o}");
    // No such platform: Docker's message, nothing stored.
    let before = store(&d);
    let o = d.fail(&[
        "pull",
        "--platform",
        "linux/s390x",
        "127.0.0.1:5000/test/bb:multi",
    ]);
    assert!(
        o.stderr
            .contains("no matching manifest for linux/s390x in the manifest list entries"),
        "{o}"
    );
    assert_nothing_new(&d, &before, "pull of a missing platform");
    let o = d.fail(&[
        "pull",
        "--platform",
        "windows/amd64",
        "127.0.0.1:5000/test/bb:multi",
    ]);
    assert!(o.stderr.contains("invalid platform"), "{o}");
    // A single-platform image asked for as another platform.
    let o = d.fail(&[
        "pull",
        "--platform",
        "linux/arm64",
        "127.0.0.1:5000/test/bb:single",
    ]);
    assert!(
        o.stderr.contains(
            "does not match the specified platform: wanted linux/arm64, actual: linux/amd64"
        ),
        "{o}"
    );
}

#[test]
fn docker_schema2_and_zstd_layers() {
    let Some(d) = daemon(None) else { return };
    let r = Registry::start(&d, "main", REG, Auth::None);
    let (oci, _) = layout();
    r.push(
        &format!("oci:{}:single", oci.display()),
        "v2/bb:latest",
        &["--format", "v2s2"],
    );
    r.push(
        &format!("oci:{}:single", oci.display()),
        "zst/bb:latest",
        &["--dest-compress-format", "zstd"],
    );
    let m = r.manifest(&d, "v2/bb", "latest");
    assert_eq!(
        m["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        m["layers"][0]["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    let z = r.manifest(&d, "zst/bb", "latest");
    assert_eq!(
        z["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd",
        "{z}"
    );
    // zstd first, into an empty store (the two are the same image: same config).
    d.ok(&["pull", "127.0.0.1:5000/zst/bb"]);
    let blobs = store(&d).0;
    let zl = z["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    assert!(
        blobs.iter().any(|b| b.ends_with(&zl)),
        "the zstd blob is stored: {blobs:?}"
    );
    let o = d.cli(&[
        "run",
        "--rm",
        "127.0.0.1:5000/zst/bb",
        "-c",
        "cat /etc/motd; ls /opt/old",
    ]);
    assert_eq!(o.stdout, "layer two\nc\n", "{o}");
    d.ok(&["rmi", "127.0.0.1:5000/zst/bb"]);
    d.ok(&["pull", "127.0.0.1:5000/v2/bb"]);
    let o = d.cli(&["run", "--rm", "127.0.0.1:5000/v2/bb", "-c", "cat /etc/motd"]);
    assert_eq!(o.stdout, "layer two\n", "{o}");
}

#[test]
fn run_of_a_missing_image_pulls_it_first() {
    let Some((d, _r)) = setup(None, Auth::None) else {
        return;
    };
    let o = d.cli_t(
        &["run", "--rm", "127.0.0.1:5000/test/bb:single"],
        Duration::from_secs(60),
    );
    assert!(o.ok(), "{o}");
    assert_eq!(o.stdout.trim(), "hello from the registry", "{o}");
    assert!(
        o.stderr
            .starts_with("Unable to find image '127.0.0.1:5000/test/bb:single' locally\n"),
        "{o}"
    );
    assert!(
        o.stderr.contains("Status: Downloaded newer image"),
        "progress on stderr: {o}"
    );
    // Present now: no pull.
    let o = d.cli(&["run", "--rm", "127.0.0.1:5000/test/bb:single"]);
    assert!(o.ok() && o.stderr.is_empty(), "{o}");
    // --pull never: Docker's error.
    let o = d.cli(&["create", "--pull", "never", "127.0.0.1:5000/test/bb:multi"]);
    assert_eq!(o.code, 125, "{o}");
    assert!(
        o.stderr
            .contains("No such image: 127.0.0.1:5000/test/bb:multi"),
        "{o}"
    );
    // An unknown image: the pull's error, exit 125, nothing stored.
    let before = store(&d);
    let o = d.cli(&["run", "--rm", "127.0.0.1:5000/nope/x:1"]);
    assert_eq!(o.code, 125, "{o}");
    assert!(
        o.stderr
            .contains("manifest for 127.0.0.1:5000/nope/x:1 not found: manifest unknown"),
        "{o}"
    );
    assert_nothing_new(&d, &before, "run of an unknown image");
}

/// The docker CLI pointed at `d`, with its own config dir.
fn docker(d: &Daemon, config: &Path, args: &[&str]) -> Option<Out> {
    let bin = ["/usr/local/bin/docker", "/usr/bin/docker"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    let Some(bin) = bin else {
        if std::env::var("NETLOOM_REQUIRE_PRIV").as_deref() == Ok("1") {
            panic!("docker CLI missing (NETLOOM_REQUIRE_PRIV=1)");
        }
        println!("SKIP: docker CLI not installed");
        return None;
    };
    let mut c = Command::new(bin);
    c.args(args)
        .env("DOCKER_HOST", d.host_arg())
        .env("DOCKER_CONFIG", config)
        .env("DOCKER_CLI_HINTS", "false")
        .env_remove("DOCKER_CONTEXT");
    Some(run_cmd(c, Duration::from_secs(60)))
}

#[test]
fn docker_cli_pulls_runs_tags_and_untags() {
    let Some((d, _r)) = setup(None, Auth::None) else {
        return;
    };
    let cfg = d.dir.join("docker-config");
    fs::create_dir_all(&cfg).unwrap();
    let Some(o) = docker(&d, &cfg, &["pull", "127.0.0.1:5000/test/bb:single"]) else {
        return;
    };
    assert!(o.ok(), "{o}");
    assert!(
        o.stdout
            .contains("Status: Downloaded newer image for 127.0.0.1:5000/test/bb:single"),
        "{o}"
    );
    let o = docker(
        &d,
        &cfg,
        &[
            "run",
            "--rm",
            "127.0.0.1:5000/test/bb:multi",
            "-c",
            "cat /etc/platform",
        ],
    )
    .unwrap();
    assert!(o.ok(), "{o}");
    assert_eq!(o.stdout.trim(), "linux/amd64");
    assert!(
        o.stderr
            .contains("Unable to find image '127.0.0.1:5000/test/bb:multi' locally"),
        "{o}"
    );
    // --platform: create answers 404 for the amd64 image, the CLI pulls arm64.
    let o = docker(
        &d,
        &cfg,
        &[
            "run",
            "--rm",
            "--platform",
            "linux/arm64",
            "127.0.0.1:5000/test/bb:multi",
            "-c",
            "cat /etc/platform",
        ],
    )
    .unwrap();
    assert!(o.ok(), "{o}");
    assert_eq!(o.stdout.trim(), "linux/arm64", "{o}");
    // tag, then rmi of one of two tags untags only.
    let o = docker(
        &d,
        &cfg,
        &["tag", "127.0.0.1:5000/test/bb:single", "mine/bb:v1"],
    )
    .unwrap();
    assert!(o.ok(), "{o}");
    let o = docker(&d, &cfg, &["run", "--rm", "mine/bb:v1"]).unwrap();
    assert_eq!(o.stdout.trim(), "hello from the registry", "{o}");
    let o = docker(&d, &cfg, &["rmi", "mine/bb:v1"]).unwrap();
    assert!(o.ok() && o.stdout.trim() == "Untagged: mine/bb:v1", "{o}");
    let o = docker(
        &d,
        &cfg,
        &[
            "image",
            "inspect",
            "-f",
            "{{.RepoTags}}",
            "127.0.0.1:5000/test/bb:single",
        ],
    )
    .unwrap();
    assert_eq!(o.stdout.trim(), "[127.0.0.1:5000/test/bb:single]", "{o}");
    let o = docker(&d, &cfg, &["tag", "nope:1", "x:1"]).unwrap();
    assert!(!o.ok() && o.stderr.contains("No such image: nope:1"), "{o}");
    let o = docker(&d, &cfg, &["tag", "127.0.0.1:5000/test/bb:single", "Bad:1"]).unwrap();
    assert!(!o.ok(), "{o}");
    let o = docker(&d, &cfg, &["history", "127.0.0.1:5000/test/bb:single"]).unwrap();
    assert!(o.ok() && o.stdout.lines().count() == 5, "{o}");
    let o = docker(&d, &cfg, &["pull", "127.0.0.1:5000/test/bb:nope"]).unwrap();
    assert!(
        !o.ok()
            && o.stderr
                .contains("manifest for 127.0.0.1:5000/test/bb:nope not found"),
        "{o}"
    );
}

fn b64(s: &str) -> String {
    let o = sh(
        "python3",
        &[
            "-c",
            "import base64,sys; print(base64.b64encode(sys.argv[1].encode()).decode())",
            s,
        ],
    );
    o.stdout.trim().to_string()
}

fn docker_login_config(dir: &Path, reg: &str, user: &str, pass: &str) {
    fs::create_dir_all(dir).unwrap();
    let auth = b64(&format!("{user}:{pass}"));
    fs::write(
        dir.join("config.json"),
        format!(r#"{{"auths": {{"{reg}": {{"auth": "{auth}"}}}}}}"#),
    )
    .unwrap();
}

fn check_auth(d: &Daemon, what: &str) {
    let before = store(d);
    // No credentials.
    let o = d.fail(&["pull", "127.0.0.1:5000/test/bb:single"]);
    assert!(
        o.stderr.contains("pull access denied for 127.0.0.1:5000/test/bb, repository does not exist or may require 'docker login'"),
        "{what}, anonymous: {o}"
    );
    assert_nothing_new(d, &before, "anonymous pull");
    // Wrong password, as the docker CLI sends it (X-Registry-Auth).
    let bad = d.dir.join("cfg-bad");
    docker_login_config(&bad, REG, "alice", "wrong");
    let Some(o) = docker(d, &bad, &["pull", "127.0.0.1:5000/test/bb:single"]) else {
        return;
    };
    assert!(!o.ok(), "{what}, wrong password: {o}");
    assert!(
        o.stderr
            .contains("unauthorized: the credentials given for 127.0.0.1:5000 were refused"),
        "{what}: {o}"
    );
    assert_nothing_new(d, &before, "pull with a wrong password");
    // `docker login` (POST /auth) checks the credentials at the registry.
    let good = d.dir.join("cfg-good");
    fs::create_dir_all(&good).unwrap();
    let o = docker(d, &good, &["login", "-u", "alice", "-p", "wrong", REG]).unwrap();
    assert!(
        !o.ok() && o.stderr.contains("incorrect username or password"),
        "{what}: {o}"
    );
    let o = docker(d, &good, &["login", "-u", "alice", "-p", "s3cret:pw", REG]).unwrap();
    assert!(
        o.ok() && o.stdout.contains("Login Succeeded"),
        "{what}: {o}"
    );
    // Then pulls with what it stored: docker CLI and netloom CLI (both read DOCKER_CONFIG).
    let o = docker(d, &good, &["pull", "127.0.0.1:5000/test/bb:single"]).unwrap();
    assert!(o.ok(), "{what}, docker CLI with credentials: {o}");
    let mut c = Command::new(netloom_e2e::bin_dir().join("netloom"));
    c.args([
        "-H",
        &d.host_arg(),
        "run",
        "--rm",
        "127.0.0.1:5000/test/bb:multi",
    ])
    .env("DOCKER_CONFIG", &good);
    let o = run_cmd(c, Duration::from_secs(60));
    assert!(
        o.ok() && o.stdout.trim() == "hello from the registry",
        "{what}, netloom CLI: {o}"
    );
}

#[test]
fn basic_auth_and_token_auth() {
    let Some((d, r)) = setup(None, Auth::Basic("alice", "s3cret:pw")) else {
        return;
    };
    check_auth(&d, "basic auth");
    drop(r);
    drop(d);
    let Some((d, _r)) = setup(None, Auth::Token("alice", "s3cret:pw")) else {
        return;
    };
    check_auth(&d, "token auth");
}

#[test]
fn a_tampered_blob_fails_verification_and_stores_nothing() {
    let Some((d, r)) = setup(None, Auth::None) else {
        return;
    };
    let m = r.manifest(&d, "test/bb", "single");
    // The busybox layer: same size, other bytes.
    let layer = m["layers"][0]["digest"].as_str().unwrap().to_string();
    let f = r.blob_file(&layer);
    let mut data = fs::read(&f).unwrap();
    let n = data.len();
    data[n / 2] ^= 0xff;
    fs::write(&f, &data).unwrap();
    let before = store(&d);
    let o = d.cli_t(
        &["pull", "127.0.0.1:5000/test/bb:single"],
        Duration::from_secs(60),
    );
    assert!(!o.ok(), "{o}");
    assert!(
        o.all().contains(&format!(
            "layer {layer} failed verification: the registry sent content whose digest is sha256:"
        )),
        "{o}"
    );
    assert_nothing_new(&d, &before, "pull of a tampered blob");
    assert!(
        image_ids(&d)
            .iter()
            .all(|i| !i.contains(m["config"]["digest"].as_str().unwrap()))
    );
    // The config tampered: the same, before any layer is fetched.
    let cfg = m["config"]["digest"].as_str().unwrap().to_string();
    let f = r.blob_file(&cfg);
    let mut data = fs::read(&f).unwrap();
    data[0] ^= 0x01;
    fs::write(&f, &data).unwrap();
    let o = d.fail(&["pull", "127.0.0.1:5000/test/bb:single"]);
    assert!(
        o.stderr
            .contains(&format!("config {cfg} failed verification")),
        "{o}"
    );
    assert_nothing_new(&d, &before, "pull of a tampered config");
}

/// A child process killed when dropped.
struct Kid(std::process::Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `tests/registry/faulty.py PORT 5000 MODE` in `d`'s namespace.
fn faulty(d: &Daemon, port: u16, mode: &str) -> Kid {
    let log = fs::File::create(d.dir.join(format!("faulty-{port}.log"))).unwrap();
    let c = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", d.name))
        .args([
            "python3",
            registry::scripts().join("faulty.py").to_str().unwrap(),
            &port.to_string(),
            "5000",
            mode,
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    registry::wait_port(d, &format!("127.0.0.1:{port}"));
    Kid(c)
}

#[test]
fn registries_that_hang_or_reset_give_clear_errors_and_store_nothing() {
    let cfg = r#"{"registry-timeout": 2, "max-download-attempts": 2}"#;
    let Some((d, _r)) = setup(Some(cfg), Auth::None) else {
        return;
    };
    let kids = vec![
        faulty(&d, 5100, "hang"),
        faulty(&d, 5101, "reset-blob"),
        faulty(&d, 5102, "hang-blob"),
    ];
    let before = store(&d);
    // Silent from the first byte: the request's own error.
    let o = d.cli_t(
        &["pull", "127.0.0.1:5100/test/bb:single"],
        Duration::from_secs(60),
    );
    assert!(!o.ok(), "{o}");
    assert!(
        o.stderr
            .contains("registry http://127.0.0.1:5100 did not answer within 2s"),
        "{o}"
    );
    assert_nothing_new(&d, &before, "pull from a silent registry");
    // Reset half-way through the busybox layer (retried once, then the error).
    let o = d.cli_t(
        &["pull", "127.0.0.1:5101/test/bb:single"],
        Duration::from_secs(60),
    );
    assert!(!o.ok(), "{o}");
    assert!(o.stdout.contains("Retrying in 1 second"), "{o}");
    assert!(
        o.stderr.contains("download layer sha256:") && o.stderr.contains("bytes"),
        "{o}"
    );
    assert_nothing_new(&d, &before, "pull from a registry that resets");
    // Silent half-way through the layer.
    let o = d.cli_t(
        &["pull", "127.0.0.1:5102/test/bb:single"],
        Duration::from_secs(60),
    );
    assert!(!o.ok(), "{o}");
    assert!(o.stderr.contains("did not answer within 2s"), "{o}");
    assert_nothing_new(&d, &before, "pull from a registry that stalls");
    drop(kids);
    // The daemon still pulls from the real one.
    d.ok(&["pull", "127.0.0.1:5000/test/bb:single"]);
}

#[test]
fn docker_hub_mirrors_and_insecure_registries() {
    // 198.18.0.1 (the test underlay range) is no loopback address: insecure only when
    // daemon.json says so.
    let cfg = r#"{"registry-mirrors": ["http://127.0.0.1:5000"], "insecure-registries": ["198.18.0.1:5000"]}"#;
    let Some(d) = daemon(Some(cfg)) else { return };
    let o = d.netns(&["ip", "addr", "add", "198.18.0.1/32", "dev", "lo"]);
    assert!(o.ok(), "{o}");
    let o = d.netns(&["ip", "addr", "add", "198.18.0.2/32", "dev", "lo"]);
    assert!(o.ok(), "{o}");
    let r = Registry::start(&d, "main", REG, Auth::None);
    let (oci, _) = layout();
    r.push(
        &format!("oci:{}:single", oci.display()),
        "library/hubbox:latest",
        &[],
    );
    // A Docker Hub name is pulled from the mirror and keeps its Hub name.
    let o = d.cli_t(&["pull", "hubbox"], Duration::from_secs(60));
    assert!(o.ok(), "{o}");
    assert!(
        o.stdout
            .starts_with("latest: Pulling from library/hubbox\n"),
        "{o}"
    );
    assert!(
        o.stdout.ends_with("docker.io/library/hubbox:latest\n"),
        "{o}"
    );
    let v = d.ok(&[
        "image",
        "inspect",
        "-f",
        "{{.RepoTags}} {{index .RepoDigests 0}}",
        "hubbox",
    ]);
    assert!(v.starts_with("[hubbox:latest] hubbox@sha256:"), "{v}");
    // Not on the mirror: Docker Hub itself is tried next (and is out of reach here).
    let o = d.fail(&["pull", "nosuchhubimage"]);
    assert!(o.stderr.contains("https://index.docker.io"), "{o}");
    // Plain HTTP on a listed insecure registry (unverified TLS failed first).
    let r2 = Registry::start(&d, "insecure", "198.18.0.1:5000", Auth::None);
    r2.push(&format!("oci:{}:single", oci.display()), "x/bb:1", &[]);
    d.ok(&["pull", "198.18.0.1:5000/x/bb:1"]);
    // The same registry under an address not listed: HTTPS only, which fails.
    let r3 = Registry::start(&d, "secure", "198.18.0.2:5000", Auth::None);
    r3.push(&format!("oci:{}:single", oci.display()), "x/bb:1", &[]);
    let o = d.fail(&["pull", "198.18.0.2:5000/x/bb:1"]);
    assert!(o.stderr.contains("https://198.18.0.2:5000"), "{o}");
}
