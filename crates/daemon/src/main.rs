//! `netloomd`: the netloom daemon. Parses flags and `daemon.json`, opens the
//! store (the embedded file, or etcd with `--cluster-store`), reconciles the kernel with it, and serves the Docker Engine API
//! subset on a Unix socket. SIGTERM stops accepting requests and exits 0, leaving
//! running containers and their networking in place. The API's resource limits
//! (connections, slow clients, shutdown grace) are in `limits`.

mod api;
mod cluster;
mod config;
mod controller;
mod error;
mod limits;
mod memory;
mod nofile;
mod runtimes;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use tokio::net::UnixListener;
use tracing::{error, info};

fn main() {
    // The shim and exec helpers re-execute this binary: run them before anything else.
    if let Some(code) = netloom_runtime::maybe_run_internal() {
        std::process::exit(code);
    }
    // Before any thread or descriptor: the soft open-file limit up to the hard one
    // (what dockerd's unit does with LimitNOFILE=); children get the original back.
    memory::tune();
    let nofile = nofile::raise();
    if let Ok(n) = &nofile {
        netloom_runtime::set_child_nofile(n.original_soft);
    }
    let flags = config::Flags::parse();
    let cfg = match config::Config::load(&flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("netloomd: {e}");
            std::process::exit(1);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NETLOOM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("netloom={0},netloomd={0},netloom_daemon={0},netloom_drivers={0},netloom_kernel={0},netloom_runtime={0},warn", cfg.log_level))),
        )
        .with_writer(std::io::stderr)
        .init();
    match nofile {
        Ok(n) if n.soft < 4 * 1024 => tracing::warn!(
            soft = n.soft,
            hard = n.hard,
            "the open-file limit allows only about {} running containers (3 descriptors each): raise LimitNOFILE= (or ulimit -Hn) for netloomd",
            n.soft.saturating_sub(nofile::RESERVE + 32) / 3
        ),
        Ok(n) => tracing::debug!(
            soft = n.soft,
            hard = n.hard,
            was = n.original_soft,
            "open-file limit"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("netloomd: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(cfg)) {
        error!("{e:#}");
        eprintln!("netloomd: {e:#}");
        std::process::exit(1);
    }
}

/// The embedded store file under the data root, or the etcd cluster of
/// `--cluster-store` (which must answer now).
async fn open_store(cfg: &config::Config) -> anyhow::Result<Arc<dyn netloom_store::Store>> {
    let describe = |e: &netloom_store::StoreError| match e {
        netloom_store::StoreError::Unavailable { hint, .. } => {
            anyhow::anyhow!("{}; {hint}", error::chain(e))
        }
        e => anyhow::anyhow!("{}", error::chain(e)),
    };
    match &cfg.cluster_store {
        Some(etcd) => {
            let store = netloom_store::EtcdStore::connect(etcd.clone())
                .await
                .map_err(|e| describe(&e))?;
            info!(store = %etcd.describe(), "keeping state in the cluster store");
            Ok(Arc::new(store))
        }
        None => {
            let path = cfg.data_root.join("netloom.db");
            let store = netloom_store::EmbeddedStore::open(&path).map_err(|e| describe(&e))?;
            Ok(Arc::new(store))
        }
    }
}

async fn run(cfg: config::Config) -> anyhow::Result<()> {
    for d in [&cfg.data_root, &cfg.exec_root] {
        std::fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711))
            .with_context(|| format!("chmod {}", d.display()))?;
    }
    let store = open_store(&cfg).await?;
    let socket = cfg.socket.clone();
    let group = cfg.group.clone();
    let data_root = cfg.data_root.clone();
    let swarm_cfg = cfg.swarm.clone();
    let ctl = controller::Controller::start(cfg, store.clone()).await?;
    let swarm = cluster::Swarm::start(data_root, store, swarm_cfg).await?;
    ctl.set_swarm(swarm.clone());
    // Reconciliation allocated for every container at once: give it back, and keep
    // giving back what bursts of requests free.
    memory::trim();
    memory::spawn_trimmer();

    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    match std::fs::remove_file(&socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("remove stale socket {}", socket.display()));
        }
    }
    let listener =
        UnixListener::bind(&socket).with_context(|| format!("listen on {}", socket.display()))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("chmod {}", socket.display()))?;
    if let Some(g) = group {
        let gid = nix::unistd::Group::from_name(&g)
            .ok()
            .flatten()
            .ok_or_else(|| anyhow::anyhow!("invalid --group {g:?}: no such group"))?
            .gid;
        nix::unistd::chown(&socket, None, Some(gid))
            .with_context(|| format!("chown {}", socket.display()))?;
    }
    info!(socket = %socket.display(), "API listening");
    let app = tower::ServiceExt::oneshot(api::service(ctl.clone(), swarm.clone()), ())
        .await
        .unwrap_or_else(|e| match e {});
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        info!("shutting down; containers keep running");
    };
    limits::serve(listener, app, limits::Limits::from_environment(), shutdown).await;
    swarm.shutdown().await;
    let _ = std::fs::remove_file(&socket);
    Ok(())
}
