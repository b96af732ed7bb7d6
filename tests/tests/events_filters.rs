//! Every `/events` filter Docker has, with moby's matching rules: labels (`key`,
//! `key=value`, all must hold) against the container's labels, which every container
//! event carries; names or ID prefixes for containers and networks; images with or
//! without their tag; type, event, scope; and Docker's 400 for an unknown filter.

use netloom_e2e::{Daemon, daemon_or_skip};

/// `netloom events` over the last minutes, up to now, as `Type Action Actor-name` lines.
fn events(d: &Daemon, filters: &[&str]) -> Vec<String> {
    let mut a = vec!["events", "--since", "10m", "--until", "0s"];
    for f in filters {
        a.extend(["--filter", f]);
    }
    a.extend([
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
    ]);
    d.ok(&a).lines().map(str::to_string).collect()
}

#[test]
fn every_docker_events_filter() {
    let d = daemon_or_skip!();
    d.ok(&["network", "create", "evf_net"]);
    let web = d.ok(&[
        "run",
        "-d",
        "--name",
        "evf_web",
        "--label",
        "app=shop",
        "--label",
        "tier=front",
        "--network",
        "evf_net",
        "busybox",
        "sleep",
        "1000",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "evf_db",
        "--label",
        "app=shop",
        "--label",
        "tier=back",
        "busybox:latest",
        "sleep",
        "1000",
    ]);
    d.ok(&["run", "--rm", "--name", "evf_other", "busybox", "true"]);

    // Labels: key=value, key alone, several (AND); the events carry the labels.
    let shop = events(&d, &["label=app=shop", "event=start"]);
    assert_eq!(shop, ["container start evf_web", "container start evf_db"]);
    let front = events(&d, &["label=app=shop", "label=tier=front"]);
    assert_eq!(
        front,
        ["container create evf_web", "container start evf_web"]
    );
    assert_eq!(events(&d, &["label=tier", "event=create"]).len(), 2);
    assert!(events(&d, &["label=app=nope"]).is_empty());
    let labels = d.ok(&[
        "events",
        "--since",
        "10m",
        "--until",
        "0s",
        "--filter",
        "container=evf_web",
        "--filter",
        "event=start",
        "--format",
        "{{json .Actor.Attributes}}",
    ]);
    let v: serde_json::Value = serde_json::from_str(&labels).expect("json attributes");
    assert_eq!(v["app"], "shop", "{labels}");
    assert_eq!(v["tier"], "front", "{labels}");
    assert_eq!(v["image"], "busybox", "{labels}");

    // Containers by name or ID prefix.
    assert_eq!(
        events(&d, &["container=evf_db"]),
        ["container create evf_db", "container start evf_db"]
    );
    let by_id = events(&d, &[&format!("container={}", &web[..10])]);
    assert_eq!(
        by_id,
        ["container create evf_web", "container start evf_web"]
    );
    // A --rm container's whole life, its name matched by prefix.
    let other = events(&d, &["container=evf_oth", "type=container"]);
    assert_eq!(
        other,
        [
            "container create evf_other",
            "container start evf_other",
            "container die evf_other",
            "container destroy evf_other"
        ]
    );

    // Networks by name; type and event exact.
    let net = events(&d, &["network=evf_net", "event=connect"]);
    assert_eq!(net, ["network connect evf_net"]);
    assert!(events(&d, &["type=network", "event=conn"]).is_empty());
    assert!(
        events(&d, &["type=network"])
            .iter()
            .all(|l| l.starts_with("network ")),
    );

    // Images: exact, with or without the tag; container events match by their image.
    let img = events(&d, &["image=busybox", "event=create"]);
    assert_eq!(img.len(), 3, "{img:?}");
    // moby strips the tag of the event's image, not of the filter's value.
    assert_eq!(
        events(&d, &["image=busybox:latest", "event=create"]),
        ["container create evf_db"]
    );
    assert!(events(&d, &["image=busy", "event=create"]).is_empty());

    // Scope: everything here is local.
    assert_eq!(
        events(&d, &["scope=local", "event=create"]),
        events(&d, &["event=create"])
    );
    assert!(events(&d, &["scope=swarm"]).is_empty());

    // Filters for objects with no events here match nothing, and are not refused.
    for f in [
        "volume=x",
        "plugin=x",
        "daemon=x",
        "node=x",
        "service=x",
        "secret=x",
        "config=x",
    ] {
        assert!(events(&d, &[f]).is_empty(), "{f}");
    }
    assert!(!events(&d, &["type=container", "daemon=", "volume="]).is_empty());

    // An unknown filter: Docker's 400 and text, from the API and the CLI.
    let (code, body) = d.api(
        "GET",
        "/events?filters=%7B%22colour%22%3A%5B%22red%22%5D%7D",
        None,
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("invalid filter 'colour'"), "{body}");
    let o = d.fail(&[
        "events",
        "--since",
        "1m",
        "--until",
        "0s",
        "--filter",
        "colour=red",
    ]);
    assert!(o.stderr.contains("invalid filter 'colour'"), "{o}");
    let (code, body) = d.api(
        "GET",
        "/events?filters=%7B%22type%22%3A%5B%22bogus%22%5D%7D",
        None,
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("invalid filter 'type=bogus'"), "{body}");
}
