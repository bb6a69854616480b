"""A 5-D scaled-dot-product attention loses accuracy on the Neural Engine of iOS 26.

executorch #16057 and #16144: models whose fused attention takes rank-5 tensors (grouped
heads, ``(B, G, H, L, D)``) give wrong outputs on the ANE with iOS 26.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..program import LintProgram
from ..registry import Hit, Rule


def check(program: LintProgram) -> Iterator[Hit]:
    if not program.uses_ne():
        return
    for op in program.ops_of("scaled_dot_product_attention"):
        shape = program.shape(op.inputs["query"][0]) if "query" in op.inputs else None
        if shape is not None and len(shape) >= 5:
            yield Hit(op=op.name, op_type=op.op_type, detail=f"query shape {shape} has rank {len(shape)}")


RULE = Rule(
    id="coreml-sdpa-5d-ane",
    title="5-D scaled_dot_product_attention is inaccurate on the iOS 26 Neural Engine",
    sources=(
        "https://github.com/pytorch/executorch/issues/16057",
        "https://github.com/pytorch/executorch/issues/16144",
    ),
    applies="opset iOS18+ (the fused op), iOS 26 / macOS 26, compute units ALL or CPU_AND_NE",
    checks="a scaled_dot_product_attention op whose query has rank 5 or more",
    advice="reshape the attention to rank 4 (fold the group into the head axis) before converting",
    check=check,
)
