"""Execute a :class:`~.plan.ProgramPlan`: kernels, typed rounding, recording.

Each run owns a fresh ``env`` dict of variable values, so a plan can run from
several threads at once. After every kernel the runner rounds each output to
the dtype the program declares (:func:`.dtypes.store`) and checks its shape
against the declared static shape, so a kernel bug is a loud error rather than
a silently wrong answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .dtypes import store, to_declared
from .errors import EmulatorError, InputError, KernelError
from .plan import BlockPlan, ProgramPlan, Step

Env = dict[str, Any]


def _call(step: Step, env: Env) -> Any:
    kwargs = dict(step.consts)
    for key, name in step.refs:
        kwargs[key] = env[name]
    for key, items in step.tuples:
        kwargs[key] = tuple(env[v] if kind == "ref" else v for kind, v in items)
    if step.control_flow:
        return step.fn(step.ctx, env, **kwargs)
    return step.fn(step.ctx, **kwargs)


def _store_outputs(step: Step, result: Any, env: Env) -> None:
    ctx = step.ctx
    if len(step.outputs) == 1:
        result = (result,)
    elif not isinstance(result, (tuple, list)) or len(result) != len(step.outputs):
        raise KernelError(
            f"kernel for {ctx.op_type} op {ctx.name!r} returned the wrong number of outputs"
        )
    for name, value, dtype, shape in zip(
        step.outputs, result, ctx.output_dtypes, ctx.output_shapes, strict=True
    ):
        if dtype is None:  # lists and other non-tensor values are kept as they are
            env[name] = value
            continue
        held = store(value, dtype)
        if shape is not None and (
            held.ndim != len(shape)
            or any(want is not None and want != got for want, got in zip(shape, held.shape, strict=True))
        ):
            raise KernelError(
                f"kernel for {ctx.op_type} op {ctx.name!r} produced shape {held.shape} "
                f"for output {name!r}, but the program declares {shape}"
            )
        env[name] = held


def run_block(block: BlockPlan, env: Env, values: tuple[Any, ...] = ()) -> list[Any]:
    """Run ``block`` with its inputs bound to ``values``; return its outputs."""
    for name, value, dtype in zip(block.inputs, values, block.input_dtypes, strict=True):
        env[name] = store(value, dtype) if dtype is not None else value
    for step in block.steps:
        try:
            result = _call(step, env)
        except EmulatorError:
            raise
        except Exception as exc:
            ctx = step.ctx
            raise KernelError(
                f"{ctx.op_type} op {ctx.name!r} (opset {ctx.opset}) failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        _store_outputs(step, result, env)
    return [env[v] if kind == "ref" else v for kind, v in block.outputs]


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
        raise InputError(
            f"{plan.source}: inputs do not match the model: missing {missing}, "
            f"unexpected {unknown}; the model's inputs are {expected}"
        )
    bound = []
    for spec in plan.inputs:
        arr = np.asarray(inputs[spec.name])
        if arr.dtype == object or arr.dtype.kind not in "biuf":
            raise InputError(f"input {spec.name!r} has dtype {arr.dtype}; expected numbers")
        if len(spec.shape) != arr.ndim or any(
            want is not None and want != got for want, got in zip(spec.shape, arr.shape, strict=True)
        ):
            shown = tuple("?" if d is None else d for d in spec.shape)
            raise InputError(
                f"input {spec.name!r} has shape {arr.shape}; the model declares {shown}"
            )
        bound.append(store(arr, spec.dtype))
    return tuple(bound)


def execute(plan: ProgramPlan, inputs: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], Env]:
    """Run ``plan``; return its outputs in declared dtypes and the full environment."""
    env: Env = {}
    outputs = run_block(plan.block, env, bind_inputs(plan, inputs))
    result = {}
    for name, value in zip(plan.output_names, outputs, strict=True):
        dtype = plan.var_dtypes.get(name)
        result[name] = to_declared(np.asarray(value), dtype) if dtype is not None else value
    return result, env
