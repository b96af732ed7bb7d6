//! `netloom rename` / `POST /containers/{id}/rename`: the embedded DNS follows the new
//! name at once on every network of the container (its aliases stay), a name in use
//! is refused with Docker's 409, the name survives a daemon restart, and a `rename`
//! event names the old one.

use netloom_e2e::{Daemon, daemon_or_skip};

/// The IPv4 addresses busybox `nslookup NAME 127.0.0.11` prints inside `c` (empty if
/// the name does not resolve).
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
    v
}

#[test]
fn rename_moves_dns_names_on_every_network() {
    let d = daemon_or_skip!();
    d.ok(&["network", "create", "ren_a"]);
    d.ok(&["network", "create", "ren_b"]);
    d.run_sleeper("old", &["--network", "ren_a", "--network-alias", "db"]);
    d.ok(&["network", "connect", "--alias", "store", "ren_b", "old"]);
    d.run_sleeper("peer", &["--network", "ren_a"]);
    d.ok(&["network", "connect", "ren_b", "peer"]);
    let ip_a = d.ip("old", "ren_a");
    let ip_b = d.ip("old", "ren_b");
    // The bare name answers on both networks the peer shares with it.
    let both = resolve(&d, "peer", "old");
    assert!(
        both.contains(&ip_a) && both.contains(&ip_b),
        "old -> {both:?}"
    );
    assert_eq!(
        resolve(&d, "peer", "old.ren_b"),
        std::slice::from_ref(&ip_b)
    );

    d.ok(&["rename", "old", "web_1"]);
    // At once, without a restart of either container.
    assert!(
        resolve(&d, "peer", "old").is_empty(),
        "old name still resolves"
    );
    assert!(resolve(&d, "peer", "old.ren_a").is_empty());
    assert!(resolve(&d, "peer", "old.ren_b").is_empty());
    assert_eq!(
        resolve(&d, "peer", "web_1.ren_a"),
        std::slice::from_ref(&ip_a)
    );
    assert_eq!(
        resolve(&d, "peer", "web_1.ren_b"),
        std::slice::from_ref(&ip_b)
    );
    let both = resolve(&d, "peer", "web_1");
    assert!(
        both.contains(&ip_a) && both.contains(&ip_b),
        "web_1 -> {both:?}"
    );
    // The aliases stay.
    assert_eq!(resolve(&d, "peer", "db"), std::slice::from_ref(&ip_a));
    assert_eq!(resolve(&d, "peer", "store"), std::slice::from_ref(&ip_b));
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.Name}}", "web_1"]),
        "/web_1",
        "inspect shows the new name"
    );
    let ps = d.ok(&["ps", "--format", "{{.Names}}"]);
    assert!(
        ps.lines().any(|l| l == "web_1") && !ps.lines().any(|l| l == "old"),
        "{ps}"
    );
    // The container can be reached by its new name in the CLI, not by the old one.
    d.exec_ok("web_1", "true");
    let o = d.fail(&["inspect", "old"]);
    assert!(o.stderr.contains("No such"), "{o}");

    // A rename event with the old name.
    let ev = d.ok(&[
        "events",
        "--since",
        "5m",
        "--until",
        "0s",
        "--filter",
        "event=rename",
        "--format",
        "{{.Actor.Attributes.name}} {{.Actor.Attributes.oldName}}",
    ]);
    assert_eq!(ev, "web_1 /old");

    // The new name survives a daemon restart (the container keeps running).
    let mut d = d;
    d.stop();
    d.start();
    assert_eq!(d.ok(&["inspect", "-f", "{{.Name}}", "web_1"]), "/web_1");
    assert_eq!(resolve(&d, "peer", "web_1.ren_b"), [ip_b]);
    assert!(resolve(&d, "peer", "old").is_empty());
    // And the old name is free again.
    d.run_sleeper("old", &["--network", "ren_a"]);
    let ip_new = d.ip("old", "ren_a");
    assert_eq!(resolve(&d, "peer", "old"), [ip_new]);
}

#[test]
fn rename_refusals_change_nothing() {
    let d = daemon_or_skip!();
    let a = d.run_sleeper("ren_x", &[]);
    let b = d.ok(&["create", "--name", "ren_y", "busybox", "true"]);
    // A name in use: Docker's 409 and message, from the API and the CLI.
    let (code, body) = d.api("POST", &format!("/containers/{a}/rename?name=ren_y"), None);
    assert_eq!(code, 409, "{body}");
    assert!(
        body.contains(&format!(
            "Conflict. The container name \\\"/ren_y\\\" is already in use by container \\\"{b}\\\". You have to remove (or rename) that container to be able to reuse that name."
        )),
        "{body}"
    );
    let o = d.fail(&["rename", "ren_x", "ren_y"]);
    assert!(o.stderr.contains("is already in use by container"), "{o}");
    let (code, body) = d.api("POST", "/containers/ren_x/rename?name=ren_x", None);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("same name as its current name"), "{body}");
    let (code, body) = d.api("POST", "/containers/ren_x/rename?name=a%2Fb", None);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("Invalid container name (/a/b)"), "{body}");
    let (code, body) = d.api("POST", "/containers/ren_x/rename", None);
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("Neither old nor new names may be empty"),
        "{body}"
    );
    let (code, body) = d.api("POST", "/containers/nosuch/rename?name=zz", None);
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("No such container: nosuch"), "{body}");
    let names = d.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    assert_eq!(names, ["ren_x", "ren_y"]);
    let o = d.fail(&["rename", "--help-not-a-flag", "a", "b"]);
    assert!(!o.ok());
    let help = d.ok(&["rename", "--help"]);
    assert!(help.contains("netloom rename"), "{help}");
}
