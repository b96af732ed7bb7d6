//! The crate's single error type.

use std::path::PathBuf;

/// Everything that can go wrong in the runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// A filesystem operation on `path` failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done ("create directory", "open", ...).
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A system call failed.
    #[error("{op} {what}")]
    Sys {
        /// The system call or operation.
        op: &'static str,
        /// The object it was applied to (path, pid, namespace).
        what: String,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// The container spec is unusable.
    #[error("invalid container spec: {0}")]
    InvalidSpec(String),
    /// Encoding or decoding a JSON state file failed.
    #[error("json {path}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// The daemon's own executable could not be located.
    #[error("locate own executable")]
    SelfExe(#[source] std::io::Error),
    /// Spawning a helper process failed.
    #[error("spawn helper {exe}")]
    Spawn {
        /// The executable.
        exe: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The shim reported that the container could not be started.
    #[error("start container {id}: {message}")]
    Shim {
        /// The container id.
        id: String,
        /// The shim's message.
        message: String,
    },
    /// A tar entry was refused by the safe unpacker.
    #[error("unsafe tar entry {entry}: {reason}")]
    UnsafeEntry {
        /// The entry's path as given in the archive.
        entry: String,
        /// Why it was refused.
        reason: String,
    },
    /// The image is larger than allowed.
    #[error("image too large: more than {limit} bytes unpacked into {dest}")]
    TooLarge {
        /// The limit that was exceeded.
        limit: u64,
        /// The destination directory.
        dest: PathBuf,
    },
    /// Reading the tar stream failed.
    #[error("read tar archive into {dest}")]
    Tar {
        /// The destination directory.
        dest: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The unpack destination exists and is not empty.
    #[error("unpack destination {0} exists and is not empty")]
    DestNotEmpty(PathBuf),
    /// No such process (or it was reused).
    #[error("no such process {0}")]
    NoSuchProcess(i32),
    /// The OCI runtime refused or failed an operation.
    #[error(
        "OCI runtime {runtime} {op} failed for container {id}: {}",
        strip_prefix(runtime, op, message)
    )]
    Runtime {
        /// The runtime's name (`runc`).
        runtime: String,
        /// The operation (`run`, `kill`, `delete`).
        op: &'static str,
        /// The container.
        id: String,
        /// What the runtime said.
        message: String,
    },
    /// The container is not running (as far as the OCI runtime knows).
    #[error("container {0} is not running")]
    NotRunning(String),
    /// The signal number is not valid.
    #[error("invalid signal {0}")]
    InvalidSignal(i32),
}

impl RuntimeError {
    /// Shorthand for [`RuntimeError::Io`].
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| RuntimeError::Io { op, path, source }
    }

    /// Shorthand for [`RuntimeError::Sys`].
    pub(crate) fn sys(op: &'static str, what: impl ToString) -> impl FnOnce(nix::Error) -> Self {
        let what = what.to_string();
        move |source| RuntimeError::Sys { op, what, source }
    }
}

/// The runtime's message without its own `runc run failed: ` prefix.
fn strip_prefix<'a>(runtime: &str, op: &str, message: &'a str) -> &'a str {
    message
        .strip_prefix(&format!("{runtime} {op} failed: "))
        .unwrap_or(message)
}

/// Renders an error with its whole `source()` chain on one line.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        s.push_str(": ");
        s.push_str(&e.to_string());
        cur = e.source();
    }
    s
}
