"""A KV cache state bound at a sequence length >= 2048 is miscompiled on iOS (Core AI).

coreai-models #124: on iPhone 17 Pro (iOS 27 beta), a GPU-pipelined decode bundle with
a dynamically sized KV cache gives corrupt output from the first token once the bound
state's sequence dimension reaches 2048; 1024 and below are exact, and macOS is right.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..program import LintProgram
from ..registry import Hit, Rule
from ._exported import mutated_buffers

LENGTH = 2048


def check(program: LintProgram) -> Iterator[Hit]:
    if not program.uses_gpu():
        return
    for name, shape in mutated_buffers(program.torch_source):
        long = [d for d in shape[:-1] if d >= LENGTH]  # the innermost dim is the head size
        if long:
            yield Hit(
                op=name, op_type="state",
                detail=f"state shape {shape}: a sequence dimension of {long[0]} (>= {LENGTH})",
                torch_line=f"buffer {name!r}",
            )  # fmt: skip


RULE = Rule(
    id="coreai-kv-cache-2048",
    title="a KV cache of 2048 or more positions is miscompiled on iOS (Core AI, GPU)",
    sources=("https://github.com/apple/coreai-models/issues/124",),
    applies="Core AI on iOS (iPhone 17 Pro, iOS 27 beta, coreai-core 1.0.0b2), GPU-pipelined decode; macOS is correct",
    checks="a state (a buffer forward updates) with a non-innermost dimension >= 2048",
    advice="cap the cache at 1024 positions on iOS (or chunk it), and test the iOS bundle on device",
    check=check,
    stack="coreai",
)
