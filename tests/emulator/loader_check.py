"""Compare the plans of one model read by the two program loaders (``proto``, ``coremltools``).

:func:`plan_difference` walks two :class:`~pytest_coreml_parity.emulator.plan.ProgramPlan`
and lists every field where they differ: inputs, states, outputs, declared dtypes and
shapes, folded constexpr values, every op's description and constants, and every step
(kernel, context, constants, references, rounding functions, nested blocks).

Names coremltools' builder invents while loading (``const_3``, ``<op>_<input>_0``,
``coreml_update_state_2``) count from a counter global to the process, so they are
compared up to that counter. With ``COREML_PARITY_COMPARE_LOADERS=1`` the emulator
tests' conftest checks every model any emulator test plans this way.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import numpy as np

from pytest_coreml_parity.emulator import Emulator
from pytest_coreml_parity.emulator.plan import BlockPlan, ProgramPlan, Step, plan_function
from pytest_coreml_parity.emulator.program import load_program

_COUNTER = re.compile(r"_\d+$")


def _name(name: Any) -> Any:
    """A builder-invented name without its process-global counter."""
    return _COUNTER.sub("_#", name) if isinstance(name, str) else name


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _values(where: str, a: dict[str, Any], b: dict[str, Any]) -> Iterator[str]:
    a = {_name(k): v for k, v in a.items()}
    b = {_name(k): v for k, v in b.items()}
    if set(a) != set(b):
        yield f"{where}: keys {sorted(a)} != {sorted(b)}"
        return
    for key in a:
        if not _same_value(a[key], b[key]):
            yield f"{where}[{key}]: {a[key]!r} != {b[key]!r}"


def _operands(where: str, a: tuple[Any, ...], b: tuple[Any, ...]) -> Iterator[str]:
    if len(a) != len(b):
        yield f"{where}: {len(a)} operands != {len(b)}"
        return
    for i, ((ka, va), (kb, vb)) in enumerate(zip(a, b, strict=True)):
        if ka != kb or (ka == "ref" and _name(va) != _name(vb)) or (ka == "const" and not _same_value(va, vb)):
            yield f"{where}[{i}]: {(ka, va)!r} != {(kb, vb)!r}"


def _storer(fn: Any) -> Any:
    """A rounding function by what it does: its code and the values it closes over."""
    if fn is None:
        return None
    return (fn.__code__, tuple(cell.cell_contents for cell in fn.__closure__ or ()))


def _step(where: str, a: Step, b: Step) -> Iterator[str]:
    where = f"{where} {a.ctx.op_type} {a.ctx.name!r}"
    if tuple(map(_storer, a.storers)) != tuple(map(_storer, b.storers)):
        yield f"{where}.storers: {a.storers!r} != {b.storers!r}"
    if getattr(a.fn, "__wrapped__", a.fn) != getattr(b.fn, "__wrapped__", b.fn):  # a specialised kernel: its kernel
        yield f"{where}.fn: {a.fn!r} != {b.fn!r}"
    for attr in ("control_flow", "shapes", "single_output"):
        if getattr(a, attr) != getattr(b, attr):
            yield f"{where}.{attr}: {getattr(a, attr)!r} != {getattr(b, attr)!r}"
    for attr in ("op_type", "opset", "output_dtypes", "output_shapes", "location", "fp16_execution"):
        if getattr(a.ctx, attr) != getattr(b.ctx, attr):
            yield f"{where}.ctx.{attr}: {getattr(a.ctx, attr)!r} != {getattr(b.ctx, attr)!r}"
    if _name(a.ctx.name) != _name(b.ctx.name):
        yield f"{where}.ctx.name: {a.ctx.name!r} != {b.ctx.name!r}"
    yield from _values(f"{where}.consts", a.consts, b.consts)
    if {k: _name(v) for k, v in a.refs} != {k: _name(v) for k, v in b.refs}:
        yield f"{where}.refs: {a.refs!r} != {b.refs!r}"
    ta, tb = dict(a.tuples), dict(b.tuples)
    if set(ta) != set(tb):
        yield f"{where}.tuples: {sorted(ta)} != {sorted(tb)}"
    for key in set(ta) & set(tb):
        yield from _operands(f"{where}.tuples[{key}]", ta[key], tb[key])
    if tuple(map(_name, a.outputs)) != tuple(map(_name, b.outputs)):
        yield f"{where}.outputs: {a.outputs!r} != {b.outputs!r}"
    names_a = {k: tuple(map(_name, v)) for k, v in a.input_names.items()}
    names_b = {k: tuple(map(_name, v)) for k, v in b.input_names.items()}
    if names_a != names_b:
        yield f"{where}.input_names: {names_a!r} != {names_b!r}"
    if len(a.ctx.blocks) != len(b.ctx.blocks):
        yield f"{where}: {len(a.ctx.blocks)} blocks != {len(b.ctx.blocks)}"
    for i, (ba, bb) in enumerate(zip(a.ctx.blocks, b.ctx.blocks, strict=False)):
        yield from _block(f"{where}.blocks[{i}]", ba, bb)


def _block(where: str, a: BlockPlan, b: BlockPlan) -> Iterator[str]:
    if tuple(map(_name, a.inputs)) != tuple(map(_name, b.inputs)):
        yield f"{where}.inputs: {a.inputs!r} != {b.inputs!r}"
    if a.input_dtypes != b.input_dtypes:
        yield f"{where}.input_dtypes: {a.input_dtypes!r} != {b.input_dtypes!r}"
    yield from _operands(f"{where}.outputs", a.outputs, b.outputs)
    if len(a.steps) != len(b.steps):
        ops_a = [s.ctx.op_type for s in a.steps]
        ops_b = [s.ctx.op_type for s in b.steps]
        yield f"{where}: steps {ops_a} != {ops_b}"
        return
    for sa, sb in zip(a.steps, b.steps, strict=True):
        yield from _step(where, sa, sb)


def plan_difference(a: ProgramPlan, b: ProgramPlan) -> list[str]:
    """Every difference between two plans of one program (empty when they agree)."""
    found: list[str] = []
    for attr in ("function_name", "opset", "inputs", "states", "output_names", "output_shapes"):
        if getattr(a, attr) != getattr(b, attr):
            found.append(f"{attr}: {getattr(a, attr)!r} != {getattr(b, attr)!r}")
    da = {_name(k): v for k, v in a.var_dtypes.items()}
    db = {_name(k): v for k, v in b.var_dtypes.items()}
    if da != db:
        diff = sorted(k for k in set(da) | set(db) if da.get(k, "absent") != db.get(k, "absent"))
        found.append(f"var_dtypes differ at {diff[:8]}: {[(da.get(k, 'absent'), db.get(k, 'absent')) for k in diff[:8]]}")
    found.extend(_values("folded", a.folded, b.folded))
    if len(a.ops) != len(b.ops):
        found.append(f"ops: {len(a.ops)} != {len(b.ops)}")
    for oa, ob in zip(a.ops, b.ops, strict=False):
        if (oa.op_type, _name(oa.name), oa.depth, oa.location) != (ob.op_type, _name(ob.name), ob.depth, ob.location):
            found.append(f"op {oa!r} != {ob!r}")
        if tuple(map(_name, oa.outputs)) != tuple(map(_name, ob.outputs)):
            found.append(f"op {oa.name}.outputs: {oa.outputs!r} != {ob.outputs!r}")
        ia = {k: tuple(map(_name, v)) for k, v in oa.inputs.items()}
        ib = {k: tuple(map(_name, v)) for k, v in ob.inputs.items()}
        if ia != ib:
            found.append(f"op {oa.name}.inputs: {ia!r} != {ib!r}")
        found.extend(_values(f"op {oa.name}.constants", dict(oa.constants), dict(ob.constants)))
    found.extend(_block("block", a.block, b.block))
    return found


def plans(model: Any, function_name: str = "main", fp16_execution: str = "typed") -> dict[str, ProgramPlan]:
    """The plan of ``model`` by each loader."""
    result: dict[str, ProgramPlan] = {}
    for loader in ("proto", "coremltools"):
        loaded = load_program(model, function_name, loader=loader)
        assert loaded.loader == loader, f"the proto loader fell back to coremltools for {model!r}"
        result[loader] = plan_function(
            loaded.function,
            function_name=loaded.function_name,
            opset=loaded.opset,
            source=loaded.source,
            fp16_execution=fp16_execution,
            allowed=loaded.allowed,
        )
    return result


def assert_loaders_agree(model: Any, function_name: str = "main", fp16_execution: str = "typed") -> None:
    """Both loaders plan ``model`` identically (up to builder-invented name counters)."""
    by_loader = plans(model, function_name, fp16_execution)
    difference = plan_difference(by_loader["proto"], by_loader["coremltools"])
    assert not difference, "the loaders disagree:\n" + "\n".join(difference[:20])


__all__ = ["Emulator", "assert_loaders_agree", "plan_difference", "plans"]
