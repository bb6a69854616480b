"""Run Core ML ML Programs anywhere, with Core ML's typed (fp16) storage semantics.

This subpackage never imports pytest. ``Emulator(model)`` loads and plans a
model once; ``run`` and ``record`` execute the plan. :func:`emulate` is the
one-call form, caching the plan per model. Diagnosis reads a run through
:class:`Recording` and :class:`OpInfo` (and :attr:`Emulator.ops`), never the plan.

Layers, bottom up (each imports only those below it): ``errors``, ``dtypes``,
``slots``; ``registry`` (the ``@kernel`` table); ``kernels/``; ``catalog`` (imports
the kernels, looks them up); ``checks``; ``plan`` (data); the two engines,
``interpret`` and ``compile``; ``execute`` (one run); ``image_inputs`` (pixels to
the tensor an ``ImageType`` input reads, a leaf read by ``program``); this module.

What is modelled, and what is not, is written down in ``docs/emulator.md``.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .catalog import supported_ops
from .compile import CompiledBlock, compile_block, compile_nested
from .dtypes import F16, fp16_peak, to_declared
from .errors import (
    DuplicateKernelError,
    EmulatorError,
    InputError,
    KernelError,
    ModelLoadError,
    UnspecifiedResultError,
    UnsupportedFeatureError,
    UnsupportedOpError,
)
from .execute import Array, EmulatorState, execute
from .image_inputs import ImageInput, bind_images
from .loops import fuse_loops
from .plan import InputSpec, OpInfo, ProgramPlan, plan_function
from .program import ModelLike, load_program
from .registry import FP16_EXECUTION_MODES, Value
from .slots import StateSlot

__all__ = [
    "FP16_EXECUTION_MODES",
    "DuplicateKernelError",
    "Emulator",
    "EmulatorError",
    "EmulatorState",
    "ImageInput",
    "InputError",
    "InputSpec",
    "KernelError",
    "ModelLoadError",
    "OpInfo",
    "Recording",
    "UnspecifiedResultError",
    "UnsupportedFeatureError",
    "UnsupportedOpError",
    "emulate",
    "planned",
    "supported_ops",
]


@dataclass(frozen=True)
class Recording:
    """Every op's outputs from one run, in program order, in declared dtypes.

    ``outputs`` are the model outputs exactly as :meth:`Emulator.run` returns them
    (a rank-0 output with shape ``(1,)``, as Core ML returns it). ``values`` holds
    every value of the run by MIL variable name (model inputs, state inputs, each
    op's outputs and materialized constexpr outputs) in its declared dtype and
    declared shape, so a rank-0 value keeps shape ``()`` there. Values of ops inside
    loops are those of the last iteration. A state input's value is the state's
    content when the run started (the updated content is in the
    :class:`EmulatorState` passed to the run). ``ops`` lists every op in program
    order, nested ones included (see :class:`OpInfo`).
    """

    outputs: dict[str, Array]
    values: dict[str, Value]
    ops: tuple[OpInfo, ...]

    def op(self, name: str) -> OpInfo:
        """The op called ``name``; raises ``KeyError`` if the program has none."""
        return _op_named(self.ops, name)

    def op_outputs(self, op: OpInfo) -> list[Value | None]:
        """The op's output values in order (``None`` for one the run never reached)."""
        return [self.values.get(name) for name in op.outputs]

    def op_inputs(self, op: OpInfo) -> dict[str, list[Value | None]]:
        """The op's input values by input name, one per variable the input reads.

        A constant input reads as ``None`` here; its value is in
        :meth:`op_constants` (``None`` also for a value the run never reached).
        """
        return {k: [self.values.get(n) for n in names] for k, names in op.inputs.items()}

    def op_constants(self, op: OpInfo) -> dict[str, Value]:
        """The op's constant inputs by input name (see :attr:`OpInfo.constants`)."""
        return dict(op.constants)


def _op_named(ops: tuple[OpInfo, ...], name: str) -> OpInfo:
    for op in ops:
        if op.name == name:
            return op
    raise KeyError(f"no op named {name!r} in the program")


class Emulator:
    """A model loaded and planned once; ``run`` it as often as you like, from any thread.

    A stateful model (iOS18 state inputs) runs with a state from :meth:`make_state`,
    which each run reads and updates; concurrent runs need different states.

    ``fp16_execution`` is the execution profile, how fp16-typed ops execute:
    ``"typed"`` (default), ``"float32"`` or ``"fp16-sequential"`` (see
    :data:`FP16_EXECUTION_MODES` and docs/emulator.md, "Execution profiles").
    """

    def __init__(
        self, model: ModelLike, *, function_name: str = "main", fp16_execution: str = "typed"
    ) -> None:
        if fp16_execution not in FP16_EXECUTION_MODES:
            raise ValueError(
                f"fp16_execution={fp16_execution!r}; expected one of {FP16_EXECUTION_MODES}"
            )
        loaded = load_program(model, function_name)
        #: The plan both engines run. Internal: its layout may change between
        #: versions; read a model through :attr:`ops`, :class:`OpInfo` and
        #: :class:`Recording` instead.
        self.plan: ProgramPlan = plan_function(
            loaded.function,
            function_name=loaded.function_name,
            opset=loaded.opset,
            source=loaded.source,
            fp16_execution=fp16_execution,
            allowed=loaded.allowed,
        )
        self._compiled: CompiledBlock | None = compile_block(self.plan.block)
        self._nested = compile_nested(self.plan.block)
        self._nested.update(fuse_loops(self.plan.block, dict(self._nested)))  # fused GRU loops
        #: Inputs declared as images (``ct.ImageType``): a run takes their pixels.
        self.images: dict[str, ImageInput] = dict(loaded.images)

    @property
    def opset(self) -> str:
        """The function's opset (deployment target name, such as ``"iOS17"``)."""
        return self.plan.opset

    @property
    def compiled(self) -> bool:
        """Whether the top-level block runs compiled (it does unless it holds control flow)."""
        return self._compiled is not None

    @property
    def inputs(self) -> tuple[InputSpec, ...]:
        return self.plan.inputs

    @property
    def states(self) -> tuple[InputSpec, ...]:
        """The model's state buffers (name, dtype, shape); not among :attr:`inputs`."""
        return self.plan.states

    def make_state(self) -> EmulatorState:
        """New state buffers for this model, zero-filled, as Core ML's ``make_state``.

        Pass the same state to successive runs to carry it across predictions. A
        stateless model gives an empty state (which its runs accept).
        """
        return EmulatorState(self.plan.states)

    @property
    def output_names(self) -> tuple[str, ...]:
        return self.plan.output_names

    @property
    def ops(self) -> tuple[OpInfo, ...]:
        """Every op of the function in program order, nested ones included, with
        their inputs, outputs and constants (``const`` ops themselves are not listed:
        they are resolved into their consumers' :attr:`OpInfo.constants`)."""
        return self.plan.ops

    def op(self, name: str) -> OpInfo:
        """The op called ``name``; raises ``KeyError`` if the program has none."""
        return _op_named(self.plan.ops, name)

    def declared_dtype(self, var: str) -> Any:
        """The numpy dtype the program declares for variable ``var`` (an op output or
        input), or None for a non-tensor; raises ``KeyError`` for an unknown name."""
        return self.plan.var_dtypes[var]

    def run(
        self, inputs: Mapping[str, Value], *, state: EmulatorState | None = None
    ) -> dict[str, Array]:
        """Outputs keyed by the model's output names, in their declared dtypes.

        A rank-0 output has shape ``(1,)``, as Core ML's ``MLModel.predict`` gives it.
        A stateful model needs ``state`` (from :meth:`make_state`); the run updates it
        in place, and leaves it unchanged if it raises.
        """
        inputs = bind_images(inputs, self.images)
        outputs, _env = execute(
            self.plan, inputs, compiled=self._compiled, state=state, nested=self._nested
        )
        return outputs

    def record(
        self, inputs: Mapping[str, Value], *, state: EmulatorState | None = None
    ) -> Recording:
        """Run, keeping every value (declared dtype and shape) for diagnosis."""
        inputs = bind_images(inputs, self.images)
        outputs, env = execute(
            self.plan, inputs, compiled=self._compiled, record=True, state=state, nested=self._nested
        )
        values: dict[str, Value] = {}
        for name, value in env.items():
            if isinstance(value, StateSlot):
                values[name] = to_declared(value.initial, value.dtype)
                continue
            dtype = self.plan.var_dtypes.get(name)
            values[name] = to_declared(value, dtype) if dtype is not None else value
        return Recording(outputs=outputs, values=values, ops=self.plan.ops)

    def run_fp16_peak(
        self, inputs: Mapping[str, Value], *, state: EmulatorState | None = None
    ) -> tuple[dict[str, Array], float | None]:
        """:meth:`run`, plus the largest finite |value| any fp16-typed op output stored
        (None without one): what a scan of :meth:`record`'s values gives, read from the
        held values without converting each value of the run (guided fuzzing reads it
        on every example)."""
        inputs = bind_images(inputs, self.images)
        outputs, env = execute(
            self.plan, inputs, compiled=self._compiled, record=True, state=state, nested=self._nested
        )
        typed, undeclared = self._fp16_outputs
        arrays = [value for value in map(env.get, typed) if isinstance(value, np.ndarray)]
        for name in undeclared:  # kept as held by record(), a state slot as its initial value
            value = env.get(name)
            if isinstance(value, StateSlot):
                value = to_declared(value.initial, value.dtype)
            if isinstance(value, np.ndarray) and value.dtype == F16:
                arrays.append(value)
        return outputs, fp16_peak(arrays)

    @cached_property
    def _fp16_outputs(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Op outputs :meth:`record` may give as float16: those declared fp16, and those
        without a declared dtype (kept as held)."""
        dtypes = self.plan.var_dtypes
        names = dict.fromkeys(name for op in self.plan.ops for name in op.outputs)
        typed = tuple(n for n in names if dtypes.get(n) is not None and dtypes.get(n) == F16)
        undeclared = tuple(n for n in names if dtypes.get(n) is None)
        return typed, undeclared


# Keys are MLModel objects (coremltools has no type information).
_BY_MODEL: weakref.WeakKeyDictionary[Any, dict[str, Emulator]] = weakref.WeakKeyDictionary()
_BY_PATH: OrderedDict[tuple[str, str, int], Emulator] = OrderedDict()
_PATH_CACHE_SIZE = 16
_LOCK = threading.Lock()


def planned(model: ModelLike, function_name: str = "main", fp16_execution: str = "typed") -> Emulator:
    """The one planned :class:`Emulator` of ``model`` (an MLModel, per object; a path, by
    its files), ``function_name`` and execution mode: plan once, run and record many.
    :func:`emulate`, the emulator runner and headroom recording all share it."""
    if isinstance(model, (str, os.PathLike)):
        path = Path(model).resolve()
        try:
            stamp = max((p.stat().st_mtime_ns for p in path.rglob("*")), default=0) if path.is_dir() else path.stat().st_mtime_ns
        except OSError:
            stamp = -1
        key = (str(path), f"{function_name}:{fp16_execution}", stamp)
        with _LOCK:
            if key in _BY_PATH:
                _BY_PATH.move_to_end(key)
                return _BY_PATH[key]
        emulator = Emulator(model, function_name=function_name, fp16_execution=fp16_execution)
        with _LOCK:
            _BY_PATH[key] = emulator
            while len(_BY_PATH) > _PATH_CACHE_SIZE:
                _BY_PATH.popitem(last=False)
        return emulator
    try:
        per_model = _BY_MODEL.get(model)
    except TypeError:  # not weak-referenceable: plan without caching
        return Emulator(model, function_name=function_name, fp16_execution=fp16_execution)
    key_in_model = f"{function_name}:{fp16_execution}"
    if per_model is not None and key_in_model in per_model:
        return per_model[key_in_model]
    emulator = Emulator(model, function_name=function_name, fp16_execution=fp16_execution)
    with _LOCK:
        _BY_MODEL.setdefault(model, {})[key_in_model] = emulator
    return emulator


_emulator_for = planned  # the former private name (tests, tools)


def emulate(
    model: ModelLike,
    inputs: Mapping[str, Value],
    *,
    function_name: str = "main",
    record: bool = False,
    fp16_execution: str = "typed",
    state: EmulatorState | None = None,
) -> dict[str, Value]:
    """Run ``model`` (an MLModel or ``.mlpackage`` path) on ``inputs``, on any OS.

    Returns the outputs keyed by the model's output names, in the dtypes the
    model declares; a rank-0 output has shape ``(1,)``, as Core ML returns it.
    With ``record=True`` the dict instead holds every value by variable name, in
    program order (the model outputs among them, in their declared shapes).
    The plan is cached per model, so repeated calls pay no setup.
    ``fp16_execution="float32"`` keeps fp16-typed intermediates in float32, as Core
    ML's CPU may; the default ``"typed"`` stores them as binary16;
    ``"fp16-sequential"`` also accumulates fp16 matmul/linear/einsum in fp16, left
    to right, as Apple's Core AI interpreter does.
    A stateful model needs ``state``, made by ``Emulator(model).make_state()``
    (any emulator of the same model: a state holds arrays, not a plan).
    """
    emulator = planned(model, function_name, fp16_execution)
    if record:
        return emulator.record(inputs, state=state).values
    return emulator.run(inputs, state=state)
