"""What both engines do around every kernel call: turn its failure into the
emulator's error naming the op, and check each output's shape.

One implementation, used by the interpreter (:mod:`.interpret`), the compiled
blocks (:mod:`.compile`) and the planner's constexpr folding (:mod:`.plan`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from .errors import EmulatorError, KernelError, UnspecifiedResultError, UnsupportedFeatureError
from .registry import OpContext

if TYPE_CHECKING:
    from .plan import Step


def kernel_failure(ctx: OpContext, exc: Exception, *, when: str = "") -> EmulatorError:
    """The error to raise for a kernel of ``ctx`` that raised ``exc``.

    Callers re-raise ``exc`` itself when this returns it, else raise the result
    ``from exc``. An :class:`EmulatorError` is returned as is (an error from a
    nested block already names its op; a check already failed loudly), except
    :class:`UnspecifiedResultError`, which a kernel raises without naming its op: it
    becomes a :class:`KernelError` naming the op, with it as the ``__cause__``. A
    ``NotImplementedError`` (an attribute value or dtype the kernel does not model)
    becomes the loud :class:`UnsupportedFeatureError`; anything else a
    :class:`KernelError` naming the op, its opset and the original error. ``when``
    is added after "failed" (e.g. ``" while loading"``).
    """
    if isinstance(exc, EmulatorError) and not isinstance(exc, UnspecifiedResultError):
        return exc
    if isinstance(exc, NotImplementedError):
        return UnsupportedFeatureError(str(exc), f"{ctx.op_type} op {ctx.name!r}, opset {ctx.opset}")
    return KernelError(
        f"{ctx.op_type} op {ctx.name!r} (opset {ctx.opset}) failed{when}: "
        f"{type(exc).__name__}: {exc}"
    )


def check_shape(step: Step, index: int, held: npt.NDArray[np.generic]) -> None:
    """Raise unless ``held`` matches the declared shape (``None`` dims match anything)."""
    shape = step.ctx.output_shapes[index]
    if shape is None:
        return
    if held.ndim != len(shape) or any(
        want is not None and want != got for want, got in zip(shape, held.shape, strict=True)
    ):
        ctx = step.ctx
        raise KernelError(
            f"kernel for {ctx.op_type} op {ctx.name!r} produced shape {held.shape} "
            f"for output {step.outputs[index]!r}, but the program declares {shape}"
        )


def wrong_output_count(ctx: OpContext) -> KernelError:
    """The error for a multi-output kernel that returned the wrong number of values."""
    return KernelError(
        f"kernel for {ctx.op_type} op {ctx.name!r} returned the wrong number of outputs"
    )
