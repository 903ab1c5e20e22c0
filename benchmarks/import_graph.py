"""Print the import graph of pytest_omnilmm: edges (every intra-package import, module level or inside a
function), cycles (strongly connected components), and layers (longest import chain over the graph with
each cycle collapsed); then the same for units (a subpackage such as ``worker`` or ``gate``, or a top-level
module such as ``config``), the level docs/ARCHITECTURE.md draws and tests/test_architecture.py enforces.
Usage: python benchmarks/import_graph.py [--edges]"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "pytest_omnilmm"


def module_name(path: Path) -> str:
    parts = ["pytest_omnilmm", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def edges() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != mod and t.startswith("pytest_omnilmm"):
                    graph[mod].add(t)
                    break
    return graph


def sccs(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
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
            out.append(comp)

    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old_limit, 10_000))
    try:  # restored: tests/test_architecture.py calls this inside a pytest process
        for v in graph:
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(old_limit)
    return out


def unit_of(module: str) -> str:
    """``pytest_omnilmm.worker.engine`` -> ``worker``; ``pytest_omnilmm.config`` -> ``config``; the
    package's own ``__init__`` (the public API) -> ``__init__``."""
    parts = module.split(".")[1:]
    return parts[0] if parts else "__init__"


def unit_edges(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Unit A imports unit B when a module of A imports a module of B (imports inside a unit dropped)."""
    units: dict[str, set[str]] = {unit_of(m): set() for m in graph}
    for mod, targets in graph.items():
        for t in targets:
            if unit_of(t) != unit_of(mod):
                units[unit_of(mod)].add(unit_of(t))
    return units


def layers(graph: dict[str, set[str]], comps: list[list[str]]) -> int:
    comp_of = {m: i for i, c in enumerate(comps) for m in c}
    depth: dict[int, int] = {}
    for i, comp in enumerate(comps):  # Tarjan yields components in reverse topological order
        below = [depth[comp_of[w]] for m in comp for w in graph[m] if comp_of[w] != i]
        depth[i] = 1 + max(below, default=0)
    return max(depth.values())


def cycles_of(comps: list[list[str]]) -> list[list[str]]:
    return sorted(sorted(c) for c in comps if len(c) > 1)


def main() -> None:
    graph = edges()
    comps = sccs(graph)
    cycles = cycles_of(comps)
    print(
        f"modules={len(graph)} imports={sum(len(v) for v in graph.values())} "
        f"cycles={len(cycles)} layers={layers(graph, comps)}"
    )
    for c in cycles:
        print("cycle:", " <-> ".join(m.removeprefix("pytest_omnilmm.") for m in c))
    units = unit_edges(graph)
    unit_comps = sccs(units)
    unit_cycles = cycles_of(unit_comps)
    print(
        f"units={len(units)} unit_imports={sum(len(v) for v in units.values())} "
        f"unit_cycles={len(unit_cycles)} unit_layers={layers(units, unit_comps)}"
    )
    for c in unit_cycles:
        print("unit cycle:", " <-> ".join(c))
    if "--edges" in sys.argv[1:]:
        for unit in sorted(units):
            print(f"{unit} -> {', '.join(sorted(units[unit])) or '-'}")


if __name__ == "__main__":
    main()
