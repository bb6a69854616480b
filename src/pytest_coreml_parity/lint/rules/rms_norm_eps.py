"""The ``rms_norm`` lowering adds eps to the mean square of ``x / max|x|``: eps grows by max|x|^2.

coremltools #2821: to avoid fp16 overflow, coremltools 9 lowers ``aten::rms_norm`` as
``x / (sqrt(mean((x / m)^2) + eps) * m)`` with ``m = max|x|``, which equals
``x / sqrt(mean(x^2) + eps * m^2)``: the effective epsilon is ``eps * max|x|^2``.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..program import LintProgram
from ..registry import Hit, Rule


def check(program: LintProgram) -> Iterator[Hit]:
    for op in program.ops_of("add"):
        chain = [op]
        for expected in ("reduce_mean", "square", "real_div"):
            names = chain[-1].inputs.get("x", ())
            producer = program.producers.get(names[0]) if len(names) == 1 else None
            if producer is None or producer.op_type != expected:
                break
            chain.append(producer)
        else:
            divisor = chain[-1].inputs.get("y", ())
            if len(divisor) == 1 and program.producer_type(divisor[0]) == "reduce_max":
                eps = op.constants.get("y")
                shown = f"{float(eps):.3g}" if eps is not None and getattr(eps, "size", 0) == 1 else "eps"
                yield Hit(
                    op=op.name, op_type=op.op_type,
                    detail=f"adds {shown} to mean((x / max|x|)^2): effective eps is {shown} * max|x|^2",
                )  # fmt: skip


RULE = Rule(
    id="coreml-rms-norm-eps",
    title="the rms_norm lowering inflates eps by max|x|^2",
    sources=("https://github.com/apple/coremltools/issues/2821",),
    applies="coremltools 9.0 torch frontend (torch.nn.functional.rms_norm / nn.RMSNorm; every OS)",
    checks="add(reduce_mean(square(real_div(x, reduce_max(...)))), eps): the scaled rms_norm lowering",
    advice=(
        "write RMSNorm out in torch (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)) "
        "so eps keeps its meaning, or accept the larger eps in the tolerance"
    ),
    check=check,
)
