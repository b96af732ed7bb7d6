//! `netloom events`: replay with --since/--until in docker's line format, filters,
//! Go templates and JSON, live streaming until a future --until, bad values.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use netloom_e2e::{Daemon, bin_dir, daemon_or_skip, run_cmd, wait_for};

/// Unix seconds (with nanoseconds) `offset` seconds from now, as docker sends them.
fn unix_ts(offset: f64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    format!("{:.9}", now + offset)
}

/// An RFC 3339 UTC time `offset` seconds from now (via `date`).
fn rfc3339(offset: i64) -> String {
    let o = run_cmd(
        {
            let mut c = Command::new("date");
            c.args([
                "-u",
                "-d",
                &format!("{offset} seconds"),
                "+%Y-%m-%dT%H:%M:%S.%NZ",
            ]);
            c
        },
        Duration::from_secs(5),
    );
    assert!(o.ok(), "date: {o}");
    o.stdout.trim().to_string()
}

/// Creates a network, runs a `--rm` container on it and removes the network:
/// returns (network id, container name).
fn lifecycle(d: &Daemon, net: &str, ctr: &str) -> String {
    let net_id = d.ok(&["network", "create", net]);
    d.ok(&[
        "run",
        "--rm",
        "--network",
        net,
        "--name",
        ctr,
        "busybox",
        "true",
    ]);
    assert!(
        wait_for(Duration::from_secs(5), || !d
            .ok(&["ps", "-a", "--format", "{{.Names}}"])
            .contains(ctr)),
        "--rm removed the container"
    );
    d.ok(&["network", "rm", net]);
    net_id
}

#[test]
fn netloom_events_replay_in_docker_format() {
    let d = daemon_or_skip!();
    // Right after the daemon's start-up events (default networks, image import).
    let t0u = unix_ts(0.0);
    let t0 = rfc3339(0);
    let net_id = lifecycle(&d, "evnet1", "evctr1");
    let t1 = unix_ts(0.5);
    std::thread::sleep(Duration::from_millis(600));
    // --until in the past: the replayed events, then exit 0.
    // TZ=UTC: times print in the local zone, as docker's do.
    let utc_events = |since: &str| {
        let mut c = Command::new(bin_dir().join("netloom"));
        c.env("TZ", "UTC").args([
            "-H",
            &d.host_arg(),
            "events",
            "--since",
            since,
            "--until",
            &t1,
        ]);
        let o = run_cmd(c, Duration::from_secs(30));
        assert_eq!(o.code, 0, "{o}");
        o.stdout.trim().to_string()
    };
    let all = utc_events(&t0);
    let lines: Vec<&str> = all.lines().collect();
    let actions: Vec<String> = lines
        .iter()
        .map(|l| l.split(' ').skip(1).take(2).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        actions,
        [
            "network create",
            "container create",
            "network connect",
            "container start",
            "container die",
            "network disconnect",
            "container destroy",
            "network destroy",
        ],
        "{all}"
    );
    for l in &lines {
        // <time RFC 3339, 9 fraction digits, UTC> <Type> <Action> <ID> (<attrs>)
        let time = l.split(' ').next().unwrap_or_default();
        assert!(rfc3339_nano_utc(time), "{l}");
    }
    let create = lines[0];
    assert!(
        create.contains(&format!(" network create {net_id} (")),
        "{create}"
    );
    assert!(create.contains("name=evnet1"), "{create}");
    let attrs = &create[create.find('(').unwrap_or(0)..];
    let keys: Vec<&str> = attrs
        .trim_matches(['(', ')'])
        .split(", ")
        .map(|kv| kv.split('=').next().unwrap_or_default())
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "attributes sorted by key: {create}");
    assert!(lines[4].contains("exitCode=0"), "{}", lines[4]);
    // The same window as Unix seconds; durations back from now.
    let again = utc_events(&t0u);
    assert_eq!(again, all);
    let dur = d.ok(&[
        "events",
        "--since",
        "10m",
        "--until",
        "0s",
        "--filter",
        "event=destroy",
    ]);
    assert_eq!(dur.lines().count(), 2, "{dur}");
}

/// Is `t` shaped like `2026-11-28T00:30:00.123456789Z` (docker's RFC3339NanoFixed)?
fn rfc3339_nano_utc(t: &str) -> bool {
    t.len() == 30
        && t.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            19 => b == b'.',
            29 => b == b'Z',
            _ => b.is_ascii_digit(),
        })
}

#[test]
fn netloom_events_filters_format_and_errors() {
    let d = daemon_or_skip!();
    let t0 = unix_ts(0.0);
    lifecycle(&d, "evnet2", "evctr2");
    let t1 = unix_ts(0.5);
    std::thread::sleep(Duration::from_millis(600));
    let ev = |extra: &[&str]| {
        let mut a = vec!["events", "--since", &t0, "--until", &t1];
        a.extend_from_slice(extra);
        d.ok(&a)
    };
    let fmt = "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}";
    assert_eq!(
        ev(&["--filter", "type=network", "--format", fmt]),
        "network create evnet2\nnetwork connect evnet2\nnetwork disconnect evnet2\nnetwork destroy evnet2"
    );
    assert_eq!(
        ev(&["-f", "event=create", "--format", "{{.Type}} {{.Action}}"]),
        "network create\ncontainer create"
    );
    assert_eq!(
        ev(&["-f", "event=start", "-f", "event=die", "--format", fmt]),
        "container start evctr2\ncontainer die evctr2"
    );
    assert_eq!(
        ev(&[
            "-f",
            "container=evctr2",
            "-f",
            "type=container",
            "--format",
            "{{.Action}}"
        ]),
        "create\nstart\ndie\ndestroy"
    );
    // Time fields and JSON.
    let t = ev(&[
        "-f",
        "event=create",
        "-f",
        "type=network",
        "--format",
        "{{.Time}} {{.TimeNano}} {{.Actor.ID}}",
    ]);
    let parts: Vec<&str> = t.split(' ').collect();
    assert_eq!(parts.len(), 3, "{t}");
    assert!(
        parts[1].starts_with(parts[0]) && parts[1].len() == parts[0].len() + 9,
        "{t}"
    );
    let js = ev(&["--format", "json", "-f", "type=container"]);
    let first: serde_json::Value = serde_json::from_str(js.lines().next().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {js}"));
    assert_eq!(first["Type"], "container");
    assert_eq!(first["Action"], "create");
    assert_eq!(first["Actor"]["Attributes"]["name"], "evctr2");
    assert_eq!(first["status"], "create", "docker's deprecated fields too");
    assert_eq!(js, ev(&["--format", "{{json .}}", "-f", "type=container"]));
    // Bad values: a clear error, non-zero exit, nothing printed.
    for (args, msg) in [
        (
            vec!["events", "--since", "yesterday"],
            "invalid value for --since",
        ),
        (
            vec!["events", "--until", "10x"],
            "invalid value for --until",
        ),
        (
            vec!["events", "--since", "2026-13-45T00:00:00Z"],
            "invalid value for --since",
        ),
        (
            vec!["events", "--until", "0s", "-f", "novalue"],
            "bad format of filter",
        ),
        (
            vec!["events", "--until", "0s", "-f", "type=bogus"],
            "invalid filter 'type=bogus'",
        ),
        (
            vec!["events", "--until", "0s", "--format", "{{.Type"],
            "unclosed action",
        ),
        (
            vec!["events", "--since", "1m", "--until", "10m"],
            "cannot be after",
        ),
    ] {
        let o = d.fail(&args);
        assert!(o.stderr.contains(msg), "{args:?}: {o}");
        assert!(o.stdout.is_empty(), "{args:?}: {o}");
    }
}

#[test]
fn netloom_events_streams_live_until_a_future_time() {
    let d = daemon_or_skip!();
    let until = unix_ts(4.0);
    let mut c = Command::new(bin_dir().join("netloom"));
    c.args([
        "-H",
        &d.host_arg(),
        "events",
        "--until",
        &until,
        "-f",
        "type=network",
    ]);
    c.args(["--format", "{{.Action}} {{.Actor.Attributes.name}}"]);
    let h = std::thread::spawn(move || run_cmd(c, Duration::from_secs(20)));
    std::thread::sleep(Duration::from_millis(1500));
    d.ok(&["network", "create", "evlive"]);
    d.ok(&["network", "rm", "evlive"]);
    let o = h
        .join()
        .unwrap_or_else(|_| panic!("events thread panicked"));
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(o.stdout, "create evlive\ndestroy evlive\n", "{o}");
}
