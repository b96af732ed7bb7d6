//! Docker's json-file log format: one JSON object per line,
//! `{"log":"text\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}`.
//!
//! The shim appends lines with one `write(2)` each on an `O_APPEND` file, so
//! readers see whole lines (a torn last line is kept back until complete).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::RuntimeError;

/// Longest log record: longer lines are split like Docker does (16 KiB).
pub const MAX_LINE: usize = 16 * 1024;
/// How often [`follow`] polls the file.
pub const FOLLOW_POLL: Duration = Duration::from_millis(50);

/// Which output stream a line came from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// The container's stdout.
    Stdout,
    /// The container's stderr.
    Stderr,
}

/// One json-file log record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// The stream it was written to.
    pub stream: Stream,
    /// Raw bytes including the trailing `\n` (absent on a partial line).
    /// Invalid UTF-8 is stored as U+FFFD, as Docker does.
    pub log: Vec<u8>,
    /// RFC3339 UTC time with nanoseconds.
    pub time: String,
}

#[derive(Serialize, Deserialize)]
struct Wire<'a> {
    log: std::borrow::Cow<'a, str>,
    stream: Stream,
    time: std::borrow::Cow<'a, str>,
}

impl LogLine {
    /// A line stamped with the current time.
    pub fn now(stream: Stream, log: Vec<u8>) -> Self {
        LogLine {
            stream,
            log,
            time: humantime::format_rfc3339_nanos(SystemTime::now()).to_string(),
        }
    }

    /// The JSON record, with the terminating newline.
    pub fn to_json_line(&self) -> Vec<u8> {
        let wire = Wire {
            log: String::from_utf8_lossy(&self.log),
            stream: self.stream,
            time: std::borrow::Cow::Borrowed(&self.time),
        };
        // Serializing strings and an enum cannot fail.
        let mut out = serde_json::to_vec(&wire).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Parses one record (with or without the newline); `None` if corrupt.
    pub fn parse(line: &[u8]) -> Option<LogLine> {
        let wire: Wire<'_> = serde_json::from_slice(line).ok()?;
        Some(LogLine {
            stream: wire.stream,
            log: wire.log.into_owned().into_bytes(),
            time: wire.time.into_owned(),
        })
    }
}

/// Turns a byte stream into encoded log records, one per line.
pub(crate) struct LineSplitter {
    stream: Stream,
    buf: Vec<u8>,
}

impl LineSplitter {
    pub(crate) fn new(stream: Stream) -> Self {
        LineSplitter {
            stream,
            buf: Vec::new(),
        }
    }

    /// Feeds bytes; returns the encoded records completed by them.
    pub(crate) fn push(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos + 1;
            out.push(LogLine::now(self.stream, self.buf[start..end].to_vec()).to_json_line());
            start = end;
        }
        while self.buf.len() - start >= MAX_LINE {
            let end = start + MAX_LINE;
            out.push(LogLine::now(self.stream, self.buf[start..end].to_vec()).to_json_line());
            start = end;
        }
        self.buf.drain(..start);
        out
    }

    /// The partial line not yet logged (no newline seen yet).
    pub(crate) fn pending(&self) -> &[u8] {
        &self.buf
    }

    /// Flushes a partial last line at EOF.
    pub(crate) fn finish(&mut self) -> Vec<Vec<u8>> {
        if self.buf.is_empty() {
            return Vec::new();
        }
        let rest = std::mem::take(&mut self.buf);
        vec![LogLine::now(self.stream, rest).to_json_line()]
    }
}

/// Splits complete lines off `buf` and parses them (corrupt ones skipped).
fn drain_lines(buf: &mut Vec<u8>) -> Vec<LogLine> {
    let mut out = Vec::new();
    let mut start = 0;
    while let Some(pos) = buf[start..].iter().position(|&b| b == b'\n') {
        if let Some(l) = LogLine::parse(&buf[start..start + pos]) {
            out.push(l);
        }
        start += pos + 1;
    }
    buf.drain(..start);
    out
}

/// Reads all lines currently in the file, skipping corrupt lines. A missing
/// file reads as empty.
pub fn read_all(path: &Path) -> Result<Vec<LogLine>, RuntimeError> {
    let mut data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RuntimeError::io("read log", path)(e)),
    };
    // A last line without newline is either torn or complete JSON: try it.
    if !data.ends_with(b"\n") {
        data.push(b'\n');
    }
    Ok(drain_lines(&mut data))
}

/// Tail-follows a json-file log.
///
/// Sends every line from the beginning of the file (or only the last `tail`
/// lines present at the start when `Some`), then polls for new lines every
/// [`FOLLOW_POLL`]. Once `stop` is `true` (or its sender is dropped) the file
/// is read to its end one last time and the channel closes. Also ends when
/// the receiver is dropped. A missing file is treated as empty until it
/// appears; a truncated file is re-read from the start. Must be called from
/// within a tokio runtime.
pub fn follow(
    path: PathBuf,
    tail: Option<usize>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::sync::mpsc::Receiver<LogLine> {
    follow_from(path, 0, tail, stop)
}

/// The size of the log file now (0 if it does not exist): pass it to [`follow_from`]
/// to stream only what is written from this moment on (`attach`).
pub fn current_end(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Like [`follow`], starting at byte `offset` (a line boundary, e.g. from
/// [`current_end`]) instead of the beginning of the file.
pub fn follow_from(
    path: PathBuf,
    offset: u64,
    tail: Option<usize>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::sync::mpsc::Receiver<LogLine> {
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    let start = offset;
    tokio::spawn(async move {
        let mut offset: u64 = start;
        let mut pending: Vec<u8> = Vec::new();
        let mut first = true;
        loop {
            let stopped = *stop.borrow() || stop.has_changed().is_err();
            match read_from(&path, offset).await {
                Ok((data, new_offset, truncated)) => {
                    if truncated {
                        pending.clear();
                    }
                    offset = new_offset;
                    pending.extend_from_slice(&data);
                }
                Err(e) => {
                    tracing::debug!(path = %path.display(), error = %e, "follow log read failed")
                }
            }
            let mut lines = drain_lines(&mut pending);
            if first {
                if let Some(n) = tail {
                    let skip = lines.len().saturating_sub(n);
                    lines.drain(..skip);
                }
                first = false;
            }
            for l in lines {
                if tx.send(l).await.is_err() {
                    return;
                }
            }
            if stopped {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(FOLLOW_POLL) => {}
                _ = stop.changed() => {}
                _ = tx.closed() => return,
            }
        }
    });
    rx
}

/// Reads `path` from `offset`; returns the data, the new offset and whether
/// the file was truncated (then data is from the start).
async fn read_from(path: &Path, offset: u64) -> std::io::Result<(Vec<u8>, u64, bool)> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut f = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((Vec::new(), offset, false));
        }
        Err(e) => return Err(e),
    };
    let len = f.metadata().await?.len();
    let (start, truncated) = if len < offset {
        (0, true)
    } else {
        (offset, false)
    };
    f.seek(std::io::SeekFrom::Start(start)).await?;
    let mut data = Vec::new();
    f.read_to_end(&mut data).await?;
    let end = start + data.len() as u64;
    Ok((data, end, truncated))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip() {
        let l = LogLine {
            stream: Stream::Stderr,
            log: b"hello \"w\"\tx\n".to_vec(),
            time: "2024-01-02T03:04:05.000000006Z".to_string(),
        };
        let enc = l.to_json_line();
        let s = String::from_utf8_lossy(&enc);
        assert_eq!(
            s,
            "{\"log\":\"hello \\\"w\\\"\\tx\\n\",\"stream\":\"stderr\",\"time\":\"2024-01-02T03:04:05.000000006Z\"}\n"
        );
        assert_eq!(LogLine::parse(&enc), Some(l));
    }

    #[test]
    fn splitter_lines_partial_and_long() {
        let mut s = LineSplitter::new(Stream::Stdout);
        let mut recs = s.push(b"a\nb");
        assert_eq!(recs.len(), 1);
        recs.extend(s.push(b"c\n"));
        recs.extend(s.push(&vec![b'x'; MAX_LINE + 3]));
        recs.extend(s.finish());
        let lines: Vec<LogLine> = recs.iter().filter_map(|r| LogLine::parse(r)).collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0].log, b"a\n");
        assert_eq!(lines[1].log, b"bc\n");
        assert_eq!(lines[2].log.len(), MAX_LINE);
        assert_eq!(lines[3].log, b"xxx");
        assert!(lines.iter().all(|l| l.stream == Stream::Stdout));
        assert!(lines[0].time.ends_with('Z'));
    }

    #[test]
    fn read_all_skips_corrupt() {
        let dir = tempfile::tempdir().ok();
        let Some(dir) = dir else { return };
        let p = dir.path().join("c.log");
        let mut data = LogLine::now(Stream::Stdout, b"one\n".to_vec()).to_json_line();
        data.extend_from_slice(b"{not json\n");
        data.extend(LogLine::now(Stream::Stderr, b"two\n".to_vec()).to_json_line());
        assert!(std::fs::write(&p, &data).is_ok());
        let lines = read_all(&p).unwrap_or_default();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].stream, Stream::Stderr);
        assert_eq!(lines[1].log, b"two\n");
        assert!(read_all(&dir.path().join("missing")).is_ok_and(|v| v.is_empty()));
    }

    #[tokio::test]
    async fn follow_tail_then_new_lines_then_stop() {
        let Ok(dir) = tempfile::tempdir() else { return };
        let p = dir.path().join("f.log");
        let mut data = Vec::new();
        for i in 0..5 {
            data.extend(LogLine::now(Stream::Stdout, format!("{i}\n").into_bytes()).to_json_line());
        }
        assert!(std::fs::write(&p, &data).is_ok());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut rx = follow(p.clone(), Some(2), stop_rx);
        let a = rx.recv().await.map(|l| l.log);
        let b = rx.recv().await.map(|l| l.log);
        assert_eq!(a.as_deref(), Some(&b"3\n"[..]));
        assert_eq!(b.as_deref(), Some(&b"4\n"[..]));
        let more = LogLine::now(Stream::Stderr, b"5\n".to_vec()).to_json_line();
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).ok();
        if let Some(f) = f.as_mut() {
            use std::io::Write;
            assert!(f.write_all(&more).is_ok());
        }
        let _ = stop_tx.send(true);
        let c = rx.recv().await;
        assert_eq!(c.map(|l| l.log).as_deref(), Some(&b"5\n"[..]));
        assert!(rx.recv().await.is_none());
    }
}
