//! Reliability: crash-anywhere consistency and concurrent-request correctness.
//!
//! * `crash_anywhere_keeps_state_consistent`: a churn workload (networks, containers,
//!   connect/disconnect, published ports) runs from a background thread while the main
//!   thread SIGKILLs `netloomd` at random moments (seeded xorshift; the seed is printed,
//!   `NETLOOM_SEED` replays it) and restarts it, `NETLOOM_CRASHES` times (default 8).
//!   After each restart, and after a final settle, the store and the kernel must agree.
//! * `concurrent_requests_no_duplicates`: `NETLOOM_CONC_THREADS` clients (default 8)
//!   issue `NETLOOM_CONC_OPS` run/rm/connect/disconnect operations (default 200) at once;
//!   every request must be answered, no address may ever be held twice, and the final
//!   state must be clean. Prints throughput and latency percentiles.
//!
//! Neither test depends on timing: the kill moment is random, the checks run while the
//! workload is paused, and the only waits are polls with generous deadlines (the kernel
//! destroys a removed network namespace, and the veths in it, asynchronously).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use netloom_e2e::{Daemon, Out, daemon_or_skip, run_cmd, wait_for};
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------

/// xorshift64*: tiny, seedable, good enough to pick operations.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// `NETLOOM_SEED`, else something different on every run.
fn seed() -> u64 {
    std::env::var("NETLOOM_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1);
            t ^ (u64::from(std::process::id()) << 32)
        })
}

fn bin_dir() -> PathBuf {
    match std::env::var_os("NETLOOM_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug"),
    }
}

/// A CLI client that does not borrow the [`Daemon`], so a worker thread can keep
/// issuing requests while the main thread kills and restarts the daemon.
#[derive(Clone)]
struct Client {
    bin: PathBuf,
    host: String,
}

impl Client {
    fn new(d: &Daemon) -> Client {
        Client {
            bin: bin_dir().join("netloom"),
            host: d.host_arg(),
        }
    }
    fn cli(&self, args: &[&str], timeout: Duration) -> Out {
        let mut c = Command::new(&self.bin);
        c.arg("-H").arg(&self.host).args(args);
        run_cmd(c, timeout)
    }
}

/// Did this request fail because the daemon was not there (killed before or during the
/// request) rather than because the daemon refused it?
fn daemon_gone(o: &Out) -> bool {
    let e = o.all().to_lowercase();
    [
        "connection refused",
        "no such file or directory",
        "connection reset",
        "broken pipe",
        "cannot connect",
        "is the daemon running",
        "unexpected eof",
        "connection closed",
        "incomplete message",
        "error sending request",
        "error trying to connect",
        "error during connect",
    ]
    .iter()
    .any(|p| e.contains(p))
}

fn api_json(d: &Daemon, path: &str) -> Result<Value, String> {
    let (code, body) = d.api("GET", path, None);
    if code != 200 {
        return Err(format!("GET {path}: HTTP {code}: {body}"));
    }
    serde_json::from_str(&body).map_err(|e| format!("GET {path}: bad json ({e}): {body}"))
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn id12(id: &str) -> &str {
    &id[..12.min(id.len())]
}

// ---------------------------------------------------------------------------------------
// Observed state and invariants
// ---------------------------------------------------------------------------------------

/// One endpoint as the store reports it (network inspect).
#[derive(Debug, Clone)]
struct Ep {
    network: String,
    container: String,
    id: String,
    ipv4: String,
}

/// Everything the invariants look at, from the API and from the kernel.
#[derive(Debug, Default)]
struct Observed {
    /// Network name -> expected bridge name (bridge driver only).
    bridges: BTreeMap<String, String>,
    /// Network name -> (ID, IPAM subnets).
    networks: BTreeMap<String, (String, Vec<String>)>,
    endpoints: Vec<Ep>,
    /// Container ID -> (name, running).
    containers: BTreeMap<String, (String, bool)>,
    /// Running container ID -> published (proto, host port).
    ports: BTreeMap<String, BTreeSet<(String, u64)>>,
    /// Running container ID -> network names it lists, with their endpoint IDs.
    listed: BTreeMap<String, BTreeMap<String, String>>,
    /// Bridge-type links in the daemon's namespace.
    bridge_links: BTreeSet<String>,
    /// `nl<12 hex>` links in the daemon's namespace.
    veths: BTreeSet<String>,
    /// Files under `<exec-root>/netns`.
    netns_files: BTreeSet<String>,
    /// (map, proto, host port) of netloom's DNAT map elements.
    dnat: BTreeSet<(String, String, u64)>,
    /// Container IDs of live shim processes of this daemon.
    shims: BTreeSet<String>,
}

fn observe(d: &Daemon) -> Result<Observed, String> {
    let mut o = Observed::default();
    let nets = api_json(d, "/networks")?;
    for n in nets.as_array().ok_or("networks: not an array")? {
        let (id, name, driver) = (s(&n["Id"]), s(&n["Name"]), s(&n["Driver"]));
        let full = api_json(d, &format!("/networks/{id}"))?;
        if driver == "bridge" {
            let br = full["Options"]["com.docker.network.bridge.name"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("br-{}", id12(&id)));
            o.bridges.insert(name.clone(), br);
        }
        let subnets = full["IPAM"]["Config"]
            .as_array()
            .map(|a| a.iter().map(|c| s(&c["Subnet"])).collect())
            .unwrap_or_default();
        o.networks.insert(name.clone(), (id.clone(), subnets));
        if let Some(m) = full["Containers"].as_object() {
            for (cid, e) in m {
                o.endpoints.push(Ep {
                    network: name.clone(),
                    container: cid.clone(),
                    id: s(&e["EndpointID"]),
                    ipv4: s(&e["IPv4Address"]),
                });
            }
        }
    }
    let ctrs = api_json(d, "/containers/json?all=1")?;
    for c in ctrs.as_array().ok_or("containers: not an array")? {
        let id = s(&c["Id"]);
        let running = c["State"] == "running";
        let name = s(&c["Names"][0]).trim_start_matches('/').to_string();
        o.containers.insert(id.clone(), (name, running));
        if !running {
            continue;
        }
        let ports = c["Ports"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| Some((s(&p["Type"]), p["PublicPort"].as_u64()?)))
                    .collect()
            })
            .unwrap_or_default();
        o.ports.insert(id.clone(), ports);
        let full = api_json(d, &format!("/containers/{id}/json"))?;
        let listed = full["NetworkSettings"]["Networks"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), s(&v["EndpointID"])))
                    .collect()
            })
            .unwrap_or_default();
        o.listed.insert(id, listed);
    }
    let links = d.netns(&["ip", "-d", "-j", "link", "show"]);
    let links: Value = serde_json::from_str(&links.stdout)
        .map_err(|e| format!("ip -j link: {e}: {}", links.all()))?;
    for l in links.as_array().into_iter().flatten() {
        let name = s(&l["ifname"]);
        let kind = s(&l["linkinfo"]["info_kind"]);
        if kind == "bridge" {
            o.bridge_links.insert(name.clone());
        }
        if name.len() == 14
            && name.starts_with("nl")
            && name[2..].chars().all(|c| c.is_ascii_hexdigit())
        {
            o.veths.insert(name);
        }
    }
    if let Ok(rd) = std::fs::read_dir(d.dir.join("exec/netns")) {
        for e in rd.flatten() {
            o.netns_files
                .insert(e.file_name().to_string_lossy().into_owned());
        }
    }
    let nft = d.netns(&["nft", "-j", "list", "ruleset"]);
    let nft: Value =
        serde_json::from_str(&nft.stdout).map_err(|e| format!("nft -j: {e}: {}", nft.all()))?;
    for obj in nft["nftables"].as_array().into_iter().flatten() {
        let Some(map) = obj.get("map") else { continue };
        if !s(&map["table"]).starts_with("netloom_") || !s(&map["name"]).starts_with("dnat") {
            continue;
        }
        for el in map["elem"].as_array().into_iter().flatten() {
            // A map element is `[key, value]`; the key ends in `proto . port`.
            let key = &el[0];
            let parts: Vec<&Value> = match key.get("concat").and_then(Value::as_array) {
                Some(a) => a.iter().collect(),
                None => vec![key],
            };
            let n = parts.len();
            if n < 2 {
                return Err(format!("unexpected DNAT map element {el}"));
            }
            let proto = s(parts[n - 2]);
            let port = parts[n - 1].as_u64().unwrap_or(0);
            o.dnat.insert((s(&map["name"]), proto, port));
        }
    }
    let needle = format!("{}/exec/containers/", d.dir.display());
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if !cmd.contains("__netloom-shim") {
                continue;
            }
            if let Some(rest) = cmd.split(&needle).nth(1) {
                let id = rest.split('/').next().unwrap_or_default().to_string();
                o.shims.insert(id);
            }
        }
    }
    Ok(o)
}

/// Every violated invariant, as readable lines (empty: consistent).
fn violations(o: &Observed) -> Vec<String> {
    let mut bad = Vec::new();
    let running: BTreeSet<&String> = o
        .containers
        .iter()
        .filter(|(_, (_, r))| *r)
        .map(|(id, _)| id)
        .collect();
    // Networks <-> bridges, both ways.
    let want: BTreeSet<&String> = o.bridges.values().collect();
    for (net, br) in &o.bridges {
        if !o.bridge_links.contains(br) {
            bad.push(format!("network {net}: bridge {br} missing in the kernel"));
        }
    }
    for l in &o.bridge_links {
        if (l.starts_with("br-") || l == "netloom0") && !want.contains(l) {
            bad.push(format!("bridge {l} has no network in the store"));
        }
    }
    // Endpoints belong to running containers; addresses are unique.
    let mut addrs: BTreeMap<String, String> = BTreeMap::new();
    for e in &o.endpoints {
        if !running.contains(&e.container) {
            bad.push(format!(
                "endpoint {} on {} belongs to non-running container {}",
                id12(&e.id),
                e.network,
                id12(&e.container)
            ));
        }
        if e.ipv4.is_empty() {
            continue;
        }
        let ip = e.ipv4.split('/').next().unwrap_or_default().to_string();
        let who = format!("{}@{}", id12(&e.container), e.network);
        if let Some(prev) = addrs.insert(ip.clone(), who.clone()) {
            bad.push(format!("address {ip} allocated twice: {prev} and {who}"));
        }
    }
    // Each running container has an endpoint on every network it lists (host/none
    // have none), and nothing else.
    for (cid, nets) in &o.listed {
        for (net, ep) in nets {
            let bridge = o.bridges.contains_key(net);
            let has = o
                .endpoints
                .iter()
                .any(|e| &e.container == cid && &e.network == net && &e.id == ep);
            if bridge && !has {
                bad.push(format!(
                    "running container {} lists {net} but has no endpoint there",
                    id12(cid)
                ));
            }
        }
    }
    // veths: exactly the running endpoints' host sides.
    let want_veth: BTreeSet<String> = o
        .endpoints
        .iter()
        .filter(|e| o.networks.contains_key(&e.network) && o.bridges.contains_key(&e.network))
        .map(|e| format!("nl{}", id12(&e.id)))
        .collect();
    for v in o.veths.difference(&want_veth) {
        bad.push(format!("orphan veth {v}"));
    }
    for v in want_veth.difference(&o.veths) {
        bad.push(format!("endpoint veth {v} missing"));
    }
    // Sandboxes: only running containers have one.
    for f in &o.netns_files {
        if !running.iter().any(|id| id12(id) == f) {
            bad.push(format!("orphan sandbox file exec/netns/{f}"));
        }
    }
    // DNAT map elements <-> running containers' published ports.
    let want_ports: BTreeSet<(String, u64)> = o.ports.values().flatten().cloned().collect();
    let have_ports: BTreeSet<(String, u64)> =
        o.dnat.iter().map(|(_, p, n)| (p.clone(), *n)).collect();
    for p in have_ports.difference(&want_ports) {
        bad.push(format!(
            "DNAT element for {}/{} but no running container publishes it",
            p.1, p.0
        ));
    }
    for p in want_ports.difference(&have_ports) {
        bad.push(format!(
            "published port {}/{} has no DNAT element",
            p.1, p.0
        ));
    }
    // Shims: only for running containers.
    for id in &o.shims {
        if !running.iter().any(|r| *r == id) {
            bad.push(format!(
                "container process (shim) of {} alive but the container is not running",
                id12(id)
            ));
        }
    }
    bad
}

/// Waits (bounded) until the invariants hold; panics with a state dump otherwise.
/// The poll only absorbs the kernel's asynchronous namespace teardown: the store side
/// is idle while this runs.
fn assert_consistent(d: &Daemon, what: &str, seed: u64) -> Observed {
    let mut last = Vec::new();
    let mut obs = None;
    let ok = wait_for(Duration::from_secs(15), || match observe(d) {
        Ok(o) => {
            last = violations(&o);
            obs = Some(o);
            last.is_empty()
        }
        Err(e) => {
            last = vec![e];
            false
        }
    });
    if !ok {
        panic!(
            "{what}: inconsistent state (seed {seed}):\n  {}\n{}\n== daemon log (tail)\n{}",
            last.join("\n  "),
            d.state_dump(),
            tail(&d.log(), 60)
        );
    }
    obs.expect("observed")
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---------------------------------------------------------------------------------------
// Test 1: crash anywhere
// ---------------------------------------------------------------------------------------

const CHURN_NETS: usize = 3;
const CHURN_CTRS: usize = 6;

/// Fixed subnets so a leaked pool shows up as a failed re-create; `cn0` is a /29
/// (5 container addresses) so the final check can fill it completely.
fn churn_subnet(i: usize) -> String {
    if i == 0 {
        "10.231.0.0/29".to_string()
    } else {
        format!("10.231.{i}.0/24")
    }
}

#[derive(Default)]
struct ChurnStats {
    ok: AtomicU64,
    refused: AtomicU64,
    interrupted: AtomicU64,
    /// Requests that got no answer within the timeout (a kill closes the connection,
    /// so this is always a bug).
    hung: Mutex<Vec<String>>,
    /// Refusals by operation and the start of the message (for the report).
    reasons: Mutex<BTreeMap<String, u64>>,
}

/// One random operation of the churn workload.
fn churn_op(c: &Client, rng: &mut Rng, stats: &ChurnStats) {
    let n = rng.below(CHURN_NETS as u64) as usize;
    let k = rng.below(CHURN_CTRS as u64) as usize;
    let net = format!("cn{n}");
    let ctr = format!("cc{k}");
    let subnet = churn_subnet(n);
    let port = format!("{}:80", 21000 + k);
    let netw = if rng.below(4) == 0 {
        "bridge".to_string()
    } else {
        net.clone()
    };
    let args: Vec<&str> = match rng.below(10) {
        0 => vec!["network", "create", "--subnet", &subnet, &net],
        1 => vec!["network", "rm", &net],
        2..=4 => {
            let mut a = vec!["run", "-d", "--name", &ctr, "--network", &netw];
            if k.is_multiple_of(2) {
                a.extend(["-p", &port]);
            }
            a.extend(["busybox", "sleep", "100000"]);
            a
        }
        5..=6 => vec!["rm", "-f", &ctr],
        7..=8 => vec!["network", "connect", &net, &ctr],
        _ => vec!["network", "disconnect", &net, &ctr],
    };
    let o = c.cli(&args, Duration::from_secs(30));
    if o.code == -999 {
        stats
            .hung
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("netloom {args:?}: {o}"));
        return;
    }
    let counter = if o.ok() {
        &stats.ok
    } else if daemon_gone(&o) {
        &stats.interrupted
    } else {
        let msg: String = o.stderr.trim().chars().take(70).collect();
        let key = format!("{} {}: {msg}", args[0], args[1]);
        *stats
            .reasons
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default() += 1;
        &stats.refused
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Removes every container.
fn remove_containers(d: &Daemon) {
    let ids = d.ok(&["ps", "-aq"]);
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if !ids.is_empty() {
        let mut a = vec!["rm", "-f"];
        a.extend(ids.iter().copied());
        d.ok(&a);
    }
}

/// Removes every container and user network.
fn remove_everything(d: &Daemon) {
    remove_containers(d);
    let nets = d.ok(&["network", "ls", "-q", "--filter", "type=custom"]);
    let nets: Vec<&str> = nets.split_whitespace().collect();
    if !nets.is_empty() {
        let mut a = vec!["network", "rm"];
        a.extend(nets.iter().copied());
        d.ok(&a);
    }
}

#[test]
fn crash_anywhere_keeps_state_consistent() {
    let mut d = daemon_or_skip!();
    let seed = seed();
    let crashes = env_num("NETLOOM_CRASHES", 8);
    println!("crash_anywhere: seed {seed} (replay with NETLOOM_SEED={seed}), {crashes} crashes");
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    // A sentinel the churn never touches: it must survive every crash unchanged (same
    // endpoints, addresses and published port), so a reconciliation that "repairs"
    // healthy containers cannot pass for consistent.
    d.ok(&["network", "create", "--subnet", "10.231.9.0/24", "keep"]);
    let keeper = d.run_sleeper("keeper", &["--network", "keep", "-p", "21100:80"]);
    d.ok(&["network", "connect", "bridge", "keeper"]);
    let keeper_view = |o: &Observed| -> (bool, BTreeSet<(String, String, String)>, String) {
        let running = o.containers.get(&keeper).is_some_and(|c| c.1) && o.shims.contains(&keeper);
        let eps = o
            .endpoints
            .iter()
            .filter(|e| e.container == keeper)
            .map(|e| (e.network.clone(), e.id.clone(), e.ipv4.clone()))
            .collect();
        (running, eps, format!("{:?}", o.ports.get(&keeper)))
    };
    let keeper_before = keeper_view(&assert_consistent(&d, "initial", seed));
    assert!(
        keeper_before.0 && keeper_before.1.len() == 2,
        "{keeper_before:?}"
    );
    let client = Client::new(&d);
    let stats = Arc::new(ChurnStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    // The worker holds `gate` for each request; the main thread pauses it by raising
    // `pause` and taking `gate` (which waits for the request in flight to end).
    let pause = Arc::new(AtomicBool::new(false));
    let gate = Arc::new(Mutex::new(()));
    let worker = {
        let (client, stats, stop, pause, gate) = (
            client.clone(),
            Arc::clone(&stats),
            Arc::clone(&stop),
            Arc::clone(&pause),
            Arc::clone(&gate),
        );
        let mut rng = Rng::new(seed ^ 0x9e37_79b9_7f4a_7c15);
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if pause.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                let _g = gate.lock().unwrap_or_else(|e| e.into_inner());
                if pause.load(Ordering::SeqCst) || stop.load(Ordering::SeqCst) {
                    continue;
                }
                churn_op(&client, &mut rng, &stats);
            }
        })
    };

    for round in 1..=crashes {
        // Let the churn run for a random while, then kill the daemon mid-whatever.
        std::thread::sleep(Duration::from_millis(rng.range(50, 1200)));
        d.kill9();
        pause.store(true, Ordering::SeqCst);
        let held = gate.lock().unwrap_or_else(|e| e.into_inner());
        d.start();
        let o = assert_consistent(&d, &format!("after crash {round}"), seed);
        assert_eq!(
            keeper_view(&o),
            keeper_before,
            "after crash {round}: the untouched container changed (seed {seed})"
        );
        // DNS answers match the live state: the restarted daemon serves the keeper's
        // sandbox again and answers its own name with its current address.
        let keep_ip = d.ip("keeper", "keep");
        let dns = d.exec("keeper", "nslookup keeper.keep 127.0.0.11");
        assert!(
            dns.stdout.contains(&keep_ip),
            "after crash {round}: keeper.keep does not resolve to {keep_ip} (seed {seed}): {dns}"
        );
        println!(
            "crash {round}: consistent: {} networks, {} containers ({} running), {} endpoints",
            o.networks.len(),
            o.containers.len(),
            o.containers.values().filter(|c| c.1).count(),
            o.endpoints.len()
        );
        drop(held);
        pause.store(false, Ordering::SeqCst);
    }
    // Final settle: stop the churn and check once more without a crash.
    std::thread::sleep(Duration::from_millis(rng.range(50, 500)));
    stop.store(true, Ordering::SeqCst);
    worker.join().expect("churn worker panicked");
    let hung = stats.hung.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(
        hung.is_empty(),
        "seed {seed}: unanswered requests: {hung:#?}"
    );
    assert_consistent(&d, "final settle", seed);

    // Remove everything: no endpoint, no leftovers, and the pools are free again.
    remove_everything(&d);
    let o = assert_consistent(&d, "after removing everything", seed);
    assert!(o.endpoints.is_empty(), "endpoints left: {:?}", o.endpoints);
    assert!(o.containers.is_empty(), "containers left");
    for i in 0..CHURN_NETS {
        // A leaked pool would refuse the same subnet.
        d.ok(&[
            "network",
            "create",
            "--subnet",
            &churn_subnet(i),
            &format!("cn{i}"),
        ]);
    }
    // The /29 hands out all 5 addresses (gateway .1; .2-.6), and then no more.
    let mut got = BTreeSet::new();
    for k in 0..5 {
        let name = format!("fill{k}");
        d.run_sleeper(&name, &["--network", "cn0"]);
        assert!(
            got.insert(d.ip(&name, "cn0")),
            "duplicate address in cn0 (seed {seed})"
        );
    }
    let o = d.fail(&[
        "run",
        "-d",
        "--name",
        "fill5",
        "--network",
        "cn0",
        "busybox",
        "sleep",
        "1",
    ]);
    assert!(
        o.all().contains("no available"),
        "6th address in a /29: {o}"
    );
    remove_everything(&d);
    assert_consistent(&d, "end", seed);

    let total = stats.ok.load(Ordering::Relaxed)
        + stats.refused.load(Ordering::Relaxed)
        + stats.interrupted.load(Ordering::Relaxed);
    println!(
        "crash_anywhere: seed {seed}: {crashes} crashes, {total} requests: {} ok, {} refused by the daemon, {} interrupted by a kill; {:.1} s",
        stats.ok.load(Ordering::Relaxed),
        stats.refused.load(Ordering::Relaxed),
        stats.interrupted.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    if std::env::var_os("NETLOOM_VERBOSE").is_some() {
        for (k, n) in stats
            .reasons
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            println!("  refused {n:4}x  {k}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Test 2: concurrent requests
// ---------------------------------------------------------------------------------------

/// Addresses held twice within one network's endpoint list (each list is one locked
/// snapshot of the store).
fn duplicate_addresses(d: &Daemon, nets: &[&str]) -> Result<Vec<String>, String> {
    let mut dups = Vec::new();
    for n in nets {
        let v = api_json(d, &format!("/networks/{n}"))?;
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for (cid, e) in v["Containers"].as_object().into_iter().flatten() {
            let ip = s(&e["IPv4Address"]);
            if ip.is_empty() {
                continue;
            }
            if let Some(prev) = seen.insert(ip.clone(), cid.clone()) {
                dups.push(format!(
                    "{n}: {ip} held by {} and {}",
                    id12(&prev),
                    id12(cid)
                ));
            }
        }
    }
    Ok(dups)
}

#[test]
fn concurrent_requests_no_duplicates() {
    let d = daemon_or_skip!();
    let seed = seed();
    let threads = env_num("NETLOOM_CONC_THREADS", 8).max(1);
    let total_ops = env_num("NETLOOM_CONC_OPS", 200).max(threads);
    println!("concurrent: seed {seed}, {threads} clients, {total_ops} ops");
    // Each client holds at most 2 containers, so neither network is ever exhausted and
    // every request must succeed. `cb` is as small as that allows (a /27 for 8 clients)
    // so the end of the test can fill it completely: a leaked address would show.
    let cb_prefix = (24..=29u32)
        .rev()
        .find(|p| (1u64 << (32 - p)) - 3 > 2 * threads)
        .unwrap_or(24);
    let cb_usable = (1u64 << (32 - cb_prefix)) - 3;
    d.ok(&["network", "create", "--subnet", "10.232.0.0/24", "ca"]);
    d.ok(&[
        "network",
        "create",
        "--subnet",
        &format!("10.232.1.0/{cb_prefix}"),
        "cb",
    ]);
    let client = Client::new(&d);
    let timeout = Duration::from_secs(30);
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let (lat, failures, checks) = std::thread::scope(|sc| {
        // Checker: duplicates at any moment while the clients run.
        let checker = sc.spawn(|| {
            let mut checks = 0u64;
            let mut bad = Vec::new();
            while !done.load(Ordering::SeqCst) {
                match duplicate_addresses(&d, &["ca", "cb", "bridge"]) {
                    Ok(v) => bad.extend(v),
                    Err(e) => bad.push(e),
                }
                checks += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            (checks, bad)
        });
        let mut hs = Vec::new();
        for t in 0..threads {
            let client = client.clone();
            let ops = total_ops / threads + u64::from(t < total_ops % threads);
            let mut rng = Rng::new(seed.wrapping_add(t.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
            hs.push(sc.spawn(move || {
                // Each client owns its containers: (name, connected to cb).
                let mut mine: Vec<(String, bool)> = Vec::new();
                let mut next = 0;
                let mut lat = Vec::new();
                let mut failures = Vec::new();
                for _ in 0..ops {
                    let pick = rng.below(4);
                    let args: Vec<String> = if mine.is_empty() || (pick == 0 && mine.len() < 2) {
                        let name = format!("k{t}-{next}");
                        next += 1;
                        let net = if rng.below(3) == 0 { "bridge" } else { "ca" };
                        mine.push((name.clone(), false));
                        ["run", "-d", "--name", &name, "--network", net]
                            .into_iter()
                            .chain(["busybox", "sleep", "100000"])
                            .map(str::to_string)
                            .collect()
                    } else {
                        let i = rng.below(mine.len() as u64) as usize;
                        let (name, connected) = mine[i].clone();
                        if pick == 1 {
                            mine.remove(i);
                            vec!["rm".into(), "-f".into(), name]
                        } else if connected {
                            mine[i].1 = false;
                            vec!["network".into(), "disconnect".into(), "cb".into(), name]
                        } else {
                            mine[i].1 = true;
                            vec!["network".into(), "connect".into(), "cb".into(), name]
                        }
                    };
                    let a: Vec<&str> = args.iter().map(String::as_str).collect();
                    let t0 = Instant::now();
                    let o = client.cli(&a, timeout);
                    lat.push(t0.elapsed());
                    if !o.ok() {
                        failures.push(format!("netloom {a:?}: {o}"));
                    }
                }
                (lat, failures)
            }));
        }
        let mut lat = Vec::new();
        let mut failures = Vec::new();
        for h in hs {
            let (l, f) = h.join().expect("client thread panicked");
            lat.extend(l);
            failures.extend(f);
        }
        done.store(true, Ordering::SeqCst);
        let (checks, bad) = checker.join().expect("checker panicked");
        failures.extend(bad);
        (lat, failures, checks)
    });
    let wall = started.elapsed();
    assert!(
        failures.is_empty(),
        "seed {seed}: {} failed/unanswered requests or duplicates:\n  {}\n{}",
        failures.len(),
        failures.join("\n  "),
        d.state_dump()
    );
    let mut sorted = lat.clone();
    sorted.sort();
    let pct = |p: f64| {
        let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[i].as_secs_f64() * 1000.0
    };
    println!(
        "concurrent: {} ops by {threads} clients in {:.2} s: {:.1} ops/s, latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {checks} duplicate checks",
        lat.len(),
        wall.as_secs_f64(),
        lat.len() as f64 / wall.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        pct(1.0),
    );
    // The state the clients left behind is consistent, and so is the empty one.
    assert_consistent(&d, "after concurrent clients", seed);
    remove_containers(&d);
    let o = assert_consistent(&d, "after removing every container", seed);
    assert!(o.endpoints.is_empty(), "endpoints left: {:?}", o.endpoints);
    // IPAM free again: `cb` hands out every address once more, then no more.
    for k in 0..cb_usable {
        d.run_sleeper(&format!("f{k}"), &["--network", "cb"]);
    }
    let o = d.fail(&[
        "run",
        "-d",
        "--name",
        "full",
        "--network",
        "cb",
        "busybox",
        "sleep",
        "1",
    ]);
    assert!(o.all().contains("no available"), "{o}");
    remove_everything(&d);
    assert_consistent(&d, "end", seed);
}
