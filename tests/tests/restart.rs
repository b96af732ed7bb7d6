//! Restart policies, as a Docker user sees them: `--restart always | unless-stopped |
//! on-failure[:N] | no` with the real docker CLI and netloom's, Docker's back-off
//! (100 ms, doubling), `RestartCount`, `docker stop` / `kill` / `restart` / `rm`
//! semantics, the events, and what a daemon restart does to each policy.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use netloom_e2e::dockercli::{Docker, docker_bin};
use netloom_e2e::{daemon_or_skip, docker_or_skip, wait_for};

fn unix_now() -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
}

/// `docker inspect -f TEMPLATE C`.
fn inspect(dk: &Docker, c: &str, f: &str) -> String {
    dk.run(&["inspect", "-f", f, c]).stdout.trim().to_string()
}

#[test]
fn always_restarts_with_backoff_until_stopped() {
    docker_or_skip!(d, dk);
    let t0 = unix_now();
    dk.ok(&[
        "run",
        "-d",
        "--name",
        "loop",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "exit 3",
    ]);
    assert!(
        wait_for(Duration::from_secs(20), || {
            inspect(&dk, "loop", "{{.RestartCount}}")
                .parse::<u32>()
                .is_ok_and(|n| n >= 6)
        }),
        "RestartCount never reached 6: {}",
        inspect(&dk, "loop", "{{json .State}} {{.RestartCount}}")
    );
    assert_eq!(
        inspect(&dk, "loop", "{{.HostConfig.RestartPolicy.Name}}"),
        "always"
    );
    // Between runs it is `restarting`, and `docker ps` (without -a) lists it.
    let mut seen = String::new();
    assert!(
        wait_for(Duration::from_secs(10), || {
            seen = dk.ok(&["ps", "--filter", "name=loop", "--format", "{{.Status}}"]);
            seen.starts_with("Restarting (3)")
        }),
        "never seen as Restarting (3) in docker ps: {seen:?}"
    );
    assert_eq!(
        dk.ok(&["ps", "-q", "--filter", "status=restarting"]).len(),
        12
    );
    // `docker stop` ends the loop: it stays exited.
    dk.ok(&["stop", "loop"]);
    let count = inspect(&dk, "loop", "{{.RestartCount}}");
    assert_eq!(inspect(&dk, "loop", "{{.State.Status}}"), "exited");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(inspect(&dk, "loop", "{{.State.Status}}"), "exited");
    assert_eq!(inspect(&dk, "loop", "{{.RestartCount}}"), count);
    let t1 = unix_now();
    // The events of each restart, in Docker's order; the delays between the starts
    // double (100 ms, 200 ms, 400 ms, ...): compare them with each other (ratios).
    let ev = dk.ok(&[
        "events",
        "--since",
        &t0,
        "--until",
        &t1,
        "--filter",
        "container=loop",
        "--format",
        "{{.Type}} {{.Action}} {{.TimeNano}}",
    ]);
    let lines: Vec<&str> = ev.lines().collect();
    let actions: Vec<String> = lines
        .iter()
        .map(|l| l.rsplit_once(' ').map_or(*l, |x| x.0).to_string())
        .collect();
    let first_die = actions
        .iter()
        .position(|a| a == "container die")
        .unwrap_or_else(|| panic!("no die event: {ev}"));
    assert_eq!(
        actions[first_die..first_die + 3],
        ["container die", "container start", "container die"],
        "events of a restart: {ev}"
    );
    let starts: Vec<u128> = lines
        .iter()
        .filter(|l| l.starts_with("container start"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(starts.len() >= 6, "starts: {ev}");
    let gap = |i: usize| starts[i + 1] - starts[i];
    assert!(
        gap(4) > gap(0) * 2 && gap(4) > gap(2),
        "back-off does not grow (gaps {} {} {} {} {} ns): {ev}",
        gap(0),
        gap(1),
        gap(2),
        gap(3),
        gap(4)
    );
    assert!(actions.iter().any(|a| a == "container stop"), "{ev}");
    // A start by a user resets the count; `docker restart` sends Docker's event.
    dk.ok(&["start", "loop"]);
    assert!(
        inspect(&dk, "loop", "{{.RestartCount}}")
            .parse::<u32>()
            .is_ok_and(|n| n <= 1)
    );
    dk.ok(&["stop", "loop"]);
    // `rm` of a restarting container needs force, as in Docker.
    dk.ok(&[
        "run",
        "-d",
        "--name",
        "slowloop",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "exit 1",
    ]);
    assert!(wait_for(Duration::from_secs(20), || {
        inspect(&dk, "slowloop", "{{.RestartCount}}")
            .parse::<u32>()
            .is_ok_and(|n| n >= 5)
    }));
    let mut refused = None;
    assert!(
        wait_for(Duration::from_secs(20), || {
            if inspect(&dk, "slowloop", "{{.State.Status}}") != "restarting" {
                return false;
            }
            let o = dk.run(&["rm", "slowloop"]);
            let hit = o.stderr.contains(
                "container is restarting: stop the container before removing or force remove",
            );
            refused = Some(o);
            hit
        }),
        "rm of a restarting container: {refused:?}"
    );
    dk.ok(&["rm", "-f", "slowloop"]);
    assert!(dk.fail(&["inspect", "slowloop"]).stderr.contains("No such"));
}

#[test]
fn on_failure_counts_and_no_never_restarts() {
    docker_or_skip!(d, dk);
    dk.ok(&[
        "run",
        "-d",
        "--name",
        "f2",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "exit 4",
    ]);
    dk.ok(&[
        "run",
        "-d",
        "--name",
        "f0",
        "--restart",
        "on-failure",
        "busybox",
        "true",
    ]);
    dk.ok(&["run", "-d", "--name", "no", "busybox", "sh", "-c", "exit 5"]);
    assert!(
        wait_for(Duration::from_secs(20), || {
            inspect(&dk, "f2", "{{.State.Status}} {{.RestartCount}}") == "exited 2"
        }),
        "on-failure:2 ends after two restarts: {}",
        inspect(&dk, "f2", "{{json .State}} {{.RestartCount}}")
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        inspect(&dk, "f2", "{{.State.ExitCode}} {{.RestartCount}}"),
        "4 2"
    );
    assert_eq!(
        inspect(&dk, "f2", "{{json .HostConfig.RestartPolicy}}"),
        r#"{"Name":"on-failure","MaximumRetryCount":2}"#
    );
    // Exit 0 is no failure; `no` never restarts.
    assert_eq!(
        inspect(&dk, "f0", "{{.State.Status}} {{.RestartCount}}"),
        "exited 0"
    );
    assert_eq!(
        inspect(&dk, "no", "{{.State.Status}} {{.RestartCount}}"),
        "exited 0"
    );
    assert_eq!(
        inspect(&dk, "no", "{{.HostConfig.RestartPolicy.Name}}"),
        "no"
    );
    // Refused with Docker's messages, nothing created.
    let o = dk.fail(&["run", "-d", "--restart", "always:3", "busybox", "true"]);
    assert!(
        o.stderr
            .contains("maximum retry count can only be used with 'on-failure'"),
        "{o}"
    );
    let o = dk.fail(&["run", "-d", "--restart", "sometimes", "busybox", "true"]);
    assert!(
        o.stderr
            .contains("invalid restart policy: unknown policy 'sometimes'"),
        "{o}"
    );
    let (code, body) = d.api(
        "POST",
        "/containers/create",
        Some(r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"AutoRemove":true,"RestartPolicy":{"Name":"always"}}}"#),
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("can't create 'AutoRemove' container with restart policy"),
        "{body}"
    );
    let o = d.fail(&["run", "--rm", "--restart", "always", "busybox", "true"]);
    assert!(
        o.stderr
            .contains("conflicting options: cannot specify both --restart and --rm"),
        "{o}"
    );
    assert_eq!(dk.ok(&["ps", "-aq"]).lines().count(), 3);
    // netloom's CLI too.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "nl",
        "--restart",
        "on-failure:1",
        "busybox",
        "false",
    ]);
    assert!(wait_for(Duration::from_secs(10), || {
        d.ok(&["inspect", "-f", "{{.State.Status}} {{.RestartCount}}", "nl"]) == "exited 1"
    }));
}

/// What `kill -9` of the container's process from outside (a crash) looks like.
fn crash(d: &netloom_e2e::Daemon, c: &str) {
    let pid = d.ok(&["inspect", "-f", "{{.State.Pid}}", c]);
    let o = netloom_e2e::sh("kill", &["-9", &pid]);
    assert!(o.ok(), "kill -9 {pid}: {o}");
}

#[test]
fn policies_across_a_daemon_restart() {
    if docker_bin().is_none() {
        println!("SKIP: no docker CLI binary");
        return;
    }
    let mut d = daemon_or_skip!();
    for (name, policy) in [
        ("up", "always"),
        ("crashed", "unless-stopped"),
        ("stopped-always", "always"),
        ("stopped-unless", "unless-stopped"),
        ("killed-always", "always"),
        ("crashed-no", "no"),
        ("crashed-fail", "on-failure"),
    ] {
        d.run_sleeper(name, &["--restart", policy]);
    }
    // A crash while the daemon runs: restarted at once.
    crash(&d, "crashed");
    assert!(wait_for(Duration::from_secs(10), || {
        d.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.RestartCount}}",
            "crashed",
        ]) == "running 1"
    }));
    let up_pid = d.ok(&["inspect", "-f", "{{.State.Pid}}", "up"]);
    d.ok(&["stop", "-t", "1", "stopped-always", "stopped-unless"]);
    d.ok(&["kill", "killed-always"]);
    std::thread::sleep(Duration::from_secs(1));
    for c in ["stopped-always", "stopped-unless", "killed-always"] {
        assert_eq!(
            d.ok(&["inspect", "-f", "{{.State.Status}}", c]),
            "exited",
            "{c}"
        );
    }
    let pids: Vec<(&str, String)> = ["crashed", "crashed-no", "crashed-fail"]
        .into_iter()
        .map(|c| (c, d.ok(&["inspect", "-f", "{{.State.Pid}}", c])))
        .collect();
    d.stop();
    // Crashes while the daemon is down.
    for (c, pid) in &pids {
        let o = netloom_e2e::sh("kill", &["-9", pid]);
        assert!(o.ok(), "kill {c} ({pid}): {o}");
    }
    d.start();
    let status = |c: &str| d.ok(&["inspect", "-f", "{{.State.Status}}", c]);
    let _ = &status;
    assert!(
        wait_for(Duration::from_secs(20), || {
            status("crashed") == "running"
                && status("stopped-always") == "running"
                && status("killed-always") == "running"
                && status("crashed-fail") == "running"
        }),
        "containers the policy restarts after a daemon restart: {}",
        d.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"])
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        status("stopped-unless"),
        "exited",
        "unless-stopped remembers the stop"
    );
    assert_eq!(status("crashed-no"), "exited");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Pid}}", "up"]),
        up_pid,
        "a running container keeps running"
    );
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.RestartPolicy.Name}}",
            "stopped-unless"
        ]),
        "unless-stopped",
        "the policy survives the daemon restart"
    );
    // The policies still apply after the restart.
    crash(&d, "up");
    assert!(wait_for(Duration::from_secs(10), || {
        d.ok(&["inspect", "-f", "{{.State.Status}} {{.RestartCount}}", "up"]) == "running 1"
    }));
    let bin = docker_bin().unwrap_or_default();
    let dk = Docker::new(&d, bin);
    assert_eq!(
        dk.ok(&[
            "ps",
            "-a",
            "--filter",
            "name=stopped-unless",
            "--format",
            "{{.State}}"
        ]),
        "exited"
    );
}
