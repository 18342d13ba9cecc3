#!/usr/bin/env python3
"""The house's limits, checked: no source file over 600 lines, no function over 80 lines, no
import cycle between modules.

Run from the repository root: `python3 .ci/house.py` (exit 1 with every breach listed).
`--report` prints the module graph's figures as well.

Files: every `.rs` under `src/` and `crates/*/src/` counts whole (tests included), except the
data tables named in ALLOWED_LONG with their reason. Functions: from `fn` to its closing
brace, comments and blank lines included, unit tests aside (clippy's `too_many_lines`, set in
clippy.toml and denied in src/lib.rs and src/main.rs, counts code lines only).

Cycles: each file is a module, and each folder a module of the modules inside it. A file depends on another when it names a path into it:
`use crate::a::b::Item`, `super::x`, `self::child::f()`, `crate::a::f()` inline, or a child
module's name at the start of a path. A folder's `mod.rs` (and `lib.rs`) naming its own children is containment, not a
dependency: the children may use what it declares. A path is resolved
to the deepest module file it names, so a re-export through `a/mod.rs` is a dependency on
`a/mod.rs`. A dependency between files in two folders is a dependency between the two
folders (inside their nearest common folder), so `error.rs -> manifest/mod.rs` and
`manifest/chapters.rs -> error.rs` are a cycle between `error` and `manifest`. Any strongly
connected component of more than one module, at any level, is a cycle, files inside one folder
included. Clippy's `too_many_lines` (clippy.toml) guards the functions.
"""

import os
import re
import sys

MAX_LINES = 600
MAX_FN_LINES = 80
# A file that is a declarative table may be longer; each is named here with why.
ALLOWED_LONG = {}


def roots():
    out = [("src", "src")]
    if os.path.isdir("crates"):
        for c in sorted(os.listdir("crates")):
            src = os.path.join("crates", c, "src")
            if os.path.isdir(src):
                out.append((c, src))
    return out


def strip(src):
    """Comments, strings and char literals blanked, so paths in them are not dependencies."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if src.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif src.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    if src[i] == "\n":
                        out.append("\n")
                    i += 1
        elif c == "r" and re.match(r'r#*"', src[i:i + 10]) and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")):
            m = re.match(r'r(#*)"', src[i:])
            end = src.find('"' + m.group(1), i + m.end())
            end = n if end < 0 else end + 1 + len(m.group(1))
            out.append('""' + "\n" * src[i:end].count("\n"))
            i = end
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            out.append('""' + "\n" * src[i:j].count("\n"))
            i = j + 1
        elif c == "'" and re.match(r"'(\\.[^']*|[^\\'])'", src[i:i + 12]):
            i += re.match(r"'(\\.[^']*|[^\\'])'", src[i:i + 12]).end()
            out.append("' '")
        else:
            out.append(c)
            i += 1
    return "".join(out)


class Module:
    def __init__(self, path, segs, root):
        self.path, self.segs, self.root = path, segs, root
        self.children = set()


def discover(src_root):
    """Module path (tuple of names) -> file, for one crate."""
    mods = {}
    for dp, _, fs in os.walk(src_root):
        for f in fs:
            if not f.endswith(".rs"):
                continue
            p = os.path.join(dp, f)
            rel = os.path.relpath(p, src_root)[:-3].split(os.sep)
            if rel == ["main"]:
                continue
            if rel[-1] in ("mod", "lib"):
                rel = rel[:-1]
            mods[tuple(rel)] = p
    return mods


def use_paths(code):
    """Every path a file names: use trees expanded, and inline `a::b::c` paths."""
    paths = []
    for m in re.finditer(r"\buse\s+([^;]+);", code):
        paths += expand(m.group(1).replace("\n", " "))
    for m in re.finditer(r"(?<![\w:])((?:\w+::)+\w+)", code):
        paths.append(m.group(1).split("::"))
    return paths


def expand(tree, prefix=()):
    tree = tree.strip()
    out = []
    brace = tree.find("{")
    if brace < 0:
        for part in split_top(tree):
            segs = [s.strip() for s in part.split(" as ")[0].split("::") if s.strip()]
            out.append(list(prefix) + segs)
        return out
    head = [s.strip() for s in tree[:brace].split("::") if s.strip()]
    inner = tree[brace + 1:tree.rfind("}")]
    for part in split_top(inner):
        out += expand(part, tuple(prefix) + tuple(head))
    return out


def split_top(s):
    parts, depth, cur = [], 0, ""
    for c in s:
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        if c == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += c
    if cur.strip():
        parts.append(cur)
    return parts


def resolve(mods, here, segs, local_children):
    """The deepest module a path names, or None when it names none of this crate's."""
    if not segs:
        return None
    if segs[0] == "crate":
        base, rest = (), segs[1:]
    elif segs[0] in ("super", "self"):
        base, rest = here, segs
        while rest and rest[0] in ("super", "self"):
            if rest[0] == "super":
                base = base[:-1]
            rest = rest[1:]
    elif segs[0] in local_children:
        base, rest = here, segs
    else:
        return None
    cur = base
    for s in rest:
        if base + (s,) in mods or cur + (s,) in mods:
            cur = cur + (s,)
        else:
            break
    return cur if cur in mods else None


def drop_tests(code):
    """`#[cfg(test)] mod name { ... }` blocks removed: a unit test's imports are not the module's."""
    while True:
        m = re.search(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", code)
        if not m:
            return code
        i, depth = m.end(), 1
        while i < len(code) and depth:
            depth += {"{": 1, "}": -1}.get(code[i], 0)
            i += 1
        code = code[:m.start()] + code[i:]


def graph(src_root):
    mods = discover(src_root)
    edges = {m: set() for m in mods}
    for m, p in mods.items():
        code = drop_tests(strip(open(p, encoding="utf-8").read()))
        children = set(re.findall(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", code, re.M))
        children = {c for c in children if m + (c,) in mods}
        for segs in use_paths(code):
            t = resolve(mods, m, segs, children)
            # A folder's mod.rs (or lib.rs) naming its own children is containment.
            if t is not None and t != m and t[:-1] != m:
                edges[m].add(t)
    return mods, edges


def folder_edges(edges):
    """Each dependency seen from the folder that holds both ends: an edge between the two
    children of that folder that contain them (a child naming the folder's own mod.rs is an
    edge to the folder itself; the folder naming its children is containment)."""
    out = {}
    for a, targets in edges.items():
        for b in targets:
            k = 0
            while k < min(len(a), len(b)) and a[k] == b[k]:
                k += 1
            parent = a[:k]
            if a == parent:
                continue
            x = a[:k + 1]
            y = b[:k + 1] if b != parent else parent
            out.setdefault(parent, {}).setdefault(x, set()).add(y)
    return out


def cycles(nodes, edges):
    """Tarjan's strongly connected components of more than one node."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def functions(code):
    """(name, first line, lines) of every `fn` with a body, counted from `fn` to its closing
    brace, comments and blank lines included (stricter than clippy, which skips them)."""
    out = []
    for m in re.finditer(r"\bfn\s+(\w+)[^;{]*\{", code):
        i, depth = m.end(), 1
        while i < len(code) and depth:
            depth += {"{": 1, "}": -1}.get(code[i], 0)
            i += 1
        first = code[:m.start()].count("\n") + 1
        out.append((m.group(1), first, code[m.start():i].count("\n") + 1))
    return out


def main():
    failures = []
    report = "--report" in sys.argv
    for name, src_root in roots():
        for dp, _, fs in os.walk(src_root):
            for f in sorted(fs):
                if not f.endswith(".rs"):
                    continue
                p = os.path.join(dp, f)
                n = sum(1 for _ in open(p, encoding="utf-8"))
                if n > MAX_LINES and p not in ALLOWED_LONG:
                    failures.append(f"{p}: {n} lines (the limit is {MAX_LINES}; split it)")
                code = drop_tests(strip(open(p, encoding="utf-8").read()))
                for fn, line, length in functions(code):
                    if length > MAX_FN_LINES:
                        failures.append(
                            f"{p}:{line}: fn {fn} is {length} lines (the limit is {MAX_FN_LINES})"
                        )
        mods, edges = graph(src_root)
        label = lambda m: "::".join(("crate",) + m)
        for parent, fe in sorted(folder_edges(edges).items()):
            nodes = set(fe) | {y for ys in fe.values() for y in ys}
            for comp in cycles(nodes, fe):
                why = []
                for x in comp:
                    for y in sorted(fe.get(x, ())):
                        if y in comp:
                            files = sorted(
                                f"{mods[a]} -> {mods[b]}"
                                for a in edges for b in edges[a]
                                if a[:len(x)] == x and (b[:len(y)] == y if y != parent else b == parent)
                            )
                            why.append(f"{label(x)} -> {label(y)} ({', '.join(files[:3])})")
                failures.append(f"import cycle in {name}: " + "; ".join(why))
        if report:
            n_edges = sum(len(v) for v in edges.values())
            print(f"{name}: {len(mods)} modules, {n_edges} dependencies")
    for f in failures:
        print(f"house: {f}", file=sys.stderr)
    if failures:
        sys.exit(1)
    print("house: no file over 600 lines, no function over 80, no import cycle")


if __name__ == "__main__":
    main()
