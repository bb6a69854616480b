"""The interpreting engine: run a :class:`~.plan.BlockPlan` step by step.

Each run owns a fresh ``env`` dict of variable values, so a plan can run from
several threads at once. After every kernel the engine rounds each output to
the dtype the program declares (:func:`.dtypes.storer`) and checks its shape
against the declared static shape, so a kernel bug is a loud error rather than
a silently wrong answer.

This engine runs every block the compiler (:mod:`.compile`) does not: blocks
holding control flow, and the nested blocks of ``cond`` and ``while_loop``,
which it hands to their kernels as a bound block runner.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING

from .checks import check_shape, kernel_failure, wrong_output_count
from .dtypes import store
from .plan import BlockPlan, Step
from .registry import Value

if TYPE_CHECKING:
    from .compile import CompiledBlock

#: Variable values of one run, by MIL variable name.
Env = dict[str, Value]


def run_block(
    block: BlockPlan,
    env: Env,
    values: tuple[Value, ...] = (),
    nested: Mapping[int, CompiledBlock] | None = None,
    record: bool = True,
) -> list[Value]:
    """Run ``block`` with its inputs bound to ``values``; return its outputs.

    This is the hot loop: everything that can be decided once lives on the
    step (see :class:`~.plan.Step`), so each op costs one kernel call, one
    rounding per output and one shape comparison. ``nested`` holds the compiled
    forms of nested blocks (:func:`.compile.compile_nested`), run in their place,
    and the fused runners of recognised loops (:func:`.loops.fuse_loops`, keyed by
    the ``id`` of their step). ``record`` False lets a fused loop skip leaving its
    body's values in ``env`` (a recording needs them).
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
                fused = nested.get(id(step)) if nested else None
                if fused is not None:
                    finals = fused(env, kwargs["loop_vars"], record)
                    result = finals[0] if len(finals) == 1 else tuple(finals)
                else:
                    ctx = step.ctx.with_block_runner(partial(run_nested, env, nested, record))
                    result = step.fn(ctx, **kwargs)
            else:
                result = step.fn(step.ctx, **kwargs)
            if step.single_output:
                storer = step.storers[0]
                assert storer is not None  # single_output means one tensor output
                held = storer(result)
                if held.shape != step.shapes[0]:  # also when only partly static
                    check_shape(step, 0, held)
                env[step.outputs[0]] = held
            else:
                _store_outputs(step, result, env)
        except Exception as exc:
            failure = kernel_failure(step.ctx, exc)
            if failure is exc:
                raise
            raise failure from exc
    return [env[v] if kind == "ref" else v for kind, v in block.outputs]


def run_nested(
    env: Env,
    nested: Mapping[int, CompiledBlock] | None,
    record: bool,
    block: BlockPlan,
    values: tuple[Value, ...],
) -> list[Value]:
    """The block runner bound into a control-flow op's context: nested blocks share
    the run's environment, since they read outer values by name. A compiled block
    gets its inputs rounded as :func:`run_block` rounds them, and with ``record``
    records every value into ``env``, as the interpreter does (without, it keeps
    them local: a compiled block holds no nested block that would read them)."""
    compiled = nested.get(id(block)) if nested else None
    if compiled is None:
        return run_block(block, env, values, nested, record)
    held = tuple(
        store(value, dtype) if dtype is not None else value
        for value, dtype in zip(values, block.input_dtypes, strict=True)
    )
    return compiled(env, held, record)


def _store_outputs(step: Step, result: Value, env: Env) -> None:
    if len(step.outputs) == 1:  # a single non-tensor output, such as a list
        result = (result,)
    elif not isinstance(result, (tuple, list)) or len(result) != len(step.outputs):
        raise wrong_output_count(step.ctx)
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
