//! Random requests against the Engine API of one daemon.
//!
//! `NETLOOM_FUZZ_ITERS` requests (300 by default) go to POST
//! `/networks/create`, `/containers/create`, `/networks/{x}/connect`,
//! `/networks/{x}/disconnect`, `/containers/{x}/exec` and
//! `/images/create?fromSrc=-`, with bodies made of random JSON values of
//! random types in the known fields, random JSON, broken JSON or random
//! bytes. Every request must get a status within its timeout; a 5xx other
//! than 501/503 fails the test (every 500 is reported with its body); a 4xx
//! must not change the network, container or image lists (nor a
//! container's networks); and the daemon must still answer `/_ping`.
//!
//! The seed is printed; `NETLOOM_FUZZ_SEED` replays a run.

use netloom_e2e::{Daemon, daemon_or_skip, run_cmd};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

const CI_ITERS: u64 = 300;
const REQ_TIMEOUT: Duration = Duration::from_secs(20);

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

fn seed() -> u64 {
    let s = std::env::var("NETLOOM_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    s.max(1)
}

fn iters() -> u64 {
    std::env::var("NETLOOM_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CI_ITERS)
}

/// Plausible string values, so that some requests get far enough.
const STRINGS: &[&str] = &[
    "",
    "busybox",
    "bridge",
    "host",
    "none",
    "fznet",
    "fzbox",
    "10.99.0.0/16",
    "10.99.1.0/24",
    "10.99.1.7",
    "10.99.0.0/33",
    "fd99::/64",
    "fd99::7",
    "172.17.0.0/16",
    "80/tcp",
    "53/udp",
    "0/tcp",
    "65536",
    "8080-8070",
    "/bin/true",
    "sh",
    "-c",
    "A=B",
    "02:42:ac:11:00:02",
    "zz:zz",
    "..",
    "../../etc",
    "/",
    "\u{0}",
    "é\u{202e}",
    "default",
    "no",
    "always",
    "on-failure",
];

fn rand_string(r: &mut Rng) -> String {
    if r.chance(60) {
        return r.pick(STRINGS).to_string();
    }
    (0..r.below(40))
        .map(|_| match r.below(10) {
            0 => char::from_u32(r.below(0x11_0000) as u32).unwrap_or('?'),
            1..=3 => char::from(b"/-:.%\\\"{}[]"[r.below(11) as usize]),
            _ => char::from(0x20 + r.below(0x5f) as u8),
        })
        .collect()
}

fn rand_value(r: &mut Rng, depth: u32) -> Value {
    let top = if depth >= 3 { 5 } else { 7 };
    match r.below(top) {
        0 => Value::Null,
        1 => Value::Bool(r.chance(50)),
        2 => match r.below(4) {
            0 => json!(r.below(70_000)),
            1 => json!(-(r.below(1 << 40) as i64)),
            2 => json!(u64::MAX - r.below(3)),
            _ => json!(r.below(1 << 20) as f64 / 7.0),
        },
        3 | 4 => Value::String(rand_string(r)),
        5 => Value::Array((0..r.below(4)).map(|_| rand_value(r, depth + 1)).collect()),
        _ => {
            let mut m = Map::new();
            for _ in 0..r.below(4) {
                m.insert(rand_string(r), rand_value(r, depth + 1));
            }
            Value::Object(m)
        }
    }
}

/// A value for a known field: usually of a plausible shape, else random.
fn field(r: &mut Rng, plausible: impl FnOnce(&mut Rng) -> Value) -> Value {
    if r.chance(88) {
        plausible(r)
    } else {
        rand_value(r, 1)
    }
}

/// Generator of one field's value.
type Gen = Box<dyn FnOnce(&mut Rng) -> Value>;

fn obj(r: &mut Rng, fields: Vec<(&str, Gen)>) -> Value {
    let mut m = Map::new();
    for (k, f) in fields {
        let pct = match k {
            "Container" | "Image" | "Cmd" => 92,
            "MacAddress" | "Links" => 8,
            _ => 45,
        };
        if r.chance(pct) {
            let v = field(r, f);
            m.insert(k.to_string(), v);
        }
    }
    Value::Object(m)
}

/// One of `list` (mostly) or a random string.
fn one_of(r: &mut Rng, list: &[&str]) -> Value {
    if r.chance(85) {
        Value::String(r.pick(list).to_string())
    } else {
        s(r)
    }
}
fn ctr(r: &mut Rng) -> Value {
    one_of(r, &["fzbox", "fzbox", "nope"])
}
fn ip(r: &mut Rng) -> Value {
    one_of(
        r,
        &[
            "10.98.0.9",
            "10.98.0.0",
            "10.98.0.255",
            "10.97.0.5",
            "fd98::5",
            "x",
            "",
        ],
    )
}
fn subnet(r: &mut Rng) -> Value {
    let n = r.below(200);
    let v = [
        format!("10.{}.0.0/16", 100 + n % 50),
        format!("10.97.{n}.0/24"),
        format!("10.97.{n}.0/20"),
        "10.98.0.0/24".to_string(),
        format!("fd97:{n:x}::/64"),
        format!("10.97.{n}.1/24"),
        "10.96.0.0/31".to_string(),
    ];
    if r.chance(85) {
        Value::String(r.pick(&v).clone())
    } else {
        s(r)
    }
}
fn s(r: &mut Rng) -> Value {
    Value::String(rand_string(r))
}
fn b(r: &mut Rng) -> Value {
    Value::Bool(r.chance(50))
}
fn strs(r: &mut Rng) -> Value {
    Value::Array((0..r.below(4)).map(|_| s(r)).collect())
}
fn smap(r: &mut Rng) -> Value {
    let mut m = Map::new();
    for _ in 0..r.below(3) {
        m.insert(rand_string(r), s(r));
    }
    Value::Object(m)
}

fn endpoint_config(r: &mut Rng) -> Value {
    obj(
        r,
        vec![
            ("Aliases", Box::new(strs)),
            ("Links", Box::new(strs)),
            ("MacAddress", Box::new(s)),
            (
                "IPAMConfig",
                Box::new(|r: &mut Rng| {
                    obj(
                        r,
                        vec![("IPv4Address", Box::new(ip)), ("IPv6Address", Box::new(ip))],
                    )
                }),
            ),
        ],
    )
}

/// Name used by create requests: unique per request so that a stale object
/// cannot be confused with a new one.
fn name(r: &mut Rng, i: u64) -> Value {
    if r.chance(80) {
        Value::String(format!("fz{i}-{}", r.below(1000)))
    } else {
        rand_value(r, 1)
    }
}

fn network_body(r: &mut Rng, i: u64) -> Value {
    let mut v = obj(
        r,
        vec![
            (
                "Driver",
                Box::new(|r: &mut Rng| one_of(r, &["bridge", "bridge", "null", "host", "overlay"])),
            ),
            ("Internal", Box::new(b)),
            ("Attachable", Box::new(b)),
            ("EnableIPv6", Box::new(b)),
            ("CheckDuplicate", Box::new(b)),
            ("Options", Box::new(smap)),
            ("Labels", Box::new(smap)),
            (
                "IPAM",
                Box::new(|r: &mut Rng| {
                    obj(
                        r,
                        vec![
                            ("Driver", Box::new(s)),
                            ("Options", Box::new(smap)),
                            (
                                "Config",
                                Box::new(|r: &mut Rng| {
                                    Value::Array(
                                        (0..r.below(3))
                                            .map(|_| {
                                                obj(
                                                    r,
                                                    vec![
                                                        ("Subnet", Box::new(subnet)),
                                                        ("IPRange", Box::new(subnet)),
                                                        ("Gateway", Box::new(ip)),
                                                        ("AuxiliaryAddresses", Box::new(smap)),
                                                    ],
                                                )
                                            })
                                            .collect(),
                                    )
                                }),
                            ),
                        ],
                    )
                }),
            ),
        ],
    );
    if r.chance(90) {
        let n = name(r, i);
        v.as_object_mut().unwrap().insert("Name".into(), n);
    }
    v
}

fn container_body(r: &mut Rng) -> Value {
    obj(
        r,
        vec![
            (
                "Image",
                Box::new(|r: &mut Rng| one_of(r, &["busybox", "busybox", "nope"])),
            ),
            ("Cmd", Box::new(strs)),
            ("Entrypoint", Box::new(strs)),
            ("Env", Box::new(strs)),
            ("Hostname", Box::new(s)),
            ("Domainname", Box::new(s)),
            ("User", Box::new(s)),
            ("WorkingDir", Box::new(s)),
            ("Labels", Box::new(smap)),
            (
                "ExposedPorts",
                Box::new(|r: &mut Rng| {
                    let mut m = Map::new();
                    for _ in 0..r.below(3) {
                        m.insert(rand_string(r), json!({}));
                    }
                    Value::Object(m)
                }),
            ),
            (
                "HostConfig",
                Box::new(|r: &mut Rng| {
                    obj(
                        r,
                        vec![
                            (
                                "NetworkMode",
                                Box::new(|r: &mut Rng| {
                                    one_of(
                                        r,
                                        &[
                                            "fznet",
                                            "bridge",
                                            "none",
                                            "host",
                                            "container:fzbox",
                                            "nope",
                                        ],
                                    )
                                }),
                            ),
                            ("AutoRemove", Box::new(b)),
                            ("Privileged", Box::new(b)),
                            ("Dns", Box::new(strs)),
                            ("DnsSearch", Box::new(strs)),
                            ("ExtraHosts", Box::new(strs)),
                            ("Binds", Box::new(strs)),
                            ("CapAdd", Box::new(strs)),
                            (
                                "RestartPolicy",
                                Box::new(|r: &mut Rng| {
                                    obj(
                                        r,
                                        vec![
                                            ("Name", Box::new(s)),
                                            (
                                                "MaximumRetryCount",
                                                Box::new(|r: &mut Rng| rand_value(r, 2)),
                                            ),
                                        ],
                                    )
                                }),
                            ),
                            (
                                "PortBindings",
                                Box::new(|r: &mut Rng| {
                                    let mut m = Map::new();
                                    for _ in 0..r.below(3) {
                                        let k = rand_string(r);
                                        let v = json!([{"HostIp": s(r), "HostPort": s(r)}]);
                                        m.insert(k, v);
                                    }
                                    Value::Object(m)
                                }),
                            ),
                        ],
                    )
                }),
            ),
            (
                "NetworkingConfig",
                Box::new(|r: &mut Rng| {
                    let mut m = Map::new();
                    for _ in 0..r.below(3) {
                        let k = rand_string(r);
                        let v = endpoint_config(r);
                        m.insert(k, v);
                    }
                    json!({ "EndpointsConfig": m })
                }),
            ),
        ],
    )
}

fn connect_body(r: &mut Rng) -> Value {
    obj(
        r,
        vec![
            ("Container", Box::new(ctr)),
            ("EndpointConfig", Box::new(endpoint_config)),
            ("Force", Box::new(b)),
        ],
    )
}

fn exec_body(r: &mut Rng) -> Value {
    obj(
        r,
        vec![
            ("Cmd", Box::new(strs)),
            ("Env", Box::new(strs)),
            ("User", Box::new(s)),
            ("WorkingDir", Box::new(s)),
            ("Tty", Box::new(b)),
            ("Privileged", Box::new(b)),
            ("AttachStdin", Box::new(b)),
            ("AttachStdout", Box::new(b)),
            ("AttachStderr", Box::new(b)),
            ("Detach", Box::new(b)),
        ],
    )
}

/// Turns a structured body into the bytes sent: usually as is, sometimes
/// a random JSON value, broken JSON or random bytes.
fn encode(r: &mut Rng, v: Value) -> Vec<u8> {
    match r.below(10) {
        0 => serde_json::to_vec(&rand_value(r, 0)).unwrap(),
        1 => {
            let mut t = serde_json::to_vec(&v).unwrap();
            let cut = r.below(t.len() as u64 + 1) as usize;
            t.truncate(cut);
            t
        }
        2 => (0..r.below(300)).map(|_| r.next() as u8).collect(),
        _ => serde_json::to_vec(&v).unwrap(),
    }
}

fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// One raw request with arbitrary body bytes. Status 0 means no answer.
fn req(d: &Daemon, path: &str, body: &[u8]) -> (u16, String) {
    let f = d.dir.join("fuzz-body");
    std::fs::write(&f, body).unwrap();
    let mut c = Command::new("curl");
    c.arg("--unix-socket").arg(d.sock()).args([
        "-s",
        "-m",
        &REQ_TIMEOUT.as_secs().to_string(),
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "--data-binary",
    ]);
    c.arg(format!("@{}", f.display()));
    c.arg(format!("http://localhost/v1.47{path}"));
    let o = run_cmd(c, REQ_TIMEOUT + Duration::from_secs(5));
    let (b, code) = o.stdout.rsplit_once('\n').unwrap_or(("", &o.stdout));
    (code.trim().parse().unwrap_or(0), b.to_string())
}

/// Networks (id, name), containers (id, names, networks) and images.
fn snapshot(d: &Daemon) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let get = |p: &str| -> Value {
        let (st, body) = d.api("GET", p, None);
        assert_eq!(st, 200, "GET {p}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {p}: {e}: {body}"))
    };
    for n in get("/networks").as_array().unwrap() {
        out.insert(format!("net {} {}", n["Id"], n["Name"]));
    }
    for c in get("/containers/json?all=1").as_array().unwrap() {
        let nets: Vec<&String> = c["NetworkSettings"]["Networks"]
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        out.insert(format!("ctr {} {} {nets:?}", c["Id"], c["Names"]));
    }
    for i in get("/images/json").as_array().unwrap() {
        out.insert(format!("img {} {}", i["Id"], i["RepoTags"]));
    }
    out
}

#[test]
fn fuzz_api() {
    let d = daemon_or_skip!();
    let seed = seed();
    let n = iters();
    eprintln!("fuzz_api: seed={seed} iters={n}");
    let mut r = Rng(seed);
    // Something to connect, disconnect and exec into.
    d.ok(&["network", "create", "--subnet", "10.98.0.0/24", "fznet"]);
    d.run_sleeper("fzbox", &["--network", "fznet"]);
    let mut state = snapshot(&d);
    let start = Instant::now();
    let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
    let mut five_hundreds = Vec::new();
    let mut failures = Vec::new();
    for i in 0..n {
        let target = |r: &mut Rng, known: &[&str]| -> String {
            if r.chance(70) {
                r.pick(known).to_string()
            } else {
                pct(&rand_string(r))
            }
        };
        let (path, value) = match r.below(6) {
            0 => ("/networks/create".to_string(), network_body(&mut r, i)),
            1 => {
                let q = if r.chance(80) {
                    format!("?name=fz{i}-{}", r.below(1000))
                } else {
                    format!("?name={}", pct(&rand_string(&mut r)))
                };
                (format!("/containers/create{q}"), container_body(&mut r))
            }
            2 => {
                let x = target(&mut r, &["fznet", "bridge", "none", "host", "nope"]);
                (format!("/networks/{x}/connect"), connect_body(&mut r))
            }
            3 => {
                let x = target(&mut r, &["fznet", "bridge", "none", "host", "nope"]);
                (format!("/networks/{x}/disconnect"), connect_body(&mut r))
            }
            4 => {
                let x = target(&mut r, &["fzbox", "nope"]);
                (format!("/containers/{x}/exec"), exec_body(&mut r))
            }
            _ => {
                let mut q = String::from("?fromSrc=-");
                if r.chance(50) {
                    q.push_str(&format!("&repo=fz{i}"));
                }
                if r.chance(30) {
                    q.push_str(&format!("&tag={}", pct(&rand_string(&mut r))));
                }
                (format!("/images/create{q}"), Value::Null)
            }
        };
        let body = if path.starts_with("/images/") {
            (0..r.below(2048)).map(|_| r.next() as u8).collect()
        } else {
            encode(&mut r, value)
        };
        let t = Instant::now();
        let (status, text) = req(&d, &path, &body);
        let shown = String::from_utf8_lossy(&body[..body.len().min(400)]).into_owned();
        *statuses.entry(status).or_default() += 1;
        let ctx = format!("seed={seed} iter={i} POST {path} body={shown:?} -> {status} {text}");
        if status == 0 {
            failures.push(format!("no answer within {:?}: {ctx}", t.elapsed()));
            break;
        }
        if status == 500 {
            five_hundreds.push(ctx.clone());
        }
        if status >= 500 && status != 501 && status != 503 {
            failures.push(format!("server error: {ctx}"));
        }
        let now = snapshot(&d);
        if (400..500).contains(&status) && now != state {
            let added: Vec<_> = now.difference(&state).collect();
            let removed: Vec<_> = state.difference(&now).collect();
            failures.push(format!(
                "state changed by a {status}: added {added:?} removed {removed:?}: {ctx}"
            ));
        }
        state = now;
    }
    let (st, body) = d.api("GET", "/_ping", None);
    if st != 200 {
        failures.push(format!("/_ping after the run: {st} {body}"));
    }
    eprintln!(
        "fuzz_api: {n} requests in {:?}, statuses {statuses:?}",
        start.elapsed()
    );
    for f in &five_hundreds {
        eprintln!("fuzz_api: 500: {f}");
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
