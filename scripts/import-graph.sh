#!/usr/bin/env bash
# Import graph of the modules of `common/src` (the library; `src/bin/**` are separate crates), and
# a check that it has no cycles, per module and between the top-level modules.
#
# An edge `a -> b` means module `a` names an item of module `b`: in a `use` (re-exports included:
# `pub use` makes the re-exporting module depend on the one it re-exports) or in a path written
# in the code (`crate::b::f()`, `super::T`, `child::f()`). A path is attributed to the longest
# module prefix it names, so `crate::runtime::Publisher` is an edge to `runtime` (its `mod.rs`),
# while `crate::runtime::publisher::Publisher` is one to `runtime::publisher`. `mod x;`
# declarations are not edges, and `#[cfg(test)] mod tests` at the end of a file is ignored.
#
# Usage: scripts/import-graph.sh           the graph on stdout; a cycle on stderr, exit status 1.
#        scripts/import-graph.sh --dot     the module graph for Graphviz (no check).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec python3 - "$@" <<'PY'
import os, re, sys
from collections import defaultdict

ROOT = "common/src"
dot = "--dot" in sys.argv[1:]

def module_of(path):
    rel = os.path.relpath(path, ROOT)[:-3].split(os.sep)
    if rel == ["lib"]:
        return ()
    if rel[-1] == "mod":
        rel = rel[:-1]
    return tuple(rel)

files = {}
for d, dirs, names in os.walk(ROOT):
    dirs[:] = [x for x in dirs if os.path.relpath(os.path.join(d, x), ROOT) != "bin"]
    for n in names:
        if n.endswith(".rs"):
            p = os.path.join(d, n)
            files[module_of(p)] = p
modules = set(files)

TOKENS = re.compile(
    r'(?<![\w])b?r(#*)"(?:.|\n)*?"\1'  # raw strings (Lua scripts, SQL)
    r'|"(?:\\.|[^"\\])*"'  # strings
    r"|'(?:\\[^']*|[^\\'\n])'"  # chars (not lifetimes)
    r"|//[^\n]*|/\*(?:.|\n)*?\*/"  # comments
)

def strip(src):
    src = TOKENS.sub(lambda m: "" if m.group(0).startswith("/") else '""', src)
    cut = re.search(r"#\[cfg\(test\)\]\s*mod\s+tests\b", src)
    return src[: cut.start()] if cut else src

def expand(tree):
    """`a::{b::{self, C}, d}` -> ['a::b', 'a::b::C', 'a::d']"""
    tree = re.sub(r"\s+", "", tree)
    m = re.match(r"^(.*?)\{(.*)\}$", tree)
    if not m:
        return [re.sub(r"::self$", "", re.sub(r"as\w+$", "", tree))]
    prefix, inner = m.groups()
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur); cur = ""; continue
        depth += ch == "{"; depth -= ch == "}"
        cur += ch
    parts.append(cur)
    out = []
    for part in filter(None, parts):
        out += expand(prefix + part)
    return [p.rstrip(":") for p in out]

def resolve(here, path):
    segs = path.split("::")
    if segs[0] == "crate":
        base, segs = (), segs[1:]
    elif segs[0] in ("super", "self"):
        base = here
        while segs and segs[0] in ("super", "self"):
            base = base[:-1] if segs[0] == "super" else base
            segs = segs[1:]
    elif here + (segs[0],) in modules:
        base = here
    else:
        return None  # another crate, or a local item
    target = base
    for s in segs:
        if target + (s,) in modules:
            target = target + (s,)
        else:
            break
    return target

edges = defaultdict(set)
for mod, path in files.items():
    src = strip(open(path).read())
    paths = []
    for u in re.finditer(r"\buse\s+([^;]+);", src):
        paths += expand(u.group(1))
    body = re.sub(r"\buse\s+[^;]+;", "", src)
    paths += re.findall(r"\b(?:crate|super|self|[a-z_][a-z0-9_]*)(?:::[A-Za-z_][A-Za-z0-9_]*)+", body)
    for p in paths:
        t = resolve(mod, p)
        if t is not None and t != mod:
            edges[mod].add(t)

name = lambda m: "::".join(m) if m else "crate"
top = lambda m: m[0] if m else "crate"

def cycles(graph):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1:
                out.append(sorted(comp))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out

tops = defaultdict(set)
for a, bs in edges.items():
    for b in bs:
        if top(a) != top(b):
            tops[top(a)].add(top(b))
fine = {name(a): {name(b) for b in bs} for a, bs in edges.items()}
for m in modules:
    fine.setdefault(name(m), set())

if dot:
    print("digraph common {")
    for a in sorted(fine):
        for b in sorted(fine[a]):
            print(f'  "{a}" -> "{b}";')
    print("}")
    sys.exit(0)

print("# Modules of common/src and the modules each one imports from")
for a in sorted(fine):
    print(f"{a} -> {', '.join(sorted(fine[a])) or '(nothing)'}")
print()
print("# Top-level modules")
for a in sorted({top(m) for m in modules}):
    print(f"{a} -> {', '.join(sorted(tops.get(a, ()))) or '(nothing)'}")
print()
bad = [("module", c) for c in cycles(fine)] + [("top-level", c) for c in cycles(dict(tops))]
for kind, c in bad:
    print(f"CYCLE ({kind}): {' <-> '.join(c)}", file=sys.stderr)
if bad:
    sys.exit(1)
print("No cycles: per module and between top-level modules.")
PY
