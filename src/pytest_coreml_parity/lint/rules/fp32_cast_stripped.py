"""An explicit fp32 cast in the torch code that the fp16 program no longer honours.

HF's RMSNorm computes in fp32 (``hidden_states.to(torch.float32)``) whatever the
model's dtype. Converted with compute precision FLOAT16, coremltools' fp16 pass
casts every op to fp16, the torch cast included, so the user believes the op runs in
fp32 while it runs in fp16 (executorch #19523 reports the same stripping).

Found from the torch graph: a cast of a float tensor to float32 (``aten::to`` in a
trace; ``_to_copy`` / ``to`` or the ``_assert_tensor_metadata`` that ``torch.export``
leaves for a no-op ``.to``), none of whose consumers computes in float32 in the program.

Only casts the source asks for are reported. RMSNorm's closing
``hidden_states.to(input_dtype)`` is a cast to float32 too when traced with fp32
inputs, and in the graph it is the same node as the opening cast (both are
float32 -> float32 in an fp32 trace or export, with a constant dtype): only the
source line tells them apart. A cast whose line is known and names no float32 dtype
(``.to(input_dtype)``, ``.type_as(x)``) restores a dtype and is skipped; a cast whose
line is unknown is reported. One finding per source line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..program import LintProgram, is_exported, node_line
from ..registry import Hit, Rule

_TORCH_FLOAT32 = 6  # torch's ScalarType code for float32 (what a trace records)
#: Source text that asks for float32 by name: ``.to(torch.float32)``, ``.float()``,
#: ``dtype=torch.float``, ``"float32"``.
_NAMES_FLOAT32 = re.compile(r"float32|\btorch\.float\b|\.float\(\s*\)")


def asks_for_float32(line: str | None) -> bool:
    """Whether a cast's source line names float32 (True when the line is unknown: can't tell)."""
    if line is None:
        return True
    code = line.split(": ", 1)[1] if ": " in line else line  # "func, file.py:12: code"
    return _NAMES_FLOAT32.search(code) is not None


def _trace_casts(traced: Any) -> Iterator[tuple[str, list[str], str | None]]:
    """(cast output, its consumers' outputs, source line) per float -> float32 ``aten::to``."""
    graph = traced.inlined_graph
    for node in graph.nodes():
        if node.kind() != "aten::to":
            continue
        inputs = list(node.inputs())
        source = inputs[0].type()
        if getattr(source, "scalarType", lambda: None)() not in ("Float", "Half", "BFloat16", "Double"):
            continue
        dtypes = [i.toIValue() for i in inputs[1:] if i.node().kind() == "prim::Constant"]
        if _TORCH_FLOAT32 not in dtypes:
            continue
        out = node.output()
        users = [o.debugName() for use in out.uses() for o in use.user.outputs()]
        yield out.debugName(), users, _trace_line(node)


def _trace_line(node: Any) -> str | None:
    rows = [r.strip() for r in str(node.sourceRange()).split("\n") if r.strip()]
    import linecache
    import re

    for row in rows:
        m = re.match(r"^(?P<path>.*)\((?P<line>\d+)\): (?P<func>\S+)$", row)
        if m:
            from pathlib import Path

            code = linecache.getline(m["path"], int(m["line"])).strip()
            return f"{m['func']}, {Path(m['path']).name}:{m['line']}: {code}"
    return None


def _export_casts(exported: Any) -> Iterator[tuple[str, list[str], str | None]]:
    import torch

    nodes = list(exported.graph.nodes)
    for index, node in enumerate(nodes):
        target = str(node.target)
        if not any(t in target for t in ("_to_copy", "aten.to.", "_assert_tensor_metadata")):
            continue
        dtypes = [node.kwargs.get("dtype"), *(a for a in node.args[1:] if isinstance(a, torch.dtype))]
        if torch.float32 not in dtypes:
            continue
        arg = node.args[0] if node.args else None
        value = getattr(arg, "meta", {}).get("val")
        if value is None or not value.dtype.is_floating_point:
            continue
        if "_assert_tensor_metadata" in target:  # a no-op .to(): its consumers use the arg
            users = [u.name for u in nodes[index + 1 :] if arg in u.all_input_nodes]
        else:
            users = [u.name for u in node.users]
        yield node.name, users, node_line(node)


def check(program: LintProgram) -> Iterator[Hit]:
    if program.torch_source is None or not program.fp16:
        return
    from ...op_names import fp32_name, sanitize

    f32 = np.dtype(np.float32)
    fp32_ops = {
        fp32_name(op.name)
        for op in program.ops
        if op.op_type != "cast" and any(program.dtype(o) == f32 for o in op.outputs)
    }
    casts = _export_casts(program.torch_source) if is_exported(program.torch_source) else _trace_casts(program.torch_source)
    seen: set[str] = set()
    for name, users, line in casts:
        kept = {sanitize(u) for u in users} & fp32_ops or sanitize(name) in fp32_ops
        if kept or not asks_for_float32(line) or (line is not None and line in seen):
            continue
        if line is not None:
            seen.add(line)
        yield Hit(
            op=name,
            op_type="torch cast to float32",
            detail="the program computes its consumers in float16: the fp16 pass dropped the cast",
            torch_line=line or f"torch value {name!r}",
        )


RULE = Rule(
    id="coreml-fp32-cast-stripped",
    title="an explicit fp32 cast in the torch code runs in fp16 in the program",
    sources=(
        "https://github.com/pytorch/executorch/issues/19523",
        "https://apple.github.io/coremltools/docs-guides/source/typed-execution.html",
    ),
    applies="compute precision FLOAT16 (coremltools 7-9, every OS and compute unit)",
    checks=(
        "a torch cast of a float tensor to float32, written as such in the source (a cast back to "
        "a dtype variable, .to(input_dtype), is not one), none of whose consumers computes in float32 in the program"
    ),
    advice=(
        "keep the ops after the cast in fp32: ct.convert(..., compute_precision="
        "ct.transform.FP16ComputePrecision(op_selector=...)), or the plugin's "
        "@pytest.mark.coreml(fp32_ops=[...]) / --coreml-search-fix to find them"
    ),
    check=check,
)
