"""Plan a MIL function once into flat, immutable steps: the plan is data.

Planning resolves every ``const`` into a numpy value, binds each op to its
kernel and records the declared output dtypes and shapes. Two engines run a
plan: :mod:`.interpret` walks its steps, :mod:`.compile` turns a straight-line
block into one Python function; this module imports neither. Running a plan
does no lookups beyond a dict of variable values, so one plan serves thousands
of hypothesis examples, from several threads at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from ..shapes import AllowedShapes
from .catalog import lookup
from .checks import kernel_failure
from .dtypes import F16, F32, MIL_TO_NUMPY, store, storer
from .errors import UnsupportedFeatureError, UnsupportedOpError
from .mil import MilVar
from .registry import (
    EXACT_OPS,
    FP16_EXECUTION_MODES,
    FRESH_OUTPUT_OPS,
    STORED_OUTPUT_OPS,
    KernelFn,
    OpContext,
    Value,
)
from .specialize import specialised

#: MIL objects: :mod:`.mil`'s (``MilFunction``, ``MilBlock``, ``MilOp``, ``MilVar``), or
#: coremltools' own (``Function``, ``Block``, ``Operation``, ``Var``), which ship no type
#: information: ``Any`` is forced on us there.
MilObject = Any

#: Rounds a value to a declared dtype, returning it in its holding dtype.
Storer = Callable[[Value], npt.NDArray[Any]]

#: An op input as planned: ("ref", var_name) or ("const", value).
Operand = tuple[str, Value]


@dataclass(frozen=True)
class Step:
    """One op: its kernel, its fixed context, and where its values come from."""

    fn: KernelFn
    control_flow: bool
    ctx: OpContext
    consts: dict[str, Value]
    refs: tuple[tuple[str, str], ...]
    tuples: tuple[tuple[str, tuple[Operand, ...]], ...]
    outputs: tuple[str, ...]
    input_names: dict[str, tuple[str, ...]]
    #: Per output: the rounding function for its declared dtype (None: not a tensor).
    storers: tuple[Storer | None, ...] = ()
    #: Per output: the declared shape when fully static (a fast equality check), else None.
    shapes: tuple[tuple[int, ...] | None, ...] = ()
    single_output: bool = False


@dataclass(frozen=True)
class BlockPlan:
    """A block: the names bound on entry, its steps, and what it returns."""

    inputs: tuple[str, ...]
    input_dtypes: tuple[np.dtype[Any] | None, ...]
    steps: tuple[Step, ...]
    outputs: tuple[Operand, ...]


@dataclass(frozen=True)
class InputSpec:
    """A declared function input: name, dtype and shape (None for a flexible dim)."""

    name: str
    dtype: np.dtype[Any]
    shape: tuple[int | None, ...]
    #: The shapes the model description allows (enumerated or ranged), when known.
    allowed: AllowedShapes | None = field(default=None, compare=False)


@dataclass(frozen=True)
class OpInfo:
    """Program-order description of an op, for recordings and diagnosis.

    ``inputs`` maps each input name to the variable names it reads (one, or several
    for a tuple input such as ``concat(values=...)``); ``outputs`` names the op's
    output variables; ``depth`` is 0 at the top level and one more per nested
    block; ``location`` is the torch module path coremltools kept, if any.
    ``constants`` maps each input given by a constant (a ``const`` op, or a
    constexpr output materialized at load) to its value, held as the engines hold
    it: float constants as float32 arrays (an fp16 one exactly representable in
    fp16), other dtypes as declared, ``str`` parameters as ``str``. The arrays are
    shared with the plan: do not modify them.
    """

    op_type: str
    name: str
    inputs: dict[str, tuple[str, ...]]
    outputs: tuple[str, ...]
    depth: int
    location: str | None
    constants: Mapping[str, Value] = field(
        default_factory=lambda: MappingProxyType({}), compare=False, repr=False
    )


@dataclass(frozen=True)
class ProgramPlan:
    """A whole planned function."""

    function_name: str
    opset: str
    source: str
    inputs: tuple[InputSpec, ...]
    block: BlockPlan
    output_names: tuple[str, ...]
    var_dtypes: dict[str, np.dtype[Any] | None]
    ops: tuple[OpInfo, ...] = field(default=())
    #: Outputs of constexpr ops, materialized while planning (as Core ML does at load).
    folded: dict[str, Value] = field(default_factory=dict)
    #: State inputs (iOS18 ``state<tensor>``): name, dtype and shape of the wrapped tensor.
    #: They are not among ``inputs``; a run binds each to a :class:`~.slots.StateSlot`.
    states: tuple[InputSpec, ...] = ()
    #: Per function output (as ``output_names``): its declared shape, None dims where
    #: symbolic, or None when the output is not a tensor.
    output_shapes: tuple[tuple[int | None, ...] | None, ...] = ()


def declared_dtype(var: MilObject) -> np.dtype[Any] | None:
    """The numpy dtype a MIL var is declared with, or None for non-tensor types."""
    if isinstance(var, MilVar):
        return var.dtype
    from coremltools.converters.mil.mil import types

    if not (types.is_tensor(var.sym_type) or types.is_scalar(var.sym_type)):
        return None  # lists and other non-tensor values; `var.dtype` raises for them
    return MIL_TO_NUMPY.get(types.builtin_to_string(var.dtype))


def static_shape(var: MilObject) -> tuple[int | None, ...] | None:
    """The declared shape with symbolic dims as None, or None when not a tensor."""
    if isinstance(var, MilVar):
        return var.shape
    from coremltools.converters.mil.mil import types

    if types.is_scalar(var.sym_type):
        return ()
    if not types.is_tensor(var.sym_type):
        return None
    return tuple(int(d) if isinstance(d, (int, np.integer)) else None for d in var.shape)


def const_value(var: MilObject) -> Value:
    """A const var's value in the form kernels expect (held dtype, or str)."""
    val = var.val
    if isinstance(val, (str, np.str_)):
        return str(val)
    dtype = declared_dtype(var)
    arr = np.asarray(val)
    if dtype is None:
        return arr
    return store(arr, dtype)


class _Planner:
    def __init__(self, opset: str, fp16_execution: str = "typed") -> None:
        self.opset = opset
        self.fp16_execution = fp16_execution
        self.fp16_as_fp32 = fp16_execution == "float32"
        self.var_dtypes: dict[str, np.dtype[Any] | None] = {}
        self.ops: list[OpInfo] = []
        self.folded: dict[str, Value] = {}

    def operand(self, var: MilObject) -> Operand:
        if var.name in self.folded:
            return ("const", self.folded[var.name])
        if var.val is not None and (var.op is None or var.op.op_type == "const"):
            return ("const", const_value(var))
        return ("ref", var.name)

    def block(self, block: MilObject, depth: int) -> BlockPlan:
        input_vars = list(block.inputs.values() if isinstance(block.inputs, dict) else block.inputs)
        inputs = tuple(v.name for v in input_vars)
        input_dtypes = tuple(declared_dtype(v) for v in input_vars)
        if depth > 0 and self.fp16_as_fp32:  # loop-carried values stay float32 too
            input_dtypes = tuple(F32 if d == F16 else d for d in input_dtypes)
        for v, d in zip(input_vars, input_dtypes, strict=True):
            self.var_dtypes[v.name] = d
        steps = [self.step(op, depth) for op in block.operations if op.op_type != "const"]
        outputs = tuple(self.operand(v) for v in block.outputs)
        return BlockPlan(inputs, input_dtypes, tuple(s for s in steps if s), outputs)

    def step(self, op: MilObject, depth: int) -> Step | None:
        kern = lookup(op.op_type)
        if kern is None:
            raise UnsupportedOpError(op.op_type, op.name, self.opset)
        consts: dict[str, Value] = {}
        refs: list[tuple[str, str]] = []
        tuples: list[tuple[str, tuple[Operand, ...]]] = []
        input_names: dict[str, tuple[str, ...]] = {}
        for key, value in op.inputs.items():
            if isinstance(value, (list, tuple)):
                tuples.append((key, tuple(self.operand(v) for v in value)))
                input_names[key] = tuple(v.name for v in value)
                continue
            kind, payload = self.operand(value)
            input_names[key] = (value.name,)
            if kind == "const":
                consts[key] = payload
            else:
                refs.append((key, payload))
        outputs = tuple(v.name for v in op.outputs)
        out_dtypes = tuple(declared_dtype(v) for v in op.outputs)
        for name, dtype in zip(outputs, out_dtypes, strict=True):
            self.var_dtypes[name] = dtype
        location = _location(op)
        info = OpInfo(
            op.op_type, op.name, input_names, outputs, depth, location, MappingProxyType(consts)
        )
        self.ops.append(info)
        blocks = tuple(self.block(b, depth + 1) for b in op.blocks)
        ctx = OpContext(
            op_type=op.op_type,
            name=op.name,
            opset=self.opset,
            output_dtypes=out_dtypes,
            output_shapes=tuple(static_shape(v) for v in op.outputs),
            blocks=blocks,
            location=location,
            fp16_execution=self.fp16_execution,
        )
        exact = op.op_type in STORED_OUTPUT_OPS or (
            op.op_type in EXACT_OPS and _float_operands_all_fp16(op)
        )
        fresh = op.op_type in FRESH_OUTPUT_OPS
        if op.op_type.startswith("constexpr_") and not refs and not blocks:
            self.fold(kern.fn, ctx, consts, tuples, outputs, out_dtypes)
            return None
        refs_t, tuples_t = tuple(refs), tuple(tuples)
        return Step(
            fn=specialised(op.op_type, ctx, consts, refs_t, tuples_t, kern.fn) or kern.fn,
            control_flow=kern.control_flow,
            ctx=ctx,
            consts=consts,
            refs=refs_t,
            tuples=tuples_t,
            outputs=outputs,
            input_names=input_names,
            storers=tuple(
                storer(F32 if d == F16 and (exact or self.fp16_as_fp32) else d, fresh=fresh)
                if d is not None
                else None
                for d in out_dtypes
            ),
            shapes=tuple(
                cast("tuple[int, ...]", s)
                if s is not None and all(d is not None for d in s)
                else None
                for s in ctx.output_shapes
            ),
            single_output=len(outputs) == 1 and out_dtypes[0] is not None,
        )

    def fold(
        self,
        fn: KernelFn,
        ctx: OpContext,
        consts: dict[str, Value],
        tuples: list[tuple[str, tuple[Operand, ...]]],
        outputs: tuple[str, ...],
        out_dtypes: tuple[np.dtype[Any] | None, ...],
    ) -> None:
        """Materialize a constexpr op now: Core ML does it once, when it loads the model."""
        kwargs = dict(consts)
        for key, items in tuples:
            kwargs[key] = tuple(payload for _kind, payload in items)
        try:
            with np.errstate(all="ignore"):
                result = fn(ctx, **kwargs)
        except Exception as exc:
            failure = kernel_failure(ctx, exc, when=" while loading")
            if failure is exc:
                raise
            raise failure from exc
        results = (result,) if len(outputs) == 1 else tuple(result)
        for name, value, dtype in zip(outputs, results, out_dtypes, strict=True):
            self.folded[name] = store(value, dtype) if dtype is not None else value


def _float_operands_all_fp16(op: MilObject) -> bool:
    """True when every float input of ``op`` is declared fp16 (and there is one)."""
    dtypes = []
    for value in op.inputs.values():
        for var in value if isinstance(value, (list, tuple)) else (value,):
            dtype = declared_dtype(var)
            if dtype is not None and dtype.kind == "f":
                dtypes.append(dtype)
    return bool(dtypes) and all(d == F16 for d in dtypes)


def _location(op: MilObject) -> str | None:
    """Where coremltools says the op came from (torch module path), when it kept it."""
    scopes = getattr(op, "scopes", None)
    if not scopes:
        return None
    parts = []
    for key, values in scopes.items():
        if values and "COREMLTOOLS_GRAPH_PASS" not in str(key):
            parts.append("/".join(str(v) for v in values))
    return "; ".join(parts) or None


def plan_function(
    function: MilObject,
    *,
    function_name: str,
    opset: str,
    source: str,
    fp16_execution: str = "typed",
    allowed: tuple[AllowedShapes, ...] = (),
) -> ProgramPlan:
    """Plan a MIL function; raises :class:`UnsupportedOpError` before anything runs.

    ``fp16_execution`` is the profile (:data:`~.registry.FP16_EXECUTION_MODES`): with
    ``"float32"`` the outputs of fp16-typed ops (and nested block inputs) are held in
    float32 without rounding, the function's inputs and outputs keeping their types;
    every op's context carries it, for kernels whose accumulation it changes.
    """
    if fp16_execution not in FP16_EXECUTION_MODES:
        raise ValueError(
            f"fp16_execution={fp16_execution!r}; expected one of {FP16_EXECUTION_MODES}"
        )
    planner = _Planner(opset, fp16_execution)
    by_name = {a.name: a for a in allowed}
    inputs = []
    states = []
    for name, var in function.inputs.items():
        if _is_state(var):
            states.append(_state_spec(name, var, opset))
            planner.var_dtypes[name] = None  # bound to a StateSlot, not an array
            continue
        dtype = declared_dtype(var)
        if dtype is None:
            raise UnsupportedFeatureError(
                f"input of type {var.sym_type}", f"input {name!r}, opset {opset}"
            )
        inputs.append(InputSpec(name, dtype, static_shape(var) or (), by_name.get(name)))
        planner.var_dtypes[name] = dtype
    block = planner.block(function, depth=0)
    output_names = tuple(v.name for v in function.outputs)
    for v in function.outputs:
        planner.var_dtypes.setdefault(v.name, declared_dtype(v))
    return ProgramPlan(
        function_name=function_name,
        opset=opset,
        source=source,
        inputs=tuple(inputs),
        block=block,
        output_names=output_names,
        var_dtypes=planner.var_dtypes,
        ops=tuple(planner.ops),
        folded=planner.folded,
        states=tuple(states),
        output_shapes=tuple(static_shape(v) for v in function.outputs),
    )


def _is_state(var: MilObject) -> bool:
    if isinstance(var, MilVar):
        return var.kind == "state"
    from coremltools.converters.mil.mil import types

    return bool(types.is_state(var.sym_type))


def _state_spec(name: str, var: MilObject, opset: str) -> InputSpec:
    """The wrapped tensor of a ``state`` input, which must have a static shape."""
    if isinstance(var, MilVar):
        dtype, shape = var.state_dtype, var.state_shape or ()
        if dtype is None or any(d is None for d in shape):
            raise UnsupportedFeatureError(
                f"input of type {var.sym_type}", f"state input {name!r}, opset {opset}"
            )
        return InputSpec(name, dtype, shape)
    from coremltools.converters.mil.mil import types

    wrapped = var.sym_type.wrapped_type()
    dtype = (
        MIL_TO_NUMPY.get(types.builtin_to_string(wrapped.get_primitive()))
        if types.is_tensor(wrapped)
        else None
    )
    shape = tuple(
        int(d) if isinstance(d, (int, np.integer)) else None for d in wrapped.get_shape()
    ) if dtype is not None else ()
    if dtype is None or any(d is None for d in shape):
        raise UnsupportedFeatureError(
            f"input of type {var.sym_type}", f"state input {name!r}, opset {opset}"
        )
    return InputSpec(name, dtype, shape)
