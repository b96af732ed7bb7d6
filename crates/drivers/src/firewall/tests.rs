use std::net::Ipv4Addr;

use super::*;

fn net(iface: &str, subnet: &str, internal: bool, icc: bool, masq: bool) -> NetRules {
    NetRules {
        iface: iface.into(),
        subnets: vec![subnet.parse().unwrap_or(IpNet::V4(Default::default()))],
        internal,
        icc,
        masquerade: masq,
    }
}

fn nets(v: Vec<NetRules>) -> Desired {
    Desired {
        nets: v,
        ports: Vec::new(),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

fn golden(name: &str, text: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("NETLOOM_BLESS").is_some() {
        let _ = std::fs::write(&path, text);
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        text, want,
        "golden file {name} differs (NETLOOM_BLESS=1 rewrites it)"
    );
}

#[test]
fn full_ruleset_matches_golden() {
    let Ok(fw) = Firewall::new("netloom_test") else {
        panic!("table name")
    };
    let d = Desired {
        nets: vec![
            net("netloom0", "172.17.0.0/16", false, true, true),
            net("br-aaaaaaaaaaaa", "172.18.0.0/16", true, true, true),
            net("br-bbbbbbbbbbbb", "10.5.0.0/24", false, false, false),
            net("br-cccccccccccc", "fd00:1::/64", false, true, true),
        ],
        ports: vec![
            PortRule {
                proto: Proto::Tcp,
                host_ip: None,
                host_port: 8080,
                ctr_ip: ip("172.17.0.2"),
                ctr_port: 80,
            },
            PortRule {
                proto: Proto::Udp,
                host_ip: Some(ip("127.0.0.1")),
                host_port: 5353,
                ctr_ip: ip("172.17.0.2"),
                ctr_port: 53,
            },
            PortRule {
                proto: Proto::Tcp,
                host_ip: None,
                host_port: 8080,
                ctr_ip: ip("fd00:1::2"),
                ctr_port: 80,
            },
        ],
    };
    golden("full.nft", &fw.render_full(&d).unwrap_or_default());
}

#[test]
fn delta_adds_and_removes_only_elements() {
    let Ok(mut fw) = Firewall::new("netloom_test") else {
        panic!("table name")
    };
    let a = net("br-a", "10.1.0.0/16", false, true, true);
    let b = net("br-b", "10.2.0.0/16", true, false, true);
    assert!(fw.mark_applied(&nets(vec![a.clone()])).is_ok());
    let text = fw
        .render_delta(&nets(vec![a.clone(), b.clone()]))
        .ok()
        .flatten()
        .unwrap_or_default();
    golden("delta_add.nft", &text);
    assert!(fw.mark_applied(&nets(vec![a.clone(), b.clone()])).is_ok());
    let text = fw
        .render_delta(&nets(vec![b.clone()]))
        .ok()
        .flatten()
        .unwrap_or_default();
    golden("delta_remove.nft", &text);
    assert_eq!(fw.render_delta(&nets(vec![a, b])).ok().flatten(), None);
}

#[test]
fn rule_count_is_constant() {
    let Ok(fw) = Firewall::new("netloom_test") else {
        panic!("table name")
    };
    let count = |text: &str| text.lines().filter(|l| l.starts_with("add rule")).count();
    let one = fw
        .render_full(&nets(vec![net("br-0", "10.0.0.0/24", false, true, true)]))
        .unwrap_or_default();
    let many: Vec<NetRules> = (0..500)
        .map(|i| {
            net(
                &format!("br-{i}"),
                &format!("10.{}.{}.0/24", i / 256, i % 256),
                i % 3 == 0,
                i % 2 == 0,
                true,
            )
        })
        .collect();
    let ports: Vec<PortRule> = (0..2000u16)
        .map(|i| PortRule {
            proto: Proto::Tcp,
            host_ip: None,
            host_port: 10000 + i,
            ctr_ip: IpAddr::V4(Ipv4Addr::new(10, 0, (i / 250) as u8, (i % 250) as u8 + 2)),
            ctr_port: 80,
        })
        .collect();
    let big = fw
        .render_full(&Desired { nets: many, ports })
        .unwrap_or_default();
    assert_eq!(count(&one), count(&big));
    assert!(big.len() > one.len() * 10);
}

#[test]
fn rejects_names_outside_the_grammar() {
    assert!(Firewall::new("bad name").is_err());
    assert!(Firewall::new("x;flush ruleset").is_err());
    let Ok(fw) = Firewall::new("ok") else {
        panic!("table name")
    };
    assert!(
        fw.render_full(&nets(vec![net(
            "br\" ; flush",
            "10.0.0.0/24",
            false,
            true,
            true
        )]))
        .is_err()
    );
    let mixed = Desired {
        nets: Vec::new(),
        ports: vec![PortRule {
            proto: Proto::Tcp,
            host_ip: Some(ip("::1")),
            host_port: 1,
            ctr_ip: ip("10.0.0.2"),
            ctr_port: 1,
        }],
    };
    assert!(fw.render_full(&mixed).is_err());
}

#[test]
fn host_hook_is_one_validated_rule() {
    let r = Firewall::render_host_hook("inet", "filter", "forward").unwrap_or_default();
    golden("host_hook.nft", &r);
    assert!(Firewall::render_host_hook("bridge", "filter", "forward").is_err());
    assert!(Firewall::render_host_hook("ip", "filter; flush ruleset", "FORWARD").is_err());
    assert!(Firewall::render_host_hook("ip", "filter", "FOR WARD").is_err());
}
