"""Kernels for the MIL ``scatter_gather`` section.

Index rules follow the spec's opset history: up to iOS16 a negative index
counts from the end; from iOS17 negative indices are out of bounds and the
result is undefined. The emulator raises on every out-of-bounds index (whatever
``validate_indices`` says), because an undefined result cannot be emulated.

Scatter modes ``add``/``sub``/``mul``/``div``/``max``/``min`` accumulate
duplicates in float32 (int64 for ints) and the runner rounds once. ``update``
with duplicate destinations keeps the last write in row-major order of
``updates``: the spec does not say which write wins, but coremltools' reference
(``np.put_along_axis``, its value inference) and its device-run op tests
(random indices, duplicates in most cases) agree on that order.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import UnspecifiedResultError
from ..registry import OpContext, kernel
from ._common import axis_of
from .tensor_ops import opset_number

_UFUNCS = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "max": np.maximum,
    "min": np.minimum,
}


def normalize_indices(ctx: OpContext, indices: Any, size: Any) -> np.ndarray:
    """Indices as int64 in ``[0, size)``; negatives wrap before iOS17; else raise.

    ``size`` broadcasts against ``indices`` (gather_nd passes one size per column).
    """
    idx = np.asarray(indices).astype(np.int64)
    # The common case, one bound: two reductions decide that every index is valid.
    if isinstance(size, (int, np.integer)) and idx.size and int(idx.min()) >= 0 and int(idx.max()) < size:
        return idx
    bound = np.broadcast_to(np.asarray(size, dtype=np.int64), idx.shape)
    if opset_number(ctx) < 17:
        idx = np.where(idx < 0, idx + bound, idx)
    bad = (idx < 0) | (idx >= bound)
    if bad.any():
        first = np.asarray(indices).reshape(-1)[int(np.argmax(bad.reshape(-1)))]
        rule = (
            "[-size, size)"
            if opset_number(ctx) < 17
            else "[0, size) (iOS17+: negatives are out of bounds)"
        )
        raise UnspecifiedResultError(
            f"{ctx.op_type}: index {int(first)} out of bounds; indices must lie in {rule}, "
            "other values have undefined results in Core ML"
        )
    return idx


# --------------------------------------------------------------------------- gathers


@kernel("gather")
def gather(
    ctx: OpContext,
    x: np.ndarray,
    indices: Any,
    axis: Any = 0,
    batch_dims: Any = 0,
    validate_indices: Any = False,
) -> np.ndarray:
    """``tf.gather`` with ``batch_dims``: out = x.shape[:axis] + indices.shape[b:] + x.shape[axis+1:]."""
    x = np.asarray(x)
    ax, b = axis_of(axis, x.ndim), int(batch_dims)
    idx = normalize_indices(ctx, indices, x.shape[ax])
    if b == 0:
        return np.take(x, idx, axis=ax)
    if not 0 < b <= ax or x.shape[:b] != idx.shape[:b]:
        raise ValueError(f"gather: batch_dims={b} needs axis >= batch_dims and equal leading dims")
    batch = math.prod(x.shape[:b])
    xb = x.reshape((batch, *x.shape[b:]))
    ib = idx.reshape((batch, *idx.shape[b:]))
    parts = [np.take(xb[i], ib[i], axis=ax - b) for i in range(batch)]
    out_shape = x.shape[:ax] + idx.shape[b:] + x.shape[ax + 1 :]
    return np.stack(parts).reshape(out_shape)


@kernel("gather_along_axis")
def gather_along_axis(
    ctx: OpContext, x: np.ndarray, indices: Any, axis: Any = 0, validate_indices: Any = False
) -> np.ndarray:
    x = np.asarray(x)
    ax = axis_of(axis, x.ndim)
    idx = normalize_indices(ctx, indices, x.shape[ax])
    _check_along_axis_shapes(x.shape, idx.shape, ax)
    return np.take_along_axis(x, idx, axis=ax)


@kernel("gather_nd")
def gather_nd(
    ctx: OpContext, x: np.ndarray, indices: Any, batch_dims: Any = 0, validate_indices: Any = False
) -> np.ndarray:
    """``tf.gather_nd``: out = indices.shape[:-1] + x.shape[batch_dims + indices.shape[-1]:]."""
    x = np.asarray(x)
    raw = np.asarray(indices)
    b, depth = int(batch_dims), raw.shape[-1]
    if b + depth > x.ndim or x.shape[:b] != raw.shape[:b]:
        raise ValueError(
            f"gather_nd: indices {raw.shape} do not fit x {x.shape} with batch_dims={b}"
        )
    idx = normalize_indices(ctx, raw, x.shape[b : b + depth])
    batch = math.prod(x.shape[:b])
    xb = x.reshape((batch, *x.shape[b:]))
    ib = idx.reshape((batch, *idx.shape[b:]))
    parts = [xb[i][tuple(np.moveaxis(ib[i], -1, 0))] for i in range(batch)]
    return np.stack(parts).reshape(raw.shape[:-1] + x.shape[b + depth :])


def _check_along_axis_shapes(x_shape: tuple[int, ...], idx_shape: tuple[int, ...], ax: int) -> None:
    if len(x_shape) != len(idx_shape) or any(
        i != ax and a != c for i, (a, c) in enumerate(zip(x_shape, idx_shape, strict=True))
    ):
        raise ValueError(f"indices {idx_shape} must match x {x_shape} except along axis {ax}")


# --------------------------------------------------------------------------- scatters


def _apply(
    data: np.ndarray, where: tuple[np.ndarray, ...], updates: np.ndarray, mode: str
) -> np.ndarray:
    """Write ``updates`` into a copy of ``data`` at the integer-array index ``where``."""
    acc = np.float32 if data.dtype.kind == "f" else np.int64
    out = data.astype(acc, copy=True)
    upd = np.asarray(updates).astype(acc)
    if mode == "update":
        _update_last_write_wins(out, where, upd)
        return out
    ufunc = _UFUNCS.get(mode)
    if ufunc is None:
        raise NotImplementedError(f"scatter mode {mode!r}")
    if mode == "div" and acc is np.int64:
        raise NotImplementedError(
            "scatter mode 'div' on integers: the spec does not define the rounding"
        )
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ufunc.at(out, where, upd)
    return out


def _update_last_write_wins(
    out: np.ndarray, where: tuple[np.ndarray, ...], updates: np.ndarray
) -> None:
    """``out[where] = updates`` where, for a repeated destination, the update that
    comes last in row-major order wins (numpy leaves that order unspecified)."""
    flat = np.ravel_multi_index(where, out.shape).reshape(-1)
    values = np.broadcast_to(updates, where[0].shape).reshape(-1)
    _, first_from_end = np.unique(flat[::-1], return_index=True)
    last = flat.size - 1 - first_from_end
    out.reshape(-1)[flat[last]] = values[last]


@kernel("scatter")
def scatter(
    ctx: OpContext,
    data: np.ndarray,
    indices: Any,
    updates: np.ndarray,
    axis: Any = 0,
    mode: str = "add",
    validate_indices: Any = False,
) -> np.ndarray:
    """out[..., indices[i], ...] (mode)= updates[..., i, ...] along ``axis``."""
    data = np.asarray(data)
    ax = axis_of(axis, data.ndim)
    if np.ndim(indices) != 1:
        raise ValueError(f"scatter: indices must be 1-D, got shape {np.shape(indices)}")
    idx = normalize_indices(ctx, indices, data.shape[ax])
    updates = np.asarray(updates)
    want = data.shape[:ax] + idx.shape + data.shape[ax + 1 :]
    if updates.shape != want:
        raise ValueError(f"scatter: updates have shape {updates.shape}, expected {want}")
    grids: list[np.ndarray] = list(np.indices(want, sparse=True))
    grids[ax] = idx.reshape([idx.size if d == ax else 1 for d in range(data.ndim)])
    where_b = tuple(np.broadcast_arrays(*grids))
    return _apply(data, where_b, updates, mode)


@kernel("scatter_along_axis")
def scatter_along_axis(
    ctx: OpContext,
    data: np.ndarray,
    indices: Any,
    updates: np.ndarray,
    axis: Any = 0,
    mode: str = "add",
    validate_indices: Any = False,
) -> np.ndarray:
    """out[..., indices[p], ...] (mode)= updates[p] along ``axis`` (torch ``scatter``)."""
    data = np.asarray(data)
    ax = axis_of(axis, data.ndim)
    idx = normalize_indices(ctx, indices, data.shape[ax])
    updates = np.asarray(updates)
    if updates.shape != idx.shape:
        raise ValueError(
            f"scatter_along_axis: updates {updates.shape} differ from indices {idx.shape}"
        )
    _check_along_axis_shapes(data.shape, idx.shape, ax)
    grids: list[np.ndarray] = list(np.indices(idx.shape, sparse=True))
    grids[ax] = idx
    return _apply(data, tuple(np.broadcast_arrays(*grids)), updates, mode)


@kernel("scatter_nd")
def scatter_nd(
    ctx: OpContext,
    data: np.ndarray,
    indices: Any,
    updates: np.ndarray,
    mode: str = "add",
    validate_indices: Any = False,
) -> np.ndarray:
    """out[indices[i...]] (mode)= updates[i...]; each index row addresses a slice."""
    data = np.asarray(data)
    raw = np.asarray(indices)
    depth = raw.shape[-1]
    if depth > data.ndim:
        raise ValueError(f"scatter_nd: index depth {depth} exceeds rank {data.ndim}")
    idx = normalize_indices(ctx, raw, data.shape[:depth])
    updates = np.asarray(updates)
    want = raw.shape[:-1] + data.shape[depth:]
    if updates.shape != want:
        raise ValueError(f"scatter_nd: updates have shape {updates.shape}, expected {want}")
    lead, tail = idx.shape[:-1], data.shape[depth:]
    where = [idx[..., j].reshape(lead + (1,) * len(tail)) for j in range(depth)]
    where += list(np.indices(lead + tail, sparse=True))[len(lead) :]
    return _apply(data, tuple(np.broadcast_arrays(*where)), updates, mode)
