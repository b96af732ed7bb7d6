//! Docker's multiplexed stdout/stderr stream.
//!
//! Frames are `[stream: u8][0, 0, 0][len: u32 BE][payload]`, stream 1 =
//! stdout, 2 = stderr (0 = stdin, written to stdout; 3 = daemon error).
//! If the first bytes do not look like a frame header the stream is
//! treated as raw (TTY) output and copied to stdout unchanged.

use std::io::Write;

use anyhow::{Result, anyhow};
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;

use crate::client::Resp;

/// Where a chunk of output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
    /// Daemon-side error (stream id 3).
    SysErr,
}

/// Incremental demultiplexer.
#[derive(Debug, Default)]
pub struct Demuxer {
    buf: Vec<u8>,
    /// `Some(true)` once the stream was detected as raw (not multiplexed).
    raw: Option<bool>,
}

impl Demuxer {
    /// A demuxer; `tty = true` forces raw mode.
    pub fn new(tty: bool) -> Self {
        Self {
            buf: Vec::new(),
            raw: if tty { Some(true) } else { None },
        }
    }

    /// Feeds bytes, returning every complete frame.
    pub fn push(&mut self, data: &[u8]) -> Vec<(Kind, Vec<u8>)> {
        let mut out = Vec::new();
        if self.raw == Some(true) {
            if !data.is_empty() {
                out.push((Kind::Stdout, data.to_vec()));
            }
            return out;
        }
        self.buf.extend_from_slice(data);
        if self.raw.is_none() && !self.buf.is_empty() {
            let looks_muxed = self.buf[0] <= 3 && self.buf.iter().skip(1).take(3).all(|b| *b == 0);
            if !looks_muxed {
                self.raw = Some(true);
                out.push((Kind::Stdout, std::mem::take(&mut self.buf)));
                return out;
            }
            if self.buf.len() >= 4 {
                self.raw = Some(false);
            }
        }
        let mut pos = 0;
        while self.buf.len() - pos >= 8 {
            let h = &self.buf[pos..pos + 8];
            let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
            if self.buf.len() - pos - 8 < len {
                break;
            }
            let kind = match h[0] {
                2 => Kind::Stderr,
                3 => Kind::SysErr,
                _ => Kind::Stdout,
            };
            out.push((kind, self.buf[pos + 8..pos + 8 + len].to_vec()));
            pos += 8 + len;
        }
        self.buf.drain(..pos);
        out
    }

    /// Bytes of an incomplete frame left at the end of the stream.
    #[cfg(test)]
    pub fn leftover(&self) -> usize {
        self.buf.len()
    }
}

/// Writes demuxed frames to stdout/stderr; a stream-3 frame becomes an error.
fn emit(frames: Vec<(Kind, Vec<u8>)>) -> Result<()> {
    for (kind, data) in frames {
        match kind {
            Kind::Stdout => {
                let mut o = std::io::stdout().lock();
                let _ = o.write_all(&data);
                let _ = o.flush();
            }
            Kind::Stderr => {
                let mut e = std::io::stderr().lock();
                let _ = e.write_all(&data);
                let _ = e.flush();
            }
            Kind::SysErr => {
                return Err(anyhow!("{}", String::from_utf8_lossy(&data).trim_end()));
            }
        }
    }
    Ok(())
}

/// Copies a multiplexed HTTP body to stdout/stderr until it ends.
pub async fn pump_body(mut resp: Resp, tty: bool) -> Result<()> {
    let mut demux = Demuxer::new(tty);
    while let Some(chunk) = resp.next_chunk().await? {
        emit(demux.push(&chunk))?;
    }
    Ok(())
}

/// The terminal in raw mode (no echo, no line editing, no signals from keys) while
/// alive; the previous settings come back on drop, also on error paths.
pub struct RawTerminal {
    saved: Option<nix::sys::termios::Termios>,
}

impl RawTerminal {
    /// Switches stdin's terminal to raw mode; does nothing if stdin is not a terminal.
    pub fn enable() -> Self {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let Ok(saved) = tcgetattr(&stdin) else {
            return RawTerminal { saved: None };
        };
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        if tcsetattr(&stdin, SetArg::TCSANOW, &raw).is_err() {
            return RawTerminal { saved: None };
        }
        RawTerminal { saved: Some(saved) }
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                t,
            );
        }
    }
}

/// True if stdin is a terminal.
pub fn stdin_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal()
}

/// The size of the terminal on stdout (else stdin) as `(rows, cols)`, if any.
pub fn terminal_size() -> Option<(u16, u16)> {
    for fd in [1, 0] {
        let mut ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes a `winsize` through the pointer, valid for the call.
        let r = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
        if r == 0 && ws.ws_row > 0 && ws.ws_col > 0 {
            return Some((ws.ws_row, ws.ws_col));
        }
    }
    None
}

/// How an interactive session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The container's (or process's) output ended.
    Closed,
    /// The user typed the detach keys (ctrl-p ctrl-q); the container keeps running.
    Detached,
}

/// ctrl-p, ctrl-q: Docker's default detach keys.
pub const DEFAULT_DETACH_KEYS: &[u8] = &[0x10, 0x11];

/// Parses a `--detach-keys` value as docker does: comma-separated keys, each a
/// single character or `ctrl-<c>` with `<c>` one of `a`-`z`, `@`, `[`, `\`, `]`,
/// `^`, `_` (e.g. `ctrl-p,ctrl-q`, `ctrl-a,x`).
pub fn parse_detach_keys(spec: &str) -> Result<Vec<u8>> {
    let bad = |key: &str| {
        anyhow!(
            "invalid detach keys {spec:?}: unknown key {key:?}; give comma-separated keys, each a single character or ctrl-<a-z, @, [, \\, ], ^, _> (e.g. ctrl-p,ctrl-q)"
        )
    };
    let mut out = Vec::new();
    for key in spec.split(',') {
        let b = key.as_bytes();
        if b.len() == 1 {
            out.push(b[0]);
            continue;
        }
        let lower = key.to_ascii_lowercase();
        let Some(c) = lower.strip_prefix("ctrl-") else {
            return Err(bad(key));
        };
        let code = match c.as_bytes() {
            [c @ b'a'..=b'z'] => c - b'a' + 1,
            [b'@'] => 0,
            [c @ (b'[' | b'\\' | b']' | b'^' | b'_')] => c - b'[' + 27,
            _ => return Err(bad(key)),
        };
        out.push(code);
    }
    Ok(out)
}

/// Strips the detach sequence `keys` out of typed input. `held` counts the keys of
/// the sequence matched at the end of the previous chunk (held back until the
/// sequence completes or breaks). Returns the bytes to send and whether the
/// sequence was completed (the bytes after it are dropped).
pub fn scan_detach(keys: &[u8], held: &mut usize, chunk: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(chunk.len() + keys.len());
    if keys.is_empty() {
        out.extend_from_slice(chunk);
        return (out, false);
    }
    for &b in chunk {
        if b != keys[*held] && *held > 0 {
            // The sequence broke: what was held back is ordinary input.
            out.extend_from_slice(&keys[..*held]);
            *held = 0;
        }
        if b == keys[*held] {
            *held += 1;
            if *held == keys.len() {
                *held = 0;
                return (out, true);
            }
        } else {
            out.push(b);
        }
    }
    (out, false)
}

/// Copies an attach/exec session both ways: stdin to the container (if `stdin`;
/// end of input half-closes the connection) and its output to stdout/stderr (raw
/// with a terminal, demultiplexed otherwise) until the output ends. With a
/// terminal and stdin, the `detach_keys` sequence (docker's default:
/// [`DEFAULT_DETACH_KEYS`]) detaches.
pub async fn pump_interactive(
    resp: Resp,
    tty: bool,
    stdin: bool,
    detach_keys: &[u8],
) -> Result<Ended> {
    use tokio::io::AsyncWriteExt;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        pump_body(resp, tty).await?;
        return Ok(Ended::Closed);
    }
    let (inner, sender) = resp.into_parts();
    let upgraded = hyper::upgrade::on(inner)
        .await
        .map_err(|e| anyhow!("error upgrading connection: {e}"))?;
    let (mut rd, mut wr) = tokio::io::split(TokioIo::new(upgraded));
    let (det_tx, det_rx) = tokio::sync::oneshot::channel::<()>();
    let detect = tty && stdin;
    let keys = detach_keys.to_vec();
    let input = stdin.then(|| {
        // A plain thread: a blocking read of stdin cannot be cancelled, and the
        // process exits when the session ends.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = vec![0u8; 16 * 1024];
            let mut inp = std::io::stdin().lock();
            let mut held = 0usize;
            loop {
                let n = match inp.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let (data, detached) = if detect {
                    scan_detach(&keys, &mut held, &buf[..n])
                } else {
                    (buf[..n].to_vec(), false)
                };
                if !data.is_empty() && tx.blocking_send(data).is_err() {
                    return;
                }
                if detached {
                    let _ = det_tx.send(());
                    return;
                }
            }
        });
        tokio::spawn(async move {
            while let Some(chunk) = rx.recv().await {
                if wr.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            let _ = wr.shutdown().await;
        })
    });
    // Resolves only on a detach (not when the input merely ends).
    let detached = async move {
        if det_rx.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(detached);
    let mut demux = Demuxer::new(tty);
    let mut buf = vec![0u8; 32 * 1024];
    let result = loop {
        let n = tokio::select! {
            r = rd.read(&mut buf) => match r {
                Ok(0) => break Ok(Ended::Closed),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break Ok(Ended::Closed),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break Ok(Ended::Closed),
                Err(e) => break Err(anyhow!("error reading output stream: {e}")),
            },
            () = &mut detached => break Ok(Ended::Detached),
        };
        if let Err(e) = emit(demux.push(&buf[..n])) {
            break Err(e);
        }
    };
    if let Some(t) = input {
        t.abort();
    }
    drop(sender);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![kind, 0, 0, 0];
        v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn whole_frames() {
        let mut d = Demuxer::new(false);
        let mut data = frame(1, b"hello\n");
        data.extend(frame(2, b"oops\n"));
        data.extend(frame(1, b""));
        let out = d.push(&data);
        assert_eq!(
            out,
            vec![
                (Kind::Stdout, b"hello\n".to_vec()),
                (Kind::Stderr, b"oops\n".to_vec()),
                (Kind::Stdout, Vec::new()),
            ]
        );
        assert_eq!(d.leftover(), 0);
    }

    #[test]
    fn split_across_chunks_byte_by_byte() {
        let mut d = Demuxer::new(false);
        let mut data = frame(1, b"abc");
        data.extend(frame(2, b"defgh"));
        let mut out = Vec::new();
        for b in &data {
            out.extend(d.push(std::slice::from_ref(b)));
        }
        assert_eq!(
            out,
            vec![
                (Kind::Stdout, b"abc".to_vec()),
                (Kind::Stderr, b"defgh".to_vec())
            ]
        );
    }

    #[test]
    fn partial_frame_is_kept() {
        let mut d = Demuxer::new(false);
        let data = frame(1, b"abcdef");
        assert!(d.push(&data[..10]).is_empty());
        assert_eq!(d.leftover(), 10);
        assert_eq!(
            d.push(&data[10..]),
            vec![(Kind::Stdout, b"abcdef".to_vec())]
        );
    }

    #[test]
    fn stdin_and_syserr_streams() {
        let mut d = Demuxer::new(false);
        let mut data = frame(0, b"in");
        data.extend(frame(3, b"daemon failed"));
        assert_eq!(
            d.push(&data),
            vec![
                (Kind::Stdout, b"in".to_vec()),
                (Kind::SysErr, b"daemon failed".to_vec())
            ]
        );
        assert!(emit(vec![(Kind::SysErr, b"daemon failed\n".to_vec())]).is_err());
    }

    #[test]
    fn raw_stream_detected() {
        let mut d = Demuxer::new(false);
        assert_eq!(
            d.push(b"hi there"),
            vec![(Kind::Stdout, b"hi there".to_vec())]
        );
        assert_eq!(
            d.push(b"\x01more"),
            vec![(Kind::Stdout, b"\x01more".to_vec())]
        );
    }

    #[test]
    fn tty_forces_raw() {
        let mut d = Demuxer::new(true);
        let data = frame(1, b"x");
        assert_eq!(d.push(&data), vec![(Kind::Stdout, data.clone())]);
    }

    #[test]
    fn large_frame() {
        let payload = vec![b'z'; 100_000];
        let mut d = Demuxer::new(false);
        let data = frame(2, &payload);
        let mut out = Vec::new();
        for c in data.chunks(4096) {
            out.extend(d.push(c));
        }
        assert_eq!(out, vec![(Kind::Stderr, payload)]);
    }

    #[test]
    fn detach_sequence() {
        let k = DEFAULT_DETACH_KEYS;
        let mut held = 0;
        assert_eq!(
            scan_detach(k, &mut held, b"ab\x10\x11cd"),
            (b"ab".to_vec(), true)
        );
        let mut held = 0;
        assert_eq!(scan_detach(k, &mut held, b"a\x10"), (b"a".to_vec(), false));
        assert_eq!(held, 1);
        assert_eq!(scan_detach(k, &mut held, b"\x11"), (Vec::new(), true));
        let mut held = 0;
        assert_eq!(
            scan_detach(k, &mut held, b"\x10x\x11"),
            (b"\x10x\x11".to_vec(), false)
        );
        // A broken sequence that restarts: ctrl-p ctrl-p ctrl-q detaches after one ctrl-p.
        let mut held = 0;
        assert_eq!(
            scan_detach(k, &mut held, b"\x10\x10\x11"),
            (b"\x10".to_vec(), true)
        );
    }

    #[test]
    fn custom_detach_keys() {
        let k = parse_detach_keys("ctrl-a,x,ctrl-Z").expect("valid keys");
        assert_eq!(k, vec![1, b'x', 26]);
        let mut held = 0;
        assert_eq!(
            scan_detach(&k, &mut held, b"q\x01x"),
            (b"q".to_vec(), false)
        );
        assert_eq!(held, 2);
        assert_eq!(
            scan_detach(&k, &mut held, b"y"),
            (b"\x01xy".to_vec(), false)
        );
        assert_eq!(
            scan_detach(&k, &mut held, b"\x01x\x1azz"),
            (Vec::new(), true)
        );
        assert_eq!(
            parse_detach_keys("ctrl-p,ctrl-q").expect("valid"),
            DEFAULT_DETACH_KEYS
        );
        assert_eq!(
            parse_detach_keys("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_").expect("valid"),
            vec![0, 27, 28, 29, 30, 31]
        );
        for bad in ["", "ctrl-", "ctrl-1", "alt-x", "ab", "ctrl-p,,ctrl-q"] {
            let e = parse_detach_keys(bad).expect_err(bad);
            assert!(e.to_string().contains("invalid detach keys"), "{e}");
        }
    }
}
