"""MIL reduction ops: ``reduce_*`` (iOS15) and ``reduce_argmax``/``reduce_argmin`` (iOS15, iOS17).

Float reductions accumulate in float32 (numpy's pairwise summation), like a
float32 accumulator on device; the runner then rounds the result to the
declared dtype, so an fp16 ``reduce_sum`` whose exact result exceeds 65504 is
inf, as on device. Where a float32 *interior* could overflow or underflow
although the exact result is representable (squares in ``reduce_l2_norm``,
the sum inside ``reduce_log_sum`` and ``reduce_mean``, the exp inside
``reduce_log_sum_exp``), the values are first scaled by a power of two taken
from their max abs. Power-of-two scaling is exact, so results are otherwise
bit-identical to the plain formula.

Integer inputs accumulate in int64; ops whose value is not an integer
(``reduce_mean``, ``reduce_l2_norm``, ``reduce_log_sum``, ...) follow
coremltools' reference semantics: compute in float64, then the runner truncates
to the declared int32.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from ..registry import OpContext, kernel
from ._common import axes_of, axis_of, f32

_F32_MAX = float(np.finfo(np.float32).max)
_LN2 = float(np.log(2.0))


def pow2_exponent(m: np.ndarray, *, only_down: bool) -> np.ndarray:
    """Exponents ``e`` with ``m / 2**e`` in ``[0.5, 1)``, as int32.

    Where ``m`` is 0, inf or nan the exponent is 0 (no scaling: the plain formula
    already gives the right 0, inf or nan). With ``only_down`` the exponent is
    never negative, for formulas with an additive epsilon that must not be
    scaled up past float32's range.
    """
    m = np.asarray(m, dtype=np.float32)
    usable = np.isfinite(m) & (m > 0)
    _, e = np.frexp(np.where(usable, m, np.float32(1)))
    e = np.where(usable, e, 0)
    if only_down:
        e = np.maximum(e, 0)
    return cast("np.ndarray", e.astype(np.int32))


def max_abs(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Max abs over ``axes`` with kept dims (0 for empty reductions, nan if any nan)."""
    return cast("np.ndarray", np.max(np.abs(x), axis=axes, keepdims=True, initial=0))


def _is_int(x: np.ndarray) -> bool:
    return x.dtype.kind in "iub"


def _squeeze(r: np.ndarray, axes: tuple[int, ...], keep_dims: Any) -> np.ndarray:
    return r if bool(keep_dims) else np.squeeze(r, axis=axes)


def _count(x: np.ndarray, axes: tuple[int, ...]) -> int:
    return int(np.prod([x.shape[a] for a in axes], dtype=np.int64))


def _safe_sum(xs: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``(s, e)`` with ``sum(xs) == s * 2**e``, scaled only if the float32 sum overflowed.

    A finite float32 sum had no partial sum overflow (an inf never comes back), so it
    is kept; otherwise the inputs are scaled by a power of two and summed again.
    """
    s = np.sum(xs, axis=axes, keepdims=True, dtype=np.float32)
    if np.isfinite(s).all():
        return np.asarray(s), np.zeros(s.shape, np.int32)
    m = max_abs(xs, axes)
    n = max(_count(xs, axes), 1)
    if np.any(m > _F32_MAX / n):
        e = pow2_exponent(m, only_down=True)
        s = np.sum(np.ldexp(xs, -e), axis=axes, keepdims=True, dtype=np.float32)
        return np.asarray(s), e
    s = np.sum(xs, axis=axes, keepdims=True, dtype=np.float32)
    return np.asarray(s), np.zeros(m.shape, np.int32)


@kernel("reduce_sum")
def reduce_sum(ctx: OpContext, x: np.ndarray, axes: Any = None, keep_dims: Any = False) -> Any:
    ax = axes_of(axes, x.ndim)
    dtype = np.int64 if _is_int(x) else np.float32
    return np.sum(x, axis=ax, keepdims=bool(keep_dims), dtype=dtype)


@kernel("reduce_mean")
def reduce_mean(ctx: OpContext, x: np.ndarray, axes: Any = None, keep_dims: Any = False) -> Any:
    ax = axes_of(axes, x.ndim)
    if _is_int(x):
        return np.mean(x, axis=ax, keepdims=bool(keep_dims), dtype=np.float64)
    s, e = _safe_sum(f32(x), ax)
    r = np.ldexp(s / np.float32(_count(x, ax)), e)
    return _squeeze(r, ax, keep_dims)


@kernel("reduce_prod")
def reduce_prod(ctx: OpContext, x: np.ndarray, axes: Any = None, keep_dims: Any = False) -> Any:
    # float64: a float32 running product can overflow (or underflow) midway
    # although the final product is representable, e.g. [1e30, 1e30, 1e-30].
    ax = axes_of(axes, x.ndim)
    dtype = np.int64 if _is_int(x) else np.float64
    return np.prod(x, axis=ax, keepdims=bool(keep_dims), dtype=dtype)


@kernel("reduce_max")
def reduce_max(ctx: OpContext, x: np.ndarray, axes: Any = None, keep_dims: Any = False) -> Any:
    return np.max(x, axis=axes_of(axes, x.ndim), keepdims=bool(keep_dims))


@kernel("reduce_min")
def reduce_min(ctx: OpContext, x: np.ndarray, axes: Any = None, keep_dims: Any = False) -> Any:
    return np.min(x, axis=axes_of(axes, x.ndim), keepdims=bool(keep_dims))


@kernel("reduce_l1_norm")
def reduce_l1_norm(ctx: OpContext, x: np.ndarray, axes: Any = None, keep_dims: Any = False) -> Any:
    ax = axes_of(axes, x.ndim)
    dtype = np.int64 if _is_int(x) else np.float32
    return np.sum(np.abs(x.astype(dtype)), axis=ax, keepdims=bool(keep_dims), dtype=dtype)


@kernel("reduce_sum_square")
def reduce_sum_square(
    ctx: OpContext, x: np.ndarray, axes: Any = None, keep_dims: Any = False
) -> Any:
    # Every term is >= 0, so the float32 sum overflows only if the exact one does.
    ax = axes_of(axes, x.ndim)
    xx: np.ndarray = x.astype(np.int64 if _is_int(x) else np.float32)
    return np.sum(np.square(xx), axis=ax, keepdims=bool(keep_dims))


@kernel("reduce_l2_norm")
def reduce_l2_norm(ctx: OpContext, x: np.ndarray, axes: Any = None, keep_dims: Any = False) -> Any:
    ax = axes_of(axes, x.ndim)
    if _is_int(x):
        xx = x.astype(np.float64)
        return np.sqrt(np.sum(xx * xx, axis=ax, keepdims=bool(keep_dims)))
    x = f32(x)
    # Scale both ways: squares of |x| > 2**64 overflow float32, squares of
    # |x| < 2**-75 underflow to 0, and sqrt(sum(x*x)) may still be representable.
    e = pow2_exponent(max_abs(x, ax), only_down=False)
    xs = np.ldexp(x, -e)
    r = np.ldexp(np.sqrt(np.sum(xs * xs, axis=ax, keepdims=True, dtype=np.float32)), e)
    return _squeeze(r, ax, keep_dims)


@kernel("reduce_log_sum")
def reduce_log_sum(ctx: OpContext, x: np.ndarray, axes: Any = None, keep_dims: Any = False) -> Any:
    ax = axes_of(axes, x.ndim)
    with np.errstate(divide="ignore", invalid="ignore"):
        if _is_int(x):
            return np.log(np.sum(x, axis=ax, keepdims=bool(keep_dims), dtype=np.float64))
        s, e = _safe_sum(f32(x), ax)
        r = np.log(s)
        if np.any(e):
            r = (r.astype(np.float64) + e * _LN2).astype(np.float32)
    return _squeeze(r, ax, keep_dims)


@kernel("reduce_log_sum_exp")
def reduce_log_sum_exp(
    ctx: OpContext, x: np.ndarray, axes: Any = None, keep_dims: Any = False
) -> Any:
    ax = axes_of(axes, x.ndim)
    xx: np.ndarray = x.astype(np.float64) if _is_int(x) else f32(x)
    m = np.max(xx, axis=ax, keepdims=True)
    # Rows whose max is +-inf or nan keep the plain formula's inf, -inf or nan.
    shift = np.where(np.isfinite(m), m, 0).astype(xx.dtype)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        s = np.sum(np.exp(xx - shift), axis=ax, keepdims=True, dtype=xx.dtype)
        r = np.log(s) + shift
    return _squeeze(r, ax, keep_dims)


def _arg_reduce(fn: Any, x: np.ndarray, axis: Any, keep_dims: Any, output_dtype: Any) -> Any:
    if str(output_dtype).lower() not in ("int32", "uint16"):
        raise NotImplementedError(f"output_dtype {output_dtype!r} (MIL allows int32, uint16)")
    a = axis_of(axis, x.ndim)
    r = fn(x, axis=a)
    return np.expand_dims(r, a) if bool(keep_dims) else r


@kernel("reduce_argmax")
def reduce_argmax(
    ctx: OpContext,
    x: np.ndarray,
    axis: Any = -1,
    keep_dims: Any = False,
    output_dtype: Any = "int32",
) -> Any:
    """Index of the first maximum; a nan counts as the maximum (numpy and torch agree)."""
    return _arg_reduce(np.argmax, x, axis, keep_dims, output_dtype)


@kernel("reduce_argmin")
def reduce_argmin(
    ctx: OpContext,
    x: np.ndarray,
    axis: Any = -1,
    keep_dims: Any = False,
    output_dtype: Any = "int32",
) -> Any:
    """Index of the first minimum; a nan counts as the minimum (numpy and torch agree)."""
    return _arg_reduce(np.argmin, x, axis, keep_dims, output_dtype)
