"""MIL normalization ops: batch_norm, instance_norm, layer_norm, l2_norm, local_response_norm.

Statistics accumulate in float32. Before squaring, the values of each
normalized group are scaled by a power of two taken from their max abs, so
``layer_norm`` of fp16 values around 20000 (squares far past 65504, and for
fp32 programs values near 3e38, squares past float32) still gives the exact
normalized result; power-of-two scaling is exact. The epsilon is scaled with
them. The final affine step (``* gamma + beta``) is done in float64 so that a
representable result never overflows midway, and the runner rounds once to the
declared dtype. The iOS17 variants only allow parameters of another float
dtype than ``x``; all floats are held in float32, so they compute the same.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..registry import OpContext, kernel
from ._common import axes_of, f32
from .reduction import max_abs, pow2_exponent


def _eps(epsilon: Any) -> np.float32:
    return np.float32(np.asarray(epsilon, dtype=np.float32).reshape(()))


#: Below this magnitude, squares and their float32 sums over any realistic group
#: (up to 2**66 elements) stay finite, so the power-of-two scaling (exact, and then
#: a no-op on the result) is skipped. fp16 programs are always far below it.
_SQUARES_FIT = np.float32(2.0**30)


def standardize(x: np.ndarray, axes: tuple[int, ...], epsilon: Any) -> np.ndarray:
    """``(x - mean) / sqrt(var + eps)`` over ``axes`` (biased variance), float32 accumulation.

    Groups are scaled down by 2**e (never up while eps > 0: a tiny group's
    variance is negligible next to eps anyway, and scaling eps up could overflow).
    """
    x = f32(x)
    eps = _eps(epsilon)
    if _squares_fit(x):  # the common case: no group needs scaling
        xs, eps_scaled = x, eps
    else:
        e = pow2_exponent(max_abs(x, axes), only_down=bool(eps > 0))
        xs, eps_scaled = np.ldexp(x, -e), np.ldexp(eps, -2 * e)
    mean = np.mean(xs, axis=axes, keepdims=True, dtype=np.float32)
    # One refinement step: the float32 mean of n equal values can be off by an
    # ulp, which (x - mean) / sqrt(var + eps) would blow up to +-1 once var
    # dwarfs eps; refined, constant groups give exactly 0, as torch does.
    d = xs - mean
    mean = mean + np.mean(d, axis=axes, keepdims=True, dtype=np.float32)
    d = np.subtract(xs, mean, out=d) if isinstance(d, np.ndarray) else xs - mean  # d's memory, free again
    var = np.mean(np.square(d), axis=axes, keepdims=True, dtype=np.float32)
    den = np.sqrt(var + eps_scaled)
    with np.errstate(divide="ignore", invalid="ignore"):
        out: np.ndarray = np.divide(d, den, out=d)  # d is this call's own temporary
    # den == 0 only when var == 0 and the scaled eps underflowed: then d == 0 too.
    if (den == 0).any():
        out = np.where(den == 0, np.float32(0), out)
    return out


def _squares_fit(x: np.ndarray) -> bool:
    """Whether every ``|x|`` is below :data:`_SQUARES_FIT` (no nan, no inf): two
    reductions over ``x``, no temporary (the max abs of every group is below the
    bound exactly when the largest and the smallest value are)."""
    if x.size == 0:
        return True
    high, low = np.maximum.reduce(x, axis=None), np.minimum.reduce(x, axis=None)
    return bool(high < _SQUARES_FIT) and bool(-low < _SQUARES_FIT)


def _affine(n: np.ndarray, gamma: Any, beta: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``n * gamma + beta`` in float64 (each may be None), parameters reshaped to ``shape``.

    Two passes over the data: ``n`` widens inside the multiply (exactly: every float32
    is a float64), and beta is added in place.
    """
    if gamma is None:
        out = n.astype(np.float64)
    else:
        out = np.multiply(n, np.asarray(gamma, dtype=np.float64).reshape(shape), dtype=np.float64)
    if beta is not None:
        np.add(out, np.asarray(beta, dtype=np.float64).reshape(shape), out=out)
    return out


def _channel_shape(x: np.ndarray) -> tuple[int, ...]:
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _require_rank(x: np.ndarray, low: int, op: str) -> None:
    if x.ndim < low:
        raise NotImplementedError(f"{op} on a rank-{x.ndim} input (MIL requires rank >= {low})")


@kernel("layer_norm")
def layer_norm(
    ctx: OpContext,
    x: np.ndarray,
    axes: Any = None,
    gamma: Any = None,
    beta: Any = None,
    epsilon: Any = 1e-5,
) -> Any:
    """Normalize over ``axes`` (default: all); gamma/beta have shape ``x.shape[axes]``."""
    ax = axes_of(axes, x.ndim)
    shape = tuple(x.shape[i] if i in ax else 1 for i in range(x.ndim))
    return _affine(standardize(x, ax, epsilon), gamma, beta, shape)


@kernel("instance_norm")
def instance_norm(
    ctx: OpContext,
    x: np.ndarray,
    gamma: Any = None,
    beta: Any = None,
    epsilon: Any = 1e-5,
) -> Any:
    """Normalize each (n, c) over the spatial dims; gamma/beta are per channel."""
    _require_rank(x, 3, "instance_norm")
    ax = tuple(range(2, x.ndim))
    return _affine(standardize(x, ax, epsilon), gamma, beta, _channel_shape(x))


@kernel("batch_norm")
def batch_norm(
    ctx: OpContext,
    x: np.ndarray,
    mean: Any,
    variance: Any,
    gamma: Any = None,
    beta: Any = None,
    epsilon: Any = 1e-5,
) -> Any:
    """``(x - mean) / sqrt(variance + eps) * gamma + beta`` with per-channel constants.

    Computed in float64: nothing is accumulated, and float32 ``x - mean`` can
    overflow for fp32 inputs near 3e38 whose normalized value is representable.
    """
    _require_rank(x, 2, "batch_norm")
    shape = _channel_shape(x)
    mu = np.asarray(mean, dtype=np.float64).reshape(shape)
    var = np.asarray(variance, dtype=np.float64).reshape(shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        n = (x.astype(np.float64) - mu) / np.sqrt(var + float(_eps(epsilon)))
    return _affine(n, gamma, beta, shape)


@kernel("l2_norm")
def l2_norm(ctx: OpContext, x: np.ndarray, epsilon: Any = 1e-6) -> Any:
    """``x / sqrt(sum(x**2) + eps)`` over the last three dims; leading dims are batch."""
    _require_rank(x, 3, "l2_norm")
    x = f32(x)
    eps = _eps(epsilon)
    ax = (x.ndim - 3, x.ndim - 2, x.ndim - 1)
    e = pow2_exponent(max_abs(x, ax), only_down=bool(eps > 0))
    xs = np.ldexp(x, -e)
    den = np.sqrt(np.sum(xs * xs, axis=ax, keepdims=True, dtype=np.float32) + np.ldexp(eps, -2 * e))
    with np.errstate(divide="ignore", invalid="ignore"):
        return xs / den


@kernel("local_response_norm")
def local_response_norm(
    ctx: OpContext,
    x: np.ndarray,
    size: Any,
    alpha: Any = 1e-4,
    beta: Any = 0.75,
    k: Any = 1.0,
) -> Any:
    """``x / (k + alpha / size * sum(x_j**2))**beta`` over a window of ``size`` channels.

    The window of channel c is ``[c - size // 2, c + (size - 1) // 2]``, clipped to
    the channels, and the sum is always divided by ``size``: PyTorch's
    ``LocalResponseNorm``, which coremltools' own op tests use as reference.
    Squares are taken after scaling each position's channels by 2**-e; the
    power is then evaluated in float64 and the scale folded back in.

    The channel axis is 1, except for rank 3, where it is axis 0: the docstring
    says ``[n, C, D]``, but coremltools' device-run smoke test pins, at atol 1e-4,
    values only a window over axis 0 gives (a rank-3 input is read as ``[C, H, W]``,
    as in Core ML's neural-network layer). Its torch-referenced rank-3 stress tests
    (atol 1e-2) cannot tell the two apart. The torch frontend never emits this op.
    """
    _require_rank(x, 3, "local_response_norm")
    if x.ndim == 3:
        return local_response_norm(ctx, np.asarray(x)[None], size, alpha, beta, k)[0]
    n = int(np.asarray(size).reshape(()))
    if n < 1:
        raise NotImplementedError(f"local_response_norm with size {n}")
    x = f32(x)
    a, b, kk = (float(_eps(v)) for v in (alpha, beta, k))
    e = pow2_exponent(max_abs(x, (1,)), only_down=kk > 0)
    xs = np.ldexp(x, -e)
    sq = xs * xs
    pad = [(0, 0)] * x.ndim
    pad[1] = (n // 2, (n - 1) // 2)
    padded = np.pad(sq, pad)
    channels = x.shape[1]
    window = np.zeros_like(sq)
    for offset in range(n):
        window += padded[:, offset : offset + channels]
    ee = e.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        base = kk * np.exp2(-2.0 * ee) + a / n * window.astype(np.float64)
        return xs.astype(np.float64) / base**b * np.exp2(ee * (1.0 - 2.0 * b))
