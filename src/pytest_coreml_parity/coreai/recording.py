"""Per-op values from coreai-core's interpreter, for diagnosis.

:func:`record` runs a debug build of the program in the isolated worker with coreai-core's
``IntermediateLogger`` (through coreai-torch's ``CoreAIInspector``) and returns every op's
output that the interpreter materializes, in op-id order (coreai-torch numbers ops in IR
order, so producers come before consumers), each with its Core AI op type, the user source
line and the torch node it was lowered from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from .program import CoreAIProgram


@dataclass(frozen=True)
class OpValue:
    """One output of one Core AI op, as the interpreter computed it."""

    name: str  # the torch node when known ("mul_2"), else "coreai:<id>"; "[i]" for output i > 0
    op_type: str  # "coreai.decomposable.broadcasting_mul"
    value: np.ndarray
    source_line: str | None  # "model.py:15" in the user's code, or None
    op_id: int = -1
    torch_target: str | None = None  # "aten.mul.Tensor"

    @property
    def nonfinite(self) -> int:
        """How many elements are nan or ±inf (0 for non-float values)."""
        import numpy as np

        if not np.issubdtype(self.value.dtype, np.floating):
            return 0
        return int(self.value.size - np.count_nonzero(np.isfinite(self.value)))


def record(
    program: CoreAIProgram,
    inputs: Sequence[Any] | Mapping[str, Any],
    *,
    timeout: float | None = None,
) -> list[OpValue]:
    """Every materialized op output of ``program`` on ``inputs`` (positional or by name)."""
    from .worker import default_worker

    feed = (
        program.feed(*[inputs[spec.name] for spec in program.inputs])
        if isinstance(inputs, Mapping)
        else program.feed(*inputs)
    )
    values, _ = default_worker().record(program, feed, timeout=timeout)
    found: list[OpValue] = []
    for op_id in sorted(values):
        info = program.op(op_id)
        if info is None:  # graph/module-level ids carry no value worth reporting
            continue
        arrays = values[op_id]
        base = info.torch_node or f"coreai:{op_id}"
        for index, array in enumerate(arrays):
            if array is None:
                continue
            found.append(
                OpValue(
                    name=base if index == 0 else f"{base}[{index}]",
                    op_type=info.op_type,
                    value=array,
                    source_line=info.source_line,
                    op_id=op_id,
                    torch_target=info.torch_target,
                )
            )
    return found


def first_nonfinite_op(values: Sequence[OpValue]) -> OpValue | None:
    """The first op (in op-id order) whose output has a nan or inf, or None."""
    return next((value for value in values if value.nonfinite), None)


__all__ = ["OpValue", "first_nonfinite_op", "record"]
