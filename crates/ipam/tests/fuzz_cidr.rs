//! Bounded random-input test for the IPAM.
//!
//! Random v4/v6 prefixes (random host bits, random prefix lengths including
//! invalid ones, which fail to parse like they do in the daemon) go into
//! [`Ipam::request_pool`] (subnet, ip_range, avoid) and random addresses into
//! [`Ipam::request_address`] / [`Ipam::release_address`]. A model tracks
//! what must be allocated; invariants: no panic, no address outside its
//! subnet (or, when picked by the IPAM, outside the ip range), no network /
//! broadcast address, no address handed out twice, no overlapping pools, and
//! the IPAM's counts match the model.
//!
//! The seed is printed; `NETLOOM_FUZZ_SEED` replays a run and
//! `NETLOOM_FUZZ_ITERS` changes the number of operations.

use ipnet::IpNet;
use netloom_ipam::{DefaultPool, Family, Ipam, IpamError, docker_default_pools};
use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

const CI_ITERS: u64 = 300_000;
/// Operations per fresh `Ipam`.
const EPISODE: u64 = 200;

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

/// A random address from a small universe so that pools collide often.
fn rand_addr(r: &mut Rng, v6: bool) -> IpAddr {
    if v6 {
        let hi: u128 = match r.below(3) {
            0 => 0xfd00_0000_0000_0000,
            1 => 0x2001_0db8_0000_0000,
            _ => u128::from(r.next()),
        };
        let lo = match r.below(3) {
            0 => u128::from(r.below(300)),
            1 => u128::from(r.next()),
            _ => u128::from(r.next() & 0xffff_0000),
        };
        IpAddr::V6(Ipv6Addr::from((hi << 64) | lo))
    } else {
        let a: u32 = match r.below(4) {
            0 => 10,
            1 => 172,
            2 => 192,
            _ => r.below(256) as u32,
        };
        let rest = match r.below(3) {
            0 => r.below(1 << 24) as u32,
            1 => (17 << 16) | r.below(600) as u32,
            _ => (168 << 16) | r.below(1 << 16) as u32,
        };
        IpAddr::V4(Ipv4Addr::from((a << 24) | rest))
    }
}

/// Prefix length biased to sizes that are cheap to allocate, sometimes
/// invalid (longer than the address).
fn rand_len(r: &mut Rng, v6: bool) -> u8 {
    let bits = if v6 { 128 } else { 32 };
    match r.below(10) {
        0 => r.below(bits + 10) as u8,
        1 => (bits - r.below(4)) as u8,
        _ => (bits - 2 - r.below(if v6 { 14 } else { 12 })) as u8,
    }
}

/// A CIDR string parsed like the daemon does; `None` when it does not parse.
fn rand_net(r: &mut Rng, v6: bool, host_bits_percent: u64) -> Option<IpNet> {
    let host_bits = r.chance(host_bits_percent);
    let s = format!("{}/{}", rand_addr(r, v6), rand_len(r, v6));
    let n: IpNet = s.parse().ok()?;
    Some(if host_bits { n } else { n.trunc() })
}

struct PoolModel {
    range: Option<IpNet>,
    allocated: HashSet<IpAddr>,
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn broadcast_forbidden(subnet: &IpNet, a: IpAddr) -> bool {
    a == subnet.network() || (matches!(subnet, IpNet::V4(_)) && a == subnet.broadcast())
}

fn fresh(r: &mut Rng) -> Ipam {
    if r.chance(50) {
        return Ipam::new(docker_default_pools());
    }
    let mut pools = Vec::new();
    for _ in 0..r.below(4) {
        let v6 = r.chance(40);
        if let Some(base) = rand_net(r, v6, 100) {
            let size = r.below(if v6 { 140 } else { 40 }) as u8;
            pools.push(DefaultPool { base, size });
        }
    }
    Ipam::new(pools)
}

#[test]
fn fuzz_ipam() {
    let seed = seed();
    let n = iters();
    eprintln!("fuzz_ipam: seed={seed} iters={n}");
    let mut r = Rng(seed);
    let start = Instant::now();
    let mut ipam = fresh(&mut r);
    let mut model: BTreeMap<IpNet, PoolModel> = BTreeMap::new();
    let (mut pools_ok, mut addrs_ok, mut releases) = (0u64, 0u64, 0u64);
    for i in 0..n {
        if i % EPISODE == 0 {
            ipam = fresh(&mut r);
            model.clear();
        }
        let ctx = format!("seed={seed} iter={i}");
        let known: Vec<IpNet> = model.keys().copied().collect();
        let pick_pool = |r: &mut Rng| -> Option<IpNet> {
            if known.is_empty() || r.chance(10) {
                let v6 = r.chance(50);
                rand_net(r, v6, 20)
            } else {
                Some(known[r.below(known.len() as u64) as usize])
            }
        };
        match r.below(10) {
            // request_pool
            0 | 1 => {
                let v6 = r.chance(40);
                let subnet = if r.chance(15) {
                    None
                } else {
                    rand_net(&mut r, v6, 20)
                };
                let range = if r.chance(40) {
                    // Often derived from the subnet so it is sometimes valid.
                    match subnet {
                        Some(s) if r.chance(70) => {
                            let bits = if v6 { 128 } else { 32 };
                            let len = (s.prefix_len() + r.below(6) as u8).min(bits);
                            let off = r.below(1 << 12) as u128;
                            let base = match s.network() {
                                IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(
                                    u32::from(a).wrapping_add(off as u32),
                                )),
                                IpAddr::V6(a) => {
                                    IpAddr::V6(Ipv6Addr::from(u128::from(a).wrapping_add(off)))
                                }
                            };
                            IpNet::new(base, len)
                                .ok()
                                .map(|n| if r.chance(80) { n.trunc() } else { n })
                        }
                        _ => rand_net(&mut r, v6, 20),
                    }
                } else {
                    None
                };
                let avoid: Vec<IpNet> = (0..r.below(4))
                    .filter_map(|_| {
                        let v6 = r.chance(30);
                        rand_net(&mut r, v6, 100)
                    })
                    .collect();
                let res = if subnet.is_none() && range.is_none() && r.chance(30) {
                    let fam = if r.chance(50) { Family::V6 } else { Family::V4 };
                    ipam.request_default_pool("fuzz", fam, &avoid)
                } else {
                    ipam.request_pool("fuzz", subnet, range, &avoid)
                };
                if let Ok(net) = res {
                    pools_ok += 1;
                    assert_eq!(net, net.trunc(), "pool with host bits {net}: {ctx}");
                    if let Some(s) = subnet {
                        assert_eq!(net, s, "{ctx}");
                    } else {
                        for a in &avoid {
                            assert!(
                                !overlaps(a, &net),
                                "default pool {net} overlaps avoid {a}: {ctx}"
                            );
                        }
                    }
                    for other in model.keys() {
                        assert!(!overlaps(other, &net), "{net} overlaps {other}: {ctx}");
                    }
                    if let Some(rg) = range {
                        assert!(
                            net.contains(&rg.network()),
                            "range {rg} outside {net}: {ctx}"
                        );
                    }
                    model.insert(
                        net,
                        PoolModel {
                            range: if subnet.is_some() { range } else { None },
                            allocated: HashSet::new(),
                        },
                    );
                }
            }
            // request_address
            2..=6 => {
                let Some(pool) = pick_pool(&mut r) else {
                    continue;
                };
                let want = if r.chance(40) {
                    let a = match (pool.network(), r.below(3)) {
                        (IpAddr::V4(n), 0 | 1) => IpAddr::V4(Ipv4Addr::from(
                            u32::from(n).wrapping_add(r.below(300) as u32),
                        )),
                        (IpAddr::V6(n), 0 | 1) => IpAddr::V6(Ipv6Addr::from(
                            u128::from(n).wrapping_add(r.below(300) as u128),
                        )),
                        (n, _) => rand_addr(&mut r, n.is_ipv6()),
                    };
                    Some(a)
                } else {
                    None
                };
                let res = ipam.request_address(&pool, want);
                let entry = model.get_mut(&pool.trunc());
                match (res, entry) {
                    (Ok(a), Some(m)) => {
                        addrs_ok += 1;
                        let subnet = pool.trunc();
                        assert!(subnet.contains(&a), "{a} outside {subnet}: {ctx}");
                        assert!(
                            !broadcast_forbidden(&subnet, a),
                            "reserved {a} of {subnet}: {ctx}"
                        );
                        if let Some(w) = want {
                            assert_eq!(a, w, "{ctx}");
                        } else if let Some(rg) = m.range {
                            assert!(rg.contains(&a), "{a} outside ip range {rg}: {ctx}");
                        }
                        assert!(
                            m.allocated.insert(a),
                            "{a} handed out twice in {subnet}: {ctx}"
                        );
                    }
                    (Ok(a), None) => panic!("{a} allocated in unknown pool {pool}: {ctx}"),
                    (Err(e), Some(m)) => {
                        // A free, valid, pinned address must be granted.
                        if let Some(w) = want {
                            let subnet = pool.trunc();
                            let valid = subnet.contains(&w)
                                && !broadcast_forbidden(&subnet, w)
                                && !m.allocated.contains(&w);
                            assert!(!valid, "free address {w} of {subnet} refused: {e}: {ctx}");
                        } else {
                            assert!(
                                matches!(e, IpamError::Exhausted { .. }),
                                "unexpected error {e}: {ctx}"
                            );
                        }
                    }
                    (Err(_), None) => {}
                }
            }
            // release_address
            7 | 8 => {
                let Some(pool) = pick_pool(&mut r) else {
                    continue;
                };
                let addr = match model.get(&pool.trunc()) {
                    Some(m) if !m.allocated.is_empty() && r.chance(80) => {
                        let k = r.below(m.allocated.len() as u64) as usize;
                        m.allocated.iter().nth(k).copied()
                    }
                    _ => Some(rand_addr(&mut r, pool.network().is_ipv6())),
                };
                let Some(addr) = addr else { continue };
                ipam.release_address(&pool, addr);
                releases += 1;
                if let Some(m) = model.get_mut(&pool.trunc()) {
                    m.allocated.remove(&addr);
                }
                assert!(
                    !ipam.is_allocated(&pool, addr),
                    "{addr} still allocated: {ctx}"
                );
            }
            // release_pool, rarely
            _ => {
                if r.chance(30)
                    && let Some(pool) = pick_pool(&mut r)
                {
                    ipam.release_pool(&pool);
                    model.remove(&pool.trunc());
                }
            }
        }
        // Consistency with the model.
        let reserved: Vec<IpNet> = ipam.pools().into_iter().map(|(n, _)| n).collect();
        let modeled: Vec<IpNet> = model.keys().copied().collect();
        assert_eq!(reserved, modeled, "pool list differs: {ctx}");
        for (net, m) in &model {
            assert_eq!(
                ipam.allocated_count(net),
                m.allocated.len(),
                "count of {net}: {ctx}"
            );
        }
    }
    eprintln!(
        "fuzz_ipam: {n} operations in {:?} (pools={pools_ok} addresses={addrs_ok} releases={releases})",
        start.elapsed()
    );
}
