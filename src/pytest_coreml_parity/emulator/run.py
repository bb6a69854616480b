"""Execute a :class:`~.plan.ProgramPlan`: kernels, typed rounding, recording.

Each run owns a fresh ``env`` dict of variable values, so a plan can run from
several threads at once. After every kernel the runner rounds each output to
the dtype the program declares (:func:`.dtypes.storer`) and checks its shape
against the declared static shape, so a kernel bug is a loud error rather than
a silently wrong answer.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from .dtypes import store, to_declared
from .errors import EmulatorError, InputError, KernelError, UnsupportedFeatureError
from .plan import BlockPlan, InputSpec, ProgramPlan, StateSlot, Step
from .registry import OpContext

Env = dict[str, Any]


def run_block(block: BlockPlan, env: Env, values: tuple[Any, ...] = ()) -> list[Any]:
    """Run ``block`` with its inputs bound to ``values``; return its outputs.

    This is the hot loop: everything that can be decided once lives on the
    step (see :class:`~.plan.Step`), so each op costs one kernel call, one
    rounding per output and one shape comparison.
    """
    for name, value, dtype in zip(block.inputs, values, block.input_dtypes, strict=True):
        env[name] = store(value, dtype) if dtype is not None else value
    for step in block.steps:
        kwargs = step.consts.copy() if step.consts else {}
        for key, name in step.refs:
            kwargs[key] = env[name]
        for key, items in step.tuples:
            kwargs[key] = tuple([env[v] if kind == "ref" else v for kind, v in items])
        try:
            if step.control_flow:
                result = step.fn(step.ctx, env, **kwargs)
            else:
                result = step.fn(step.ctx, **kwargs)
            if step.single_output:
                held = step.storers[0](result)
                if held.shape != step.shapes[0]:  # also when only partly static
                    check_shape(step, 0, held)
                env[step.outputs[0]] = held
            else:
                _store_outputs(step, result, env)
        except EmulatorError:
            raise
        except NotImplementedError as exc:
            raise unsupported_feature(step.ctx, exc) from exc
        except Exception as exc:
            ctx = step.ctx
            raise KernelError(
                f"{ctx.op_type} op {ctx.name!r} (opset {ctx.opset}) failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    return [env[v] if kind == "ref" else v for kind, v in block.outputs]


def unsupported_feature(ctx: OpContext, exc: NotImplementedError) -> UnsupportedFeatureError:
    """A kernel's NotImplementedError (an attribute value or dtype it does not model)
    as the loud unsupported error an unknown op type gets."""
    return UnsupportedFeatureError(str(exc), f"{ctx.op_type} op {ctx.name!r}, opset {ctx.opset}")


def check_shape(step: Step, index: int, held: np.ndarray) -> None:
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


def _store_outputs(step: Step, result: Any, env: Env) -> None:
    ctx = step.ctx
    if len(step.outputs) == 1:  # a single non-tensor output, such as a list
        result = (result,)
    elif not isinstance(result, (tuple, list)) or len(result) != len(step.outputs):
        raise KernelError(
            f"kernel for {ctx.op_type} op {ctx.name!r} returned the wrong number of outputs"
        )
    for index, (name, value, storer) in enumerate(
        zip(step.outputs, result, step.storers, strict=True)
    ):
        if storer is None:  # lists and other non-tensor values are kept as they are
            env[name] = value
            continue
        held = storer(value)
        if held.shape != step.shapes[index]:
            check_shape(step, index, held)
        env[name] = held


def bind_inputs(plan: ProgramPlan, inputs: Mapping[str, Any]) -> tuple[Any, ...]:
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


def _held(value: Any, spec: InputSpec, what: str) -> np.ndarray:
    """``value`` checked against ``spec`` and rounded to its dtype (held form)."""
    arr = np.asarray(value)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise InputError(f"{what} {spec.name!r} has dtype {arr.dtype}; expected numbers")
    if len(spec.shape) != arr.ndim or any(
        want is not None and want != got for want, got in zip(spec.shape, arr.shape, strict=True)
    ):
        shown = tuple("?" if d is None else d for d in spec.shape)
        raise InputError(f"{what} {spec.name!r} has shape {arr.shape}; the model declares {shown}")
    return store(arr, spec.dtype)


class EmulatorState(Mapping[str, np.ndarray]):
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

    def __getitem__(self, name: str) -> np.ndarray:
        return self._arrays[name].copy()

    def __setitem__(self, name: str, value: Any) -> None:
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
    plan: ProgramPlan, bound: tuple[Any, ...], slots: tuple[StateSlot, ...]
) -> tuple[Any, ...]:
    """The top-level block's input values: user inputs and state slots, in program order."""
    if not slots:
        return bound
    by_name: dict[str, Any] = {spec.name: v for spec, v in zip(plan.inputs, bound, strict=True)}
    by_name.update((slot.name, slot) for slot in slots)
    return tuple(by_name[name] for name in plan.block.inputs)


def execute(
    plan: ProgramPlan,
    inputs: Mapping[str, Any],
    *,
    record: bool = False,
    state: EmulatorState | None = None,
) -> tuple[dict[str, np.ndarray], Env]:
    """Run ``plan``; return its outputs in declared dtypes and the environment.

    With ``record`` the environment holds every value of the run (materialized
    constexpr values included); without, it may hold only some. A stateful plan
    needs ``state``; its buffers are updated only when the run succeeds.
    """
    env: Env = dict(plan.folded) if record else {}
    bound = bind_inputs(plan, inputs)
    slots = bind_state(plan, state)
    values = block_values(plan, bound, slots)
    with np.errstate(all="ignore"):  # IEEE inf/nan are results here, not accidents
        if plan.compiled is not None:
            outputs = plan.compiled(env, values, record)
        else:
            outputs = run_block(plan.block, env, values)
    commit_state(state, slots)
    result = {}
    for name, value in zip(plan.output_names, outputs, strict=True):
        dtype = plan.var_dtypes.get(name)
        result[name] = to_declared(np.asarray(value), dtype) if dtype is not None else value
    return result, env
