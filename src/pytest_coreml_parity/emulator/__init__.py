"""Run Core ML ML Programs anywhere, with Core ML's typed (fp16) storage semantics.

This subpackage never imports pytest. ``Emulator(model)`` loads and plans a
model once; ``run`` and ``record`` execute the plan. :func:`emulate` is the
one-call form, caching the plan per model.

What is modelled, and what is not, is written down in ``docs/emulator.md``.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .dtypes import to_declared
from .errors import (
    EmulatorError,
    InputError,
    KernelError,
    ModelLoadError,
    UnspecifiedResultError,
    UnsupportedFeatureError,
    UnsupportedOpError,
)
from .plan import InputSpec, OpInfo, ProgramPlan, StateSlot, plan_function
from .program import ModelLike, load_program
from .registry import supported_ops
from .run import EmulatorState, execute

__all__ = [
    "FP16_EXECUTION_MODES",
    "Emulator",
    "EmulatorError",
    "EmulatorState",
    "InputError",
    "KernelError",
    "ModelLoadError",
    "Recording",
    "UnspecifiedResultError",
    "UnsupportedFeatureError",
    "UnsupportedOpError",
    "emulate",
    "supported_ops",
]


@dataclass(frozen=True)
class Recording:
    """Every op's outputs from one run, in program order, in declared dtypes.

    Values of ops inside loops are those of the last iteration. A state input's
    value is the state's content when the run started (the updated content is in
    the :class:`EmulatorState` passed to the run).
    """

    outputs: dict[str, np.ndarray]
    values: dict[str, Any]
    ops: tuple[OpInfo, ...]

    def op_outputs(self, op: OpInfo) -> list[Any]:
        return [self.values.get(name) for name in op.outputs]

    def op_inputs(self, op: OpInfo) -> dict[str, list[Any]]:
        return {k: [self.values.get(n) for n in names] for k, names in op.inputs.items()}


#: ``typed`` (default): every fp16-typed op output is stored as binary16, as the program
#: declares (GPU and Neural Engine behaviour). ``float32``: fp16-typed intermediates are
#: kept in float32, as Core ML's CPU may execute them; model inputs and outputs keep
#: their declared dtypes. See docs/emulator.md.
FP16_EXECUTION_MODES = ("typed", "float32")


class Emulator:
    """A model loaded and planned once; ``run`` it as often as you like, from any thread.

    A stateful model (iOS18 state inputs) runs with a state from :meth:`make_state`,
    which each run reads and updates; concurrent runs need different states.

    ``fp16_execution`` chooses how fp16-typed ops execute (see :data:`FP16_EXECUTION_MODES`).
    """

    def __init__(
        self, model: ModelLike, *, function_name: str = "main", fp16_execution: str = "typed"
    ) -> None:
        if fp16_execution not in FP16_EXECUTION_MODES:
            raise ValueError(
                f"fp16_execution={fp16_execution!r}; expected one of {FP16_EXECUTION_MODES}"
            )
        loaded = load_program(model, function_name)
        self.plan: ProgramPlan = plan_function(
            loaded.function,
            function_name=loaded.function_name,
            opset=loaded.opset,
            source=loaded.source,
            fp16_as_fp32=fp16_execution == "float32",
        )

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
        return self.plan.ops

    def run(
        self, inputs: Mapping[str, Any], *, state: EmulatorState | None = None
    ) -> dict[str, np.ndarray]:
        """Outputs keyed by the model's output names, in their declared dtypes.

        A stateful model needs ``state`` (from :meth:`make_state`); the run updates it
        in place, and leaves it unchanged if it raises.
        """
        outputs, _env = execute(self.plan, inputs, state=state)
        return outputs

    def record(
        self, inputs: Mapping[str, Any], *, state: EmulatorState | None = None
    ) -> Recording:
        """Run, keeping every op's outputs (declared dtypes) for diagnosis."""
        outputs, env = execute(self.plan, inputs, record=True, state=state)
        values = {}
        for name, value in env.items():
            if isinstance(value, StateSlot):
                values[name] = to_declared(value.initial, value.dtype)
                continue
            dtype = self.plan.var_dtypes.get(name)
            values[name] = to_declared(value, dtype) if dtype is not None else value
        return Recording(outputs=outputs, values=values, ops=self.plan.ops)


_BY_MODEL: weakref.WeakKeyDictionary[Any, dict[str, Emulator]] = weakref.WeakKeyDictionary()
_BY_PATH: OrderedDict[tuple[str, str, int], Emulator] = OrderedDict()
_PATH_CACHE_SIZE = 16
_LOCK = threading.Lock()


def _emulator_for(model: ModelLike, function_name: str, fp16_execution: str = "typed") -> Emulator:
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


def emulate(
    model: ModelLike,
    inputs: Mapping[str, Any],
    *,
    function_name: str = "main",
    record: bool = False,
    fp16_execution: str = "typed",
    state: EmulatorState | None = None,
) -> dict[str, Any]:
    """Run ``model`` (an MLModel or ``.mlpackage`` path) on ``inputs``, on any OS.

    Returns the outputs keyed by the model's output names, in the dtypes the
    model declares. With ``record=True`` the dict instead holds every op's
    outputs by variable name, in program order (the model outputs among them).
    The plan is cached per model, so repeated calls pay no setup.
    ``fp16_execution="float32"`` keeps fp16-typed intermediates in float32, as Core
    ML's CPU may; the default ``"typed"`` stores them as binary16.
    A stateful model needs ``state``, made by ``Emulator(model).make_state()``
    (any emulator of the same model: a state holds arrays, not a plan).
    """
    emulator = _emulator_for(model, function_name, fp16_execution)
    if record:
        return emulator.record(inputs, state=state).values
    return emulator.run(inputs, state=state)
