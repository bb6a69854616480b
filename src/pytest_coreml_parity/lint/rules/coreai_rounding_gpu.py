"""Core AI's GPU delegate runs ``floor``, ``trunc`` and ``ceil`` as the identity.

coreai-torch #10: on the GPU delegate ``aten.floor/trunc/ceil`` return their input
unchanged and ``round`` rounds ties away from zero; the CPU is right. The converter
also folds ``div(x, 1, rounding_mode="floor")`` to the identity.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..program import LintProgram, node_line
from ..registry import Hit, Rule
from ._exported import call_nodes


def check(program: LintProgram) -> Iterator[Hit]:
    if not program.uses_gpu():
        return
    for node in call_nodes(program.torch_source, "aten.floor", "aten.trunc", "aten.ceil", "aten.round"):
        kind = str(node.target).split(".")[1]
        what = "rounds ties away from zero" if kind == "round" else "runs as the identity"
        yield Hit(op=node.name, op_type=f"aten.{kind}", detail=f"{kind} {what} on the GPU delegate", torch_line=node_line(node))


RULE = Rule(
    id="coreai-rounding-gpu",
    title="floor / trunc / ceil run as identity (round: ties away from zero) on Core AI's GPU delegate",
    sources=("https://github.com/apple/coreai-torch/issues/10",),
    applies="Core AI (coreai-torch 0.4, coreai-core 1.0.0b1), GPU delegate; reported on macOS 27.0, M4 Max",
    checks="aten.floor, aten.trunc, aten.ceil or aten.round in the exported program",
    advice="run these parts on the CPU, or test on the GPU delegate; div(x * 2, 2, rounding_mode='floor') survives conversion",
    check=check,
    stack="coreai",
)
