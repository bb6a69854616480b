"""MIL state ops (iOS18): ``read_state`` and ``coreml_update_state``.

A state input is bound, for one run, to a :class:`~..slots.StateSlot`; these
kernels read and replace its value. ``coreml_update_state(state, value)`` stores
``value`` in the state's declared dtype (fp16 rounding, also when fp16 execution
is ``float32``) and returns the stored value, as its definition says (it is
``write_state`` followed by ``read_state``). A saved program holds ``write_state``
+ ``read_state`` pairs; coremltools' program loader, which the emulator reads
every model through, turns each ``write_state`` back into ``coreml_update_state``,
so ``write_state`` never reaches the planner.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dtypes import store
from ..registry import OpContext, kernel
from ..slots import StateSlot


def _slot(ctx: OpContext, state: Any) -> StateSlot:
    if not isinstance(state, StateSlot):
        raise TypeError(f"{ctx.op_type} needs a state input, got {type(state).__name__}")
    return state


@kernel("read_state")
def read_state(ctx: OpContext, input: Any) -> np.ndarray:
    return _slot(ctx, input).value


@kernel("coreml_update_state")
def coreml_update_state(ctx: OpContext, state: Any, value: Any) -> np.ndarray:
    slot = _slot(ctx, state)
    arr = np.asarray(value)
    if arr.shape != slot.value.shape:
        raise ValueError(
            f"value of shape {arr.shape} written to state {slot.name!r} of shape {slot.value.shape}"
        )
    slot.value = store(arr, slot.dtype)
    return slot.value
