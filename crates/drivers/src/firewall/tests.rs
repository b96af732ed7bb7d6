use super::*;

fn net(iface: &str, subnet: &str, internal: bool, icc: bool, masq: bool) -> NetRules {
    NetRules {
        iface: iface.into(),
        subnets: vec![
            subnet
                .parse()
                .unwrap_or_else(|_| IpNet::V4(Default::default())),
        ],
        internal,
        icc,
        masquerade: masq,
    }
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
    let fw = Firewall::new("netloom_test").ok();
    let nets = vec![
        net("netloom0", "172.17.0.0/16", false, true, true),
        net("br-aaaaaaaaaaaa", "172.18.0.0/16", true, true, true),
        net("br-bbbbbbbbbbbb", "10.5.0.0/24", false, false, false),
        net("br-cccccccccccc", "fd00:1::/64", false, true, true),
    ];
    let text = fw
        .and_then(|f| f.render_full(&nets).ok())
        .unwrap_or_default();
    golden("full.nft", &text);
}

#[test]
fn delta_adds_and_removes_only_elements() {
    let Ok(mut fw) = Firewall::new("netloom_test") else {
        panic!("table name")
    };
    let a = net("br-a", "10.1.0.0/16", false, true, true);
    let b = net("br-b", "10.2.0.0/16", true, false, true);
    assert!(fw.mark_applied(std::slice::from_ref(&a)).is_ok());
    let d = fw
        .render_delta(&[a.clone(), b.clone()])
        .ok()
        .flatten()
        .unwrap_or_default();
    golden("delta_add.nft", &d);
    assert!(fw.mark_applied(&[a.clone(), b.clone()]).is_ok());
    let d = fw
        .render_delta(std::slice::from_ref(&b))
        .ok()
        .flatten()
        .unwrap_or_default();
    golden("delta_remove.nft", &d);
    assert_eq!(fw.render_delta(&[a, b]).ok().flatten(), None);
}

#[test]
fn rule_count_is_constant() {
    let Ok(fw) = Firewall::new("netloom_test") else {
        panic!("table name")
    };
    let count = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("    ") && !l.contains("type "))
            .count()
    };
    let one = fw
        .render_full(&[net("br-0", "10.0.0.0/24", false, true, true)])
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
    let big = fw.render_full(&many).unwrap_or_default();
    assert_eq!(count(&one), count(&big));
    assert!(big.len() > one.len());
}

#[test]
fn rejects_names_outside_the_grammar() {
    assert!(Firewall::new("bad name").is_err());
    assert!(Firewall::new("x;flush ruleset").is_err());
    let Ok(fw) = Firewall::new("ok") else {
        panic!("table name")
    };
    let evil = net("br\" ; flush", "10.0.0.0/24", false, true, true);
    assert!(fw.render_full(&[evil]).is_err());
}
