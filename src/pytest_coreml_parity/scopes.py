"""The torch scopes of a converted program's ops, and their sidecar file.

coremltools keeps each op's torch module (type and name) on the in-memory program;
the saved ``.mlpackage`` loses them, so the disk cache writes them beside the
package (:data:`SCOPES_SIDECAR`) and diagnosis reads them back. Conversion layer:
the Core ML stack's cache-entry layout writes the sidecar, diagnosis reads it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: Written beside a saved ``.mlpackage`` (by the plugin's disk cache) to keep the
#: torch scopes that the milproto round trip drops.
SCOPES_SIDECAR = "torch_scopes.json"

Scopes = dict[str, tuple[tuple[str, ...], tuple[str, ...]]]


def scope_names(mlmodel: Any) -> Scopes:
    """Final op name -> (torch module types, torch module names).

    From the in-memory program when there is one; for a model loaded from disk,
    from the :data:`SCOPES_SIDECAR` beside its package if one was saved, else empty.
    """
    program = getattr(mlmodel, "_mil_program", None)
    if program is None:
        return _read_sidecar(getattr(mlmodel, "package_path", None))
    from coremltools.converters.mil.mil.scope import ScopeSource

    result: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    for function in program.functions.values():
        for op in _walk(function.operations):
            scopes = getattr(op, "scopes", None) or {}
            types = tuple(str(t) for t in scopes.get(ScopeSource.TORCHSCRIPT_MODULE_TYPE, ()))
            names = tuple(str(n) for n in scopes.get(ScopeSource.TORCHSCRIPT_MODULE_NAME, ()))
            if types or names:
                result[op.name] = (types, names)
    return result


def save_scopes(mlmodel: Any, directory: Path) -> None:
    """Write ``mlmodel``'s torch scopes to ``directory/SCOPES_SIDECAR`` (if it has any)."""
    scopes = scope_names(mlmodel)
    if scopes:
        data = {name: [list(types), list(names)] for name, (types, names) in scopes.items()}
        (directory / SCOPES_SIDECAR).write_text(json.dumps(data))


def _read_sidecar(package_path: Any) -> Scopes:
    if not package_path:
        return {}
    sidecar = Path(package_path).parent / SCOPES_SIDECAR
    try:
        data = json.loads(sidecar.read_text())
        return {name: (tuple(types), tuple(names)) for name, (types, names) in data.items()}
    except (OSError, ValueError, TypeError):
        return {}  # no sidecar, or a damaged one: know nothing rather than guess


def _walk(operations: Iterable[Any]) -> Iterable[Any]:
    for op in operations:
        yield op
        for block in op.blocks:
            yield from _walk(block.operations)
