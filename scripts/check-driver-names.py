#!/usr/bin/env python3
"""Fails when code outside the drivers decides by a driver's name.

What a driver can do is its `Capabilities` and its `Driver` methods
(crates/model/src/driver.rs): the controller asks those, and never compares a
network's driver with "bridge", "host", "macvlan", ... (DESIGN.md, Layers). This
scans every crate except `crates/drivers` (the drivers themselves) for a comparison
or a `match` on a driver name; `#[cfg(test)]` modules and tests/ are not scanned.

Allowed, listed below with the reason: a configuration parser that turns a name
into the driver to build (the registry's job for the CNI plugin, which has no
registry of its own).
"""
import pathlib
import re
import sys

NAMES = r'"(?:bridge|host|null|overlay|macvlan|ipvlan|remote)"'
# A network's driver: the `.driver` field or a `driver_name` binding.
DRIVER = r'(?:\.driver|\bdriver_name)\b(?:\.as_str\(\)|\.as_deref\(\)(?:\.unwrap_or\([^)]*\))?)?'
PATTERNS = [
    re.compile(DRIVER + r'\s*[!=]=\s*' + NAMES),
    re.compile(NAMES + r'\s*[!=]=\s*' + DRIVER),
    re.compile(r'matches!\(\s*' + DRIVER + r'\s*,\s*' + NAMES),
    re.compile(r'\bmatch\s+[\w.]*' + DRIVER + r'\s*\{'),
]
ALLOWED = {
    # netloom-cni's config decoder: "type"/"driver" names which driver to build.
    ("crates/cni/src/attach.rs", "match conf.driver.as_deref().unwrap_or(\"bridge\") {"),
}


def scan(path: pathlib.Path, root: pathlib.Path):
    rel = str(path.relative_to(root))
    for no, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip().startswith("#[cfg(test)]"):
            return
        if line.strip().startswith("//"):
            continue
        if any(p.search(line) for p in PATTERNS) and (rel, line.strip()) not in ALLOWED:
            yield f"{rel}:{no}: {line.strip()}"


def main() -> int:
    root = pathlib.Path(__file__).resolve().parent.parent
    found = []
    for path in sorted((root / "crates").rglob("*.rs")):
        parts = path.relative_to(root).parts
        if parts[1] == "drivers" or "tests" in parts or path.name == "tests.rs":
            continue
        found.extend(scan(path, root))
    if found:
        print("decisions by driver name outside crates/drivers (ask the driver's "
              "Capabilities or a Driver method instead):", file=sys.stderr)
        for f in found:
            print("  " + f, file=sys.stderr)
        return 1
    print("check-driver-names: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
