//! Remote network-driver and IPAM plugins (Docker's plugin protocols).
//!
//! Each test runs `tests/plugins/tplugin.py` (a driver + IPAM plugin, stdlib Python) inside
//! the daemon's network namespace, with its socket in a plugin directory private to the
//! test (daemon.json `plugin-dirs`), and asserts the exact sequence of calls the daemon
//! makes, what a container gets, and that failures leave nothing behind.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use netloom_e2e::{Daemon, wait_for};
use serde_json::{Value, json};

const P: &str = "tplug";

/// The test plugin process; killed on drop.
struct Plugin {
    child: Option<Child>,
    sock: PathBuf,
    log: PathBuf,
    control: PathBuf,
    netns: String,
}

impl Plugin {
    fn start(d: &Daemon) -> Plugin {
        Self::start_named(d, P)
    }

    /// A plugin answering as `name` (its own socket, log and control file).
    fn start_named(d: &Daemon, name: &str) -> Plugin {
        let dir = d.dir.join("plugins");
        std::fs::create_dir_all(&dir).expect("plugin dir");
        let suffix = if name == P {
            String::new()
        } else {
            format!("-{name}")
        };
        let mut p = Plugin {
            child: None,
            sock: dir.join(format!("{name}.sock")),
            log: d.dir.join(format!("plugin-calls{suffix}.jsonl")),
            control: d.dir.join(format!("plugin-control{suffix}.json")),
            netns: d.name.clone(),
        };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/plugins/tplugin.py");
        let _ = std::fs::remove_file(&self.sock);
        let child = Command::new("ip")
            .args(["netns", "exec", &self.netns, "python3", script])
            .arg(&self.sock)
            .arg(&self.log)
            .arg(&self.control)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn plugin");
        self.child = Some(child);
        assert!(
            wait_for(Duration::from_secs(10), || self.sock.exists()),
            "plugin socket {} did not appear",
            self.sock.display()
        );
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Every call so far: (method, body).
    fn calls(&self) -> Vec<(String, Value)> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|v| {
                (
                    v["method"].as_str().unwrap_or_default().to_string(),
                    v["body"].clone(),
                )
            })
            .collect()
    }

    fn methods(&self) -> Vec<String> {
        self.calls().into_iter().map(|(m, _)| m).collect()
    }

    /// The body of the last call of `method`.
    fn body(&self, method: &str) -> Value {
        self.calls()
            .into_iter()
            .rev()
            .find(|(m, _)| m == method)
            .map(|(_, b)| b)
            .unwrap_or(Value::Null)
    }

    /// What the plugin saw at each Leave: (endpoint ID, interface handed back).
    fn leaves(&self) -> Vec<(String, bool)> {
        let mut f = self.log.clone().into_os_string();
        f.push(".leave");
        std::fs::read_to_string(f)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(id, s)| (id.to_string(), s == "back"))
            .collect()
    }

    fn clear(&self) {
        let _ = std::fs::write(&self.log, "");
    }

    /// Replaces the control file at once (write + rename: the plugin, which re-reads it
    /// while holding a call, never sees it half-written).
    fn set(&self, control: Value) {
        let mut tmp = self.control.clone().into_os_string();
        tmp.push(".tmp");
        std::fs::write(&tmp, control.to_string()).expect("write plugin control");
        std::fs::rename(&tmp, &self.control).expect("replace plugin control");
    }

    /// Waits until the call log ends with `want` (teardown after `rm -f` may finish just
    /// after the CLI returns) and returns the log.
    #[track_caller]
    fn expect(&self, want: &[&str]) {
        let ok = wait_for(Duration::from_secs(10), || self.methods() == want);
        assert!(
            ok,
            "plugin calls:\n  got  {:?}\n  want {want:?}",
            self.methods()
        );
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A daemon configured to find plugins in its own directory, with a short call timeout.
fn setup(timeout_secs: u32) -> Option<(Daemon, Plugin)> {
    let mut d = netloom_e2e::daemon()?;
    let dir = d.dir.join("plugins");
    std::fs::create_dir_all(&dir).expect("plugin dir");
    d.stop();
    std::fs::write(
        d.dir.join("none.json"),
        json!({"plugin-dirs": [dir], "plugin-timeout": timeout_secs}).to_string(),
    )
    .expect("write daemon.json");
    d.start();
    let p = Plugin::start(&d);
    Some((d, p))
}

macro_rules! setup_or_skip {
    ($t:expr) => {
        match setup($t) {
            Some(x) => x,
            None => return,
        }
    };
}

const ACTIVATE: [&str; 3] = [
    "Plugin.Activate",
    "NetworkDriver.GetCapabilities",
    "IpamDriver.GetCapabilities",
];

#[test]
fn lifecycle_calls_in_dockers_order() {
    let (d, p) = setup_or_skip!(5);

    // network create: activation, IPAM pool + gateway, then the driver.
    d.ok(&[
        "network",
        "create",
        "-d",
        P,
        "--ipam-driver",
        P,
        "--ipam-opt",
        "zone=blue",
        "--subnet",
        "10.77.0.0/24",
        "-o",
        "color=red",
        "pnet",
    ]);
    let mut want: Vec<&str> = ACTIVATE.to_vec();
    want.extend([
        "IpamDriver.GetDefaultAddressSpaces",
        "IpamDriver.RequestPool",
        "IpamDriver.RequestAddress",
        "NetworkDriver.CreateNetwork",
    ]);
    p.expect(&want);
    let pool = p.body("IpamDriver.RequestPool");
    assert_eq!(pool["Pool"], "10.77.0.0/24", "{pool}");
    assert_eq!(pool["AddressSpace"], "LocalDefault", "{pool}");
    assert_eq!(pool["Options"]["zone"], "blue", "{pool}");
    assert_eq!(pool["V6"], false, "{pool}");
    let gw = p.body("IpamDriver.RequestAddress");
    assert_eq!(
        gw["Options"]["RequestAddressType"], "com.docker.network.gateway",
        "{gw}"
    );
    let cn = p.body("NetworkDriver.CreateNetwork");
    assert_eq!(
        cn["Options"]["com.docker.network.generic"]["color"], "red",
        "{cn}"
    );
    assert_eq!(cn["IPv4Data"][0]["Pool"], "10.77.0.0/24", "{cn}");
    assert_eq!(cn["IPv4Data"][0]["Gateway"], "10.77.0.1/24", "{cn}");
    assert_eq!(cn["IPv4Data"][0]["AddressSpace"], "LocalDefault", "{cn}");
    let net_id = d.ok(&["network", "inspect", "-f", "{{.Id}}", "pnet"]);
    assert_eq!(cn["NetworkID"], net_id.as_str());
    let ipam = d.ok(&["network", "inspect", "-f", "{{json .IPAM}}", "pnet"]);
    assert!(ipam.contains(&format!("\"Driver\":\"{P}\"")), "{ipam}");
    assert!(ipam.contains("10.77.0.1"), "{ipam}");

    // run on the network: address, endpoint, join, external connectivity.
    p.clear();
    d.run_sleeper("c1", &["--network", "pnet"]);
    p.expect(&[
        "IpamDriver.RequestAddress",
        "NetworkDriver.CreateEndpoint",
        "NetworkDriver.Join",
        "NetworkDriver.ProgramExternalConnectivity",
        "NetworkDriver.EndpointOperInfo",
    ]);
    let ce = p.body("NetworkDriver.CreateEndpoint");
    assert_eq!(ce["Interface"]["Address"], "10.77.0.2/24", "{ce}");
    assert_eq!(ce["Interface"]["MacAddress"], "", "{ce}");
    let join = p.body("NetworkDriver.Join");
    assert_eq!(join["EndpointID"], ce["EndpointID"]);
    assert!(
        join["SandboxKey"]
            .as_str()
            .unwrap_or_default()
            .contains("/netns/"),
        "{join}"
    );
    // The container really has the plugin's interface, with the IPAM plugin's address,
    // the MAC the driver chose, its gateway and its static routes.
    let addr = d.exec_ok("c1", "ip -o -4 addr show eth0");
    assert!(addr.contains("10.77.0.2/24"), "{addr}");
    let mac = d.exec_ok("c1", "cat /sys/class/net/eth0/address");
    let want_mac = format!(
        "02:aa:bb:cc:dd:{}",
        &ce["EndpointID"].as_str().unwrap()[..2]
    );
    assert_eq!(mac.trim(), want_mac);
    let routes = d.exec_ok("c1", "ip route");
    assert!(
        routes.contains("default via 10.77.0.1 dev eth0"),
        "{routes}"
    );
    assert!(
        routes.contains("10.99.0.0/16 via 10.77.0.1 dev eth0"),
        "{routes}"
    );
    assert!(routes.contains("10.98.0.0/16 dev eth0"), "{routes}");
    let eid = &ce["EndpointID"].as_str().unwrap()[..8];
    let host = d.netns(&["ip", "-o", "link", "show"]).stdout;
    assert!(
        host.contains(&format!("tq{eid}")),
        "plugin's host side missing: {host}"
    );
    assert!(
        !host.contains(&format!("tp{eid}")),
        "container side still in host: {host}"
    );
    let insp = d.ok(&["inspect", "-f", "{{json .NetworkSettings.Networks}}", "c1"]);
    assert!(
        insp.contains("10.77.0.2") && insp.contains(&want_mac),
        "{insp}"
    );

    // connect + disconnect of a second container whose gateway is elsewhere.
    d.run_sleeper("c2", &[]);
    p.clear();
    d.ok(&["network", "connect", "pnet", "c2"]);
    p.expect(&[
        "IpamDriver.RequestAddress",
        "NetworkDriver.CreateEndpoint",
        "NetworkDriver.Join",
        "NetworkDriver.EndpointOperInfo",
    ]);
    let a2 = d.exec_ok("c2", "ip -o -4 addr show eth1");
    assert!(a2.contains("10.77.0.3/24"), "{a2}");
    p.clear();
    d.ok(&["network", "disconnect", "pnet", "c2"]);
    p.expect(&[
        "NetworkDriver.Leave",
        "NetworkDriver.DeleteEndpoint",
        "IpamDriver.ReleaseAddress",
    ]);
    assert_eq!(p.body("IpamDriver.ReleaseAddress")["Address"], "10.77.0.3");
    assert!(!d.exec("c2", "ip link show eth1").ok(), "eth1 still in c2");

    // container rm: revoke, leave, delete, release.
    p.clear();
    d.ok(&["rm", "-f", "c1"]);
    p.expect(&[
        "NetworkDriver.RevokeExternalConnectivity",
        "NetworkDriver.Leave",
        "NetworkDriver.DeleteEndpoint",
        "IpamDriver.ReleaseAddress",
    ]);
    assert!(
        wait_for(Duration::from_secs(5), || !d
            .netns(&["ip", "-o", "link", "show"])
            .stdout
            .contains(&format!("tq{eid}"))),
        "plugin's veth left behind"
    );

    // Before each Leave the interface was back in the daemon's namespace (live
    // disconnect and container removal alike).
    let leaves = p.leaves();
    assert_eq!(leaves.len(), 2, "{leaves:?}");
    assert!(leaves.iter().all(|(_, back)| *back), "{leaves:?}");
    assert_eq!(leaves[1].0, ce["EndpointID"].as_str().unwrap());

    // network rm: driver first, then the gateway, then the pool.
    p.clear();
    d.ok(&["network", "rm", "pnet"]);
    p.expect(&[
        "NetworkDriver.DeleteNetwork",
        "IpamDriver.ReleaseAddress",
        "IpamDriver.ReleasePool",
    ]);
    assert_eq!(p.body("IpamDriver.ReleaseAddress")["Address"], "10.77.0.1");
    assert_eq!(
        p.body("IpamDriver.ReleasePool")["PoolID"],
        "LocalDefault/10.77.0.0/24"
    );
    d.ok(&["rm", "-f", "c2"]);
}

#[test]
fn remote_driver_with_default_ipam() {
    let (d, p) = setup_or_skip!(5);
    d.ok(&[
        "network",
        "create",
        "-d",
        P,
        "--subnet",
        "10.78.0.0/24",
        "dnet",
    ]);
    // The plugin's IPAM side is registered at activation (as Docker), but not used.
    let mut want: Vec<&str> = ACTIVATE.to_vec();
    want.push("NetworkDriver.CreateNetwork");
    p.expect(&want);
    assert_eq!(
        p.body("NetworkDriver.CreateNetwork")["IPv4Data"][0]["Gateway"],
        "10.78.0.1/24"
    );
    p.clear();
    // The plugin names the interface: DstPrefix "net" → net0, net1 (indexes stay unique).
    p.set(json!({"prefix": "net"}));
    d.run_sleeper("c1", &["--network", "dnet", "--ip", "10.78.0.42"]);
    p.expect(&[
        "NetworkDriver.CreateEndpoint",
        "NetworkDriver.Join",
        "NetworkDriver.ProgramExternalConnectivity",
        "NetworkDriver.EndpointOperInfo",
    ]);
    let addr = d.exec_ok("c1", "ip -o -4 addr show net0");
    assert!(addr.contains("10.78.0.42/24"), "{addr}");
    d.ok(&[
        "network",
        "create",
        "-d",
        P,
        "--subnet",
        "10.79.0.0/24",
        "dnet2",
    ]);
    d.ok(&["network", "connect", "dnet2", "c1"]);
    let addr = d.exec_ok("c1", "ip -o -4 addr show net1");
    assert!(addr.contains("10.79.0.2/24"), "{addr}");
    let insp = d.ok(&["inspect", "-f", "{{json .NetworkSettings.Networks}}", "c1"]);
    assert!(insp.contains("10.79.0.2"), "{insp}");
    d.ok(&["rm", "-f", "c1"]);
    // A Join without Gateway: no default route, so no external connectivity calls.
    p.set(json!({"nogw": true}));
    p.clear();
    d.run_sleeper("c2", &["--network", "dnet"]);
    p.expect(&[
        "NetworkDriver.CreateEndpoint",
        "NetworkDriver.Join",
        "NetworkDriver.EndpointOperInfo",
    ]);
    let routes = d.exec_ok("c2", "ip route");
    assert!(!routes.contains("default"), "{routes}");
    p.clear();
    d.ok(&["rm", "-f", "c2"]);
    p.expect(&["NetworkDriver.Leave", "NetworkDriver.DeleteEndpoint"]);
    d.ok(&["network", "rm", "dnet", "dnet2"]);
}

/// Network names, endpoints and links: what must be unchanged after a failed request.
fn snapshot(d: &Daemon) -> String {
    d.state_dump()
}

#[test]
fn plugin_errors_reach_the_user_and_leave_nothing() {
    let (d, p) = setup_or_skip!(5);
    d.run_sleeper("c1", &[]);
    let before = snapshot(&d);

    // CreateNetwork refused: the text verbatim, 500 as Docker, IPAM rolled back.
    p.set(json!({"fail": {"NetworkDriver.CreateNetwork": "no VLAN left on trunk0"}}));
    let o = d.fail(&["network", "create", "-d", P, "--ipam-driver", P, "bad1"]);
    assert!(o.stderr.contains("remote: no VLAN left on trunk0"), "{o}");
    let tail: Vec<String> = p.methods().into_iter().rev().take(3).collect();
    assert_eq!(
        tail,
        [
            "IpamDriver.ReleasePool",
            "IpamDriver.ReleaseAddress",
            "NetworkDriver.CreateNetwork"
        ],
        "rollback: {:?}",
        p.methods()
    );
    let (code, body) = d.api(
        "POST",
        "/networks/create",
        Some(&json!({"Name": "bad1", "Driver": P}).to_string()),
    );
    assert_eq!(code, 500, "{body}");
    assert!(body.contains("remote: no VLAN left on trunk0"), "{body}");
    assert_eq!(snapshot(&d), before, "a refused network left state behind");

    // An IPAM error ("Error" field) in RequestPool.
    p.set(json!({"fail": {"IpamDriver.RequestPool": "pool space exhausted"}}));
    p.clear();
    let o = d.fail(&["network", "create", "-d", P, "--ipam-driver", P, "bad2"]);
    assert!(o.stderr.contains("remote: pool space exhausted"), "{o}");
    p.expect(&[
        "IpamDriver.GetDefaultAddressSpaces",
        "IpamDriver.RequestPool",
    ]);
    assert_eq!(snapshot(&d), before);

    // A non-200 answer: Docker's "<Method>: <Err>".
    p.set(json!({"fail": {"NetworkDriver.CreateNetwork": {"msg": "internal trouble", "status": 500}}}));
    let o = d.fail(&["network", "create", "-d", P, "bad3"]);
    assert!(
        o.stderr
            .contains("NetworkDriver.CreateNetwork: internal trouble"),
        "{o}"
    );
    assert_eq!(snapshot(&d), before);

    // Join refused on connect: no endpoint, no address, no link.
    p.set(json!({}));
    d.ok(&["network", "create", "-d", P, "--ipam-driver", P, "good"]);
    let before = snapshot(&d);
    p.set(json!({"fail": {"NetworkDriver.Join": "join refused by policy"}}));
    p.clear();
    let o = d.fail(&["network", "connect", "good", "c1"]);
    assert!(o.stderr.contains("remote: join refused by policy"), "{o}");
    p.expect(&[
        "IpamDriver.RequestAddress",
        "NetworkDriver.CreateEndpoint",
        "NetworkDriver.Join",
        "NetworkDriver.DeleteEndpoint",
        "IpamDriver.ReleaseAddress",
    ]);
    assert!(!d.exec("c1", "ip link show eth1").ok(), "eth1 left in c1");
    assert_eq!(snapshot(&d), before, "a failed connect left state behind");

    // A failure after the plugin's interface was moved into the container
    // (ProgramExternalConnectivity, for a container whose gateway is this network): the
    // interface goes back to the plugin, then Leave, DeleteEndpoint, ReleaseAddress.
    let links = |d: &Daemon| {
        d.netns(&["ip", "-o", "link", "show"])
            .stdout
            .lines()
            .filter_map(|l| {
                l.split(':')
                    .nth(1)
                    .map(|n| n.trim().split('@').next().unwrap_or_default().to_string())
            })
            .collect::<Vec<_>>()
    };
    let links_before = links(&d);
    p.set(json!({"fail": {"NetworkDriver.ProgramExternalConnectivity": "no uplink"}}));
    p.clear();
    let o = d.fail(&[
        "run",
        "-d",
        "--name",
        "c3",
        "--network",
        "good",
        "busybox",
        "sleep",
        "100",
    ]);
    assert!(o.stderr.contains("remote: no uplink"), "{o}");
    p.expect(&[
        "IpamDriver.RequestAddress",
        "NetworkDriver.CreateEndpoint",
        "NetworkDriver.Join",
        "NetworkDriver.ProgramExternalConnectivity",
        "NetworkDriver.Leave",
        "NetworkDriver.DeleteEndpoint",
        "IpamDriver.ReleaseAddress",
    ]);
    assert!(
        wait_for(Duration::from_secs(5), || links(&d) == links_before),
        "links left behind: {:?} (before {links_before:?})",
        links(&d)
    );
    p.set(json!({}));
    d.ok(&["rm", "-f", "c3"]);
    let before = snapshot(&d);

    // CreateEndpoint refused with a 4xx: no DeleteEndpoint (nothing was created).
    p.set(
        json!({"fail": {"NetworkDriver.CreateEndpoint": {"msg": "bad endpoint", "status": 400}}}),
    );
    p.clear();
    let o = d.fail(&["network", "connect", "good", "c1"]);
    assert!(
        o.stderr
            .contains("NetworkDriver.CreateEndpoint: bad endpoint"),
        "{o}"
    );
    p.expect(&[
        "IpamDriver.RequestAddress",
        "NetworkDriver.CreateEndpoint",
        "IpamDriver.ReleaseAddress",
    ]);
    assert_eq!(snapshot(&d), before);

    // DeleteNetwork fails: as in moby, the error is logged and the network goes anyway
    // (with its IPAM released), so a plugin that lost its state cannot pin it forever.
    p.set(json!({"fail": {"NetworkDriver.DeleteNetwork": "still in use upstream"}}));
    p.clear();
    d.ok(&["network", "rm", "good"]);
    p.expect(&[
        "NetworkDriver.DeleteNetwork",
        "IpamDriver.ReleaseAddress",
        "IpamDriver.ReleasePool",
    ]);
    assert!(!d.cli(&["network", "inspect", "good"]).ok(), "network kept");
    p.set(json!({}));
}

#[test]
fn hanging_or_gone_plugin_times_out_cleanly() {
    let (d, mut p) = setup_or_skip!(2);
    d.run_sleeper("c1", &[]);
    let before = snapshot(&d);

    p.set(json!({"hang": ["NetworkDriver.CreateNetwork"]}));
    let t = Instant::now();
    let o = d.fail(&["network", "create", "-d", P, "--ipam-driver", P, "slow"]);
    let took = t.elapsed();
    assert!(
        o.stderr
            .contains("NetworkDriver.CreateNetwork: plugin \"tplug\" did not answer within 2s"),
        "{o}"
    );
    assert!(took < Duration::from_secs(8), "took {took:?}");
    // The pool and gateway were given back.
    p.expect(&[
        "Plugin.Activate",
        "NetworkDriver.GetCapabilities",
        "IpamDriver.GetCapabilities",
        "IpamDriver.GetDefaultAddressSpaces",
        "IpamDriver.RequestPool",
        "IpamDriver.RequestAddress",
        "NetworkDriver.CreateNetwork",
        "IpamDriver.ReleaseAddress",
        "IpamDriver.ReleasePool",
    ]);
    assert_eq!(snapshot(&d), before, "a timed-out create left state behind");

    // A hanging Join on connect: nothing half-made.
    p.set(json!({}));
    d.ok(&["network", "create", "-d", P, "--ipam-driver", P, "n1"]);
    let before = snapshot(&d);
    p.set(json!({"hang": ["NetworkDriver.Join"]}));
    let t = Instant::now();
    let o = d.fail(&["network", "connect", "n1", "c1"]);
    assert!(
        t.elapsed() < Duration::from_secs(12),
        "took {:?}",
        t.elapsed()
    );
    assert!(
        o.stderr
            .contains("NetworkDriver.Join: plugin \"tplug\" did not answer within 2s"),
        "{o}"
    );
    assert!(!d.exec("c1", "ip link show eth1").ok(), "eth1 left in c1");
    assert_eq!(
        snapshot(&d),
        before,
        "a timed-out connect left state behind"
    );

    // The plugin dies: calls fail within the timeout and say so.
    p.set(json!({}));
    p.kill();
    let t = Instant::now();
    let o = d.fail(&["network", "connect", "n1", "c1"]);
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "took {:?}",
        t.elapsed()
    );
    assert!(o.stderr.contains("is not reachable"), "{o}");
    assert_eq!(snapshot(&d), before);
    // Back again: the network is still usable and removable.
    p.spawn();
    d.ok(&["network", "rm", "n1"]);
}

#[test]
fn missing_plugin_is_not_found() {
    let (d, p) = setup_or_skip!(2);
    let o = d.fail(&["network", "create", "-d", "nosuchplug", "x1"]);
    assert!(o.stderr.contains("plugin \"nosuchplug\" not found"), "{o}");
    let o = d.fail(&["network", "create", "--ipam-driver", "nosuchipam", "x1"]);
    assert!(o.stderr.contains("plugin \"nosuchipam\" not found"), "{o}");
    let (code, body) = d.api(
        "POST",
        "/networks/create",
        Some(r#"{"Name":"x1","Driver":"nosuchplug"}"#),
    );
    assert_eq!(code, 404, "{body}");
    // Names are never paths.
    let o = d.fail(&["network", "create", "-d", "../plugins/tplug", "x1"]);
    assert!(o.stderr.contains("not found"), "{o}");
    let ls = d.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!ls.contains("x1"), "{ls}");

    // Spec files: NAME.spec (a URL) and NAME.json ({"Addr"}) point at a socket elsewhere.
    let dir = d.dir.join("plugins");
    std::fs::write(
        dir.join("viaspec.spec"),
        format!("unix://{}\n", p.sock.display()),
    )
    .expect("write spec");
    std::fs::write(
        dir.join("viajson.json"),
        json!({"Name": "viajson", "Addr": format!("unix://{}", p.sock.display())}).to_string(),
    )
    .expect("write json spec");
    std::fs::write(dir.join("badspec.spec"), "http://example.invalid\n").expect("write spec");
    p.clear();
    d.ok(&["network", "create", "-d", "viaspec", "s1"]);
    d.ok(&["network", "create", "-d", "viajson", "s2"]);
    let n = p.methods();
    assert_eq!(
        n.iter().filter(|m| *m == "Plugin.Activate").count(),
        2,
        "{n:?}"
    );
    assert_eq!(
        n.iter()
            .filter(|m| *m == "NetworkDriver.CreateNetwork")
            .count(),
        2,
        "{n:?}"
    );
    let o = d.fail(&["network", "create", "-d", "badspec", "s3"]);
    assert!(
        o.stderr.contains("badspec.spec") && o.stderr.contains("unix://"),
        "{o}"
    );
    d.ok(&["network", "rm", "s1", "s2"]);
}

#[test]
fn remote_network_survives_daemon_restart() {
    let (mut d, p) = setup_or_skip!(5);
    d.ok(&["network", "create", "-d", P, "--ipam-driver", P, "rnet"]);
    d.run_sleeper("c1", &["--network", "rnet"]);
    let addr = d.exec_ok("c1", "ip -o -4 addr show eth0");
    p.clear();
    d.stop();
    d.start();
    // The network and the running container's endpoint are restored from the store:
    // the plugin is not asked to create anything again (not even activated yet).
    assert_eq!(p.methods(), Vec::<String>::new());
    let ls = d.ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    assert!(ls.contains(&format!("rnet {P}")), "{ls}");
    assert_eq!(d.exec_ok("c1", "ip -o -4 addr show eth0"), addr);
    // The next use activates it lazily and tears down in order.
    d.ok(&["rm", "-f", "c1"]);
    let mut want: Vec<&str> = ACTIVATE.to_vec();
    want.extend([
        "NetworkDriver.RevokeExternalConnectivity",
        "NetworkDriver.Leave",
        "NetworkDriver.DeleteEndpoint",
        "IpamDriver.ReleaseAddress",
    ]);
    p.expect(&want);
    p.clear();
    d.ok(&["network", "rm", "rnet"]);
    p.expect(&[
        "NetworkDriver.DeleteNetwork",
        "IpamDriver.ReleaseAddress",
        "IpamDriver.ReleasePool",
    ]);
    assert!(
        !p.methods()
            .iter()
            .any(|m| m == "NetworkDriver.CreateNetwork"),
        "CreateNetwork sent again after restart"
    );
}

#[test]
fn ipv6_pools_come_from_the_ipam_plugin() {
    let (d, p) = setup_or_skip!(5);
    d.ok(&[
        "network",
        "create",
        "-d",
        P,
        "--ipam-driver",
        P,
        "--ipv6",
        "v6net",
    ]);
    let pools: Vec<Value> = p
        .calls()
        .into_iter()
        .filter(|(m, _)| m == "IpamDriver.RequestPool")
        .map(|(_, b)| b)
        .collect();
    assert_eq!(pools.len(), 2, "{pools:?}");
    assert_eq!(
        (pools[0]["V6"].clone(), pools[0]["Pool"].clone()),
        (json!(false), json!(""))
    );
    assert_eq!(
        (pools[1]["V6"].clone(), pools[1]["Pool"].clone()),
        (json!(true), json!(""))
    );
    let cn = p.body("NetworkDriver.CreateNetwork");
    assert_eq!(cn["IPv6Data"][0]["Pool"], "fd00:77::/64", "{cn}");
    assert_eq!(cn["IPv6Data"][0]["Gateway"], "fd00:77::1/64", "{cn}");
    assert_eq!(
        cn["Options"]["com.docker.network.enable_ipv6"], true,
        "{cn}"
    );
    p.clear();
    d.run_sleeper("c1", &["--network", "v6net"]);
    let want_order = [
        "IpamDriver.RequestAddress",
        "IpamDriver.RequestAddress",
        "NetworkDriver.CreateEndpoint",
    ];
    assert_eq!(&p.methods()[..3], want_order);
    let ce = p.body("NetworkDriver.CreateEndpoint");
    assert_eq!(ce["Interface"]["Address"], "10.77.0.2/24", "{ce}");
    assert_eq!(ce["Interface"]["AddressIPv6"], "fd00:77::2/64", "{ce}");
    let a = d.exec_ok("c1", "ip -o addr show eth0");
    assert!(
        a.contains("10.77.0.2/24") && a.contains("fd00:77::2/64"),
        "{a}"
    );
    d.ok(&["rm", "-f", "c1"]);
    p.clear();
    d.ok(&["network", "rm", "v6net"]);
    p.expect(&[
        "NetworkDriver.DeleteNetwork",
        "IpamDriver.ReleaseAddress",
        "IpamDriver.ReleasePool",
        "IpamDriver.ReleaseAddress",
        "IpamDriver.ReleasePool",
    ]);
}

/// The options Docker sends with an endpoint: `CreateEndpoint` carries the endpoint's
/// generic options (driver opts, exposed ports, port mappings, DNS servers), `Join` and
/// `ProgramExternalConnectivity` the sandbox's (exposed ports, port mappings);
/// `EndpointOperInfo` follows a successful join, and its failure breaks nothing.
#[test]
fn endpoint_and_sandbox_options_reach_the_plugin() {
    let (d, p) = setup_or_skip!(5);
    d.ok(&[
        "network",
        "create",
        "-d",
        P,
        "--subnet",
        "10.81.0.0/24",
        "onet",
    ]);
    d.ok(&[
        "network",
        "create",
        "-d",
        P,
        "--subnet",
        "10.83.0.0/24",
        "onet2",
    ]);
    p.clear();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "o1",
        "--network",
        "onet",
        "--expose",
        "90/udp",
        "-p",
        "8080:80",
        "-p",
        "127.0.0.1::443",
        "--dns",
        "10.1.2.3",
        "busybox",
        "sleep",
        "100",
    ]);
    p.expect(&[
        "NetworkDriver.CreateEndpoint",
        "NetworkDriver.Join",
        "NetworkDriver.ProgramExternalConnectivity",
        "NetworkDriver.EndpointOperInfo",
    ]);
    let exposed = json!([
        {"Proto": 6, "Port": 80},
        {"Proto": 17, "Port": 90},
        {"Proto": 6, "Port": 443},
    ]);
    let portmap = json!([
        {"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": 8080, "HostPortEnd": 8080},
        {"Proto": 6, "IP": "", "Port": 443, "HostIP": "127.0.0.1", "HostPort": 0, "HostPortEnd": 0},
    ]);
    let ce = p.body("NetworkDriver.CreateEndpoint");
    assert_eq!(
        ce["Options"],
        json!({
            "com.docker.network.endpoint.exposedports": exposed,
            "com.docker.network.portmap": portmap,
            "com.docker.network.endpoint.dnsservers": ["10.1.2.3"],
        }),
        "{ce}"
    );
    let sandbox = json!({
        "com.docker.network.endpoint.exposedports": exposed,
        "com.docker.network.portmap": portmap,
    });
    let join = p.body("NetworkDriver.Join");
    assert_eq!(join["Options"], sandbox, "{join}");
    let pec = p.body("NetworkDriver.ProgramExternalConnectivity");
    assert_eq!(pec["Options"], sandbox, "{pec}");
    assert_eq!(pec["EndpointID"], ce["EndpointID"]);
    let eoi = p.body("NetworkDriver.EndpointOperInfo");
    assert_eq!(
        eoi,
        json!({"NetworkID": ce["NetworkID"], "EndpointID": ce["EndpointID"]})
    );

    // network connect --driver-opt: the user's options, as strings, at the top level.
    p.clear();
    d.ok(&[
        "network",
        "connect",
        "--driver-opt",
        "vlan=42",
        "--driver-opt",
        "com.example.x=y",
        "onet2",
        "o1",
    ]);
    p.expect(&[
        "NetworkDriver.CreateEndpoint",
        "NetworkDriver.Join",
        "NetworkDriver.EndpointOperInfo",
    ]);
    let ce2 = p.body("NetworkDriver.CreateEndpoint");
    assert_eq!(ce2["Options"]["vlan"], "42", "{ce2}");
    assert_eq!(ce2["Options"]["com.example.x"], "y", "{ce2}");
    assert_eq!(
        ce2["Options"]["com.docker.network.endpoint.exposedports"], exposed,
        "{ce2}"
    );
    // inspect shows them, as Docker's EndpointSettings.DriverOpts.
    let opts = d.ok(&[
        "inspect",
        "-f",
        "{{json .NetworkSettings.Networks.onet2.DriverOpts}}",
        "o1",
    ]);
    assert_eq!(
        serde_json::from_str::<Value>(&opts).ok(),
        Some(json!({"vlan": "42", "com.example.x": "y"})),
        "{opts}"
    );
    // A bad DriverOpts is refused before the plugin hears of it.
    p.clear();
    let id = d.ok(&["inspect", "-f", "{{.Id}}", "o1"]);
    let (code, body) = d.api(
        "POST",
        "/networks/onet2/connect",
        Some(&json!({"Container": id, "EndpointConfig": {"DriverOpts": {"vlan": 42}}}).to_string()),
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("DriverOpts") && body.contains("must be a string"),
        "{body}"
    );
    assert_eq!(p.methods(), Vec::<String>::new());

    // A failing EndpointOperInfo is logged and ignored: run and inspect work.
    p.set(json!({"fail": {"NetworkDriver.EndpointOperInfo": "no info today"}}));
    p.clear();
    d.run_sleeper("o2", &["--network", "onet"]);
    p.expect(&[
        "NetworkDriver.CreateEndpoint",
        "NetworkDriver.Join",
        "NetworkDriver.ProgramExternalConnectivity",
        "NetworkDriver.EndpointOperInfo",
    ]);
    let insp = d.ok(&["inspect", "-f", "{{json .NetworkSettings.Networks}}", "o2"]);
    assert!(insp.contains("10.81.0."), "{insp}");
    // A container with nothing exposed: empty lists, as Docker.
    let ce3 = p.body("NetworkDriver.CreateEndpoint");
    assert_eq!(
        ce3["Options"],
        json!({
            "com.docker.network.endpoint.exposedports": [],
            "com.docker.network.portmap": [],
        }),
        "{ce3}"
    );
    p.set(json!({}));
    // --mac-address: in the Interface and as the endpoint option, as Docker sends it.
    p.clear();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "o3",
        "--network",
        "onet2",
        "--mac-address",
        "02:00:00:00:0a:0b",
        "busybox",
        "sleep",
        "100",
    ]);
    let ce4 = p.body("NetworkDriver.CreateEndpoint");
    assert_eq!(ce4["Interface"]["MacAddress"], "02:00:00:00:0a:0b", "{ce4}");
    assert_eq!(
        ce4["Options"]["com.docker.network.endpoint.macaddress"], "02:00:00:00:0a:0b",
        "{ce4}"
    );
    d.ok(&["rm", "-f", "o1", "o2", "o3"]);
    d.ok(&["network", "rm", "onet", "onet2"]);
}

/// When the endpoint carrying the default route leaves, the next one takes the role and
/// its plugin gets `ProgramExternalConnectivity` (the old one got
/// `RevokeExternalConnectivity`), as libnetwork does.
#[test]
fn gateway_handover_programs_the_new_endpoint() {
    let (d, p) = setup_or_skip!(5);
    d.ok(&[
        "network",
        "create",
        "-d",
        P,
        "--subnet",
        "10.84.0.0/24",
        "h1",
    ]);
    d.ok(&[
        "network",
        "create",
        "-d",
        P,
        "--subnet",
        "10.85.0.0/24",
        "h2",
    ]);
    d.run_sleeper("hc", &["--network", "h1"]);
    let ep1 = p.body("NetworkDriver.CreateEndpoint")["EndpointID"].clone();
    p.clear();
    d.ok(&["network", "connect", "h2", "hc"]);
    // Not the gateway endpoint: no external connectivity.
    p.expect(&[
        "NetworkDriver.CreateEndpoint",
        "NetworkDriver.Join",
        "NetworkDriver.EndpointOperInfo",
    ]);
    let ep2 = p.body("NetworkDriver.CreateEndpoint")["EndpointID"].clone();
    p.clear();
    d.ok(&["network", "disconnect", "h1", "hc"]);
    p.expect(&[
        "NetworkDriver.RevokeExternalConnectivity",
        "NetworkDriver.Leave",
        "NetworkDriver.DeleteEndpoint",
        "NetworkDriver.ProgramExternalConnectivity",
    ]);
    assert_eq!(
        p.body("NetworkDriver.RevokeExternalConnectivity")["EndpointID"],
        ep1
    );
    let pec = p.body("NetworkDriver.ProgramExternalConnectivity");
    assert_eq!(pec["EndpointID"], ep2, "{pec}");
    assert_eq!(
        pec["Options"]["com.docker.network.endpoint.exposedports"],
        json!([]),
        "{pec}"
    );
    let routes = d.exec_ok("hc", "ip route");
    assert!(
        routes.contains("default via 10.85.0.1 dev eth1"),
        "{routes}"
    );
    // The new gateway endpoint is revoked when it leaves in turn.
    p.clear();
    d.ok(&["rm", "-f", "hc"]);
    p.expect(&[
        "NetworkDriver.RevokeExternalConnectivity",
        "NetworkDriver.Leave",
        "NetworkDriver.DeleteEndpoint",
    ]);
    assert_eq!(
        p.body("NetworkDriver.RevokeExternalConnectivity")["EndpointID"],
        ep2
    );
    d.ok(&["network", "rm", "h1", "h2"]);
}

/// A plugin with the `GwAllocChecker` capability (moby ≥ 28) is asked, before anything is
/// reserved, whether the network needs gateway addresses; with `SkipIPv4` no IPv4 gateway
/// is reserved (unless the user gave one).
#[test]
fn gw_alloc_check_skips_the_gateway() {
    let (d, p) = setup_or_skip!(5);
    p.set(json!({"gwalloc": {"SkipIPv4": true, "SkipIPv6": false}}));
    d.ok(&[
        "network",
        "create",
        "-d",
        P,
        "--subnet",
        "10.86.0.0/24",
        "-o",
        "mode=l3",
        "s1",
    ]);
    let mut want: Vec<&str> = ACTIVATE.to_vec();
    want.extend(["NetworkDriver.GwAllocCheck", "NetworkDriver.CreateNetwork"]);
    p.expect(&want);
    let check = p.body("NetworkDriver.GwAllocCheck");
    let cn = p.body("NetworkDriver.CreateNetwork");
    assert_eq!(check["Options"], cn["Options"], "{check} vs {cn}");
    assert_eq!(check["Options"]["com.docker.network.generic"]["mode"], "l3");
    assert_eq!(cn["IPv4Data"][0]["Pool"], "10.86.0.0/24", "{cn}");
    assert!(cn["IPv4Data"][0].get("Gateway").is_none(), "{cn}");
    let cfg: Value =
        serde_json::from_str(&d.ok(&["network", "inspect", "-f", "{{json .IPAM.Config}}", "s1"]))
            .expect("IPAM config JSON");
    assert_eq!(cfg[0]["Subnet"], "10.86.0.0/24", "{cfg}");
    assert!(
        cfg[0]["Gateway"].as_str().unwrap_or_default().is_empty(),
        "{cfg}"
    );
    // The first address is free for a container.
    d.run_sleeper("sc", &["--network", "s1"]);
    let addr = d.exec_ok("sc", "ip -o -4 addr show eth0");
    assert!(addr.contains("10.86.0.1/24"), "{addr}");
    d.ok(&["rm", "-f", "sc"]);

    // With the IPAM plugin: no gateway RequestAddress at all.
    p.clear();
    d.ok(&[
        "network",
        "create",
        "-d",
        P,
        "--ipam-driver",
        P,
        "--subnet",
        "10.87.0.0/24",
        "s2",
    ]);
    p.expect(&[
        "NetworkDriver.GwAllocCheck",
        "IpamDriver.GetDefaultAddressSpaces",
        "IpamDriver.RequestPool",
        "NetworkDriver.CreateNetwork",
    ]);
    p.clear();
    d.ok(&["network", "rm", "s2"]);
    p.expect(&["NetworkDriver.DeleteNetwork", "IpamDriver.ReleasePool"]);

    // A gateway the user asked for is reserved anyway.
    p.clear();
    d.ok(&[
        "network",
        "create",
        "-d",
        P,
        "--ipam-driver",
        P,
        "--subnet",
        "10.88.0.0/24",
        "--gateway",
        "10.88.0.254",
        "s3",
    ]);
    p.expect(&[
        "NetworkDriver.GwAllocCheck",
        "IpamDriver.GetDefaultAddressSpaces",
        "IpamDriver.RequestPool",
        "IpamDriver.RequestAddress",
        "NetworkDriver.CreateNetwork",
    ]);
    assert_eq!(
        p.body("NetworkDriver.CreateNetwork")["IPv4Data"][0]["Gateway"],
        "10.88.0.254/24"
    );

    // A GwAllocCheck error fails the create and nothing is reserved.
    p.set(json!({"gwalloc": {}, "fail": {"NetworkDriver.GwAllocCheck": "mode unknown"}}));
    p.clear();
    let o = d.fail(&["network", "create", "-d", P, "--ipam-driver", P, "s4"]);
    assert!(o.stderr.contains("remote: mode unknown"), "{o}");
    p.expect(&["NetworkDriver.GwAllocCheck"]);
    d.ok(&["network", "rm", "s1", "s3"]);
}

/// While a plugin hangs in `CreateNetwork`, requests that do not involve it answer at once
/// (the call runs without the controller's state lock); the hung network's name is taken
/// meanwhile, and everything is given back when the call times out.
#[test]
fn hanging_plugin_does_not_stall_other_requests() {
    let (d, p) = setup_or_skip!(8);
    let before = snapshot(&d);
    p.set(json!({"hang": ["NetworkDriver.CreateNetwork"]}));
    std::thread::scope(|s| {
        let hung = s.spawn(|| {
            let t = Instant::now();
            let o = d.cli_t(
                &[
                    "network",
                    "create",
                    "-d",
                    P,
                    "--subnet",
                    "10.89.0.0/24",
                    "hung",
                ],
                Duration::from_secs(30),
            );
            (o, t.elapsed())
        });
        assert!(
            wait_for(Duration::from_secs(5), || p
                .methods()
                .iter()
                .any(|m| m == "NetworkDriver.CreateNetwork")),
            "CreateNetwork not sent: {:?}",
            p.methods()
        );
        let t = Instant::now();
        let ls = d.ok(&["network", "ls", "--format", "{{.Name}}"]);
        assert!(
            !ls.contains("hung"),
            "a network still being created is listed: {ls}"
        );
        d.ok(&["network", "create", "--subnet", "10.90.0.0/24", "quick"]);
        // Its pool is reserved: a bridge network cannot take it meanwhile.
        let o = d.fail(&["network", "create", "--subnet", "10.89.0.0/24", "clash"]);
        assert!(o.stderr.to_lowercase().contains("overlap"), "{o}");
        // Its name is taken.
        let o = d.fail(&["network", "create", "hung"]);
        assert!(o.stderr.contains("already exists"), "{o}");
        d.run_sleeper("q1", &["--network", "quick"]);
        let took = t.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "requests waited for the hanging plugin: {took:?}"
        );
        let (o, took) = hung.join().expect("create thread");
        assert!(
            o.stderr
                .contains("NetworkDriver.CreateNetwork: plugin \"tplug\" did not answer within 8s"),
            "{o}"
        );
        assert!(took >= Duration::from_secs(7), "{took:?}");
    });
    // Nothing of the hung network is left: name and pool are free again.
    d.ok(&["rm", "-f", "q1"]);
    d.ok(&["network", "rm", "quick"]);
    assert_eq!(snapshot(&d), before, "a timed-out create left state behind");
    p.set(json!({}));
    d.ok(&["network", "create", "--subnet", "10.89.0.0/24", "hung"]);
    d.ok(&["network", "rm", "hung"]);
}

/// A client that hangs up while the plugin is still working (Ctrl-C, a client-side
/// timeout) does not cancel the daemon's work half-way: the create times out and rolls
/// back as if the client had waited, leaving nothing behind and the name free.
#[test]
fn client_hanging_up_mid_call_leaves_nothing_half_made() {
    let (d, p) = setup_or_skip!(2);
    let before = snapshot(&d);
    p.set(json!({"hang": ["NetworkDriver.CreateNetwork"]}));
    let body = format!(r#"{{"Name":"gone","Driver":"{P}","IPAM":{{"Driver":"{P}"}}}}"#);
    let sock = d.sock();
    let o = netloom_e2e::sh(
        "curl",
        &[
            "-s",
            "--max-time",
            "0.5",
            "--unix-socket",
            sock.to_str().unwrap(),
            "-H",
            "Content-Type: application/json",
            "-d",
            &body,
            "http://localhost/v1.47/networks/create",
        ],
    );
    assert!(!o.ok(), "curl should have given up: {o}");
    // The daemon finishes the call (2 s plugin timeout) and rolls everything back.
    p.expect(&[
        "Plugin.Activate",
        "NetworkDriver.GetCapabilities",
        "IpamDriver.GetCapabilities",
        "IpamDriver.GetDefaultAddressSpaces",
        "IpamDriver.RequestPool",
        "IpamDriver.RequestAddress",
        "NetworkDriver.CreateNetwork",
        "IpamDriver.ReleaseAddress",
        "IpamDriver.ReleasePool",
    ]);
    assert!(
        wait_for(Duration::from_secs(5), || snapshot(&d) == before),
        "a create whose client hung up left state behind"
    );
    // The name is free again.
    p.set(json!({}));
    d.ok(&["network", "create", "-d", P, "--ipam-driver", P, "gone"]);
    d.ok(&["network", "rm", "gone"]);
}

/// A plugin that hangs while being activated holds up only its own users: another
/// plugin activates and serves a network create meanwhile.
#[test]
fn one_plugins_activation_does_not_wait_for_another() {
    let (d, p) = setup_or_skip!(4);
    let q = Plugin::start_named(&d, "tplug2");
    p.set(json!({"hang": ["Plugin.Activate"]}));
    let host = d.host_arg();
    let bin = netloom_e2e::bin_dir().join("netloom");
    let slow = std::thread::spawn(move || {
        Command::new(bin)
            .args(["-H", &host, "network", "create", "-d", P, "hangnet"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    });
    // Let the first activation start hanging.
    assert!(wait_for(Duration::from_secs(5), || p
        .methods()
        .iter()
        .any(|m| m == "Plugin.Activate")));
    let t = Instant::now();
    d.ok(&["network", "create", "-d", "tplug2", "quick"]);
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "tplug2 waited {took:?} for tplug's hanging activation"
    );
    assert!(
        q.methods()
            .iter()
            .any(|m| m == "NetworkDriver.CreateNetwork")
    );
    assert!(
        !slow.join().unwrap_or(true),
        "the hanging activation should time out"
    );
    d.ok(&["network", "rm", "quick"]);
}

/// Waits until the plugin has been sent `method` (it may hang in it).
#[track_caller]
fn wait_called(p: &Plugin, method: &str) {
    assert!(
        wait_for(Duration::from_secs(10), || p
            .methods()
            .iter()
            .any(|m| m == method)),
        "{method} not sent: {:?}",
        p.methods()
    );
}

/// Plugin timeout of the tests that hold a plugin call until they let it go: long, so
/// that only the test decides when the call ends (a loaded machine cannot make the
/// call time out first).
const LONG: u32 = 60;

/// Client-side timeout of a request whose plugin call is held.
const HELD: Duration = Duration::from_secs(120);

/// Waits until the plugin has been sent `method` `n` times (it may hold them).
#[track_caller]
fn wait_called_n(p: &Plugin, method: &str, n: usize) {
    assert!(
        wait_for(Duration::from_secs(20), || p
            .methods()
            .iter()
            .filter(|m| *m == method)
            .count()
            >= n),
        "{method} not sent {n} times: {:?}",
        p.methods()
    );
}

/// Gives a request sent from another thread time to reach the daemon, then asserts
/// that it is still waiting (for a plugin call the test holds).
#[track_caller]
fn still_waiting<T>(h: &std::thread::ScopedJoinHandle<'_, T>, what: &str) {
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !h.is_finished(),
        "{what} answered while the plugin call was held"
    );
}

/// Requests that do not involve the plugin answer while one of its calls is held
/// (indefinitely, by the test): listing, and running and removing a container on the
/// default bridge network. The bound is generous (a loaded CI machine); the plugin call
/// does not end before the test lets it, so any answer proves nothing waits for it.
#[track_caller]
fn others_answer_at_once(d: &Daemon, tag: &str) {
    let t = Instant::now();
    d.ok(&["network", "ls"]);
    d.ok(&["ps", "-a"]);
    let name = format!("other-{tag}");
    d.run_sleeper(&name, &[]);
    d.ok(&["rm", "-f", &name]);
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "requests waited for the plugin call in flight: {took:?}"
    );
}

/// Sends `args` while the plugin holds `method` (indefinitely, until the test says):
/// meanwhile other requests answer and `during` runs (the request is still waiting
/// after it); then the held call fails with `msg`, and the request must fail with it.
#[track_caller]
fn fails_while_held(
    d: &Daemon,
    p: &Plugin,
    method: &str,
    args: &[&str],
    tag: &str,
    during: impl FnOnce(),
    msg: &str,
) {
    p.set(json!({"hold": [method]}));
    std::thread::scope(|s| {
        let held = s.spawn(|| d.cli_t(args, HELD));
        wait_called(p, method);
        others_answer_at_once(d, tag);
        during();
        assert!(
            !held.is_finished(),
            "{args:?} answered while {method} was held"
        );
        p.set(json!({"fail": {method: msg}}));
        let o = held.join().expect("request thread");
        assert!(!o.ok(), "{o}");
        assert!(o.stderr.contains(msg), "{o}");
    });
}

/// While a plugin holds an endpoint call (`Join` during `network connect`,
/// `CreateEndpoint` during `run`), other requests answer; the endpoint is recorded
/// before the plugin is asked (the network cannot be removed meanwhile), and the request
/// that fails when the call ends leaves nothing half-made. Fails when endpoint calls
/// hold the lock.
#[test]
fn hanging_endpoint_call_does_not_stall_other_requests() {
    let (d, p) = setup_or_skip!(LONG);
    d.run_sleeper("c1", &[]);
    d.ok(&["network", "create", "-d", P, "--ipam-driver", P, "jn"]);
    let before = snapshot(&d);

    p.clear();
    fails_while_held(
        &d,
        &p,
        "NetworkDriver.Join",
        &["network", "connect", "jn", "c1"],
        "join",
        || {
            let o = d.fail(&["network", "rm", "jn"]);
            assert!(o.stderr.contains("has active endpoints"), "{o}");
        },
        "join refused by the test",
    );
    p.expect(&[
        "IpamDriver.RequestAddress",
        "NetworkDriver.CreateEndpoint",
        "NetworkDriver.Join",
        "NetworkDriver.DeleteEndpoint",
        "IpamDriver.ReleaseAddress",
    ]);
    assert!(!d.exec("c1", "ip link show eth1").ok(), "eth1 left in c1");
    assert_eq!(snapshot(&d), before, "a failed connect left state behind");

    p.clear();
    fails_while_held(
        &d,
        &p,
        "NetworkDriver.CreateEndpoint",
        &[
            "run",
            "-d",
            "--name",
            "r1",
            "--network",
            "jn",
            "busybox",
            "sleep",
            "100000",
        ],
        "create-endpoint",
        || {},
        "no endpoint today",
    );
    // A plugin whose CreateEndpoint failed has no endpoint to delete.
    p.expect(&[
        "IpamDriver.RequestAddress",
        "NetworkDriver.CreateEndpoint",
        "IpamDriver.ReleaseAddress",
    ]);
    // As Docker, the container of a failed `run` stays, created.
    let st = d.ok(&["inspect", "-f", "{{.State.Status}}", "r1"]);
    assert_eq!(st.trim(), "created");
    d.ok(&["rm", "r1"]);
    assert_eq!(snapshot(&d), before, "a failed run left state behind");
    p.set(json!({}));
    d.ok(&["network", "rm", "jn"]);
}

/// While a plugin holds `DeleteNetwork`, other requests answer; the network is being
/// removed: nothing may join it and a second removal is refused, clearly. A failing
/// `DeleteNetwork` does not keep the network (as moby). The IPAM releases come after
/// the record is gone (intent first): while the plugin holds `ReleasePool` the network
/// is no longer listed, and its name stays taken until the release is done.
#[test]
fn hanging_delete_network_does_not_stall_other_requests() {
    let (d, p) = setup_or_skip!(LONG);
    d.run_sleeper("c1", &[]);
    let before = snapshot(&d);
    d.ok(&["network", "create", "-d", P, "--ipam-driver", P, "dn"]);
    p.clear();
    p.set(json!({"hold": ["NetworkDriver.DeleteNetwork"]}));
    std::thread::scope(|s| {
        let held = s.spawn(|| d.cli_t(&["network", "rm", "dn"], HELD));
        wait_called(&p, "NetworkDriver.DeleteNetwork");
        others_answer_at_once(&d, "delete-network");
        let t = Instant::now();
        let o = d.fail(&[
            "run",
            "-d",
            "--name",
            "r2",
            "--network",
            "dn",
            "busybox",
            "sleep",
            "100000",
        ]);
        assert!(o.stderr.contains("network dn is being removed"), "{o}");
        assert!(
            !d.cli(&["inspect", "r2"]).ok(),
            "a refused run left a container"
        );
        let o = d.fail(&["network", "connect", "dn", "c1"]);
        assert!(o.stderr.contains("network dn is being removed"), "{o}");
        let o = d.fail(&["network", "rm", "dn"]);
        assert!(
            o.stderr.contains("network dn is already being removed"),
            "{o}"
        );
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "refusals waited for the plugin: {:?}",
            t.elapsed()
        );
        assert!(
            !held.is_finished(),
            "rm answered while DeleteNetwork was held"
        );
        p.set(json!({
            "fail": {"NetworkDriver.DeleteNetwork": "lost it"},
            "hold": ["IpamDriver.ReleasePool"],
        }));
        wait_called(&p, "IpamDriver.ReleasePool");
        let o = d.cli(&["network", "inspect", "dn"]);
        assert!(
            !o.ok(),
            "network still there while its pool is released: {o}"
        );
        let ls = d.ok(&["network", "ls", "--format", "{{.Name}}"]);
        assert!(!ls.lines().any(|l| l == "dn"), "{ls}");
        let o = d.fail(&["network", "create", "dn"]);
        assert!(o.stderr.contains("already exists"), "{o}");
        assert!(
            !held.is_finished(),
            "rm answered while ReleasePool was held"
        );
        p.set(json!({}));
        let o = held.join().expect("rm thread");
        assert!(
            o.ok(),
            "a plugin's failing DeleteNetwork must not keep the network: {o}"
        );
    });
    p.expect(&[
        "NetworkDriver.DeleteNetwork",
        "IpamDriver.ReleaseAddress",
        "IpamDriver.ReleasePool",
    ]);
    assert!(!d.cli(&["network", "inspect", "dn"]).ok(), "network kept");
    assert_eq!(snapshot(&d), before, "the removal left state behind");
    // The name is free once the release is done.
    d.ok(&["network", "create", "dn"]);
    d.ok(&["network", "rm", "dn"]);
}

/// Operations on one container run one at a time: a `disconnect` (or `rm -f`, `stop`)
/// issued while a `connect` of the same container is inside a plugin call waits for it,
/// then runs on a consistent state: no orphan endpoint, every address given back. Other
/// containers are not held up meanwhile.
#[test]
fn operations_on_one_container_wait_for_each_other() {
    let (d, p) = setup_or_skip!(LONG);
    d.ok(&["network", "create", "-d", P, "--ipam-driver", P, "sn"]);
    let base = snapshot(&d);
    d.run_sleeper("c1", &[]);
    let before = snapshot(&d);

    // A held Join: the disconnect, sent while the connect is inside it, waits for the
    // connect to finish, then undoes it.
    p.clear();
    p.set(json!({"hold": ["NetworkDriver.Join"]}));
    std::thread::scope(|s| {
        let conn = s.spawn(|| d.cli_t(&["network", "connect", "sn", "c1"], HELD));
        wait_called(&p, "NetworkDriver.Join");
        others_answer_at_once(&d, "held-join");
        let disc = s.spawn(|| d.cli_t(&["network", "disconnect", "sn", "c1"], HELD));
        still_waiting(&disc, "disconnect");
        assert!(
            !conn.is_finished(),
            "connect answered while its Join was held"
        );
        p.set(json!({}));
        let c = conn.join().expect("connect thread");
        assert!(c.ok(), "connect: {c}");
        let o = disc.join().expect("disconnect thread");
        assert!(o.ok(), "disconnect during a connect: {o}");
    });
    p.expect(&[
        "IpamDriver.RequestAddress",
        "NetworkDriver.CreateEndpoint",
        "NetworkDriver.Join",
        "NetworkDriver.EndpointOperInfo",
        "NetworkDriver.Leave",
        "NetworkDriver.DeleteEndpoint",
        "IpamDriver.ReleaseAddress",
    ]);
    assert!(!d.exec("c1", "ip link show eth1").ok(), "eth1 left in c1");
    assert_eq!(
        snapshot(&d),
        before,
        "connect + disconnect left state behind"
    );

    // `rm -f` and `stop` while a connect of the same container waits in Join: the
    // process is killed at once, but the exit handling needs the container's lock, so
    // both wait for the connect, however long the plugin takes (held here longer than
    // the 15 s a removal once waited for the exit), then finish: the container removed,
    // or stopped for real.
    d.run_sleeper("c2", &[]);
    p.clear();
    p.set(json!({"hold": ["NetworkDriver.Join"]}));
    std::thread::scope(|s| {
        let conn1 = s.spawn(|| d.cli_t(&["network", "connect", "sn", "c1"], HELD));
        let conn2 = s.spawn(|| d.cli_t(&["network", "connect", "sn", "c2"], HELD));
        wait_called_n(&p, "NetworkDriver.Join", 2);
        let rm = s.spawn(|| d.cli_t(&["rm", "-f", "c1"], HELD));
        let stop = s.spawn(|| d.cli_t(&["stop", "-t", "1", "c2"], HELD));
        std::thread::sleep(Duration::from_secs(17));
        assert!(
            !rm.is_finished(),
            "rm -f answered while the connect was held"
        );
        assert!(
            !stop.is_finished(),
            "stop answered while the connect was held"
        );
        p.set(json!({}));
        // The connects end either way (their containers died meanwhile).
        let _ = conn1.join().expect("connect thread");
        let _ = conn2.join().expect("connect thread");
        let o = rm.join().expect("rm thread");
        assert!(o.ok(), "rm -f during a connect: {o}");
        let o = stop.join().expect("stop thread");
        assert!(o.ok(), "stop during a connect: {o}");
    });
    assert!(!d.cli(&["inspect", "c1"]).ok(), "c1 kept");
    let st = d.ok(&["inspect", "-f", "{{.State.Status}} {{.State.Pid}}", "c2"]);
    assert_eq!(st, "exited 0", "stop returned before c2 stopped");
    d.ok(&["rm", "c2"]);
    assert_eq!(
        snapshot(&d),
        base,
        "rm -f / stop during a connect left state behind"
    );

    // `rm -f` while a start waits for the plugin: the start finishes, then the container
    // is killed and removed.
    p.clear();
    p.set(json!({"hold": ["NetworkDriver.Join"]}));
    let run = |name: &'static str| {
        let d = &d;
        move || {
            d.cli_t(
                &[
                    "run",
                    "-d",
                    "--name",
                    name,
                    "--network",
                    "sn",
                    "busybox",
                    "sleep",
                    "100000",
                ],
                HELD,
            )
        }
    };
    std::thread::scope(|s| {
        let run = s.spawn(run("r4"));
        wait_called(&p, "NetworkDriver.Join");
        let rm = s.spawn(|| d.cli_t(&["rm", "-f", "r4"], HELD));
        still_waiting(&rm, "rm -f");
        p.set(json!({}));
        let r = run.join().expect("run thread");
        assert!(r.ok(), "run: {r}");
        let o = rm.join().expect("rm thread");
        assert!(o.ok(), "rm -f during a start: {o}");
    });
    assert!(!d.cli(&["inspect", "r4"]).ok(), "r4 kept");
    let calls = p.methods();
    assert!(
        calls.ends_with(&[
            "NetworkDriver.Leave".to_string(),
            "NetworkDriver.DeleteEndpoint".to_string(),
            "IpamDriver.ReleaseAddress".to_string(),
        ]),
        "{calls:?}"
    );
    assert_eq!(snapshot(&d), base, "rm -f during a start left state behind");

    // A plain `rm` while a start waits: refused as for any running container once the
    // start is done (and again on a retry), not with a note about the race.
    p.clear();
    p.set(json!({"hold": ["NetworkDriver.Join"]}));
    std::thread::scope(|s| {
        let run = s.spawn(run("r5"));
        wait_called(&p, "NetworkDriver.Join");
        let rm = s.spawn(|| d.cli_t(&["rm", "r5"], HELD));
        still_waiting(&rm, "rm");
        p.set(json!({}));
        let r = run.join().expect("run thread");
        assert!(r.ok(), "run: {r}");
        let o = rm.join().expect("rm thread");
        assert!(!o.ok(), "rm of a running container: {o}");
        assert!(
            o.stderr.contains(
                "cannot remove container \"/r5\": container is running: stop the container before removing or force remove"
            ),
            "{o}"
        );
    });
    let o = d.fail(&["rm", "r5"]);
    assert!(o.stderr.contains("container is running"), "{o}");
    d.ok(&["rm", "-f", "r5"]);

    // `stop` while a start waits: the stop applies to the started container (it does
    // not answer "not running" and leave it running).
    d.ok(&[
        "create",
        "--name",
        "r6",
        "--network",
        "sn",
        "busybox",
        "sleep",
        "100000",
    ]);
    p.clear();
    p.set(json!({"hold": ["NetworkDriver.Join"]}));
    std::thread::scope(|s| {
        let start = s.spawn(|| d.cli_t(&["start", "r6"], HELD));
        wait_called(&p, "NetworkDriver.Join");
        // The image of a container being started is in use: even `rmi -f` refuses it.
        let o = d.fail(&["rmi", "-f", "busybox"]);
        assert!(o.stderr.contains("is using its referenced image"), "{o}");
        let stop = s.spawn(|| d.cli_t(&["stop", "-t", "1", "r6"], HELD));
        still_waiting(&stop, "stop");
        p.set(json!({}));
        let o = start.join().expect("start thread");
        assert!(o.ok(), "start: {o}");
        let o = stop.join().expect("stop thread");
        assert!(o.ok(), "stop during a start: {o}");
    });
    let st = d.ok(&["inspect", "-f", "{{.State.Status}}", "r6"]);
    assert_eq!(st, "exited", "stop during a start left r6 running");

    // The exit is recorded before the network teardown (which waits for the plugin):
    // meanwhile the container shows exited with no PID, `kill` refuses it at once (no
    // dead or reused PID signalled), and `rm` waits for the teardown, then removes it.
    d.ok(&["start", "r6"]);
    p.clear();
    p.set(json!({"hold": ["NetworkDriver.Leave"]}));
    d.ok(&["kill", "r6"]);
    wait_called(&p, "NetworkDriver.Leave");
    let st = d.ok(&["inspect", "-f", "{{.State.Status}} {{.State.Pid}}", "r6"]);
    assert_eq!(
        st, "exited 0",
        "a dead container shows running during its teardown"
    );
    let ps = d.ok(&["ps", "--format", "{{.Names}}"]);
    assert!(!ps.lines().any(|l| l == "r6"), "{ps}");
    let o = d.fail(&["kill", "r6"]);
    assert!(o.stderr.contains("is not running"), "{o}");
    std::thread::scope(|s| {
        let rm = s.spawn(|| d.cli_t(&["rm", "r6"], HELD));
        still_waiting(&rm, "rm during the teardown");
        p.set(json!({}));
        let o = rm.join().expect("rm thread");
        assert!(o.ok(), "rm after the exit: {o}");
    });
    assert!(!d.cli(&["inspect", "r6"]).ok(), "r6 kept");
    assert_eq!(snapshot(&d), base, "kill + rm left state behind");

    // A network removed while a start waits for the plugin (on an earlier network):
    // the start fails, naming the network by its name, and leaves nothing behind.
    d.ok(&[
        "create",
        "--name",
        "r7",
        "--network",
        "sn",
        "busybox",
        "sleep",
        "100000",
    ]);
    d.ok(&["network", "create", "gone-net"]);
    d.ok(&["network", "connect", "gone-net", "r7"]);
    p.clear();
    p.set(json!({"hold": ["NetworkDriver.Join"]}));
    std::thread::scope(|s| {
        let start = s.spawn(|| d.cli_t(&["start", "r7"], HELD));
        wait_called(&p, "NetworkDriver.Join");
        d.ok(&["network", "rm", "gone-net"]);
        p.set(json!({}));
        let o = start.join().expect("start thread");
        assert!(!o.ok(), "{o}");
        assert!(
            o.stderr
                .contains("network gone-net was removed while container r7 was starting"),
            "{o}"
        );
    });
    d.ok(&["rm", "r7"]);
    assert_eq!(
        snapshot(&d),
        base,
        "a start that lost a network left state behind"
    );
    p.set(json!({}));
    d.ok(&["network", "rm", "sn"]);
}

/// IPAM plugin calls run without the state lock too: while the plugin holds
/// `RequestPool` during `network create` (bridge driver, IPAM plugin) or
/// `RequestAddress` during `run`, other requests answer, the pending network's name is
/// taken, and the request that fails when the call ends leaves nothing behind.
#[test]
fn hanging_ipam_call_does_not_stall_other_requests() {
    let (d, p) = setup_or_skip!(LONG);
    let before = snapshot(&d);
    fails_while_held(
        &d,
        &p,
        "IpamDriver.RequestPool",
        &[
            "network",
            "create",
            "--ipam-driver",
            P,
            "--subnet",
            "10.66.0.0/24",
            "ipn",
        ],
        "request-pool",
        || {
            let o = d.fail(&["network", "create", "ipn"]);
            assert!(o.stderr.contains("already exists"), "{o}");
        },
        "no pool today",
    );
    assert_eq!(snapshot(&d), before, "a failed create left state behind");

    p.set(json!({}));
    d.ok(&[
        "network",
        "create",
        "--ipam-driver",
        P,
        "--subnet",
        "10.66.0.0/24",
        "ipn",
    ]);
    let before = snapshot(&d);
    p.clear();
    fails_while_held(
        &d,
        &p,
        "IpamDriver.RequestAddress",
        &[
            "run",
            "-d",
            "--name",
            "r3",
            "--network",
            "ipn",
            "busybox",
            "sleep",
            "100000",
        ],
        "request-address",
        || {
            let o = d.fail(&["network", "rm", "ipn"]);
            assert!(o.stderr.contains("has active endpoints"), "{o}");
        },
        "no address today",
    );
    p.expect(&["IpamDriver.RequestAddress"]);
    d.ok(&["rm", "r3"]);
    assert_eq!(snapshot(&d), before, "a failed run left state behind");
    p.set(json!({}));
    d.ok(&["network", "rm", "ipn"]);
}

/// `--rm`: the exit is recorded before the network teardown, which may wait for a
/// plugin. A daemon that dies in between (here while the plugin holds `Leave`) finishes
/// the removal when it starts again, and the network is left with no endpoint.
#[test]
fn rm_container_whose_removal_a_crash_interrupted_is_removed_at_restart() {
    let (mut d, p) = setup_or_skip!(LONG);
    d.ok(&["network", "create", "-d", P, "--ipam-driver", P, "cn"]);
    p.clear();
    p.set(json!({"hold": ["NetworkDriver.Leave"]}));
    d.ok(&[
        "run",
        "-d",
        "--rm",
        "--name",
        "rmc",
        "--network",
        "cn",
        "busybox",
        "sh",
        "-c",
        "sleep 1",
    ]);
    wait_called(&p, "NetworkDriver.Leave");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "rmc"]),
        "exited"
    );
    d.kill9();
    p.set(json!({}));
    d.start();
    assert!(
        !d.cli(&["inspect", "rmc"]).ok(),
        "the --rm container survived the restart: {}",
        d.ok(&["ps", "-a"])
    );
    d.ok(&["network", "rm", "cn"]);
}

/// `info` lists every network driver netloom has, as dockerd does: the built-in ones,
/// then a remote plugin once it is in use; with both CLIs.
#[test]
fn info_lists_builtin_drivers_and_plugins_in_use() {
    let (d, _p) = setup_or_skip!(5);
    let plugins = |d: &Daemon| -> Vec<String> {
        let j = d.ok(&["info", "--format", "{{json .Plugins.Network}}"]);
        serde_json::from_str(&j).unwrap_or_else(|e| panic!("{j}: {e}"))
    };
    let before = plugins(&d);
    for builtin in ["bridge", "host", "ipvlan", "macvlan", "null"] {
        assert!(
            before.iter().any(|p| p == builtin),
            "{builtin} in {before:?}"
        );
    }
    assert!(!before.iter().any(|p| p == P), "{before:?}");
    let mut sorted = before.clone();
    sorted.sort();
    assert_eq!(before, sorted, "sorted as dockerd lists them");
    d.ok(&[
        "network",
        "create",
        "-d",
        P,
        "--subnet",
        "10.79.0.0/24",
        "pnet",
    ]);
    let after = plugins(&d);
    assert!(after.iter().any(|p| p == P), "{after:?}");
    let text = d.ok(&["info"]);
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("Network:") && l.contains(P)),
        "{text}"
    );
    if let Some(bin) = netloom_e2e::dockercli::docker_bin() {
        let dk = netloom_e2e::dockercli::Docker::new(&d, bin);
        let j = dk.ok(&["info", "--format", "{{json .Plugins.Network}}"]);
        let v: Vec<String> = serde_json::from_str(&j).unwrap_or_else(|e| panic!("{j}: {e}"));
        assert_eq!(v, after, "docker info");
        let text = dk.ok(&["info"]);
        assert!(
            text.lines()
                .any(|l| l.trim() == format!("Network: {}", after.join(" "))),
            "{text}"
        );
    }
    d.ok(&["network", "rm", "pnet"]);
}
