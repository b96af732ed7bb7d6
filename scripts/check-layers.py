#!/usr/bin/env python3
"""Fails when a crate depends on a netloom crate that DESIGN.md's layering forbids.

Reads `cargo metadata` (normal and build dependencies; dev-dependencies are the
tests' business) and compares each netloom crate's netloom dependencies with the
allowed set below, which is DESIGN.md's "Layout" table: `model` depends on nothing
of ours, `kernel` knows nothing of CNM, drivers know nothing of the API, and only
the daemon sees every layer.
"""
import json
import subprocess
import sys

ALLOWED = {
    "netloom-model": set(),
    "netloom-kernel": set(),
    "netloom-ipam": {"netloom-model"},
    "netloom-store": {"netloom-model"},
    "netloom-resolver": {"netloom-model", "netloom-kernel"},
    "netloom-runtime": {"netloom-model", "netloom-kernel"},
    "netloom-drivers": {"netloom-model", "netloom-kernel", "netloom-ipam"},
    "netloom-cluster": {"netloom-model", "netloom-store", "netloom-kernel"},
    "netloom-cni": {"netloom-model", "netloom-kernel", "netloom-ipam", "netloom-drivers"},
    "netloom-cli": {"netloom-model"},
    "netloom-daemon": {
        "netloom-model", "netloom-ipam", "netloom-store", "netloom-kernel",
        "netloom-drivers", "netloom-resolver", "netloom-runtime", "netloom-cluster",
    },
}
# Test harnesses may use any layer.
UNCHECKED = {"netloom-e2e"}


def main() -> int:
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--no-deps", "--offline"],
            check=True, capture_output=True, text=True,
        ).stdout
    )
    bad = []
    for pkg in meta["packages"]:
        name = pkg["name"]
        if name in UNCHECKED:
            continue
        if name not in ALLOWED:
            bad.append(f"{name}: a crate DESIGN.md's layout does not place; add it to "
                       f"scripts/check-layers.py with the layers it may use")
            continue
        for dep in pkg["dependencies"]:
            d = dep["name"]
            if not d.startswith("netloom-") or dep.get("kind") == "dev" or d == name:
                continue
            if d not in ALLOWED[name]:
                bad.append(f"{name} depends on {d}, which DESIGN.md's layering does not "
                           f"allow (allowed: {', '.join(sorted(ALLOWED[name])) or 'none'})")
    for b in bad:
        print(f"check-layers: {b}", file=sys.stderr)
    if not bad:
        print(f"check-layers: {len(meta['packages'])} crates follow DESIGN.md's layering")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
