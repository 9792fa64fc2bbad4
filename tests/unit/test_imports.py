"""The import graph of `shared/`: no cycles, and imports point down only (core ← adapters ← use cases).

Why with `ast` and not by importing: the code defers imports into function bodies (and under
`if TYPE_CHECKING:`), which hides a cycle from Python's import machinery until the day someone moves
one line to the top of a file. Every import statement counts here, wherever it stands.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "shared"

# No cycle is allowed: the last ones (`series` <-> `sync_event`, `sync_event` <-> `place_appointment`)
# went with the pipelines of issue 20. Kept as a set so that a cycle accepted on purpose is named here.
ALLOWED_CYCLES: set[frozenset[str]] = set()

# (importer prefix, forbidden imported prefixes, why)
LAYERS: list[tuple[str, tuple[str, ...], str]] = [
    ("shared.core", ("shared.adapters", "shared.usecases", "shared.services"), "the core is pure: no I/O"),
    ("shared.adapters", ("shared.usecases", "shared.services"), "adapters know nothing of use cases"),
]


def modules_of(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name → file, for every .py under `root/package`."""
    found: dict[str, Path] = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: Mapping[str, Path]) -> list[str]:
    """The modules of ours an import statement loads (the deepest known module of each name)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - node.level + 1]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        # `from pkg import mod` loads pkg.mod; `from mod import name` loads mod.
        names = [f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in known else prefix for alias in node.names]
    targets = []
    for name in names:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != module:
            targets.append(name)
    return targets


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module → modules of the package it imports: module level, in function bodies, under
    TYPE_CHECKING alike."""
    known = modules_of(root, package)
    graph: dict[str, set[str]] = {}
    for module, path in known.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                edges.update(_targets(node, module, path.name == "__init__.py", known))
        graph[module] = edges
    return graph


def cycles(graph: Mapping[str, Iterable[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_violations(graph: Mapping[str, Iterable[str]]) -> list[str]:
    problems = []
    for module, imported in sorted(graph.items()):
        for lower, forbidden, why in LAYERS:
            if _within(module, lower):
                problems += [
                    f"{module} imports {target} ({why})"
                    for target in sorted(imported)
                    if any(_within(target, f) for f in forbidden)
                ]
    return problems


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(ROOT, PACKAGE)


def test_the_package_has_no_import_cycle(graph):
    found = set(cycles(graph))
    unexpected = [sorted(c) for c in found - ALLOWED_CYCLES]
    assert unexpected == [], f"import cycles: {unexpected}"
    gone = [sorted(c) for c in ALLOWED_CYCLES - found]
    assert gone == [], f"allowlisted cycles no longer exist, delete them from ALLOWED_CYCLES: {gone}"


def test_imports_point_down_only(graph):
    assert layer_violations(graph) == []


def test_the_graph_sees_the_whole_package(graph):
    # A sanity floor: a parser that silently read nothing would pass the two tests above.
    assert "shared.services" in graph["shared.usecases.outlook_to_dime.pipeline.read"]
    assert "shared.core.outlook_to_dime.triage" in graph["shared.usecases.outlook_to_dime.pipeline.decide"]


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_a_cycle_hidden_in_a_function_body_is_found(tmp_path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg.b import thing\n",
            "pkg/b.py": "def thing():\n    from pkg import a\n    return a\n",
            "pkg/c.py": "from . import a\n",
        },
    )
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.c"] == {"pkg.a"}  # relative import resolved
    assert cycles(graph) == [frozenset({"pkg.a", "pkg.b"})]


def test_a_type_checking_import_upwards_is_a_violation(tmp_path):
    _write(
        tmp_path,
        {
            "shared/__init__.py": "",
            "shared/services.py": "",
            "shared/core/__init__.py": "",
            "shared/core/x.py": "",
            "shared/adapters/__init__.py": "",
            "shared/adapters/y.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from shared.services import Services\nfrom shared.core import x\n",
        },
    )
    graph = import_graph(tmp_path, "shared")
    assert layer_violations(graph) == ["shared.adapters.y imports shared.services (adapters know nothing of use cases)"]
