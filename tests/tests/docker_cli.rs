//! The real `docker` CLI (28.x) driving netloomd through `DOCKER_HOST`.
//!
//! Each test starts its own daemon (own network namespace, own socket) and a
//! private `DOCKER_CONFIG`, so the tests run in parallel and never touch
//! `~/.docker`.  A missing docker binary is a loud skip, never a failure.
//! Every CLI call has a timeout: a hang is reported as exit -999.

use std::process::Command;
use std::time::Duration;

use netloom_e2e::dockercli::{Docker, docker_bin, tail};
use netloom_e2e::{busybox_tar, daemon_or_skip, run_cmd, wait_for};

/// Daemon + docker CLI, or a skip.
macro_rules! setup {
    ($d:ident, $dk:ident) => {
        let Some(bin) = docker_bin() else {
            println!("SKIP: no docker CLI binary (/usr/local/bin/docker or docker on PATH)");
            return;
        };
        let $d = daemon_or_skip!();
        let $dk = Docker::new(&$d, bin);
    };
}

/// Interface names from `ip -o link` / `ip -o addr` output.
fn ifaces(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split(':').nth(1)?.split_whitespace().next())
        .map(|n| n.split('@').next().unwrap_or("").to_string())
        .filter(|n| !n.is_empty())
        .collect()
}

/// The seed's single-host walkthrough, with docker commands only.
#[test]
fn docker_walkthrough_single_host() {
    setup!(d, dk);
    let id = dk.ok(&["network", "create", "localnet"]);
    assert_eq!(id.len(), 64, "network create prints the id: {id:?}");

    let cid = dk.sleeper("c1", &["--network", "localnet"]);
    assert_eq!(cid.len(), 64, "run -d prints the id: {cid:?}");

    let j = dk.ok(&[
        "network",
        "inspect",
        "localnet",
        "--format",
        "{{json .Containers}}",
    ]);
    let v: serde_json::Value =
        serde_json::from_str(&j).unwrap_or_else(|e| panic!("bad json {j:?}: {e}"));
    let ep = v
        .get(&cid)
        .unwrap_or_else(|| panic!("c1 ({cid}) not in .Containers: {j}"));
    assert_eq!(ep["Name"], "c1", "{j}");
    let ip4 = ep["IPv4Address"].as_str().unwrap_or("");
    assert!(
        ip4.contains('.') && ip4.contains('/'),
        "IPv4Address with prefix: {j}"
    );

    let o = dk.run_t(
        &[
            "run",
            "--rm",
            "--network",
            "localnet",
            "busybox",
            "ping",
            "-c",
            "1",
            "-W",
            "3",
            "c1",
        ],
        Duration::from_secs(40),
    );
    assert!(o.ok(), "ping c1 by name: {o}");
    assert!(o.stdout.contains("1 packets received"), "{o}");

    dk.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "localnet",
        "-p",
        "5000:80",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /w && echo hello > /w/index.html && httpd -f -p 80 -h /w",
    ]);
    let fetch = || {
        d.netns(&[
            "/bin/busybox",
            "sh",
            "-c",
            "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 3 127.0.0.1 5000",
        ])
    };
    let mut last = None;
    let got = wait_for(Duration::from_secs(10), || {
        let o = fetch();
        let good = o.stdout.contains("200 OK") && o.stdout.trim_end().ends_with("hello");
        last = Some(o);
        good
    });
    assert!(got, "page through host port 5000: {last:?}");

    assert_eq!(dk.ok(&["port", "web"]), "80/tcp -> 0.0.0.0:5000");

    let o = dk.run_t(
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "ip",
            "-o",
            "link",
        ],
        Duration::from_secs(40),
    );
    assert!(o.ok(), "run --network none: {o}");
    let names = ifaces(&o.stdout);
    assert!(names.contains(&"lo".to_string()), "{o}");
    assert!(
        !names.contains(&"eth0".to_string()),
        "no eth0 expected: {o}"
    );

    // Nothing to prune while in use; an unused network goes.
    dk.ok(&["network", "create", "spare"]);
    let o = dk.ok(&["network", "prune", "-f"]);
    assert!(o.contains("spare"), "prune output: {o}");
    assert!(!o.contains("localnet"), "localnet is in use: {o}");
    assert!(!o.contains("bridge"), "predefined never pruned: {o}");
    dk.ok(&["rm", "-f", "c1", "web"]);
    let o = dk.ok(&["network", "prune", "-f"]);
    assert!(
        o.contains("Deleted Networks:") && o.contains("localnet"),
        "{o}"
    );
    let ls = dk.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!ls.contains("localnet") && !ls.contains("spare"), "{ls}");
}

#[test]
fn docker_version_info_and_unsupported() {
    setup!(d, dk);
    let v = dk.ok(&["version"]);
    assert!(v.contains("Server:"), "{v}");
    assert!(v.contains("API version:") && v.contains("1.47"), "{v}");
    let v = dk.ok(&["version", "--format", "{{.Server.APIVersion}}"]);
    assert_eq!(v, "1.47");

    let i = dk.ok(&["info"]);
    assert!(i.contains("Server Version:"), "{i}");
    assert!(i.contains("Swarm: inactive"), "{i}");
    let i = dk.ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
    assert_eq!(i, "inactive");

    // Docker Hub is out of reach here: a pull fails fast, naming it (pulls from a
    // registry that answers are in registry.rs).
    let o = dk.fail(&["pull", "busybox"]);
    assert!(o.stderr.contains("https://index.docker.io"), "pull: {o}");
    // Creating from a missing image: the CLI tries a pull, which fails clearly.
    let o = dk.fail(&["run", "--rm", "nosuchimage", "true"]);
    assert_eq!(o.code, 125, "{o}");
    assert!(
        o.stderr
            .contains("Unable to find image 'nosuchimage:latest' locally"),
        "{o}"
    );
    assert!(o.stderr.contains("https://index.docker.io"), "{o}");

    // Volumes: created, written and read through the docker CLI, removed.
    assert_eq!(dk.ok(&["volume", "create", "v1"]), "v1");
    dk.ok(&[
        "run",
        "--rm",
        "-v",
        "v1:/x",
        "busybox",
        "sh",
        "-c",
        "echo hi > /x/f",
    ]);
    assert_eq!(
        dk.ok(&["run", "--rm", "-v", "v1:/x", "busybox", "cat", "/x/f"]),
        "hi"
    );
    assert_eq!(dk.ok(&["volume", "ls", "-q"]), "v1");
    assert_eq!(
        dk.ok(&["volume", "inspect", "-f", "{{.Driver}}", "v1"]),
        "local"
    );
    assert_eq!(dk.ok(&["volume", "rm", "v1"]), "v1");

    // Unimplemented endpoints: non-zero, clear message, no hang.
    let o = dk.fail(&["pause", "nosuch"]);
    assert!(o.stderr.contains("not implement"), "pause: {o}");
}

#[test]
fn docker_network_ls_inspect_and_errors() {
    setup!(d, dk);
    dk.ok(&["network", "create", "localnet"]);
    dk.ok(&["network", "create", "--label", "env=t", "labeled"]);

    let names = dk.ok(&["network", "ls", "--format", "{{.Name}}"]);
    let names: Vec<&str> = names.lines().collect();
    for n in ["bridge", "host", "none", "localnet", "labeled"] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "the CLI sorts by name");

    let ids = dk.ok(&["network", "ls", "-q"]);
    assert_eq!(ids.lines().count(), names.len(), "{ids}");
    assert!(
        ids.lines().all(|l| l.len() == 12),
        "-q prints short ids: {ids}"
    );

    let table = dk.ok(&["network", "ls"]);
    let head = table.lines().next().unwrap_or("");
    for col in ["NETWORK ID", "NAME", "DRIVER", "SCOPE"] {
        assert!(head.contains(col), "{table}");
    }
    assert!(
        table
            .lines()
            .any(|l| l.contains("localnet") && l.contains("bridge") && l.contains("local")),
        "{table}"
    );

    let br = dk.ok(&[
        "network",
        "ls",
        "--filter",
        "driver=bridge",
        "--format",
        "{{.Name}}",
    ]);
    let br: Vec<&str> = br.lines().collect();
    assert!(
        br.contains(&"bridge") && br.contains(&"localnet"),
        "driver=bridge: {br:?}"
    );
    assert!(
        !br.contains(&"host") && !br.contains(&"none"),
        "driver=bridge: {br:?}"
    );
    let lab = dk.ok(&[
        "network",
        "ls",
        "--filter",
        "label=env=t",
        "--format",
        "{{.Name}}",
    ]);
    assert_eq!(lab, "labeled");
    let custom = dk.ok(&[
        "network",
        "ls",
        "-f",
        "type=custom",
        "--format",
        "{{.Name}}",
    ]);
    assert_eq!(custom, "labeled\nlocalnet");
    let o = dk.fail(&["network", "ls", "--filter", "foo=bar"]);
    assert!(o.stderr.contains("invalid filter 'foo'"), "{o}");

    // Inspect: raw JSON array, names resolve, --format works.
    let j = dk.ok(&["network", "inspect", "localnet"]);
    let v: serde_json::Value = serde_json::from_str(&j).expect("inspect json");
    assert_eq!(v[0]["Name"], "localnet", "{j}");
    assert_eq!(v[0]["Driver"], "bridge", "{j}");
    assert_eq!(
        dk.ok(&[
            "network",
            "inspect",
            "-f",
            "{{.Driver}} {{.Scope}}",
            "bridge"
        ]),
        "bridge local"
    );

    let o = dk.fail(&["network", "inspect", "nosuch"]);
    assert_eq!(o.code, 1, "{o}");
    assert!(
        o.stderr
            .contains("Error response from daemon: network nosuch not found"),
        "{o}"
    );

    let o = dk.fail(&["network", "create", "localnet"]);
    assert_eq!(o.code, 1, "{o}");
    assert!(
        o.stderr
            .contains("Error response from daemon: network with name localnet already exists"),
        "{o}"
    );

    let o = dk.fail(&["network", "rm", "bridge"]);
    assert!(
        o.stderr
            .contains("bridge is a pre-defined network and cannot be removed"),
        "{o}"
    );
    let o = dk.fail(&["network", "rm", "host"]);
    assert!(o.stderr.contains("pre-defined network"), "{o}");
    let o = dk.fail(&["network", "rm", "nosuch"]);
    assert!(o.stderr.contains("network nosuch not found"), "{o}");
    // -f on a missing network is silent success (CLI behaviour on 404).
    dk.ok(&["network", "rm", "-f", "nosuch"]);

    dk.sleeper("c1", &["--network", "localnet"]);
    let o = dk.fail(&["network", "rm", "localnet"]);
    assert!(o.stderr.contains("has active endpoints"), "{o}");
    dk.ok(&["rm", "-f", "c1"]);
    assert_eq!(
        dk.ok(&["network", "rm", "localnet", "labeled"]),
        "localnet\nlabeled"
    );
}

#[test]
fn docker_network_connect_disconnect_live() {
    setup!(d, dk);
    dk.ok(&["network", "create", "localnet"]);
    dk.ok(&["network", "create", "--subnet", "10.231.7.0/24", "othernet"]);
    dk.sleeper("c1", &["--network", "localnet"]);
    let addrs = |c: &str| dk.exec(c, "ip -o -4 addr show");

    let o = addrs("c1");
    assert!(o.ok(), "{o}");
    assert!(ifaces(&o.stdout).contains(&"eth0".to_string()), "{o}");
    assert!(!o.stdout.contains("10.231.7."), "{o}");

    assert_eq!(
        dk.ok(&[
            "network",
            "connect",
            "--ip",
            "10.231.7.50",
            "--alias",
            "web",
            "othernet",
            "c1"
        ]),
        ""
    );
    let o = addrs("c1");
    assert!(o.stdout.contains("10.231.7.50/24"), "connect: {o}");
    assert!(ifaces(&o.stdout).contains(&"eth1".to_string()), "{o}");
    assert_eq!(
        dk.ok(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.othernet.IPAddress}}",
            "c1"
        ]),
        "10.231.7.50"
    );
    // The alias resolves for other containers on othernet.
    let o = dk.run_t(
        &[
            "run",
            "--rm",
            "--network",
            "othernet",
            "busybox",
            "ping",
            "-c",
            "1",
            "-W",
            "3",
            "web",
        ],
        Duration::from_secs(40),
    );
    assert!(o.ok() && o.stdout.contains("10.231.7.50"), "alias: {o}");

    let o = dk.fail(&["network", "connect", "othernet", "c1"]);
    assert!(o.stderr.contains("already exists"), "double connect: {o}");
    let o = dk.fail(&["network", "connect", "nosuch", "c1"]);
    assert!(o.stderr.contains("network nosuch not found"), "{o}");
    let o = dk.fail(&["network", "connect", "othernet", "nosuchc"]);
    assert!(o.stderr.contains("nosuchc"), "{o}");

    assert_eq!(dk.ok(&["network", "disconnect", "othernet", "c1"]), "");
    let o = addrs("c1");
    assert!(!o.stdout.contains("10.231.7."), "disconnect: {o}");
    assert!(!ifaces(&o.stdout).contains(&"eth1".to_string()), "{o}");
    assert!(ifaces(&o.stdout).contains(&"eth0".to_string()), "{o}");
    let o = dk.fail(&["network", "disconnect", "othernet", "c1"]);
    assert!(o.stderr.contains("not connected"), "double disconnect: {o}");
}

#[test]
fn docker_images_import_and_rm() {
    setup!(d, dk);
    let tar = busybox_tar();
    let o = dk.run_t(
        &["import", tar.to_str().expect("utf-8 path"), "bb2"],
        Duration::from_secs(120),
    );
    assert!(o.ok(), "import: {o}");
    assert!(o.stdout.trim().starts_with("sha256:"), "{o}");

    let imgs = dk.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    let imgs: Vec<&str> = imgs.lines().collect();
    assert!(imgs.contains(&"busybox:latest"), "{imgs:?}");
    assert!(imgs.contains(&"bb2:latest"), "{imgs:?}");
    let table = dk.ok(&["images"]);
    assert!(
        table.lines().next().unwrap_or("").contains("REPOSITORY"),
        "{table}"
    );

    let o = dk.run_t(
        &["run", "--rm", "bb2", "echo", "from-bb2"],
        Duration::from_secs(40),
    );
    assert!(o.ok() && o.stdout.trim() == "from-bb2", "{o}");

    // A file that is not a tarball is refused with a message, not a hang.
    let junk = d.dir.join("junk.tar");
    std::fs::write(&junk, b"this is not a tar archive\n").expect("write junk");
    let o = dk.fail(&["import", junk.to_str().expect("utf-8 path"), "junk"]);
    assert!(o.stderr.contains("Error response from daemon"), "{o}");
    let o = dk.fail(&["import", "/nonexistent/file.tar", "x"]);
    assert!(o.stderr.contains("/nonexistent/file.tar"), "{o}");

    let o = dk.fail(&["image", "rm", "nosuchimage"]);
    assert!(o.stderr.contains("nosuchimage"), "{o}");
    let o = dk.ok(&["image", "rm", "bb2"]);
    assert!(o.contains("Untagged: bb2:latest"), "{o}");
    let imgs = dk.ok(&["images", "--format", "{{.Repository}}"]);
    assert!(!imgs.contains("bb2"), "{imgs}");
}

#[test]
fn docker_run_options() {
    setup!(d, dk);
    dk.ok(&["network", "create", "--subnet", "10.232.9.0/24", "localnet"]);
    dk.ok(&[
        "run",
        "-d",
        "--name",
        "c1",
        "--network",
        "localnet",
        "--ip",
        "10.232.9.77",
        "--network-alias",
        "db",
        "--hostname",
        "myhost",
        "--dns",
        "10.232.9.53",
        "-e",
        "FOO=bar",
        "--add-host",
        "extra.example:10.1.2.3",
        "busybox",
        "sleep",
        "300",
    ]);
    assert_eq!(
        dk.ok(&[
            "inspect",
            "--format",
            "{{.NetworkSettings.Networks.localnet.IPAddress}}",
            "c1"
        ]),
        "10.232.9.77"
    );
    let o = dk.exec(
        "c1",
        "hostname; echo $FOO; cat /etc/hosts; cat /etc/resolv.conf",
    );
    assert!(o.ok(), "{o}");
    let mut lines = o.stdout.lines();
    assert_eq!(lines.next(), Some("myhost"), "{o}");
    assert_eq!(lines.next(), Some("bar"), "{o}");
    assert!(
        o.stdout
            .lines()
            .any(|l| l.starts_with("10.1.2.3") && l.contains("extra.example")),
        "--add-host: {o}"
    );
    assert!(
        o.stdout.contains("10.232.9.77"),
        "own address in /etc/hosts: {o}"
    );
    // User-defined networks use the embedded DNS; --dns becomes its upstream.
    assert!(o.stdout.contains("nameserver"), "{o}");

    // The alias resolves from another container on the network.
    let o = dk.run_t(
        &[
            "run",
            "--rm",
            "--network",
            "localnet",
            "busybox",
            "ping",
            "-c",
            "1",
            "-W",
            "3",
            "db",
        ],
        Duration::from_secs(40),
    );
    assert!(o.ok() && o.stdout.contains("10.232.9.77"), "alias db: {o}");

    // --rm removes the container after it exits; exit code passes through.
    let o = dk.run_t(
        &[
            "run", "--rm", "--name", "gone", "busybox", "sh", "-c", "exit 3",
        ],
        Duration::from_secs(40),
    );
    assert_eq!(o.code, 3, "{o}");
    assert!(
        wait_for(Duration::from_secs(5), || !dk
            .ok(&["ps", "-a", "--format", "{{.Names}}"])
            .contains("gone")),
        "--rm container still listed"
    );
    // Attached `--rm` runs never lose their output (the container's files are
    // removed right after it exits, racing the attach stream).
    for i in 0..10 {
        let o = dk.run_t(
            &[
                "run",
                "--rm",
                "busybox",
                "sh",
                "-c",
                &format!("echo out-{i}; echo err-{i} >&2"),
            ],
            Duration::from_secs(40),
        );
        assert!(o.ok(), "{o}");
        assert_eq!(o.stdout, format!("out-{i}\n"), "run {i}: {o}");
        assert_eq!(o.stderr, format!("err-{i}\n"), "run {i}: {o}");
    }
    // Default network is bridge ("default").
    let o = dk.run_t(
        &[
            "run", "--rm", "busybox", "ip", "-o", "-4", "addr", "show", "eth0",
        ],
        Duration::from_secs(40),
    );
    assert!(o.ok() && o.stdout.contains("inet "), "default network: {o}");

    // Error cases.
    let o = dk.fail(&[
        "run",
        "-d",
        "--network",
        "localnet",
        "--ip",
        "10.232.9.77",
        "busybox",
        "sleep",
        "300",
    ]);
    assert_eq!(o.code, 125, "{o}");
    assert!(
        o.stderr.to_lowercase().contains("in use") || o.stderr.contains("already"),
        "duplicate --ip: {o}"
    );
    let o = dk.fail(&["run", "-d", "--network", "nosuchnet", "busybox", "true"]);
    assert_eq!(o.code, 125, "{o}");
    assert!(o.stderr.contains("network nosuchnet not found"), "{o}");
    assert!(
        !o.stderr.contains("Unable to find image"),
        "a missing network must not trigger a pull: {o}"
    );
    let o = dk.fail(&["run", "-d", "--name", "c1", "busybox", "true"]);
    assert_eq!(o.code, 125, "{o}");
    assert!(o.stderr.contains("already in use"), "duplicate name: {o}");
}

#[test]
fn docker_container_lifecycle() {
    setup!(d, dk);
    dk.ok(&["network", "create", "localnet"]);
    dk.sleeper("c1", &["--network", "localnet"]);
    dk.sleeper("c2", &[]);

    // ps / ps -a --filter network=.
    let ps = dk.ok(&["ps", "--format", "{{.Names}} {{.State}}"]);
    assert!(
        ps.contains("c1 running") && ps.contains("c2 running"),
        "{ps}"
    );
    let f = dk.ok(&[
        "ps",
        "-a",
        "--filter",
        "network=localnet",
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(f, "c1");
    let f = dk.ok(&[
        "ps",
        "-a",
        "--filter",
        "network=bridge",
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(f, "c2");
    let nets = dk.ok(&["ps", "--filter", "name=c1", "--format", "{{.Networks}}"]);
    assert_eq!(nets, "localnet");

    // stop / start / kill.
    let o = dk.run_t(&["stop", "-t", "1", "c1"], Duration::from_secs(30));
    assert!(o.ok() && o.stdout.trim() == "c1", "stop: {o}");
    assert_eq!(
        dk.ok(&["inspect", "-f", "{{.State.Status}}", "c1"]),
        "exited"
    );
    assert!(
        dk.ok(&["ps", "--format", "{{.Names}}"])
            .lines()
            .all(|l| l != "c1")
    );
    assert_eq!(dk.ok(&["start", "c1"]), "c1");
    assert_eq!(
        dk.ok(&["inspect", "-f", "{{.State.Running}}", "c1"]),
        "true"
    );
    assert!(
        !dk.ok(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.localnet.IPAddress}}",
            "c1"
        ])
        .is_empty(),
        "address after restart"
    );
    assert_eq!(dk.ok(&["kill", "c1"]), "c1");
    assert!(
        wait_for(Duration::from_secs(5), || dk.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "c1"
        ]) == "exited 137"),
        "kill -> exited 137"
    );
    let o = dk.fail(&["kill", "c1"]);
    assert!(o.stderr.contains("is not running"), "kill stopped: {o}");
    let o = dk.fail(&["start", "nosuch"]);
    assert!(o.stderr.contains("No such container: nosuch"), "{o}");
    let o = dk.fail(&["stop", "nosuch"]);
    assert!(o.stderr.contains("No such container: nosuch"), "{o}");
    // Generic inspect walks container, image, network, volume, plugin.
    let o = dk.fail(&["inspect", "nosuch"]);
    assert!(o.stderr.contains("No such object: nosuch"), "{o}");
    assert_eq!(
        dk.ok(&["inspect", "-f", "{{.Name}} {{.Driver}}", "localnet"]),
        "localnet bridge"
    );
    let o = dk.ok(&["inspect", "-f", "{{.Id}}", "busybox"]);
    assert!(o.starts_with("sha256:"), "image via generic inspect: {o}");
    let o = dk.fail(&["inspect", "--type", "container", "localnet"]);
    assert!(o.stderr.contains("No such container: localnet"), "{o}");

    // exec: output and exit code pass through; errors.
    let o = dk.exec("c2", "echo out; echo err >&2; exit 7");
    assert_eq!(o.code, 7, "{o}");
    assert_eq!(o.stdout, "out\n", "{o}");
    assert_eq!(o.stderr, "err\n", "{o}");
    let o = dk.fail(&["exec", "c1", "true"]);
    assert!(o.stderr.contains("is not running"), "exec in stopped: {o}");
    let o = dk.fail(&["exec", "c2", "/no/such/binary"]);
    assert_eq!(o.code, 127, "{o}");
    let o = dk.fail(&["exec", "nosuch", "true"]);
    assert!(o.stderr.contains("No such container: nosuch"), "{o}");
    assert_eq!(dk.ok(&["port", "c2"]), "", "no published ports");

    // logs and logs -f (terminates when the container exits).
    dk.ok(&[
        "run",
        "-d",
        "--name",
        "talker",
        "busybox",
        "sh",
        "-c",
        "echo one; echo two >&2; sleep 2; echo three",
    ]);
    let o = dk.run_t(&["logs", "-f", "talker"], Duration::from_secs(20));
    assert!(o.ok(), "logs -f must end with the container: {o}");
    assert_eq!(o.stdout, "one\nthree\n", "{o}");
    assert_eq!(o.stderr, "two\n", "{o}");
    let o = dk.run(&["logs", "talker"]);
    assert!(
        o.ok() && o.stdout == "one\nthree\n" && o.stderr == "two\n",
        "{o}"
    );
    let o = dk.run(&["logs", "--tail", "1", "talker"]);
    assert!(o.ok() && o.stdout == "three\n", "{o}");
    let o = dk.fail(&["logs", "nosuch"]);
    assert!(o.stderr.contains("No such container: nosuch"), "{o}");

    // rm: running without -f refused; -f works; missing is reported.
    let o = dk.fail(&["rm", "c2"]);
    assert!(o.stderr.contains("container is running"), "{o}");
    assert_eq!(dk.ok(&["rm", "-f", "c2"]), "c2");
    let o = dk.run(&["rm", "-f", "nosuch"]);
    assert_ne!(o.code, -999, "{o}");

    // container prune: removes stopped ones only.
    dk.sleeper("keeper", &[]);
    let o = dk.ok(&["container", "prune", "-f"]);
    assert!(o.contains("Deleted Containers:"), "{o}");
    let left = dk.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(left, "keeper", "after prune: {left}");
}

#[test]
fn docker_exec_it_gets_a_terminal() {
    // `docker exec -it` over a hijacked connection: the process gets a terminal inside
    // the container, typed input reaches it, and its exit code comes back. `script`
    // gives the docker CLI the terminal it insists on.
    setup!(d, dk);
    if Command::new("script").arg("--version").output().is_err() {
        println!("SKIP: no `script` (util-linux) to give the docker CLI a terminal");
        return;
    }
    dk.sleeper("tty1", &[]);
    let cmd = format!(
        "{} exec -it tty1 sh -c 'tty; echo hi-from-tty; exit 5'",
        dk.bin.display()
    );
    let mut c = Command::new("script");
    c.args(["-qec", &cmd, "/dev/null"])
        .env("DOCKER_HOST", d.host_arg())
        .env("DOCKER_CONFIG", &dk.config)
        .env("DOCKER_CLI_HINTS", "false");
    let o = run_cmd(c, Duration::from_secs(30));
    assert!(
        o.stdout.contains("/dev/pts/"),
        "a terminal inside the container: {o}"
    );
    assert!(o.stdout.contains("hi-from-tty"), "{o}");
    assert_eq!(o.code, 5, "exit code of exec -it: {o}");
    // Typed input: a shell reads a line from the terminal and answers on it.
    let script = format!(
        "(sleep 1; printf 'echo typed-$((6*7))\\r'; sleep 1; printf 'exit 3\\r'; sleep 1) | script -qec '{} exec -it tty1 sh' /dev/null",
        dk.bin.display()
    );
    let mut c = Command::new("sh");
    c.args(["-c", &script])
        .env("DOCKER_HOST", d.host_arg())
        .env("DOCKER_CONFIG", &dk.config)
        .env("DOCKER_CLI_HINTS", "false");
    let o = run_cmd(c, Duration::from_secs(30));
    assert!(
        o.stdout.contains("typed-42"),
        "typed input reached the shell: {o}"
    );
    assert_eq!(o.code, 3, "exit code of the interactive shell: {o}");
}

/// True if `script` (util-linux) can give the docker CLI a terminal; prints a skip.
fn have_script() -> bool {
    let ok = Command::new("script").arg("--version").output().is_ok();
    if !ok {
        println!("SKIP: no `script` (util-linux) to give the docker CLI a terminal");
    }
    ok
}

#[test]
fn docker_run_it_and_i() {
    // `docker run -it`: the main process runs on a terminal from the container's own
    // devpts, sized from the client's terminal (ConsoleSize + resize), typed input
    // reaches it and its exit code is docker's; `run -i` pipes stdin without a terminal
    // and closes it at EOF (StdinOnce).
    setup!(d, dk);
    if !have_script() {
        return;
    }
    // The terminal `script` makes is set to 33x101 before docker starts: docker sends
    // that size, and `stty size` inside shows it.
    let o = dk.tty_shell(
        "script -qec 'stty rows 33 cols 101; @docker@ run -it --rm busybox sh -c \"tty; stty size; echo out-\\$((6*7)); exit 5\"' /dev/null",
    );
    assert!(
        o.stdout.contains("/dev/pts/0"),
        "a terminal of the container's own devpts: {o}"
    );
    assert!(
        o.stdout.contains("33 101"),
        "the client's terminal size: {o}"
    );
    assert!(o.stdout.contains("out-42"), "{o}");
    assert_eq!(
        o.code,
        5,
        "exit code of run -it: {o}\n{}",
        tail(&d.log(), 20)
    );
    // Typed input.
    let o = dk.shell(
        "(sleep 1; printf 'echo typed-$((6*7))\\r'; sleep 1; printf 'exit 3\\r'; sleep 2) | script -qec '@docker@ run -it --rm --name itc busybox sh' /dev/null",
    );
    assert!(
        o.stdout.contains("typed-42"),
        "typed input reached the shell: {o}"
    );
    assert_eq!(o.code, 3, "exit code of the interactive shell: {o}");
    assert!(
        wait_for(Duration::from_secs(5), || !dk
            .ok(&["ps", "-a", "--format", "{{.Names}}"])
            .contains("itc")),
        "--rm removed the container"
    );
    // -i without a terminal: stdin is a pipe, EOF closes it.
    let o = dk.shell("printf 'hi\\nthere\\n' | @docker@ run -i --rm busybox cat");
    assert_eq!(o.stdout, "hi\nthere\n", "{o}");
    assert_eq!(o.code, 0, "{o}");
    let o = dk.shell("echo 'exit 9' | @docker@ run -i --rm busybox sh");
    assert_eq!(o.code, 9, "{o}");
    // The output is in the json-file log too.
    let o = dk.shell("echo logged-line | @docker@ run -i --name ilog busybox cat");
    assert_eq!(o.stdout.trim(), "logged-line", "{o}");
    assert_eq!(dk.ok(&["logs", "ilog"]), "logged-line");
    // Without -i stdin is /dev/null: cat ends at once.
    let o = dk.shell("echo ignored | @docker@ run --rm busybox cat");
    assert_eq!(o.stdout, "", "{o}");
}

#[test]
fn docker_start_ai_resize_and_daemon_restart() {
    // `docker start -ai` attaches before starting; `docker attach` reaches a terminal
    // held by the shim even after netloomd restarts; resize changes `stty size`.
    let Some(bin) = docker_bin() else {
        println!("SKIP: no docker CLI binary (/usr/local/bin/docker or docker on PATH)");
        return;
    };
    let mut d = daemon_or_skip!();
    if !have_script() {
        return;
    }
    let dk = Docker::new(&d, bin.clone());
    dk.ok(&[
        "create",
        "-it",
        "--name",
        "sai",
        "busybox",
        "sh",
        "-c",
        "echo started-$((1+1)); exit 4",
    ]);
    let o = dk.tty_shell("script -qec '@docker@ start -ai sai' /dev/null");
    assert!(o.stdout.contains("started-2"), "{o}");
    assert_eq!(o.code, 4, "{o}");
    // A terminal's log comes back as one raw stream (no frame headers).
    assert_eq!(dk.ok(&["logs", "sai"]), "started-2");
    // A detached interactive shell; the daemon restarts; attach and type.
    dk.ok(&["run", "-dit", "--name", "keep", "busybox", "sh"]);
    let (code, body) = d.api("POST", "/containers/keep/resize?h=40&w=120", None);
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        dk.exec("keep", "stty size < /dev/pts/0").stdout.trim(),
        "40 120",
        "the size set by POST /containers/keep/resize"
    );
    // exec -it follows the client's terminal size (exec resize); exec -i pipes stdin.
    let o = dk.tty_shell(
        "script -qec 'stty rows 29 cols 91; @docker@ exec -it keep stty size' /dev/null",
    );
    assert!(o.stdout.contains("29 91"), "exec resize: {o}");
    let o = dk.shell("echo piped | @docker@ exec -i keep cat");
    assert_eq!(o.stdout, "piped\n", "{o}");
    let (code, body) = d.api("POST", "/containers/keep/resize?h=x&w=120", None);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("invalid value for h"), "{body}");
    drop(dk);
    d.stop();
    d.start();
    let dk = Docker::new(&d, bin);
    let o = dk.shell(
        "(sleep 1; printf 'stty size; echo after-$((2*3))\\r'; sleep 1; printf 'exit 7\\r'; sleep 2) | script -qec 'stty rows 41 cols 121; @docker@ attach keep' /dev/null",
    );
    assert!(
        o.stdout.contains("after-6"),
        "typed after a daemon restart: {o}\n{}",
        tail(&d.log(), 20)
    );
    assert!(
        o.stdout.contains("41 121"),
        "docker attach resized to its terminal: {o}"
    );
    assert_eq!(dk.ok(&["wait", "keep"]), "7");
    // Resizing a stopped container is refused.
    let (code, body) = d.api("POST", "/containers/keep/resize?h=10&w=10", None);
    assert_eq!(code, 409, "{body}");
}

/// Unix time now as the docker CLI sends it (`seconds.nanos`), offset by `delta` seconds.
fn unix_ts(delta: f64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    format!("{:.6}", now + delta)
}

#[test]
fn docker_events_since_until_and_filters() {
    // `docker events` replays recent events (since/until) and streams live ones, with
    // type/event/container/network filters.
    setup!(d, dk);
    let t0 = unix_ts(-1.0);
    dk.ok(&["network", "create", "evnet"]);
    dk.ok(&[
        "run",
        "--rm",
        "--network",
        "evnet",
        "--name",
        "evc",
        "busybox",
        "true",
    ]);
    assert!(
        wait_for(Duration::from_secs(5), || !dk
            .ok(&["ps", "-a", "--format", "{{.Names}}"])
            .contains("evc")),
        "--rm removed the container"
    );
    dk.ok(&["network", "rm", "evnet"]);
    let t1 = unix_ts(0.5);
    let fmt = "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}";
    let all = dk.ok(&["events", "--since", &t0, "--until", &t1, "--format", fmt]);
    let lines: Vec<&str> = all.lines().collect();
    let want = [
        "network create evnet",
        "container create evc",
        "network connect evnet",
        "container start evc",
        "container die evc",
        "network disconnect evnet",
        "container destroy evc",
        "network destroy evnet",
    ];
    let mut at = 0;
    for w in want {
        let Some(i) = lines[at..].iter().position(|l| *l == w) else {
            panic!("missing or out of order: {w:?} in\n{all}");
        };
        at += i + 1;
    }
    let nets = dk.ok(&[
        "events",
        "--since",
        &t0,
        "--until",
        &t1,
        "--format",
        fmt,
        "--filter",
        "type=network",
        "--filter",
        "network=evnet",
    ]);
    assert!(nets.lines().all(|l| l.starts_with("network ")), "{nets}");
    assert_eq!(
        nets.lines().count(),
        4,
        "create, connect, disconnect, destroy:\n{nets}"
    );
    let die = dk.ok(&[
        "events",
        "--since",
        &t0,
        "--until",
        &t1,
        "--format",
        fmt,
        "--filter",
        "container=evc",
        "--filter",
        "event=die",
    ]);
    assert_eq!(die, "container die evc");
    // Live: a stream that ends at `until`.
    let until = unix_ts(4.0);
    let live = std::thread::scope(|s| {
        let h = s.spawn(|| {
            dk.run(&[
                "events",
                "--until",
                &until,
                "--format",
                fmt,
                "--filter",
                "type=network",
            ])
        });
        std::thread::sleep(Duration::from_millis(1500));
        dk.ok(&["network", "create", "evlive"]);
        dk.ok(&["network", "rm", "evlive"]);
        h.join().expect("events thread")
    });
    assert!(live.ok(), "{live}");
    assert_eq!(
        live.stdout.trim(),
        "network create evlive\nnetwork destroy evlive",
        "{live}"
    );
    // Bad input.
    let o = dk.fail(&["events", "--since", &t1, "--until", &t0]);
    assert!(o.stderr.contains("cannot be after"), "{o}");
    let (code, body) = d.api("GET", "/events?since=yesterday-ish", None);
    assert_eq!(code, 400, "{body}");
}

#[test]
fn docker_logs_follow_of_rm_container_gets_every_line() {
    // `--rm` deletes the log when the container exits; `logs -f` started before that
    // still drains it to the last line.
    setup!(d, dk);
    for round in 0..3 {
        let id = dk.ok(&[
            "run",
            "-d",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "sleep 1; i=0; while [ $i -lt 300 ]; do i=$((i+1)); echo line-$i; done",
        ]);
        let o = dk.run(&["logs", "-f", &id]);
        let last = o.stdout.lines().last().unwrap_or("");
        assert_eq!(
            last,
            "line-300",
            "round {round}: {} lines, last {last:?}",
            o.stdout.lines().count()
        );
        assert_eq!(o.stdout.lines().count(), 300, "round {round}");
    }
}

#[test]
fn docker_inspect_aliases_hostconfig_and_info() {
    // API < 1.45 clients get the short ID and hostname in `Aliases` on user-defined
    // networks (moby does the same); 1.45+ clients get them only in `DNSNames`.
    setup!(d, dk);
    dk.ok(&["network", "create", "alnet"]);
    let id = dk.sleeper(
        "alc",
        &[
            "--network",
            "alnet",
            "--network-alias",
            "web",
            "--hostname",
            "alhost",
        ],
    );
    let short = &id[..12];
    let f = "{{json .NetworkSettings.Networks.alnet.Aliases}} {{json .NetworkSettings.Networks.bridge}}";
    let new = dk.ok(&["inspect", "-f", f, "alc"]);
    assert_eq!(new, "[\"web\"] null", "API 1.47");
    let o = dk.shell(&format!(
        "DOCKER_API_VERSION=1.44 @docker@ inspect -f '{f}' alc"
    ));
    assert_eq!(
        o.stdout.trim(),
        format!("[\"web\",\"{short}\",\"alhost\"] null"),
        "API 1.44: {o}"
    );
    // The default bridge network is not user-defined: no extra aliases there.
    dk.sleeper("alb", &[]);
    let o = dk.shell("DOCKER_API_VERSION=1.41 @docker@ inspect -f '{{json .NetworkSettings.Networks.bridge.Aliases}}' alb");
    assert_eq!(o.stdout.trim(), "null", "{o}");
    // HostConfig keys of unimplemented features carry Docker's zero values.
    let hc = dk.ok(&[
        "inspect", "-f",
        "{{.HostConfig.Privileged}} {{json .HostConfig.Binds}} {{.HostConfig.ShmSize}} {{.HostConfig.IpcMode}} {{.GraphDriver.Name}}",
        "alb",
    ]);
    assert_eq!(hc, "false null 67108864 private overlay");
    // /info: the daemon's real state (IPv4 forwarding is on for bridges).
    let info = dk.ok(&[
        "info",
        "-f",
        "{{.LiveRestoreEnabled}} {{.IPv4Forwarding}} {{.DefaultRuntime}} {{.ExperimentalBuild}}",
    ]);
    assert_eq!(info, "true true runc false");
    let (_, body) = d.api("GET", "/info", None);
    let v: serde_json::Value = serde_json::from_str(&body).expect("info JSON");
    for k in [
        "Debug",
        "SystemTime",
        "CgroupVersion",
        "NFd",
        "NGoroutines",
        "NEventsListener",
        "OSVersion",
        "Runtimes",
        "HttpProxy",
    ] {
        assert!(v.get(k).is_some(), "/info lacks {k}: {body}");
    }
}

#[test]
fn docker_run_it_detach_keys_leave_the_container_running() {
    // The docker CLI reads ctrl-p ctrl-q itself and hangs up; the container, whose
    // terminal the shim holds, keeps running and can be attached to again.
    setup!(d, dk);
    if !have_script() {
        return;
    }
    let o = dk.shell(
        "(sleep 1; printf '\\020\\021'; sleep 3) | script -qec '@docker@ run -it --name det busybox sh' /dev/null",
    );
    assert_eq!(o.code, 0, "{o}\n{}", tail(&d.log(), 20));
    assert_eq!(
        dk.ok(&["inspect", "-f", "{{.State.Running}}", "det"]),
        "true"
    );
    let o = dk.shell(
        "(sleep 1; printf 'echo again-$((3*3))\\r'; sleep 1; printf 'exit 2\\r'; sleep 2) | script -qec '@docker@ attach det' /dev/null",
    );
    assert!(o.stdout.contains("again-9"), "{o}");
    assert_eq!(dk.ok(&["wait", "det"]), "2");
}
