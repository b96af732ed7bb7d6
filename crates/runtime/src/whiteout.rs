//! Layer semantics on top of the safe unpacker of `image.rs`: OCI whiteouts, and
//! symlinks among an entry's parents resolved inside the root as a chroot would.
//! <https://github.com/opencontainers/image-spec/blob/main/layer.md#whiteouts>

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::image::remove_existing;

/// Prefix of whiteout entries.
pub(crate) const WHITEOUT: &str = ".wh.";
/// The opaque-directory marker.
pub(crate) const OPAQUE: &str = ".wh..wh..opq";

/// Resolves the parent directories of `rel` inside `dest` as a chroot would, for
/// layers (a later layer may write `bin/x` over a lower layer's `bin -> usr/bin`, as
/// Docker's unpacker allows): a symlink among them is followed with `dest` as its root
/// (an absolute target starts at `dest`, `..` never climbs above it), 40 links at
/// most; with `create`, missing directories are made. Returns `rel` with its parents
/// resolved (the last component is never followed).
pub(crate) fn resolve_parents(dest: &Path, rel: &Path, create: bool) -> Result<PathBuf, String> {
    use std::ffi::OsString;
    let mut comps: Vec<OsString> = rel.components().map(|c| c.as_os_str().to_owned()).collect();
    let Some(last) = comps.pop() else {
        return Ok(PathBuf::new());
    };
    let mut queue: std::collections::VecDeque<OsString> = comps.into();
    let mut cur = PathBuf::new();
    let mut links = 0;
    while let Some(c) = queue.pop_front() {
        if c == ".." {
            cur.pop();
            continue;
        }
        if c == "." || c.is_empty() {
            continue;
        }
        let next = cur.join(&c);
        let full = dest.join(&next);
        match fs::symlink_metadata(&full) {
            Ok(md) if md.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    return Err(format!(
                        "too many levels of symbolic links at {}",
                        next.display()
                    ));
                }
                let t = fs::read_link(&full)
                    .map_err(|e| format!("read link {}: {e}", next.display()))?;
                if t.is_absolute() {
                    cur = PathBuf::new();
                }
                let tc: Vec<OsString> = t
                    .components()
                    .filter_map(|c| match c {
                        Component::Normal(n) => Some(n.to_owned()),
                        Component::ParentDir => Some(OsString::from("..")),
                        _ => None,
                    })
                    .collect();
                for x in tc.into_iter().rev() {
                    queue.push_front(x);
                }
            }
            Ok(md) if md.is_dir() => cur = next,
            Ok(_) => return Err(format!("parent {} is not a directory", next.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                fs::create_dir(&full).map_err(|e| format!("create {}: {e}", next.display()))?;
                cur = next;
            }
            Err(e) => return Err(format!("stat {}: {e}", next.display())),
        }
    }
    Ok(cur.join(last))
}

/// Handles a whiteout entry of a layer (`.wh.NAME` or the opaque marker). `written`
/// holds what this layer wrote so far, which a whiteout of the same layer leaves alone.
pub(crate) fn whiteout(
    dest: &Path,
    rel: &Path,
    name: &str,
    written: &std::collections::HashSet<PathBuf>,
) -> Result<(), String> {
    let rel = resolve_parents(dest, rel, true)?;
    let parent = rel.parent().unwrap_or(Path::new(""));
    if !parent.as_os_str().is_empty() {
        let pd = dest.join(parent);
        match fs::symlink_metadata(&pd) {
            Ok(md) if md.is_dir() => {}
            Ok(_) => {
                return Err(format!(
                    "whiteout in {} which is not a directory",
                    parent.display()
                ));
            }
            Err(_) => fs::create_dir(&pd).map_err(|e| format!("create {}: {e}", pd.display()))?,
        }
    }
    if name == OPAQUE {
        let pd = dest.join(parent);
        let rd = fs::read_dir(&pd).map_err(|e| format!("read {}: {e}", pd.display()))?;
        for e in rd.flatten() {
            let child = parent.join(e.file_name());
            if !written.contains(&child) {
                remove_existing(&e.path())
                    .map_err(|e| format!("remove {}: {e}", child.display()))?;
            }
        }
        return Ok(());
    }
    let Some(target) = name.strip_prefix(WHITEOUT) else {
        return Ok(());
    };
    if target.is_empty() || target == "." || target == ".." || target.contains('/') {
        return Err(format!("invalid whiteout name {name:?}"));
    }
    let t = parent.join(target);
    if !written.contains(&t) {
        remove_existing(&dest.join(&t)).map_err(|e| format!("remove {}: {e}", t.display()))?;
    }
    Ok(())
}
