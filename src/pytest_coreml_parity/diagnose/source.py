"""Where in the torch model an op came from, as far as coremltools kept it.

coremltools records, on the in-memory program only, each op's torch module path
and the debug name of the torch value it came from. The traced graph maps that
debug name to a source range (file, line, function). Put together this gives
``cd (ComplexDiv.forward, model.py:7): den = rb * rb + ib * ib``. When a piece is
missing (a model loaded from disk, a model that was not traced) we say less,
and ``None`` when we know nothing.
"""

from __future__ import annotations

import linecache
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<path>.*)\((?P<line>\d+)\): (?P<func>\S+)$")


@dataclass(frozen=True)
class CodeLine:
    """One torch node's source: the aten kind, file, line, function and the code."""

    kind: str
    path: str
    line: int
    func: str
    code: str


def code_lines(traced: Any) -> dict[str, CodeLine]:
    """Debug name -> source of the node producing it, from a traced module's graph."""
    try:
        graph = traced.inlined_graph
    except Exception:  # not a ScriptModule: nothing to map
        return {}
    result: dict[str, CodeLine] = {}
    for node in graph.nodes():
        first = str(node.sourceRange()).split("\n", 1)[0].strip()
        match = _FRAME.match(first)
        if not match:
            continue
        path, line = match["path"], int(match["line"])
        code = linecache.getline(path, line).strip()
        kind = node.kind().split("::", 1)[-1]
        for out in node.outputs():
            result[out.debugName()] = CodeLine(kind, path, line, match["func"], code)
    return result


def describe(
    fp16_name: str,
    scopes: dict[str, tuple[tuple[str, ...], tuple[str, ...]]],
    lines: dict[str, CodeLine],
    root_class: str | None,
) -> str | None:
    """A one-line torch location for an op, or None when coremltools kept nothing."""
    types, names = scopes.get(fp16_name, ((), ()))
    if not names:
        return None
    module_path = ".".join(names[:-1])
    owner = types[-2] if len(types) > 1 else root_class
    code = lines.get(names[-1])
    if code is not None and types and code.kind != types[-1]:
        code = None  # a different trace numbered its values differently: do not guess
    where = f"{module_path}: " if module_path else ""
    if code is None:
        what = f"torch {types[-1]}" if types else "torch op"
        return f"{where}{owner or 'module'}, {what} {names[-1]!r}"
    head = f"{owner}.{code.func}" if owner else code.func
    return f"{where}{head}, {Path(code.path).name}:{code.line}: {code.code}"
