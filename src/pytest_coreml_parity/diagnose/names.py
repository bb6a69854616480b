"""Map op names between the fp16 program, the fp32 program and the op_selector.

coremltools names each op once (the torch value's debug name, e.g. ``8`` or
``den``); the FP16ComputePrecision pass, which calls the op_selector on that
original name, renames every op it converts to ``<name>_cast_fp16``; a final
sanitizer pass then turns invalid identifiers into valid ones (``8`` becomes
``op_8``, ``input.1`` becomes ``input_1``). So the fp32 program holds
``sanitize(name)``, the fp16 program ``sanitize(name + "_cast_fp16")``, and the
selector sees ``name``. The sanitizer is not invertible, so we map back through
the torch scope that coremltools keeps on the in-memory program when it can,
and otherwise offer every plausible original name (a superset is harmless: the
search verifies each selector by converting with it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ..op_names import FP16_SUFFIX as FP16_SUFFIX  # the pure name rules live with op_names
from ..op_names import fp32_name as fp32_name
from ..op_names import is_converted as is_converted
from ..op_names import sanitize as sanitize
from ..scopes import SCOPES_SIDECAR as SCOPES_SIDECAR  # re-exported: diagnosis reads the sidecar
from ..scopes import Scopes as Scopes
from ..scopes import save_scopes as save_scopes
from ..scopes import scope_names as scope_names


def selector_names(fp16_name: str, scopes: dict[str, tuple[tuple[str, ...], tuple[str, ...]]]) -> tuple[str, ...]:
    """The name(s) an op_selector sees for the fp16-program op ``fp16_name``.

    One name when the torch scope pins it down, else every plausible original.
    """
    base = fp32_name(fp16_name)
    _types, names = scopes.get(fp16_name, ((), ()))
    if names and sanitize(names[-1] + FP16_SUFFIX) == fp16_name:
        return (names[-1],)
    candidates = [base]
    if base.startswith("op_") and len(base) > 3 and not re.match(r"[a-zA-Z_]", base[3]):
        candidates.append(base[3:])
    return tuple(candidates)


def var_correspondence(ops16: Iterable[Any], ops32: Iterable[Any]) -> dict[str, str]:
    """fp16-program variable -> the fp32-program variable holding the same value.

    Ops are matched by name (``fp32_name``), their outputs by position; a cast
    the fp16 pass inserted maps to whatever its input maps to. Variables not
    listed (model inputs, say) have the same name in both programs.
    """
    by_name = {op.name: op for op in ops32}
    mapping: dict[str, str] = {}
    for op in ops16:
        twin = by_name.get(fp32_name(op.name))
        if twin is not None and twin.op_type == op.op_type:
            mapping.update(zip(op.outputs, twin.outputs, strict=False))
        elif op.op_type == "cast" and "x" in op.inputs:
            source = op.inputs["x"][0]
            mapping[op.outputs[0]] = mapping.get(source, source)
    return mapping
