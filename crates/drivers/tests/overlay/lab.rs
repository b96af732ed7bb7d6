//! Simulated hosts for the overlay driver's tests: N host namespaces on two L2 segments
//! (198.18.1.0/24, 198.18.2.0/24, each a bridge in a namespace of its own) joined by a
//! router namespace, as in the seed's overlay figure and `tests/src/multihost.rs` (node
//! `i` on segment 1 when odd, 2 when even, at `198.18.<seg>.<10 + i>`).
//!
//! Each host runs its overlay driver on a thread of its own that joined the host's
//! namespace before starting a single-threaded tokio runtime, as a daemon started in
//! that namespace would: netlink sockets, sysctls and `nft` all act on the host. The
//! test talks to it with [`Host::call`]. Containers are plain namespaces. Dropping the
//! [`Lab`] (also on panic) stops the workers and removes every namespace and file.

use std::cell::RefCell;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{Command, Output};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use netloom_drivers::overlay::{OverlayDriver, OverlayOptions, PeerEndpoint};
use netloom_kernel::Netlink;
use netloom_model::{Endpoint, IpamPoolConfig, IpamSpec, Network, SandboxInfo, Scope};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A unique number for names and IDs in this process.
pub fn next() -> usize {
    COUNTER.fetch_add(1, Ordering::SeqCst)
}

/// True if the privileged tests can run; otherwise prints `SKIP:` (or panics when
/// `NETLOOM_REQUIRE_PRIV=1`).
pub fn privileged(test: &str) -> bool {
    let why = if !nix::unistd::geteuid().is_root() {
        Some("not root")
    } else if Command::new("ip").arg("-V").output().is_err() {
        Some("iproute2 (ip) missing")
    } else if !std::path::Path::new("/bin/busybox").exists() {
        Some("/bin/busybox (busybox-static) missing")
    } else if Command::new("nft").arg("-v").output().is_err() {
        Some("nft (nftables) missing")
    } else {
        None
    };
    match why {
        None => true,
        Some(r) => {
            if std::env::var("NETLOOM_REQUIRE_PRIV").as_deref() == Ok("1") {
                panic!("{test}: NETLOOM_REQUIRE_PRIV=1 but {r}");
            }
            println!("SKIP: {test}: {r} (the overlay driver tests need root)");
            false
        }
    }
}

/// Runs a command, returning its output.
pub fn run(prog: &str, args: &[&str]) -> Output {
    Command::new(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{prog} {args:?}: {e}"))
}

/// Runs a command that must succeed; returns its stdout.
#[track_caller]
pub fn must(prog: &str, args: &[&str]) -> String {
    let o = run(prog, args);
    assert!(
        o.status.success(),
        "{prog} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A network namespace under /run/netns, deleted on drop.
pub struct Ns {
    /// Its name.
    pub name: String,
}

impl Ns {
    /// Creates it with `lo` up.
    pub fn new(name: String) -> Ns {
        let _ = run("ip", &["netns", "del", &name]);
        must("ip", &["netns", "add", &name]);
        let ns = Ns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Its namespace file.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// `ip -n NAME ARGS…`, which must succeed.
    #[track_caller]
    pub fn ip(&self, args: &[&str]) -> String {
        let mut a = vec!["-n", &self.name];
        a.extend_from_slice(args);
        must("ip", &a)
    }

    /// Runs a program inside the namespace.
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut a = vec!["netns", "exec", &self.name];
        a.extend_from_slice(args);
        run("ip", &a)
    }

    /// Runs a program inside the namespace, which must succeed; returns its stdout.
    #[track_caller]
    pub fn sh(&self, args: &[&str]) -> String {
        let o = self.exec(args);
        assert!(
            o.status.success(),
            "in {}: {args:?}: {}{}",
            self.name,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Whether one ping to `ip` is answered within 2 s.
    pub fn pings(&self, ip: &str) -> bool {
        self.exec(&["ping", "-c", "1", "-W", "2", ip])
            .status
            .success()
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

/// What a host's worker thread owns.
pub struct Ctx {
    /// Handle in the host's namespace.
    pub nl: Netlink,
    opts: OverlayOptions,
    drv: RefCell<Rc<OverlayDriver>>,
}

impl Ctx {
    /// The host's overlay driver.
    pub fn drv(&self) -> Rc<OverlayDriver> {
        self.drv.borrow().clone()
    }

    /// Replaces the driver with a fresh one, as a daemon restart does (kernel state is
    /// left as it is).
    pub fn restart(&self) {
        let nl = Netlink::current().unwrap_or_else(|e| panic!("netlink: {e}"));
        *self.drv.borrow_mut() = Rc::new(OverlayDriver::new(nl, self.opts.clone()));
    }
}

type Job = Box<dyn FnOnce(Rc<Ctx>) -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// One simulated host.
pub struct Host {
    /// Its namespace.
    pub ns: Ns,
    /// Its underlay (and data-path) address.
    pub addr: Ipv4Addr,
    /// The directory of its overlay sandboxes.
    pub dir: PathBuf,
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Host {
    /// Runs `f` with the host's context on its worker and returns the result.
    pub fn call<T, F, Fut>(&self, f: F) -> T
    where
        T: Send + 'static,
        F: FnOnce(Rc<Ctx>) -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
    {
        let (rtx, rrx) = mpsc::channel();
        let job: Job = Box::new(move |ctx| {
            Box::pin(async move {
                let _ = rtx.send(f(ctx).await);
            })
        });
        let tx = self
            .tx
            .as_ref()
            .unwrap_or_else(|| panic!("host worker stopped"));
        tx.send(job).unwrap_or_else(|_| panic!("host worker died"));
        rrx.recv()
            .unwrap_or_else(|_| panic!("host worker panicked"))
    }

    /// Names of the links in the host's own namespace.
    pub fn links(&self) -> Vec<String> {
        let out = self.ns.ip(&["-j", "link", "show"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| l["ifname"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Asserts that nothing of the overlay is left on the host: no sandbox file or
    /// mount, no link beyond `lo`, `eth0` and `extra`.
    #[track_caller]
    pub fn assert_clean(&self, extra: &[&str]) {
        let left: Vec<_> = std::fs::read_dir(&self.dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        assert!(
            left.is_empty(),
            "sandboxes left on {}: {left:?}",
            self.ns.name
        );
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let d = self.dir.display().to_string();
        assert!(!mounts.contains(&d), "mounts left under {d}");
        let links: Vec<String> = self
            .links()
            .into_iter()
            .filter(|l| !["lo", "eth0"].contains(&l.as_str()) && !extra.contains(&l.as_str()))
            .collect();
        assert!(
            links.is_empty(),
            "links left on {}: {links:?}",
            self.ns.name
        );
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        for p in netloom_kernel::netns::list(&self.dir) {
            let _ = netloom_kernel::netns::remove(&p);
        }
    }
}

/// The simulated underlay and its hosts.
pub struct Lab {
    /// Name prefix of the lab's namespaces.
    pub prefix: String,
    /// The hosts; `hosts[0]` is node1.
    pub hosts: Vec<Host>,
    /// The router between the segments (`r1` = 198.18.1.1, `r2` = 198.18.2.1).
    pub router: Ns,
    _segments: [Ns; 2],
    dir: tempfile::TempDir,
}

/// The underlay address of node `i` (1-based).
pub fn node_addr(i: usize) -> Ipv4Addr {
    let seg = if i % 2 == 1 { 1 } else { 2 };
    Ipv4Addr::new(198, 18, seg, 10 + u8::try_from(i).unwrap_or(200))
}

impl Lab {
    /// `n` hosts whose underlay links all have MTU `mtu`, each running an overlay
    /// driver on VXLAN port `port`.
    pub fn new(n: usize, mtu: u32, port: u16) -> Lab {
        let prefix = format!("nlo-{}-{}", std::process::id(), next());
        let m = mtu.to_string();
        let router = Ns::new(format!("{prefix}-r"));
        let segments = [
            Ns::new(format!("{prefix}-s1")),
            Ns::new(format!("{prefix}-s2")),
        ];
        quiet(&router);
        router.sh(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        for (i, seg) in segments.iter().enumerate() {
            let s = i + 1;
            seg.ip(&["link", "add", "br0", "mtu", &m, "type", "bridge"]);
            seg.ip(&["link", "set", "br0", "up"]);
            let rif = format!("r{s}");
            must(
                "ip",
                &[
                    "link",
                    "add",
                    &rif,
                    "netns",
                    &router.name,
                    "mtu",
                    &m,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "uplink",
                    "netns",
                    &seg.name,
                    "mtu",
                    &m,
                ],
            );
            seg.ip(&["link", "set", "uplink", "master", "br0", "up"]);
            router.ip(&["addr", "add", &format!("198.18.{s}.1/24"), "dev", &rif]);
            router.ip(&["link", "set", &rif, "up"]);
        }
        let dir = tempfile::Builder::new()
            .prefix("netloom-overlay-test-")
            .tempdir()
            .unwrap_or_else(|e| panic!("tempdir: {e}"));
        let mut hosts = Vec::new();
        for i in 1..=n {
            let addr = node_addr(i);
            let seg = &segments[if i % 2 == 1 { 0 } else { 1 }];
            let ns = Ns::new(format!("{prefix}-h{i}"));
            quiet(&ns);
            ns.sh(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
            let port_name = format!("h{i}");
            must(
                "ip",
                &[
                    "link", "add", "eth0", "netns", &ns.name, "mtu", &m, "type", "veth", "peer",
                    "name", &port_name, "netns", &seg.name, "mtu", &m,
                ],
            );
            seg.ip(&["link", "set", &port_name, "master", "br0", "up"]);
            ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
            ns.ip(&["link", "set", "eth0", "up"]);
            let o = addr.octets();
            ns.ip(&[
                "route",
                "add",
                "default",
                "via",
                &format!("198.18.{}.1", o[2]),
            ]);
            let hdir = dir.path().join(format!("h{i}"));
            let opts = OverlayOptions {
                netns_dir: hdir.clone(),
                data_path: IpAddr::V4(addr),
                port,
                tag: "t".into(),
            };
            let (tx, thread) = spawn_worker(&ns, opts);
            hosts.push(Host {
                ns,
                addr,
                dir: hdir,
                tx: Some(tx),
                thread: Some(thread),
            });
        }
        Lab {
            prefix,
            hosts,
            router,
            _segments: segments,
            dir,
        }
    }

    /// A "container": a namespace of its own.
    pub fn container(&self, tag: &str) -> Ns {
        let c = Ns::new(format!("{}-{tag}", self.prefix));
        quiet(&c);
        c
    }

    /// nft counters on the router (see [`Lab::count`]): VXLAN packets on `port`, those
    /// carrying an ARP frame, and every other packet routed or received.
    pub fn watch_underlay(&self, port: u16) {
        let rules = format!(
            "table inet ovt {{
  counter vxlan {{}}
  counter vxlan_arp {{}}
  counter other {{}}
  counter masq {{}}
  counter unmasq {{}}
  chain routed {{
    type filter hook forward priority 0; policy accept;
    udp dport {port} @th,224,16 0x0806 counter name \"vxlan_arp\"
    udp dport {port} counter name \"vxlan\" accept
    counter name \"other\"
  }}
  chain inbound {{
    type filter hook input priority 0; policy accept;
    ip saddr 198.18.0.0/15 icmp type echo-request counter name \"masq\"
    ip saddr != 198.18.0.0/15 counter name \"unmasq\"
    counter name \"other\"
  }}
}}
"
        );
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.router.name, "nft", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("nft: {e}"));
        if let Some(mut s) = child.stdin.take() {
            use std::io::Write;
            let _ = s.write_all(rules.as_bytes());
        }
        let st = child.wait().unwrap_or_else(|e| panic!("nft: {e}"));
        assert!(st.success(), "router counters");
    }

    /// The packet count of a router counter made by [`Lab::watch_underlay`].
    pub fn count(&self, name: &str) -> u64 {
        let out = self
            .router
            .sh(&["nft", "-j", "list", "counter", "inet", "ovt", name]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        v["nftables"]
            .as_array()
            .and_then(|a| a.iter().find_map(|o| o["counter"]["packets"].as_u64()))
            .unwrap_or_else(|| panic!("counter {name}: {out}"))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.hosts.clear();
        let _ = &self.dir;
    }
}

/// No IPv6 (router solicitations, DAD) on the underlay: the tests count packets.
fn quiet(ns: &Ns) {
    ns.sh(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
    ns.sh(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
}

fn spawn_worker(ns: &Ns, opts: OverlayOptions) -> (mpsc::Sender<Job>, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<Job>();
    let path = ns.path();
    let thread = std::thread::spawn(move || {
        let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path:?}: {e}"));
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
            .unwrap_or_else(|e| panic!("setns {path:?}: {e}"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
        let ctx = rt.block_on(async {
            let nl = Netlink::current().unwrap_or_else(|e| panic!("netlink: {e}"));
            let drv = OverlayDriver::new(nl.clone(), opts.clone());
            Rc::new(Ctx {
                nl,
                opts,
                drv: RefCell::new(Rc::new(drv)),
            })
        });
        while let Ok(job) = rx.recv() {
            rt.block_on(job(ctx.clone()));
        }
        // Let background work (link deletions) finish before the runtime goes.
        rt.block_on(async { tokio::time::sleep(std::time::Duration::from_millis(50)).await });
    });
    (tx, thread)
}

/// A 64-hex ID whose first 12 characters (the short ID) are unique.
pub fn id() -> String {
    format!("{:012x}{}", next() + 0xabc000000, "0".repeat(52))
}

/// An overlay network record with `subnets` (gateway = first host) and VNIs.
pub fn overlay(name: &str, subnets: &[&str], vnis: &[u32], internal: bool) -> Network {
    let configs = subnets
        .iter()
        .map(|s| {
            let n: ipnet::Ipv4Net = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            IpamPoolConfig {
                subnet: ipnet::IpNet::V4(n),
                ip_range: None,
                gateway: n.hosts().next().map(IpAddr::V4),
                aux: Default::default(),
                pool_id: String::new(),
            }
        })
        .collect();
    let mut options = std::collections::BTreeMap::new();
    netloom_drivers::overlay::set_vnis(&mut options, vnis);
    Network {
        id: id(),
        name: name.into(),
        driver: "overlay".into(),
        scope: Scope::Swarm,
        created: String::new(),
        enable_ipv4: true,
        enable_ipv6: false,
        internal,
        attachable: true,
        ingress: false,
        predefined: false,
        ipam: IpamSpec {
            driver: "default".into(),
            options: Default::default(),
            configs,
        },
        options,
        labels: Default::default(),
        iface: String::new(),
        mtu: 0,
    }
}

/// An endpoint of `net` at `ip` (with prefix), interface `ifname`, MAC derived from the
/// address as on bridges.
pub fn endpoint(net: &Network, ip: &str, ifname: &str) -> Endpoint {
    let ip: ipnet::Ipv4Net = ip.parse().unwrap_or_else(|e| panic!("{ip}: {e}"));
    Endpoint {
        id: id(),
        network_id: net.id.clone(),
        container_id: id(),
        container_name: "c".into(),
        ifname: ifname.into(),
        host_ifname: String::new(),
        mac: netloom_model::network::mac_from_ipv4(ip.addr()),
        ipv4: Some(ip),
        ipv6: None,
        gateway4: None,
        gateway6: None,
        aliases: Vec::new(),
        default_route: false,
    }
}

/// The control plane's announcement of `ep` living on `host`.
pub fn peer(ep: &Endpoint, host: &Host) -> PeerEndpoint {
    PeerEndpoint {
        ip: ep.ipv4.map(|n| n.addr()).unwrap_or(Ipv4Addr::UNSPECIFIED),
        mac: netloom_model::network::parse_mac(&ep.mac).unwrap_or_default(),
        vtep: IpAddr::V4(host.addr),
    }
}

/// The sandbox of container `c`.
pub fn sandbox(c: &Ns) -> SandboxInfo {
    SandboxInfo {
        key: c.path(),
        container_id: c.name.clone(),
    }
}

/// The IPv4 address part of `ip/prefix`.
pub fn addr(ep: &Endpoint) -> String {
    ep.ipv4.map(|n| n.addr().to_string()).unwrap_or_default()
}
