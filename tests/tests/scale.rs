//! Growth: what one more container costs must not depend on how many run already.
//!
//! One daemon, `NETLOOM_SCALE_N` (200) containers started one after another with `run -d`
//! on one user-defined bridge. The test fails if a `run -d` late in the growth costs more
//! than 3 × one early in it (medians of the 7 runs around the 10th and the last), or if the
//! daemon's resident memory grows by more than 100 kB per container between the 10th and
//! the last. Both are ratios within this one run, so a slow or busy machine does not make
//! it flap; the absolute figures are in `bench/scale.sh`.
//!
//! This file holds one test on purpose: cargo runs test binaries one after another, so
//! nothing else of this suite runs beside it.

use std::time::{Duration, Instant};

use netloom_e2e::daemon_or_skip;

/// The median of a few durations.
fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn run_cost_and_memory_do_not_grow_with_containers() {
    let d = daemon_or_skip!();
    let n: usize = std::env::var("NETLOOM_SCALE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
        .max(30);
    d.ok(&["network", "create", "--subnet", "10.150.0.0/22", "growth"]);
    // One untimed container first: the image's first use, caches warm.
    d.ok(&["run", "--rm", "--network", "growth", "busybox", "true"]);
    let mut cost = Vec::with_capacity(n);
    let mut rss_early = 0;
    for i in 1..=n {
        let name = format!("g{i}");
        let t = Instant::now();
        d.ok(&[
            "run",
            "-d",
            "--network",
            "growth",
            "--name",
            &name,
            "busybox",
            "sleep",
            "100000",
        ]);
        cost.push(t.elapsed());
        if i == 10 {
            rss_early = d.rss_kb();
        }
    }
    let rss_late = d.rss_kb();
    // Every container is up and reachable by name: the growth did not degrade service.
    let last = format!("g{n}");
    let o = d.exec_ok(
        "g1",
        &format!("nslookup {last} 127.0.0.11 >/dev/null && echo ok"),
    );
    assert!(o.contains("ok"), "g1 cannot resolve {last}: {o}");
    let running = d.ok(&["ps", "-q"]).lines().count();
    assert_eq!(running, n, "running containers");

    let early = median(cost[6..13].to_vec());
    let late = median(cost[n - 7..].to_vec());
    let ratio = late.as_secs_f64() / early.as_secs_f64();
    let per_ctr_kb = rss_late.saturating_sub(rss_early) as f64 / (n - 10) as f64;
    println!(
        "FIGURE growth: run -d around the 10th {early:?}, around the {n}th {late:?} (x{ratio:.2}); \
         RSS {rss_early} kB at 10, {rss_late} kB at {n} ({per_ctr_kb:.1} kB per container)"
    );
    assert!(
        ratio <= 3.0,
        "run -d costs {ratio:.2} x more with {n} containers than with 10 ({late:?} vs {early:?}): \
         something is rebuilt per change for every container"
    );
    assert!(
        per_ctr_kb <= 100.0,
        "netloomd's memory grew {per_ctr_kb:.1} kB per container ({rss_early} -> {rss_late} kB \
         from 10 to {n} containers)"
    );
}
