//! Debian's docker-compose (1.29) against netloomd: `restart:` policies and a service
//! that waits for another to be healthy (`depends_on: condition: service_healthy`).

use std::process::Command;
use std::time::Duration;

use netloom_e2e::{daemon_or_skip, run_cmd, wait_for};

const COMPOSE: &str = r#"
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
    std::fs::write(dir.join("docker-compose.yml"), COMPOSE).unwrap_or_default();
    let compose = |args: &[&str]| {
        let mut c = Command::new(bin);
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
