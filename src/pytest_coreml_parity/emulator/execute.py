"""One run of a plan: bind and check inputs and state, pick the engine, shape the outputs.

The top-level block runs compiled (:mod:`.compile`) when the caller passes its
compiled form, else interpreted (:mod:`.interpret`). Model outputs come back in
their declared dtypes; a rank-0 output comes back with shape ``(1,)``, as Core
ML's ``MLModel.predict`` returns it (recorded values keep their declared shape).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import numpy.typing as npt

from .compile import CompiledBlock, NestedBlocks
from .dtypes import store, to_declared
from .errors import InputError
from .interpret import Env, run_block
from .plan import InputSpec, ProgramPlan
from .registry import Value
from .slots import StateSlot

#: An array in any dtype (held values are float32, int or bool; outputs are declared dtypes).
Array = npt.NDArray[np.generic]


def bind_inputs(plan: ProgramPlan, inputs: Mapping[str, Value]) -> tuple[Array, ...]:
    """Validate user inputs against the declared ones and convert them to held values."""
    if not isinstance(inputs, Mapping):
        raise InputError(
            f"inputs must map input names to arrays, got {type(inputs).__name__}; "
            f"the model's inputs are {[i.name for i in plan.inputs]}"
        )
    expected = [i.name for i in plan.inputs]
    missing = [n for n in expected if n not in inputs]
    unknown = [n for n in inputs if n not in expected]
    if missing or unknown:
        states = [n for n in unknown if n in {s.name for s in plan.states}]
        hint = f" ({states} are states: pass them with state=)" if states else ""
        raise InputError(
            f"{plan.source}: inputs do not match the model: missing {missing}, "
            f"unexpected {unknown}; the model's inputs are {expected}{hint}"
        )
    bound = []
    for spec in plan.inputs:
        bound.append(_held(inputs[spec.name], spec, "input"))
    return tuple(bound)


def _held(value: Value, spec: InputSpec, what: str) -> Array:
    """``value`` checked against ``spec`` and rounded to its dtype (held form)."""
    arr = np.asarray(value)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise InputError(f"{what} {spec.name!r} has dtype {arr.dtype}; expected numbers")
    if len(spec.shape) != arr.ndim or any(
        want is not None and want != got for want, got in zip(spec.shape, arr.shape, strict=True)
    ):
        shown = tuple("?" if d is None else d for d in spec.shape)
        raise InputError(f"{what} {spec.name!r} has shape {arr.shape}; the model declares {shown}")
    if spec.allowed is not None and not spec.allowed.allows(arr.shape):
        # Core ML rejects a shape outside the enumeration or range: so do we.
        raise InputError(
            f"{what} {spec.name!r} has shape {arr.shape}; the model allows "
            f"{spec.allowed.describe()}"
        )
    return store(arr, spec.dtype)


class EmulatorState(Mapping[str, Array]):
    """The state buffers of a stateful model, as Core ML's ``MLState``: one array per
    state input, made by :meth:`Emulator.make_state` (zeros) and read and updated in
    place by every run given it.

    ``state[name]`` is a copy of the buffer in its declared dtype; ``state[name] = arr``
    replaces it (shape checked, rounded to the declared dtype as inputs are), like
    ``MLState.withMultiArray``. A state must not be used by two runs at once.
    """

    def __init__(self, specs: tuple[InputSpec, ...]) -> None:
        self._specs = {spec.name: spec for spec in specs}
        self._arrays = {
            spec.name: np.zeros(tuple(d or 0 for d in spec.shape), spec.dtype) for spec in specs
        }

    @property
    def specs(self) -> tuple[InputSpec, ...]:
        """Name, dtype and shape of each state buffer."""
        return tuple(self._specs.values())

    def __getitem__(self, name: str) -> Array:
        return self._arrays[name].copy()

    def __setitem__(self, name: str, value: Value) -> None:
        spec = self._specs.get(name)
        if spec is None:
            raise KeyError(f"no state named {name!r}; the states are {list(self._specs)}")
        self._arrays[name] = to_declared(_held(value, spec, "state"), spec.dtype).copy()

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __repr__(self) -> str:
        shown = ", ".join(f"{s.name}: {s.dtype}{list(s.shape)}" for s in self._specs.values())
        return f"EmulatorState({{{shown}}})"


def bind_state(plan: ProgramPlan, state: EmulatorState | None) -> tuple[StateSlot, ...]:
    """One fresh slot per state input of ``plan``, holding ``state``'s current values."""
    names = [s.name for s in plan.states]
    if state is None:
        if plan.states:
            raise InputError(
                f"{plan.source}: the model has state inputs {names}; pass "
                "state=emulator.make_state() (and the same state to every run that continues it)"
            )
        return ()
    if not isinstance(state, EmulatorState):
        raise InputError(
            f"state must be an EmulatorState made by Emulator.make_state(), "
            f"got {type(state).__name__}"
        )
    if state.specs != plan.states:
        if not plan.states:
            raise InputError(
                f"{plan.source}: the model has no state inputs, but the state given holds "
                f"{list(state)}; pass no state, or an empty one"
            )
        raise InputError(
            f"{plan.source}: the state given does not belong to this model: it holds "
            f"{_describe(state.specs)}, the model's states are {_describe(plan.states)}; "
            "make it with this model's make_state()"
        )
    slots = []
    for spec in plan.states:
        held = store(state._arrays[spec.name], spec.dtype)
        if held is state._arrays[spec.name]:  # no conversion made a copy: runs never share
            held = held.copy()
        slots.append(StateSlot(spec.name, spec.dtype, held))
    return tuple(slots)


def _describe(specs: tuple[InputSpec, ...]) -> str:
    return "{" + ", ".join(f"{s.name}: {s.dtype}{list(s.shape)}" for s in specs) + "}"


def commit_state(state: EmulatorState | None, slots: tuple[StateSlot, ...]) -> None:
    """Write each slot's final value back into ``state`` (after a successful run)."""
    if state is None:
        return
    for slot in slots:
        state._arrays[slot.name] = np.array(slot.value, dtype=slot.dtype, copy=True)


def block_values(
    plan: ProgramPlan, bound: tuple[Array, ...], slots: tuple[StateSlot, ...]
) -> tuple[Value, ...]:
    """The top-level block's input values: user inputs and state slots, in program order."""
    if not slots:
        return bound
    by_name: dict[str, Value] = {spec.name: v for spec, v in zip(plan.inputs, bound, strict=True)}
    by_name.update((slot.name, slot) for slot in slots)
    return tuple(by_name[name] for name in plan.block.inputs)


def execute(
    plan: ProgramPlan,
    inputs: Mapping[str, Value],
    *,
    compiled: CompiledBlock | None = None,
    record: bool = False,
    state: EmulatorState | None = None,
    nested: NestedBlocks | None = None,
) -> tuple[dict[str, Array], Env]:
    """Run ``plan``; return its outputs in declared dtypes and the environment.

    ``compiled`` is :func:`.compile.compile_block` of ``plan.block`` (None: interpret
    it); ``nested`` is :func:`.compile.compile_nested` of it (None: interpret every
    nested block). With ``record`` the environment holds every value of the run (materialized
    constexpr values included); without, it may hold only some. A stateful plan
    needs ``state``; its buffers are updated only when the run succeeds. A rank-0
    output is returned with shape ``(1,)``, as Core ML returns it.
    """
    env: Env = dict(plan.folded) if record else {}
    bound = bind_inputs(plan, inputs)
    slots = bind_state(plan, state)
    values = block_values(plan, bound, slots)
    with np.errstate(all="ignore"):  # IEEE inf/nan are results here, not accidents
        if compiled is not None:
            outputs = compiled(env, values, record)
        else:
            outputs = run_block(plan.block, env, values, nested, record)
    commit_state(state, slots)
    result: dict[str, Array] = {}
    # The float32 profile holds fp16-typed outputs unrounded: one past 65504 becomes inf in
    # its declared dtype, as the run's own values do (not a numpy warning: an error under
    # filterwarnings=error).
    with np.errstate(over="ignore", invalid="ignore"):
        for name, value in zip(plan.output_names, outputs, strict=True):
            dtype = plan.var_dtypes.get(name)
            if dtype is None:  # not a tensor: passed through as is
                result[name] = value
                continue
            arr = to_declared(np.asarray(value), dtype)
            result[name] = arr.reshape(1) if arr.ndim == 0 else arr
    return result, env
