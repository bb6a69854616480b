"""``torch.reciprocal`` (and ``1 / x``) lowers to ``inverse`` with a hidden epsilon of 1e-4.

coremltools #2773: the lowering computes ``1 / (x + 1e-4)``, so small denominators are
wrong (``1 / 1e-4`` gives 5000, not 10000) and ``1 / 0`` is finite.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..program import LintProgram
from ..registry import Hit, Rule


def check(program: LintProgram) -> Iterator[Hit]:
    for op in program.ops_of("inverse"):
        eps = op.constants.get("epsilon")
        value = float(np.asarray(eps)) if isinstance(eps, np.ndarray) and np.asarray(eps).size == 1 else 1e-4
        if value != 0.0:
            yield Hit(op=op.name, op_type=op.op_type, detail=f"computes 1 / (x + {value:.3g})")


RULE = Rule(
    id="coreml-reciprocal-epsilon",
    title="reciprocal lowers to inverse(x, epsilon=1e-4): 1 / (x + 1e-4)",
    sources=("https://github.com/apple/coremltools/issues/2773",),
    applies="coremltools 7-9 torch frontend (every OS and compute unit)",
    checks="an inverse op with a nonzero epsilon",
    advice="if x can be small, divide explicitly (torch.div(one, x) with a tensor numerator) or clamp x away from 0 in torch too",
    check=check,
)
