//! The attach socket: how clients reach a running container's stdin, stdout,
//! stderr and terminal.
//!
//! The shim listens on `<state_dir>/attach.sock` (a Unix stream socket) for
//! the container's whole life, so attaching works across daemon restarts: the
//! shim owns the pseudo-terminal master (`Tty`) or the stdin pipe
//! (`OpenStdin`), not the daemon. A client connects and sends one JSON line,
//! an [`AttachRequest`]:
//!
//! * `{"stdin":true,"stdout":true,"stderr":true}`: the shim then sends the
//!   container's output — raw bytes with a terminal, Docker's multiplexed
//!   frames (`[1|2,0,0,0,len u32 BE]payload`) without — and copies what the
//!   client writes into the container's stdin. Half-closing the client's write
//!   side closes the container's stdin when the container has `StdinOnce`.
//!   The connection ends (EOF) when the container's output ends.
//!   With `"logs":true` the shim first sends what the container wrote so far
//!   (in the same form), then the live output.
//! * `{"resize":[rows,cols]}`: sets the terminal's window size
//!   (`TIOCSWINSZ`, the foreground process group gets `SIGWINCH`); the shim
//!   answers `ok\n` or `error: ...\n` and closes.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::RuntimeError;
use crate::logs::{LineSplitter, Stream};
use crate::util::write_all;

/// File name of the attach socket inside the container's state directory.
pub const SOCKET_NAME: &str = "attach.sock";
/// How long the shim holds back output for the first client when the daemon
/// asked it to ([`crate::ContainerSpec::wait_attach`]).
const GATE: Duration = Duration::from_secs(5);
/// How long the shim waits for a client's request line.
const HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// The one line a client sends after connecting.
#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq, Eq)]
pub struct AttachRequest {
    /// Copy the client's bytes into the container's stdin.
    #[serde(default)]
    pub stdin: bool,
    /// Send the container's stdout (with a terminal: the terminal's output).
    #[serde(default)]
    pub stdout: bool,
    /// Send the container's stderr (no effect with a terminal).
    #[serde(default)]
    pub stderr: bool,
    /// First replay what the container wrote so far (its log and the line it is in
    /// the middle of), then go on live: nothing is lost or sent twice in between.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub logs: bool,
    /// Instead of attaching: set the terminal size to `[rows, cols]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize: Option<[u16; 2]>,
}

/// Path of the attach socket of the container whose state dir is `state_dir`.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_NAME)
}

/// Connects to the container's attach socket and sends `req`. Long state-dir
/// paths (beyond `sun_path`'s 108 bytes) are reached through an `O_PATH`
/// handle on the directory. Must be called within a tokio runtime.
pub async fn connect(
    state_dir: &Path,
    req: &AttachRequest,
) -> Result<tokio::net::UnixStream, RuntimeError> {
    use tokio::io::AsyncWriteExt;
    let path = socket_path(state_dir);
    let io = |e| RuntimeError::io("connect to attach socket", &path)(e);
    let mut stream = if path.as_os_str().len() < 100 {
        tokio::net::UnixStream::connect(&path).await.map_err(io)?
    } else {
        let dir = std::fs::File::open(state_dir).map_err(io)?;
        let short = format!("/proc/self/fd/{}/{SOCKET_NAME}", dir.as_raw_fd());
        let s = tokio::net::UnixStream::connect(&short).await.map_err(io)?;
        drop(dir);
        s
    };
    let mut line = serde_json::to_vec(req).map_err(|source| RuntimeError::Json {
        path: path.clone(),
        source,
    })?;
    line.push(b'\n');
    stream.write_all(&line).await.map_err(io)?;
    Ok(stream)
}

/// Sets the container's terminal size through its attach socket.
pub async fn resize(state_dir: &Path, rows: u16, cols: u16) -> Result<(), RuntimeError> {
    use tokio::io::AsyncReadExt;
    let req = AttachRequest {
        resize: Some([rows, cols]),
        ..Default::default()
    };
    let mut s = connect(state_dir, &req).await?;
    let mut answer = String::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut answer)).await;
    match read {
        Ok(Ok(_)) if answer.trim() == "ok" => Ok(()),
        Ok(Ok(_)) => Err(RuntimeError::InvalidSpec(format!(
            "resize: {}",
            answer.trim().trim_start_matches("error: ")
        ))),
        Ok(Err(e)) => Err(RuntimeError::io("resize through", socket_path(state_dir))(
            e,
        )),
        Err(_) => Err(RuntimeError::InvalidSpec(
            "resize: the container's shim did not answer".into(),
        )),
    }
}

/// Sets the window size of the terminal behind `fd` (master or slave side).
pub(crate) fn set_winsize(fd: RawFd, rows: u16, cols: u16) -> Result<(), nix::Error> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a `winsize` from the pointer, which is valid for the call.
    let r = unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
    if r < 0 {
        return Err(nix::Error::last());
    }
    Ok(())
}

/// Binds the attach socket in `state_dir` (through a relative path, so long
/// directories work), replacing a stale one.
pub(crate) fn bind(state_dir: &Path) -> Result<UnixListener, RuntimeError> {
    let _ = std::fs::remove_file(socket_path(state_dir));
    std::env::set_current_dir(state_dir).map_err(RuntimeError::io("chdir", state_dir))?;
    let l = UnixListener::bind(SOCKET_NAME);
    let _ = std::env::set_current_dir("/");
    let l = l.map_err(RuntimeError::io(
        "bind attach socket",
        socket_path(state_dir),
    ))?;
    l.set_nonblocking(true).map_err(RuntimeError::io(
        "configure attach socket",
        socket_path(state_dir),
    ))?;
    Ok(l)
}

/// Where the container's output comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Out,
    Err,
    Tty,
}

struct Source {
    fd: Option<OwnedFd>,
    kind: Kind,
    splitter: LineSplitter,
}

struct Client {
    stream: UnixStream,
    req: AttachRequest,
    /// Still reading the client's input.
    reading: bool,
}

/// Everything the shim's I/O loop works with.
pub(crate) struct ShimIo {
    /// Init's and (without a terminal) the main process's stdout pipe.
    pub out_r: OwnedFd,
    /// The same for stderr.
    pub err_r: OwnedFd,
    /// The terminal's master side (`Tty`).
    pub master: Option<OwnedFd>,
    /// The write end of the main process's stdin pipe (`OpenStdin`, no terminal).
    pub stdin_w: Option<OwnedFd>,
    /// The attach socket (none if it could not be bound).
    pub listener: Option<UnixListener>,
    /// Close the container's stdin when an attached client closes its input.
    pub stdin_once: bool,
    /// Hold output back until the first client attaches (at most [`GATE`]).
    pub wait_attach: bool,
}

fn frame(kind: Kind, data: &[u8]) -> Vec<u8> {
    let id = if kind == Kind::Err { 2 } else { 1 };
    let mut v = Vec::with_capacity(8 + data.len());
    v.extend_from_slice(&[id, 0, 0, 0]);
    v.extend_from_slice(&(data.len() as u32).to_be_bytes());
    v.extend_from_slice(data);
    v
}

fn set_nonblocking(fd: &OwnedFd) {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    if let Ok(flags) = fcntl(fd, FcntlArg::F_GETFL) {
        let _ = fcntl(
            fd,
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
        );
    }
}

/// Reads the request line of a freshly accepted client.
fn read_request(stream: &mut UnixStream) -> Option<AttachRequest> {
    use std::io::Read;
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(HEADER_TIMEOUT)).ok()?;
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while line.len() < 4096 {
        match stream.read(&mut b) {
            Ok(1) if b[0] == b'\n' => break,
            Ok(1) => line.push(b[0]),
            _ => return None,
        }
    }
    stream.set_read_timeout(None).ok()?;
    serde_json::from_slice(&line).ok()
}

/// How long one client may stall the output before it is dropped: the shim's loop
/// serves the container's output, its log and every other client, so a client that
/// stops reading must not hold it for long.
const SEND_STALL: std::time::Duration = std::time::Duration::from_secs(5);

/// Sends `data` to a client; false if the client is gone or stalled longer than
/// [`SEND_STALL`] (it is then dropped; the container and other clients go on).
fn send(stream: &UnixStream, data: &[u8]) -> bool {
    let deadline = std::time::Instant::now() + SEND_STALL;
    let mut data = data;
    while !data.is_empty() {
        match nix::sys::socket::send(
            stream.as_raw_fd(),
            data,
            nix::sys::socket::MsgFlags::MSG_NOSIGNAL | nix::sys::socket::MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(0) => return false,
            Ok(n) => data = &data[n..],
            Err(nix::Error::EINTR) => {}
            Err(nix::Error::EAGAIN) => {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    return false;
                }
                let mut pfd = libc::pollfd {
                    fd: stream.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: one valid pollfd for the duration of the call.
                unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
            }
            Err(_) => return false,
        }
    }
    true
}

/// Sends a new client what the container wrote before it came: the log, then the
/// partial lines not logged yet. Runs inside the shim's loop, so no output can fall
/// between the replay and the live stream. False if the client is gone.
fn replay(
    stream: &UnixStream,
    log: &std::fs::File,
    sources: &[Source],
    tty: bool,
    req: &AttachRequest,
) -> bool {
    use std::io::BufRead;
    const CHUNK: usize = 64 * 1024;
    let wanted = |kind: Kind| match kind {
        Kind::Err if !tty => req.stderr,
        _ => req.stdout,
    };
    let mut out: Vec<u8> = Vec::new();
    let add = |kind: Kind, data: &[u8], out: &mut Vec<u8>| {
        if !data.is_empty() && wanted(kind) {
            if tty {
                out.extend_from_slice(data);
            } else {
                out.extend_from_slice(&frame(kind, data));
            }
        }
    };
    // The log is opened for appending only: read it through a second handle.
    if let Ok(f) = std::fs::File::open(format!("/proc/self/fd/{}", log.as_raw_fd())) {
        let mut rd = std::io::BufReader::new(f);
        let mut line = Vec::new();
        loop {
            line.clear();
            match rd.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if let Some(l) = crate::logs::LogLine::parse(&line) {
                let kind = match (tty, l.stream) {
                    (true, _) => Kind::Tty,
                    (false, Stream::Stdout) => Kind::Out,
                    (false, Stream::Stderr) => Kind::Err,
                };
                add(kind, &l.log, &mut out);
            }
            if out.len() >= CHUNK {
                if !send(stream, &out) {
                    return false;
                }
                out.clear();
            }
        }
    }
    for s in sources {
        add(s.kind, s.splitter.pending(), &mut out);
    }
    out.is_empty() || send(stream, &out)
}

/// Copies the container's output into the json-file log and to attached
/// clients, and clients' input into the container, until every output source
/// reaches EOF (the container and everything holding its stdio is gone).
pub(crate) fn run_loop(io: ShimIo, log: &std::fs::File) {
    let ShimIo {
        out_r,
        err_r,
        master,
        stdin_w,
        listener,
        stdin_once,
        wait_attach,
    } = io;
    let tty = master.is_some();
    // The container's stdin: a dup of the master (so dropping it on StdinOnce leaves
    // the terminal alone) or the pipe.
    let mut stdin_fd: Option<OwnedFd> = match &master {
        Some(m) => m.try_clone().ok(),
        None => stdin_w,
    };
    if let Some(fd) = &stdin_fd {
        set_nonblocking(fd);
    }
    let mut sources = vec![
        Source {
            fd: Some(out_r),
            kind: Kind::Out,
            splitter: LineSplitter::new(Stream::Stdout),
        },
        Source {
            fd: Some(err_r),
            kind: Kind::Err,
            splitter: LineSplitter::new(Stream::Stderr),
        },
    ];
    if let Some(m) = master {
        sources.push(Source {
            fd: Some(m),
            kind: Kind::Tty,
            splitter: LineSplitter::new(Stream::Stdout),
        });
    }
    let mut clients: Vec<Client> = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut gate = wait_attach.then(|| Instant::now() + GATE);
    let mut buf = vec![0u8; 64 * 1024];

    loop {
        if sources.iter().all(|s| s.fd.is_none()) {
            break;
        }
        if gate.is_some_and(|g| Instant::now() >= g) {
            gate = None;
        }
        // What to poll, tagged with what it is.
        #[derive(Clone, Copy)]
        enum Tag {
            Listener,
            Source(usize),
            Client(usize),
            Stdin,
        }
        let mut fds: Vec<libc::pollfd> = Vec::new();
        let mut tags: Vec<Tag> = Vec::new();
        let mut add = |fd: RawFd, events: i16, tag: Tag| {
            fds.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            });
            tags.push(tag);
        };
        if let Some(l) = &listener {
            add(l.as_raw_fd(), libc::POLLIN, Tag::Listener);
        }
        if gate.is_none() {
            for (i, s) in sources.iter().enumerate() {
                if let Some(fd) = &s.fd {
                    add(fd.as_raw_fd(), libc::POLLIN, Tag::Source(i));
                }
            }
        }
        if pending.is_empty() {
            for (i, c) in clients.iter().enumerate() {
                if c.reading {
                    add(c.stream.as_raw_fd(), libc::POLLIN, Tag::Client(i));
                }
            }
        } else if let Some(fd) = &stdin_fd {
            add(fd.as_raw_fd(), libc::POLLOUT, Tag::Stdin);
        }
        let timeout = match gate {
            Some(g) => i32::try_from(
                g.saturating_duration_since(Instant::now())
                    .as_millis()
                    .max(1),
            )
            .unwrap_or(i32::MAX),
            None => -1,
        };
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs for the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            if nix::Error::last() == nix::Error::EINTR {
                continue;
            }
            break;
        }
        let mut dead_clients: Vec<usize> = Vec::new();
        for (pfd, tag) in fds.iter().zip(tags.iter()) {
            if pfd.revents == 0 {
                continue;
            }
            match *tag {
                Tag::Listener => {
                    let Some(l) = &listener else { continue };
                    while let Ok((mut stream, _)) = l.accept() {
                        let Some(req) = read_request(&mut stream) else {
                            continue;
                        };
                        if let Some([rows, cols]) = req.resize {
                            let answer = match sources.iter().find(|s| s.kind == Kind::Tty) {
                                Some(Source { fd: Some(m), .. }) => {
                                    match set_winsize(m.as_raw_fd(), rows, cols) {
                                        Ok(()) => "ok\n".to_string(),
                                        Err(e) => format!("error: {e}\n"),
                                    }
                                }
                                _ => "error: the container has no terminal\n".to_string(),
                            };
                            let _ = send(&stream, answer.as_bytes());
                            continue;
                        }
                        if req.logs && !replay(&stream, log, &sources, tty, &req) {
                            continue;
                        }
                        gate = None;
                        clients.push(Client {
                            stream,
                            req,
                            reading: true,
                        });
                    }
                }
                Tag::Source(i) => {
                    let s = &mut sources[i];
                    let Some(fd) = &s.fd else { continue };
                    match nix::unistd::read(fd.as_fd(), &mut buf) {
                        Err(nix::Error::EINTR | nix::Error::EAGAIN) => {}
                        // EOF, or EIO from a terminal whose last slave closed.
                        Ok(0) | Err(_) => {
                            for line in s.splitter.finish() {
                                let _ = write_all(log.as_fd(), &line);
                            }
                            s.fd = None;
                        }
                        Ok(n) => {
                            let data = &buf[..n];
                            for line in s.splitter.push(data) {
                                // A failing log must not stall the container.
                                let _ = write_all(log.as_fd(), &line);
                            }
                            let kind = s.kind;
                            let framed = (!tty).then(|| frame(kind, data));
                            for (ci, c) in clients.iter().enumerate() {
                                let wanted = match kind {
                                    Kind::Err if !tty => c.req.stderr,
                                    _ => c.req.stdout,
                                };
                                if !wanted {
                                    continue;
                                }
                                let bytes = framed.as_deref().unwrap_or(data);
                                if !send(&c.stream, bytes) {
                                    dead_clients.push(ci);
                                }
                            }
                        }
                    }
                }
                Tag::Client(i) => {
                    let c = &mut clients[i];
                    match nix::unistd::read(c.stream.as_fd(), &mut buf) {
                        Ok(0) => {
                            c.reading = false;
                            if c.req.stdin && stdin_once && !tty {
                                stdin_fd = None;
                            }
                        }
                        Ok(n) => {
                            if c.req.stdin && stdin_fd.is_some() {
                                pending.extend_from_slice(&buf[..n]);
                            }
                        }
                        Err(nix::Error::EINTR | nix::Error::EAGAIN) => {}
                        Err(_) => dead_clients.push(i),
                    }
                }
                Tag::Stdin => {
                    let Some(fd) = &stdin_fd else { continue };
                    match nix::unistd::write(fd, &pending) {
                        Ok(n) => {
                            pending.drain(..n);
                        }
                        Err(nix::Error::EINTR | nix::Error::EAGAIN) => {}
                        Err(_) => {
                            pending.clear();
                            stdin_fd = None;
                        }
                    }
                }
            }
        }
        if stdin_fd.is_none() {
            pending.clear();
        }
        dead_clients.sort_unstable();
        dead_clients.dedup();
        for i in dead_clients.into_iter().rev() {
            clients.remove(i);
        }
    }
    drop(clients);
    drop(listener);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_wire_format() {
        let r = AttachRequest {
            stdin: true,
            stdout: true,
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap_or_default(),
            r#"{"stdin":true,"stdout":true,"stderr":false}"#
        );
        let r: AttachRequest = serde_json::from_str(r#"{"resize":[40,120]}"#)
            .unwrap_or_else(|_| AttachRequest::default());
        assert_eq!(r.resize, Some([40, 120]));
    }

    #[test]
    fn frames() {
        assert_eq!(frame(Kind::Err, b"x"), vec![2, 0, 0, 0, 0, 0, 0, 1, b'x']);
        assert_eq!(frame(Kind::Out, b""), vec![1, 0, 0, 0, 0, 0, 0, 0]);
    }
}
