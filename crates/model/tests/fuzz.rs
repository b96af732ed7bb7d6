//! Bounded random-input test for the port parsers.
//!
//! Random strings (heavy on digits and `/-:`) go into
//! [`parse_port_key`] and [`parse_host_port`]: they must never panic, and
//! every `Ok` must obey the documented ranges and round-trip.
//!
//! The seed is printed; set `NETLOOM_FUZZ_SEED` to replay a run and
//! `NETLOOM_FUZZ_ITERS` to change the iteration count.

use netloom_model::ports::{Proto, parse_host_port, parse_port_key};
use std::time::Instant;

const CI_ITERS: u64 = 1_000_000;

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

const ATOMS: &[&str] = &[
    "0", "1", "80", "65535", "65536", "99999", "00080", "-", "/", ":", "tcp", "udp", "sctp", "TCP",
    "Udp", "icmp", " ", "\t", "+", "+1", "-1", "é", "\u{0}", "1-", "-1-", "//",
];

fn random_input(r: &mut Rng) -> String {
    let mut s = String::new();
    for _ in 0..r.below(8) {
        match r.below(4) {
            0 => s.push_str(ATOMS[r.below(ATOMS.len() as u64) as usize]),
            1 => s.push_str(&r.below(70_000).to_string()),
            2 => s.push(char::from(b"0123456789/-:"[r.below(13) as usize])),
            _ => s.push(char::from(0x20 + r.below(0x5f) as u8)),
        }
    }
    s
}

#[test]
fn fuzz_port_parsers() {
    let seed = seed();
    let n = iters();
    eprintln!("fuzz_port_parsers: seed={seed} iters={n}");
    let mut r = Rng(seed);
    let start = Instant::now();
    let (mut ok_key, mut ok_host) = (0u64, 0u64);
    for i in 0..n {
        let s = random_input(&mut r);
        let ctx = || format!("seed={seed} iter={i} input={s:?}");
        if let Ok((port, proto)) = parse_port_key(&s) {
            ok_key += 1;
            assert!(port >= 1, "port 0 accepted: {}", ctx());
            // Canonical form must parse to the same value.
            let canon = format!("{port}/{}", proto.as_str());
            assert_eq!(
                parse_port_key(&canon).ok(),
                Some((port, proto)),
                "round-trip of {canon}: {}",
                ctx()
            );
            if proto == Proto::Tcp {
                assert_eq!(parse_port_key(&port.to_string()).ok(), Some((port, proto)));
            }
        }
        if let Ok(v) = parse_host_port(&s) {
            ok_host += 1;
            match v {
                None => assert!(s.trim().is_empty(), "None for non-empty: {}", ctx()),
                Some((a, b)) => {
                    assert!(a >= 1 && a <= b, "bad range {a}-{b}: {}", ctx());
                    let canon = if a == b {
                        a.to_string()
                    } else {
                        format!("{a}-{b}")
                    };
                    assert_eq!(
                        parse_host_port(&canon).ok(),
                        Some(Some((a, b))),
                        "round-trip of {canon}: {}",
                        ctx()
                    );
                }
            }
        }
    }
    eprintln!(
        "fuzz_port_parsers: {n} iterations in {:?} (ok: key={ok_key} host={ok_host})",
        start.elapsed()
    );
}
