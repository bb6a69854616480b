"""The kernel registry: one numpy function per MIL op type.

A kernel is called as ``fn(ctx, **inputs)``. Float inputs arrive as float32
arrays (fp16 values are held in float32, see :mod:`.dtypes`); integer and bool
inputs in their declared dtype; string parameters as ``str``; tuple inputs
(``concat(values=...)``) as tuples. The kernel returns one array, or a tuple for
multi-output ops, computed in float32 or wider. The runner, not the kernel,
rounds every output to the dtype the program declares.

Control-flow kernels (``control_flow=True``) also receive the run's variable
environment so they can execute their nested blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .plan import BlockPlan

KernelFn = Callable[..., Any]


@dataclass(frozen=True)
class OpContext:
    """What a kernel may know about the op it computes, fixed at plan time."""

    op_type: str
    name: str
    opset: str
    output_dtypes: tuple[np.dtype[Any] | None, ...]
    output_shapes: tuple[tuple[int | None, ...] | None, ...]
    blocks: tuple[BlockPlan, ...] = field(default=())
    location: str | None = None

    @property
    def output_dtype(self) -> np.dtype[Any]:
        """The declared dtype of the single (first) output."""
        dtype = self.output_dtypes[0]
        if dtype is None:
            raise TypeError(f"op {self.name!r} ({self.op_type}) has a non-tensor output")
        return dtype


@dataclass(frozen=True)
class Kernel:
    fn: KernelFn
    control_flow: bool = False


_REGISTRY: dict[str, Kernel] = {}


def kernel(*op_types: str, control_flow: bool = False) -> Callable[[KernelFn], KernelFn]:
    """Register the decorated function as the kernel for ``op_types``."""

    def register(fn: KernelFn) -> KernelFn:
        for op_type in op_types:
            if op_type in _REGISTRY:
                raise RuntimeError(f"two kernels registered for op type {op_type!r}")
            _REGISTRY[op_type] = Kernel(fn, control_flow)
        return fn

    return register


#: Ops whose every output element is one of their float input elements, or a value
#: exactly representable in any float dtype (0, +-1, an integer of the input's
#: magnitude). When all their float operands are declared fp16, their fp16
#: outputs need no rounding, and the runner skips it (rounding would be the
#: identity; ``test_exact_ops_keep_fp16_values_representable`` checks the claim).
EXACT_OPS = frozenset(
    {
        # data movement
        "reshape", "reshape_like", "transpose", "expand_dims", "squeeze", "flatten2d",
        "tile", "reverse", "reverse_sequence", "sliding_windows", "concat", "stack",
        "split", "slice_by_index", "slice_by_size", "slice_update", "identity",
        "gather", "gather_along_axis", "gather_nd", "band_part",
        "pixel_shuffle", "pixel_unshuffle", "space_to_depth", "depth_to_space",
        "space_to_batch", "batch_to_space", "crop",
        "upsample_nearest_neighbor", "resize_nearest_neighbor",
        # selection
        "maximum", "minimum", "select", "relu", "relu6", "abs", "sign",
        "floor", "ceil", "reduce_max", "reduce_min", "max_pool", "topk",
    }
)


def lookup(op_type: str) -> Kernel | None:
    """The kernel for ``op_type``, or ``None`` when the emulator has none."""
    _load_kernels()
    return _REGISTRY.get(op_type)


def supported_ops() -> frozenset[str]:
    """Every op type the emulator can run (``const`` is resolved while planning)."""
    _load_kernels()
    return frozenset(_REGISTRY) | {"const"}


def _load_kernels() -> None:
    from . import kernels  # noqa: F401  (importing registers every kernel module)
