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
import os
import re
from collections.abc import Collection
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
    #: The innermost frame outside torch itself (the user's line that led here), when
    #: it differs from this one: ``model.py:12: return self.norm(x)``.
    caller: str | None = None


def code_lines(traced: Any, names: Collection[str] | None = None, *, graph: Any = None) -> dict[str, CodeLine]:
    """Debug name -> source of the node producing it, from a traced module's graph.

    ``names``: only the nodes producing these debug names (the lint looks up its hits
    only); ``graph``: :func:`~..op_names.converter_graph` of ``traced``, when the caller
    keeps it for several look-ups.
    """
    from ..op_names import converter_graph

    if graph is None:
        try:
            graph = converter_graph(traced)  # numbered as coremltools numbers its op scopes
        except Exception:  # not a ScriptModule: nothing to map
            return {}
    wanted = None if names is None else set(names)
    result: dict[str, CodeLine] = {}
    torch_dir = _torch_dir()
    not_user = (torch_dir or _OWN_DIR, _OWN_DIR)  # torch's frames and the trace this package took
    for node in graph.nodes():
        outputs = [out.debugName() for out in node.outputs()]
        if wanted is not None and wanted.isdisjoint(outputs):
            continue
        first, user = _frames(str(node.sourceRange()), torch_dir, not_user)
        if first is None:
            continue
        path, line = first["path"], int(first["line"])
        code = linecache.getline(path, line).strip()
        kind = node.kind().split("::", 1)[-1]
        caller = None
        if user is not None:
            user_line = int(user["line"])
            user_code = linecache.getline(user["path"], user_line).strip()
            caller = f"{Path(user['path']).name}:{user_line}: {user_code}"
        for name in outputs:
            result[name] = CodeLine(kind, path, line, first["func"], code, caller)
    return result


def _frames(text: str, torch_dir: str | None, not_user: tuple[str, ...]) -> tuple[Any, Any]:
    """(the innermost frame, the user's frame when the innermost is torch's) of a source
    range; rows are read only as far as needed (a model's stack can be 30 frames deep)."""
    first = None
    for row in text.split("\n"):
        match = _FRAME.match(row.strip())
        if match is None:
            continue
        if first is None:
            first = match
            if torch_dir is None or not match["path"].startswith(torch_dir):
                return first, None  # the user's (or a library's) own line: no caller
        elif not match["path"].startswith(not_user):
            return first, match
    return first, None


#: This package's own directory: its frames (the trace it takes) are never the user's line.
_OWN_DIR = str(Path(__file__).parents[1]) + os.sep


def _torch_dir() -> str | None:
    """torch's install directory (with its separator, so ``torchvision/`` is not inside it):
    frames inside it are library code, not the user's."""
    try:
        import torch
    except ImportError:
        return None
    return str(Path(torch.__file__).parent) + os.sep


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
    called = f"; called from {code.caller}" if code.caller else ""
    return f"{where}{head}, {Path(code.path).name}:{code.line}: {code.code}{called}"
