//! Bad input across the CLI and the raw Engine API.
//!
//! Every case must fail with the documented exit code (CLI) or HTTP status
//! (API) and a message naming the problem, and must leave the daemon's
//! store and the kernel state exactly as they were (compared with a state
//! dump after every case).
//!
//! The table is split into groups; each group runs against its own daemon
//! so that a bug in one area does not hide results in another.

use netloom_e2e::{Daemon, daemon_or_skip};

enum Kind {
    /// CLI args and expected exit code.
    Cli(Vec<&'static str>, i32),
    /// method, path (relative to /v1.47 unless it starts with /v), body, status.
    Api(&'static str, &'static str, Option<&'static str>, u16),
}

struct Case {
    group: &'static str,
    kind: Kind,
    want: &'static str,
}

fn cli(group: &'static str, args: &[&'static str], code: i32, want: &'static str) -> Case {
    Case {
        group,
        kind: Kind::Cli(args.to_vec(), code),
        want,
    }
}

fn api(
    group: &'static str,
    method: &'static str,
    path: &'static str,
    body: Option<&'static str>,
    status: u16,
    want: &'static str,
) -> Case {
    Case {
        group,
        kind: Kind::Api(method, path, body, status),
        want,
    }
}

/// The whole table.  `@DIR@` in CLI args is replaced by the daemon's dir.
fn cases() -> Vec<Case> {
    let mut v = vec![
        // ---- network create: IPAM ----
        cli(
            "net",
            &["network", "create", "--subnet", "10.1.2.3", "n1"],
            1,
            "invalid CIDR",
        ),
        cli(
            "net",
            &["network", "create", "--subnet", "10.1.2.0/33", "n1"],
            1,
            "invalid CIDR",
        ),
        cli(
            "net",
            &["network", "create", "--subnet", "banana", "n1"],
            1,
            "invalid CIDR",
        ),
        cli(
            "net",
            &["network", "create", "--subnet", "10.1.2.3/24", "n1"],
            1,
            "it should be 10.1.2.0/24",
        ),
        cli(
            "net",
            &[
                "network",
                "create",
                "--ipv6",
                "--subnet",
                "fd00:5::1/64",
                "n1",
            ],
            1,
            "it should be fd00:5::/64",
        ),
        cli(
            "net",
            &[
                "network",
                "create",
                "--subnet",
                "10.2.0.0/24",
                "--gateway",
                "10.3.0.1",
                "n1",
            ],
            1,
            "no matching subnet for gateway",
        ),
        api(
            "net",
            "POST",
            "/networks/create",
            Some(
                r#"{"Name":"n1","IPAM":{"Config":[{"Subnet":"10.5.0.0/24","Gateway":"10.6.0.1"}]}}"#,
            ),
            400,
            "must be within subnet",
        ),
        api(
            "net",
            "POST",
            "/networks/create",
            Some(r#"{"Name":"n1","IPAM":{"Config":[{"Subnet":"10.5.0.0/24","Gateway":"notip"}]}}"#),
            400,
            "not an IP address",
        ),
        cli(
            "net",
            &[
                "network",
                "create",
                "--subnet",
                "10.88.0.0/24",
                "--gateway",
                "10.88.0.0",
                "n1",
            ],
            1,
            "network or broadcast address",
        ),
        cli(
            "net",
            &[
                "network",
                "create",
                "--subnet",
                "10.2.0.0/24",
                "--ip-range",
                "10.3.0.0/28",
                "n1",
            ],
            1,
            "no matching subnet for range",
        ),
        cli(
            "net",
            &[
                "network",
                "create",
                "--subnet",
                "10.88.0.0/24",
                "--ip-range",
                "10.88.0.0/20",
                "n1",
            ],
            1,
            "must be within subnet",
        ),
        api(
            "net",
            "POST",
            "/networks/create",
            Some(
                r#"{"Name":"n1","IPAM":{"Config":[{"Subnet":"10.5.0.0/24","IPRange":"10.6.0.0/28"}]}}"#,
            ),
            400,
            "must be within subnet",
        ),
        cli(
            "net",
            &["network", "create", "--subnet", "10.50.0.0/16", "n1"],
            1,
            "overlaps",
        ),
        cli(
            "net",
            &["network", "create", "--subnet", "10.50.0.128/25", "n1"],
            1,
            "overlaps",
        ),
        cli(
            "net",
            &["network", "create", "--subnet", "172.17.0.0/24", "n1"],
            1,
            "overlaps",
        ),
        cli(
            "net",
            &[
                "network",
                "create",
                "--subnet",
                "10.70.0.0/24",
                "--subnet",
                "10.70.0.0/25",
                "n1",
            ],
            1,
            "overlapping",
        ),
        cli(
            "net",
            &["network", "create", "--subnet", "fd00:1::/64", "n1"],
            1,
            "IPv6 is not enabled",
        ),
        cli("net", &["network", "create", "--ipv6", "n1"], 1, "IPv6"),
        cli(
            "net",
            &[
                "network",
                "create",
                "--ipv6",
                "--subnet",
                "10.9.0.0/24",
                "n1",
            ],
            1,
            "needs an IPv6",
        ),
        // ---- network create: names, drivers, options ----
        cli(
            "net",
            &["network", "create", "existing"],
            1,
            "already exists",
        ),
        api(
            "net",
            "POST",
            "/networks/create",
            Some(r#"{"Name":"existing"}"#),
            409,
            "already exists",
        ),
        cli(
            "net",
            &["network", "create", "bad name!"],
            1,
            "invalid name",
        ),
        cli("net", &["network", "create", ""], 1, "invalid name"),
        cli(
            "net",
            &["network", "create", "-d", "nosuch", "n1"],
            1,
            "could not find plugin",
        ),
        cli(
            "net",
            &["network", "create", "--ipam-driver", "nosuch", "n1"],
            1,
            "could not find plugin",
        ),
        cli(
            "net",
            &["network", "create", "-d", "host", "n1"],
            1,
            "only one instance",
        ),
        cli(
            "net",
            &[
                "network",
                "create",
                "-o",
                "com.docker.network.bridge.bogus=1",
                "n1",
            ],
            1,
            "unknown bridge driver option",
        ),
        cli(
            "net",
            &[
                "network",
                "create",
                "-o",
                "com.docker.network.driver.mtu=abc",
                "n1",
            ],
            1,
            "MTU must be",
        ),
        cli(
            "net",
            &[
                "network",
                "create",
                "-o",
                "com.docker.network.driver.mtu=10",
                "n1",
            ],
            1,
            "MTU must be",
        ),
        cli(
            "net",
            &[
                "network",
                "create",
                "-o",
                "com.docker.network.driver.mtu=70000",
                "n1",
            ],
            1,
            "MTU must be",
        ),
        cli(
            "net",
            &[
                "network",
                "create",
                "-o",
                "com.docker.network.bridge.name=this-name-is-too-long",
                "n1",
            ],
            1,
            "invalid com.docker.network.bridge.name",
        ),
        cli(
            "net",
            &[
                "network",
                "create",
                "-o",
                "com.docker.network.bridge.name=bad/name",
                "n1",
            ],
            1,
            "invalid com.docker.network.bridge.name",
        ),
        cli(
            "net",
            &[
                "network",
                "create",
                "-o",
                "com.docker.network.bridge.name=netloom0",
                "n1",
            ],
            1,
            "already used",
        ),
        cli(
            "net",
            &[
                "network",
                "create",
                "-o",
                "com.docker.network.bridge.enable_icc=maybe",
                "n1",
            ],
            1,
            "enable_icc",
        ),
        // ---- pinned addresses, connect/disconnect, container create ----
        cli(
            "pin",
            &[
                "run",
                "-d",
                "--network",
                "existing",
                "--ip",
                "10.60.0.10",
                "busybox",
                "true",
            ],
            125,
            "does not belong",
        ),
        cli(
            "pin",
            &["run", "-d", "--ip", "172.17.0.50", "busybox", "true"],
            125,
            "user defined networks only",
        ),
        cli(
            "pin",
            &[
                "run",
                "-d",
                "--network",
                "existing",
                "--ip",
                "notanip",
                "busybox",
                "true",
            ],
            125,
            "invalid IPv4 address",
        ),
        cli(
            "pin",
            &[
                "run",
                "-d",
                "--network",
                "existing",
                "--ip6",
                "fd00::1",
                "busybox",
                "true",
            ],
            125,
            "no IPv6",
        ),
        cli(
            "pin",
            &[
                "network",
                "connect",
                "--ip",
                "10.50.0.10",
                "existing",
                "onbridge",
            ],
            1,
            "already in use",
        ),
        cli(
            "pin",
            &[
                "network",
                "connect",
                "--ip",
                "10.60.0.5",
                "existing",
                "onbridge",
            ],
            1,
            "does not belong",
        ),
        cli(
            "pin",
            &["network", "connect", "--ip", "172.17.0.99", "bridge", "ctr"],
            1,
            "user defined networks only",
        ),
        cli(
            "pin",
            &["network", "connect", "existing", "ctr"],
            1,
            "already exists",
        ),
        cli(
            "pin",
            &["network", "connect", "host", "ctr"],
            1,
            "cannot be connected",
        ),
        cli(
            "pin",
            &["network", "disconnect", "existing", "onbridge"],
            1,
            "is not connected",
        ),
        cli(
            "pin",
            &["run", "-d", "--name", "ctr", "busybox", "true"],
            125,
            "already in use",
        ),
        cli(
            "pin",
            &["run", "-d", "--name", "bad name", "busybox", "true"],
            125,
            "Invalid container name",
        ),
        cli(
            "pin",
            &["run", "-d", "--pull", "never", "nosuchimage", "true"],
            125,
            "No such image: nosuchimage:latest",
        ),
        // Without --pull never, run pulls first (Docker Hub is out of reach here).
        cli(
            "pin",
            &["run", "-d", "nosuchimage", "true"],
            125,
            "Unable to find image 'nosuchimage:latest' locally",
        ),
        cli(
            "pin",
            &["run", "-d", "--network", "nosuchnet", "busybox", "true"],
            125,
            "not found",
        ),
        cli(
            "pin",
            &[
                "run",
                "-d",
                "--network",
                "none",
                "--network",
                "existing",
                "busybox",
                "true",
            ],
            125,
            "conflicting options",
        ),
        cli(
            "pin",
            &[
                "run",
                "-d",
                "--network",
                "container:nosuch",
                "busybox",
                "true",
            ],
            125,
            "No such container: nosuch",
        ),
        cli(
            "pin",
            &["run", "-d", "--dns", "notanip", "busybox", "true"],
            125,
            "must be an IP address",
        ),
        cli(
            "pin",
            &["run", "-d", "-p", "99999:80", "busybox", "true"],
            125,
            "invalid hostPort",
        ),
        cli(
            "pin",
            &[
                "run",
                "-d",
                "--mac-address",
                "01:00:5e:00:00:01",
                "busybox",
                "true",
            ],
            125,
            "is a multicast address",
        ),
        cli(
            "pin",
            &[
                "run",
                "-d",
                "--mac-address",
                "02:42:zz:00:00:01",
                "busybox",
                "true",
            ],
            125,
            "is not a MAC address",
        ),
        // ---- unknown objects, protected objects ----
        cli("unknown", &["network", "inspect", "nosuch"], 1, "not found"),
        cli("unknown", &["network", "rm", "nosuch"], 1, "not found"),
        cli("unknown", &["inspect", "nosuch"], 1, "No such object"),
        cli("unknown", &["rm", "nosuch"], 1, "No such container"),
        cli("unknown", &["start", "nosuch"], 1, "No such container"),
        cli("unknown", &["stop", "nosuch"], 1, "No such container"),
        cli("unknown", &["kill", "nosuch"], 1, "No such container"),
        cli("unknown", &["logs", "nosuch"], 1, "No such container"),
        cli("unknown", &["port", "nosuch"], 1, "No such container"),
        cli(
            "unknown",
            &["exec", "nosuch", "true"],
            1,
            "No such container",
        ),
        cli(
            "unknown",
            &["network", "connect", "nosuchnet", "ctr"],
            1,
            "not found",
        ),
        cli(
            "unknown",
            &["network", "connect", "existing", "nosuchctr"],
            1,
            "No such container",
        ),
        cli(
            "unknown",
            &["network", "disconnect", "nosuchnet", "ctr"],
            1,
            "not found",
        ),
        cli(
            "unknown",
            &["network", "disconnect", "existing", "nosuchctr"],
            1,
            "No such container",
        ),
        cli("unknown", &["rmi", "nosuch"], 1, "No such image"),
        cli("unknown", &["network", "rm", "bridge"], 1, "pre-defined"),
        cli("unknown", &["network", "rm", "host"], 1, "pre-defined"),
        cli("unknown", &["network", "rm", "none"], 1, "pre-defined"),
        cli(
            "unknown",
            &["network", "rm", "existing"],
            1,
            "has active endpoints",
        ),
        cli("unknown", &["rmi", "busybox"], 1, "conflict"),
        api(
            "unknown",
            "GET",
            "/containers/nosuch/json",
            None,
            404,
            "No such container",
        ),
        api("unknown", "GET", "/networks/nosuch", None, 404, "not found"),
        api(
            "unknown",
            "DELETE",
            "/networks/bridge",
            None,
            403,
            "pre-defined",
        ),
        api(
            "unknown",
            "POST",
            "/networks/nosuch/connect",
            Some(r#"{"Container":"ctr"}"#),
            404,
            "not found",
        ),
        api(
            "unknown",
            "POST",
            "/containers/nosuch/exec",
            Some(r#"{"Cmd":["true"]}"#),
            404,
            "No such container",
        ),
        // ---- signals and values ----
        cli(
            "values",
            &["kill", "-s", "NOPE", "ctr"],
            1,
            "invalid signal",
        ),
        cli("values", &["kill", "-s", "999", "ctr"], 1, "invalid signal"),
        cli(
            "values",
            &["stop", "-s", "NOPE", "ctr"],
            1,
            "invalid signal",
        ),
        cli(
            "values",
            &["logs", "-n", "abc", "ctr"],
            1,
            "invalid value for tail",
        ),
        api(
            "values",
            "POST",
            "/containers/ctr/kill?signal=NOPE",
            None,
            400,
            "invalid signal",
        ),
        api(
            "values",
            "POST",
            "/containers/ctr/stop?t=abc",
            None,
            400,
            "invalid value for t",
        ),
        // ---- filters ----
        cli(
            "filters",
            &["network", "ls", "-f", "bogus=1"],
            1,
            "invalid filter",
        ),
        cli("filters", &["ps", "-f", "bogus=1"], 1, "invalid filter"),
        cli(
            "filters",
            &["network", "prune", "-f", "--filter", "bogus=1"],
            1,
            "invalid filter",
        ),
        api(
            "filters",
            "GET",
            "/networks?filters=notjson",
            None,
            400,
            "invalid filter",
        ),
        api(
            "filters",
            "GET",
            "/networks?filters=%7B%22bogus%22%3A%5B%221%22%5D%7D",
            None,
            400,
            "invalid filter",
        ),
        api(
            "filters",
            "GET",
            "/containers/json?filters=%7B%22bogus%22%3A%5B%221%22%5D%7D",
            None,
            400,
            "invalid filter",
        ),
        // ---- raw API: bodies, types, versions, unimplemented ----
        api(
            "body",
            "POST",
            "/networks/create",
            Some(r#"{"Name":"n1","#),
            400,
            "invalid JSON",
        ),
        api(
            "body",
            "POST",
            "/containers/create",
            Some(r#"{"Image":"#),
            400,
            "invalid JSON",
        ),
        api(
            "body",
            "POST",
            "/networks/create",
            Some(r#"{"Name":5}"#),
            400,
            "must be a string",
        ),
        api(
            "body",
            "POST",
            "/networks/create",
            Some(r#"{"Name":"n1","Internal":"yes"}"#),
            400,
            "must be true or false",
        ),
        api(
            "body",
            "POST",
            "/networks/create",
            Some(r#"{"Name":"n1","Options":{"com.docker.network.driver.mtu":1500}}"#),
            400,
            "must be a string",
        ),
        api(
            "body",
            "POST",
            "/networks/create",
            Some(r#"{"Name":"n1","Labels":["a"]}"#),
            400,
            "Labels",
        ),
        api(
            "body",
            "POST",
            "/networks/create",
            Some("null"),
            400,
            "JSON object",
        ),
        api(
            "body",
            "POST",
            "/networks/create",
            Some("[]"),
            400,
            "JSON object",
        ),
        api(
            "body",
            "POST",
            "/networks/existing/connect",
            Some(r#"{"Container":5}"#),
            400,
            "must be a string",
        ),
        api(
            "body",
            "POST",
            "/networks/existing/connect",
            Some("{}"),
            400,
            "Container is required",
        ),
        api(
            "body",
            "POST",
            "/containers/create?name=bad%20name",
            Some(r#"{"Image":"busybox"}"#),
            400,
            "Invalid container name",
        ),
        api(
            "body",
            "POST",
            "/containers/create",
            Some(r#"{"Image":"busybox","HostConfig":{"NetworkMode":5}}"#),
            400,
            "must be a string",
        ),
        api(
            "body",
            "POST",
            "/containers/create",
            Some(r#"{"Image":"nosuch"}"#),
            404,
            "No such image",
        ),
        api(
            "body",
            "GET",
            "/v1.2/version",
            None,
            400,
            "client version 1.2 is too old",
        ),
        api(
            "body",
            "GET",
            "/v1.23/networks",
            None,
            400,
            "client version 1.23 is too old",
        ),
        api("body", "GET", "/v1.99/version", None, 400, "too new"),
        api("body", "GET", "/secrets", None, 501, "not implement"),
        api(
            "body",
            "POST",
            "/volumes/create",
            Some(r#"{"Name":"a b"}"#),
            400,
            "invalid characters for a local volume name",
        ),
        api(
            "body",
            "POST",
            "/volumes/create",
            Some(r#"{"Name":"v2","DriverOpts":{"colour":"red"}}"#),
            400,
            "invalid option: \"colour\"",
        ),
        api(
            "body",
            "DELETE",
            "/volumes/nosuch",
            None,
            404,
            "get nosuch: no such volume",
        ),
        api(
            "body",
            "POST",
            "/containers/nosuch/rename?name=x2",
            None,
            404,
            "No such container: nosuch",
        ),
        api(
            "body",
            "GET",
            "/containers/nosuch/top",
            None,
            404,
            "No such container: nosuch",
        ),
        api("body", "POST", "/build", None, 501, "not implement"),
        api("body", "GET", "/services", None, 501, "not implement"),
        // Swarm mode exists; on a node outside a swarm Docker answers 503.
        api(
            "body",
            "GET",
            "/swarm",
            None,
            503,
            "This node is not a swarm manager. Use \"docker swarm init\"",
        ),
        // ---- image references ----
        cli(
            "refs",
            &["run", "-d", "UPPER", "true"],
            125,
            "invalid reference format",
        ),
        cli(
            "refs",
            &["run", "-d", "busybox:bad tag", "true"],
            125,
            "invalid reference format",
        ),
        cli("refs", &["create", ":tag"], 125, "invalid reference format"),
        api(
            "refs",
            "POST",
            "/containers/create",
            Some(r#"{"Image":"UPPER"}"#),
            400,
            "invalid reference format",
        ),
        cli(
            "refs",
            &["import", "@DIR@/bb.tar", "UPPER"],
            1,
            "invalid reference format",
        ),
        cli(
            "refs",
            &["import", "@DIR@/bb.tar", "a b"],
            1,
            "invalid reference format",
        ),
        // ---- filters on images ----
        cli(
            "imgfilter",
            &["images", "-f", "bogus=1"],
            1,
            "invalid filter",
        ),
        api(
            "imgfilter",
            "GET",
            "/images/json?filters=%7B%22bogus%22%3A%5B%221%22%5D%7D",
            None,
            400,
            "invalid filter",
        ),
        // ---- image import of hostile tarballs ----
        cli(
            "import",
            &["import", "@DIR@/dotdot.tar", "evil"],
            1,
            "path contains '..'",
        ),
        cli(
            "import",
            &["import", "@DIR@/dotdot2.tar", "evil"],
            1,
            "path contains '..'",
        ),
        cli(
            "import",
            &["import", "@DIR@/abs.tar", "evil"],
            1,
            "absolute path",
        ),
        cli(
            "import",
            &["import", "@DIR@/chr.tar", "evil"],
            1,
            "device and fifo entries are not allowed",
        ),
        cli(
            "import",
            &["import", "@DIR@/blk.tar", "evil"],
            1,
            "device and fifo entries are not allowed",
        ),
        cli(
            "import",
            &["import", "@DIR@/fifo.tar", "evil"],
            1,
            "device and fifo entries are not allowed",
        ),
        cli(
            "import",
            &["import", "@DIR@/hardlink.tar", "evil"],
            1,
            "hard link",
        ),
        cli(
            "import",
            &["import", "@DIR@/symdir.tar", "evil"],
            1,
            "invalid image tarball",
        ),
        cli(
            "import",
            &["import", "@DIR@/garbage.tar", "evil"],
            1,
            "invalid image tarball",
        ),
        cli(
            "import",
            &["import", "@DIR@/nonexistent.tar", "evil"],
            1,
            "No such file",
        ),
    ];
    v.sort_by_key(|c| c.group);
    v
}

/// Builds hostile tarballs in the daemon dir with Python's tarfile.
fn make_tars(d: &Daemon) {
    let script = r#"
import tarfile, io, sys, os
os.chdir(sys.argv[1])
def mk(name, entries):
    with tarfile.open(name, "w") as t:
        for (n, typ, extra) in entries:
            ti = tarfile.TarInfo(n); ti.type = typ; data = None
            if typ == tarfile.REGTYPE:
                data = io.BytesIO(b"x"); ti.size = 1
            if typ in (tarfile.SYMTYPE, tarfile.LNKTYPE): ti.linkname = extra
            if typ in (tarfile.CHRTYPE, tarfile.BLKTYPE): ti.devmajor, ti.devminor = 1, 3
            t.addfile(ti, data)
mk("dotdot.tar", [("bin", tarfile.DIRTYPE, None), ("../evil", tarfile.REGTYPE, None)])
mk("dotdot2.tar", [("a/../../evil", tarfile.REGTYPE, None)])
mk("abs.tar", [("/etc/evil", tarfile.REGTYPE, None)])
mk("chr.tar", [("dev/null", tarfile.CHRTYPE, None)])
mk("blk.tar", [("dev/sda", tarfile.BLKTYPE, None)])
mk("fifo.tar", [("p", tarfile.FIFOTYPE, None)])
mk("hardlink.tar", [("shadow", tarfile.LNKTYPE, "../../etc/shadow")])
# write through a symlinked directory that points outside the root
mk("symdir.tar", [("esc", tarfile.SYMTYPE, "/"), ("esc/tmp/netloom-e2e-escape", tarfile.REGTYPE, None)])
open("garbage.tar", "w").write("this is not a tar archive\n" * 40)
"#;
    let o = netloom_e2e::sh("python3", &["-c", script, d.dir.to_str().unwrap()]);
    assert!(o.ok(), "python tarfile: {o}");
    std::fs::copy(netloom_e2e::busybox_tar(), d.dir.join("bb.tar")).unwrap();
}

/// Store- and kernel-level dump plus the daemon's on-disk image dirs.
fn dump(d: &Daemon) -> String {
    let mut s = d.state_dump();
    for sub in ["data/images", "data/tmp", "exec/netns"] {
        let mut names: Vec<String> = std::fs::read_dir(d.dir.join(sub))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        s.push_str(&format!("== {sub}\n{}\n", names.join("\n")));
    }
    s
}

fn first_diff(a: &str, b: &str) -> String {
    for (x, y) in a.lines().zip(b.lines()) {
        if x != y {
            return format!("- {x}\n+ {y}");
        }
    }
    format!(
        "(length differs: {} vs {} lines)",
        a.lines().count(),
        b.lines().count()
    )
}

fn run_group(group: &str) {
    let all = cases();
    let mine: Vec<&Case> = all.iter().filter(|c| c.group == group).collect();
    assert!(!mine.is_empty(), "no cases in group {group}");
    let d = daemon_or_skip!();
    // Fixture: a user network with a pinned container, one on the default
    // bridge.
    d.ok(&["network", "create", "--subnet", "10.50.0.0/24", "existing"]);
    d.run_sleeper("ctr", &["--network", "existing", "--ip", "10.50.0.10"]);
    d.run_sleeper("onbridge", &[]);
    make_tars(&d);
    let dir = d.dir.to_string_lossy().into_owned();

    let mut failures = Vec::new();
    let mut before = dump(&d);
    for (i, c) in mine.iter().enumerate() {
        let label;
        match &c.kind {
            Kind::Cli(args, code) => {
                let args: Vec<String> = args.iter().map(|a| a.replace("@DIR@", &dir)).collect();
                let argv: Vec<&str> = args.iter().map(String::as_str).collect();
                label = format!("#{i} netloom {argv:?}");
                let o = d.cli(&argv);
                if o.code != *code {
                    failures.push(format!("{label}: want exit {code}, got {o}"));
                } else if !o.all().contains(c.want) {
                    failures.push(format!(
                        "{label}: want message containing {:?}, got {o}",
                        c.want
                    ));
                }
            }
            Kind::Api(method, path, body, status) => {
                label = format!("#{i} {method} {path} {}", body.unwrap_or(""));
                let (got, text) = d.api(method, path, *body);
                let msg = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| {
                        v.get("message")
                            .and_then(|m| m.as_str())
                            .map(str::to_string)
                    });
                if got != *status {
                    failures.push(format!("{label}: want HTTP {status}, got {got}: {text}"));
                } else {
                    match msg {
                        None => failures.push(format!(
                            "{label}: body is not a JSON {{\"message\":…}} object: {text:?}"
                        )),
                        Some(m) if !m.contains(c.want) => failures.push(format!(
                            "{label}: want message containing {:?}, got {m:?}",
                            c.want
                        )),
                        Some(_) => {}
                    }
                }
            }
        }
        // Kernel clean-up of earlier objects (a veth pair going away with its
        // namespace) is asynchronous: let a difference settle before judging it.
        let mut after = dump(&d);
        for _ in 0..10 {
            if after == before {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
            after = dump(&d);
        }
        if after != before {
            failures.push(format!(
                "{label}: state changed by a refused request:\n{}",
                first_diff(&before, &after)
            ));
            before = after; // judge later cases independently
        }
    }
    // Nothing escaped the image root (symlinked-directory case).
    if std::path::Path::new("/tmp/netloom-e2e-escape").exists() {
        let _ = std::fs::remove_file("/tmp/netloom-e2e-escape");
        failures.push("import wrote /tmp/netloom-e2e-escape outside the image root".into());
    }
    println!(
        "group {group}: {} cases, {} failures",
        mine.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} bad-input cases in group {group} failed:\n{}",
        failures.len(),
        mine.len(),
        failures.join("\n")
    );
}

#[test]
fn bad_input_case_count() {
    let all = cases();
    let mut groups: Vec<&str> = all.iter().map(|c| c.group).collect();
    groups.dedup();
    println!("bad-input cases: {} in {} groups", all.len(), groups.len());
    assert!(all.len() >= 40, "at least 40 cases, have {}", all.len());
    // Every group has a test below.
    for g in groups {
        assert!(
            [
                "net",
                "pin",
                "unknown",
                "values",
                "filters",
                "body",
                "refs",
                "imgfilter",
                "import"
            ]
            .contains(&g),
            "group {g} has no test"
        );
    }
}

#[test]
fn bad_network_create() {
    run_group("net");
}

#[test]
fn bad_pinned_ip_and_container_create() {
    run_group("pin");
}

#[test]
fn bad_unknown_and_protected_objects() {
    run_group("unknown");
}

#[test]
fn bad_signals_and_values() {
    run_group("values");
}

#[test]
fn bad_filters() {
    run_group("filters");
}

#[test]
fn bad_api_bodies_versions_unimplemented() {
    run_group("body");
}

#[test]
fn bad_image_references() {
    run_group("refs");
}

#[test]
fn bad_image_filters() {
    run_group("imgfilter");
}

#[test]
fn bad_image_import_tarballs() {
    run_group("import");
}

#[test]
fn state_dump_detects_changes() {
    // Self-test of the harness: the dump must see store and kernel changes.
    let d = daemon_or_skip!();
    let a = dump(&d);
    assert_eq!(a, dump(&d), "dump is stable");
    d.ok(&["network", "create", "probe"]);
    let b = dump(&d);
    assert_ne!(a, b, "network create visible");
    assert!(
        b.contains("== links") && b.contains("br-"),
        "bridge link in dump"
    );
    d.run_sleeper("probec", &["--network", "probe"]);
    let c = dump(&d);
    assert_ne!(b, c, "container visible");
    d.ok(&["network", "connect", "bridge", "probec"]);
    assert_ne!(c, dump(&d), "connect visible");
}

#[test]
fn ambiguous_prefixes_and_path_traversal() {
    // An ID prefix that matches several networks is refused (400, Docker's wording),
    // and names with path traversal never reach anything: clear 4xx, nothing changes.
    let d = daemon_or_skip!();
    for i in 0..6 {
        d.ok(&["network", "create", &format!("amb{i}")]);
    }
    let ids = d.ok(&["network", "ls", "-q", "--no-trunc"]);
    let ids: Vec<&str> = ids.split_whitespace().collect();
    // With 9 networks some first hex digit is shared (pigeonhole over 16 digits is not
    // guaranteed, so look for a shared prefix of any length 1..=2).
    let mut shared = None;
    'outer: for len in 1..=2 {
        for a in &ids {
            let p = &a[..len];
            if ids.iter().filter(|b| b.starts_with(p)).count() > 1 {
                shared = Some(p.to_string());
                break 'outer;
            }
        }
    }
    let before = dump(&d);
    if let Some(p) = shared {
        let o = d.fail(&["network", "inspect", &p]);
        assert!(
            o.all().contains("is ambiguous"),
            "ambiguous prefix {p}: {o}"
        );
        let (status, text) = d.api("DELETE", &format!("/networks/{p}"), None);
        assert_eq!(status, 400, "{text}");
        assert!(text.contains("ambiguous"), "{text}");
    } else {
        println!(
            "no shared ID prefix among {} networks; ambiguity case not exercised",
            ids.len()
        );
    }
    for path in [
        "/networks/..%2F..%2Fetc%2Fpasswd",
        "/containers/..%2F..%2Fetc/json",
        "/images/..%2F..%2Fetc%2Fpasswd/json",
        "/exec/..%2Fx/json",
    ] {
        let (status, text) = d.api("GET", path, None);
        assert!((400..500).contains(&status), "{path}: {status} {text}");
    }
    let (status, text) = d.api("DELETE", "/images/..%2F..%2Fetc%2Fpasswd", None);
    assert!((400..500).contains(&status), "{status} {text}");
    assert_eq!(dump(&d), before, "refused requests changed the state");
}
