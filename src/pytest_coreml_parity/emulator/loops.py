"""Fused runners for recognised ``while_loop`` ops: the GRU layer coremltools emits.

coremltools converts each layer and direction of ``nn.GRU`` to a ``while_loop``
whose body is one GRU cell step of 26 small ops (two ``gather``/``squeeze``, six
``linear``, the gates, a ``scatter`` into the hidden-state list; in fp16 also two
``cast``). Run op by op, each op pays its kernel's argument handling, its rounding
call, a shape check and, in the loop, the block runner's bookkeeping: about 400
kernel calls for 16 time steps, 7-10x torch's fused GRU.

:func:`fuse_loops` recognises that body, exactly as the frontend writes it, and
runs the loop in one function that evaluates the **same ops in the same order
with the same rounding**: each ``linear`` is the same float32 matmul (same
operands, same shapes, one BLAS call per op) plus its bias, each ``add`` / ``mul``
/ ``sub`` the same float32 ufunc, ``sigmoid`` and ``tanh`` the registered kernels
themselves, each output rounded by the step's own storer. What goes away is the
dispatch: the three gates' matmul outputs are written into one buffer and share
one bias add and one rounding call (elementwise, so per element identical), the
hidden-state list is updated in place one row per step instead of copied and
cast twice (every other row is already rounded, and rounding is idempotent), and
the counter and condition are plain integers. tests/emulator/test_loops.py checks
the fused runner against the interpreter bit for bit.

Anything the runner does not model falls back to the general path (the
``while_loop`` kernel with the engine's block runner) before it starts: a body
that differs in any op, another execution profile, shapes or indices the program
did not declare. When recording, the last iteration runs through the general
path too, so the recording holds every value of the body as the interpreter
leaves it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from .dtypes import F16, F32, store, storer
from .interpret import Env, run_nested
from .kernels import activation
from .kernels._torch import TORCH_MIN_SIZE, torch_or_none
from .plan import BlockPlan, Operand, Step
from .registry import Value

#: ``fn(env, loop_vars, record) -> final loop values``, keyed like compiled blocks.
FusedLoop = Callable[[Env, tuple[Value, ...], bool], list[Value]]
Rounding = Callable[[Any], np.ndarray] | None


def fuse_loops(block: BlockPlan, nested: Mapping[int, Any] | None = None) -> dict[int, FusedLoop]:
    """A fused runner for every recognised ``while_loop`` step in ``block`` (any depth),
    by ``id`` of the step. ``nested`` (compiled nested blocks) serves the general path."""
    found: dict[int, FusedLoop] = {}
    for step in _all_steps(block):
        if step.ctx.op_type == "while_loop":
            gru = _match_gru(step)
            if gru is not None:
                found[id(step)] = partial(_run_gru, gru, step, nested)
    return found


def _all_steps(block: BlockPlan) -> list[Step]:
    steps = []
    for step in block.steps:
        steps.append(step)
        for inner in step.ctx.blocks:
            steps.extend(_all_steps(inner))
    return steps


# ----------------------------------------------------------------------------- matching


@dataclass(frozen=True)
class _Gru:
    """A recognised GRU body: where each value comes from and how each op rounds."""

    x: Operand  # the (T, B, I) input sequence, from the enclosing block
    steps: int  # T of the condition ``less(i, T)``
    w_x: np.ndarray  # (3, I, H): the input weights r, z, n, each transposed as the kernel does
    b_x: np.ndarray  # (3, 1, H) biases of the input linears
    w_h: np.ndarray  # (3, H, H)
    b_h: np.ndarray
    one: Value  # the ``sub``'s constant 1
    inc: Value  # the counter's increment
    sigmoid: tuple[Step, Step]  # r, z
    tanh: Step
    shapes: tuple[tuple[Step, str], ...]  # each body step and the role deciding its shape
    round_x: Rounding  # gather/squeeze of x
    round_h_in: Rounding  # the cast of the carried list to the state dtype (or None)
    round_h: Rounding  # gather/squeeze of the list
    round_lin: Rounding
    round_gate_add: Rounding
    round_sig: tuple[Rounding, Rounding]
    round_n: tuple[Rounding, Rounding, Rounding]  # mul, add, tanh
    round_h_new: tuple[Rounding, Rounding, Rounding, Rounding]  # sub, mul, mul, add
    round_scatter: Rounding
    rounded_list: bool  # every row of the list is rounded before the scatter
    #: Operand shapes already found to fit every declared shape (a run's first check).
    fits: dict[tuple[tuple[int, ...], ...], bool] = field(default_factory=dict, compare=False)


class _NoMatch(Exception):
    pass


def _arg(step: Step, key: str) -> Operand:
    if key in step.consts:
        return ("const", step.consts[key])
    for k, name in step.refs:
        if k == key:
            return ("ref", name)
    raise _NoMatch(key)


def _ref(step: Step, key: str) -> str:
    kind, payload = _arg(step, key)
    if kind != "ref":
        raise _NoMatch(key)
    return str(payload)


def _const(step: Step, key: str) -> Value:
    kind, payload = _arg(step, key)
    if kind != "const":
        raise _NoMatch(key)
    return payload


def _int_const(step: Step, key: str) -> int:
    value = np.asarray(_const(step, key))
    if value.dtype.kind not in "iu" or value.size != 1:
        raise _NoMatch(key)
    return int(value.reshape(()))


def _ints(value: Value) -> list[int]:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise _NoMatch("ints")
    return [int(v) for v in arr.reshape(-1)]


_PROBE = np.array([0.1, 65536.0], dtype=F32)


def _rounding(step: Step) -> Rounding:
    """The step's storer when it changes float32 values (rounds to fp16), else None.

    Only float32 and binary16 storers are expected on the float path: anything else
    does not match."""
    if len(step.storers) != 1 or step.storers[0] is None:
        raise _NoMatch("storer")
    fn = step.storers[0]
    with np.errstate(all="ignore"):
        out = fn(_PROBE)
        rounded = _PROBE.astype(F16).astype(F32)
    if out.dtype != F32:
        raise _NoMatch("storer dtype")
    if np.array_equal(out, _PROBE):
        return None
    if np.array_equal(out, rounded):
        return fn
    raise _NoMatch("storer kind")


def _match_gru(loop: Step) -> _Gru | None:
    if loop.ctx.fp16_execution != "typed" or len(loop.ctx.blocks) != 2:
        return None
    try:
        return _match(loop)
    except _NoMatch:
        return None


def _match(loop: Step) -> _Gru:
    cond, body = loop.ctx.blocks
    if len(cond.inputs) != 2 or len(body.inputs) != 2 or len(body.outputs) != 2:
        raise _NoMatch("arity")
    if len(loop.tuples) != 1 or loop.tuples[0][0] != "loop_vars" or loop.refs or loop.consts:
        raise _NoMatch("loop vars")
    # The condition: less(i, T) with T a constant.
    if len(cond.steps) != 1 or cond.steps[0].ctx.op_type != "less":
        raise _NoMatch("cond")
    less = cond.steps[0]
    if _ref(less, "x") != cond.inputs[0] or cond.outputs != (("ref", less.outputs[0]),):
        raise _NoMatch("cond")
    steps = _int_const(less, "y")
    i_name, list_name = body.inputs
    if body.input_dtypes[1] not in (F32, F16):
        raise _NoMatch("list dtype")

    producer = {step.outputs[0]: step for step in body.steps if len(step.outputs) == 1}
    used: set[int] = set()

    def op(name: str, op_type: str) -> Step:
        step = producer.get(name)
        if step is None or step.ctx.op_type != op_type or step.tuples:
            raise _NoMatch(op_type)
        used.add(id(step))
        return step

    def operand_of(step: Step, key: str, op_type: str) -> Step:
        return op(_ref(step, key), op_type)

    kind_c, counter_name = body.outputs[0]
    kind_s, list_out = body.outputs[1]
    if kind_c != "ref" or kind_s != "ref":
        raise _NoMatch("outputs")
    counter = op(str(counter_name), "add")
    if _ref(counter, "x") != i_name:
        raise _NoMatch("counter")
    inc = _const(counter, "y")
    if _ints(inc) != [1]:
        raise _NoMatch("counter")
    last = producer.get(str(list_out))
    cast_out: Step | None = None
    if last is not None and last.ctx.op_type == "cast":
        cast_out = op(str(list_out), "cast")
        if _const(cast_out, "dtype") != "fp32" or _rounding(cast_out) is not None:
            raise _NoMatch("cast out")
        scatter = operand_of(cast_out, "x", "scatter")
    else:
        scatter = op(str(list_out), "scatter")
    if (
        _ints(_const(scatter, "axis")) != [0]
        or _const(scatter, "mode") != "add"
        or _ref(scatter, "indices") != counter.outputs[0]
        or set(scatter.consts) - {"axis", "mode", "validate_indices"}
    ):
        raise _NoMatch("scatter")
    data = _ref(scatter, "data")
    cast_in: Step | None = None
    if data != list_name:
        cast_in = op(data, "cast")
        if _ref(cast_in, "x") != list_name or _const(cast_in, "dtype") != "fp16":
            raise _NoMatch("cast in")
    expand = operand_of(scatter, "updates", "expand_dims")
    if _ints(_const(expand, "axes")) != [0]:
        raise _NoMatch("expand_dims")
    h_new = operand_of(expand, "x", "add")
    h2 = operand_of(h_new, "x", "mul")
    h3 = operand_of(h_new, "y", "mul")
    h1 = operand_of(h2, "x", "sub")
    tanh = operand_of(h2, "y", "tanh")
    one = _const(h1, "x")
    if np.asarray(one).dtype != F32 or np.asarray(one).size != 1 or float(np.asarray(one).reshape(())) != 1.0:
        raise _NoMatch("one")
    sig_z = operand_of(h1, "y", "sigmoid")
    if _ref(h3, "x") != sig_z.outputs[0]:
        raise _NoMatch("h3")
    n4 = operand_of(tanh, "x", "add")
    lin_in = operand_of(n4, "x", "linear")
    n3 = operand_of(n4, "y", "mul")
    sig_r = operand_of(n3, "x", "sigmoid")
    lin_hn = operand_of(n3, "y", "linear")
    add_r = operand_of(sig_r, "x", "add")
    add_z = operand_of(sig_z, "x", "add")
    lin_ir, lin_hr = operand_of(add_r, "x", "linear"), operand_of(add_r, "y", "linear")
    lin_iz, lin_hz = operand_of(add_z, "x", "linear"), operand_of(add_z, "y", "linear")
    # x_t and h_{t-1}: squeeze(gather(., i, axis=0), axes=[0]).
    x_t = _ref(lin_ir, "x")
    h_prev = _ref(lin_hr, "x")
    if {_ref(s, "x") for s in (lin_iz, lin_in)} != {x_t} or {
        _ref(s, "x") for s in (lin_hz, lin_hn)
    } != {h_prev} or _ref(h3, "y") != h_prev:
        raise _NoMatch("cell inputs")
    squeeze_x, squeeze_h = op(x_t, "squeeze"), op(h_prev, "squeeze")
    gathers = []
    for squeeze in (squeeze_x, squeeze_h):
        if _ints(_const(squeeze, "axes")) != [0]:
            raise _NoMatch("squeeze")
        gather = operand_of(squeeze, "x", "gather")
        if (
            _ref(gather, "indices") != i_name
            or _ints(_const(gather, "axis")) != [0]
            or _ints(gather.consts.get("batch_dims", 0)) != [0]
            or set(gather.consts) - {"axis", "batch_dims", "validate_indices"}
        ):
            raise _NoMatch("gather")
        gathers.append(gather)
    gather_x, gather_h = gathers
    x = _arg(gather_x, "x")
    if x[0] == "ref" and x[1] in body.inputs:
        raise _NoMatch("x")
    if _ref(gather_h, "x") != data:
        raise _NoMatch("gather h")
    if len(used) != len(body.steps):
        raise _NoMatch("extra ops")  # an op the runner would not evaluate

    def weights(lins: tuple[Step, Step, Step]) -> tuple[np.ndarray, np.ndarray]:
        ws, bs = [], []
        for lin in lins:
            if set(lin.consts) != {"weight", "bias"}:
                raise _NoMatch("linear")
            w, b = np.asarray(lin.consts["weight"]), np.asarray(lin.consts["bias"])
            if w.dtype != F32 or b.dtype != F32 or w.ndim != 2 or b.shape != (w.shape[0],):
                raise _NoMatch("linear")
            if not w.flags.c_contiguous:  # the stack below must keep the kernel's layout
                raise _NoMatch("linear layout")
            ws.append(w)
            bs.append(b)
        if len({w.shape for w in ws}) != 1:
            raise _NoMatch("linear shapes")
        # The linear kernel multiplies by ``weight.T``, a transposed view of a C-ordered
        # array; each [k] of this is one, with the same strides.
        return np.stack(ws).transpose(0, 2, 1), np.stack(bs)[:, None, :]

    w_x, b_x = weights((lin_ir, lin_iz, lin_in))
    w_h, b_h = weights((lin_hr, lin_hz, lin_hn))
    lins = (lin_ir, lin_iz, lin_in, lin_hr, lin_hz, lin_hn)
    round_lin = _same_rounding(lins)
    round_gate_add = _same_rounding((add_r, add_z))
    round_x = _same_rounding((gather_x, squeeze_x))
    round_h = _same_rounding((gather_h, squeeze_h, expand))
    if round_h is not None:
        raise _NoMatch("exact ops round")  # data movement of held values never rounds
    round_h_in = _rounding(cast_in) if cast_in is not None else None
    round_scatter = _rounding(scatter)
    rounded_list = (cast_in is not None and round_h_in is not None) or body.input_dtypes[1] == F16
    if round_scatter is not None and not rounded_list:
        raise _NoMatch("scatter rounds an unrounded list")
    roles = {
        "x": (gather_x,),
        "x_t": (squeeze_x,),
        "h": (gather_h, expand),
        "state": (squeeze_h, *lins, add_r, add_z, sig_r, sig_z, n3, n4, tanh, h1, h2, h3, h_new),
        "list": (scatter,) + ((cast_in,) if cast_in else ()) + ((cast_out,) if cast_out else ()),
        "counter": (counter,),
    }
    return _Gru(
        x=x,
        steps=steps,
        w_x=w_x,
        b_x=b_x,
        w_h=w_h,
        b_h=b_h,
        one=one,
        inc=inc,
        sigmoid=(sig_r, sig_z),
        tanh=tanh,
        shapes=tuple((s, role) for role, ss in roles.items() for s in ss),
        round_x=round_x,
        round_h_in=round_h_in,
        round_h=round_h,
        round_lin=round_lin,
        round_gate_add=round_gate_add,
        round_sig=(_rounding(sig_r), _rounding(sig_z)),
        round_n=(_rounding(n3), _rounding(n4), _rounding(tanh)),
        round_h_new=(_rounding(h1), _rounding(h2), _rounding(h3), _rounding(h_new)),
        round_scatter=round_scatter,
        rounded_list=rounded_list,
    )


def _same_rounding(steps: tuple[Step, ...]) -> Rounding:
    roundings = [_rounding(s) for s in steps]
    if any((r is None) != (roundings[0] is None) for r in roundings):
        raise _NoMatch("mixed rounding")
    return roundings[0]


# ----------------------------------------------------------------------------- running


def _general(
    step: Step, nested: Mapping[int, Any] | None, env: Env, values: tuple[Value, ...], record: bool
) -> list[Value]:
    """The ``while_loop`` kernel itself, with the engine's block runner."""
    ctx = step.ctx.with_block_runner(partial(run_nested, env, nested, record))
    out = step.fn(ctx, loop_vars=values)
    return list(out) if isinstance(out, tuple) else [out]


def _shapes_ok(gru: _Gru, x: np.ndarray, held: np.ndarray, counter: np.ndarray) -> bool:
    """Whether every body op's declared shape admits what the runner computes (else
    the general path runs and its shape check raises as it would)."""
    key = (x.shape, held.shape, counter.shape)
    fits = gru.fits.get(key)
    if fits is None:
        fits = gru.fits[key] = _fit(gru, x, held, counter)
    return fits


def _fit(gru: _Gru, x: np.ndarray, held: np.ndarray, counter: np.ndarray) -> bool:
    _, batch, hidden = held.shape
    want = {
        "x": (1, batch, x.shape[2]),
        "x_t": (batch, x.shape[2]),
        "h": (1, batch, hidden),
        "state": (batch, hidden),
        "list": held.shape,
        "counter": counter.shape,
    }
    for step, role in gru.shapes:
        declared = step.ctx.output_shapes[0]
        shape = want[role]
        if declared is None or len(declared) != len(shape):
            return False
        if any(d is not None and d != s for d, s in zip(declared, shape, strict=True)):
            return False
    return True


def _run_gru(
    gru: _Gru,
    step: Step,
    nested: Mapping[int, Any] | None,
    env: Env,
    loop_vars: tuple[Value, ...],
    record: bool,
) -> list[Value]:
    i0, list0 = loop_vars
    x = np.asarray(env[gru.x[1]] if gru.x[0] == "ref" else gru.x[1])
    counter = np.asarray(i0)
    held = np.asarray(list0)
    body = step.ctx.blocks[1]
    w_in = gru.w_x.shape[1]
    hidden = gru.w_h.shape[1]
    if (
        counter.dtype != np.int32
        or counter.size != 1
        or x.dtype != F32
        or x.ndim != 3
        or held.dtype not in (F32, F16)
        or held.ndim != 3
        or x.shape[1] != held.shape[1]
        or x.shape[2] != w_in
        or held.shape[2] != hidden
        or gru.w_h.shape[2] != hidden
    ):
        return _general(step, nested, env, loop_vars, record)
    start = int(counter.reshape(()))
    # Every row read (0 .. T-1 of x, 0 .. T-1 of the list) and written (1 .. T) exists;
    # else the general path gives the kernels' own errors.
    stop = gru.steps - 1 if record else gru.steps  # recording: the last step runs generally
    if (
        not 0 <= start < gru.steps
        or gru.steps > x.shape[0]
        or gru.steps >= held.shape[0]
        or not _shapes_ok(gru, x, held, counter)
    ):
        return _general(step, nested, env, loop_vars, record)
    list_dtype = body.input_dtypes[1]
    assert list_dtype is not None  # matched: F32 or F16
    lst = np.array(store(held, list_dtype), dtype=F32, copy=True)  # the runner's own buffer, updated in place
    if gru.round_h_in is not None:
        lst = gru.round_h_in(lst)
    xs = np.ascontiguousarray(x[:stop])
    if gru.round_x is not None:  # not for exact data movement; kept for fidelity
        xs = gru.round_x(xs)
    _steps(gru, xs, lst, start, stop)
    # The body's ``add(i, 1)`` once per step, as one add: int32 wraps the same either way.
    counter = np.add(counter, np.multiply(gru.inc, stop - start))
    if stop == gru.steps:
        return [counter, lst]
    if stop == start:  # recording a one-step loop: all of it runs generally
        return _general(step, nested, env, loop_vars, record)
    return _general(step, nested, env, (counter, lst), record)




def _stackable_sigmoid(gru: _Gru, size: int) -> bool:
    """Whether one call of the ``sigmoid`` kernel on both gates (stacked) gives each
    gate's own result: the kernel is elementwise, but picks torch's or numpy's
    float32 sigmoid by the array's size (:data:`.kernels._torch.TORCH_MIN_SIZE`), and
    the two differ in the last bit; so only when both sizes pick the same one."""
    sig_r, sig_z = gru.sigmoid
    return (
        sig_r.fn is activation.sigmoid
        and sig_z.fn is activation.sigmoid
        and (size < TORCH_MIN_SIZE) == (2 * size < TORCH_MIN_SIZE)
    )


def _steps(gru: _Gru, xs: np.ndarray, lst: np.ndarray, start: int, stop: int) -> None:
    """Time steps ``start .. stop-1`` of the cell, writing rows ``start+1 .. stop`` of ``lst``.

    The input-side linears do not depend on the state: they run first for every
    step (the same one matmul per op and step), sharing one bias add and one
    rounding call over all of them. The r and z gates share their add, their
    rounding and (where :func:`_stackable_sigmoid`) their sigmoid call."""
    matmul, add, mul, sub = np.matmul, np.add, np.multiply, np.subtract
    _, batch, hidden = lst.shape
    w_h, b_h, one = gru.w_h, gru.b_h, gru.one
    sig_r, sig_z = gru.sigmoid
    tanh = gru.tanh
    r_lin, r_add = gru.round_lin is not None, gru.round_gate_add is not None
    r_sig_r, r_sig_z = (r is not None for r in gru.round_sig)
    r_sig = r_sig_r and r_sig_z
    r_n3, r_n4, r_tanh = (r is not None for r in gru.round_n)
    r_h1, r_h2, r_h3, r_h = (r is not None for r in gru.round_h_new)
    r_scatter = gru.round_scatter is not None
    stacked = r_sig_r == r_sig_z and _stackable_sigmoid(gru, batch * hidden)
    # Round float32 to binary16 and back, as every fp16 op's storer does (round to
    # nearest even, overflow to inf; through torch on large arrays, the same bits).
    _round16 = storer(F16)
    # r * (W_hn h + b_hn) and z * h_prev are one mul when h_prev sits after the gate
    # buffer: it is rounded with the gates, which leaves it as it is when the list's
    # rows are rounded already.
    stack_mul = r_n3 == r_h3 and (not r_lin or gru.rounded_list)
    # Rows not yet written that hold +0.0 (the frontend's fill): 0 + h is h (or +0 for
    # -0), exact in any dtype, so the scatter's rounding changes nothing there.
    fresh = lst[start + 1 : stop + 1]
    r_scatter = r_scatter and (not r_h or bool(np.signbit(fresh).any() or fresh.any()))
    inplace = None
    torch = torch_or_none()
    if (
        torch is not None
        and stack_mul
        and r_lin
        and r_add
        and r_sig
        and r_n3
        and r_n4
        and r_tanh
        and r_h1
        and r_h2
        and r_h
    ):
        inplace = tuple(_InPlace(torch, (k, batch, hidden)) for k in (4, 2, 2, 2))
    # The one-gate roundings of the tail too, from the size where torch's conversion
    # (a fixed ~1.5 µs per copy) beats numpy's (~6 ns per element).
    tail = (
        tuple(_InPlace(torch, (batch, hidden)) for _ in range(5))
        if inplace is not None and batch * hidden >= _TAIL_INPLACE_MIN
        else None
    )
    with np.errstate(all="ignore"):
        # numpy's matmul runs one BLAS call per (step, gate) pair of the stacks, each
        # with the operands, shapes and strides of the op's own call.
        gxs = matmul(xs[start:stop, None], gru.w_x)  # (steps, 3, B, H)
        add(gxs, gru.b_x, out=gxs)
        if r_lin:
            gxs = _round16(gxs)
        for t in range(start, stop):
            gx = gxs[t - start]
            h_prev = lst[t]
            if inplace is not None:  # every op rounds, gates and muls stacked
                gh_r, rz_r, sig_r_buf, nh_r = inplace
                gh = gh_r.array
                matmul(h_prev, w_h, out=gh[:3])
                add(gh[:3], b_h, out=gh[:3])
                gh[3] = h_prev
                gh_r.round()
                rz = add(gx[:2], gh[:2], out=rz_r.array)
                rz_r.round()
                if stacked:
                    np.copyto(sig_r_buf.array, sig_r.fn(sig_r.ctx, x=rz))
                else:  # one call per gate, rounded together
                    np.copyto(sig_r_buf.array[0], sig_r.fn(sig_r.ctx, x=rz[0]))
                    np.copyto(sig_r_buf.array[1], sig_z.fn(sig_z.ctx, x=rz[1]))
                sig_r_buf.round()
                rz = sig_r_buf.array
                r, z = rz[0], rz[1]
                n_h3 = mul(rz, gh[2:4], out=nh_r.array)
                nh_r.round()
                n, h3 = n_h3[0], n_h3[1]
                _rest(gru, gx, n, z, h3, lst, t, _round16, r_scatter, tail)
                continue
            gh = np.empty((4, batch, hidden), F32)
            gates = gh[:3]
            matmul(h_prev, w_h, out=gates)
            add(gates, b_h, out=gates)
            if stack_mul:
                gh[3] = h_prev
                if r_lin:
                    gh = _round16(gh)
            elif r_lin:
                gh = _round16(gates)
            rz = add(gx[:2], gh[:2])
            if r_add:
                rz = _round16(rz)
            if stacked:
                rz = sig_r.fn(sig_r.ctx, x=rz)
                if r_sig:
                    rz = _round16(rz)
                r, z = rz[0], rz[1]
            else:
                r = sig_r.fn(sig_r.ctx, x=rz[0])
                if r_sig_r:
                    r = _round16(r)
                z = sig_z.fn(sig_z.ctx, x=rz[1])
                if r_sig_z:
                    z = _round16(z)
                if stack_mul:
                    rz = np.stack((r, z))
            if stack_mul:
                n_h3 = mul(rz, gh[2:4])
                if r_n3:
                    n_h3 = _round16(n_h3)
                n, h3 = n_h3[0], n_h3[1]
            else:
                n = mul(r, gh[2])
                if r_n3:
                    n = _round16(n)
                h3 = mul(z, h_prev)
                if r_h3:
                    h3 = _round16(h3)
            n = add(gx[2], n)
            if r_n4:
                n = _round16(n)
            n = tanh.fn(tanh.ctx, x=n)
            if r_tanh:
                n = _round16(n)
            h1 = sub(one, z)
            if r_h1:
                h1 = _round16(h1)
            h2 = mul(h1, n)
            if r_h2:
                h2 = _round16(h2)
            h = add(h2, h3)
            if r_h:
                h = _round16(h)
            row = add(lst[t + 1], h)  # scatter(mode="add") at row t + 1
            if r_scatter:
                row = _round16(row)
            lst[t + 1] = row


#: From this many elements per gate on, the cell's tail rounds in place through torch.
_TAIL_INPLACE_MIN = 512


class _InPlace:
    """A float32 buffer rounded to binary16 in place through torch's vectorised
    conversion (two copies through a binary16 buffer): a few microseconds whatever the
    size, where numpy's conversion costs about 6 ns per element. Round to nearest
    even, overflow to inf, subnormals and nan kept: the storer's values."""

    def __init__(self, torch: Any, shape: tuple[int, ...]) -> None:
        self.array = np.empty(shape, F32)
        self._single = torch.from_numpy(self.array)
        self._half = torch.empty(shape, dtype=torch.float16)

    def round(self) -> None:
        self._half.copy_(self._single)
        self._single.copy_(self._half)


def _rest(
    gru: _Gru,
    gx: np.ndarray,
    n: np.ndarray,
    z: np.ndarray,
    h3: np.ndarray,
    lst: np.ndarray,
    t: int,
    round16: Callable[[Any], np.ndarray],
    r_scatter: bool,
    tail: tuple[_InPlace, ...] | None,
) -> None:
    """The rest of an all-fp16 step: the candidate state and the new hidden state
    (rounded in place through torch when ``tail`` holds buffers: larger states)."""
    add, mul, sub = np.add, np.multiply, np.subtract
    if tail is None:
        n = round16(add(gx[2], n))
        n = round16(gru.tanh.fn(gru.tanh.ctx, x=n))
        h1 = round16(sub(gru.one, z))
        h2 = round16(mul(h1, n))
        h = round16(add(h2, h3))
    else:
        n4_r, tanh_r, h1_r, h2_r, h_r = tail
        add(gx[2], n, out=n4_r.array)
        n4_r.round()
        np.copyto(tanh_r.array, gru.tanh.fn(gru.tanh.ctx, x=n4_r.array))
        tanh_r.round()
        sub(gru.one, z, out=h1_r.array)
        h1_r.round()
        mul(h1_r.array, tanh_r.array, out=h2_r.array)
        h2_r.round()
        h = add(h2_r.array, h3, out=h_r.array)
        h_r.round()
    row = add(lst[t + 1], h)  # scatter(mode="add") at row t + 1
    if r_scatter:
        row = round16(row)
    lst[t + 1] = row
