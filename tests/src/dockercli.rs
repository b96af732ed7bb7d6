//! The real `docker` CLI (28.x) pointed at one test daemon through `DOCKER_HOST`, with
//! a private `DOCKER_CONFIG` (never `~/.docker`). A missing docker binary is a loud
//! skip ([`docker_bin`] returns None), never a failure.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::{Daemon, Out, run_cmd};

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
    d: &'a Daemon,
    bin: PathBuf,
    config: PathBuf,
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
        let mut c = Command::new(&self.bin);
        c.args(args)
            .env("DOCKER_HOST", self.d.host_arg())
            .env("DOCKER_CONFIG", &self.config)
            .env("DOCKER_CLI_HINTS", "false")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_API_VERSION")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH");
        run_cmd(c, timeout)
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
