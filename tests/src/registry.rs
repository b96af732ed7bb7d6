//! A real OCI distribution registry for the image tests: Debian's `docker-registry`
//! (distribution 2.8) started inside a test daemon's network namespace on a loopback
//! port, with a throwaway config and storage dir, and images pushed to it with
//! Debian's `skopeo` from an OCI layout that `tests/registry/mkimage.py` writes.
//!
//! Optional auth: basic (htpasswd, bcrypt) or token (`tests/registry/token_server.py`,
//! JWTs signed with a throwaway key). Everything stops when the [`Registry`] drops.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{Daemon, Out, run_cmd, sh};

/// What the image store holds: blob files, image roots, work directories.
pub type StoreState = (Vec<String>, Vec<String>, Vec<String>);

/// Where the helper scripts are.
pub fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("registry")
}

/// `Some(reason)` when the registry tools are missing.
pub fn missing_tools() -> Option<String> {
    for (bin, pkg) in [
        ("/usr/bin/docker-registry", "docker-registry"),
        ("/usr/bin/skopeo", "skopeo"),
        ("/usr/bin/openssl", "openssl"),
    ] {
        if !Path::new(bin).is_file() {
            return Some(format!(
                "{bin} missing (apt-get install {pkg}; scripts/deps.sh)"
            ));
        }
    }
    None
}

/// Skips (prints `SKIP:`) or, with `NETLOOM_REQUIRE_PRIV=1`, fails when the
/// registry tools are missing. True when the test can go on.
pub fn tools_or_skip() -> bool {
    match missing_tools() {
        None => true,
        Some(r) if std::env::var("NETLOOM_REQUIRE_PRIV").as_deref() == Ok("1") => {
            panic!("registry test prerequisites missing (NETLOOM_REQUIRE_PRIV=1): {r}")
        }
        Some(r) => {
            println!("SKIP: {r}");
            false
        }
    }
}

static LAYOUT: OnceLock<(PathBuf, serde_json::Value)> = OnceLock::new();

/// The test image as an OCI layout (built once per test process): tags `single`
/// (linux/amd64, 3 layers with a whiteout and an opaque dir) and `multi` (an index
/// of linux/amd64 and linux/arm64). Returns its path and the digests mkimage printed.
pub fn layout() -> (PathBuf, serde_json::Value) {
    LAYOUT
        .get_or_init(|| {
            // Layouts of earlier, dead test processes go.
            if let Ok(rd) = fs::read_dir("/tmp") {
                for e in rd.flatten() {
                    let n = e.file_name().to_string_lossy().into_owned();
                    if let Some(pid) = n.strip_prefix("nle-oci-")
                        && let Ok(pid) = pid.parse::<u32>()
                        && !Path::new(&format!("/proc/{pid}")).exists()
                    {
                        let _ = fs::remove_dir_all(e.path());
                    }
                }
            }
            let dir = PathBuf::from(format!("/tmp/nle-oci-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            let o = sh(
                "python3",
                &[
                    scripts().join("mkimage.py").to_str().unwrap(),
                    dir.to_str().unwrap(),
                ],
            );
            assert!(o.ok(), "mkimage.py: {o}");
            let v: serde_json::Value = serde_json::from_str(o.stdout.trim()).unwrap();
            (dir, v)
        })
        .clone()
}

/// Registry authentication.
#[derive(Clone, Debug)]
pub enum Auth {
    /// Open.
    None,
    /// Basic auth (htpasswd).
    Basic(&'static str, &'static str),
    /// Token auth: a token endpoint on `port + 1` issuing JWTs for this user.
    Token(&'static str, &'static str),
}

/// A running registry.
pub struct Registry {
    /// `127.0.0.1:PORT` (in the daemon's namespace).
    pub addr: String,
    /// Config, storage, logs.
    pub dir: PathBuf,
    ns: String,
    children: Vec<Child>,
    auth: Auth,
}

fn spawn_in(ns: &str, args: &[&str], log: &Path) -> Child {
    let log = fs::File::create(log).unwrap();
    Command::new("nsenter")
        .arg(format!("--net=/run/netns/{ns}"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {args:?}: {e}"))
}

/// Runs a command in a daemon's namespace.
pub fn in_ns(d: &Daemon, args: &[&str], timeout: Duration) -> Out {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/run/netns/{}", d.name)).args(args);
    run_cmd(c, timeout)
}

impl Registry {
    /// Starts a registry on `addr` (`127.0.0.1:5000`) in `d`'s namespace.
    pub fn start(d: &Daemon, name: &str, addr: &str, auth: Auth) -> Registry {
        let dir = d.dir.join(format!("registry-{name}"));
        fs::create_dir_all(dir.join("data")).unwrap();
        let mut children = Vec::new();
        let auth_yaml = match &auth {
            Auth::None => String::new(),
            Auth::Basic(user, pass) => {
                let o = sh(
                    "python3",
                    &[
                        "-W",
                        "ignore",
                        "-c",
                        "import crypt,sys; print(sys.argv[1] + ':' + crypt.crypt(sys.argv[2], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))",
                        user,
                        pass,
                    ],
                );
                assert!(o.ok(), "htpasswd: {o}");
                fs::write(dir.join("htpasswd"), &o.stdout).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: netloom-test\n    path: {}\n",
                    dir.join("htpasswd").display()
                )
            }
            Auth::Token(user, pass) => {
                let (key, cert) = (dir.join("token.key"), dir.join("token.crt"));
                let o = sh(
                    "openssl",
                    &[
                        "req",
                        "-x509",
                        "-newkey",
                        "rsa:2048",
                        "-nodes",
                        "-days",
                        "2",
                        "-subj",
                        "/CN=netloom-test-token",
                        "-keyout",
                        key.to_str().unwrap(),
                        "-out",
                        cert.to_str().unwrap(),
                    ],
                );
                assert!(o.ok(), "openssl: {o}");
                let (host, port) = addr.rsplit_once(':').unwrap();
                let taddr = format!("{host}:{}", port.parse::<u16>().unwrap() + 1);
                let c = spawn_in(
                    &d.name,
                    &[
                        "python3",
                        scripts().join("token_server.py").to_str().unwrap(),
                        &taddr,
                        key.to_str().unwrap(),
                        cert.to_str().unwrap(),
                        user,
                        pass,
                        "netloom-test",
                        "netloom-test-issuer",
                    ],
                    &dir.join("token.log"),
                );
                children.push(c);
                wait_port(d, &taddr);
                format!(
                    "auth:\n  token:\n    realm: http://{taddr}/token\n    service: netloom-test\n    issuer: netloom-test-issuer\n    rootcertbundle: {}\n",
                    cert.display()
                )
            }
        };
        let cfg = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{auth_yaml}",
            dir.join("data").display()
        );
        fs::write(dir.join("config.yml"), cfg).unwrap();
        let c = spawn_in(
            &d.name,
            &[
                "/usr/bin/docker-registry",
                "serve",
                dir.join("config.yml").to_str().unwrap(),
            ],
            &dir.join("registry.log"),
        );
        children.push(c);
        wait_port(d, addr);
        Registry {
            addr: addr.to_string(),
            dir,
            ns: d.name.clone(),
            children,
            auth,
        }
    }

    /// The registry's log.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// Pushes `src` (a skopeo source such as `oci:DIR:single`) as `repo:tag`, with
    /// skopeo's blob cache on a private tmpfs (so it never reuses blobs of another run).
    pub fn push(&self, src: &str, dest: &str, extra: &[&str]) {
        let mut args: Vec<String> =
            vec!["copy".into(), "-q".into(), "--dest-tls-verify=false".into()];
        match &self.auth {
            Auth::None => {}
            Auth::Basic(u, p) | Auth::Token(u, p) => args.push(format!("--dest-creds={u}:{p}")),
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(src.to_string());
        args.push(format!("docker://{}/{dest}", self.addr));
        let script = format!(
            "mkdir -p /var/lib/containers/cache && mount -t tmpfs none /var/lib/containers/cache && exec skopeo {}",
            args.iter()
                .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.ns))
            .args(["unshare", "-m", "sh", "-c", &script]);
        let o = run_cmd(c, Duration::from_secs(120));
        assert!(
            o.ok(),
            "skopeo push {src} -> {dest}: {o}\nregistry log:\n{}",
            self.log()
        );
    }

    /// The registry's answer for a manifest (accepting every manifest type).
    pub fn manifest(&self, d: &Daemon, repo: &str, reference: &str) -> serde_json::Value {
        let mut args = vec![
            "curl".to_string(),
            "-sf".into(),
            "-H".into(),
            "Accept: application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json".into(),
        ];
        if let Auth::Basic(u, p) = &self.auth {
            args.push("-u".into());
            args.push(format!("{u}:{p}"));
        }
        args.push(format!(
            "http://{}/v2/{repo}/manifests/{reference}",
            self.addr
        ));
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = in_ns(d, &a, Duration::from_secs(10));
        assert!(o.ok(), "curl manifest: {o}");
        serde_json::from_str(&o.stdout).unwrap()
    }

    /// The file holding a blob in the registry's storage.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

/// Waits until something listens on `addr` in `d`'s namespace.
pub fn wait_port(d: &Daemon, addr: &str) {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let o = in_ns(
            d,
            &[
                "python3",
                "-c",
                &format!("import socket; socket.create_connection(('{host}', {port}), 1)"),
            ],
            Duration::from_secs(5),
        );
        if o.ok() {
            return;
        }
        assert!(Instant::now() < until, "nothing listens on {addr}: {o}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Where the main test registry listens (in the daemon's namespace).
pub const REG: &str = "127.0.0.1:5000";

/// A daemon (with `daemon.json` = `config`), or `None` after a SKIP.
pub fn daemon(config: Option<&str>) -> Option<Daemon> {
    if !tools_or_skip() {
        return None;
    }
    crate::daemon_with_config(config)
}

/// A daemon with a registry holding `test/bb:single` and `test/bb:multi`.
pub fn setup(config: Option<&str>, auth: Auth) -> Option<(Daemon, Registry)> {
    let d = daemon(config)?;
    let r = Registry::start(&d, "main", REG, auth);
    let (oci, _) = layout();
    r.push(
        &format!("oci:{}:single", oci.display()),
        "test/bb:single",
        &[],
    );
    r.push(
        &format!("oci:{}:multi", oci.display()),
        "test/bb:multi",
        &["--all"],
    );
    Some((d, r))
}

/// Files under a directory (recursively), as paths relative to it.
pub fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        if let Ok(rd) = fs::read_dir(&p) {
            for e in rd.flatten() {
                if e.path().is_dir() {
                    stack.push(e.path());
                } else {
                    out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
                }
            }
        }
    }
    out.sort();
    out
}

/// What the image store holds: blobs, image roots, work directories.
pub fn store(d: &Daemon) -> StoreState {
    let root = d.dir.join("data/images");
    let dirs = |p: PathBuf| -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(p)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let images = dirs(root.clone())
        .into_iter()
        .filter(|n| n != "blobs" && n != "tmp")
        .collect();
    (files(&root.join("blobs")), images, dirs(root.join("tmp")))
}

/// Asserts that a failed operation left the store as it was, with no work directory.
#[track_caller]
pub fn assert_nothing_new(d: &Daemon, before: &StoreState, what: &str) {
    let after = store(d);
    assert_eq!(&after.0, &before.0, "{what}: blobs changed");
    assert_eq!(&after.1, &before.1, "{what}: image roots changed");
    assert!(after.2.is_empty(), "{what}: work dirs left: {:?}", after.2);
}
