"""Stateful models fail to run on the Neural Engine (CPU and GPU are fine).

coremltools #2553 (a KV-cache attention model with ``ct.StateType``); community LLM
projects report ``ANEServicesError -14`` for stateful models on the ANE.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..program import LintProgram
from ..registry import Hit, Rule


def check(program: LintProgram) -> Iterator[Hit]:
    if not program.uses_ne() or not program.states:
        return
    names = ", ".join(f"{s.name} {tuple(s.shape)}" for s in program.states)
    yield Hit(
        op=program.states[0].name,
        op_type="state",
        detail=f"the program declares {len(program.states)} state(s): {names}",
    )


RULE = Rule(
    id="coreml-stateful-ane",
    title="stateful models may fail to run on the Neural Engine",
    sources=(
        "https://github.com/apple/coremltools/issues/2553",
        "https://github.com/apple/coremltools/issues/2631",
    ),
    applies="stateful programs (iOS18 / macOS15+), compute units ALL or CPU_AND_NE",
    checks="the program declares states and may be placed on the Neural Engine",
    advice=(
        "test on device with compute units CPU_AND_NE; ship with CPU_AND_GPU if it fails, "
        "or keep the cache as model inputs/outputs instead of states"
    ),
    check=check,
)
