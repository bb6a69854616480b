"""Plan-time specialisation of index and shape kernels whose parameters are constants.

``slice_by_index``, ``reshape``, ``gather`` and their kin re-read their constant
parameters (begin, end, masks, a target shape, indices) and re-derive a numpy index
on every call: on the small tensors of a causal LM that is most of their cost. For a
step whose only variable input is ``x`` and whose kernel is in :data:`SPECIALISERS`,
the planner runs a specialised kernel instead: it derives the index once per input
shape, by the kernel's own helpers (so a bad parameter raises the kernel's error, the
first time a shape is seen and every time after), keeps it, and then only indexes.
The result is the same view or copy of ``x`` the kernel returns: same values, same
shape, same strides.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from .kernels._common import axis_of
from .kernels.scatter_gather import normalize_indices
from .kernels.tensor_ops import _ints, _reshape_target, index_slices
from .registry import KernelFn, OpContext, Value

#: Input shapes remembered per step (a flexible-shape model sees a few); then it starts over.
_MEMO_SIZE = 64

#: ``factory(ctx, consts, kernel) -> specialised kernel``, or None to keep the kernel.
Specialiser = Callable[[OpContext, dict[str, Value], KernelFn], KernelFn | None]


def specialised(
    op_type: str,
    ctx: OpContext,
    consts: dict[str, Value],
    refs: tuple[tuple[str, str], ...],
    tuples: tuple[Any, ...],
    kernel: KernelFn,
) -> KernelFn | None:
    """A specialised kernel for this step, or None (not in the table, or more than ``x`` varies)."""
    if tuples or len(refs) != 1 or refs[0][0] != "x":
        return None
    factory = SPECIALISERS.get(op_type)
    return None if factory is None else factory(ctx, consts, kernel)


def _per_shape(derive: Callable[[tuple[int, ...]], Any]) -> Callable[[tuple[int, ...]], Any]:
    """``derive`` remembered by input shape."""
    memo: dict[tuple[int, ...], Any] = {}

    def get(shape: tuple[int, ...]) -> Any:
        found = memo.get(shape)
        if found is None:
            found = derive(shape)
            if len(memo) >= _MEMO_SIZE:
                memo.clear()
            memo[shape] = found
        return found

    return get


def _fallback(kernel: KernelFn, consts: dict[str, Value], fast: Callable[[np.ndarray], Any]) -> KernelFn:
    """``fast(x)`` for an array ``x``; anything else (never seen from the engines) takes the kernel."""

    def run(ctx: OpContext, x: Any, **_constants: Value) -> Any:  # the engines pass them too
        if type(x) is np.ndarray:
            return fast(x)
        return kernel(ctx, x=x, **consts)

    functools.update_wrapper(run, kernel)  # named as the kernel; ``__wrapped__`` is the kernel
    return run


def _stand_in(shape: tuple[int, ...]) -> np.ndarray:
    """An array of ``shape`` without memory (every stride 0), for a kernel's shape rule."""
    return np.broadcast_to(np.False_, shape)


def _reshape(ctx: OpContext, consts: dict[str, Value], kernel: KernelFn) -> KernelFn | None:
    if set(consts) != {"shape"}:
        return None
    target = _ints(consts["shape"])
    shape_of = _per_shape(lambda shape: _reshape_target(ctx, shape, list(target)))
    return _fallback(kernel, consts, lambda x: x.reshape(shape_of(x.shape)))


def _expand_dims(ctx: OpContext, consts: dict[str, Value], kernel: KernelFn) -> KernelFn | None:
    if set(consts) != {"axes"}:
        return None
    axes = consts["axes"]

    def derive(shape: tuple[int, ...]) -> list[int]:
        # The kernel's shape rule, on a stand-in of the same shape (no data).
        return list(kernel(ctx, x=_stand_in(shape), axes=axes).shape)

    shape_of = _per_shape(derive)
    return _fallback(kernel, consts, lambda x: x.reshape(shape_of(x.shape)))


def _squeeze(ctx: OpContext, consts: dict[str, Value], kernel: KernelFn) -> KernelFn | None:
    if not set(consts) <= {"axes"}:
        return None

    def derive(shape: tuple[int, ...]) -> list[int]:
        return list(kernel(ctx, x=_stand_in(shape), **consts).shape)

    shape_of = _per_shape(derive)
    return _fallback(kernel, consts, lambda x: x.reshape(shape_of(x.shape)))


def _transpose(ctx: OpContext, consts: dict[str, Value], kernel: KernelFn) -> KernelFn | None:
    if set(consts) != {"perm"}:
        return None
    perm = _ints(consts["perm"])
    axes_of = _per_shape(lambda shape: [axis_of(p, len(shape)) for p in perm])

    def fast(x: np.ndarray) -> np.ndarray:
        return np.transpose(x, axes_of(x.shape)) if x.ndim else x

    return _fallback(kernel, consts, fast)


def _slice_by_index(ctx: OpContext, consts: dict[str, Value], kernel: KernelFn) -> KernelFn | None:
    keys = ("begin", "end", "stride", "begin_mask", "end_mask", "squeeze_mask")
    if not set(consts) <= set(keys) or not {"begin", "end"} <= set(consts):
        return None
    params = [consts.get(key) for key in keys]

    def derive(shape: tuple[int, ...]) -> tuple[tuple[slice | int, ...], tuple[int, ...]]:
        index, squeezed = index_slices(shape, *params)
        return index, tuple(squeezed)

    index_of = _per_shape(derive)

    def fast(x: np.ndarray) -> np.ndarray:
        index, squeezed = index_of(x.shape)
        out: np.ndarray = x[index]
        return out.squeeze(axis=squeezed) if squeezed else out

    return _fallback(kernel, consts, fast)


def _gather(ctx: OpContext, consts: dict[str, Value], kernel: KernelFn) -> KernelFn | None:
    if "indices" not in consts or not set(consts) <= {"indices", "axis", "batch_dims", "validate_indices"}:
        return None
    if int(consts.get("batch_dims", 0)) != 0:
        return None
    indices, axis = consts["indices"], consts.get("axis", 0)

    def derive(shape: tuple[int, ...]) -> tuple[int, np.ndarray]:
        ax = axis_of(axis, len(shape))
        return ax, normalize_indices(ctx, indices, shape[ax])

    index_of = _per_shape(derive)

    def fast(x: np.ndarray) -> Any:
        ax, idx = index_of(x.shape)
        return np.take(x, idx, axis=ax)

    return _fallback(kernel, consts, fast)


SPECIALISERS: dict[str, Specialiser] = {
    "reshape": _reshape,
    "expand_dims": _expand_dims,
    "squeeze": _squeeze,
    "transpose": _transpose,
    "slice_by_index": _slice_by_index,
    "gather": _gather,
}
