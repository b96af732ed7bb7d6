//! The real `docker` CLI (28.x) pointed at one test daemon through `DOCKER_HOST`, with
//! a private `DOCKER_CONFIG` (never `~/.docker`). A missing docker binary is a loud
//! skip ([`docker_bin`] returns None), never a failure.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::{Daemon, Out, run_cmd, run_cmd_open_stdin};

/// The docker client binary, if installed.
pub fn docker_bin() -> Option<PathBuf> {
    let fixed = PathBuf::from("/usr/local/bin/docker");
    if fixed.is_file() {
        return Some(fixed);
    }
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("docker"))
            .find(|p| p.is_file())
    })
}

/// The docker CLI pointed at one daemon.
pub struct Docker<'a> {
    /// The daemon it talks to.
    pub d: &'a Daemon,
    /// The docker binary.
    pub bin: PathBuf,
    /// Its private `DOCKER_CONFIG`.
    pub config: PathBuf,
}

impl<'a> Docker<'a> {
    /// The CLI `bin` for daemon `d`.
    pub fn new(d: &'a Daemon, bin: PathBuf) -> Self {
        let config = d.dir.join("docker-config");
        std::fs::create_dir_all(&config).expect("create DOCKER_CONFIG dir");
        Docker { d, bin, config }
    }

    /// Runs `docker ARGS` with a timeout.
    pub fn run_t(&self, args: &[&str], timeout: Duration) -> Out {
        run_cmd(self.command(args), timeout)
    }

    /// `docker ARGS` with the CLI's environment set, not started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args)
            .env("DOCKER_HOST", self.d.host_arg())
            .env("DOCKER_CONFIG", &self.config)
            .env("DOCKER_CLI_HINTS", "false")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_API_VERSION")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH");
        c
    }

    /// `docker exec C sh -c SCRIPT`.
    pub fn exec(&self, c: &str, script: &str) -> Out {
        self.run(&["exec", c, "sh", "-c", script])
    }

    /// `docker run -d --name NAME EXTRA... busybox sleep 300`.
    #[track_caller]
    pub fn sleeper(&self, name: &str, extra: &[&str]) -> String {
        let mut a = vec!["run", "-d", "--name", name];
        a.extend_from_slice(extra);
        a.extend_from_slice(&["busybox", "sleep", "300"]);
        self.ok(&a)
    }

    /// Runs `sh -c SCRIPT` with `@docker@` replaced by the docker binary and the CLI's
    /// environment set (45 s timeout).
    pub fn shell(&self, script: &str) -> Out {
        run_cmd(self.sh(script), Duration::from_secs(45))
    }

    /// `sh -c SCRIPT` with `@docker@` replaced and the CLI's environment set.
    pub fn sh(&self, script: &str) -> Command {
        let script = script.replace("@docker@", &self.bin.display().to_string());
        let mut c = Command::new("sh");
        c.args(["-c", &script])
            .env("DOCKER_HOST", self.d.host_arg())
            .env("DOCKER_CONFIG", &self.config)
            .env("DOCKER_CLI_HINTS", "false")
            .env_remove("DOCKER_API_VERSION");
        c
    }

    /// Like [`Docker::shell`], for `script` sessions that type nothing: stdin stays open,
    /// so `script` never types an EOF character into the session (the container's
    /// terminal would echo it, e.g. `^@`, into the output and the log).
    pub fn tty_shell(&self, script: &str) -> Out {
        run_cmd_open_stdin(self.sh(script), Duration::from_secs(45))
    }

    /// Runs `docker ARGS` (30 s timeout).
    pub fn run(&self, args: &[&str]) -> Out {
        self.run_t(args, Duration::from_secs(30))
    }

    /// Must succeed; returns trimmed stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.ok(),
            "docker {args:?} failed: {o}\ndaemon log tail:\n{}",
            tail(&self.d.log(), 30)
        );
        o.stdout.trim().to_string()
    }

    /// Must fail (and not time out); returns the output.
    #[track_caller]
    pub fn fail(&self, args: &[&str]) -> Out {
        let o = self.run(args);
        assert!(!o.ok(), "docker {args:?} unexpectedly succeeded: {o}");
        assert_ne!(o.code, -999, "docker {args:?} hung: {o}");
        o
    }
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let l: Vec<&str> = s.lines().collect();
    l[l.len().saturating_sub(n)..].join("\n")
}

/// Daemon + docker CLI, or a skip (`return` from the test).
#[macro_export]
macro_rules! docker_or_skip {
    ($d:ident, $dk:ident) => {
        let Some(bin) = $crate::dockercli::docker_bin() else {
            println!("SKIP: no docker CLI binary (/usr/local/bin/docker or docker on PATH)");
            return;
        };
        let $d = $crate::daemon_or_skip!();
        let $dk = $crate::dockercli::Docker::new(&$d, bin);
    };
}
