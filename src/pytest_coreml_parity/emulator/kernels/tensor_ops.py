"""Kernels for the MIL ``tensor_operation`` and ``tensor_transformation`` sections.

These ops move, copy, select or generate values; almost none do arithmetic, so
they are exact in any dtype. The few that do arithmetic (``cumsum``,
``range_1d``) compute in float32 (or int64) and the runner rounds the result
once to the declared dtype. Where the spec leaves a result undefined (an index
out of range, a pad wider than reflect allows, an ambiguous shape) the kernel
raises instead of guessing.

``pixel_shuffle``, ``pixel_unshuffle``, ``space_to_depth``, ``depth_to_space``,
``space_to_batch`` and ``batch_to_space`` live with the image ops, not here;
``identity`` is registered by the control-flow module (it serves loop bodies).
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

import numpy as np

from ..errors import UnspecifiedResultError
from ..registry import OpContext, kernel
from ._common import axis_of

# --------------------------------------------------------------------------- helpers


def opset_number(ctx: OpContext) -> int:
    """The iOS version number of the program's opset (``"iOS17"`` -> 17)."""
    return _opset_number(ctx.opset)


@functools.cache
def _opset_number(opset: str) -> int:
    match = re.fullmatch(r"iOS(\d+)", opset)
    if match is None:
        raise NotImplementedError(f"unknown opset {opset!r}; expected a name like 'iOS17'")
    return int(match.group(1))


def _ints(value: Any) -> list[int]:
    return [int(v) for v in np.asarray(value).reshape(-1).tolist()]


def _bools(value: Any, rank: int) -> list[bool]:
    if value is None:
        return [False] * rank
    return [bool(v) for v in np.atleast_1d(np.asarray(value)).reshape(-1)]


def _as_tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


# --------------------------------------------------------------------------- shape ops


def _reshape_target(ctx: OpContext, in_shape: tuple[int, ...], shape: list[int]) -> list[int]:
    """Resolve the 0 and -1 entries of a MIL reshape ``shape`` (opset dependent)."""
    if shape.count(-1) > 1:
        raise ValueError(f"reshape shape {shape} has more than one -1")
    if 0 in shape:
        if opset_number(ctx) >= 17:
            # iOS17: each 0 copies the input dim aligned from the right; none left -> 1.
            out = list(shape)
            for i, s in enumerate(shape):
                if s == 0:
                    j = len(in_shape) - (len(shape) - i)
                    out[i] = in_shape[j] if j >= 0 else 1
            shape = out
        else:
            if len(shape) != len(in_shape):
                raise ValueError(
                    f"reshape shape {shape} has a 0 but its length differs from rank {len(in_shape)}"
                )
            shape = [in_shape[i] if s == 0 else s for i, s in enumerate(shape)]
    if any(s < -1 for s in shape):
        raise ValueError(f"reshape shape {shape} has a negative entry other than -1")
    total = math.prod(in_shape)
    if -1 in shape:
        rest = math.prod(s for s in shape if s != -1)
        if rest == 0 or total % rest:
            raise ValueError(f"cannot infer the -1 in reshape {in_shape} -> {shape}")
        shape = [total // rest if s == -1 else s for s in shape]
    if math.prod(shape) != total:
        raise ValueError(f"reshape {in_shape} -> {shape} changes the number of elements")
    return shape


@kernel("reshape")
def reshape(ctx: OpContext, x: np.ndarray, shape: Any) -> np.ndarray:
    x = np.asarray(x)
    return x.reshape(_reshape_target(ctx, x.shape, _ints(shape)))


@kernel("reshape_like")
def reshape_like(
    ctx: OpContext,
    x: np.ndarray,
    ref_tensors: Any,
    begins: Any,
    ends: Any,
    end_masks: Any,
) -> np.ndarray:
    refs, b, e, m = (_as_tuple(v) for v in (ref_tensors, begins, ends, end_masks))
    if not len(refs) == len(b) == len(e) == len(m):
        raise ValueError("reshape_like: ref_tensors, begins, ends and end_masks differ in length")
    shape: list[int] = []
    for ref, begin, end, mask in zip(refs, b, e, m, strict=True):
        dims = np.shape(ref)
        shape.extend(dims[int(begin) :] if bool(mask) else dims[int(begin) : int(end)])
    x = np.asarray(x)
    if math.prod(shape) != x.size:
        raise ValueError(f"reshape_like {x.shape} -> {tuple(shape)} changes the number of elements")
    return x.reshape(shape)


@kernel("transpose")
def transpose(ctx: OpContext, x: np.ndarray, perm: Any) -> np.ndarray:
    x = np.asarray(x)
    return np.transpose(x, [axis_of(p, x.ndim) for p in _ints(perm)]) if x.ndim else x


@kernel("expand_dims")
def expand_dims(ctx: OpContext, x: np.ndarray, axes: Any) -> np.ndarray:
    x = np.asarray(x)
    axes_list = _ints(axes)
    out_rank = x.ndim + len(axes_list)
    shape = list(x.shape)
    for a in sorted(axis_of(a, out_rank) for a in axes_list):
        if not 0 <= a < out_rank:
            raise ValueError(f"expand_dims axis {a} out of range for output rank {out_rank}")
        shape.insert(a, 1)
    return x.reshape(shape)


@kernel("squeeze")
def squeeze(ctx: OpContext, x: np.ndarray, axes: Any = None) -> np.ndarray:
    """Squeeze size-1 dims; like PyTorch, a listed axis whose size is not 1 is kept."""
    x = np.asarray(x)
    if axes is None:
        drop = {i for i, d in enumerate(x.shape) if d == 1}
    else:
        drop = {a for a in (axis_of(a, x.ndim) for a in _ints(axes)) if x.shape[a] == 1}
    return x.reshape([d for i, d in enumerate(x.shape) if i not in drop])


@kernel("flatten2d")
def flatten2d(ctx: OpContext, x: np.ndarray, axis: Any = 1) -> np.ndarray:
    x = np.asarray(x)
    a = int(axis)
    a = a + x.ndim if a < 0 else a
    return x.reshape(math.prod(x.shape[:a]), math.prod(x.shape[a:]))


@kernel("shape")
def shape(ctx: OpContext, x: np.ndarray) -> np.ndarray:
    return np.asarray(np.shape(x), dtype=np.int32)


# --------------------------------------------------------------------------- join / split


@kernel("concat")
def concat(ctx: OpContext, values: Any, axis: Any, interleave: Any = False) -> np.ndarray:
    arrays = [np.asarray(v) for v in _as_tuple(values)]
    if all(a.ndim == 0 for a in arrays):  # scalars concatenate into a vector
        arrays = [a.reshape(1) for a in arrays]
    ax = axis_of(axis, arrays[0].ndim)
    if not bool(interleave):
        return np.concatenate(arrays, axis=ax)
    if any(a.shape != arrays[0].shape for a in arrays):
        raise ValueError("concat with interleave=True needs inputs of identical shape")
    stacked = np.stack(arrays, axis=ax + 1)
    shape = list(arrays[0].shape)
    shape[ax] *= len(arrays)
    return stacked.reshape(shape)


@kernel("stack")
def stack(ctx: OpContext, values: Any, axis: Any) -> np.ndarray:
    arrays = [np.asarray(v) for v in _as_tuple(values)]
    return np.stack(arrays, axis=axis_of(axis, arrays[0].ndim + 1))


@kernel("split")
def split(
    ctx: OpContext,
    x: np.ndarray,
    axis: Any,
    num_splits: Any = None,
    split_sizes: Any = None,
) -> tuple[np.ndarray, ...]:
    x = np.asarray(x)
    ax = axis_of(axis, x.ndim)
    length = x.shape[ax]
    if split_sizes is not None:
        sizes = _ints(split_sizes)
    elif num_splits is not None:
        n = int(num_splits)
        if n <= 0 or length % n:
            raise ValueError(f"split: num_splits={n} does not divide dimension {length}")
        sizes = [length // n] * n
    else:
        raise ValueError("split needs num_splits or split_sizes")
    if sum(sizes) != length or any(s < 0 for s in sizes):
        raise ValueError(f"split sizes {sizes} do not add up to dimension {length}")
    bounds = np.cumsum(sizes)[:-1]
    parts = tuple(np.split(x, bounds, axis=ax))
    if len(parts) != len(ctx.output_dtypes):
        raise ValueError(
            f"split makes {len(parts)} parts, the program declares {len(ctx.output_dtypes)}"
        )
    return parts if len(parts) > 1 else parts[0]  # type: ignore[return-value]


@kernel("tile")
def tile(ctx: OpContext, x: np.ndarray, reps: Any) -> np.ndarray:
    x = np.asarray(x)
    r = _ints(reps)
    if len(r) != x.ndim or any(v <= 0 for v in r):
        raise ValueError(f"tile reps {r} must be positive, one per dimension of rank {x.ndim}")
    return np.tile(x, r)


# --------------------------------------------------------------------------- slicing


def index_slices(
    shape: tuple[int, ...],
    begin: Any,
    end: Any,
    stride: Any,
    begin_mask: Any,
    end_mask: Any,
    squeeze_mask: Any,
) -> tuple[tuple[slice | int, ...], list[int]]:
    """numpy indices for a MIL ``slice_by_index`` and the axes ``squeeze_mask`` removes.

    Python slice semantics (negative indices count from the end, out-of-range
    bounds clamp) are the spec's; a squeezed axis picks the single element at
    ``begin`` and must be in range.
    """
    rank = len(shape)
    b, e = _ints(begin), _ints(end)
    s = [1] * rank if stride is None else _ints(stride)
    bm, em, sm = (_bools(v, rank) for v in (begin_mask, end_mask, squeeze_mask))
    if not len(b) == len(e) == len(s) == len(bm) == len(em) == len(sm) == rank:
        raise ValueError(f"slice parameters must all have length rank(x) = {rank}")
    index: list[slice | int] = []
    squeezed = []
    for i in range(rank):
        if sm[i]:
            pos = b[i] + shape[i] if b[i] < 0 else b[i]
            if not 0 <= pos < shape[i]:
                raise IndexError(
                    f"squeezed index {b[i]} out of range for axis {i} of size {shape[i]}"
                )
            index.append(slice(pos, pos + 1))
            squeezed.append(i)
            continue
        if s[i] == 0:
            raise ValueError("slice stride must not be 0")
        index.append(slice(None if bm[i] else b[i], None if em[i] else e[i], s[i]))
    return tuple(index), squeezed


@kernel("slice_by_index")
def slice_by_index(
    ctx: OpContext,
    x: np.ndarray,
    begin: Any,
    end: Any,
    stride: Any = None,
    begin_mask: Any = None,
    end_mask: Any = None,
    squeeze_mask: Any = None,
) -> np.ndarray:
    x = np.asarray(x)
    index, squeezed = index_slices(x.shape, begin, end, stride, begin_mask, end_mask, squeeze_mask)
    out = x[index]
    return out.squeeze(axis=tuple(squeezed)) if squeezed else out


@kernel("slice_update")
def slice_update(
    ctx: OpContext,
    x: np.ndarray,
    update: np.ndarray,
    begin: Any,
    end: Any,
    stride: Any = None,
    begin_mask: Any = None,
    end_mask: Any = None,
    squeeze_mask: Any = None,
) -> np.ndarray:
    out = np.array(x, copy=True)
    index, squeezed = index_slices(
        out.shape, begin, end, stride, begin_mask, end_mask, squeeze_mask
    )
    target_shape = out[index].shape
    upd = np.asarray(update)
    want = tuple(d for i, d in enumerate(target_shape) if i not in squeezed)
    if upd.shape != want:
        raise ValueError(f"slice_update: update has shape {upd.shape}, the slice has {want}")
    out[index] = upd.reshape(target_shape)
    return out


@kernel("slice_by_size")
def slice_by_size(ctx: OpContext, x: np.ndarray, begin: Any, size: Any) -> np.ndarray:
    x = np.asarray(x)
    b, sz = _ints(begin), _ints(size)
    if not len(b) == len(sz) == x.ndim:
        raise ValueError(f"slice_by_size: begin and size must have length rank(x) = {x.ndim}")
    index = []
    for i, (start, n) in enumerate(zip(b, sz, strict=True)):
        dim = x.shape[i]
        start = start + dim if start < 0 else start
        stop = dim if n == -1 else start + n
        if not (0 <= start <= dim and start <= stop <= dim) or n < -1:
            raise IndexError(
                f"slice_by_size: begin {b[i]} size {n} out of range for axis {i} of size {dim}"
            )
        index.append(slice(start, stop))
    return x[tuple(index)]


@kernel("reverse")
def reverse(ctx: OpContext, x: np.ndarray, axes: Any = None) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 0:
        return x
    flip = range(x.ndim) if axes is None else [axis_of(a, x.ndim) for a in _ints(axes)]
    return np.flip(x, axis=tuple(flip))


@kernel("reverse_sequence")
def reverse_sequence(
    ctx: OpContext, x: np.ndarray, lengths: Any, seq_axis: Any = 0, batch_axis: Any = 0
) -> np.ndarray:
    x = np.asarray(x)
    sa, ba = axis_of(seq_axis, x.ndim), axis_of(batch_axis, x.ndim)
    if sa == ba:
        raise ValueError("reverse_sequence: seq_axis and batch_axis must differ")
    lens = _ints(lengths)
    if len(lens) != x.shape[ba]:
        raise ValueError(f"reverse_sequence: {len(lens)} lengths for batch size {x.shape[ba]}")
    out = np.array(x, copy=True)
    for i, n in enumerate(lens):
        if not 0 <= n <= x.shape[sa]:
            raise IndexError(f"reverse_sequence: length {n} out of range [0, {x.shape[sa]}]")
        src: list[Any] = [slice(None)] * x.ndim
        src[ba] = i
        src[sa] = slice(0, n)
        dst_seq_axis = sa - (1 if ba < sa else 0)
        out[tuple(src)] = np.flip(x[tuple(src)], axis=dst_seq_axis)
    return out


@kernel("sliding_windows")
def sliding_windows(
    ctx: OpContext, x: np.ndarray, axis: Any, size: Any, stride: Any = 1
) -> np.ndarray:
    x = np.asarray(x)
    ax, n, st = axis_of(axis, x.ndim), int(size), int(stride)
    if n <= 0 or st <= 0 or n > x.shape[ax]:
        raise ValueError(
            f"sliding_windows: size {n} / stride {st} invalid for axis size {x.shape[ax]}"
        )
    windows = np.lib.stride_tricks.sliding_window_view(x, n, axis=ax)  # window dim is last
    index: list[Any] = [slice(None)] * windows.ndim
    index[ax] = slice(None, None, st)
    return np.moveaxis(windows[tuple(index)], -1, ax + 1).copy()


@kernel("pad")
def pad(
    ctx: OpContext, x: np.ndarray, pad: Any, mode: str = "constant", constant_val: Any = 0.0
) -> np.ndarray:
    """Pad the last ``len(pad) // 2`` dims; reflect excludes the edge (as PyTorch)."""
    x = np.asarray(x)
    p = _ints(pad)
    if len(p) % 2 or len(p) // 2 > x.ndim or any(v < 0 for v in p):
        raise ValueError(f"pad {p} must be non-negative pairs for at most rank(x) = {x.ndim} dims")
    widths = [(0, 0)] * (x.ndim - len(p) // 2) + [
        (p[2 * i], p[2 * i + 1]) for i in range(len(p) // 2)
    ]
    if mode == "constant":
        return np.pad(x, widths, mode="constant", constant_values=np.asarray(constant_val).item())
    for dim, (lo, hi) in zip(x.shape, widths, strict=True):
        limit = dim - 1 if mode == "reflect" else dim
        if (lo or hi) and max(lo, hi) > limit:
            raise ValueError(
                f"{mode} pad ({lo}, {hi}) exceeds {limit} for a dimension of size {dim}"
            )
    if mode == "reflect":
        return np.pad(x, widths, mode="reflect")
    if mode == "replicate":
        return np.pad(x, widths, mode="edge")
    raise NotImplementedError(f"pad mode {mode!r}")


@kernel("band_part")
def band_part(ctx: OpContext, x: np.ndarray, lower: Any = -1, upper: Any = -1) -> np.ndarray:
    x = np.asarray(x)
    m, n = x.shape[-2:]
    rows = np.arange(m)[:, None]
    cols = np.arange(n)[None, :]
    lo, up = int(lower), int(upper)
    keep = ((lo < 0) | (rows - cols <= lo)) & ((up < 0) | (cols - rows <= up))
    return np.where(keep, x, np.zeros((), dtype=x.dtype))


# --------------------------------------------------------------------------- generators


@kernel("fill")
def fill(ctx: OpContext, shape: Any, value: Any = 0.0) -> np.ndarray:
    return np.full(_ints(shape) if np.size(shape) else (), np.asarray(value).item())


@kernel("fill_like")
def fill_like(ctx: OpContext, ref_tensor: np.ndarray, value: Any = 0.0) -> np.ndarray:
    return np.full(np.shape(ref_tensor), np.asarray(value).item())


@kernel("range_1d")
def range_1d(ctx: OpContext, start: Any, end: Any, step: Any) -> np.ndarray:
    """``start + i * step`` for ``i < ceil((end - start) / step)``, each term rounded once."""
    s, e, st = (np.asarray(v) for v in (start, end, step))
    if float(st) == 0:
        raise ValueError("range_1d step must not be 0")
    if all(v.dtype.kind in "iu" for v in (s, e, st)):
        return np.arange(int(s), int(e), int(st), dtype=np.int64)
    n = max(0, math.ceil((float(e) - float(s)) / float(st)))
    return np.float64(s) + np.arange(n, dtype=np.float64) * np.float64(st)


@kernel("one_hot")
def one_hot(
    ctx: OpContext,
    indices: Any,
    one_hot_vector_size: Any,
    axis: Any = -1,
    on_value: Any = 1,
    off_value: Any = 0,
) -> np.ndarray:
    idx = np.asarray(indices).astype(np.int64)
    depth = int(one_hot_vector_size)
    if idx.size and (idx.min() < 0 or idx.max() >= depth):
        raise UnspecifiedResultError(
            f"one_hot: indices must lie in [0, {depth}); the spec leaves others undefined"
        )
    ax = axis_of(axis, idx.ndim + 1)
    hot = np.expand_dims(idx, ax) == np.arange(depth).reshape(
        [depth if i == ax else 1 for i in range(idx.ndim + 1)]
    )
    return np.where(hot, np.asarray(on_value), np.asarray(off_value))


@kernel("non_zero")
def non_zero(ctx: OpContext, x: np.ndarray) -> np.ndarray:
    return np.argwhere(np.asarray(x) != 0).astype(np.int32)


# --------------------------------------------------------------------------- scans and sorting


@kernel("cumsum")
def cumsum(
    ctx: OpContext, x: np.ndarray, axis: Any = 0, exclusive: Any = False, reverse: Any = False
) -> np.ndarray:
    """Sequential running sum in float32 (int64 for ints), rounded once per output element."""
    x = np.asarray(x)
    ax = axis_of(axis, x.ndim)
    acc = np.float32 if x.dtype.kind == "f" else np.int64
    data = np.flip(x, ax) if bool(reverse) else x
    out = np.cumsum(data, axis=ax, dtype=acc)
    if bool(exclusive):
        out = np.concatenate(
            [np.zeros_like(np.take(out, [0], axis=ax)), np.delete(out, -1, axis=ax)], axis=ax
        )
    return np.flip(out, ax) if bool(reverse) else out


def _sort_order(x: np.ndarray, axis: int, ascending: bool) -> np.ndarray:
    """Stable argsort: equal values keep their original order (lower index first)."""
    if x.dtype.kind == "f" and np.isnan(x).any():
        raise UnspecifiedResultError("sorting NaN: Core ML does not document where NaN sorts")
    key = x if ascending else -(x.astype(np.int64) if x.dtype.kind in "iu" else x)
    return np.argsort(key, axis=axis, kind="stable")


def _top_order(x: np.ndarray, axis: int, k: int, ascending: bool) -> np.ndarray:
    """The first ``k`` positions of the stable sort order, without sorting everything.

    ``argpartition`` finds each lane's k-th best value t. Where exactly k values are at
    least as good as t, those k are the answer as a set (no tie straddles the cut), and
    a stable sort of just them, taken in index order, is exactly the full stable sort's
    prefix. Any lane with a tie at t falls back to the full stable sort.
    """
    n = x.shape[axis]
    if x.dtype.kind != "f" or k == 0 or 4 * k > n:
        return np.take(_sort_order(x, axis, ascending), np.arange(k), axis=axis)
    if np.isnan(x).any():
        raise UnspecifiedResultError("sorting NaN: Core ML does not document where NaN sorts")
    key = x if ascending else -x
    part = np.argpartition(key, k - 1, axis=axis)
    kth = np.take_along_axis(key, np.take(part, [k - 1], axis=axis), axis=axis)
    if not np.all(np.count_nonzero(key <= kth, axis=axis) == k):
        return np.take(_sort_order(x, axis, ascending), np.arange(k), axis=axis)
    chosen = np.sort(np.take(part, np.arange(k), axis=axis), axis=axis)  # index order
    ranked = np.argsort(np.take_along_axis(key, chosen, axis=axis), axis=axis, kind="stable")
    return np.take_along_axis(chosen, ranked, axis=axis)


@kernel("argsort")
def argsort(ctx: OpContext, x: np.ndarray, axis: Any = -1, ascending: Any = False) -> np.ndarray:
    x = np.asarray(x)
    return _sort_order(x, axis_of(axis, x.ndim), bool(ascending)).astype(np.int32)


@kernel("topk")
def topk(
    ctx: OpContext,
    x: np.ndarray,
    k: Any = 1,
    axis: Any = -1,
    ascending: Any = False,
    sort: Any = True,
    return_indices: Any = True,
    output_indices_dtype: str = "int32",
) -> Any:
    """Top (or bottom) k, sorted, ties broken by lower index first.

    ``sort=False`` leaves the order unspecified in the spec; we return the
    sorted order, which is one valid answer.
    """
    x = np.asarray(x)
    ax = axis_of(axis, x.ndim)
    kk = int(k)
    kk = x.shape[ax] if kk == -1 else kk
    if not 0 <= kk <= x.shape[ax]:
        raise ValueError(f"topk: k={kk} out of range for axis of size {x.shape[ax]}")
    order = _top_order(x, ax, kk, bool(ascending))
    values = np.take_along_axis(x, order, axis=ax)
    if not bool(return_indices):
        return values
    return values, order.astype(np.int64)
