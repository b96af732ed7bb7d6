//! Debian's docker-compose 1.29 driving netloomd through a project's whole life, as a
//! user would: up → edit the file → up (recreate) → scale → restart → run → exec →
//! logs → events → top → down -v, on a project with two networks, a network alias, a
//! published port, a bind mount and a named volume. After each step it checks what a
//! user sees: services resolving each other by name (and only on the networks they
//! share), the published port answering through `nc`, the volume's data, and nothing
//! left after `down -v` (containers, networks, volumes).
//!
//! `docker-compose exec` and `run` call the docker CLI, which must be installed too.
//! A second test checks `restart:` policies and `depends_on: condition: service_healthy`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use netloom_e2e::{Daemon, Out, daemon_or_skip, run_cmd, wait_for};

fn which(prog: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(prog))
            .find(|p| p.is_file())
    })
}

/// docker-compose (and the docker CLI it calls), or a loud skip (a failure with
/// `NETLOOM_REQUIRE_PRIV=1`).
fn compose_tools() -> Option<PathBuf> {
    let missing = match (which("docker-compose"), which("docker")) {
        (Some(c), Some(_)) => return Some(c),
        (None, _) => "docker-compose not installed (Debian: docker-compose)",
        (_, None) => "docker CLI not installed (Debian: docker.io)",
    };
    if std::env::var("NETLOOM_REQUIRE_PRIV").as_deref() == Ok("1") {
        panic!("compose prerequisites missing (NETLOOM_REQUIRE_PRIV=1): {missing}");
    }
    println!("SKIP: {missing}");
    None
}

/// One compose project on one daemon.
struct Project<'a> {
    d: &'a Daemon,
    bin: PathBuf,
    dir: PathBuf,
    name: &'static str,
}

impl Project<'_> {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.current_dir(&self.dir)
            .args(["-p", self.name, "--ansi", "never"])
            .args(args)
            .env("DOCKER_HOST", self.d.host_arg())
            .env("DOCKER_CONFIG", self.dir.join(".docker"))
            .env("DOCKER_CLI_HINTS", "false")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_API_VERSION")
            .env_remove("COMPOSE_FILE")
            .env_remove("COMPOSE_PROJECT_NAME")
            .env_remove("COMPOSE_INTERACTIVE_NO_CLI");
        c
    }

    /// `docker-compose ARGS` (90 s timeout).
    fn run(&self, args: &[&str]) -> Out {
        run_cmd(self.cmd(args), Duration::from_secs(90))
    }

    /// Must succeed; returns stdout + stderr (compose reports progress on stderr).
    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.ok(),
            "docker-compose {args:?} failed: {o}\ndaemon log tail:\n{}",
            tail(&self.d.log(), 40)
        );
        o.all()
    }

    fn write_compose(&self, version: &str) {
        std::fs::write(self.dir.join("docker-compose.yml"), compose_file(version))
            .expect("write docker-compose.yml");
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The project: `web` on both networks (alias `www` on front) with the published
/// port, the bind-mounted site and the volume; `db` on back only, writing the volume.
/// Both stop at once on SIGTERM (`trap`), so stops take no grace period.
fn compose_file(version: &str) -> String {
    format!(
        r#"services:
  web:
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; echo web-{version} started; httpd -f -p 80 -h /site & wait"]
    ports:
      - "8080:80"
    volumes:
      - ./site:/site:ro
      - data:/data
    networks:
      front:
        aliases: [www]
      back: {{}}
    restart: unless-stopped
    healthcheck:
      test: ["CMD-SHELL", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 1 127.0.0.1 80 | grep -q 200"]
      interval: 300ms
      retries: 20
    depends_on:
      db:
        condition: service_healthy
  db:
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; echo db > /data/db.txt; echo db started; sleep 100000 & wait"]
    volumes:
      - data:/data
    networks:
      - back
    restart: always
    healthcheck:
      test: ["CMD", "test", "-f", "/data/db.txt"]
      interval: 300ms
      retries: 20
networks:
  front: {{}}
  back: {{}}
volumes:
  data: {{}}
"#
    )
}

/// IPv4 addresses busybox `nslookup NAME` prints inside container `c` (empty if the
/// name does not resolve there).
fn resolve(d: &Daemon, c: &str, name: &str) -> Vec<String> {
    let o = d.exec(c, &format!("nslookup -type=a {name} 127.0.0.11"));
    if !o.ok() {
        return Vec::new();
    }
    let mut after_name = false;
    let mut v = Vec::new();
    for l in o.stdout.lines().map(str::trim) {
        if l.starts_with("Name:") {
            after_name = true;
        } else if after_name && let Some(a) = l.strip_prefix("Address:") {
            v.push(a.split_whitespace().next().unwrap_or("").to_string());
        }
    }
    v.sort();
    v
}

/// The page on the published port, fetched with nc in the daemon's namespace.
#[track_caller]
fn page(d: &Daemon, want: &str) {
    let mut last = None;
    let got = wait_for(Duration::from_secs(10), || {
        let o = d.netns(&[
            "/bin/busybox",
            "sh",
            "-c",
            "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 3 127.0.0.1 8080",
        ]);
        let good = o.stdout.contains("200 OK") && o.stdout.trim_end().ends_with(want);
        last = Some(o);
        good
    });
    assert!(got, "page {want:?} on published port 8080: {last:?}");
}

/// Names of the project's containers (running or not), sorted.
fn containers(d: &Daemon) -> Vec<String> {
    let mut v: Vec<String> = d
        .ok(&["ps", "-a", "--format", "{{.Names}}"])
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

fn id_of(d: &Daemon, c: &str) -> String {
    d.ok(&["inspect", "-f", "{{.Id}}", c])
}

fn started_at(d: &Daemon, c: &str) -> String {
    d.ok(&["inspect", "-f", "{{.State.StartedAt}}", c])
}

#[test]
fn compose_project_lifecycle() {
    let Some(bin) = compose_tools() else { return };
    let d = daemon_or_skip!();
    let dir = d.dir.join("shop");
    std::fs::create_dir_all(dir.join("site")).expect("mkdir site");
    std::fs::create_dir_all(dir.join(".docker")).expect("mkdir .docker");
    std::fs::write(dir.join("site/index.html"), "hello v1\n").expect("write page");
    let p = Project {
        d: &d,
        bin,
        dir: dir.clone(),
        name: "shop",
    };

    // up: networks, volume, containers; names resolve on shared networks only.
    p.write_compose("v1");
    let out = p.ok(&["up", "-d"]);
    assert!(out.contains("Creating network \"shop_front\""), "{out}");
    assert!(out.contains("Creating volume \"shop_data\""), "{out}");
    assert_eq!(containers(&d), ["shop_db_1", "shop_web_1"]);
    let web_back = d.ip("shop_web_1", "shop_back");
    let web_front = d.ip("shop_web_1", "shop_front");
    assert_eq!(
        resolve(&d, "shop_web_1", "db"),
        [d.ip("shop_db_1", "shop_back")]
    );
    assert_eq!(
        resolve(&d, "shop_db_1", "web"),
        std::slice::from_ref(&web_back)
    );
    assert_eq!(
        resolve(&d, "shop_web_1", "www"),
        std::slice::from_ref(&web_front)
    );
    assert!(
        resolve(&d, "shop_db_1", "www").is_empty(),
        "the alias lives on front, which db is not on"
    );
    page(&d, "hello v1");
    // The file's health checks and restart policies (up waited for db to be healthy).
    let f = |c: &str, t: &str| d.ok(&["inspect", "-f", t, c]);
    assert_eq!(f("shop_db_1", "{{.State.Health.Status}}"), "healthy");
    assert!(
        wait_for(Duration::from_secs(10), || f(
            "shop_web_1",
            "{{.State.Health.Status}}"
        ) == "healthy"),
        "web's check fetches its own page"
    );
    assert_eq!(
        f("shop_db_1", "{{.HostConfig.RestartPolicy.Name}}"),
        "always"
    );
    assert_eq!(
        f("shop_web_1", "{{.HostConfig.RestartPolicy.Name}}"),
        "unless-stopped"
    );
    assert!(wait_for(Duration::from_secs(5), || {
        d.exec("shop_web_1", "cat /data/db.txt").stdout.trim() == "db"
    }));
    let vols = d.ok(&["volume", "ls", "-q"]);
    assert_eq!(vols, "shop_data");
    let ps = p.ok(&["ps"]);
    assert!(
        ps.contains("shop_web_1") && ps.contains("0.0.0.0:8080->80/tcp"),
        "{ps}"
    );

    // Edit the file and the page, then up: web is recreated (same name, new
    // container), db is left alone; the names follow the new container.
    let old_web = id_of(&d, "shop_web_1");
    let old_db = id_of(&d, "shop_db_1");
    p.write_compose("v2");
    std::fs::write(dir.join("site/index.html"), "hello v2\n").expect("write page");
    let out = p.ok(&["up", "-d"]);
    assert!(out.contains("Recreating shop_web_1"), "{out}");
    assert!(out.contains("shop_db_1 is up-to-date"), "{out}");
    assert_eq!(
        containers(&d),
        ["shop_db_1", "shop_web_1"],
        "no renamed leftover"
    );
    assert_ne!(id_of(&d, "shop_web_1"), old_web);
    assert_eq!(id_of(&d, "shop_db_1"), old_db);
    let web_back = d.ip("shop_web_1", "shop_back");
    assert_eq!(
        resolve(&d, "shop_db_1", "web"),
        std::slice::from_ref(&web_back)
    );
    assert_eq!(
        resolve(&d, "shop_db_1", "shop_web_1"),
        std::slice::from_ref(&web_back),
        "the container name resolves too"
    );
    page(&d, "hello v2");
    assert_eq!(
        d.exec_ok("shop_web_1", "cat /data/db.txt").trim(),
        "db",
        "the volume came along"
    );
    let out = p.ok(&["up", "-d", "--force-recreate", "web"]);
    assert!(out.contains("Recreating shop_web_1"), "{out}");
    page(&d, "hello v2");

    // scale: three db containers behind one name.
    p.ok(&["up", "-d", "--scale", "db=3"]);
    assert_eq!(
        containers(&d),
        ["shop_db_1", "shop_db_2", "shop_db_3", "shop_web_1"]
    );
    let mut dbs: Vec<String> = ["shop_db_1", "shop_db_2", "shop_db_3"]
        .iter()
        .map(|c| d.ip(c, "shop_back"))
        .collect();
    dbs.sort();
    assert_eq!(resolve(&d, "shop_web_1", "db"), dbs);
    let out = p.ok(&["scale", "db=1"]);
    assert!(out.contains("Stopping and removing shop_db_3"), "{out}");
    assert_eq!(containers(&d), ["shop_db_1", "shop_web_1"]);
    assert_eq!(
        resolve(&d, "shop_web_1", "db"),
        [d.ip("shop_db_1", "shop_back")]
    );

    // restart: both services run again, names and the port answer again.
    let before = started_at(&d, "shop_web_1");
    let out = p.ok(&["restart", "-t", "2"]);
    assert!(
        out.contains("Restarting shop_web_1") && out.contains("Restarting shop_db_1"),
        "{out}"
    );
    assert_ne!(started_at(&d, "shop_web_1"), before);
    page(&d, "hello v2");
    assert_eq!(
        resolve(&d, "shop_web_1", "db"),
        [d.ip("shop_db_1", "shop_back")]
    );

    // db's policy starts it again after its process dies; its name follows.
    let pid = f("shop_db_1", "{{.State.Pid}}");
    assert!(netloom_e2e::sh("kill", &["-9", &pid]).ok());
    assert!(wait_for(Duration::from_secs(15), || {
        f("shop_db_1", "{{.State.Status}} {{.RestartCount}}") == "running 1"
    }));
    assert_eq!(
        resolve(&d, "shop_web_1", "db"),
        [d.ip("shop_db_1", "shop_back")]
    );

    // run: a one-off container of db, on its networks, with its volume, removed after.
    let out = p.ok(&[
        "run",
        "--rm",
        "-T",
        "db",
        "sh",
        "-c",
        "cat /data/db.txt; nslookup web 127.0.0.11 >/dev/null && echo web-resolves",
    ]);
    assert!(
        out.contains("db\n") && out.contains("web-resolves"),
        "{out}"
    );
    assert_eq!(
        containers(&d),
        ["shop_db_1", "shop_web_1"],
        "run --rm left nothing"
    );

    // exec: into the running service.
    let o = p.run(&[
        "exec",
        "-T",
        "web",
        "sh",
        "-c",
        "cat /site/index.html /data/db.txt",
    ]);
    assert!(o.ok(), "{o}");
    assert_eq!(o.stdout.trim(), "hello v2\ndb");

    // logs: what the recreated web printed.
    let out = p.ok(&["logs", "web"]);
    assert!(
        out.contains("web-v2 started") && !out.contains("web-v1"),
        "{out}"
    );
    let out = p.ok(&["logs", "--tail=1", "db"]);
    assert!(out.contains("db started"), "{out}");

    // events: the project's container events while db restarts.
    let mut ev = p.cmd(&["events", "--json"]);
    ev.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = ev.spawn().expect("spawn docker-compose events");
    std::thread::sleep(Duration::from_secs(3));
    p.ok(&["restart", "-t", "1", "db"]);
    std::thread::sleep(Duration::from_secs(1));
    let _ = child.kill();
    let out = child.wait_with_output().expect("events output");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut actions = Vec::new();
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert_eq!(v["service"], "db", "{l}");
        assert_eq!(v["type"], "container", "{l}");
        actions.push(v["action"].as_str().unwrap_or_default().to_string());
    }
    for a in ["kill", "die", "stop", "start", "restart"] {
        assert!(actions.iter().any(|x| x == a), "no {a} event: {text}");
    }

    // top: the processes of each service.
    let out = p.ok(&["top", "web"]);
    assert!(
        out.contains("PID") && out.contains("httpd -f -p 80 -h /site"),
        "{out}"
    );

    // down -v: nothing left but the predefined networks; the host's bind source stays.
    let out = p.ok(&["down", "-v"]);
    assert!(out.contains("Removing volume shop_data"), "{out}");
    assert!(containers(&d).is_empty());
    assert_eq!(d.ok(&["volume", "ls", "-q"]), "");
    let mut nets: Vec<String> = d
        .ok(&["network", "ls", "--format", "{{.Name}}"])
        .lines()
        .map(str::to_string)
        .collect();
    nets.sort();
    assert_eq!(nets, ["bridge", "host", "none"]);
    assert!(Path::new(&dir.join("site/index.html")).exists());
    let o = d.netns(&[
        "/bin/busybox",
        "sh",
        "-c",
        "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 1 127.0.0.1 8080",
    ]);
    assert!(!o.stdout.contains("200 OK"), "port 8080 still answers: {o}");
}

const RESTART_COMPOSE: &str = r#"
services:
  db:
    image: busybox
    command: sh -c "sleep 1; touch /tmp/ready; exec sleep 1000"
    restart: always
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 200ms
      retries: 20
  web:
    image: busybox
    command: sleep 1000
    restart: on-failure:2
    stop_grace_period: 1s
    depends_on:
      db:
        condition: service_healthy
"#;

#[test]
fn compose_restart_and_service_healthy() {
    let bin = std::path::Path::new("/usr/bin/docker-compose");
    if !bin.is_file() {
        if std::env::var("NETLOOM_REQUIRE_PRIV").as_deref() == Ok("1") {
            panic!("docker-compose missing (scripts/deps.sh installs it)");
        }
        println!("SKIP: docker-compose not installed");
        return;
    }
    let d = daemon_or_skip!();
    let dir = d.dir.join("compose");
    std::fs::create_dir_all(&dir).unwrap_or_default();
    std::fs::write(dir.join("docker-compose.yml"), RESTART_COMPOSE).unwrap_or_default();
    let compose = |args: &[&str]| {
        let mut c = std::process::Command::new(bin);
        c.current_dir(&dir)
            .args(["-p", "walk"])
            .args(args)
            .env("DOCKER_HOST", d.host_arg())
            .env("DOCKER_CONFIG", d.dir.join("docker-config"))
            .env_remove("DOCKER_API_VERSION");
        run_cmd(c, Duration::from_secs(120))
    };
    let o = compose(&["up", "-d"]);
    assert!(o.ok(), "docker-compose up: {o}\n{}", d.log());
    let f = |c: &str, t: &str| d.ok(&["inspect", "-f", t, c]);
    // `up` returned only once db was healthy (web depends on it).
    let health = f("walk_db_1", "{{json .State.Health}}");
    assert!(health.contains("\"Status\":\"healthy\""), "{health}");
    assert_eq!(f("walk_web_1", "{{.State.Status}}"), "running");
    assert_eq!(
        f("walk_db_1", "{{json .HostConfig.RestartPolicy}}"),
        r#"{"Name":"always","MaximumRetryCount":0}"#
    );
    assert_eq!(
        f("walk_web_1", "{{json .HostConfig.RestartPolicy}}"),
        r#"{"Name":"on-failure","MaximumRetryCount":2}"#
    );
    // The policy works for compose's containers too.
    let pid = f("walk_db_1", "{{.State.Pid}}");
    assert!(netloom_e2e::sh("kill", &["-9", &pid]).ok());
    assert!(wait_for(Duration::from_secs(15), || {
        f("walk_db_1", "{{.State.Status}} {{.RestartCount}}") == "running 1"
    }));
    let o = compose(&["down"]);
    assert!(o.ok(), "docker-compose down: {o}");
    assert!(d.ok(&["ps", "-aq"]).is_empty());
}
