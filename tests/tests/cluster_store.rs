//! netloomd on etcd (`--cluster-store`): state lives in etcd, an unreachable etcd
//! makes requests fail fast with 503 naming the store (and they work again when
//! it returns), and a daemon that cannot reach its etcd at start-up says so.
//!
//! Each test runs its own etcd inside the daemon's network namespace.

use std::process::Command;
use std::time::{Duration, Instant};

use netloom_e2e::{Daemon, bin_dir, daemon_on_etcd, run_cmd};

/// `etcdctl` inside the daemon's namespace.
fn etcdctl(d: &Daemon, args: &[&str]) -> netloom_e2e::Out {
    let mut a = vec!["etcdctl", "--endpoints", "127.0.0.1:2379"];
    a.extend_from_slice(args);
    d.netns(&a)
}

#[test]
fn state_lives_in_etcd_and_survives_a_new_data_root() {
    let Some(mut d) = daemon_on_etcd(&[]) else {
        return;
    };
    let id = d.ok(&["network", "create", "--subnet", "10.77.0.0/24", "inetcd"]);
    let keys = etcdctl(&d, &["get", "--prefix", "--keys-only", "/netloom/network/"]);
    assert!(keys.ok(), "{keys}");
    assert!(
        keys.stdout.contains(&format!("/netloom/network/{id}")),
        "{keys}"
    );
    assert!(!d.dir.join("data/netloom.db").exists());
    // a daemon with an empty data root but the same etcd finds the network again
    d.stop();
    std::fs::remove_dir_all(d.dir.join("data")).unwrap();
    d.start();
    let ls = d.ok(&["network", "ls", "--format", "{{.Name}} {{.ID}}"]);
    assert!(ls.contains(&format!("inetcd {}", &id[..12])), "{ls}");
    let bridge = d.netns(&["ip", "-o", "link", "show", &format!("br-{}", &id[..12])]);
    assert!(bridge.ok(), "bridge not re-created from etcd: {bridge}");
}

#[test]
fn unreachable_etcd_is_a_503_naming_it_then_works_again() {
    let Some(mut d) = daemon_on_etcd(&[("NETLOOM_STORE_TIMEOUT", "1")]) else {
        return;
    };
    d.ok(&["network", "create", "before"]);
    let links_before = d
        .netns(&["ip", "-o", "link", "show"])
        .stdout
        .lines()
        .count();
    d.etcd.as_mut().unwrap().kill();

    let started = Instant::now();
    let (code, body) = d.api(
        "POST",
        "/networks/create",
        Some(r#"{"Name":"during","CheckDuplicate":true}"#),
    );
    let took = started.elapsed();
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("etcd store http://127.0.0.1:2379 is unavailable"),
        "{body}"
    );
    assert!(
        body.contains("check that etcd at http://127.0.0.1:2379 runs and can be reached"),
        "{body}"
    );
    // answered within the store deadline (1 s here), not after a hang
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let o = d.fail(&["network", "create", "during"]);
    assert!(o.stderr.contains("is unavailable"), "{o}");
    // nothing half-made: no network, no new link
    let ls = d.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!ls.lines().any(|l| l == "during"), "{ls}");
    let links = d
        .netns(&["ip", "-o", "link", "show"])
        .stdout
        .lines()
        .count();
    assert_eq!(links, links_before, "a link was left behind");

    d.etcd.as_mut().unwrap().restart();
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let o = d.cli(&["network", "create", "during"]);
        if o.ok() {
            break;
        }
        assert!(
            o.stderr.contains("is unavailable") && Instant::now() < until,
            "not working again: {o}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let ls = d.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(
        ls.lines().any(|l| l == "during") && ls.lines().any(|l| l == "before"),
        "{ls}"
    );
}

#[test]
fn daemon_refuses_to_start_without_its_etcd() {
    let Some(mut d) = daemon_on_etcd(&[]) else {
        return;
    };
    d.stop();
    d.etcd.as_mut().unwrap().kill();
    let run = |args: &[&str]| {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", d.name))
            .arg(bin_dir().join("netloomd"))
            .arg("--data-root")
            .arg(d.dir.join("data"))
            .arg("--exec-root")
            .arg(d.dir.join("exec"))
            .arg("--config-file")
            .arg(d.dir.join("none.json"))
            .args(args)
            .env("NETLOOM_STORE_TIMEOUT", "1");
        run_cmd(c, Duration::from_secs(30))
    };
    let o = run(&["--cluster-store", "etcd://127.0.0.1:2379"]);
    assert_eq!(o.code, 1, "{o}");
    assert!(
        o.stderr
            .contains("etcd store http://127.0.0.1:2379 is unavailable")
            && o.stderr
                .contains("check that etcd at http://127.0.0.1:2379 runs"),
        "{o}"
    );
    let o = run(&["--cluster-store", "zk://127.0.0.1:2181"]);
    assert_eq!(o.code, 1, "{o}");
    assert!(
        o.stderr.contains(
            r#"invalid --cluster-store "zk://127.0.0.1:2181": zk:// stores are not supported, only etcd"#
        ),
        "{o}"
    );
    d.etcd.as_mut().unwrap().restart();
    d.start();
    d.ok(&["network", "ls"]);
}
