#!/usr/bin/env python3
"""Checks that docs/api.yaml describes exactly the routes netloomd serves.

Extracts (METHOD, path) pairs from the `.route("/path", get(..).post(..))` calls in
crates/daemon/src/api/mod.rs and from the `paths` of docs/api.yaml (with PyYAML when
installed, else with a small indentation-based reader), and exits 1 listing every
difference. Path parameter names are not compared (`{id}` = `{name}`).

Usage: python3 scripts/check-openapi.py [--router FILE] [--spec FILE] [--list]
"""

import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
METHODS = ("get", "post", "put", "delete", "head", "patch", "options", "trace")

# Wildcard routes serve several documented paths: (route, METHOD) -> documented paths.
WILDCARDS = {
    ("/images/{*name}", "GET"): (
        "/images/{name}/json",
        "/images/{name}/history",
        "/images/{name}/get",
    ),
    ("/images/{*name}", "POST"): ("/images/{name}/tag",),
    ("/images/{*name}", "DELETE"): ("/images/{name}",),
}


class CheckError(Exception):
    pass


def strip_comments(src: str) -> str:
    """Removes // and /* */ comments outside string and char literals."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            out.append(src[i : j + 1])
            i = j + 1
        elif src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            i = n if j < 0 else j + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def matching_paren(s: str, open_at: int) -> int:
    """Index of the `)` matching the `(` at open_at (string-literal aware)."""
    depth, i = 0, open_at
    while i < len(s):
        c = s[i]
        if c == '"':
            i += 1
            while i < len(s) and s[i] != '"':
                i += 2 if s[i] == "\\" else 1
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise CheckError(f"unbalanced parentheses after offset {open_at}")


def top_level_calls(expr: str):
    """Names of the calls at nesting depth 0 of a method-router expression,
    e.g. `get(a::b).head(c)` -> ["get", "head"]."""
    names, i = [], 0
    while i < len(expr):
        m = re.compile(r"\s*\.?\s*([A-Za-z_][A-Za-z0-9_:]*)\s*\(").match(expr, i)
        if not m:
            if expr[i:].strip():
                raise CheckError(f"cannot parse method router {expr.strip()!r}")
            break
        names.append(m.group(1).split("::")[-1])
        i = matching_paren(expr, m.end() - 1) + 1
    return names


def router_routes(path: Path):
    """{(METHOD, path)} served by `pub fn router` in the given Rust file."""
    src = strip_comments(path.read_text())
    m = re.search(r"\bfn\s+router\s*\(", src)
    if not m:
        raise CheckError(f"{path}: no `fn router(` found")
    body_start = src.index("{", matching_paren(src, m.end() - 1))
    body = src[body_start : matching_paren(src, body_start) + 1]
    routes = set()
    for rm in re.finditer(r"\.route\s*\(", body):
        close = matching_paren(body, rm.end() - 1)
        args = body[rm.end() : close]
        am = re.match(r'\s*"((?:[^"\\]|\\.)*)"\s*,(.*)\Z', args, re.S)
        if not am:
            raise CheckError(f"cannot parse .route({args.strip()[:80]}...)")
        route, expr = am.group(1), am.group(2).strip().rstrip(",")
        calls = top_level_calls(expr)
        if not calls:
            raise CheckError(f"route {route}: no method in {expr!r}")
        for name in calls:
            if name in ("fallback", "layer", "route_layer", "with_state"):
                continue  # not a method of its own
            if name in ("any", "on", "on_service", "any_service", "get_service", "post_service"):
                raise CheckError(
                    f"route {route}: `{name}(..)` is not understood by {Path(__file__).name}; "
                    "teach it the methods this serves"
                )
            if name.endswith("_service"):
                name = name[: -len("_service")]
            if name not in METHODS:
                raise CheckError(f"route {route}: unknown method router call `{name}`")
            method = name.upper()
            if "{*" in route:
                doc = WILDCARDS.get((route, method))
                if doc is None:
                    raise CheckError(
                        f"wildcard route {method} {route}: add the paths it serves to "
                        f"WILDCARDS in {Path(__file__).name}"
                    )
                for d in doc:
                    routes.add((method, d))
            else:
                routes.add((method, route))
    if not routes:
        raise CheckError(f"{path}: no .route(...) calls found in fn router")
    return routes


def spec_paths_yaml(text: str):
    import yaml  # noqa: PLC0415 - optional dependency

    doc = yaml.safe_load(text)
    if not isinstance(doc, dict) or not str(doc.get("openapi", "")).startswith("3."):
        raise CheckError("docs/api.yaml: not an OpenAPI 3 document (missing `openapi: 3.x`)")
    problems, pairs = [], set()
    for p, item in (doc.get("paths") or {}).items():
        declared_path_params = {
            prm.get("name")
            for prm in (item.get("parameters") or [])
            if isinstance(prm, dict) and prm.get("in") == "path"
        }
        for k, op in item.items():
            if k not in METHODS:
                continue
            pairs.add((k.upper(), p))
            if not isinstance(op, dict) or not op.get("responses"):
                problems.append(f"{k.upper()} {p}: no responses")
                continue
            params = set(declared_path_params)
            refs = 0
            for prm in op.get("parameters") or []:
                if isinstance(prm, dict) and prm.get("in") == "path":
                    params.add(prm.get("name"))
                if isinstance(prm, dict) and "$ref" in prm:
                    refs += 1
            for item_prm in item.get("parameters") or []:
                if isinstance(item_prm, dict) and "$ref" in item_prm:
                    refs += 1
            wanted = set(re.findall(r"\{([^}]+)\}", p))
            if not refs and wanted - params:
                problems.append(f"{k.upper()} {p}: path parameters {sorted(wanted - params)} undeclared")
    return pairs, problems


def spec_paths_plain(text: str):
    """Reads `paths:` without PyYAML: path keys one indent below `paths:`, method keys
    one indent below those (block style, as docs/api.yaml is written)."""
    pairs, in_paths, path_indent, cur, method_indent = set(), False, None, None, None
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        key_m = re.match(r"""\s*(?:"([^"]+)"|'([^']+)'|([^\s:][^:]*?))\s*:(\s|$)""", line)
        key = next((g for g in key_m.groups()[:3] if g), None) if key_m else None
        if indent == 0:
            in_paths = key == "paths"
            path_indent = cur = method_indent = None
            continue
        if not in_paths or key is None:
            continue
        if path_indent is None:
            path_indent = indent
        if indent == path_indent:
            cur, method_indent = key, None
        elif cur is not None and indent > path_indent:
            if method_indent is None:
                method_indent = indent
            if indent == method_indent and key in METHODS:
                pairs.add((key.upper(), cur))
    return pairs, []


def spec_paths(path: Path):
    text = path.read_text()
    try:
        import yaml  # noqa: F401, PLC0415
    except ImportError:
        return spec_paths_plain(text)
    return spec_paths_yaml(text)


def norm(p: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", p)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--router", default=REPO / "crates/daemon/src/api/mod.rs", type=Path)
    ap.add_argument("--spec", default=REPO / "docs/api.yaml", type=Path)
    ap.add_argument("--list", action="store_true", help="print the routes found")
    a = ap.parse_args()
    try:
        served = router_routes(a.router)
        documented, problems = spec_paths(a.spec)
    except (CheckError, OSError) as e:
        print(f"check-openapi: {e}", file=sys.stderr)
        return 2
    if a.list:
        for m, p in sorted(served, key=lambda x: (x[1], x[0])):
            print(f"{m:7} {p}")
    s = {(m, norm(p)): p for m, p in served}
    d = {(m, norm(p)): p for m, p in documented}
    missing = sorted(set(s) - set(d), key=lambda k: (k[1], k[0]))
    extra = sorted(set(d) - set(s), key=lambda k: (k[1], k[0]))
    for k in missing:
        problems.append(f"served but not in {a.spec.name}: {k[0]} {s[k]}")
    for k in extra:
        problems.append(f"in {a.spec.name} but not served: {k[0]} {d[k]}")
    if problems:
        for p in problems:
            print(f"check-openapi: {p}", file=sys.stderr)
        return 1
    print(f"check-openapi: ok, {len(served)} operations in {a.router.name} match {a.spec.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
