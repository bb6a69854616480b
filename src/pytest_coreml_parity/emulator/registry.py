"""The kernel registry: the ``@kernel`` decorator and the table it fills.

This module is a leaf: it imports no kernel and no engine. Kernel modules import
it to register themselves; :mod:`.catalog` imports the kernel modules (filling the
table) and is where the planner looks kernels up.

A kernel is called as ``fn(ctx, **inputs)``. Float inputs arrive as float32
arrays (fp16 values are held in float32, see :mod:`.dtypes`); integer and bool
inputs in their declared dtype; string parameters as ``str``; tuple inputs
(``concat(values=...)``) as tuples. The kernel returns one array, or a tuple for
multi-output ops, computed in float32 or wider. The engine, not the kernel,
rounds every output to the dtype the program declares.

Control-flow kernels (``control_flow=True``) run their nested blocks through
``ctx.run_block(index, values)``: the engine running the op binds a block runner
into the context (:meth:`OpContext.with_block_runner`), as onnx's reference
evaluator hands ``If`` its ``_run_then_branch``, so no kernel imports an engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .errors import DuplicateKernelError, KernelError

if TYPE_CHECKING:
    from .plan import BlockPlan

#: A value as kernels see it: an array, a numpy scalar, a ``str`` parameter, a tuple
#: of values, or a kernel-defined value such as a list. ``Any`` because numpy's
#: scalar and array types do not share a useful static type and kernels accept all.
Value = Any

#: ``fn(ctx, **inputs) -> output or tuple of outputs``; inputs vary by op type.
KernelFn = Callable[..., Value]

#: How fp16-typed ops execute (docs/emulator.md, "Execution profiles"). ``typed``
#: (default): every fp16 op output stored as binary16, interiors in float32.
#: ``float32``: fp16-typed intermediates held in float32, as Core ML's CPU may run
#: them. ``fp16-sequential``: typed, and fp16 matmul/linear/einsum accumulate in fp16
#: left to right over k, as Apple's Core AI interpreter was measured to.
FP16_EXECUTION_MODES = ("typed", "float32", "fp16-sequential")

#: The profile whose fp16 matmul, linear and einsum accumulate sequentially in fp16.
FP16_SEQUENTIAL = "fp16-sequential"


class BlockRunner(Protocol):
    """Runs a nested block with its inputs bound to ``values``; returns its outputs."""

    def __call__(self, block: BlockPlan, values: tuple[Value, ...], /) -> list[Value]: ...


@dataclass(frozen=True)
class OpContext:
    """What a kernel may know about the op it computes, fixed at plan time
    (plus, for control-flow ops, the block runner the engine binds per run)."""

    op_type: str
    name: str
    opset: str
    output_dtypes: tuple[np.dtype[Any] | None, ...]
    output_shapes: tuple[tuple[int | None, ...] | None, ...]
    blocks: tuple[BlockPlan, ...] = field(default=())
    location: str | None = None
    #: The execution profile (one of :data:`FP16_EXECUTION_MODES`); kernels whose
    #: accumulation it changes read it, the others ignore it.
    fp16_execution: str = "typed"
    block_runner: BlockRunner | None = field(default=None, compare=False, repr=False)

    @property
    def output_dtype(self) -> np.dtype[Any]:
        """The declared dtype of the single (first) output."""
        dtype = self.output_dtypes[0]
        if dtype is None:
            raise TypeError(f"op {self.name!r} ({self.op_type}) has a non-tensor output")
        return dtype

    def with_block_runner(self, runner: BlockRunner) -> OpContext:
        """This context with ``runner`` bound, for one execution of a control-flow op."""
        return replace(self, block_runner=runner)

    def run_block(self, index: int, values: tuple[Value, ...] = ()) -> list[Value]:
        """Run nested block ``index`` of this op on ``values``; its outputs, in order."""
        if self.block_runner is None:
            raise KernelError(
                f"{self.op_type} op {self.name!r} has nested blocks but no block runner was "
                "bound; control-flow kernels run only inside an engine"
            )
        return self.block_runner(self.blocks[index], values)


@dataclass(frozen=True)
class Kernel:
    fn: KernelFn
    control_flow: bool = False


_REGISTRY: dict[str, Kernel] = {}

#: A read-only view of every registered kernel by op type (filled as kernel modules load).
REGISTERED: Mapping[str, Kernel] = MappingProxyType(_REGISTRY)


def kernel(*op_types: str, control_flow: bool = False) -> Callable[[KernelFn], KernelFn]:
    """Register the decorated function as the kernel for ``op_types``.

    Raises :class:`DuplicateKernelError` if one of them already has a kernel.
    """

    def register(fn: KernelFn) -> KernelFn:
        for op_type in op_types:
            if op_type in _REGISTRY:
                raise DuplicateKernelError(op_type)
            _REGISTRY[op_type] = Kernel(fn, control_flow)
        return fn

    return register


#: Ops whose every output element is one of their float input elements, or a value
#: exactly representable in any float dtype (0, +-1, an integer of the input's
#: magnitude). When all their float operands are declared fp16, their fp16
#: outputs need no rounding, and the engines skip it (rounding would be the
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
        "thresholded_relu",
    }
)

#: Ops whose kernel returns, for every float output, a new array of its own: never an
#: input, a constant, a view of either or anything the kernel keeps (a ufunc's result,
#: a BLAS product, a torch kernel's output tensor viewed as numpy, or a view of such a
#: temporary nothing else holds). The fp16 rounding of their outputs may therefore
#: overwrite the array instead of allocating another (:func:`.dtypes.storer`, ``fresh``);
#: the bits are the same. ``test_fresh_output_ops_return_new_arrays`` checks the claim.
FRESH_OUTPUT_OPS = frozenset(
    {
        "add", "sub", "mul", "real_div", "pow",
        "exp", "sqrt", "rsqrt", "tanh",
        "linear", "matmul", "conv",
        "softmax", "gelu", "silu", "sigmoid", "sigmoid_hard",
        "layer_norm", "batch_norm",
    }
)  # fmt: skip

#: Ops whose outputs the kernel has already stored in their declared dtype: a state's
#: value (``store`` rounded it when it was written or bound). The engines do not
#: round them again (it would be the identity).
STORED_OUTPUT_OPS = frozenset({"read_state", "coreml_update_state"})
