//! Health checks, as a Docker user sees them: `--health-*` flags and an image's
//! `HEALTHCHECK`, run inside the container; `State.Health` (status, failing streak,
//! the last 5 results) in inspect, `(healthy)` in `docker ps`, the `health` filter and
//! `health_status` events; checks stop with the container and resume after a daemon
//! restart.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use netloom_e2e::dockercli::Docker;
use netloom_e2e::{busybox_tar, daemon_or_skip, docker_or_skip, wait_for};

fn unix_now() -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
}

fn inspect(dk: &Docker, c: &str, f: &str) -> String {
    dk.run(&["inspect", "-f", f, c]).stdout.trim().to_string()
}

fn health(dk: &Docker, c: &str) -> serde_json::Value {
    let j = inspect(dk, c, "{{json .State.Health}}");
    serde_json::from_str(&j).unwrap_or(serde_json::Value::Null)
}

#[test]
fn health_cmd_states_events_ps_and_stop() {
    docker_or_skip!(d, dk);
    let t0 = unix_now();
    dk.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--health-cmd",
        "test -f /tmp/ok && echo fine",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "--health-start-period",
        "10s",
        "--health-start-interval",
        "200ms",
        "busybox",
        "sh",
        "-c",
        "sleep 2; touch /tmp/ok; exec sleep 1000",
    ]);
    dk.ok(&["run", "-d", "--name", "plain", "busybox", "sleep", "1000"]);
    assert_eq!(
        health(&dk, "web")["Status"],
        "starting",
        "{}",
        health(&dk, "web")
    );
    let ps = dk.ok(&["ps", "--filter", "name=web", "--format", "{{.Status}}"]);
    assert!(ps.ends_with("(health: starting)"), "{ps}");
    assert_eq!(
        inspect(&dk, "web", "{{json .Config.Healthcheck}}"),
        r#"{"Test":["CMD-SHELL","test -f /tmp/ok && echo fine"],"Interval":200000000,"StartPeriod":10000000000,"StartInterval":200000000,"Retries":2}"#
    );
    assert!(
        wait_for(Duration::from_secs(20), || health(&dk, "web")["Status"]
            == "healthy"),
        "never healthy: {}",
        health(&dk, "web")
    );
    let h = health(&dk, "web");
    let log = h["Log"].as_array().cloned().unwrap_or_default();
    let last = log.last().cloned().unwrap_or_default();
    assert_eq!(last["ExitCode"], 0, "{h}");
    assert_eq!(last["Output"], "fine\n", "{h}");
    assert_eq!(h["FailingStreak"], 0, "{h}");
    let ps = dk.ok(&["ps", "--filter", "name=web", "--format", "{{.Status}}"]);
    assert!(ps.ends_with("(healthy)"), "{ps}");
    let id = inspect(&dk, "web", "{{.Id}}");
    assert_eq!(
        dk.ok(&["ps", "-q", "--no-trunc", "--filter", "health=healthy"]),
        id
    );
    let plain = inspect(&dk, "plain", "{{.Id}}");
    assert_eq!(
        dk.ok(&["ps", "-q", "--no-trunc", "--filter", "health=none"]),
        plain
    );
    assert_eq!(inspect(&dk, "plain", "{{json .State.Health}}"), "null");
    // Failing checks: unhealthy after two in a row; the log keeps the last five.
    dk.ok(&["exec", "web", "rm", "/tmp/ok"]);
    assert!(
        wait_for(Duration::from_secs(20), || health(&dk, "web")["Status"]
            == "unhealthy"),
        "never unhealthy: {}",
        health(&dk, "web")
    );
    assert!(wait_for(Duration::from_secs(10), || {
        health(&dk, "web")["Log"]
            .as_array()
            .is_some_and(|l| l.len() == 5)
    }));
    std::thread::sleep(Duration::from_millis(600));
    let h = health(&dk, "web");
    assert_eq!(h["Log"].as_array().map(Vec::len), Some(5), "{h}");
    assert!(h["FailingStreak"].as_i64().is_some_and(|n| n >= 2), "{h}");
    assert_eq!(h["Log"][4]["ExitCode"], 1, "{h}");
    assert_eq!(
        dk.ok(&["ps", "-q", "--no-trunc", "--filter", "health=unhealthy"]),
        id
    );
    let o = dk.fail(&["ps", "--filter", "health=sick"]);
    assert!(o.stderr.contains("invalid filter 'health=sick'"), "{o}");
    // Stopped: no more checks; Docker reports a stopped container unhealthy.
    dk.ok(&["stop", "-t", "1", "web"]);
    let before = health(&dk, "web");
    std::thread::sleep(Duration::from_secs(1));
    let after = health(&dk, "web");
    assert_eq!(before["Log"], after["Log"], "checks went on after the stop");
    assert_eq!(after["Status"], "unhealthy");
    let t1 = unix_now();
    let ev = dk.ok(&[
        "events",
        "--since",
        &t0,
        "--until",
        &t1,
        "--filter",
        "container=web",
        "--filter",
        "event=health_status",
        "--format",
        "{{.Action}}",
    ]);
    assert_eq!(
        ev.lines().collect::<Vec<_>>(),
        ["health_status: healthy", "health_status: unhealthy"],
        "{ev}"
    );
}

#[test]
fn image_healthcheck_timeout_no_healthcheck_and_daemon_restart() {
    let mut d = daemon_or_skip!();
    let tar = busybox_tar();
    d.ok(&[
        "image",
        "import",
        "--change",
        "HEALTHCHECK --interval=300ms --timeout=5s CMD [\"true\"]",
        "--change",
        "STOPSIGNAL SIGUSR1",
        tar.to_str().unwrap_or_default(),
        "hc",
    ]);
    d.ok(&["run", "-d", "--name", "img", "hc", "sleep", "1000"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "off",
        "--no-healthcheck",
        "hc",
        "sleep",
        "1000",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "slow",
        "--health-cmd",
        "sleep 5",
        "--health-timeout",
        "300ms",
        "--health-interval",
        "200ms",
        "busybox",
        "sleep",
        "1000",
    ]);
    fn status(d: &netloom_e2e::Daemon, c: &str) -> String {
        let j = d.ok(&["inspect", "-f", "{{json .State.Health}}", c]);
        let v: serde_json::Value = serde_json::from_str(&j).unwrap_or_default();
        v["Status"].as_str().unwrap_or_default().to_string()
    }
    assert!(
        wait_for(Duration::from_secs(20), || status(&d, "img") == "healthy"),
        "{}",
        d.ok(&["inspect", "-f", "{{json .State}} {{json .Config}}", "img"])
    );
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{json .Config.Healthcheck}} {{.Config.StopSignal}}",
            "img"
        ]),
        r#"{"Test":["CMD","true"],"Interval":300000000,"Timeout":5000000000} SIGUSR1"#
    );
    assert_eq!(
        status(&d, "off"),
        "",
        "--no-healthcheck disables the image's"
    );
    assert_eq!(
        d.ok(&["inspect", "-f", "{{json .Config.Healthcheck.Test}}", "off"]),
        r#"["NONE"]"#
    );
    assert!(
        wait_for(Duration::from_secs(20), || {
            d.ok(&["inspect", "-f", "{{json .State.Health}}", "slow"])
                .contains("Health check exceeded timeout (300ms)")
        }),
        "{}",
        d.ok(&["inspect", "-f", "{{json .State.Health}}", "slow"])
    );
    let j = d.ok(&["inspect", "-f", "{{json .State.Health.Log}}", "slow"]);
    assert!(j.contains("\"ExitCode\":-1"), "{j}");
    // The timed-out probes do not pile up in the container.
    let ps = d.exec_ok("slow", "ps -o comm | grep -c '^sleep' || true");
    assert!(
        ps.trim().parse::<u32>().is_ok_and(|n| n <= 2),
        "probes left running: {ps}"
    );
    // The image's stop signal stops it: the trap answers SIGUSR1 at once (SIGTERM
    // would go unanswered until the 10 s timeout).
    d.ok(&[
        "run",
        "-d",
        "--name",
        "sig",
        "hc",
        "sh",
        "-c",
        "trap 'exit 7' USR1; sleep 1000 & wait",
    ]);
    let started = std::time::Instant::now();
    d.ok(&["stop", "sig"]);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "stop waited for the timeout"
    );
    assert_eq!(d.ok(&["inspect", "-f", "{{.State.ExitCode}}", "sig"]), "7");
    // A daemon restart: checks resume (starting, then healthy again, new results).
    let before = d.ok(&["inspect", "-f", "{{json .State.Health.Log}}", "img"]);
    d.stop();
    d.start();
    assert!(
        wait_for(Duration::from_secs(20), || {
            status(&d, "img") == "healthy"
                && d.ok(&["inspect", "-f", "{{json .State.Health.Log}}", "img"]) != before
        }),
        "checks did not resume after the daemon restart: {}",
        d.ok(&["inspect", "-f", "{{json .State.Health}}", "img"])
    );
    // Refused: bad durations, with Docker's messages.
    let (code, body) = d.api(
        "POST",
        "/containers/create",
        Some(r#"{"Image":"busybox","Cmd":["true"],"Healthcheck":{"Test":["CMD","true"],"Interval":10}}"#),
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("Interval in Healthcheck cannot be less than 1ms"),
        "{body}"
    );
    let o = d.fail(&[
        "run",
        "--no-healthcheck",
        "--health-retries",
        "1",
        "busybox",
        "true",
    ]);
    assert!(
        o.stderr
            .contains("--no-healthcheck conflicts with --health-* options"),
        "{o}"
    );
}
