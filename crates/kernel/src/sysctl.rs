//! sysctls of the calling process's network namespace.

use std::path::PathBuf;

use crate::error::KernelError;

/// Writes `value` to `/proc/sys/<key with dots as slashes>` (e.g. `net.ipv4.ip_forward`).
/// Net sysctls apply to the network namespace of the writing thread.
pub fn set(key: &str, value: &str) -> Result<(), KernelError> {
    let path = path_of(key);
    std::fs::write(&path, value).map_err(|source| KernelError::Io {
        op: "write sysctl",
        path,
        source,
    })
}

fn path_of(key: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(key.replace('.', "/"))
}

/// Writes a per-interface sysctl, `net.<family>.conf.<iface>.<key>` (interface names may
/// contain dots, so the path is built directly).
pub fn set_iface(family: &str, iface: &str, key: &str, value: &str) -> Result<(), KernelError> {
    let path = PathBuf::from("/proc/sys/net")
        .join(family)
        .join("conf")
        .join(iface)
        .join(key);
    std::fs::write(&path, value).map_err(|source| KernelError::Io {
        op: "write sysctl",
        path,
        source,
    })
}
