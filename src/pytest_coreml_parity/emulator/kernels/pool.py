"""Kernels for MIL's pool section: ``avg_pool``, ``max_pool``, ``l2_pool`` (1-D to 3-D).

Each is a reduction over a strided window view of the padded input (no Python
loop over pixels). Padding follows :func:`.conv.spatial_pads`. ``ceil_mode``
adds trailing windows that hang past the padded input, with MIL's output-size
rule (a last window that would start inside the trailing padding is dropped).

* ``max_pool`` pads with -inf, so padding never wins.
* ``avg_pool`` sums in float32 and divides by a per-window count: the padded
  extent clipped to the input plus its padding (``exclude_padding_from_average``
  false, torch's ``count_include_pad=True``), or the real input elements only
  (true). The ``ceil_mode`` overhang is never counted, as in torch.
* ``l2_pool`` is ``sqrt(sum(x**2))``, scaled by the window's max magnitude
  first, so it does not overflow where the result is representable.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from types import EllipsisType
from typing import Any, cast

import numpy as np

from ..registry import OpContext, kernel
from ._common import f32
from .conv import int_list, pad_spatial, spatial_pads, windows


def _out_size(size: int, k: int, s: int, before: int, after: int, ceil_mode: bool) -> int:
    """MIL's pooled length (coremltools ``spatial_dimensions_out_shape``)."""
    total = before + after
    if not ceil_mode:
        return (size + total - k) // s + 1
    out = (size + total - k + s - 1) // s + 1
    if total > 0 and (out - 1) * s >= size + total / 2:
        out -= 1
    return out


def _geometry(
    x: np.ndarray, kernel_sizes: Any, strides: Any, pad_type: str, pad: Any, ceil_mode: Any
) -> tuple[list[int], list[int], list[tuple[int, int]], list[int]]:
    """Kernel, strides, ``(before, after)`` pads and output sizes per spatial dim."""
    n = x.ndim - 2
    if not 1 <= n <= 3:
        raise NotImplementedError(
            f"pooling on a rank-{x.ndim} input (supports 1 to 3 spatial dims)"
        )
    k = int_list(kernel_sizes, n, 1)
    s = int_list(strides, n, 1)
    pads = spatial_pads(pad_type, x.shape[2:], k, s, [1] * n, pad)
    ceil = bool(ceil_mode)
    out = [
        _out_size(size, kk, ss, b, a, ceil)
        for size, kk, ss, (b, a) in zip(x.shape[2:], k, s, pads, strict=True)
    ]
    if any(o <= 0 for o in out):
        raise ValueError(f"pooling window {k} does not fit input {x.shape} with pads {pads}")
    return k, s, pads, out


def _extended_pads(
    x: np.ndarray,
    k: Sequence[int],
    s: Sequence[int],
    pads: Sequence[tuple[int, int]],
    out: Sequence[int],
) -> list[tuple[int, int]]:
    """Pads plus the ``ceil_mode`` overhang, so every output window is in range."""
    ext = []
    for size, kk, ss, (b, a), o in zip(x.shape[2:], k, s, pads, out, strict=True):
        need = (o - 1) * ss + kk
        ext.append((b, max(a, need - size - b)))
    return ext


def _window_view(
    x: np.ndarray,
    k: Sequence[int],
    s: Sequence[int],
    ext: Sequence[tuple[int, int]],
    out: Sequence[int],
    value: float,
) -> np.ndarray:
    n = len(k)
    view = windows(pad_spatial(x, ext, value), k, s, [1] * n)
    index: tuple[EllipsisType | slice, ...] = (
        Ellipsis,
        *(slice(0, o) for o in out),
        *(slice(None),) * n,
    )
    return view[index]


def _counts(
    x: np.ndarray,
    k: Sequence[int],
    s: Sequence[int],
    pads: Sequence[tuple[int, int]],
    out: Sequence[int],
    exclude_padding: bool,
) -> np.ndarray:
    """Per-window divisor for ``avg_pool``, as the product of 1-D counts."""
    total = np.ones((), dtype=np.float32)
    for axis, (size, kk, ss, (b, a), o) in enumerate(
        zip(x.shape[2:], k, s, pads, out, strict=True)
    ):
        start = np.arange(o) * ss - b  # window start in input coordinates
        stop = start + kk
        if exclude_padding:
            lo, hi = np.maximum(start, 0), np.minimum(stop, size)
        else:
            lo, hi = start, np.minimum(stop, size + a)
        count = np.maximum(hi - lo, 0).astype(np.float32)
        shape = [1] * len(out)
        shape[axis] = o
        total = total * count.reshape(shape)
    return total


#: Windows of at most this many elements are reduced by looping over the kernel
#: offsets (one strided slice and one ufunc call each), which is several times
#: faster than numpy's reduce over a 2n-dimensional window view; larger ones use the view.
_OFFSET_LOOP_MAX = 16


def _reduce_by_offsets(
    padded: np.ndarray,
    k: Sequence[int],
    s: Sequence[int],
    out: Sequence[int],
    ufunc: np.ufunc,
) -> np.ndarray:
    """``ufunc``-reduce every window, accumulating one kernel offset at a time (float32)."""
    total: np.ndarray | None = None
    for offsets in itertools.product(*(range(kk) for kk in k)):
        index: tuple[EllipsisType | slice, ...] = (
            Ellipsis,
            *(slice(o, o + (n - 1) * ss + 1, ss) for o, n, ss in zip(offsets, out, s, strict=True)),
        )
        part = padded[index]
        if total is None:
            total = np.array(part, dtype=np.float32)
        else:
            ufunc(total, part, out=total)
    assert total is not None
    return total


def _axes(n: int) -> tuple[int, ...]:
    return tuple(range(-n, 0))


@kernel("max_pool")
def max_pool(
    ctx: OpContext,
    x: np.ndarray,
    kernel_sizes: Any,
    strides: Any = None,
    pad_type: str = "valid",
    pad: Any = None,
    ceil_mode: Any = False,
) -> np.ndarray:
    """Max over each window; padding is -inf."""
    x = f32(x)
    k, s, pads, out = _geometry(x, kernel_sizes, strides, pad_type, pad, ceil_mode)
    padded = pad_spatial(x, _extended_pads(x, k, s, pads, out), -np.inf)
    if math.prod(k) <= _OFFSET_LOOP_MAX:
        return _reduce_by_offsets(padded, k, s, out, np.maximum)
    view = _window_view(x, k, s, _extended_pads(x, k, s, pads, out), out, -np.inf)
    return cast("np.ndarray", view.max(axis=_axes(len(k))))


@kernel("avg_pool")
def avg_pool(
    ctx: OpContext,
    x: np.ndarray,
    kernel_sizes: Any,
    strides: Any = None,
    pad_type: str = "valid",
    pad: Any = None,
    exclude_padding_from_average: Any = False,
    ceil_mode: Any = False,
) -> np.ndarray:
    """Float32 window sum divided by the window's count (see module docstring)."""
    x = f32(x)
    k, s, pads, out = _geometry(x, kernel_sizes, strides, pad_type, pad, ceil_mode)
    if math.prod(k) <= _OFFSET_LOOP_MAX:
        padded = pad_spatial(x, _extended_pads(x, k, s, pads, out), 0.0)
        total = _reduce_by_offsets(padded, k, s, out, np.add)
    else:
        view = _window_view(x, k, s, _extended_pads(x, k, s, pads, out), out, 0.0)
        total = view.sum(axis=_axes(len(k)), dtype=np.float32)
    counts = _counts(x, k, s, pads, out, bool(exclude_padding_from_average))
    with np.errstate(divide="ignore", invalid="ignore"):
        return cast("np.ndarray", total / counts)


@kernel("l2_pool")
def l2_pool(
    ctx: OpContext,
    x: np.ndarray,
    kernel_sizes: Any,
    strides: Any = None,
    pad_type: str = "valid",
    pad: Any = None,
    ceil_mode: Any = False,
) -> np.ndarray:
    """``sqrt(sum(x**2))`` per window, scaled by the window max so squares cannot overflow."""
    x = f32(x)
    if x.ndim - 2 > 2:
        raise NotImplementedError("l2_pool supports 1-D and 2-D pooling only (MIL spec)")
    k, s, pads, out = _geometry(x, kernel_sizes, strides, pad_type, pad, ceil_mode)
    view = _window_view(np.abs(x), k, s, _extended_pads(x, k, s, pads, out), out, 0.0)
    axes = _axes(len(k))
    scale = view.max(axis=axes, keepdims=True)
    safe = np.where((scale > 0) & np.isfinite(scale), scale, np.float32(1))
    with np.errstate(invalid="ignore", over="ignore"):
        ratio = view / safe
        norm = np.sqrt(np.sum(ratio * ratio, axis=axes, dtype=np.float32))
        result = norm * np.squeeze(safe, axis=axes)
    inf = np.isinf(np.squeeze(scale, axis=axes))
    return np.where(inf, np.float32(np.inf), result).astype(np.float32)
