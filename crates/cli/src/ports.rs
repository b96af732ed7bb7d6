//! Client-side parsing of `-p/--publish` and `--expose`, following docker's
//! `nat.ParsePortSpec`: `[ip:][hostPort:]containerPort[/proto]`, ranges
//! (`8000-8010:80-90`), bracketed IPv6 (`[::1]:8080:80`) and the long
//! syntax `target=80,published=8080,protocol=udp`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use anyhow::{Result, anyhow, bail};

/// One host binding: (HostIp, HostPort); empty strings mean any/ephemeral.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// Host address ("" = all).
    pub host_ip: String,
    /// Host port or range ("" = ephemeral).
    pub host_port: String,
}

/// Result of parsing all publish/expose options.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PortSpecs {
    /// `ExposedPorts` keys, e.g. `80/tcp`.
    pub exposed: BTreeSet<String>,
    /// `HostConfig.PortBindings`.
    pub bindings: BTreeMap<String, Vec<Binding>>,
}

/// Go `strconv.ParseUint(s, 10, 16)`.
fn parse_u16(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u16>().ok().map(u64::from)
}

/// docker `nat.ParsePortRange`.
pub fn parse_port_range(ports: &str) -> Result<(u64, u64)> {
    if ports.is_empty() {
        bail!("empty string specified for ports");
    }
    if !ports.contains('-') {
        let p = parse_u16(ports).ok_or_else(|| anyhow!("invalid port: {ports}"))?;
        return Ok((p, p));
    }
    let mut parts = ports.split('-');
    let a = parts.next().unwrap_or("");
    let b = parts.next().unwrap_or("");
    let start = parse_u16(a).ok_or_else(|| anyhow!("invalid port: {a}"))?;
    let end = parse_u16(b).ok_or_else(|| anyhow!("invalid port: {b}"))?;
    if end < start {
        bail!("invalid range specified for port: {ports}");
    }
    Ok((start, end))
}

/// docker `nat.SplitProtoPort`: returns (proto, port).
pub fn split_proto_port(raw: &str) -> (String, String) {
    let parts: Vec<&str> = raw.split('/').collect();
    if raw.is_empty() || parts[0].is_empty() {
        return (String::new(), String::new());
    }
    if parts.len() == 1 {
        return ("tcp".into(), raw.to_string());
    }
    if parts[1].is_empty() {
        return ("tcp".into(), parts[0].to_string());
    }
    (parts[1].to_string(), parts[0].to_string())
}

fn split_parts(raw: &str) -> (String, String, String) {
    let parts: Vec<&str> = raw.split(':').collect();
    let n = parts.len();
    let container = parts[n - 1].to_string();
    match n {
        1 => (String::new(), String::new(), container),
        2 => (String::new(), parts[0].to_string(), container),
        3 => (parts[0].to_string(), parts[1].to_string(), container),
        _ => (
            parts[..n - 2].join(":"),
            parts[n - 2].to_string(),
            container,
        ),
    }
}

fn validate_proto(proto: &str) -> Result<()> {
    match proto {
        "tcp" | "udp" | "sctp" => Ok(()),
        _ => bail!("invalid proto: {proto}"),
    }
}

/// Converts the long `--publish` syntax into the short one.
fn to_standard_notation(spec: &str) -> Result<String> {
    if !spec.contains('=') {
        return Ok(spec.to_string());
    }
    let mut target = String::new();
    let mut published = String::new();
    let mut protocol = String::from("tcp");
    for param in spec.split(',') {
        let Some((k, v)) = param.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            bail!("invalid publish opts format (should be name=value but got '{param}')");
        };
        match k {
            "target" => target = v.to_string(),
            "published" => published = v.to_string(),
            "protocol" => protocol = v.to_string(),
            _ => {}
        }
    }
    Ok(format!("{published}:{target}/{protocol}"))
}

/// docker `nat.ParsePortSpec`: one spec → (port key, binding) list.
pub fn parse_port_spec(raw: &str) -> Result<Vec<(String, Binding)>> {
    let (mut ip, host_port, container) = split_parts(raw);
    let (proto, container) = split_proto_port(&container);
    if ip.starts_with('[') {
        match ip.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            Some(inner) => ip = inner.to_string(),
            None => bail!("invalid IP address {ip}: missing ']' in address"),
        }
    }
    if !ip.is_empty() && ip.parse::<IpAddr>().is_err() {
        bail!("invalid IP address: {ip}");
    }
    if container.is_empty() {
        bail!("no port specified: {raw}<empty>");
    }
    let (start, end) =
        parse_port_range(&container).map_err(|_| anyhow!("invalid containerPort: {container}"))?;
    let (mut hstart, mut hend) = (0, 0);
    if !host_port.is_empty() {
        (hstart, hend) =
            parse_port_range(&host_port).map_err(|_| anyhow!("invalid hostPort: {host_port}"))?;
    }
    if !host_port.is_empty() && (end - start) != (hend - hstart) && end != start {
        bail!("invalid ranges specified for container and host Ports: {container} and {host_port}");
    }
    let proto = proto.to_lowercase();
    validate_proto(&proto)?;
    let count = end - start + 1;
    let mut out = Vec::with_capacity(count as usize);
    for i in 0..count {
        let key = format!("{}/{proto}", start + i);
        let mut hp = String::new();
        if !host_port.is_empty() {
            hp = (hstart + i).to_string();
            if count == 1 && hstart != hend {
                hp = format!("{hp}-{hend}");
            }
        }
        out.push((
            key,
            Binding {
                host_ip: ip.clone(),
                host_port: hp,
            },
        ));
    }
    Ok(out)
}

/// Parses every `-p` and `--expose` option.
pub fn parse(publish: &[String], expose: &[String]) -> Result<PortSpecs> {
    let mut specs = PortSpecs::default();
    for p in publish {
        let std = to_standard_notation(p)?;
        for (key, b) in parse_port_spec(&std)? {
            specs.exposed.insert(key.clone());
            specs.bindings.entry(key).or_default().push(b);
        }
    }
    for e in expose {
        if e.contains(':') {
            bail!("invalid port format for --expose: {e}");
        }
        let (proto, port) = split_proto_port(e);
        let (start, end) = parse_port_range(&port)
            .map_err(|err| anyhow!("invalid range format for --expose: {e}, error: {err}"))?;
        let proto = proto.to_lowercase();
        validate_proto(&proto)?;
        for p in start..=end {
            specs.exposed.insert(format!("{p}/{proto}"));
        }
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(spec: &str) -> Vec<(String, String, String)> {
        parse_port_spec(spec)
            .expect("valid spec")
            .into_iter()
            .map(|(k, b)| (k, b.host_ip, b.host_port))
            .collect()
    }

    fn t(k: &str, ip: &str, hp: &str) -> (String, String, String) {
        (k.into(), ip.into(), hp.into())
    }

    fn err(spec: &str) -> String {
        match parse_port_spec(spec) {
            Ok(v) => format!("unexpected ok: {v:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn simple_forms() {
        assert_eq!(one("80"), vec![t("80/tcp", "", "")]);
        assert_eq!(one("8080:80"), vec![t("80/tcp", "", "8080")]);
        assert_eq!(
            one("127.0.0.1:8080:80"),
            vec![t("80/tcp", "127.0.0.1", "8080")]
        );
        assert_eq!(one("127.0.0.1::80"), vec![t("80/tcp", "127.0.0.1", "")]);
        assert_eq!(one("53:53/udp"), vec![t("53/udp", "", "53")]);
        assert_eq!(one("53:53/UDP"), vec![t("53/udp", "", "53")]);
        assert_eq!(one("80/sctp"), vec![t("80/sctp", "", "")]);
        assert_eq!(one("80/"), vec![t("80/tcp", "", "")]);
    }

    #[test]
    fn ipv6_forms() {
        assert_eq!(one("[::1]:8080:80"), vec![t("80/tcp", "::1", "8080")]);
        assert_eq!(one("[::]::80/udp"), vec![t("80/udp", "::", "")]);
        assert_eq!(one("::1:8080:80"), vec![t("80/tcp", "::1", "8080")]);
    }

    #[test]
    fn ranges() {
        assert_eq!(
            one("8000-8002:80-82"),
            vec![
                t("80/tcp", "", "8000"),
                t("81/tcp", "", "8001"),
                t("82/tcp", "", "8002")
            ]
        );
        assert_eq!(one("8000-8010:80"), vec![t("80/tcp", "", "8000-8010")]);
        assert_eq!(one("90-91"), vec![t("90/tcp", "", ""), t("91/tcp", "", "")]);
    }

    #[test]
    fn errors() {
        assert_eq!(err("x"), "invalid containerPort: x");
        assert_eq!(err("8080:x"), "invalid containerPort: x");
        assert_eq!(err("70000"), "invalid containerPort: 70000");
        assert_eq!(err("x:80"), "invalid hostPort: x");
        assert_eq!(err("1.2.3:80:80"), "invalid IP address: 1.2.3");
        assert_eq!(err("8080:80/foo"), "invalid proto: foo");
        assert_eq!(err("8080:"), "no port specified: 8080:<empty>");
        assert_eq!(err(""), "no port specified: <empty>");
        assert_eq!(
            err("8000-8001:80-82"),
            "invalid ranges specified for container and host Ports: 80-82 and 8000-8001"
        );
        assert_eq!(err("90-80"), "invalid containerPort: 90-80");
        assert_eq!(
            err("[::1:8080:80"),
            "invalid IP address [::1: missing ']' in address"
        );
    }

    #[test]
    fn combined_with_expose_like_docker() {
        let publish: Vec<String> = [
            "127.0.0.1:8081:81/udp",
            "9000-9001:90-91",
            "8080:80",
            "8081:80",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let expose = vec!["7000".to_string(), "7100-7101/udp".to_string()];
        let p = parse(&publish, &expose).expect("valid");
        let exposed: Vec<&str> = p.exposed.iter().map(String::as_str).collect();
        assert_eq!(
            exposed,
            vec![
                "7000/tcp", "7100/udp", "7101/udp", "80/tcp", "81/udp", "90/tcp", "91/tcp"
            ]
        );
        assert_eq!(p.bindings["80/tcp"].len(), 2);
        assert_eq!(p.bindings["80/tcp"][1].host_port, "8081");
        assert_eq!(p.bindings["81/udp"][0].host_ip, "127.0.0.1");
        assert_eq!(p.bindings["91/tcp"][0].host_port, "9001");
    }

    #[test]
    fn long_syntax_and_expose_errors() {
        let p = parse(&["target=80,published=8080,protocol=udp".to_string()], &[]).expect("ok");
        assert_eq!(p.bindings["80/udp"][0].host_port, "8080");
        let e = parse(&["target=80,bogus".to_string()], &[]).expect_err("bad");
        assert_eq!(
            e.to_string(),
            "invalid publish opts format (should be name=value but got 'bogus')"
        );
        let e = parse(&[], &["1:2".to_string()]).expect_err("bad");
        assert_eq!(e.to_string(), "invalid port format for --expose: 1:2");
        let e = parse(&[], &["abc".to_string()]).expect_err("bad");
        assert_eq!(
            e.to_string(),
            "invalid range format for --expose: abc, error: invalid port: abc"
        );
    }
}
