"""The package's shape, as docs/ARCHITECTURE.md draws it: no import cycle, and no unit importing a unit its
row in the doc's table does not allow (the worker never imports the controller side, nor it the worker's;
shared code imports only shared code; only ``plugin`` and ``xdist`` import both sides).

The graph is ``benchmarks/import_graph.py``'s: every import inside the package, at module level or inside
a function. There are no known exceptions.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "ARCHITECTURE.md"
TABLE_MARKER = "<!-- unit table: enforced by tests/test_architecture.py"
SIDES = {"shared", "worker", "controller", "both", "entry"}


def _load_graph_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "benchmarks" / "import_graph.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GRAPH_TOOL = _load_graph_tool()


@dataclass(frozen=True)
class Row:
    unit: str
    side: str
    may_import: frozenset[str]


def parse_table(text: str) -> dict[str, Row]:
    """The unit table under ``TABLE_MARKER``: ``| `unit` | side | what | `a`, `b` |`` (``—`` for none)."""
    lines = text.split(TABLE_MARKER, 1)[1].splitlines()[1:]
    rows: dict[str, Row] = {}
    for line in lines:
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not cells[0].startswith("`"):
            continue  # the header and its rule
        unit = cells[0].strip("`")
        assert unit not in rows, f"docs/ARCHITECTURE.md: unit {unit!r} has two rows"
        assert cells[1] in SIDES, (
            f"docs/ARCHITECTURE.md: unit {unit!r} has side {cells[1]!r}, not one of {SIDES}"
        )
        rows[unit] = Row(unit, cells[1], frozenset(re.findall(r"`([^`]+)`", cells[-1])))
    return rows


@pytest.fixture(scope="module")
def table() -> dict[str, Row]:
    return parse_table(DOC.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def modules() -> dict[str, set[str]]:
    return GRAPH_TOOL.edges()


@pytest.fixture(scope="module")
def units(modules: dict[str, set[str]]) -> dict[str, set[str]]:
    return GRAPH_TOOL.unit_edges(modules)


def short(module: str) -> str:
    return module.removeprefix("pytest_omnilmm.")


def module_cycles(modules: Mapping[str, set[str]]) -> list[set[str]]:
    return [{short(m) for m in c} for c in GRAPH_TOOL.cycles_of(GRAPH_TOOL.sccs(dict(modules)))]


def forbidden_edges(units: Mapping[str, set[str]], table: Mapping[str, Row]) -> list[tuple[str, str]]:
    return sorted(
        (unit, target)
        for unit, targets in units.items()
        for target in targets
        if unit in table and target not in table[unit].may_import
    )


def test_no_import_cycle(modules: dict[str, set[str]]) -> None:
    cycles = module_cycles(modules)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(sorted(c)) for c in cycles)


def test_every_unit_has_a_row_and_every_row_a_unit(units: dict[str, set[str]], table: dict[str, Row]) -> None:
    missing = sorted(set(units) - set(table))
    stale = sorted(set(table) - set(units))
    assert not missing, f"units missing from the table in docs/ARCHITECTURE.md: {missing}"
    assert not stale, f"docs/ARCHITECTURE.md lists units that do not exist: {stale}"
    named = {t for row in table.values() for t in row.may_import}
    assert named <= set(table), f"'may import' names units without a row: {sorted(named - set(table))}"


def test_no_unit_imports_what_its_row_does_not_allow(
    units: dict[str, set[str]], table: dict[str, Row]
) -> None:
    bad = [f"{a} -> {b}" for a, b in forbidden_edges(units, table)]
    assert not bad, (
        f"imports docs/ARCHITECTURE.md does not allow (add them to the table or remove them): {bad}"
    )


def test_the_table_keeps_the_sides_apart(table: dict[str, Row]) -> None:
    """What the table allows obeys the sides: worker and controller never import each other, shared imports
    only shared, only ``both`` units import both sides, nothing imports an entry unit; and it is acyclic."""
    problems = []
    for row in table.values():
        sides = {table[t].side for t in row.may_import}
        if row.side == "shared" and sides - {"shared"}:
            problems.append(f"shared {row.unit} may import {sorted(sides - {'shared'})} code")
        if {row.side, *sides} >= {"worker", "controller"} and row.side != "both":
            problems.append(f"{row.unit} ({row.side}) may import both the worker and the controller side")
        if "entry" in sides:
            problems.append(f"{row.unit} may import an entry unit")
    allowed = {u: set(r.may_import) for u, r in table.items()}
    cycles = GRAPH_TOOL.cycles_of(GRAPH_TOOL.sccs(allowed))
    problems += [f"the table allows the cycle {' <-> '.join(c)}" for c in cycles]
    assert not problems, problems
    both = {u for u, r in table.items() if r.side == "both"}
    assert both == {"plugin", "xdist"}, both


def test_the_worker_and_the_controller_do_not_import_each_other(units: dict[str, set[str]]) -> None:
    """Spelled out, whatever the table says: the two sides of a run meet only in plugin and xdist."""
    worker_side, controller_side = (
        {"worker", "backends", "models", "probes"},
        {"controller", "results", "gate"},
    )
    for unit in worker_side:
        assert not units[unit] & controller_side, (unit, units[unit] & controller_side)
    for unit in controller_side:
        assert not units[unit] & worker_side, (unit, units[unit] & worker_side)
    importing_both = {u for u, t in units.items() if t & worker_side and t & controller_side}
    assert importing_both <= {"plugin", "xdist"}, importing_both


def test_the_unit_graph_has_at_most_six_layers(units: dict[str, set[str]]) -> None:
    graph = {u: t - {u} for u, t in units.items()}
    assert GRAPH_TOOL.layers(graph, GRAPH_TOOL.sccs(graph)) <= 6


def test_the_checker_sees_a_cycle_and_a_forbidden_import() -> None:
    """The checks above can fail: a made-up graph with a cycle and a worker -> controller import."""
    graph = {
        "pytest_omnilmm.worker.engine": {"pytest_omnilmm.controller.core"},
        "pytest_omnilmm.controller.core": {"pytest_omnilmm.worker.engine"},
    }
    assert module_cycles(graph) == [{"worker.engine", "controller.core"}]
    rows = parse_table(
        f"{TABLE_MARKER} -->\n| `worker` | worker | x | — |\n| `controller` | controller | x | — |\n"
    )
    assert forbidden_edges(GRAPH_TOOL.unit_edges(graph), rows) == [
        ("controller", "worker"),
        ("worker", "controller"),
    ]
