//! `netloom-multihost N [--bare] [-- NETLOOMD-FLAGS…]`: the multi-host harness for scripts
//! (`bench/swarm.sh`). Builds N simulated hosts (see `netloom_e2e::multihost`), prints
//! one line per host — `host I NETNS SOCKET ADDRESS` — then `ready`, and then reads
//! commands on stdin, one per line, answering `ok` or `error: …`:
//!
//! `crash I`, `restart I`, `link-down I`, `link-up I`, `partition S`, `heal S`.
//!
//! With `--bare` no netloomd is started (namespaces and underlay only). At the end of
//! stdin (or `quit`) everything is removed.

use std::io::{BufRead, Write};

use netloom_e2e::multihost;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (n, extra) = match args.split_first() {
        Some((n, rest)) => (n.parse::<usize>().ok(), rest),
        None => (None, &[][..]),
    };
    let Some(n) = n.filter(|n| (1..=200).contains(n)) else {
        eprintln!("usage: netloom-multihost N [--bare] [-- NETLOOMD-FLAGS...]   (N from 1 to 200)");
        std::process::exit(2);
    };
    let bare = extra.first().is_some_and(|a| a == "--bare");
    let extra: Vec<&str> = extra
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "--" && *a != "--bare")
        .collect();
    let Some(mut c) = multihost::cluster_with(n, &extra, !bare) else {
        std::process::exit(3);
    };
    let out = std::io::stdout();
    let mut out = out.lock();
    for (i, h) in c.hosts.iter().enumerate() {
        let _ = writeln!(
            out,
            "host {} {} {} {}",
            i + 1,
            h.daemon.name,
            h.daemon.sock().display(),
            h.addr
        );
    }
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let mut w = line.split_whitespace();
        let (cmd, arg) = (
            w.next().unwrap_or(""),
            w.next().and_then(|a| a.parse().ok()),
        );
        let reply = match (cmd, arg) {
            ("quit", _) => break,
            ("crash", Some(i)) if (1..=n).contains(&i) => {
                c.crash(i);
                "ok".to_string()
            }
            ("restart", Some(i)) if (1..=n).contains(&i) => {
                c.restart(i);
                "ok".to_string()
            }
            ("link-down", Some(i)) if (1..=n).contains(&i) => {
                c.link_down(i);
                "ok".to_string()
            }
            ("link-up", Some(i)) if (1..=n).contains(&i) => {
                c.link_up(i);
                "ok".to_string()
            }
            ("partition", Some(s @ 1..=2)) => {
                c.partition(s as u8);
                "ok".to_string()
            }
            ("heal", Some(s @ 1..=2)) => {
                c.heal(s as u8);
                "ok".to_string()
            }
            _ => format!(
                "error: unknown command {line:?}: use crash|restart|link-down|link-up I, partition|heal 1|2, quit"
            ),
        };
        let _ = writeln!(out, "{reply}");
        let _ = out.flush();
    }
}
