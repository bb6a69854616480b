"""FP16 programs with a ``topk`` + ``gather`` head give silent wrong outputs on the
iPhone 17 Pro Neural Engine (Core AI).

coreai-torch #115: the YOLO26n pose model exported end to end (``topk`` whose indices
``gather`` the kept rows) returns wrong outputs, every confidence 0.0, at FP16 with the
default specialization or the Neural Engine preferred; CPU-only, GPU-preferred and the
FP32 export are correct. The detect model exported the same way is correct on the same
device, so the report does not blame every fp16 program, nor every ``topk``: the rule
fires only on the reported pattern (``topk`` indices feeding a gather), at fp16, with
the Neural Engine allowed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..program import LintProgram, node_line
from ..registry import Hit, Rule
from ._exported import call_nodes

#: What the kept indices of a ``topk`` may select rows with in an exported program.
_GATHERS = ("aten.gather", "aten.index", "aten.index_select", "aten.take_along_dim")


def _gathers_of(topk: Any) -> Iterator[Any]:
    """The gather-like nodes that read ``topk``'s indices (its output 1), through the
    reshapes, expands and offsets between them."""
    todo = [u for u in topk.users if "getitem" in str(u.target) and u.args[1:2] == (1,)]
    seen: set[Any] = set()
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        if node.op == "call_function" and any(str(node.target).startswith(g + ".") for g in _GATHERS):
            yield node
            continue
        todo.extend(node.users)


def check(program: LintProgram) -> Iterator[Hit]:
    if not program.uses_ne() or program.precision not in ("fp16", "mixed"):
        return
    for topk in call_nodes(program.torch_source, "aten.topk"):
        gather = next(_gathers_of(topk), None)
        if gather is None:
            continue
        yield Hit(
            op=topk.name, op_type="aten.topk",
            detail=f"its indices feed {gather.target} ({gather.name}) in a {program.precision} program, compute units {program.compute_units}",
            torch_line=node_line(topk),
        )  # fmt: skip


RULE = Rule(
    id="coreai-fp16-ane",
    title="an FP16 topk + gather head can be silently wrong on the iPhone 17 Pro Neural Engine (Core AI)",
    sources=("https://github.com/apple/coreai-torch/issues/115",),
    applies=(
        "Core AI fp16 programs on the Neural Engine (default specialization) of iPhone 17 Pro, iOS 27.0, "
        "coreai-torch 0.4.2 / coreai-core 1.0.0b2; CPU-only, GPU-preferred and fp32 are correct"
    ),
    checks="an fp16 (or mixed) Core AI program, compute units including the Neural Engine, whose topk indices feed a gather / index",
    advice=(
        "compare on the device against this test's reference; for that device ship the fp32 program or load it "
        "CPU-only / GPU-preferred"
    ),
    check=check,
    stack="coreai",
)
