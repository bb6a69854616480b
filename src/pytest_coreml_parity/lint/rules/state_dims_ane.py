"""A state whose innermost dimension is not a multiple of 32 fails on the Neural Engine.

coremltools #2631: a stateful model whose state width is 270 fails on the ANE (Xcode's
performance tab, "All compute units"), the same model with width 256 runs; CPU and GPU
are fine.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..program import LintProgram
from ..registry import Hit, Rule


def check(program: LintProgram) -> Iterator[Hit]:
    if not program.uses_ne():
        return
    for state in program.states:
        if state.shape and state.shape[-1] is not None and state.shape[-1] % 32:
            yield Hit(
                op=state.name,
                op_type="state",
                detail=f"shape {tuple(state.shape)}: innermost dimension {state.shape[-1]} is not a multiple of 32",
            )


RULE = Rule(
    id="coreml-state-dim-ane",
    title="a state dimension that is not a multiple of 32 fails on the Neural Engine",
    sources=("https://github.com/apple/coremltools/issues/2631",),
    applies="stateful programs (iOS18 / macOS15+), compute units ALL or CPU_AND_NE; reported on macOS 15.2, M4, coremltools 9.0",
    checks="each state's innermost dimension is a multiple of 32",
    advice="pad the state (the torch buffer) to a multiple of 32, or run with compute units CPU_AND_GPU",
    check=check,
)
