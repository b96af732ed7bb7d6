//! Embedded DNS (127.0.0.11) end-to-end behaviour: container names, aliases,
//! short IDs and hostnames scoped to shared networks, PTR and AAAA answers,
//! live connect/disconnect, no embedded DNS on the default bridge, forwarding
//! to (and caching from) an upstream server, internal networks that never
//! forward, resolv.conf / hosts contents, and robustness against garbage.
//!
//! Queries are made two ways, as a user would: from inside a container with
//! busybox (`nslookup`, `ping`), and from the host side with `dig` run in the
//! container's network namespace (`nsenter --net=<SandboxKey>`).  `dig` is
//! always given `@127.0.0.11` because nsenter keeps the host's resolv.conf.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use netloom_e2e::{Daemon, Out, daemon_or_skip, run_cmd, sh, wait_for};

// ---------------------------------------------------------------------------
// helpers

/// The container's network namespace path (`NetworkSettings.SandboxKey`).
#[track_caller]
fn sandbox(d: &Daemon, c: &str) -> String {
    let k = d.ok(&["inspect", "-f", "{{.NetworkSettings.SandboxKey}}", c]);
    assert!(
        k.starts_with('/') && std::path::Path::new(&k).exists(),
        "bad SandboxKey for {c}: {k:?}"
    );
    k
}

/// Runs a program inside the container's network namespace (host tools).
fn in_sandbox(key: &str, prog: &str, args: &[&str]) -> Out {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net={key}")).arg(prog).args(args);
    run_cmd(c, Duration::from_secs(30))
}

/// A parsed `dig` answer.
#[derive(Debug, Clone)]
struct Dig {
    /// `NOERROR`, `NXDOMAIN`, `SERVFAIL`… or empty when no answer arrived.
    status: String,
    /// Answer section: (name, ttl, type, rdata).
    answers: Vec<(String, u32, String, String)>,
    /// `aa` flag set.
    aa: bool,
    raw: Out,
}

impl Dig {
    /// The rdata of the answers of `rtype` (in order).
    fn data(&self, rtype: &str) -> Vec<String> {
        self.answers
            .iter()
            .filter(|a| a.2 == rtype)
            .map(|a| a.3.clone())
            .collect()
    }
}

fn parse_dig(o: Out) -> Dig {
    let mut status = String::new();
    let mut answers = Vec::new();
    let mut aa = false;
    let mut in_answer = false;
    for l in o.stdout.lines() {
        if let Some(rest) = l.split("status: ").nth(1) {
            status = rest.split(',').next().unwrap_or("").trim().to_string();
        }
        if let Some(rest) = l.split(";; flags: ").nth(1) {
            let flags = rest.split(';').next().unwrap_or("");
            aa = flags.split_whitespace().any(|f| f == "aa");
        }
        if l.starts_with(";; ANSWER SECTION") {
            in_answer = true;
            continue;
        }
        if in_answer {
            if l.trim().is_empty() || l.starts_with(";;") {
                in_answer = false;
                continue;
            }
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() >= 5 {
                answers.push((
                    f[0].to_string(),
                    f[1].parse().unwrap_or(0),
                    f[3].to_string(),
                    f[4..].join(" "),
                ));
            }
        }
    }
    Dig {
        status,
        answers,
        aa,
        raw: o,
    }
}

/// `dig @127.0.0.11 <args>` from the namespace `key` (one try, 2 s).
fn dig_key(key: &str, args: &[&str]) -> Dig {
    let mut a = vec!["@127.0.0.11", "+time=2", "+tries=1"];
    a.extend_from_slice(args);
    parse_dig(in_sandbox(key, "dig", &a))
}

/// `dig @127.0.0.11 <args>` from container `c`'s namespace.
#[track_caller]
fn dig(d: &Daemon, c: &str, args: &[&str]) -> Dig {
    dig_key(&sandbox(d, c), args)
}

/// The A records container `from` gets for `name`.
#[track_caller]
fn a_of(d: &Daemon, from: &str, name: &str) -> Vec<String> {
    dig(d, from, &[name, "A"]).data("A")
}

/// A name that does not resolve locally: no answers and NXDOMAIN, or
/// SERVFAIL (it was forwarded to upstreams that cannot be reached).
#[track_caller]
fn assert_unresolved(r: &Dig, what: &str) {
    assert!(
        r.answers.is_empty() && (r.status == "NXDOMAIN" || r.status == "SERVFAIL"),
        "{what}: expected NXDOMAIN/SERVFAIL without answers, got {r:#?}"
    );
}

/// The addresses busybox `nslookup NAME 127.0.0.11` printed inside `c`
/// (lines `Address: X` after the `Name:` line), and the raw output.
fn nslookup(d: &Daemon, c: &str, name: &str) -> (Vec<String>, Out) {
    let o = d.exec(c, &format!("nslookup {name} 127.0.0.11"));
    let mut v = Vec::new();
    let mut after_name = false;
    for l in o.stdout.lines() {
        let l = l.trim();
        if l.starts_with("Name:") {
            after_name = true;
            continue;
        }
        if after_name && let Some(a) = l.strip_prefix("Address:") {
            let a = a.trim();
            // Old busybox format "Address 1: IP NAME".
            v.push(a.split_whitespace().next().unwrap_or("").to_string());
        } else if after_name
            && let Some(rest) = l.strip_prefix("Address ")
            && let Some((_, a)) = rest.split_once(':')
        {
            v.push(a.split_whitespace().next().unwrap_or("").to_string());
        }
    }
    (v, o)
}

fn short_id(d: &Daemon, c: &str) -> String {
    let id = d.ok(&["inspect", "-f", "{{.Id}}", c]);
    assert!(id.len() >= 12, "id {id:?}");
    id[..12].to_string()
}

fn resolv_conf(d: &Daemon, c: &str) -> String {
    d.exec_ok(c, "cat /etc/resolv.conf")
}

/// resolv.conf lines, whitespace-normalised.
fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// Full path of the real python3 (not a pyenv shim: we want to kill it by pid).
fn python3() -> String {
    let o = sh("python3", &["-c", "import sys; print(sys.executable)"]);
    assert!(o.ok(), "python3: {o}");
    o.stdout.trim().to_string()
}

// ---------------------------------------------------------------------------
// a fake upstream DNS server in its own namespace

/// Authoritative for `example.test` (A 10.9.9.9 TTL 60, NODATA for other
/// types), NXDOMAIN for every other name.  Appends `qtype name` to the log
/// file for every query received.
const UPSTREAM_PY: &str = r#"
import socket, struct, sys
addr, logp, readyp = sys.argv[1], sys.argv[2], sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((addr, 53))
open(readyp, 'w').close()
while True:
    data, peer = s.recvfrom(65535)
    if len(data) < 12:
        continue
    qid, flags, qd = struct.unpack('>HHH', data[:6])
    if flags & 0x8000 or qd != 1:
        continue
    pos, labels, ok = 12, [], True
    while True:
        if pos >= len(data):
            ok = False
            break
        n = data[pos]
        if n == 0:
            pos += 1
            break
        if n & 0xc0:
            ok = False
            break
        labels.append(data[pos + 1:pos + 1 + n].decode('ascii', 'replace'))
        pos += 1 + n
    if not ok or pos + 4 > len(data):
        continue
    qtype, qclass = struct.unpack('>HH', data[pos:pos + 4])
    question = data[12:pos + 4]
    name = '.'.join(labels).lower()
    with open(logp, 'a') as f:
        f.write('%d %s\n' % (qtype, name))
    rd = flags & 0x0100
    ans = b''
    if name == 'example.test':
        if qtype == 1:
            ans = b'\xc0\x0c' + struct.pack('>HHIH', 1, 1, 60, 4) + bytes([10, 9, 9, 9])
        hdr = struct.pack('>HHHHHH', qid, 0x8480 | rd, 1, 1 if ans else 0, 0, 0)
    else:
        hdr = struct.pack('>HHHHHH', qid, 0x8483 | rd, 1, 0, 0, 0)
    s.sendto(hdr + question + ans, peer)
"#;

/// The daemon-side address of the /30 between the daemon and the upstream.
const UP_LOCAL: &str = "198.18.53.1";
/// The upstream server's address.
const UP_ADDR: &str = "198.18.53.2";

/// A network namespace `<daemon ns>-up` joined to the daemon's namespace by a
/// veth pair (198.18.53.0/30), running [`UPSTREAM_PY`].  Everything is torn
/// down on drop (also on panic).
struct Upstream {
    ns: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Upstream {
    #[track_caller]
    fn start(d: &Daemon) -> Upstream {
        let ns = format!("{}-up", d.name);
        let dir = d.dir.join("upstream");
        fs::create_dir_all(&dir).unwrap();
        let mut u = Upstream {
            ns: ns.clone(),
            child: None,
            log: dir.join("queries.log"),
        };
        let _ = sh("ip", &["netns", "del", &ns]);
        let run = |args: &[&str]| {
            let o = sh("ip", args);
            assert!(o.ok(), "ip {args:?}: {o}");
        };
        run(&["netns", "add", &ns]);
        run(&["-n", &ns, "link", "set", "lo", "up"]);
        // Created inside the upstream namespace, peer born in the daemon's.
        run(&[
            "-n", &ns, "link", "add", "dnsup1", "type", "veth", "peer", "name", "dnsup0", "netns",
            &d.name,
        ]);
        run(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{UP_ADDR}/30"),
            "dev",
            "dnsup1",
        ]);
        run(&["-n", &ns, "link", "set", "dnsup1", "up"]);
        run(&[
            "-n",
            &d.name,
            "addr",
            "add",
            &format!("{UP_LOCAL}/30"),
            "dev",
            "dnsup0",
        ]);
        run(&["-n", &d.name, "link", "set", "dnsup0", "up"]);

        let script = dir.join("upstream.py");
        fs::write(&script, UPSTREAM_PY).unwrap();
        let ready = dir.join("ready");
        let _ = fs::remove_file(&ready);
        fs::write(&u.log, "").unwrap();
        let errlog = fs::File::create(dir.join("upstream.err")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns])
            .arg(python3())
            .arg(&script)
            .arg(UP_ADDR)
            .arg(&u.log)
            .arg(&ready)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(errlog)
            .spawn()
            .expect("spawn upstream");
        u.child = Some(child);
        assert!(
            wait_for(Duration::from_secs(10), || ready.exists()),
            "upstream DNS did not start: {}",
            fs::read_to_string(dir.join("upstream.err")).unwrap_or_default()
        );
        // Reachable from the daemon's namespace (where forwarding happens).
        let o = d.netns(&[
            "dig",
            &format!("@{UP_ADDR}"),
            "+time=2",
            "+tries=1",
            "example.test",
        ]);
        assert!(
            o.stdout.contains("10.9.9.9"),
            "upstream not reachable from the daemon namespace: {o}"
        );
        fs::write(&u.log, "").unwrap();
        u
    }

    /// Queries received so far, as `qtype name` lines.
    fn queries(&self) -> Vec<String> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Deleting the namespace destroys the veth pair (both ends).
        let _ = sh("ip", &["netns", "del", &self.ns]);
    }
}

// ---------------------------------------------------------------------------
// tests

/// 1. `ping c1` from c2 works by name; `c1.NET`, the 12-char short ID and
///    `--hostname` resolve too (inside the container and with dig).
#[test]
fn names_short_id_and_hostname_resolve() {
    let d = daemon_or_skip!();
    d.ok(&["network", "create", "app"]);
    d.run_sleeper("c1", &["--network", "app", "--hostname", "alpha-host"]);
    d.run_sleeper("c2", &["--network", "app"]);
    let ip1 = d.ip("c1", "app");
    assert!(!ip1.is_empty());

    let rc = resolv_conf(&d, "c2");
    assert!(
        lines(&rc).contains(&"nameserver 127.0.0.11".to_string()),
        "c2 resolv.conf: {rc}"
    );
    let o = d.exec("c2", "ping -c 1 -W 2 c1");
    assert!(o.ok(), "ping c1 from c2: {o}");
    assert!(
        o.stdout.contains(&format!("({ip1})")),
        "ping resolved c1 to {ip1}? {o}"
    );

    let sid = short_id(&d, "c1");
    for name in ["c1", "c1.app", sid.as_str(), "alpha-host", "C1.App"] {
        let (addrs, o) = nslookup(&d, "c2", name);
        assert!(o.ok(), "nslookup {name} in c2: {o}");
        assert!(
            addrs.contains(&ip1),
            "nslookup {name} -> {addrs:?}, want {ip1}: {o}"
        );
        let r = dig(&d, "c2", &[name, "A"]);
        assert_eq!(r.status, "NOERROR", "dig {name}: {r:#?}");
        assert_eq!(r.data("A"), vec![ip1.clone()], "dig {name}: {r:#?}");
        assert!(r.aa, "local answers are authoritative: {r:#?}");
    }
    // A name-based ping by short ID and hostname as well.
    for name in [sid.as_str(), "alpha-host", "c1.app"] {
        let o = d.exec("c2", &format!("ping -c 1 -W 2 {name}"));
        assert!(o.ok(), "ping {name}: {o}");
    }
    // And the other way round (c1 resolves c2).
    let ip2 = d.ip("c2", "app");
    assert_eq!(a_of(&d, "c1", "c2"), vec![ip2]);
}

/// 2. Names never resolve across networks: 2 networks × 2 containers, every
///    ordered pair.
#[test]
fn names_do_not_cross_networks() {
    let d = daemon_or_skip!();
    d.ok(&["network", "create", "neta"]);
    d.ok(&["network", "create", "netb"]);
    let cs = [
        ("a1", "neta"),
        ("a2", "neta"),
        ("b1", "netb"),
        ("b2", "netb"),
    ];
    for (c, n) in cs {
        d.run_sleeper(c, &["--network", n]);
    }
    let ips: Vec<String> = cs.iter().map(|(c, n)| d.ip(c, n)).collect();
    let sids: Vec<String> = cs.iter().map(|(c, _)| short_id(&d, c)).collect();
    for (i, (from, nf)) in cs.iter().enumerate() {
        let key = sandbox(&d, from);
        for (j, (to, nt)) in cs.iter().enumerate() {
            if i == j {
                continue;
            }
            for name in [to.to_string(), format!("{to}.{nt}"), sids[j].clone()] {
                let r = dig_key(&key, &[&name, "A"]);
                if nf == nt {
                    assert_eq!(
                        r.data("A"),
                        vec![ips[j].clone()],
                        "{from} ({nf}) must resolve {name}: {r:#?}"
                    );
                } else {
                    assert_unresolved(&r, &format!("{from} ({nf}) resolving {name} on {nt}"));
                    assert!(
                        !r.raw.stdout.contains(&ips[j]),
                        "{from} learnt {to}'s address: {r:#?}"
                    );
                }
            }
        }
    }
    // Inside a container too: busybox nslookup fails for the other network.
    let (addrs, o) = nslookup(&d, "a1", "b1");
    assert!(!o.ok() && addrs.is_empty(), "a1 must not resolve b1: {o}");
    let (addrs, o) = nslookup(&d, "b2", "b1");
    assert!(o.ok() && addrs.contains(&ips[2]), "b2 resolves b1: {o}");
}

/// 3. `--network-alias web` on two containers: both addresses, rotating;
///    `network connect --alias db NET C` is scoped to NET.
#[test]
fn aliases_round_robin_and_scoped_connect_alias() {
    let d = daemon_or_skip!();
    d.ok(&["network", "create", "front"]);
    d.ok(&["network", "create", "back"]);
    d.run_sleeper("w1", &["--network", "front", "--network-alias", "web"]);
    d.run_sleeper("w2", &["--network", "front", "--network-alias", "web"]);
    d.run_sleeper("cl", &["--network", "front"]);
    let want: BTreeSet<String> = [d.ip("w1", "front"), d.ip("w2", "front")].into();
    let key = sandbox(&d, "cl");
    let mut firsts = BTreeSet::new();
    for i in 0..8 {
        let r = dig_key(&key, &["+short", "web", "A"]);
        let got: Vec<String> = r
            .raw
            .stdout
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        assert_eq!(
            got.iter().cloned().collect::<BTreeSet<_>>(),
            want,
            "query {i}: dig +short web: {:?}",
            r.raw
        );
        assert_eq!(got.len(), 2, "no duplicates: {got:?}");
        firsts.insert(got[0].clone());
    }
    assert_eq!(
        firsts.len(),
        2,
        "answer order never rotated: first = {firsts:?}"
    );
    // `web.front` works too, and so does nslookup inside.
    let r = dig_key(&key, &["web.front", "A"]);
    assert_eq!(
        r.data("A").into_iter().collect::<BTreeSet<_>>(),
        want,
        "{r:#?}"
    );
    let (addrs, o) = nslookup(&d, "cl", "web");
    assert_eq!(addrs.into_iter().collect::<BTreeSet<_>>(), want, "{o}");

    // Connect-time alias, scoped to the network it was given on.
    d.run_sleeper("dbc", &["--network", "back"]);
    d.run_sleeper("pb", &["--network", "back"]);
    d.ok(&["network", "connect", "--alias", "db", "front", "dbc"]);
    let db_front = d.ip("dbc", "front");
    let db_back = d.ip("dbc", "back");
    assert!(!db_front.is_empty() && !db_back.is_empty());
    assert_eq!(
        a_of(&d, "cl", "db"),
        vec![db_front.clone()],
        "cl (front) resolves db to dbc's front address"
    );
    assert_eq!(a_of(&d, "cl", "db.front"), vec![db_front.clone()]);
    // pb shares only `back` with dbc: the container name works, the alias does not.
    assert_eq!(a_of(&d, "pb", "dbc"), vec![db_back]);
    assert_unresolved(
        &dig(&d, "pb", &["db", "A"]),
        "pb (back only) resolving alias db",
    );
    // The run-time alias of w1/w2 is not visible from back either.
    assert_unresolved(&dig(&d, "pb", &["web", "A"]), "pb resolving web");
}

/// 4. PTR: `dig -x <ip of c1>` → `c1.NET.`
#[test]
fn reverse_lookup_gives_name_dot_network() {
    let d = daemon_or_skip!();
    d.ok(&["network", "create", "revnet"]);
    d.run_sleeper("c1", &["--network", "revnet"]);
    d.run_sleeper("c2", &["--network", "revnet"]);
    let ip1 = d.ip("c1", "revnet");
    let r = dig(&d, "c2", &["-x", &ip1]);
    assert_eq!(r.status, "NOERROR", "{r:#?}");
    assert_eq!(r.data("PTR"), vec!["c1.revnet.".to_string()], "{r:#?}");
    // Busybox inside the container agrees.
    let o = d.exec("c2", &format!("nslookup {ip1} 127.0.0.11"));
    assert!(
        o.ok() && o.stdout.contains("c1.revnet"),
        "nslookup {ip1}: {o}"
    );
}

/// 5. AAAA on a dual-stack network.
#[test]
fn aaaa_on_dual_stack_network() {
    let d = daemon_or_skip!();
    d.ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd00:53::/64",
        "dual",
    ]);
    d.run_sleeper("c1", &["--network", "dual"]);
    d.run_sleeper("c2", &["--network", "dual"]);
    let v6 = d.ip6("c1", "dual");
    let v4 = d.ip("c1", "dual");
    assert!(v6.starts_with("fd00:53::"), "c1 v6 {v6:?}");
    let r = dig(&d, "c2", &["c1", "AAAA"]);
    assert_eq!(r.status, "NOERROR", "{r:#?}");
    assert_eq!(r.data("AAAA"), vec![v6.clone()], "{r:#?}");
    assert!(r.data("A").is_empty(), "AAAA query got A records: {r:#?}");
    assert_eq!(a_of(&d, "c2", "c1"), vec![v4]);
    // The v6 reverse name too.
    let r = dig(&d, "c2", &["-x", &v6]);
    assert_eq!(r.data("PTR"), vec!["c1.dual.".to_string()], "{r:#?}");
    // busybox nslookup (A + AAAA) shows both.
    let (addrs, o) = nslookup(&d, "c2", "c1");
    assert!(addrs.contains(&v6), "nslookup c1 shows {v6}: {o}");
    // A v4-only network's container gets NODATA (NOERROR, no answer) for AAAA.
    d.ok(&["network", "create", "v4only"]);
    d.run_sleeper("c3", &["--network", "v4only"]);
    d.run_sleeper("c4", &["--network", "v4only"]);
    let r = dig(&d, "c4", &["c3", "AAAA"]);
    assert!(
        r.status == "NOERROR" && r.answers.is_empty(),
        "AAAA for a v4-only container is NODATA: {r:#?}"
    );
}

/// 6. Connect / disconnect changes answers immediately.
#[test]
fn connect_disconnect_updates_answers_immediately() {
    let d = daemon_or_skip!();
    d.ok(&["network", "create", "live"]);
    d.run_sleeper("c1", &["--network", "live"]);
    d.run_sleeper("c2", &["--network", "live"]);
    let key2 = sandbox(&d, "c2");
    let ip1 = d.ip("c1", "live");
    assert_eq!(dig_key(&key2, &["c1", "A"]).data("A"), vec![ip1.clone()]);

    d.ok(&["network", "disconnect", "live", "c1"]);
    for name in ["c1", "c1.live"] {
        let r = dig_key(&key2, &[name, "A"]);
        assert_unresolved(&r, &format!("{name} right after disconnect"));
        assert!(!r.raw.stdout.contains(&ip1), "{r:#?}");
    }

    d.ok(&["network", "connect", "live", "c1"]);
    let ip1b = d.ip("c1", "live");
    assert!(!ip1b.is_empty());
    assert_eq!(
        dig_key(&key2, &["c1", "A"]).data("A"),
        vec![ip1b.clone()],
        "c1 right after re-connect"
    );
    let o = d.exec("c2", "ping -c 1 -W 2 c1");
    assert!(
        o.ok() && o.stdout.contains(&ip1b),
        "ping c1 after reconnect: {o}"
    );
    // c1's own embedded server is back too.
    let ip2 = d.ip("c2", "live");
    assert_eq!(a_of(&d, "c1", "c2"), vec![ip2]);

    // A second network connected live: names on it appear at once.
    d.ok(&["network", "create", "side"]);
    d.run_sleeper("s1", &["--network", "side"]);
    let key_s1 = sandbox(&d, "s1");
    assert_unresolved(&dig_key(&key_s1, &["c2", "A"]), "s1 before connect");
    d.ok(&["network", "connect", "side", "c2"]);
    let ip2s = d.ip("c2", "side");
    assert_eq!(dig_key(&key_s1, &["c2", "A"]).data("A"), vec![ip2s]);
    d.ok(&["network", "disconnect", "side", "c2"]);
    assert_unresolved(&dig_key(&key_s1, &["c2", "A"]), "s1 after disconnect");

    // Removing a container removes its name.
    d.ok(&["rm", "-f", "c1"]);
    assert_unresolved(&dig_key(&key2, &["c1", "A"]), "c1 after rm");
}

/// 7. The default bridge has no embedded DNS.
#[test]
fn default_bridge_has_no_embedded_dns() {
    let d = daemon_or_skip!();
    d.run_sleeper("b1", &[]);
    let nets = d.nets("b1");
    assert!(nets.contains_key("bridge"), "b1 on bridge: {nets:?}");
    let rc = resolv_conf(&d, "b1");
    assert!(
        !rc.contains("127.0.0.11"),
        "default bridge resolv.conf: {rc}"
    );
    // Its nameservers are the host's (non-loopback) ones.
    let host = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    for l in lines(&rc) {
        if let Some(ns) = l.strip_prefix("nameserver ") {
            assert!(host.contains(ns), "nameserver {ns} not from the host: {rc}");
        }
    }
    let key = sandbox(&d, "b1");
    let udp = in_sandbox(&key, "dig", &["@127.0.0.11", "+time=1", "+tries=1", "b1"]);
    assert!(
        !udp.ok() && !udp.stdout.contains("status:"),
        "something answered UDP 127.0.0.11:53 on bridge: {udp}"
    );
    let tcp = in_sandbox(
        &key,
        "dig",
        &["@127.0.0.11", "+tcp", "+time=1", "+tries=1", "b1"],
    );
    assert!(
        !tcp.ok() && !tcp.stdout.contains("status:"),
        "something answered TCP 127.0.0.11:53 on bridge: {tcp}"
    );
    let o = d.exec("b1", "nc -w 1 127.0.0.11 53 </dev/null");
    assert!(!o.ok(), "TCP 53 open in b1: {o}");
}

/// 8. Non-local names are forwarded to `--dns` (from the daemon's namespace)
///    and the answer is cached.
#[test]
fn forwards_to_upstream_and_caches() {
    let d = daemon_or_skip!();
    let up = Upstream::start(&d);
    d.ok(&["network", "create", "fwd"]);
    d.run_sleeper("c1", &["--network", "fwd", "--dns", UP_ADDR]);
    let rc = resolv_conf(&d, "c1");
    assert!(
        lines(&rc).contains(&"nameserver 127.0.0.11".to_string()) && !rc.contains(UP_ADDR),
        "resolv.conf: {rc}"
    );

    let (addrs, o) = nslookup(&d, "c1", "example.test");
    assert!(o.ok(), "nslookup example.test: {o}");
    assert_eq!(addrs, vec!["10.9.9.9".to_string()], "{o}");
    let q1 = up.queries();
    let a_count = |q: &[String]| q.iter().filter(|l| *l == "1 example.test").count();
    assert_eq!(a_count(&q1), 1, "upstream saw {q1:?}");

    // The identical query again: answered from the cache.
    let (addrs, o) = nslookup(&d, "c1", "example.test");
    assert!(o.ok(), "second nslookup: {o}");
    assert_eq!(addrs, vec!["10.9.9.9".to_string()], "{o}");
    let q2 = up.queries();
    assert_eq!(
        a_count(&q2),
        1,
        "A example.test not cached: upstream saw {q2:?}"
    );
    assert_eq!(q1, q2, "second identical lookup reached the upstream");
    // The cached answer is the upstream's (TTL <= 60, not authoritative).
    let r = dig(&d, "c1", &["example.test", "A"]);
    assert_eq!(r.data("A"), vec!["10.9.9.9".to_string()], "{r:#?}");
    assert!(r.answers[0].1 <= 60, "TTL {r:#?}");
    assert_eq!(a_count(&up.queries()), 1);

    // Unknown names: the upstream's NXDOMAIN comes back.
    let r = dig(&d, "c1", &["nope.test", "A"]);
    assert_eq!(r.status, "NXDOMAIN", "{r:#?}");
    assert!(up.queries().contains(&"1 nope.test".to_string()));
    // Container names are still answered locally, never forwarded.
    d.run_sleeper("c2", &["--network", "fwd"]);
    let before = up.queries().len();
    assert_eq!(a_of(&d, "c1", "c2"), vec![d.ip("c2", "fwd")]);
    assert_eq!(
        up.queries().len(),
        before,
        "c2 was forwarded: {:?}",
        up.queries()
    );
}

/// 9. `--dns`, `--dns-search`, `--dns-opt` in resolv.conf (user network and
///    default bridge).
#[test]
fn dns_flags_land_in_resolv_conf() {
    let d = daemon_or_skip!();
    d.ok(&["network", "create", "usr"]);
    let flags = [
        "--dns",
        "10.1.2.3",
        "--dns-search",
        "corp.example",
        "--dns-opt",
        "ndots:3",
        "--dns-opt",
        "timeout:2",
    ];
    let mut a = vec!["--network", "usr"];
    a.extend_from_slice(&flags);
    d.run_sleeper("u1", &a);
    let rc = resolv_conf(&d, "u1");
    let l = lines(&rc);
    assert_eq!(
        l.iter()
            .filter(|x| x.starts_with("nameserver"))
            .collect::<Vec<_>>(),
        vec!["nameserver 127.0.0.11"],
        "user network: {rc}"
    );
    assert!(l.contains(&"search corp.example".to_string()), "{rc}");
    assert!(l.contains(&"options ndots:3 timeout:2".to_string()), "{rc}");

    d.run_sleeper("b1", &flags);
    let rc = resolv_conf(&d, "b1");
    let l = lines(&rc);
    assert_eq!(
        l.iter()
            .filter(|x| x.starts_with("nameserver"))
            .collect::<Vec<_>>(),
        vec!["nameserver 10.1.2.3"],
        "default bridge: {rc}"
    );
    assert!(l.contains(&"search corp.example".to_string()), "{rc}");
    assert!(l.contains(&"options ndots:3 timeout:2".to_string()), "{rc}");

    // Without flags: the embedded server with ndots:0.
    d.run_sleeper("u2", &["--network", "usr"]);
    let rc = resolv_conf(&d, "u2");
    let l = lines(&rc);
    assert!(l.contains(&"nameserver 127.0.0.11".to_string()), "{rc}");
    assert!(
        l.iter()
            .any(|x| x.starts_with("options") && x.split_whitespace().any(|o| o == "ndots:0")),
        "{rc}"
    );
}

/// 10. Internal networks never forward: NXDOMAIN at once, the upstream sees
///     nothing; local names still work.
#[test]
fn internal_network_does_not_forward() {
    let d = daemon_or_skip!();
    let up = Upstream::start(&d);
    d.ok(&["network", "create", "--internal", "inner"]);
    d.run_sleeper("i1", &["--network", "inner", "--dns", UP_ADDR]);
    d.run_sleeper("i2", &["--network", "inner"]);
    let key = sandbox(&d, "i1");

    let t = Instant::now();
    let r = dig_key(&key, &["example.test", "A"]);
    let took = t.elapsed();
    assert_eq!(r.status, "NXDOMAIN", "{r:#?}");
    assert!(r.answers.is_empty(), "{r:#?}");
    assert!(took < Duration::from_secs(1), "NXDOMAIN took {took:?}");

    let t = Instant::now();
    let (addrs, o) = nslookup(&d, "i1", "example.test");
    let took_in = t.elapsed();
    assert!(
        !o.ok() && addrs.is_empty(),
        "nslookup example.test in i1: {o}"
    );
    assert!(o.all().contains("NXDOMAIN"), "{o}");
    assert!(
        took_in < Duration::from_secs(3),
        "nslookup took {took_in:?}"
    );

    assert!(
        up.queries().is_empty(),
        "upstream was asked: {:?}",
        up.queries()
    );
    // Local names still resolve.
    assert_eq!(
        dig_key(&key, &["i2", "A"]).data("A"),
        vec![d.ip("i2", "inner")]
    );
    let o = d.exec("i1", "ping -c 1 -W 2 i2");
    assert!(o.ok(), "ping i2: {o}");
    assert!(
        up.queries().is_empty(),
        "upstream was asked: {:?}",
        up.queries()
    );

    // Control: the same --dns on a normal network does reach the upstream.
    d.ok(&["network", "create", "outer"]);
    d.run_sleeper("o1", &["--network", "outer", "--dns", UP_ADDR]);
    assert_eq!(a_of(&d, "o1", "example.test"), vec!["10.9.9.9".to_string()]);
    assert_eq!(up.queries(), vec!["1 example.test".to_string()]);
}

/// 11. `--add-host`, `--hostname`, `--domainname` land in /etc/hosts.
#[test]
fn add_host_hostname_domainname_in_etc_hosts() {
    let d = daemon_or_skip!();
    d.ok(&["network", "create", "hnet"]);
    d.run_sleeper(
        "hc",
        &[
            "--network",
            "hnet",
            "--add-host",
            "gw.example:10.0.0.1",
            "--hostname",
            "h1",
            "--domainname",
            "corp.example",
        ],
    );
    let ip = d.ip("hc", "hnet");
    let hosts = d.exec_ok("hc", "cat /etc/hosts");
    let l = lines(&hosts);
    assert!(l.contains(&"10.0.0.1 gw.example".to_string()), "{hosts}");
    assert!(
        l.contains(&format!("{ip} h1.corp.example h1")),
        "own address with FQDN and short name: {hosts}"
    );
    assert!(
        l.iter()
            .any(|x| x.starts_with("127.0.0.1") && x.contains("localhost")),
        "{hosts}"
    );
    assert_eq!(d.exec_ok("hc", "hostname").trim(), "h1");
    assert_eq!(d.exec_ok("hc", "cat /etc/hostname").trim(), "h1");
    // The libc-free busybox ping reads /etc/hosts.
    let o = d.exec("hc", "ping -c 1 -W 1 h1.corp.example");
    assert!(
        o.stdout.contains(&format!("({ip})")),
        "h1.corp.example -> {ip}: {o}"
    );
}

/// Robustness: 2,000 random / mutated UDP datagrams (and a few garbage TCP
/// streams) into 127.0.0.11:53, then the server still answers correctly
/// and the daemon is alive.
#[test]
fn garbage_datagrams_do_not_break_the_server() {
    let d = daemon_or_skip!();
    d.ok(&["network", "create", "fz"]);
    d.run_sleeper("c1", &["--network", "fz"]);
    d.run_sleeper("c2", &["--network", "fz"]);
    let ip1 = d.ip("c1", "fz");
    let key = sandbox(&d, "c2");
    let seed: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id());
    let script = format!(
        r#"
import socket, struct, time
x = {seed} or 1
def rnd():
    global x
    x ^= (x << 13) & 0xffffffffffffffff
    x ^= x >> 7
    x ^= (x << 17) & 0xffffffffffffffff
    return x
def query(name, qtype, qid):
    q = struct.pack('>HHHHHH', qid, 0x0100, 1, 0, 0, 0)
    for l in name.split('.'):
        q += bytes([len(l)]) + l.encode()
    return q + b'\x00' + struct.pack('>HH', qtype, 1)
valid = [query('c1', 1, 1), query('c1.fz', 28, 2), query('example.invalid', 1, 3),
         query('11.0.0.127.in-addr.arpa', 12, 4)]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
sent = 0
for i in range(2000):
    r = rnd()
    if i % 2 == 0:
        n = r % 601
        data = bytes((rnd() & 0xff) for _ in range(n))
    else:
        data = bytearray(valid[r % len(valid)])
        for _ in range(1 + rnd() % 6):
            data[rnd() % len(data)] = rnd() & 0xff
        if rnd() % 4 == 0:
            data = data[: rnd() % (len(data) + 1)]
        elif rnd() % 4 == 0:
            data += bytes((rnd() & 0xff) for _ in range(rnd() % 200))
        data = bytes(data)
    try:
        s.sendto(data, ('127.0.0.11', 53))
        sent += 1
    except BlockingIOError:
        time.sleep(0.001)
    try:
        while True:
            s.recv(65535)
    except BlockingIOError:
        pass
    if i % 200 == 0:
        time.sleep(0.01)
for i in range(20):
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.settimeout(2)
    try:
        t.connect(('127.0.0.11', 53))
        n = rnd() % 600
        t.sendall(bytes((rnd() & 0xff) for _ in range(n)))
        if i % 2:
            t.sendall(struct.pack('>H', 0xffff) + b'x' * 10)
    except OSError:
        pass
    t.close()
print('sent', sent)
"#
    );
    let o = in_sandbox(&key, &python3(), &["-c", &script]);
    assert!(
        o.ok() && o.stdout.contains("sent "),
        "fuzz script (seed {seed}): {o}"
    );
    let sent: usize = o
        .stdout
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(sent >= 1500, "only {sent} datagrams sent: {o}");

    // Still answering correctly, over UDP and TCP.
    let ok = wait_for(Duration::from_secs(5), || {
        dig_key(&key, &["c1", "A"]).data("A") == vec![ip1.clone()]
    });
    assert!(
        ok,
        "after fuzz (seed {seed}): {:#?}",
        dig_key(&key, &["c1", "A"])
    );
    let r = dig_key(&key, &["+tcp", "c1", "A"]);
    assert_eq!(r.data("A"), vec![ip1.clone()], "TCP after fuzz: {r:#?}");
    let r = dig_key(&key, &["-x", &ip1]);
    assert_eq!(r.data("PTR"), vec!["c1.fz.".to_string()], "{r:#?}");
    // The daemon is alive and serving the API; other sandboxes are fine.
    d.ok(&["version"]);
    assert_eq!(a_of(&d, "c1", "c2"), vec![d.ip("c2", "fz")]);
    d.run_sleeper("c3", &["--network", "fz"]);
    assert_eq!(
        dig_key(&key, &["c3", "A"]).data("A"),
        vec![d.ip("c3", "fz")]
    );
    let log = d.log();
    assert!(!log.contains("panicked"), "daemon log has a panic:\n{log}");
}

/// Names follow the container lifecycle: stop removes the name, start brings
/// it back with a working server in the new sandbox; a daemon restart (clean
/// and after SIGKILL) serves the running sandboxes again.
#[test]
fn names_follow_stop_start_and_daemon_restart() {
    let mut d = daemon_or_skip!();
    d.ok(&["network", "create", "lc"]);
    d.run_sleeper("c1", &["--network", "lc"]);
    d.run_sleeper("c2", &["--network", "lc", "--network-alias", "svc"]);
    let key1 = sandbox(&d, "c1");
    assert_eq!(a_of(&d, "c1", "c2"), vec![d.ip("c2", "lc")]);

    d.ok(&["stop", "-t", "1", "c2"]);
    assert_unresolved(&dig_key(&key1, &["c2", "A"]), "c2 after stop");
    assert_unresolved(&dig_key(&key1, &["svc", "A"]), "svc after stop");
    d.ok(&["start", "c2"]);
    let ip2 = d.ip("c2", "lc");
    assert_eq!(dig_key(&key1, &["c2", "A"]).data("A"), vec![ip2.clone()]);
    assert_eq!(dig_key(&key1, &["svc", "A"]).data("A"), vec![ip2.clone()]);
    // The restarted container's own server (new sandbox) answers.
    let ip1 = d.ip("c1", "lc");
    assert_eq!(a_of(&d, "c2", "c1"), vec![ip1.clone()]);
    let (addrs, o) = nslookup(&d, "c2", "c1");
    assert!(addrs.contains(&ip1), "nslookup c1 in restarted c2: {o}");

    for (how, hard) in [("clean restart", false), ("SIGKILL restart", true)] {
        if hard {
            d.kill9();
        } else {
            d.stop();
        }
        d.start();
        let ok = wait_for(Duration::from_secs(10), || {
            dig(&d, "c1", &["c2", "A"]).data("A") == vec![ip2.clone()]
        });
        assert!(
            ok,
            "{how}: c1 -> c2: {:#?}\n{}",
            dig(&d, "c1", &["c2", "A"]),
            d.log()
        );
        assert_eq!(
            a_of(&d, "c2", "svc"),
            vec![ip2.clone()],
            "{how}: c2 resolves its own alias"
        );
        let (addrs, o) = nslookup(&d, "c2", "c1");
        assert!(addrs.contains(&ip1), "{how}: nslookup c1 in c2: {o}");
    }
}

/// resolv.conf always tells the truth: a default-bridge container connected
/// to a user network gets 127.0.0.11 (and it answers), and loses it again on
/// disconnect; /etc/hosts lists the new address.
#[test]
fn resolv_conf_follows_connect_from_default_bridge() {
    let d = daemon_or_skip!();
    d.ok(&["network", "create", "later"]);
    d.run_sleeper("peer", &["--network", "later"]);
    d.run_sleeper("b1", &[]);
    let key = sandbox(&d, "b1");
    assert!(!resolv_conf(&d, "b1").contains("127.0.0.11"));

    d.ok(&["network", "connect", "later", "b1"]);
    let rc = resolv_conf(&d, "b1");
    let served = dig_key(&key, &["peer", "A"]);
    assert!(
        lines(&rc).contains(&"nameserver 127.0.0.11".to_string()),
        "after connect to a user network: {rc}"
    );
    assert_eq!(served.data("A"), vec![d.ip("peer", "later")], "{served:#?}");
    let (addrs, o) = nslookup(&d, "b1", "peer");
    assert!(addrs.contains(&d.ip("peer", "later")), "{o}");
    let hosts = d.exec_ok("b1", "cat /etc/hosts");
    let ip_later = d.ip("b1", "later");
    assert!(
        hosts.contains(&ip_later),
        "/etc/hosts lacks {ip_later}: {hosts}"
    );
    // peer resolves b1 (its address on `later` only).
    assert_eq!(a_of(&d, "peer", "b1"), vec![ip_later]);

    d.ok(&["network", "disconnect", "later", "b1"]);
    let rc = resolv_conf(&d, "b1");
    assert!(!rc.contains("127.0.0.11"), "after disconnect: {rc}");
    let r = in_sandbox(&key, "dig", &["@127.0.0.11", "+time=1", "+tries=1", "peer"]);
    assert!(
        !r.stdout.contains("status:"),
        "127.0.0.11 still answers after leaving the last user network: {r}"
    );
    assert_unresolved(
        &dig(&d, "peer", &["b1", "A"]),
        "peer -> b1 after disconnect",
    );
}

/// A silent (dead) first upstream costs one query part of the time budget,
/// then it is backed off: the next lookups go straight to the live one.
#[test]
fn dead_upstream_is_backed_off() {
    let d = daemon_or_skip!();
    let up = Upstream::start(&d);
    // 198.18.54.0/24 is routed into the upstream namespace, which does not
    // forward: datagrams to it vanish without an ICMP error.
    let o = d.netns(&["ip", "route", "add", "198.18.54.0/24", "via", UP_ADDR]);
    assert!(o.ok(), "route: {o}");
    d.ok(&["network", "create", "bo"]);
    d.run_sleeper(
        "c1",
        &["--network", "bo", "--dns", "198.18.54.1", "--dns", UP_ADDR],
    );
    let key = sandbox(&d, "c1");
    let timed = |name: &str| {
        let t = Instant::now();
        let r = parse_dig(in_sandbox(
            &key,
            "dig",
            &["@127.0.0.11", "+time=9", "+tries=1", name, "A"],
        ));
        (r, t.elapsed())
    };
    let (r, took) = timed("first.test");
    assert_eq!(
        r.status, "NXDOMAIN",
        "live upstream's answer after the dead one: {r:#?}"
    );
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
        "first lookup took {took:?} (dead server should get ~half the 5 s budget)"
    );
    for name in ["second.test", "example.test", "third.test"] {
        let (r, took) = timed(name);
        assert!(
            r.status == "NXDOMAIN" || r.status == "NOERROR",
            "{name}: {r:#?}"
        );
        assert!(
            took < Duration::from_secs(1),
            "{name} took {took:?}: dead server not backed off"
        );
    }
    assert_eq!(
        up.queries(),
        vec![
            "1 first.test",
            "1 second.test",
            "1 example.test",
            "1 third.test"
        ]
    );
}

#[test]
fn legacy_links_on_the_default_bridge() {
    // `--link NAME:ALIAS` on the default bridge: an /etc/hosts entry and Docker's
    // environment variables, as the seed's comparison table says.
    let d = daemon_or_skip!();
    d.ok(&[
        "run", "-d", "--name", "srv", "--expose", "80", "-e", "ROLE=db", "busybox", "sleep", "300",
    ]);
    let ip = d.ip("srv", "bridge");
    let out = d.ok(&[
        "run",
        "--rm",
        "--link",
        "srv:dbx",
        "busybox",
        "sh",
        "-c",
        "grep dbx /etc/hosts; env | sort | grep ^DBX_",
    ]);
    assert!(
        out.contains(&format!("{ip}\tdbx")),
        "hosts entry for the link: {out}"
    );
    assert!(out.contains(&format!("DBX_PORT=tcp://{ip}:80")), "{out}");
    assert!(out.contains(&format!("DBX_PORT_80_TCP_ADDR={ip}")), "{out}");
    assert!(out.contains("DBX_ENV_ROLE=db"), "{out}");
    assert!(out.contains("DBX_NAME=/"), "{out}");
    let o = d.fail(&["run", "--rm", "--link", "nosuchctr:x", "busybox", "true"]);
    assert!(
        o.all().contains("could not get container for nosuchctr"),
        "{o}"
    );
}

#[test]
fn first_query_at_start_is_answered() {
    // The view of a starting container is published before its process runs, so a
    // lookup made by the very first command is answered (not REFUSED).
    let d = daemon_or_skip!();
    d.ok(&["network", "create", "early"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "target",
        "--network",
        "early",
        "busybox",
        "sleep",
        "300",
    ]);
    let ip = d.ip("target", "early");
    for _ in 0..3 {
        let out = d.ok(&[
            "run",
            "--rm",
            "--network",
            "early",
            "busybox",
            "nslookup",
            "target",
            "127.0.0.11",
        ]);
        assert!(out.contains(&ip), "first lookup must resolve: {out}");
    }
}
