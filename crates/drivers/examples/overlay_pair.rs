//! Sets up one overlay network through the overlay driver across simulated hosts, for
//! `bench/overlay.sh` (needs root; no daemon): every host is a network namespace file
//! with its data-path address, every container a namespace file with its overlay
//! address. The network is 10.90.0.0/24 on VNI 4096 (UDP 4789); each host's driver
//! runs on a thread that joined the host's namespace, creates the network, joins its
//! container and is told about every endpoint (as the control plane will). Prints
//! `ready` once traffic can flow, waits for its standard input to close, then removes
//! everything it made.
//!
//! Usage: `overlay_pair HOST_NETNS DATA_ADDR CONTAINER_NETNS CONTAINER_ADDR [HOST …]`

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::mpsc;

use netloom_drivers::overlay::{OverlayDriver, OverlayOptions, PeerEndpoint, set_vnis};
use netloom_model::{Driver, Endpoint, IpamPoolConfig, IpamSpec, Network, SandboxInfo, Scope};

struct Member {
    host: PathBuf,
    vtep: Ipv4Addr,
    container: PathBuf,
    ip: Ipv4Addr,
}

fn network() -> Network {
    let mut options = Default::default();
    set_vnis(&mut options, &[4096]);
    Network {
        id: format!("be0c4{}", "0".repeat(59)),
        name: "bench".into(),
        driver: "overlay".into(),
        scope: Scope::Swarm,
        created: String::new(),
        enable_ipv4: true,
        enable_ipv6: false,
        internal: true,
        attachable: true,
        ingress: false,
        predefined: false,
        ipam: IpamSpec {
            driver: "default".into(),
            options: Default::default(),
            configs: vec![IpamPoolConfig {
                subnet: "10.90.0.0/24".parse().unwrap_or_else(|_| unreachable!()),
                ip_range: None,
                gateway: Some(IpAddr::V4(Ipv4Addr::new(10, 90, 0, 1))),
                aux: Default::default(),
                pool_id: String::new(),
            }],
        },
        options,
        labels: Default::default(),
        iface: String::new(),
        mtu: 0,
    }
}

fn endpoint(net: &Network, i: usize, ip: Ipv4Addr) -> Endpoint {
    Endpoint {
        id: format!("e{i:011x}{}", "0".repeat(52)),
        network_id: net.id.clone(),
        container_id: format!("c{i}"),
        container_name: format!("c{i}"),
        ifname: "eth0".into(),
        host_ifname: String::new(),
        mac: netloom_model::network::mac_from_ipv4(ip),
        ipv4: ipnet::Ipv4Net::new(ip, 24).ok(),
        ipv6: None,
        gateway4: None,
        gateway6: None,
        aliases: Vec::new(),
        default_route: false,
    }
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || !args.len().is_multiple_of(4) {
        return Err(
            "usage: overlay_pair HOST_NETNS DATA_ADDR CONTAINER_NETNS CONTAINER_ADDR [...]".into(),
        );
    }
    let mut members = Vec::new();
    for c in args.chunks(4) {
        let addr = |s: &str| s.parse::<Ipv4Addr>().map_err(|e| format!("{s}: {e}"));
        members.push(Member {
            host: c[0].clone().into(),
            vtep: addr(&c[1])?,
            container: c[2].clone().into(),
            ip: addr(&c[3])?,
        });
    }
    let net = network();
    let peers: Vec<PeerEndpoint> = members
        .iter()
        .enumerate()
        .map(|(i, m)| PeerEndpoint {
            ip: m.ip,
            mac: netloom_model::network::parse_mac(&endpoint(&net, i, m.ip).mac)
                .unwrap_or_default(),
            vtep: IpAddr::V4(m.vtep),
        })
        .collect();
    let dir = std::env::temp_dir().join(format!("netloom-overlay-pair-{}", std::process::id()));
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let mut stops = Vec::new();
    let mut threads = Vec::new();
    for (i, m) in members.into_iter().enumerate() {
        let (net, peers, ready) = (net.clone(), peers.clone(), ready_tx.clone());
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        stops.push(stop_tx);
        let netns_dir = dir.join(format!("h{i}"));
        threads.push(std::thread::spawn(move || -> Result<(), String> {
            let f = std::fs::File::open(&m.host).map_err(|e| format!("{:?}: {e}", m.host))?;
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("enter {:?}: {e}", m.host))?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                let nl = netloom_kernel::Netlink::current().map_err(|e| e.to_string())?;
                let opts = OverlayOptions {
                    netns_dir,
                    data_path: IpAddr::V4(m.vtep),
                    port: netloom_drivers::overlay::DEFAULT_PORT,
                    tag: "bench".into(),
                };
                let drv = OverlayDriver::new(nl, opts);
                let ep = endpoint(&net, i, m.ip);
                let sb = SandboxInfo {
                    key: m.container.clone(),
                    container_id: ep.container_id.clone(),
                };
                let setup = async {
                    drv.create_network(&net).await?;
                    drv.create_endpoint(&net, &ep).await?;
                    drv.join(&net, &ep, &sb).await?;
                    drv.sync_peers(&net.id, &peers).await
                };
                let r = setup.await.map_err(|e| format!("host {i}: {e:?}"));
                let ok = r.is_ok();
                let _ = ready.send(r);
                if ok {
                    let _ = tokio::task::spawn_blocking(move || stop_rx.recv()).await;
                }
                let _ = drv.leave(&net, &ep, &sb).await;
                drv.delete_network(&net)
                    .await
                    .map_err(|e| format!("host {i}: {e:?}"))
            })
        }));
    }
    drop(ready_tx);
    let mut failed = None;
    for r in ready_rx.iter().take(threads.len()) {
        if let Err(e) = r {
            failed.get_or_insert(e);
        }
    }
    if failed.is_none() {
        println!("ready");
        let _ = std::io::stdout().flush();
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
    }
    drop(stops);
    for t in threads {
        match t.join() {
            Ok(Err(e)) => {
                failed.get_or_insert(e);
            }
            Err(_) => {
                failed.get_or_insert("a host thread panicked".into());
            }
            Ok(Ok(())) => {}
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    failed.map_or(Ok(()), Err)
}
