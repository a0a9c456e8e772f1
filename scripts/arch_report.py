#!/usr/bin/env python3
"""Architecture figures of the expressiond package, read from its source with ast (nothing is
imported): modules at the package top level, import cycles between modules, the longest modules.

    python3 scripts/arch_report.py            # human summary
    python3 scripts/arch_report.py --json     # one JSON object
    python3 scripts/arch_report.py --root DIR # another checkout's daemon/expressiond

Every import counts, also those inside functions: a lazy import still ties two modules
together. A cycle is a strongly connected group of two or more modules (or one that imports
itself). Exit status 1 when a cycle exists, so the report can guard a build.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

PACKAGE = "expressiond"
DEFAULT_ROOT = Path(__file__).resolve().parents[1] / "daemon" / PACKAGE


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


def modules(root: Path) -> dict[str, Path]:
    return {module_name(root, p): p for p in sorted(root.rglob("*.py")) if "__pycache__" not in p.parts}


def _resolve(current: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = current.split(".")
    if not is_package:
        base = base[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules `name` imports (a `from pkg import mod` counts as pkg.mod)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()

    def add(target: str) -> None:
        # the deepest known module that the dotted name names (pkg.mod.attr -> pkg.mod)
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, path.name == "__init__.py", node)
            if base.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                add(sub if sub in known else base)
    return found


def graph(root: Path) -> dict[str, set[str]]:
    mods = modules(root)
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of size > 1 (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(g):
        if start in index:
            continue
        work = [(start, iter(sorted(g[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in g:
                    continue
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(g[nxt]))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return sorted(found)


def report(root: Path) -> dict:
    mods = modules(root)
    g = graph(root)
    lines = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in mods.items()}
    top_level = sorted(
        name for name, path in mods.items() if path.parent == root and path.name != "__init__.py"
    )
    packages = sorted(name for name, path in mods.items() if path.name == "__init__.py")
    longest = sorted(lines.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    found = cycles(g)
    return {
        "root": str(root),
        "modules": len(mods),
        "top_level_modules": len(top_level),
        "top_level": [n.rpartition(".")[2] for n in top_level],
        "subpackages": [n for n in packages if n != PACKAGE],
        "import_cycles": len(found),
        "cycles": found,
        "longest_module": {"module": longest[0][0], "lines": longest[0][1]},
        "longest": [{"module": m, "lines": n} for m, n in longest],
        "modules_over_400_lines": sorted(m for m, n in lines.items() if n > 400),
        "total_lines": sum(lines.values()),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="the expressiond package folder")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    if not (args.root / "__init__.py").is_file():
        print(f"error: {args.root} is not the expressiond package folder; pass --root", file=sys.stderr)
        return 2
    rep = report(args.root)
    if args.json:
        print(json.dumps(rep, indent=2))
    else:
        print(f"package      {rep['root']}")
        print(f"modules      {rep['modules']} ({rep['total_lines']} lines)")
        print(f"top level    {rep['top_level_modules']}: {' '.join(rep['top_level'])}")
        print(f"subpackages  {' '.join(p.rpartition('.')[2] for p in rep['subpackages'])}")
        print(f"cycles       {rep['import_cycles']}")
        for cyc in rep["cycles"]:
            print(f"  {' <-> '.join(cyc)}")
        print("longest      " + ", ".join(f"{d['module']} {d['lines']}" for d in rep["longest"]))
        if rep["modules_over_400_lines"]:
            print(f"over 400     {' '.join(rep['modules_over_400_lines'])}")
    return 1 if rep["import_cycles"] else 0


if __name__ == "__main__":
    sys.exit(main())
