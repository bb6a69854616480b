"""The fused scaled-dot-product attention op is wrong on the GPU for batch >= 10.

coremltools #2650 (macOS 26.2): ``scaled_dot_product_attention`` (iOS18 opset) gives
wrong outputs on the GPU once the batch reaches 10; smaller batches are right.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..program import LintProgram
from ..registry import Hit, Rule

BATCH = 10


def check(program: LintProgram) -> Iterator[Hit]:
    if not program.uses_gpu():
        return
    for op in program.ops_of("scaled_dot_product_attention"):
        shape = program.shape(op.inputs["query"][0]) if "query" in op.inputs else None
        if not shape or len(shape) < 3:
            continue
        batch = shape[0]
        if batch is None or batch >= BATCH:
            yield Hit(
                op=op.name,
                op_type=op.op_type,
                detail=f"query shape {shape}: batch {'is flexible' if batch is None else batch} (>= {BATCH})",
            )


RULE = Rule(
    id="coreml-sdpa-gpu-batch",
    title="fused scaled_dot_product_attention is wrong on the GPU for batch >= 10",
    sources=("https://github.com/apple/coremltools/issues/2650",),
    applies="opset iOS18+ (the fused op), compute units ALL or CPU_AND_GPU; reported on macOS 26.2",
    checks="a scaled_dot_product_attention op whose query batch is >= 10 (or flexible)",
    advice=(
        "convert with a deployment target below iOS18 (attention is decomposed into "
        "matmul/softmax), split the batch below 10, or run with CPU_AND_NE / CPU_ONLY"
    ),
    check=check,
)
