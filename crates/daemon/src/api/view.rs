//! Docker-shaped JSON for networks, containers and images (key order as dockerd's).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use netloom_model::{ContainerStatus, Endpoint, Image, Network, short_id};
use serde_json::{Map, Value, json};

use crate::controller::{ContainerView, NetworkView};

/// Docker's Network object.
pub fn network(v: &NetworkView, with_containers: bool) -> Value {
    let n = &v.network;
    let configs: Vec<Value> = n
        .ipam
        .configs
        .iter()
        .map(|c| {
            let mut m = Map::new();
            m.insert("Subnet".into(), json!(c.subnet.to_string()));
            if let Some(r) = c.ip_range {
                m.insert("IPRange".into(), json!(r.to_string()));
            }
            if let Some(g) = c.gateway {
                m.insert("Gateway".into(), json!(g.to_string()));
            }
            if !c.aux.is_empty() {
                let aux: BTreeMap<&String, String> =
                    c.aux.iter().map(|(k, a)| (k, a.to_string())).collect();
                m.insert("AuxiliaryAddresses".into(), json!(aux));
            }
            Value::Object(m)
        })
        .collect();
    let mut containers = Map::new();
    if with_containers {
        for e in &v.endpoints {
            containers.insert(
                e.container_id.clone(),
                json!({
                    "Name": e.container_name,
                    "EndpointID": e.id,
                    "MacAddress": e.mac,
                    "IPv4Address": e.ipv4.map(|a| a.to_string()).unwrap_or_default(),
                    "IPv6Address": e.ipv6.map(|a| a.to_string()).unwrap_or_default(),
                }),
            );
        }
    }
    json!({
        "Name": n.name,
        "Id": n.id,
        "Created": n.created,
        "Scope": n.scope.as_str(),
        "Driver": n.driver,
        "EnableIPv4": n.enable_ipv4,
        "EnableIPv6": n.enable_ipv6,
        "IPAM": { "Driver": n.ipam.driver, "Options": n.ipam.options, "Config": configs },
        "Internal": n.internal,
        "Attachable": n.attachable,
        "Ingress": n.ingress,
        "ConfigFrom": { "Network": "" },
        "ConfigOnly": false,
        "Containers": containers,
        "Options": n.options,
        "Labels": n.labels,
    })
}

/// Docker's `units.HumanDuration`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 1 {
        return "Less than a second".into();
    }
    if s == 1 {
        return "1 second".into();
    }
    if s < 60 {
        return format!("{s} seconds");
    }
    let m = s / 60;
    if m == 1 {
        return "About a minute".into();
    }
    if m < 60 {
        return format!("{m} minutes");
    }
    let h = m / 60;
    if h == 1 {
        return "About an hour".into();
    }
    if h < 48 {
        return format!("{h} hours");
    }
    if h < 24 * 7 * 2 {
        return format!("{} days", h / 24);
    }
    if h < 24 * 30 * 2 {
        return format!("{} weeks", h / 24 / 7);
    }
    if h < 24 * 365 * 2 {
        return format!("{} months", h / 24 / 30);
    }
    format!("{} years", h / 24 / 365)
}

fn since(t: &str) -> Duration {
    humantime::parse_rfc3339_weak(t)
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or_default()
}

/// Unix seconds of an RFC 3339 time.
pub fn unix(t: &str) -> i64 {
    crate::controller::created_unix(t)
}

fn endpoint_settings(
    net: Option<&Network>,
    ep: Option<&Endpoint>,
    aliases: &[String],
    net_id: &str,
) -> Value {
    let ipam = match ep {
        Some(_) => Value::Null,
        None => Value::Null,
    };
    json!({
        "IPAMConfig": ipam,
        "Links": Value::Null,
        "Aliases": if aliases.is_empty() { Value::Null } else { json!(aliases) },
        "MacAddress": ep.map(|e| e.mac.clone()).unwrap_or_default(),
        "DriverOpts": Value::Null,
        "GwPriority": 0,
        "NetworkID": net.map(|n| n.id.clone()).unwrap_or_else(|| net_id.to_string()),
        "EndpointID": ep.map(|e| e.id.clone()).unwrap_or_default(),
        "Gateway": ep.and_then(|e| e.gateway4).map(|g| g.to_string()).unwrap_or_default(),
        "IPAddress": ep.and_then(|e| e.ipv4).map(|a| a.addr().to_string()).unwrap_or_default(),
        "IPPrefixLen": ep.and_then(|e| e.ipv4).map(|a| a.prefix_len()).unwrap_or(0),
        "IPv6Gateway": ep.and_then(|e| e.gateway6).map(|g| g.to_string()).unwrap_or_default(),
        "GlobalIPv6Address": ep.and_then(|e| e.ipv6).map(|a| a.addr().to_string()).unwrap_or_default(),
        "GlobalIPv6PrefixLen": ep.and_then(|e| e.ipv6).map(|a| a.prefix_len()).unwrap_or(0),
        "DNSNames": Value::Null,
    })
}

/// `NetworkSettings.Networks`. With `legacy_aliases` (API < 1.45) user-defined
/// networks also list the short ID and the hostname in `Aliases`, as moby does for
/// older clients.
fn networks_of(v: &ContainerView, legacy_aliases: bool) -> Map<String, Value> {
    let c = &v.container;
    let mut m = Map::new();
    for nid in &c.network_order {
        let net = v.networks.get(nid);
        let name = net.map(|n| n.name.clone()).unwrap_or_else(|| nid.clone());
        let ep = v.endpoints.iter().find(|e| &e.network_id == nid);
        let req = c.networks.get(nid);
        let mut aliases: Vec<String> = req.map(|r| r.aliases.clone()).unwrap_or_default();
        let user_defined =
            net.is_some_and(|n| !matches!(n.name.as_str(), "bridge" | "host" | "none"));
        if legacy_aliases && user_defined {
            for a in [short_id(&c.id).to_string(), c.hostname.clone()] {
                if !a.is_empty() && !aliases.contains(&a) {
                    aliases.push(a);
                }
            }
        }
        let mut s = endpoint_settings(net, ep, &aliases, nid);
        if let (Some(r), Some(obj)) = (req, s.as_object_mut()) {
            if !r.driver_opts.is_empty() {
                obj.insert("DriverOpts".into(), json!(r.driver_opts));
            }
            if r.ipv4.is_some() || r.ipv6.is_some() {
                let mut ipam = Map::new();
                if let Some(a) = r.ipv4 {
                    ipam.insert("IPv4Address".into(), json!(a.to_string()));
                }
                if let Some(a) = r.ipv6 {
                    ipam.insert("IPv6Address".into(), json!(a.to_string()));
                }
                obj.insert("IPAMConfig".into(), Value::Object(ipam));
            }
            if !r.links.is_empty() {
                obj.insert("Links".into(), json!(r.links));
            }
            if ep.is_some() {
                let mut names = vec![c.name.clone(), short_id(&c.id).to_string()];
                names.extend(r.aliases.iter().cloned());
                if c.hostname != short_id(&c.id) && !names.contains(&c.hostname) {
                    names.push(c.hostname.clone());
                }
                obj.insert("DNSNames".into(), json!(names));
            }
        }
        m.insert(name, s);
    }
    m
}

/// `NetworkSettings.Ports`: every exposed port, with the host ports actually published.
pub fn ports_map(v: &ContainerView) -> Value {
    let c = &v.container;
    let mut m = Map::new();
    let mut keys: Vec<String> = c.exposed_ports.clone();
    for p in &c.state.ports {
        let k = format!("{}/{}", p.container_port, p.proto);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    for k in keys {
        let published: Vec<Value> = c
            .state
            .ports
            .iter()
            .filter(|p| format!("{}/{}", p.container_port, p.proto) == k)
            .map(|p| json!({"HostIp": host_ip_text(p), "HostPort": p.host_port.to_string()}))
            .collect();
        m.insert(
            k,
            if published.is_empty() {
                Value::Null
            } else {
                json!(published)
            },
        );
    }
    Value::Object(m)
}

fn host_ip_text(p: &netloom_model::PublishedPort) -> String {
    if !p.host_ip.is_empty() {
        p.host_ip.clone()
    } else if p.container_ip.contains(':') {
        "::".into()
    } else {
        "0.0.0.0".into()
    }
}

/// `docker ps` status text.
pub fn status_text(v: &ContainerView) -> String {
    let s = &v.container.state;
    match s.status {
        ContainerStatus::Running => format!(
            "Up {}{}",
            human_duration(since(&s.started_at)),
            super::lifecycle::status_suffix(&v.container)
        ),
        ContainerStatus::Restarting => format!(
            "Restarting ({}) {} ago",
            s.exit_code,
            human_duration(since(&s.finished_at))
        ),
        ContainerStatus::Exited => format!(
            "Exited ({}) {} ago",
            s.exit_code,
            human_duration(since(&s.finished_at))
        ),
        ContainerStatus::Created => "Created".into(),
        ContainerStatus::Removing => "Removal In Progress".into(),
    }
}

fn command(v: &ContainerView) -> String {
    v.container.argv().join(" ")
}

/// An item of `GET /containers/json`.
pub fn container_summary(v: &ContainerView) -> Value {
    let c = &v.container;
    let mut ports = Vec::new();
    for p in &c.state.ports {
        ports.push(json!({"IP": host_ip_text(p), "PrivatePort": p.container_port, "PublicPort": p.host_port, "Type": p.proto}));
    }
    for p in &c.exposed_ports {
        let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
        let num: u16 = num.parse().unwrap_or(0);
        if !c
            .state
            .ports
            .iter()
            .any(|x| x.container_port == num && x.proto == proto)
        {
            ports.push(json!({"PrivatePort": num, "Type": proto}));
        }
    }
    json!({
        "Id": c.id,
        "Names": [format!("/{}", c.name)],
        "Image": c.image,
        "ImageID": c.image_id,
        "Command": command(v),
        "Created": unix(&c.created),
        "Ports": ports,
        "Labels": c.labels,
        "State": c.state.status.as_str(),
        "Status": status_text(v),
        "HostConfig": { "NetworkMode": c.network_mode },
        "NetworkSettings": { "Networks": networks_of(v, false) },
        "Mounts": [],
    })
}

/// `GET /containers/{id}/json`.
/// `GET /containers/{id}/json` at API version `api` (`(1, 47)` when unversioned):
/// below 1.45 user-defined networks list legacy aliases (see [`networks_of`]); below
/// 1.44 `Config.MacAddress` carries the MAC requested for the network the container
/// started on, as moby reports it.
pub fn container_inspect(v: &ContainerView, api: (u32, u32)) -> Value {
    let legacy_aliases = api < (1, 45);
    let c = &v.container;
    let s = &c.state;
    let argv = c.argv();
    let exposed: Map<String, Value> = c
        .exposed_ports
        .iter()
        .map(|p| (p.clone(), json!({})))
        .collect();
    let bindings: Map<String, Value> = c
        .port_bindings
        .iter()
        .map(|(k, bs)| {
            (
                k.clone(),
                json!(
                    bs.iter()
                        .map(|b| json!({"HostIp": b.host_ip, "HostPort": b.host_port}))
                        .collect::<Vec<_>>()
                ),
            )
        })
        .collect();
    let primary = v
        .endpoints
        .iter()
        .find(|e| e.default_route)
        .or_else(|| v.endpoints.first());
    let mut out = json!({
        "Id": c.id,
        "Created": c.created,
        "Path": argv.first().cloned().unwrap_or_default(),
        "Args": argv.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": s.status.as_str(),
            "Running": c.is_running(),
            "Paused": false,
            "Restarting": false,
            "OOMKilled": false,
            "Dead": false,
            "Pid": s.pid,
            "ExitCode": s.exit_code,
            "Error": s.error,
            "StartedAt": if s.started_at.is_empty() { "0001-01-01T00:00:00Z" } else { &s.started_at },
            "FinishedAt": if s.finished_at.is_empty() { "0001-01-01T00:00:00Z" } else { &s.finished_at },
        },
        "Image": c.image_id,
        "ResolvConfPath": v.resolv_path,
        "HostnamePath": v.hostname_path,
        "HostsPath": v.hosts_path,
        "LogPath": v.log_path,
        "Name": format!("/{}", c.name),
        "RestartCount": 0,
        "Driver": "overlay",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": Value::Null,
        "HostConfig": {
            "NetworkMode": c.network_mode,
            "PortBindings": bindings,
            "RestartPolicy": { "Name": "no", "MaximumRetryCount": 0 },
            "AutoRemove": c.auto_remove,
            "LogConfig": { "Type": "json-file", "Config": {} },
            "Dns": c.dns,
            "DnsOptions": c.dns_options,
            "DnsSearch": c.dns_search,
            "ExtraHosts": if c.extra_hosts.is_empty() { Value::Null } else { json!(c.extra_hosts) },
            "PublishAllPorts": c.publish_all,
            "Links": Value::Null,
        },
        "GraphDriver": { "Name": "overlay", "Data": Value::Null },
        "Config": {
            "Hostname": c.hostname,
            "Domainname": c.domainname,
            "User": c.user,
            "AttachStdin": c.open_stdin,
            "AttachStdout": false,
            "AttachStderr": false,
            "ExposedPorts": if exposed.is_empty() { Value::Null } else { Value::Object(exposed) },
            "Tty": c.tty,
            "OpenStdin": c.open_stdin,
            "StdinOnce": c.stdin_once,
            "Env": c.env,
            "Cmd": c.cmd,
            "Image": c.image,
            "Volumes": if c.host.anonymous_volumes.is_empty() {
                Value::Null
            } else {
                Value::Object(c.host.anonymous_volumes.iter().map(|p| (p.clone(), json!({}))).collect())
            },
            "WorkingDir": c.working_dir,
            "Entrypoint": if c.entrypoint.is_empty() { Value::Null } else { json!(c.entrypoint) },
            "OnBuild": Value::Null,
            "Labels": c.labels,
        },
        "NetworkSettings": {
            "Bridge": "",
            "SandboxID": if c.is_running() { c.id.clone() } else { String::new() },
            "SandboxKey": v.sandbox_key,
            "Ports": ports_map(v),
            "HairpinMode": false,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "SecondaryIPAddresses": Value::Null,
            "SecondaryIPv6Addresses": Value::Null,
            "EndpointID": primary.map(|e| e.id.clone()).unwrap_or_default(),
            "Gateway": primary.and_then(|e| e.gateway4).map(|g| g.to_string()).unwrap_or_default(),
            "GlobalIPv6Address": primary.and_then(|e| e.ipv6).map(|a| a.addr().to_string()).unwrap_or_default(),
            "GlobalIPv6PrefixLen": primary.and_then(|e| e.ipv6).map(|a| a.prefix_len()).unwrap_or(0),
            "IPAddress": primary.and_then(|e| e.ipv4).map(|a| a.addr().to_string()).unwrap_or_default(),
            "IPPrefixLen": primary.and_then(|e| e.ipv4).map(|a| a.prefix_len()).unwrap_or(0),
            "IPv6Gateway": primary.and_then(|e| e.gateway6).map(|g| g.to_string()).unwrap_or_default(),
            "MacAddress": primary.map(|e| e.mac.clone()).unwrap_or_default(),
            "Networks": networks_of(v, legacy_aliases),
        },
        "Mounts": mounts_of(c, &v.volumes_root),
    });
    if let Some(Value::Object(hc)) = out.get_mut("HostConfig")
        && let Value::Object(extra) = host_config_defaults(c)
    {
        for (k, v) in extra {
            hc.entry(k).or_insert(v);
        }
    }
    super::lifecycle::decorate_inspect(&mut out, c);
    if api < (1, 44)
        && let Some(Value::Object(cfg)) = out.get_mut("Config")
    {
        // The MAC requested for the network the container started on (its first one).
        let mac = c
            .network_order
            .first()
            .and_then(|n| c.networks.get(n))
            .map(|r| r.mac.clone())
            .filter(|m| !m.is_empty())
            .or_else(|| {
                c.networks
                    .values()
                    .find(|r| !r.mac.is_empty())
                    .map(|r| r.mac.clone())
            });
        if let Some(m) = mac {
            cfg.insert("MacAddress".into(), Value::String(m));
        }
    }
    out
}

/// An image, as `GET /images/json` and inspect show it.
pub fn image(i: &Image, detail: bool) -> Value {
    let tags = if i.tags.is_empty() {
        json!(["<none>:<none>"])
    } else {
        json!(i.tags)
    };
    let labels = if i.labels.is_empty() {
        Value::Null
    } else {
        json!(i.labels)
    };
    if !detail {
        return json!({
            "Id": i.id,
            "ParentId": "",
            "RepoTags": tags,
            "RepoDigests": i.repo_digests,
            "Created": unix(&i.created),
            "Size": i.size,
            "SharedSize": -1,
            "VirtualSize": i.size,
            "Labels": if i.labels.is_empty() { json!({}) } else { json!(i.labels) },
            "Containers": -1,
        });
    }
    let exposed: Map<String, Value> = i
        .exposed_ports
        .iter()
        .map(|p| (p.clone(), json!({})))
        .collect();
    let arr = |v: &[String]| {
        if v.is_empty() { Value::Null } else { json!(v) }
    };
    let mut config = json!({
        "Hostname": "",
        "Domainname": "",
        "User": i.user,
        "AttachStdin": false,
        "AttachStdout": false,
        "AttachStderr": false,
        "ExposedPorts": if exposed.is_empty() { Value::Null } else { Value::Object(exposed) },
        "Tty": false,
        "OpenStdin": false,
        "StdinOnce": false,
        "Env": i.env,
        "Cmd": arr(&i.cmd),
        "Image": "",
        "Volumes": Value::Null,
        "WorkingDir": i.working_dir,
        "Entrypoint": arr(&i.entrypoint),
        "OnBuild": Value::Null,
        "Labels": labels,
    });
    if let Some(h) = &i.healthcheck {
        config["Healthcheck"] = h.clone();
    }
    if !i.stop_signal.is_empty() {
        config["StopSignal"] = json!(i.stop_signal);
    }
    let layers: Vec<&str> = if i.layers.is_empty() {
        vec![i.id.as_str()]
    } else {
        i.layers.iter().map(|l| l.diff_id.as_str()).collect()
    };
    let mut v = json!({
        "Id": i.id,
        "RepoTags": tags,
        "RepoDigests": i.repo_digests,
        "Parent": "",
        "Comment": i.comment,
        "Created": i.created,
        "DockerVersion": "",
        "Author": i.author,
        // Docker's images from its classic builder carry the build container's config
        // too; docker-compose 1.29 reads its `Volumes` when it recreates a container.
        "ContainerConfig": config.clone(),
        "Config": config,
        "Architecture": if i.architecture.is_empty() {
            std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64")
        } else {
            i.architecture.clone()
        },
        "Os": if i.os.is_empty() { "linux".to_string() } else { i.os.clone() },
        "Size": i.size,
        "GraphDriver": {"Name": "overlay2", "Data": Value::Null},
        "RootFS": { "Type": "layers", "Layers": layers },
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    });
    if !i.variant.is_empty() {
        v["Variant"] = json!(i.variant);
    }
    v
}

/// `HostConfig` fields of features netloom does not implement, with Docker's zero
/// values, so that clients reading them find the key.
fn host_config_defaults(c: &netloom_model::Container) -> Value {
    let h = &c.host;
    let list = |v: &[String]| if v.is_empty() { Value::Null } else { json!(v) };
    let paths = |l: &[&str]| {
        if h.privileged || h.security_opt.iter().any(|o| o == "systempaths=unconfined") {
            json!([])
        } else {
            json!(l)
        }
    };
    let fields: [(&str, Value); 56] = [
        ("Binds", list(&h.binds)),
        ("ContainerIDFile", json!("")),
        ("VolumeDriver", json!("")),
        ("VolumesFrom", json!(Value::Null)),
        ("ConsoleSize", json!(c.console_size.unwrap_or([0, 0]))),
        ("Annotations", json!(Value::Null)),
        ("CapAdd", list(&h.cap_add)),
        ("CapDrop", list(&h.cap_drop)),
        (
            "CgroupnsMode",
            json!(match h.cgroupns_mode.as_str() {
                "" if crate::runtimes::cgroup_v2() => "private",
                "" => "host",
                m => m,
            }),
        ),
        ("GroupAdd", json!(Value::Null)),
        ("IpcMode", json!("private")),
        ("Cgroup", json!("")),
        ("OomScoreAdj", json!(0)),
        ("PidMode", json!("")),
        ("Privileged", json!(h.privileged)),
        ("ReadonlyRootfs", json!(h.read_only_rootfs)),
        ("SecurityOpt", list(&h.security_opt)),
        ("UTSMode", json!("")),
        ("UsernsMode", json!(h.userns_mode)),
        ("ShmSize", json!(67108864)),
        (
            "Runtime",
            json!(if h.runtime.is_empty() {
                "runc"
            } else {
                h.runtime.as_str()
            }),
        ),
        ("Isolation", json!(h.isolation)),
        ("CpuShares", json!(h.resources.cpu_shares)),
        ("Memory", json!(h.resources.memory)),
        ("NanoCpus", json!(h.resources.nano_cpus)),
        ("CgroupParent", json!("")),
        ("BlkioWeight", json!(0)),
        ("BlkioWeightDevice", json!(Value::Null)),
        ("BlkioDeviceReadBps", json!(Value::Null)),
        ("BlkioDeviceWriteBps", json!(Value::Null)),
        ("BlkioDeviceReadIOps", json!(Value::Null)),
        ("BlkioDeviceWriteIOps", json!(Value::Null)),
        ("CpuPeriod", json!(0)),
        ("CpuQuota", json!(0)),
        ("CpuRealtimePeriod", json!(0)),
        ("CpuRealtimeRuntime", json!(0)),
        ("CpusetCpus", json!(h.resources.cpuset_cpus)),
        ("CpusetMems", json!("")),
        ("Devices", json!(Value::Null)),
        ("DeviceCgroupRules", json!(Value::Null)),
        ("DeviceRequests", json!(Value::Null)),
        ("MemoryReservation", json!(0)),
        ("MemorySwap", json!(h.resources.memory_swap)),
        ("MemorySwappiness", json!(Value::Null)),
        ("OomKillDisable", json!(false)),
        (
            "PidsLimit",
            if h.resources.pids_limit > 0 {
                json!(h.resources.pids_limit)
            } else {
                Value::Null
            },
        ),
        (
            "Ulimits",
            if h.ulimits.is_empty() {
                Value::Null
            } else {
                json!(
                    h.ulimits
                        .iter()
                        .map(|u| json!({"Name": u.name, "Soft": u.soft, "Hard": u.hard}))
                        .collect::<Vec<_>>()
                )
            },
        ),
        ("CpuCount", json!(0)),
        ("CpuPercent", json!(0)),
        ("IOMaximumIOps", json!(0)),
        ("IOMaximumBandwidth", json!(0)),
        ("MaskedPaths", paths(netloom_runtime::oci::MASKED_PATHS)),
        ("ReadonlyPaths", paths(netloom_runtime::oci::READONLY_PATHS)),
        (
            "Sysctls",
            if h.sysctls.is_empty() {
                Value::Null
            } else {
                json!(h.sysctls)
            },
        ),
        (
            "Tmpfs",
            if h.tmpfs.is_empty() {
                Value::Null
            } else {
                json!(h.tmpfs)
            },
        ),
        (
            "Mounts",
            if h.mounts.is_empty() {
                Value::Null
            } else {
                json!(h.mounts.iter().map(mount_json).collect::<Vec<_>>())
            },
        ),
    ];
    Value::Object(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

/// A `HostConfig.Mounts` entry as Docker shows it.
fn mount_json(m: &netloom_model::MountPoint) -> Value {
    let mut v =
        json!({"Type": m.typ, "Source": m.source, "Target": m.target, "ReadOnly": m.read_only});
    if m.typ == "bind" && (!m.propagation.is_empty() || m.non_recursive || m.create_mountpoint) {
        v["BindOptions"] = json!({"Propagation": m.propagation, "NonRecursive": m.non_recursive, "CreateMountpoint": m.create_mountpoint});
    }
    if m.typ == "tmpfs" && (m.tmpfs_size != 0 || m.tmpfs_mode != 0) {
        v["TmpfsOptions"] = json!({"SizeBytes": m.tmpfs_size, "Mode": m.tmpfs_mode});
    }
    if m.typ == "volume"
        && (m.volume_nocopy
            || !m.volume_labels.is_empty()
            || !m.volume_driver.is_empty()
            || !m.volume_opts.is_empty())
    {
        v["VolumeOptions"] = json!({"NoCopy": m.volume_nocopy, "Labels": m.volume_labels,
            "DriverConfig": {"Name": m.volume_driver, "Options": m.volume_opts}});
    }
    v
}

/// The inspect `Mounts` list: volumes, bind mounts (`-v`, `--mount type=bind`) and tmpfs.
fn mounts_of(c: &netloom_model::Container, volumes_root: &std::path::Path) -> Value {
    let mut out = Vec::new();
    for m in &c.volumes {
        out.push(json!({"Type": "volume", "Name": m.name,
            "Source": volumes_root.join(&m.name).join("_data"), "Destination": m.destination,
            "Driver": "local", "Mode": m.mode, "RW": !m.read_only, "Propagation": ""}));
    }
    for b in &c.host.binds {
        if let Ok(netloom_runtime::oci::MountSpec::Bind {
            source,
            destination,
            read_only,
            propagation,
            ..
        }) = netloom_runtime::options::parse_bind(b)
        {
            let mode = b.splitn(3, ':').nth(2).unwrap_or("");
            out.push(json!({"Type": "bind", "Source": source, "Destination": destination, "Mode": mode,
                "RW": !read_only, "Propagation": if propagation.is_empty() { "rprivate".to_string() } else { propagation }}));
        }
    }
    for m in c.host.mounts.iter().filter(|m| m.typ != "volume") {
        let prop = if m.typ == "bind" && m.propagation.is_empty() {
            "rprivate"
        } else {
            m.propagation.as_str()
        };
        out.push(
            json!({"Type": m.typ, "Source": m.source, "Destination": m.target, "Mode": "",
            "RW": !m.read_only, "Propagation": prop}),
        );
    }
    for p in c.host.tmpfs.keys() {
        out.push(json!({"Type": "tmpfs", "Source": "", "Destination": p, "Mode": "", "RW": true, "Propagation": ""}));
    }
    json!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            human_duration(Duration::from_millis(200)),
            "Less than a second"
        );
        assert_eq!(human_duration(Duration::from_secs(5)), "5 seconds");
        assert_eq!(human_duration(Duration::from_secs(70)), "About a minute");
        assert_eq!(human_duration(Duration::from_secs(600)), "10 minutes");
        assert_eq!(human_duration(Duration::from_secs(3 * 3600)), "3 hours");
    }
}
