"""``triu(full(-inf))`` masks lower to ``x - band_part(x)``, which is NaN where x is -inf.

coremltools #2771 (9.0 and 9.1.dev1): ``torch.triu`` with a positive diagonal lowers to
``sub(x, band_part(x))``; with ``x = -inf`` that is ``-inf - -inf = NaN``. Captured with
``torch.export``, coremltools folds the whole mask into an all-NaN constant (no
``band_part`` is left); traced, the mask folds to a finite constant. So this finds both
the pattern and NaN constants.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..program import LintProgram
from ..registry import Hit, Rule


def _infinite(program: LintProgram, var: str) -> bool:
    """Whether ``var`` may hold infinities: made by an op from an infinite constant
    (``fill_like(value=-inf)``), or the function's input (anything may arrive)."""
    producer = program.producers.get(var)
    if producer is None:
        return True
    return any(
        isinstance(v, np.ndarray) and v.dtype.kind == "f" and np.isinf(v).any()
        for v in producer.constants.values()
    )


#: Ops whose constant inputs are weights, not masks: their (large) constants are not
#: scanned for NaN (docs/performance.md, "Lint cost": the scan dominated on resnet18).
_WEIGHT_OPS = frozenset({
    "conv", "conv_transpose", "linear", "matmul", "einsum", "batch_norm", "instance_norm",
    "layer_norm", "gather", "gather_nd", "gather_along_axis",
})  # fmt: skip


def check(program: LintProgram) -> Iterator[Hit]:
    for op in program.ops_of("sub"):
        x, y = op.inputs.get("x", ()), op.inputs.get("y", ())
        if len(x) == 1 and len(y) == 1 and program.producer_type(y[0]) == "band_part":
            band = program.producers[y[0]]
            if band.inputs.get("x", ()) == x and _infinite(program, x[0]):
                yield Hit(op=op.name, op_type=op.op_type, detail=f"{x[0]} - band_part({x[0]}): NaN where {x[0]} is infinite")
    for op in program.ops:
        if op.op_type in _WEIGHT_OPS:  # a mask is an elementwise operand; weights are not scanned
            continue
        for key, value in op.constants.items():
            if isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.size and np.isnan(value).any():
                count = int(np.isnan(value).sum())
                yield Hit(
                    op=op.name, op_type=op.op_type,
                    detail=f"constant input {key!r} holds {count} NaN of {value.size} (a folded mask?)",
                )  # fmt: skip


RULE = Rule(
    id="coreml-triu-mask-nan",
    title="a triu(-inf) mask lowers to x - band_part(x), which is NaN",
    sources=("https://github.com/apple/coremltools/issues/2771",),
    applies="coremltools 9.0, 9.1.dev1 (torch.triu with diagonal > 0; every OS and compute unit)",
    checks="sub(x, band_part(x)) where x is filled from an infinite constant (or is an input), or a float constant holding NaN",
    advice=(
        "build the mask without triu of infinities: torch.where(torch.ones(L, L).triu(1).bool(), "
        "float('-inf'), 0.0), or a large finite negative (-1e4) instead of -inf"
    ),
    check=check,
)
