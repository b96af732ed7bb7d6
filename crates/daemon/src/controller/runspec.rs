//! The OCI runtime spec of a container, built from its record: what the shim needs
//! to run it (`config.json` with Docker's defaults and the container's options, the
//! runtime binary, the overlay's layers).

use std::path::PathBuf;

use netloom_model::{Container, HostOptions, Image};
use netloom_runtime::oci::{MountSpec, Resources, Rlimit, RunOptions, Security};
use netloom_runtime::options;
use netloom_runtime::runc::OciRuntime;

use super::Controller;
use crate::error::{CtlError, CtlResult};

/// The container's options, checked and in the runtime's terms.
struct Parsed {
    security: Security,
    mounts: Vec<MountSpec>,
    rlimits: Vec<Rlimit>,
    resources: Resources,
}

/// Checks `host` with Docker's rules; the message is the user's. `volumes` are the
/// bundle's binds of the container's volumes (volume_mounts.rs).
fn parse(
    host: &HostOptions,
    host_network: bool,
    volumes: Vec<MountSpec>,
) -> Result<Parsed, String> {
    let sec = options::parse_security_opts(&host.security_opt)?;
    let security = Security {
        privileged: host.privileged,
        cap_add: host.cap_add.clone(),
        cap_drop: host.cap_drop.clone(),
        no_new_privileges: sec.no_new_privileges,
        seccomp: sec.seccomp,
        unmask_paths: sec.unmask_paths,
    };
    for (what, caps) in [("CapAdd", &host.cap_add), ("CapDrop", &host.cap_drop)] {
        for c in caps {
            netloom_runtime::oci::normalize_cap(c)
                .map_err(|e| format!("invalid {what}: {}", strip(&e)))?;
        }
    }
    let mut mounts = Vec::new();
    for b in &host.binds {
        if options::volumes::parse_volume_bind(b)?.is_none() {
            mounts.push(options::parse_bind(b)?);
        }
    }
    for m in host.mounts.iter().filter(|m| m.typ != "volume") {
        mounts.push(options::parse_mount(&options::MountRequest {
            typ: m.typ.clone(),
            source: m.source.clone(),
            target: m.target.clone(),
            read_only: m.read_only,
            propagation: m.propagation.clone(),
            non_recursive: m.non_recursive,
            create_mountpoint: m.create_mountpoint,
            tmpfs_size: m.tmpfs_size,
            tmpfs_mode: m.tmpfs_mode,
        })?);
    }
    for (path, opts) in &host.tmpfs {
        mounts.push(options::parse_tmpfs(path, opts)?);
    }
    mounts.extend(volumes);
    options::check_duplicates(&mounts)?;
    // The shim's mount namespace is a slave of the host's: a mount made inside the
    // container cannot propagate back.
    for m in &mounts {
        if let MountSpec::Bind {
            propagation,
            destination,
            ..
        } = m
            && propagation.contains("shared")
        {
            return Err(format!(
                "bind propagation {propagation} for {destination} is not supported by netloom: use rprivate (the default), private, rslave or slave"
            ));
        }
    }
    let mut rlimits = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for u in &host.ulimits {
        if !seen.insert(u.name.clone()) {
            return Err(format!("duplicate ulimit {}: give each type once", u.name));
        }
        rlimits.push(options::check_ulimit(&u.name, u.soft, u.hard)?);
    }
    for (k, v) in &host.sysctls {
        options::check_sysctl(k, v, host_network)?;
    }
    let r = &host.resources;
    let resources = Resources {
        memory: r.memory,
        memory_swap: r.memory_swap,
        nano_cpus: r.nano_cpus,
        cpu_shares: r.cpu_shares,
        cpuset_cpus: r.cpuset_cpus.clone(),
        pids_limit: r.pids_limit,
    };
    options::check_resources(&resources)?;
    Ok(Parsed {
        security,
        mounts,
        rlimits,
        resources,
    })
}

/// A runtime error's text without the crate's prefix.
fn strip(e: &netloom_runtime::RuntimeError) -> String {
    e.to_string()
        .trim_start_matches("invalid container spec: ")
        .to_string()
}

/// A hint for runtime failures a user cannot act on from the runtime's words alone.
pub(crate) fn runtime_hint(e: &netloom_runtime::RuntimeError) -> &'static str {
    let s = e.to_string();
    if s.contains("hybrid mode not supported") {
        " (crun 1.8 cannot run containers on this host's hybrid cgroup layout, cgroup v1 controllers with cgroup v2 at /sys/fs/cgroup/unified: run them with runc, the default runtime, or boot the host with a unified cgroup v2 hierarchy)"
    } else if s.contains("no cgroup mount found") {
        " (netloomd's mount namespace has no cgroup filesystem under /sys/fs/cgroup: `ip netns exec` mounts a fresh /sys without it; start netloomd with `nsenter --net=/run/netns/NAME` instead, or mount the cgroup hierarchy in its namespace)"
    } else {
        ""
    }
}

impl Controller {
    /// The OCI runtime a container runs with (Docker's message for an unknown one).
    pub(crate) fn oci_runtime(&self, ctr: &Container) -> CtlResult<OciRuntime> {
        self.cfg
            .runtime
            .resolve(&ctr.host.runtime, &self.cfg.exec_root)
            .map_err(CtlError::invalid)
    }

    /// Checks a container's runtime options when it is created, so that a bad one
    /// fails the create and nothing is stored.
    pub(crate) fn check_host_options(&self, ctr: &Container) -> CtlResult<()> {
        if !self.cfg.runtime.knows(&ctr.host.runtime) {
            return Err(CtlError::invalid(format!(
                "unknown or invalid runtime name: {}",
                ctr.host.runtime
            )));
        }
        let volumes =
            super::volume_mounts::placeholder_binds(&ctr.host).map_err(CtlError::invalid)?;
        parse(&ctr.host, ctr.network_mode == "host", volumes).map_err(CtlError::invalid)?;
        Ok(())
    }

    /// Builds what the shim needs to start `ctr`.
    pub(crate) fn container_spec(
        &self,
        ctr: &Container,
        image: &Image,
        env: Vec<String>,
        files: Vec<(PathBuf, String)>,
        sandbox: Option<PathBuf>,
        wait_attach: bool,
    ) -> CtlResult<netloom_runtime::ContainerSpec> {
        let image_rootfs = self
            .paths
            .images
            .join(image.id.trim_start_matches("sha256:"))
            .join("rootfs");
        let volumes = self.volume_binds(ctr, &image_rootfs)?;
        let p = parse(&ctr.host, ctr.network_mode == "host", volumes).map_err(CtlError::invalid)?;
        // As Docker: a missing `-v` source is created as a directory (a `--mount`
        // source must exist, unless it asks for bind-create-mountpoint).
        for m in &p.mounts {
            if let MountSpec::Bind { source, .. } = m
                && std::fs::symlink_metadata(source).is_err()
                && let Err(e) = std::fs::create_dir_all(source)
            {
                return Err(CtlError::invalid(format!(
                    "cannot create bind source {}: {e}",
                    source.display()
                )));
            }
        }
        let runtime = self.oci_runtime(ctr)?;
        let layer_dir = self.container_dir(&ctr.id).join("layer");
        let opts = RunOptions {
            rootfs: layer_dir.join("merged"),
            read_only: ctr.host.read_only_rootfs,
            hostname: ctr.hostname.clone(),
            domainname: ctr.domainname.clone(),
            env,
            args: ctr.argv(),
            cwd: ctr.working_dir.clone(),
            tty: ctr.tty,
            console_size: ctr.console_size,
            netns: sandbox,
            security: p.security,
            bind_files: files,
            mounts: p.mounts,
            rlimits: p.rlimits,
            sysctls: ctr
                .host
                .sysctls
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            resources: p.resources,
            cgroups_path: self.cfg.runtime.cgroups_path(&ctr.id),
            cgroupns: match ctr.host.cgroupns_mode.as_str() {
                "private" => true,
                "host" => false,
                _ => crate::runtimes::cgroup_v2(),
            },
        };
        let mut oci =
            netloom_runtime::oci::build_spec(&opts).map_err(|e| CtlError::invalid(strip(&e)))?;
        if !ctr.lifecycle.annotations.is_empty() {
            let mut a = oci.annotations().clone().unwrap_or_default();
            a.extend(ctr.lifecycle.annotations.clone());
            oci.set_annotations(Some(a));
        }
        Ok(netloom_runtime::ContainerSpec {
            id: ctr.id.clone(),
            image_rootfs,
            layer_dir,
            state_dir: self.paths.run.join(&ctr.id),
            log_path: self.log_path(&ctr.id),
            runtime,
            oci,
            user: ctr.user.clone(),
            open_stdin: ctr.open_stdin,
            stdin_once: ctr.stdin_once,
            wait_attach,
        })
    }

    /// The confinement of `ctr` (for its exec sessions).
    pub(crate) fn container_security(&self, ctr: &Container) -> CtlResult<Security> {
        parse(&ctr.host, ctr.network_mode == "host", Vec::new())
            .map(|p| p.security)
            .map_err(CtlError::invalid)
    }
}
