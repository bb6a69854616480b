"""Imports follow the layer table of ``docs/architecture.md``: each layer imports only
layers below it (or its own), lazy imports included.

The table is read from the document itself, so the document and the code cannot
drift: a module no row names, or an import that runs upward, fails here with the
edge and the two layers. The import graph is the one ``test_import_graph`` checks
for cycles (``ast``, function-level imports included, ``TYPE_CHECKING`` left out).
"""

from __future__ import annotations

import re
from pathlib import Path

from .test_import_graph import PACKAGE, import_graph

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def layer_table() -> list[tuple[str, list[str]]]:
    """(layer, module patterns) per row of the "## Layers" table, lowest layer first."""
    text = DOC.read_text()
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or cells[0] in ("layer", "") or set(cells[0]) <= {"-", " "}:
            continue
        rows.append((cells[0], re.findall(r"`([^`]+)`", cells[1])))
    return rows


def _pattern_module(pattern: str) -> tuple[str, bool]:
    """``emulator/`` -> (pytest_coreml_parity.emulator, True: the whole package);
    ``stacks/__init__.py`` -> (pytest_coreml_parity.stacks, False)."""
    if pattern.endswith("/"):
        return f"{PACKAGE}.{pattern.rstrip('/').replace('/', '.')}", True
    dotted = pattern.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
    return f"{PACKAGE}.{dotted}", False


def layer_of(module: str, table: list[tuple[str, list[str]]]) -> int | None:
    """The index of ``module``'s row: an exact file match, else the deepest package row."""
    best: tuple[int, int] | None = None  # (specificity, row)
    for index, (_layer, patterns) in enumerate(table):
        for pattern in patterns:
            name, whole = _pattern_module(pattern)
            if module == name and not whole:
                return index
            if whole and (module == name or module.startswith(name + ".")):
                depth = name.count(".")
                if best is None or depth > best[0]:
                    best = (depth, index)
    return best[1] if best is not None else None


def upward_imports(graph: dict[str, set[str]], table: list[tuple[str, list[str]]]) -> list[str]:
    problems = []
    for module, targets in sorted(graph.items()):
        if module == PACKAGE:  # the package's lazy re-exports sit above every layer
            continue
        mine = layer_of(module, table)
        for target in sorted(targets):
            theirs = layer_of(target, table)
            if mine is not None and theirs is not None and theirs > mine:
                problems.append(f"{module} ({table[mine][0]}) -> {target} ({table[theirs][0]})")
    return problems


def test_the_document_has_a_layer_table() -> None:
    table = layer_table()
    assert [layer for layer, _ in table][:2] == ["leaves", "settings"]
    assert table[-1][0] == "pytest"


def test_every_module_has_a_layer() -> None:
    table = layer_table()
    missing = [m for m in sorted(import_graph()) if m != PACKAGE and layer_of(m, table) is None]
    assert missing == [], f"modules no row of docs/architecture.md's layer table names: {missing}"


def test_imports_only_run_down_the_layer_table() -> None:
    problems = upward_imports(import_graph(), layer_table())
    assert problems == [], "imports against docs/architecture.md's layers:\n" + "\n".join(problems)


def test_an_upward_import_is_caught() -> None:
    """The check can fail: a leaf importing the plugin is reported with both layers."""
    graph = {f"{PACKAGE}.errors": {f"{PACKAGE}.plugin"}, f"{PACKAGE}.plugin": set()}
    assert upward_imports(graph, layer_table()) == [
        f"{PACKAGE}.errors (leaves) -> {PACKAGE}.plugin (pytest)"
    ]
