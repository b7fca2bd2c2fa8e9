#!/usr/bin/env python3
"""Fails when, inside one crate, modules import each other in a circle.

Cargo already refuses circles between crates; this checks the modules of each crate. Every
`.rs` file under `<crate>/src` is a module; a module depends on another when it names it
through `crate::…` or `super::…` (in `use` lines or inline paths). Names the crate root
re-exports (`pub use module::Name;` in lib.rs) count as the module that defines them. A circle
is a set of two or more modules that reach each other; the crate root (lib.rs, main.rs) is left
out, since it only declares modules and re-exports. Prints each circle and exits 1 when there
is one.
"""

import pathlib
import re
import sys

ROOTS = {"lib.rs", "main.rs"}


def module_of(src: pathlib.Path, file: pathlib.Path) -> tuple:
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] == "mod":
        parts = parts[:-1]
    return tuple(parts)


def strip_comments(text: str) -> str:
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def use_paths(text: str):
    """Every path named in the file: `use` trees expanded, and inline `crate::`/`super::` paths.
    A parent naming its child and the child naming the parent is allowed (the parent contains
    the child); two siblings naming each other, directly or through others, is a circle."""
    paths = []
    for tree in re.findall(r"\buse\s+([^;]+);", text):
        paths.extend(expand(tree.replace("\n", " ").replace(" ", "")))
    paths.extend(re.findall(r"\b((?:crate|super)(?:::[A-Za-z_][A-Za-z0-9_]*)+)", text))
    return paths


def expand(tree: str):
    """`a::{b, c::{d, e}}` → a::b, a::c::d, a::c::e."""
    depth, start = 0, None
    for i, ch in enumerate(tree):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                prefix, inner = tree[:start], tree[start + 1 : i]
                items, level, last = [], 0, 0
                for j, c in enumerate(inner):
                    if c == "{":
                        level += 1
                    elif c == "}":
                        level -= 1
                    elif c == "," and level == 0:
                        items.append(inner[last:j])
                        last = j + 1
                items.append(inner[last:])
                out = []
                for item in items:
                    if item:
                        out.extend(expand(prefix + item))
                return out
    return [tree.split(" as ")[0]]


def resolve(path: str, here: tuple, modules: set, reexports: dict):
    parts = path.split("::")
    if parts[0] == "crate":
        base, rest = (), parts[1:]
    elif parts[0] == "super":
        base, rest = here, parts
        while rest and rest[0] == "super":
            base, rest = base[:-1], rest[1:]
    else:
        return None
    if not rest:
        return None
    if not base and rest[0] in reexports:
        return reexports[rest[0]]
    best = None
    for n in range(1, len(rest) + 1):
        candidate = base + tuple(rest[:n])
        if candidate in modules:
            best = candidate
    return best


def circles(graph: dict):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def main() -> int:
    found = 0
    for manifest in sorted(pathlib.Path(".").glob("*/Cargo.toml")):
        src = manifest.parent / "src"
        if not src.is_dir():
            continue
        files = [f for f in src.rglob("*.rs")]
        modules = {module_of(src, f): f for f in files if f.name not in ROOTS or f.parent != src}
        reexports = {}
        for root in ROOTS:
            if (src / root).exists():
                text = strip_comments((src / root).read_text())
                for tree in re.findall(r"\bpub\s+use\s+([^;]+);", text):
                    for path in expand(tree.replace("\n", " ").replace(" ", "")):
                        parts = path.split("::")
                        if parts[0] in ("crate", "self"):
                            parts = parts[1:]
                        name = parts[-1]
                        for n in range(len(parts) - 1, 0, -1):
                            if tuple(parts[:n]) in modules:
                                reexports[name] = tuple(parts[:n])
                                break
        graph = {}
        for module, file in modules.items():
            deps = set()
            for path in use_paths(strip_comments(file.read_text())):
                # `super` is the parent of this module (for mod.rs too: the directory's parent).
                target = resolve(path, module, set(modules), reexports)
                # A module naming one of its ancestors (which contain it) is not an import circle.
                if target and target != module and module[: len(target)] != target:
                    deps.add(target)
            graph[module] = deps
        for circle in circles(graph):
            found += 1
            names = ", ".join("::".join(m) for m in circle)
            print(f"error: modules of {manifest.parent} import each other in a circle: {names}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
