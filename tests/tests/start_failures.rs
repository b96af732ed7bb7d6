//! A container whose start fails, with `--rm`: every way a start can fail ends the
//! client at once with Docker's exit code and the daemon's error, and removes the
//! container (the docker CLI waits for that removal); a signal to the client ends it.

use std::process::Stdio;
use std::time::{Duration, Instant};

use netloom_e2e::dockercli::{Docker, docker_bin};
use netloom_e2e::{Daemon, Out, daemon_or_skip, wait_for};

/// Every container the daemon knows (names).
fn names(d: &Daemon) -> Vec<String> {
    d.ok(&["ps", "-a", "--format", "{{.Names}}"])
        .lines()
        .map(str::to_string)
        .collect()
}

/// One way to fail: the flags before the image, the command, the exit code both CLIs
/// give, and a piece of the daemon's message.
struct Case {
    what: &'static str,
    flags: Vec<String>,
    cmd: Vec<&'static str>,
    code: i32,
    message: String,
}

fn case(what: &'static str, flags: &[&str], cmd: &[&'static str], code: i32, msg: &str) -> Case {
    Case {
        what,
        flags: flags.iter().map(|f| f.to_string()).collect(),
        cmd: cmd.to_vec(),
        code,
        message: msg.to_string(),
    }
}

/// `run --rm [-d] FLAGS busybox CMD` with netloom's CLI (`dk: None`) or docker's.
fn run(d: &Daemon, dk: Option<&Docker<'_>>, c: &Case, detach: bool) -> Out {
    let mut a: Vec<&str> = vec!["run", "--rm"];
    if detach {
        a.push("-d");
    }
    a.extend(c.flags.iter().map(String::as_str));
    a.push("busybox");
    a.extend(c.cmd.iter().copied());
    match dk {
        None => d.cli_t(&a, Duration::from_secs(30)),
        Some(dk) => dk.run_t(&a, Duration::from_secs(30)),
    }
}

/// Checks one failed `run --rm`: no hang, the exit code, the message (with docker's
/// `docker: Error response from daemon:` prefix for the docker CLI), nothing left.
#[track_caller]
fn check(d: &Daemon, c: &Case, cli: &str, o: &Out, before: &[String]) {
    assert_ne!(o.code, -999, "{}: {cli} run --rm hung: {o}", c.what);
    assert_eq!(o.code, c.code, "{}: {cli} exit code: {o}", c.what);
    let prefix = if cli == "docker" {
        "docker: Error response from daemon: "
    } else {
        "Error response from daemon: "
    };
    assert!(
        o.stderr
            .lines()
            .any(|l| l.starts_with(prefix) && l.contains(&c.message)),
        "{}: {cli} says {prefix}…{}…: {o}",
        c.what,
        c.message
    );
    let after = names(d);
    assert_eq!(after, before, "{}: {cli} run --rm left a container", c.what);
}

#[test]
fn run_rm_whose_start_fails_is_removed_and_ends_the_client() {
    let d = daemon_or_skip!();
    let dk = docker_bin().map(|b| Docker::new(&d, b));
    if dk.is_none() {
        println!("SKIP (docker CLI half): no docker CLI binary");
    }
    d.ok(&["network", "create", "--subnet", "10.235.0.0/24", "sf"]);
    d.run_sleeper(
        "holder",
        &["--network", "sf", "--ip", "10.235.0.50", "-p", "18090:80"],
    );
    // A host listener on a port in the daemon's namespace.
    let mut listener = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &d.name,
            "/bin/busybox",
            "nc",
            "-l",
            "-p",
            "18091",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn nc");
    assert!(
        wait_for(Duration::from_secs(5), || d
            .netns(&["ss", "-Htln", "sport = :18091"])
            .stdout
            .contains("18091")),
        "nc listening"
    );
    let cases = [
        case(
            "host port allocated to a container",
            &["-p", "18090:80"],
            &["true"],
            125,
            "Bind for 0.0.0.0:18090 failed: port is already allocated",
        ),
        case(
            "host port held by a host process",
            &["-p", "18091:80"],
            &["true"],
            125,
            "18091",
        ),
        case(
            "pinned --ip in use",
            &["--network", "sf", "--ip", "10.235.0.50"],
            &["true"],
            125,
            "address 10.235.0.50 is already in use",
        ),
        case(
            "missing command",
            &[],
            &["no-such-cmd"],
            127,
            "exec: \"no-such-cmd\": executable file not found in $PATH",
        ),
        case(
            "command not executable",
            &[],
            &["/etc/hostname"],
            126,
            "permission denied",
        ),
        case(
            "mount the runtime refuses (a file onto a directory)",
            &["-v", "/etc/os-release:/bin"],
            &["true"],
            125,
            "not a directory",
        ),
        case(
            "bind source that cannot be created",
            &["-v", "/proc/no-such-dir/x:/x"],
            &["true"],
            125,
            "cannot create bind source /proc/no-such-dir/x",
        ),
        case(
            "link to a container that does not run",
            &["--link", "stopped:db"],
            &["true"],
            125,
            "Cannot link to a non running container: /stopped AS /",
        ),
        case(
            "network of a container that does not run",
            &["--network", "container:stopped"],
            &["true"],
            125,
            "cannot join network of a non running container: ",
        ),
    ];
    d.ok(&["create", "--name", "stopped", "busybox", "true"]);
    let before = names(&d);
    for c in &cases {
        for detach in [false, true] {
            let o = run(&d, None, c, detach);
            check(&d, c, "netloom", &o, &before);
            if let Some(dk) = &dk {
                let o = run(&d, Some(dk), c, detach);
                check(&d, c, "docker", &o, &before);
            }
        }
    }
    let _ = listener.kill();
    let _ = listener.wait();
    // The daemon removes it by itself (not the client): the API, create then start.
    let (code, body) = d.api(
        "POST",
        "/containers/create?name=api-rm",
        Some(r#"{"Image":"busybox","Cmd":["no-such-cmd"],"HostConfig":{"AutoRemove":true}}"#),
    );
    assert_eq!(code, 201, "{body}");
    let (code, body) = d.api("POST", "/containers/api-rm/start", None);
    assert!((400..500).contains(&code), "{code} {body}");
    assert_eq!(names(&d), before, "the daemon removed api-rm");
}

/// A start that fails before anything is made (the network went away between create and
/// start) removes an `--rm` container too; a container without `--rm` stays, created.
#[test]
fn early_start_failure_removes_an_rm_container() {
    let d = daemon_or_skip!();
    d.ok(&["network", "create", "gone"]);
    d.ok(&[
        "create",
        "--rm",
        "--name",
        "e1",
        "--network",
        "gone",
        "busybox",
        "true",
    ]);
    d.ok(&[
        "create",
        "--name",
        "e2",
        "--network",
        "gone",
        "busybox",
        "true",
    ]);
    d.ok(&["network", "rm", "gone"]);
    let o = d.fail(&["start", "e1"]);
    assert!(o.stderr.contains("network"), "{o}");
    let o = d.fail(&["start", "e2"]);
    assert!(o.stderr.contains("network"), "{o}");
    assert_eq!(names(&d), vec!["e2".to_string()], "e1 removed, e2 kept");
    if let Some(bin) = docker_bin() {
        let dk = Docker::new(&d, bin);
        d.ok(&["network", "create", "gone2"]);
        dk.ok(&[
            "create",
            "--rm",
            "--name",
            "e3",
            "--network",
            "gone2",
            "busybox",
            "true",
        ]);
        d.ok(&["network", "rm", "gone2"]);
        let o = dk.fail(&["start", "e3"]);
        assert!(o.stderr.contains("Error response from daemon"), "{o}");
        assert_eq!(names(&d), vec!["e2".to_string()], "e3 removed");
    }
}

/// SIGTERM to a client of `run --rm` ends the client: the signal goes to the container
/// (as docker's sig-proxy does), which ends (its main process is PID 1 there and handles
/// TERM), is removed, and the client exits with its status (143).
#[test]
fn sigterm_to_run_client_ends_it() {
    let d = daemon_or_skip!();
    let dk = docker_bin().map(|b| Docker::new(&d, b));
    let mut clients = vec![("netloom", {
        let mut c = std::process::Command::new(netloom_e2e::bin_dir().join("netloom"));
        c.arg("-H").arg(d.host_arg());
        c
    })];
    if let Some(dk) = &dk {
        clients.push(("docker", dk.command(&[])));
    }
    for (i, (cli, mut cmd)) in clients.into_iter().enumerate() {
        let name = format!("sig{i}");
        cmd.args([
            "run",
            "--rm",
            "--name",
            &name,
            "busybox",
            "sh",
            "-c",
            "trap 'exit 143' TERM; sleep 100000 & wait",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let mut child = cmd.spawn().expect("spawn client");
        assert!(
            wait_for(Duration::from_secs(20), || {
                d.cli(&["inspect", "-f", "{{.State.Running}}", &name])
                    .stdout
                    .trim()
                    == "true"
            }),
            "{cli}: container running"
        );
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let until = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Ok(Some(s)) = child.try_wait() {
                break Some(s);
            }
            if Instant::now() > until {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let status =
            status.unwrap_or_else(|| panic!("{cli}: client still running 15 s after SIGTERM"));
        assert_eq!(status.code(), Some(143), "{cli}: exit status {status:?}");
        assert!(
            wait_for(Duration::from_secs(10), || !names(&d).contains(&name)),
            "{cli}: the container was removed"
        );
    }
}
