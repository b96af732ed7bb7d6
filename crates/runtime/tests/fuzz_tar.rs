//! Bounded random-input test for `image::unpack`.
//!
//! Small valid archives built with the `tar` crate (files, dirs, symlinks,
//! hard links, long names, some gzipped) are mutated (bit flips, inserted,
//! deleted and overwritten bytes, truncation, rewritten header fields with
//! a fixed checksum) or replaced by hostile headers (`..`, absolute paths,
//! symlinks out of the tree followed by writes through them, devices,
//! fifos), then unpacked into a tempdir. Invariants: no panic, nothing is
//! written outside `dest` (a sentinel directory beside it stays empty and
//! nothing else appears next to it), and an error leaves `dest` removed.
//!
//! The seed is printed; `NETLOOM_FUZZ_SEED` replays a run and
//! `NETLOOM_FUZZ_ITERS` changes the iteration count. A panicking input is
//! saved to `$TMPDIR/netloom-fuzz-tar-<seed>-<iter>.tar`.

use netloom_runtime::image::unpack;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Instant;
use tar::{Builder, EntryType, Header};

const CI_ITERS: u64 = 2000;

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

const NAMES: &[&str] = &[
    "a",
    "b",
    "etc",
    "etc/passwd",
    "bin",
    "bin/sh",
    "x/y/z",
    "./c",
    "d/",
    "link",
    "link/evil",
    "lnk",
    "lnk/evil",
    "hl",
    "e/../f",
    "..",
    "../escape",
    "../sentinel/pwn",
    "/abs",
    "/tmp/x",
    "./",
    ".",
    "a/./b",
    "a//b",
];

/// Names, link targets and entry kinds for hostile entries; `@S@` is the
/// absolute path of the sentinel directory.
const TARGETS: &[&str] = &[
    "../sentinel",
    "@S@",
    "/",
    "..",
    "a",
    "etc/passwd",
    "../../",
    "/etc/passwd",
    "link",
    "nonexistent",
    "",
];

fn kind(r: &mut Rng) -> EntryType {
    *r.pick(&[
        EntryType::Regular,
        EntryType::Regular,
        EntryType::Directory,
        EntryType::Directory,
        EntryType::Symlink,
        EntryType::Symlink,
        EntryType::Link,
        EntryType::Char,
        EntryType::Block,
        EntryType::Fifo,
        EntryType::Continuous,
        EntryType::GNULongName,
        EntryType::XHeader,
        EntryType::GNUSparse,
        EntryType::new(b'Z'),
    ])
}

/// Appends an entry with a raw (unchecked) name and link name.
fn raw_entry(b: &mut Builder<Vec<u8>>, name: &str, kind: EntryType, link: &str, data: &[u8]) {
    let mut h = Header::new_gnu();
    {
        let old = h.as_old_mut();
        let n = name.len().min(old.name.len());
        old.name[..n].copy_from_slice(&name.as_bytes()[..n]);
        let l = link.len().min(old.linkname.len());
        old.linkname[..l].copy_from_slice(&link.as_bytes()[..l]);
    }
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(if kind == EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_cksum();
    b.append(&h, data).expect("append to Vec");
}

/// A small archive, mostly valid, sometimes with hostile entries.
fn build(r: &mut Rng, sentinel: &Path) -> Vec<u8> {
    let sentinel = sentinel.display().to_string();
    let mut b = Builder::new(Vec::new());
    let hostile = r.chance(30);
    for _ in 0..=r.below(6) {
        let name = r.pick(NAMES).to_string();
        let data: Vec<u8> = (0..r.below(2000)).map(|_| r.next() as u8).collect();
        if hostile {
            let k = kind(r);
            let link = r.pick(TARGETS).replace("@S@", &sentinel);
            let body: &[u8] = if k == EntryType::Regular { &data } else { &[] };
            raw_entry(&mut b, &name, k, &link, body);
            continue;
        }
        let name = name.trim_start_matches('/').replace("..", "p");
        let name = if name.is_empty() || name == "." {
            "q".to_string()
        } else {
            name
        };
        match r.below(6) {
            0 => {
                let mut h = Header::new_gnu();
                h.set_entry_type(EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                let _ = b.append_data(&mut h, &name, &[][..]);
            }
            1 => {
                let mut h = Header::new_gnu();
                h.set_entry_type(EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                let t = r.pick(TARGETS).replace("@S@", &sentinel);
                let _ = b.append_link(&mut h, &name, if t.is_empty() { "a" } else { &t });
            }
            2 => {
                let mut h = Header::new_gnu();
                h.set_entry_type(EntryType::Link);
                h.set_mode(0o644);
                h.set_size(0);
                let _ = b.append_link(&mut h, &name, *r.pick(&["a", "etc/passwd", "b"]));
            }
            3 => {
                // GNU long name.
                let long = format!(
                    "{}/{}",
                    "d".repeat(120),
                    "f".repeat(r.below(80) as usize + 1)
                );
                let mut h = Header::new_gnu();
                h.set_mode(0o644);
                h.set_size(data.len() as u64);
                let _ = b.append_data(&mut h, &long, &data[..]);
            }
            _ => {
                let mut h = Header::new_gnu();
                h.set_mode(*r.pick(&[0o644, 0o755, 0o4755, 0, 0o7777]));
                h.set_size(data.len() as u64);
                let _ = b.append_data(&mut h, &name, &data[..]);
            }
        }
    }
    b.into_inner().expect("finish")
}

/// Rewrites a header field of the block at `off` and fixes the checksum, so
/// the mutation gets past the checksum check.
fn mutate_header(r: &mut Rng, v: &mut [u8], off: usize) {
    if off + 512 > v.len() {
        return;
    }
    let h = &mut v[off..off + 512];
    // (offset, length) of name, mode, uid, gid, size, mtime, typeflag,
    // linkname, magic, prefix.
    let fields = [
        (0, 100),
        (100, 8),
        (108, 8),
        (116, 8),
        (124, 12),
        (136, 12),
        (156, 1),
        (157, 100),
        (257, 8),
        (345, 155),
    ];
    let (fo, fl) = *r.pick(&fields);
    for i in 0..fl {
        h[fo + i] = match r.below(5) {
            0 => b'0' + r.below(8) as u8,
            1 => 0,
            2 => *r.pick(b"./-7\xff "),
            _ => r.next() as u8,
        };
    }
    if r.chance(90) {
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
    }
}

fn mutate(r: &mut Rng, v: &mut Vec<u8>) {
    for _ in 0..=r.below(4) {
        if v.is_empty() {
            v.extend((0..r.below(1024)).map(|_| r.next() as u8));
            continue;
        }
        let len = v.len() as u64;
        match r.below(6) {
            0 => {
                let i = r.below(len) as usize;
                v[i] ^= 1 << r.below(8);
            }
            1 => {
                let i = r.below(len + 1) as usize;
                let n = r.below(64) as usize;
                let bytes: Vec<u8> = (0..n).map(|_| r.next() as u8).collect();
                v.splice(i..i, bytes);
            }
            2 => {
                let i = r.below(len) as usize;
                let n = (r.below(600) as usize).min(v.len() - i);
                v.drain(i..i + n);
            }
            3 => v.truncate(r.below(len) as usize),
            _ => {
                let blocks = len / 512;
                if blocks > 0 {
                    let off = (r.below(blocks) * 512) as usize;
                    mutate_header(r, v, off);
                }
            }
        }
    }
}

fn gzip(v: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(v).expect("gzip");
    e.finish().expect("gzip")
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn fuzz_unpack() {
    let seed = seed();
    let n = iters();
    eprintln!("fuzz_unpack: seed={seed} iters={n}");
    let mut r = Rng(seed);
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let sentinel = root.join("sentinel");
    fs::create_dir(&sentinel).expect("sentinel");
    let dest = root.join("dest");
    let start = Instant::now();
    let (mut oks, mut errs) = (0u64, 0u64);
    for i in 0..n {
        let mut data = build(&mut r, &sentinel);
        if r.chance(60) {
            mutate(&mut r, &mut data);
        }
        if r.chance(15) {
            data = gzip(&data);
            if r.chance(50) {
                mutate(&mut r, &mut data);
            }
        }
        let max = *r.pick(&[512, 4096, 1 << 14, 1 << 20, 1 << 20, 1 << 20]);
        let res = std::panic::catch_unwind(|| unpack(&data[..], &dest, max));
        let ctx = |what: &str| {
            let p = std::env::temp_dir().join(format!("netloom-fuzz-tar-{seed}-{i}.tar"));
            let _ = fs::write(&p, &data);
            format!(
                "{what}: seed={seed} iter={i} max={max} input saved to {}",
                p.display()
            )
        };
        let res = match res {
            Ok(res) => res,
            Err(_) => panic!("{}", ctx("unpack panicked")),
        };
        assert!(
            names(&sentinel).is_empty(),
            "{}: {:?}",
            ctx("sentinel written"),
            names(&sentinel)
        );
        let top = names(root);
        match &res {
            Ok(_) => {
                oks += 1;
                assert_eq!(top, ["dest", "sentinel"], "{}", ctx("unexpected entries"));
                // Make everything removable again (modes may be 0).
                fs::remove_dir_all(&dest).unwrap_or_else(|e| panic!("{}: {e}", ctx("cleanup")));
            }
            Err(e) => {
                errs += 1;
                assert_eq!(
                    top,
                    ["sentinel"],
                    "{} (error was: {e})",
                    ctx("dest left behind")
                );
            }
        }
    }
    eprintln!(
        "fuzz_unpack: {n} archives in {:?} (ok={oks} err={errs})",
        start.elapsed()
    );
}
