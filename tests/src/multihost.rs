//! Simulated hosts for multi-host tests and benchmarks.
//!
//! A [`Cluster`] is N hosts, each a network namespace running its own `netloomd`
//! (a [`Daemon`] with its own data and exec roots), on an underlay of two L2
//! segments joined by a router namespace, as in the seed's overlay figure:
//!
//! ```text
//!   node1 (198.18.1.11)  node3 (198.18.1.13) …      node2 (198.18.2.12)  node4 …
//!          eth0 │              eth0 │                       eth0 │
//!        ┌──────┴──────────────────┴──┐               ┌─────────┴────────────┐
//!        │ segment 1: bridge br0      │               │ segment 2: bridge br0│
//!        └─────────────┬──────────────┘               └──────────┬───────────┘
//!                   r1 │ 198.18.1.1     router namespace      r2 │ 198.18.2.1
//!                      └──────────────── ip_forward ─────────────┘
//! ```
//!
//! Node `i` (1-based) sits on segment 1 when `i` is odd, segment 2 when even, at
//! `198.18.<segment>.<10 + i>`. Only 198.18.0.0/15 is used, and every interface lives
//! in the test's own namespaces: the hosts' only route out is the router, which has
//! no route anywhere else. Namespace names carry the test process's pid and a counter,
//! so tests run in parallel; dropping the [`Cluster`] (also on panic) removes the
//! daemons, the hosts, the segments and the router.
//!
//! Faults are one call each: [`Cluster::link_down`] / [`Cluster::link_up`] (a host's
//! underlay link), [`Cluster::partition`] / [`Cluster::heal`] (the router's link to a
//! segment), [`Cluster::crash`] (kill -9 a host's netloomd) and [`Cluster::restart`].

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::{Daemon, Out, sh, unstarted_daemon, wait_for};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A network namespace made by the harness, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    /// Its name under `/run/netns`.
    pub name: String,
}

impl Netns {
    /// Creates the namespace with `lo` up.
    pub fn new(name: String) -> Netns {
        let _ = sh("ip", &["netns", "del", &name]);
        let o = sh("ip", &["netns", "add", &name]);
        assert!(o.ok(), "ip netns add {name}: {o}");
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NAME ARGS…`, asserting success.
    #[track_caller]
    pub fn ip(&self, args: &[&str]) {
        let o = self.try_ip(args);
        assert!(o.ok(), "ip -n {} {args:?}: {o}", self.name);
    }

    /// `ip -n NAME ARGS…`.
    pub fn try_ip(&self, args: &[&str]) -> Out {
        let mut a = vec!["-n", &self.name];
        a.extend_from_slice(args);
        sh("ip", &a)
    }

    /// Runs a program inside the namespace.
    pub fn exec(&self, args: &[&str]) -> Out {
        let mut a = vec!["netns", "exec", &self.name];
        a.extend_from_slice(args);
        sh("ip", &a)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = sh("ip", &["netns", "del", &self.name]);
    }
}

/// One simulated host: a netloomd in its own namespace, on one underlay segment.
pub struct Host {
    /// The daemon (its `name` is the host's namespace).
    pub daemon: Daemon,
    /// Its underlay address.
    pub addr: Ipv4Addr,
    /// Its segment: 1 or 2.
    pub segment: u8,
}

impl Host {
    /// Runs a program inside the host's namespace.
    pub fn exec(&self, args: &[&str]) -> Out {
        self.daemon.netns(args)
    }

    /// Whether this host reaches `addr` with one ping (1 s timeout).
    pub fn pings(&self, addr: Ipv4Addr) -> bool {
        self.exec(&["ping", "-c", "1", "-W", "1", &addr.to_string()])
            .ok()
    }
}

/// N hosts on two L2 segments joined by a router (see the module docs).
pub struct Cluster {
    /// The hosts; `hosts[0]` is node1.
    pub hosts: Vec<Host>,
    /// The router namespace (`r1` on segment 1, `r2` on segment 2).
    pub router: Netns,
    /// The two segment namespaces, each holding bridge `br0`.
    pub segments: [Netns; 2],
    /// The name prefix of this cluster's namespaces.
    pub prefix: String,
}

/// The underlay address of node `i` (1-based).
pub fn node_addr(i: usize) -> Ipv4Addr {
    let seg = segment_of(i);
    Ipv4Addr::new(198, 18, seg, 10 + u8::try_from(i).unwrap_or(200))
}

/// The segment (1 or 2) of node `i` (1-based).
pub fn segment_of(i: usize) -> u8 {
    if i % 2 == 1 { 1 } else { 2 }
}

/// Builds an `n`-host cluster whose daemons get `extra_args`, or `None` (after
/// printing `SKIP:`) where the e2e suite cannot run (see [`crate::daemon`]).
pub fn cluster(n: usize, extra_args: &[&str]) -> Option<Cluster> {
    cluster_with(n, extra_args, true)
}

/// Like [`cluster`]; with `start` false the hosts' netloomd is not started (the
/// namespaces and underlay only, e.g. for running another engine there).
pub fn cluster_with(n: usize, extra_args: &[&str], start: bool) -> Option<Cluster> {
    build(n, extra_args, start, false)
}

/// Like [`cluster`], with every daemon keeping its state in an etcd of its own (inside
/// its namespace, `127.0.0.1:2379`), whatever `NETLOOM_TEST_STORE` says.
pub fn cluster_on_etcd(n: usize, extra_args: &[&str]) -> Option<Cluster> {
    build(n, extra_args, true, true)
}

fn build(n: usize, extra_args: &[&str], start: bool, etcd: bool) -> Option<Cluster> {
    assert!((1..=200).contains(&n), "1..=200 hosts");
    let k = COUNTER.fetch_add(1, Ordering::SeqCst);
    let prefix = format!("nlm-{}-{k}", std::process::id());
    // Underlay first (the daemons must find their address at start).
    let router = Netns::new(format!("{prefix}-r"));
    let segments = [
        Netns::new(format!("{prefix}-s1")),
        Netns::new(format!("{prefix}-s2")),
    ];
    for (i, seg) in segments.iter().enumerate() {
        let s = i + 1;
        seg.ip(&["link", "add", "br0", "type", "bridge"]);
        seg.ip(&["link", "set", "br0", "up"]);
        let rif = format!("r{s}");
        seg.ip(&[
            "link",
            "add",
            "uplink",
            "type",
            "veth",
            "peer",
            "name",
            &rif,
            "netns",
            &router.name,
        ]);
        seg.ip(&["link", "set", "uplink", "master", "br0", "up"]);
        router.ip(&["addr", "add", &format!("198.18.{s}.1/24"), "dev", &rif]);
        router.ip(&["link", "set", &rif, "up"]);
    }
    let o = router.exec(&["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    assert!(o.ok(), "router ip_forward: {o}");
    let mut c = Cluster {
        hosts: Vec::new(),
        router,
        segments,
        prefix,
    };
    for i in 1..=n {
        // The underlay is in place before the daemon starts, as on a real host.
        let mut d = if etcd {
            crate::unstarted_daemon_on_etcd()?
        } else {
            unstarted_daemon()?
        };
        d.extra_args = extra_args.iter().map(|s| s.to_string()).collect();
        let seg = segment_of(i);
        let addr = node_addr(i);
        let segns = &c.segments[usize::from(seg) - 1];
        let port = format!("h{i}");
        segns.ip(&[
            "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &d.name,
        ]);
        segns.ip(&["link", "set", &port, "master", "br0", "up"]);
        let h = Host {
            daemon: d,
            addr,
            segment: seg,
        };
        c.hosts.push(h);
        c.link_up(i);
        if start {
            c.host_mut(i).daemon.start();
        }
    }
    Some(c)
}

impl Cluster {
    /// Node `i` (1-based).
    pub fn host(&self, i: usize) -> &Host {
        &self.hosts[i - 1]
    }

    /// Node `i` (1-based), mutable.
    pub fn host_mut(&mut self, i: usize) -> &mut Host {
        &mut self.hosts[i - 1]
    }

    /// Takes node `i`'s underlay link down (its routes go with it).
    pub fn link_down(&self, i: usize) {
        let d = &self.host(i).daemon;
        let o = sh("ip", &["-n", &d.name, "link", "set", "eth0", "down"]);
        assert!(o.ok(), "link down: {o}");
    }

    /// Brings node `i`'s underlay link (back) up, with its address and default route.
    pub fn link_up(&self, i: usize) {
        let h = self.host(i);
        let n = h.daemon.name.as_str();
        let cidr = format!("{}/24", h.addr);
        let gw = format!("198.18.{}.1", h.segment);
        let _ = sh("ip", &["-n", n, "addr", "replace", &cidr, "dev", "eth0"]);
        let o = sh("ip", &["-n", n, "link", "set", "eth0", "up"]);
        assert!(o.ok(), "link up: {o}");
        let o = sh("ip", &["-n", n, "route", "replace", "default", "via", &gw]);
        assert!(o.ok(), "default route: {o}");
    }

    /// Cuts the router's link to `segment` (1 or 2): the two segments are
    /// partitioned, hosts within each still reach each other.
    pub fn partition(&self, segment: u8) {
        self.router
            .ip(&["link", "set", &format!("r{segment}"), "down"]);
    }

    /// Restores the router's link to `segment`.
    pub fn heal(&self, segment: u8) {
        self.router
            .ip(&["link", "set", &format!("r{segment}"), "up"]);
    }

    /// Kills node `i`'s netloomd with SIGKILL (its containers keep running).
    pub fn crash(&mut self, i: usize) {
        self.host_mut(i).daemon.kill9();
    }

    /// Starts node `i`'s netloomd again (after [`Cluster::crash`] or a stop).
    pub fn restart(&mut self, i: usize) {
        self.host_mut(i).daemon.start();
    }

    /// Every namespace of this cluster that `ip netns list` still shows.
    pub fn namespaces_left(prefix: &str) -> Vec<String> {
        let ns = sh("ip", &["netns", "list"]);
        ns.stdout
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with(&format!("{prefix}-")))
            .map(str::to_string)
            .collect()
    }
}

impl Host {
    /// What of netloom's overlay data plane is left on this host, as a user would see
    /// it: overlay sandboxes (`ov-*` namespace files or mounts under the exec root), VXLAN
    /// devices (`ip -d link show type vxlan`) and their sockets (unowned UDP sockets in
    /// the host's namespace), VXLAN FDB entries (`bridge fdb show`, entries with a
    /// `dst`), addresses of `overlay_subnets`, and gateway legs on `docker_gwbridge`.
    pub fn overlay_leftovers(&self, overlay_subnets: &[ipnet::Ipv4Net]) -> Vec<String> {
        let mut out = Vec::new();
        let dir = self.daemon.dir.join("exec/overlay");
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                out.push(format!("overlay sandbox file {}", e.path().display()));
            }
        }
        let needle = format!("{}/", dir.display());
        let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for m in mi.lines().filter_map(|l| l.split(' ').nth(4)) {
            if m.starts_with(&needle) {
                out.push(format!("overlay sandbox mount {m}"));
            }
        }
        out.extend(underlay_leftovers(
            &self.daemon.name,
            |a| self.exec(a),
            overlay_subnets,
        ));
        let legs = self.exec(&["ip", "-o", "link", "show", "master", "docker_gwbridge"]);
        for l in legs.stdout.lines().filter(|l| !l.trim().is_empty()) {
            out.push(format!("{}: gateway leg left: {l}", self.daemon.name));
        }
        out
    }
}

/// VXLAN devices, their sockets, VXLAN FDB entries and overlay addresses in one
/// namespace (`run` runs a program there).
fn underlay_leftovers(
    ns: &str,
    run: impl Fn(&[&str]) -> Out,
    overlay_subnets: &[ipnet::Ipv4Net],
) -> Vec<String> {
    let mut out = Vec::new();
    let vx = run(&["ip", "-o", "-d", "link", "show", "type", "vxlan"]);
    for l in vx.stdout.lines().filter(|l| !l.trim().is_empty()) {
        out.push(format!("{ns}: VXLAN device left: {l}"));
    }
    let fdb = run(&["bridge", "fdb", "show"]);
    for l in fdb.stdout.lines().filter(|l| l.contains(" dst ")) {
        out.push(format!("{ns}: VXLAN FDB entry left: {l}"));
    }
    // Kernel sockets (a VXLAN device's) belong to no process.
    let udp = run(&["ss", "-H", "-u", "-a", "-n", "-p"]);
    for l in udp.stdout.lines().filter(|l| !l.trim().is_empty()) {
        if !l.contains("users:") {
            out.push(format!(
                "{ns}: unowned UDP socket (a VXLAN device's) left: {l}"
            ));
        }
    }
    let addrs = run(&["ip", "-o", "-4", "addr", "show"]);
    for l in addrs.stdout.lines() {
        let Some(a) = l
            .split_whitespace()
            .skip_while(|w| *w != "inet")
            .nth(1)
            .and_then(|a| a.parse::<ipnet::Ipv4Net>().ok())
        else {
            continue;
        };
        if overlay_subnets.iter().any(|s| s.contains(&a.addr())) {
            out.push(format!("{ns}: overlay address left: {l}"));
        }
    }
    out
}

impl Cluster {
    /// The subnets of the overlay networks the running hosts know.
    pub fn overlay_subnets(&self) -> Vec<ipnet::Ipv4Net> {
        let mut out = Vec::new();
        for h in self.hosts.iter().filter(|h| h.daemon.pid().is_some()) {
            let ids = h
                .daemon
                .cli(&["network", "ls", "-q", "--filter", "driver=overlay"]);
            for id in ids.stdout.split_whitespace() {
                let s = h
                    .daemon
                    .cli(&["network", "inspect", "-f", "{{json .IPAM.Config}}", id]);
                let v: serde_json::Value = serde_json::from_str(&s.stdout).unwrap_or_default();
                for sub in v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["Subnet"].as_str())
                {
                    if let Ok(n) = sub.parse::<ipnet::Ipv4Net>()
                        && !out.contains(&n)
                    {
                        out.push(n);
                    }
                }
            }
        }
        out
    }

    /// Everything of the overlay data plane left on the hosts whose netloomd runs and
    /// on the underlay (segments and router), for `overlay_subnets`.
    pub fn overlay_leftovers(&self, overlay_subnets: &[ipnet::Ipv4Net]) -> Vec<String> {
        let mut out = Vec::new();
        for h in self.hosts.iter().filter(|h| h.daemon.pid().is_some()) {
            out.extend(h.overlay_leftovers(overlay_subnets));
        }
        for ns in [&self.router, &self.segments[0], &self.segments[1]] {
            out.extend(underlay_leftovers(
                &ns.name,
                |a| ns.exec(a),
                overlay_subnets,
            ));
        }
        out
    }

    /// Removes every container of the running hosts, then asserts that nothing of the
    /// overlay data plane is left (see [`Host::overlay_leftovers`]), waiting a few
    /// seconds for the workers to drop their copies. Hosts whose netloomd is down are
    /// skipped (their containers still run).
    #[track_caller]
    pub fn assert_no_overlay_leftovers(&self) {
        let subnets = self.overlay_subnets();
        for h in self.hosts.iter().filter(|h| h.daemon.pid().is_some()) {
            let ids = h.daemon.cli(&["ps", "-aq"]);
            let ids: Vec<&str> = ids.stdout.split_whitespace().collect();
            if !ids.is_empty() {
                let mut a = vec!["rm", "-f"];
                a.extend(ids);
                let _ = h.daemon.cli(&a);
            }
        }
        let mut left = Vec::new();
        let clean = wait_for(std::time::Duration::from_secs(10), || {
            left = self.overlay_leftovers(&subnets);
            left.is_empty()
        });
        assert!(clean, "overlay state left behind: {left:#?}");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Nothing of the overlays may be left once every container is gone (on a
        // test's failure, only reported: it panicked already).
        if std::thread::panicking() {
            let left = self.overlay_leftovers(&self.overlay_subnets());
            if !left.is_empty() {
                eprintln!("overlay state left behind: {left:#?}");
            }
        } else {
            // Removes every container first; a panic here still drops the fields.
            self.assert_no_overlay_leftovers();
        }
        // Daemons first (each removes its own namespace), then segments and router
        // (the fields' own drops).
        self.hosts.clear();
    }
}
