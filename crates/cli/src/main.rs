//! `netloom` — Docker-compatible command-line client for `netloomd`.
//!
//! Speaks the Docker Engine API v1.47 over a Unix socket (`-H/--host`,
//! `NETLOOM_HOST`, default `unix:///run/netloom/netloom.sock`) and mirrors
//! docker CLI subcommands, flags and output formats: `network`, `image`,
//! `container` groups plus the usual top-level shortcuts (`run`, `ps`,
//! `exec`, `images`, …).
//!
//! Errors print as `Error response from daemon: <message>` on stderr with
//! exit status 1; `run`/`create` exit 125 on errors and `run`/`exec`
//! otherwise exit with the container process's status.

mod client;
mod container;
mod events;
mod filters;
mod format;
mod image;
mod image_io;
mod lifecycle;
mod network;
mod ports;
mod pull;
mod rename;
mod runopts;
mod stream;
mod swarm;
mod system;
mod volume;

use std::process::ExitCode;

use clap::{ArgAction, Parser, Subcommand};

use crate::client::{Client, DEFAULT_HOST};
use crate::container::ContainerCmd;
use crate::image::ImageCmd;
use crate::network::NetworkCmd;

/// A Docker-compatible container networking client for netloomd.
#[derive(Debug, Parser)]
#[command(name = "netloom", version, disable_version_flag = true)]
struct Cli {
    /// Daemon socket to connect to (unix:///path/to.sock)
    #[arg(
        short = 'H',
        long,
        env = "NETLOOM_HOST",
        default_value = DEFAULT_HOST,
        global = true
    )]
    host: String,
    /// Print version information and quit
    #[arg(short = 'v', long = "version", action = ArgAction::Version)]
    version: Option<bool>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create and run a new container from an image
    #[command(disable_help_flag = true)]
    Run(container::RunArgs),
    /// Create a new container
    #[command(disable_help_flag = true)]
    Create(container::RunArgs),
    /// Execute a command in a running container
    Exec(container::ExecArgs),
    /// List containers
    Ps(container::PsArgs),
    /// Start one or more stopped containers
    Start(container::StartArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(container::AttachArgs),
    /// Get real time events from the server
    Events(events::EventsArgs),
    /// Stop one or more running containers
    Stop(container::StopArgs),
    /// Restart one or more containers
    Restart(container::StopArgs),
    /// Kill one or more running containers
    Kill(container::KillArgs),
    /// Remove one or more containers
    Rm(container::RmArgs),
    /// Return low-level information on containers, images or networks
    Inspect(container::InspectArgs),
    /// Fetch the logs of a container
    Logs(container::LogsArgs),
    /// Rename a container
    Rename(rename::RenameArgs),
    /// List port mappings or a specific mapping for the container
    Port(container::PortArgs),
    /// List images
    Images(image::LsArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(image::ImportArgs),
    /// Remove one or more images
    Rmi(image::RmArgs),
    /// Download an image from a registry
    Pull(pull::PullArgs),
    /// Load an image from a tar archive or STDIN
    Load(image_io::LoadArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(image_io::SaveArgs),
    /// Show the history of an image
    History(image_io::HistoryArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(image_io::TagArgs),
    /// Manage containers
    #[command(subcommand)]
    Container(ContainerCmd),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCmd),
    /// Manage networks
    #[command(subcommand)]
    Network(NetworkCmd),
    /// Manage volumes
    #[command(subcommand)]
    Volume(volume::VolumeCmd),
    /// Manage Swarm
    #[command(subcommand)]
    Swarm(swarm::SwarmCmd),
    /// Manage Swarm nodes
    #[command(subcommand)]
    Node(swarm::NodeCmd),
    /// Show the netloom version information
    Version(system::VersionArgs),
    /// Display system-wide information
    Info(system::InfoArgs),
}

/// Whether errors of this command exit 125 (docker's run/create convention).
fn exits_125(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::Run(_)
            | Command::Create(_)
            | Command::Container(ContainerCmd::Run(_) | ContainerCmd::Create(_))
    )
}

async fn dispatch(client: &Client, cmd: Command) -> anyhow::Result<i32> {
    match cmd {
        Command::Run(a) => container::run_cmd(client, ContainerCmd::Run(a)).await,
        Command::Create(a) => container::run_cmd(client, ContainerCmd::Create(a)).await,
        Command::Exec(a) => container::run_cmd(client, ContainerCmd::Exec(a)).await,
        Command::Ps(a) => container::run_cmd(client, ContainerCmd::Ls(a)).await,
        Command::Start(a) => container::run_cmd(client, ContainerCmd::Start(a)).await,
        Command::Attach(a) => container::run_cmd(client, ContainerCmd::Attach(a)).await,
        Command::Events(a) => events::events(client, a).await,
        Command::Stop(a) => container::run_cmd(client, ContainerCmd::Stop(a)).await,
        Command::Restart(a) => container::run_cmd(client, ContainerCmd::Restart(a)).await,
        Command::Kill(a) => container::run_cmd(client, ContainerCmd::Kill(a)).await,
        Command::Rm(a) => container::run_cmd(client, ContainerCmd::Rm(a)).await,
        Command::Inspect(a) => container::inspect(client, a).await,
        Command::Logs(a) => container::run_cmd(client, ContainerCmd::Logs(a)).await,
        Command::Rename(a) => rename::rename(client, a).await,
        Command::Port(a) => container::run_cmd(client, ContainerCmd::Port(a)).await,
        Command::Images(a) => image::ls(client, a).await,
        Command::Import(a) => image::run(client, ImageCmd::Import(a)).await,
        Command::Rmi(a) => image::rm(client, a).await,
        Command::Pull(a) => pull::pull(client, a).await,
        Command::Load(a) => image_io::load(client, a).await,
        Command::Save(a) => image_io::save(client, a).await,
        Command::History(a) => image_io::history(client, a).await,
        Command::Tag(a) => image_io::tag(client, a).await,
        Command::Container(c) => container::run_cmd(client, c).await,
        Command::Image(c) => image::run(client, c).await,
        Command::Network(c) => network::run(client, c).await,
        Command::Volume(c) => volume::run(client, c).await,
        Command::Swarm(c) => swarm::run(client, c).await,
        Command::Node(c) => swarm::node(client, c).await,
        Command::Version(a) => system::version(client, a).await,
        Command::Info(a) => system::info(client, a).await,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let fail_code: u8 = if exits_125(&cli.command) { 125 } else { 1 };
    let client = match Client::new(&cli.host) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e:#}");
            return ExitCode::from(fail_code);
        }
    };
    match dispatch(&client, cli.command).await {
        Ok(code) => ExitCode::from((code & 0xff) as u8),
        Err(e) => {
            let msg = format!("{e:#}");
            eprintln!("{msg}");
            ExitCode::from(start_failure_code(&msg).unwrap_or(fail_code))
        }
    }
}

/// docker's exit code for a container whose command could not be run: 127 when it
/// does not exist, 126 when it cannot be executed.
fn start_failure_code(msg: &str) -> Option<u8> {
    if !msg.contains("unable to start container process") {
        return None;
    }
    if msg.contains("executable file not found") || msg.contains("no such file or directory") {
        Some(127)
    } else if msg.contains("permission denied") || msg.contains("not executable") {
        Some(126)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_and_flag_has_help() {
        fn check(cmd: &clap::Command, path: &str) {
            for a in cmd.get_arguments() {
                assert!(
                    a.get_help().is_some() || a.get_long_help().is_some(),
                    "{path}: argument {} has no help",
                    a.get_id()
                );
            }
            for sc in cmd.get_subcommands() {
                assert!(
                    sc.get_about().is_some(),
                    "{path} {} has no about",
                    sc.get_name()
                );
                check(sc, &format!("{path} {}", sc.get_name()));
            }
        }
        check(&Cli::command(), "netloom");
    }

    #[test]
    fn parses_docker_style_invocations() {
        let p = |args: &[&str]| Cli::try_parse_from(args).map_err(|e| e.to_string());
        assert!(p(&["netloom", "-H", "unix:///tmp/x.sock", "network", "ls", "-q"]).is_ok());
        assert!(p(&["netloom", "network", "create", "--ipv6", "n"]).is_ok());
        assert!(
            p(&[
                "netloom", "run", "-d", "--rm", "-p", "8080:80", "alpine", "sleep", "1d"
            ])
            .is_ok()
        );
        assert!(p(&["netloom", "exec", "c1", "ls", "-la"]).is_ok());
        assert!(p(&["netloom", "container", "ls", "-a"]).is_ok());
        assert!(p(&["netloom", "image", "import", "-", "img:1"]).is_ok());
        assert!(p(&["netloom", "stop", "-t", "3", "c1", "c2"]).is_ok());
        assert!(p(&["netloom", "run", "--help"]).is_err());
        assert!(p(&["netloom", "attach", "--sig-proxy=false", "--no-stdin", "c1"]).is_ok());
        assert!(
            p(&[
                "netloom",
                "container",
                "attach",
                "--detach-keys",
                "ctrl-a,x",
                "c1"
            ])
            .is_ok()
        );
        assert!(p(&["netloom", "attach"]).is_err());
        assert!(p(&["netloom", "attach", "--sig-proxy=maybe", "c1"]).is_err());
        assert!(
            p(&[
                "netloom",
                "events",
                "--since",
                "10m",
                "--until",
                "0s",
                "-f",
                "type=network",
                "--filter",
                "event=create",
                "--format",
                "json"
            ])
            .is_ok()
        );
        let cli = Cli::try_parse_from(["netloom", "network", "create", "--ipv6", "n"]);
        match cli.map(|c| c.command) {
            Ok(Command::Network(NetworkCmd::Create(a))) => {
                assert_eq!(a.ipv6, Some(true));
                assert_eq!(a.name, "n");
            }
            other => panic!("unexpected parse: {other:?}"),
        }
    }
}
