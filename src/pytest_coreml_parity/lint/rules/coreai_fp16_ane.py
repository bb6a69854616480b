"""FP16 programs give silent wrong outputs on the iPhone 17 Pro Neural Engine (Core AI).

coreai-torch #115.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..program import LintProgram
from ..registry import Hit, Rule


def check(program: LintProgram) -> Iterator[Hit]:
    if program.uses_ne() and program.precision in ("fp16", "mixed"):
        yield Hit(
            op="program", op_type=f"{program.precision} program",
            detail=f"converted at {program.precision}, compute units {program.compute_units}",
            torch_line=None,
        )  # fmt: skip


RULE = Rule(
    id="coreai-fp16-ane",
    title="FP16 Core AI programs can be silently wrong on the iPhone 17 Pro Neural Engine",
    sources=("https://github.com/apple/coreai-torch/issues/115",),
    applies="Core AI, fp16 programs on the Neural Engine of iPhone 17 Pro (A19 Pro)",
    checks="an fp16 (or mixed) Core AI program whose compute units include the Neural Engine",
    advice="compare on device against this test's reference (the plugin's golden dumps), or ship fp32 / CPU_AND_GPU for that device",
    check=check,
    stack="coreai",
)
