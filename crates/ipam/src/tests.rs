use super::*;
use proptest::prelude::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn docker() -> Ipam {
    Ipam::new(docker_default_pools())
}

// ---------------------------------------------------------------- pools

#[test]
fn docker_defaults_give_31_subnets_in_order() {
    let mut ipam = docker();
    let mut got = Vec::new();
    for i in 0..31 {
        got.push(
            ipam.request_pool(&format!("n{i}"), None, None, &[])
                .unwrap()
                .to_string(),
        );
    }
    let mut want = vec![
        "172.17.0.0/16".to_string(),
        "172.18.0.0/16".to_string(),
        "172.19.0.0/16".to_string(),
    ];
    for b in 20..32 {
        want.push(format!("172.{b}.0.0/16"));
    }
    for c in (0..256).step_by(16) {
        want.push(format!("192.168.{c}.0/20"));
    }
    assert_eq!(got, want);
    let err = ipam.request_pool("late", None, None, &[]).unwrap_err();
    assert!(matches!(&err, IpamError::PoolsExhausted { tried } if tried.len() == 7));
    let msg = err.to_string();
    assert!(
        msg.starts_with("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network"),
        "{msg}"
    );
    assert!(msg.contains("172.20.0.0/14") && msg.contains("192.168.0.0/16"));
    assert!(msg.contains("--subnet") && msg.contains("default-address-pools"));
    assert_eq!(ipam.pools().len(), 31);
    assert!(
        ipam.pools()
            .iter()
            .any(|(s, o)| *s == net("172.17.0.0/16") && o == "n0")
    );
}

#[test]
fn host_bits_are_rejected_with_canonical_form() {
    let err = docker()
        .request_pool("x", Some(net("10.1.2.3/16")), None, &[])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid subnet 10.1.2.3/16: it should be 10.1.0.0/16"
    );
    assert_eq!(
        err,
        IpamError::HostBits {
            subnet: net("10.1.2.3/16"),
            canonical: net("10.1.0.0/16")
        }
    );
}

#[test]
fn overlapping_subnets_are_rejected_naming_the_owner() {
    let mut ipam = docker();
    ipam.request_pool("front", Some(net("10.1.0.0/16")), None, &[])
        .unwrap();
    for s in ["10.1.2.0/24", "10.0.0.0/8", "10.1.0.0/16"] {
        let err = ipam
            .request_pool("back", Some(net(s)), None, &[])
            .unwrap_err();
        assert_eq!(
            err,
            IpamError::Overlap {
                subnet: net(s),
                other_subnet: net("10.1.0.0/16"),
                other_owner: "front".into()
            }
        );
        assert!(err.to_string().contains("network front"), "{err}");
    }
    // neighbours and the other family are fine
    ipam.request_pool("b", Some(net("10.2.0.0/16")), None, &[])
        .unwrap();
    ipam.request_pool("c", Some(net("fd00::/64")), None, &[])
        .unwrap();
    // auto allocation skips explicit subnets
    ipam.request_pool("d", Some(net("172.17.0.0/16")), None, &[])
        .unwrap();
    assert_eq!(
        ipam.request_pool("e", None, None, &[]).unwrap(),
        net("172.18.0.0/16")
    );
}

#[test]
fn too_small_subnets_are_rejected() {
    let mut ipam = docker();
    for s in ["10.0.0.0/31", "10.0.0.1/32", "fd00::/127", "fd00::1/128"] {
        let err = ipam.request_pool("x", Some(net(s)), None, &[]).unwrap_err();
        assert_eq!(err, IpamError::TooSmall { subnet: net(s) }, "{s}");
    }
    ipam.request_pool("x", Some(net("10.0.0.0/30")), None, &[])
        .unwrap();
    ipam.request_pool("y", Some(net("fd00::/126")), None, &[])
        .unwrap();
}

#[test]
fn auto_subnets_avoid_routes() {
    let mut ipam = docker();
    let avoid = [
        net("172.17.5.0/24"),
        net("172.16.0.0/15"),
        net("172.20.1.1/32"),
    ];
    // 172.17 and 172.18 are covered (172.16.0.0/15 covers .16 and .17; the /24 too)
    assert_eq!(
        ipam.request_pool("a", None, None, &avoid).unwrap(),
        net("172.18.0.0/16")
    );
    assert_eq!(
        ipam.request_pool("b", None, None, &avoid).unwrap(),
        net("172.19.0.0/16")
    );
    assert_eq!(
        ipam.request_pool("c", None, None, &avoid).unwrap(),
        net("172.21.0.0/16")
    );
    // a route covering everything exhausts the pools
    let err = ipam
        .request_pool("d", None, None, &[net("128.0.0.0/1")])
        .unwrap_err();
    assert!(matches!(err, IpamError::PoolsExhausted { .. }));
}

#[test]
fn v6_auto_needs_a_default_pool() {
    let mut ipam = docker();
    let err = ipam.request_default_pool("x", Family::V6, &[]).unwrap_err();
    assert_eq!(err, IpamError::NoDefaultV6);
    assert_eq!(err.to_string(), "no default IPv6 pool, give --subnet");

    let pools = parse_default_pools(
        r#"[{"base":"10.10.0.0/16","size":24},{"base":"fd12:3456::/48","size":64}]"#,
    )
    .unwrap();
    let mut ipam = Ipam::new(pools);
    assert_eq!(
        ipam.request_default_pool("a", Family::V6, &[]).unwrap(),
        net("fd12:3456::/64")
    );
    assert_eq!(
        ipam.request_default_pool("b", Family::V6, &[net("fd12:3456:0:1::/64")])
            .unwrap(),
        net("fd12:3456:0:2::/64")
    );
    assert_eq!(
        ipam.request_pool("c", None, None, &[]).unwrap(),
        net("10.10.0.0/24")
    );
}

#[test]
fn ip_range_rules() {
    let mut ipam = docker();
    let s = net("10.5.0.0/16");
    for r in ["10.6.0.0/24", "10.0.0.0/8", "fd00::/120"] {
        let err = ipam
            .request_pool("x", Some(s), Some(net(r)), &[])
            .unwrap_err();
        assert_eq!(
            err,
            IpamError::RangeOutside {
                range: net(r),
                subnet: s
            }
        );
    }
    let err = ipam
        .request_pool("x", Some(s), Some(net("10.5.1.7/24")), &[])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid subnet 10.5.1.7/24: it should be 10.5.1.0/24"
    );
    let err = ipam
        .request_pool("x", Some(s), Some(net("10.5.0.0/32")), &[])
        .unwrap_err();
    assert!(matches!(err, IpamError::RangeEmpty { .. }));
    let err = ipam
        .request_pool("x", None, Some(net("10.5.0.0/24")), &[])
        .unwrap_err();
    assert!(matches!(err, IpamError::RangeWithoutSubnet { .. }));
    assert!(ipam.pools().is_empty());

    // addresses come from the range; the range's first address is usable
    // when it is not the subnet's network address
    ipam.request_pool("x", Some(s), Some(net("10.5.7.0/30")), &[])
        .unwrap();
    let got: Vec<IpAddr> = (0..4)
        .map(|_| ipam.request_address(&s, None).unwrap())
        .collect();
    assert_eq!(
        got,
        ["10.5.7.0", "10.5.7.1", "10.5.7.2", "10.5.7.3"].map(ip)
    );
    assert_eq!(
        ipam.request_address(&s, None).unwrap_err(),
        IpamError::Exhausted { subnet: s }
    );
    // pinned addresses may be outside the range
    assert_eq!(
        ipam.request_address(&s, Some(ip("10.5.0.1"))).unwrap(),
        ip("10.5.0.1")
    );
    assert_eq!(ipam.allocated_count(&s), 5);

    // a range starting at the network address skips it
    let t = net("10.6.0.0/24");
    ipam.request_pool("y", Some(t), Some(net("10.6.0.0/25")), &[])
        .unwrap();
    assert_eq!(ipam.request_address(&t, None).unwrap(), ip("10.6.0.1"));
}

// ---------------------------------------------------------------- addresses

#[test]
fn pinned_address_rules() {
    let mut ipam = docker();
    let s = ipam.request_pool("net1", None, None, &[]).unwrap();
    assert_eq!(s, net("172.17.0.0/16"));
    let err = ipam.request_address(&s, Some(ip("10.0.0.1"))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "requested address 10.0.0.1 is out of range of subnet 172.17.0.0/16"
    );
    let err = ipam.request_address(&s, Some(ip("fd00::1"))).unwrap_err();
    assert!(matches!(err, IpamError::OutOfRange { .. }));
    for a in ["172.17.0.0", "172.17.255.255"] {
        let err = ipam.request_address(&s, Some(ip(a))).unwrap_err();
        assert_eq!(
            err,
            IpamError::Reserved {
                address: ip(a),
                subnet: s
            }
        );
    }
    let gw = first_host(&s).unwrap();
    assert_eq!(gw, ip("172.17.0.1"));
    assert_eq!(ipam.request_address(&s, Some(gw)).unwrap(), gw);
    let err = ipam.request_address(&s, Some(gw)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "address 172.17.0.1 is already in use in subnet 172.17.0.0/16"
    );
    // the cursor did not move: auto allocation skips the pinned gateway
    assert_eq!(ipam.request_address(&s, None).unwrap(), ip("172.17.0.2"));
    assert!(ipam.is_allocated(&s, gw));
    assert_eq!(ipam.allocated_count(&s), 2);

    let err = ipam.request_address(&net("10.9.0.0/24"), None).unwrap_err();
    assert!(matches!(err, IpamError::UnknownPool { .. }));
}

#[test]
fn v6_last_address_is_usable_network_is_not() {
    let mut ipam = docker();
    let s = net("fd00::/126");
    ipam.request_pool("v6", Some(s), None, &[]).unwrap();
    assert!(matches!(
        ipam.request_address(&s, Some(ip("fd00::"))),
        Err(IpamError::Reserved { .. })
    ));
    let got: Vec<IpAddr> = (0..3)
        .map(|_| ipam.request_address(&s, None).unwrap())
        .collect();
    assert_eq!(got, ["fd00::1", "fd00::2", "fd00::3"].map(ip));
    assert!(matches!(
        ipam.request_address(&s, None),
        Err(IpamError::Exhausted { .. })
    ));
}

#[test]
fn exhausted_names_the_subnet() {
    let mut ipam = docker();
    let s = net("10.0.0.0/30");
    ipam.request_pool("x", Some(s), None, &[]).unwrap();
    ipam.request_address(&s, None).unwrap();
    ipam.request_address(&s, None).unwrap();
    let err = ipam.request_address(&s, None).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("no available IPv4 addresses on this network's address pools"),
        "{msg}"
    );
    assert!(msg.contains("larger --subnet"), "{msg}");
    assert!(msg.contains("10.0.0.0/30"), "{msg}");
}

#[test]
fn released_address_is_not_reused_at_once() {
    let mut ipam = docker();
    let s = net("10.0.0.0/24");
    ipam.request_pool("x", Some(s), None, &[]).unwrap();
    let a = ipam.request_address(&s, None).unwrap();
    assert_eq!(a, ip("10.0.0.1"));
    ipam.release_address(&s, a);
    ipam.release_address(&s, a); // idempotent
    assert_eq!(ipam.allocated_count(&s), 0);
    assert_eq!(ipam.request_address(&s, None).unwrap(), ip("10.0.0.2"));
    // after the whole range has been handed out, .1 comes back
    for i in 3..=254 {
        assert_eq!(
            ipam.request_address(&s, None).unwrap(),
            ip(&format!("10.0.0.{i}"))
        );
    }
    assert_eq!(ipam.request_address(&s, None).unwrap(), ip("10.0.0.1"));
}

#[test]
fn release_pool_is_idempotent_and_frees_the_subnet() {
    let mut ipam = docker();
    let s = ipam.request_pool("a", None, None, &[]).unwrap();
    ipam.request_address(&s, None).unwrap();
    ipam.release_pool(&s);
    ipam.release_pool(&s);
    assert!(ipam.pools().is_empty());
    assert_eq!(ipam.allocated_count(&s), 0);
    assert_eq!(ipam.cursor(&s), None);
    assert_eq!(ipam.request_pool("b", None, None, &[]).unwrap(), s);
    // a fresh pool: allocations start over
    assert_eq!(ipam.request_address(&s, None).unwrap(), ip("172.17.0.1"));
}

#[test]
fn cursor_survives_a_restart() {
    let s = net("10.0.0.0/24");
    let mut ipam = docker();
    ipam.request_pool("x", Some(s), None, &[]).unwrap();
    let gw = ipam.request_address(&s, first_host(&s)).unwrap();
    let mut live = vec![gw];
    for _ in 0..5 {
        live.push(ipam.request_address(&s, None).unwrap());
    }
    // .2 .. .6 handed out; release .6, the last one
    let last = live.pop().unwrap();
    ipam.release_address(&s, last);
    let cursor = ipam.cursor(&s).unwrap();
    assert_eq!(cursor, 7);

    // "restart"
    let mut again = docker();
    again.request_pool("x", Some(s), None, &[]).unwrap();
    again.set_cursor(&s, cursor);
    for a in &live {
        again.request_address(&s, Some(*a)).unwrap();
    }
    assert_eq!(again.cursor(&s), Some(7));
    assert_eq!(again.request_address(&s, None).unwrap(), ip("10.0.0.7"));

    // out-of-range cursors restart at the range start; unknown pools ignored
    again.set_cursor(&s, 1 << 40);
    assert_eq!(again.cursor(&s), Some(1));
    again.set_cursor(&net("10.1.0.0/24"), 5);
    assert_eq!(again.cursor(&net("10.1.0.0/24")), None);
}

#[test]
fn first_host_of_subnets() {
    assert_eq!(first_host(&net("172.18.0.0/16")), Some(ip("172.18.0.1")));
    assert_eq!(first_host(&net("fd00:1::/64")), Some(ip("fd00:1::1")));
    assert_eq!(first_host(&net("10.0.0.0/30")), Some(ip("10.0.0.1")));
    assert_eq!(first_host(&net("10.0.0.0/31")), None);
    assert_eq!(first_host(&net("10.0.0.0/32")), None);
    assert_eq!(first_host(&net("fd00::/127")), None);
    assert_eq!(first_host(&net("fd00::/128")), None);
}

#[test]
fn default_pool_config_validation() {
    let pools = parse_default_pools(r#"[{"base":"10.10.0.0/16","size":24}]"#).unwrap();
    assert_eq!(
        pools,
        vec![DefaultPool {
            base: net("10.10.0.0/16"),
            size: 24
        }]
    );
    let bad = |json: &str| parse_default_pools(json).unwrap_err().to_string();
    assert!(bad(r#"[{"base":"10.10.0.0/16","size":8}]"#).contains("at least the base prefix"));
    assert!(bad(r#"[{"base":"10.10.0.0/16","size":33}]"#).contains("at most 32"));
    assert!(bad(r#"[{"base":"fd00::/48","size":129}]"#).contains("at most 128"));
    assert!(bad(r#"[{"base":"10.10.1.0/16","size":24}]"#).contains("it should be 10.10.0.0/16"));
    assert!(bad(r#"[{"base":"ten","size":24}]"#).contains("invalid default address pool ten"));
    assert!(bad(r#"{"base":"10.10.0.0/16"}"#).starts_with("invalid default-address-pools"));
    assert!(
        parse_default_pools(
            r#"[{"base":"10.10.0.0/16","size":16},{"base":"fd00::/8","size":128}]"#
        )
        .is_ok()
    );
    // an invalid pool handed straight to Ipam::new is skipped
    let mut ipam = Ipam::new(vec![
        DefaultPool {
            base: net("10.0.0.0/16"),
            size: 8,
        },
        DefaultPool {
            base: net("10.1.0.0/16"),
            size: 24,
        },
    ]);
    assert_eq!(
        ipam.request_pool("a", None, None, &[]).unwrap(),
        net("10.1.0.0/24")
    );
}

#[test]
fn errors_are_lowercase_without_trailing_period() {
    let s = net("10.0.0.0/24");
    let errors = [
        IpamError::HostBits {
            subnet: net("10.0.0.1/24"),
            canonical: s,
        },
        IpamError::Overlap {
            subnet: s,
            other_subnet: s,
            other_owner: "x".into(),
        },
        IpamError::TooSmall { subnet: s },
        IpamError::PoolsExhausted { tried: vec![s] },
        IpamError::NoDefaultV6,
        IpamError::RangeOutside {
            range: s,
            subnet: s,
        },
        IpamError::RangeEmpty {
            range: s,
            subnet: s,
        },
        IpamError::RangeWithoutSubnet { range: s },
        IpamError::UnknownPool { subnet: s },
        IpamError::OutOfRange {
            address: ip("10.0.0.1"),
            subnet: s,
        },
        IpamError::Reserved {
            address: ip("10.0.0.1"),
            subnet: s,
        },
        IpamError::InUse {
            address: ip("10.0.0.1"),
            subnet: s,
        },
        IpamError::Exhausted { subnet: s },
        IpamError::InvalidDefaultPools { reason: "x".into() },
        IpamError::InvalidDefaultPool {
            base: "b".into(),
            size: 1,
            reason: "r".into(),
        },
    ];
    for e in errors {
        let m = e.to_string();
        assert!(m.starts_with(|c: char| c.is_lowercase()), "{m}");
        assert!(!m.ends_with('.'), "{m}");
    }
}

#[test]
fn bitmap_scan_crosses_words_and_wraps() {
    let s = net("10.0.0.0/23"); // 510 hosts, 8 words
    let mut ipam = docker();
    ipam.request_pool("x", Some(s), None, &[]).unwrap();
    let all: Vec<IpAddr> = (0..510)
        .map(|_| ipam.request_address(&s, None).unwrap())
        .collect();
    // free a few scattered addresses behind the cursor, in reverse order
    for i in [400usize, 130, 64, 63, 0] {
        ipam.release_address(&s, all[i]);
    }
    // the cursor wrapped: they come back in address order
    for i in [0usize, 63, 64, 130, 400] {
        assert_eq!(ipam.request_address(&s, None).unwrap(), all[i]);
    }
    assert!(ipam.request_address(&s, None).is_err());
}

#[test]
fn million_v6_allocations_in_a_64_are_fast() {
    let s = net("fd00:1:2:3::/64");
    let mut ipam = docker();
    ipam.request_pool("big", Some(s), None, &[]).unwrap();
    let start = Instant::now();
    let mut last = None;
    for _ in 0..1_000_000 {
        last = Some(ipam.request_address(&s, None).unwrap());
    }
    let elapsed = start.elapsed();
    assert_eq!(last, Some(ip("fd00:1:2:3::f:4240")));
    assert_eq!(ipam.allocated_count(&s), 1_000_000);
    assert_eq!(ipam.cursor(&s), Some(1_000_001));
    // a scan over the /64 would never finish; this is well under a second
    // in release builds and a few seconds at most in debug builds
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
}

// ---------------------------------------------------------------- properties

#[derive(Debug, Clone)]
enum AddrOp {
    Auto,
    Pin(u32),
    Release(usize),
}

fn addr_ops() -> impl Strategy<Value = Vec<AddrOp>> {
    prop::collection::vec(
        prop_oneof![
            4 => Just(AddrOp::Auto),
            1 => any::<u32>().prop_map(AddrOp::Pin),
            3 => any::<usize>().prop_map(AddrOp::Release),
        ],
        0..400,
    )
}

/// A pool for the properties: subnet, optional range, and whether to force
/// the sparse representation.
fn pool_setup() -> impl Strategy<Value = (IpNet, Option<IpNet>, bool)> {
    // the range, when given, is the second block of a longer prefix (at
    // least 4 addresses), so it always holds hosts
    fn make(base: &str, p: u8, extra: Option<u8>) -> (IpNet, Option<IpNet>) {
        let s = net(&format!("{base}/{p}"));
        let range = extra.map(|extra| {
            let q = (p + extra).min(s.max_prefix_len() - 2);
            let block = if q > p {
                last_offset(&net(&format!("{base}/{q}"))) + 1
            } else {
                0
            };
            let start = addr_at(&s, block);
            IpNet::new(start, q).unwrap()
        });
        (s, range)
    }
    let v4 = (24u8..=30, prop::option::of(0u8..=3)).prop_map(|(p, r)| make("10.1.0.0", p, r));
    let v6 = (118u8..=126, prop::option::of(0u8..=3)).prop_map(|(p, r)| make("fd00::", p, r));
    (prop_oneof![v4, v6], any::<bool>()).prop_map(|((s, r), sparse)| (s, r, sparse))
}

/// Addresses auto allocation may hand out: the range's addresses that are
/// hosts of the subnet, in address order.
fn range_hosts(subnet: &IpNet, range: Option<IpNet>) -> Vec<IpAddr> {
    let r = range.unwrap_or(*subnet);
    let (lo, hi) = host_bounds(subnet).unwrap();
    (0..=last_offset(&r))
        .map(|o| addr_at(&r, o))
        .filter(|a| (lo..=hi).contains(&offset_of(subnet, *a).unwrap()))
        .collect()
}

fn setup(subnet: IpNet, range: Option<IpNet>, sparse: bool) -> Ipam {
    let mut ipam = Ipam::new(vec![]);
    if sparse {
        ipam = ipam.with_bitmap_max(0);
    }
    ipam.request_pool("p", Some(subnet), range, &[]).unwrap();
    ipam
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// (1) never hands out an allocated address, never network/broadcast,
    /// auto addresses always inside the range, pinned ones inside the subnet;
    /// exhaustion only when the range is full.
    #[test]
    fn prop_allocations_are_sound((subnet, range, sparse) in pool_setup(), ops in addr_ops()) {
        let mut ipam = setup(subnet, range, sparse);
        let hosts = range_hosts(&subnet, range);
        let (lo, hi) = host_bounds(&subnet).unwrap();
        let mut live: Vec<IpAddr> = Vec::new();
        for op in ops {
            match op {
                AddrOp::Auto => match ipam.request_address(&subnet, None) {
                    Ok(a) => {
                        prop_assert!(!live.contains(&a), "{a} handed out twice");
                        prop_assert!(hosts.contains(&a), "{a} outside range");
                        live.push(a);
                    }
                    Err(IpamError::Exhausted { .. }) => {
                        prop_assert!(hosts.iter().all(|h| live.contains(h)));
                    }
                    Err(e) => prop_assert!(false, "unexpected {e}"),
                },
                AddrOp::Pin(n) => {
                    let offset = u128::from(n) % (last_offset(&subnet) + 2);
                    let a = addr_at(&subnet, offset);
                    let r = ipam.request_address(&subnet, Some(a));
                    let in_subnet = offset <= last_offset(&subnet);
                    if !in_subnet {
                        prop_assert!(matches!(r, Err(IpamError::OutOfRange { .. })), "{r:?}");
                    } else if offset < lo || offset > hi {
                        prop_assert!(matches!(r, Err(IpamError::Reserved { .. })), "{r:?}");
                    } else if live.contains(&a) {
                        prop_assert!(matches!(r, Err(IpamError::InUse { .. })), "{r:?}");
                    } else {
                        prop_assert_eq!(r, Ok(a));
                        live.push(a);
                    }
                }
                AddrOp::Release(i) => {
                    if !live.is_empty() {
                        let a = live.swap_remove(i % live.len());
                        ipam.release_address(&subnet, a);
                    }
                }
            }
            prop_assert_eq!(ipam.allocated_count(&subnet), live.len());
        }
        for a in &live {
            prop_assert!(ipam.is_allocated(&subnet, *a));
        }
    }

    /// (2) cycle property, strict form: after k fresh allocations, released
    /// addresses (in any order) come back only after every other free
    /// address of the range has been handed out once.
    #[test]
    fn prop_released_addresses_wait_for_a_full_cycle(
        (subnet, range, sparse) in pool_setup(),
        k_frac in 0.0f64..1.0,
        release in prop::collection::vec(any::<usize>(), 1..20),
    ) {
        let mut ipam = setup(subnet, range, sparse);
        let hosts = range_hosts(&subnet, range);
        let n = hosts.len();
        let k = ((n as f64 * k_frac) as usize).clamp(1, n);
        let mut live: Vec<IpAddr> = (0..k).map(|_| ipam.request_address(&subnet, None).unwrap()).collect();
        let mut released = Vec::new();
        for i in release {
            if live.is_empty() { break; }
            released.push(live.swap_remove(i % live.len()));
        }
        for a in &released {
            ipam.release_address(&subnet, *a);
        }
        for _ in 0..(n - k) {
            let a = ipam.request_address(&subnet, None).unwrap();
            prop_assert!(!released.contains(&a), "{a} reused before the cycle ended");
        }
        // then the released ones, in address order
        released.sort();
        for want in released {
            prop_assert_eq!(ipam.request_address(&subnet, None).unwrap(), want);
        }
    }

    /// (2') cycle property, general form for round-robin: when a released
    /// address X is handed out again, every address that was free when X was
    /// released and lay between the cursor and X has been handed out since.
    #[test]
    fn prop_round_robin_order((subnet, range, sparse) in pool_setup(), ops in addr_ops()) {
        let mut ipam = setup(subnet, range, sparse);
        let hosts = range_hosts(&subnet, range);
        let pos = |a: &IpAddr| hosts.iter().position(|h| h == a).unwrap();
        let mut live: Vec<IpAddr> = Vec::new();
        // released address -> addresses that must be handed out before it
        let mut waiting: HashMap<IpAddr, Vec<IpAddr>> = HashMap::new();
        for op in ops {
            match op {
                AddrOp::Auto | AddrOp::Pin(_) => {
                    let Ok(a) = ipam.request_address(&subnet, None) else { continue };
                    if let Some(before) = waiting.remove(&a) {
                        prop_assert!(before.is_empty(), "{a} handed out before {before:?}");
                    }
                    for before in waiting.values_mut() {
                        before.retain(|b| *b != a);
                    }
                    live.push(a);
                }
                AddrOp::Release(i) => {
                    if live.is_empty() { continue; }
                    let x = live.swap_remove(i % live.len());
                    ipam.release_address(&subnet, x);
                    let cursor = ipam.cursor(&subnet).unwrap();
                    let c = pos(&addr_at(&subnet, cursor));
                    let xp = pos(&x);
                    let n = hosts.len();
                    let before: Vec<IpAddr> = (0..n)
                        .map(|d| (c + d) % n)
                        .take_while(|p| *p != xp)
                        .map(|p| hosts[p])
                        .filter(|h| !live.contains(h))
                        .collect();
                    waiting.insert(x, before);
                }
            }
        }
    }

    /// (3) auto subnets never overlap each other, explicit subnets or
    /// `avoid`, and each is the first candidate that is free.
    #[test]
    fn prop_auto_subnets_do_not_overlap(
        avoid in prop::collection::vec((any::<u32>(), 8u8..=28), 0..6),
        explicit in prop::collection::vec((any::<u32>(), 12u8..=24), 0..4),
        autos in 1usize..40,
    ) {
        let in_docker = |x: u32| {
            if x.is_multiple_of(2) { 0xAC10_0000 | ((x >> 12) & 0x000F_FFFF) } else { 0xC0A8_0000 | (x >> 16) }
        };
        let mk = |(x, p): (u32, u8)| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(in_docker(x)), p).unwrap().trunc());
        let avoid: Vec<IpNet> = avoid.into_iter().map(mk).collect();
        let mut ipam = docker();
        let mut explicit_ok = Vec::new();
        for e in explicit {
            if let Ok(s) = ipam.request_pool("explicit", Some(mk(e)), None, &[]) {
                explicit_ok.push(s);
            }
        }
        let candidates: Vec<IpNet> = docker_default_pools()
            .iter()
            .flat_map(|p| p.base.subnets(p.size).unwrap())
            .collect();
        prop_assert_eq!(candidates.len(), 31);
        let mut got: Vec<IpNet> = Vec::new();
        for i in 0..autos {
            match ipam.request_pool(&format!("auto{i}"), None, None, &avoid) {
                Ok(s) => {
                    let taken = |c: &IpNet| got.iter().chain(&explicit_ok).chain(&avoid).any(|o| overlaps(o, c));
                    prop_assert!(!taken(&s), "{s} overlaps");
                    let first_free = candidates.iter().find(|c| !taken(c));
                    prop_assert_eq!(first_free, Some(&s));
                    got.push(s);
                }
                Err(IpamError::PoolsExhausted { .. }) => {
                    let taken = |c: &IpNet| got.iter().chain(&explicit_ok).chain(&avoid).any(|o| overlaps(o, c));
                    prop_assert!(candidates.iter().all(taken));
                }
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
        }
        let all = ipam.pools();
        for (i, (a, _)) in all.iter().enumerate() {
            for (b, _) in &all[i + 1..] {
                prop_assert!(!overlaps(a, b), "{a} overlaps {b}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3))]

    /// (4) a /16 yields exactly 65534 distinct addresses, then Exhausted.
    #[test]
    fn prop_slash16_exhaustion(a in 1u8..=223, b in any::<u8>(), start in any::<u16>()) {
        let s = IpNet::V4(Ipv4Net::new(Ipv4Addr::new(a, b, 0, 0), 16).unwrap());
        let mut ipam = docker();
        ipam.request_pool("big", Some(s), None, &[]).unwrap();
        ipam.set_cursor(&s, u128::from(start));
        let mut seen = vec![false; 1 << 16];
        for _ in 0..65534 {
            let addr = ipam.request_address(&s, None).unwrap();
            let o = offset_of(&s, addr).unwrap() as usize;
            prop_assert!(o != 0 && o != 65535);
            prop_assert!(!seen[o]);
            seen[o] = true;
        }
        prop_assert_eq!(ipam.allocated_count(&s), 65534);
        prop_assert_eq!(ipam.request_address(&s, None), Err(IpamError::Exhausted { subnet: s }));
    }
}
