"""MIL activation ops, computed in float32 with formulas that cannot overflow inside.

Where the textbook formula overflows or cancels in float32 (``log(1 + exp(x))``,
``1 / (1 + exp(-x))``, ``1 + tanh(z)`` for negative ``z``, ``exp`` in softmax), we
use an algebraically equal stable form, so an fp16 output is inf/nan only when the
exact result is. alpha/beta parameters may have another float dtype than ``x``
(iOS17 variants); they arrive held in float32 either way.
"""

from __future__ import annotations

import functools
import math
from typing import Any, cast

import numpy as np

from ..registry import OpContext, kernel
from ._common import axis_of, f32
from ._torch import TORCH_MIN_SIZE, tensor, torch_or_none
from .elementwise import erfc64


def stable_sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic sigmoid in float32, never nan for a finite or infinite ``x``.

    torch's vectorized ``sigmoid`` when torch is installed (``1 / (1 + exp(-x))``:
    exp overflowing to inf gives exactly 0), else :func:`numpy_sigmoid`.
    """
    torch = torch_or_none()
    if torch is None or np.size(x) < TORCH_MIN_SIZE:
        return numpy_sigmoid(x)
    return cast("np.ndarray", torch.sigmoid(tensor(torch, x)).numpy())


def numpy_sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))`` without overflow: exp is only taken of ``-|x|``."""
    e = np.exp(-np.abs(x))
    with np.errstate(invalid="ignore"):
        return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(np.float32)


def stable_softplus(x: np.ndarray) -> np.ndarray:
    """``log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|))``, exact for large ``|x|``."""
    with np.errstate(invalid="ignore"):
        return cast("np.ndarray", (np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))).astype(np.float32))


def _channel(param: Any, rank: int) -> np.ndarray:
    """A per-channel ``[C]`` parameter shaped to broadcast along axis 1 of a rank-``rank`` x."""
    p = f32(param)
    if p.ndim == 0:
        return p
    if p.ndim != 1 or rank < 2:
        raise NotImplementedError(f"per-channel parameter of shape {p.shape} for rank {rank}")
    return p.reshape((1, -1) + (1,) * (rank - 2))


@kernel("relu")
def relu(ctx: OpContext, x: Any) -> np.ndarray:
    """``max(x, 0)``; nan propagates (as torch.relu; ``np.maximum`` propagates nan)."""
    return np.maximum(f32(x), np.float32(0))


@kernel("relu6")
def relu6(ctx: OpContext, x: Any) -> np.ndarray:
    """``min(max(x, 0), 6)``; nan propagates."""
    return cast("np.ndarray", np.minimum(np.maximum(f32(x), np.float32(0)), np.float32(6)))


@kernel("leaky_relu")
def leaky_relu(ctx: OpContext, x: Any, alpha: Any) -> np.ndarray:
    """``x`` if ``x >= 0`` else ``alpha * x``."""
    v = f32(x)
    return np.where(v >= 0, v, f32(alpha) * v)


@kernel("elu")
def elu(ctx: OpContext, x: Any, alpha: Any) -> np.ndarray:
    """``x`` if ``x > 0`` else ``alpha * expm1(x)`` (expm1 avoids cancellation near 0)."""
    v = f32(x)
    with np.errstate(over="ignore"):
        neg = f32(alpha) * np.expm1(np.minimum(v, 0))
    return np.where(v > 0, v, neg)


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


@functools.cache
def _float32_erfc() -> Any:
    """torch's vectorized float32 erfc (within 1e-7 relative of float64 erfc), if available.

    GELU's erfc is the slowest part of an MLP through scipy's float64 erfc; torch's
    float32 one is ~6x faster and, at float32 or fp16 storage, indistinguishable.
    """
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return None

    def erfc(z: np.ndarray, *, overwrite: bool = False) -> np.ndarray:
        """``erfc(z)``; ``overwrite=True`` writes it into ``z`` (a float32 temporary of the caller's)."""
        writable = np.require(z, dtype=np.float32, requirements=["C", "W"])  # keeps 0-d shape
        tensor = torch.from_numpy(writable)
        if overwrite and writable is z:
            torch.special.erfc(tensor, out=tensor)
            return z
        return cast("np.ndarray", torch.special.erfc(tensor).numpy())

    return erfc


@kernel("gelu")
def gelu(ctx: OpContext, x: Any, mode: str = "EXACT") -> np.ndarray:
    """GELU in the three MIL modes, each in a form free of overflow and cancellation.

    * EXACT: ``0.5 x (1 + erf(x/√2)) = 0.5 x erfc(-x/√2)`` (float64 erfc, no cancellation).
    * TANH_APPROXIMATION: ``0.5 x (1 + tanh(z)) = x sigmoid(2z)``, z = √(2/π)(x + 0.044715x³),
      in float64 so ``x³`` cannot overflow for finite float32 x.
    * SIGMOID_APPROXIMATION: ``x sigmoid(1.702 x)`` with a stable sigmoid.
    """
    v = f32(x)
    with np.errstate(all="ignore"):
        if mode == "EXACT":
            fast = _float32_erfc()
            if fast is not None:
                # (0.5 * v) * erfc(-v / sqrt 2), each float32 operation as written, on two
                # temporaries of our own: erfc into its argument, the product into the half.
                tail = fast(v * np.float32(-1.0 / math.sqrt(2.0)), overwrite=True)
                half = np.float32(0.5) * v
                if isinstance(half, np.ndarray) and half.ndim and half.shape == tail.shape:
                    return cast("np.ndarray", np.multiply(half, tail, out=half))
                return cast("np.ndarray", half * tail)
            w = v.astype(np.float64)
            return cast("np.ndarray", (0.5 * w * erfc64(-w / math.sqrt(2.0))).astype(np.float32))
        if mode == "TANH_APPROXIMATION":
            w = v.astype(np.float64)
            z = _SQRT_2_OVER_PI * (w + 0.044715 * w**3)
            e = np.exp(-np.abs(2.0 * z))
            sig = np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
            return cast("np.ndarray", (w * sig).astype(np.float32))
        if mode == "SIGMOID_APPROXIMATION":
            return cast("np.ndarray", v * stable_sigmoid(np.float32(1.702) * v))
    raise NotImplementedError(f"gelu mode {mode!r} is not supported")


@kernel("sigmoid")
def sigmoid(ctx: OpContext, x: Any) -> np.ndarray:
    """Logistic sigmoid, stable for large ``|x|``."""
    return stable_sigmoid(f32(x))


@kernel("sigmoid_hard")
def sigmoid_hard(ctx: OpContext, x: Any, alpha: Any, beta: Any) -> np.ndarray:
    """``min(max(alpha x + beta, 0), 1)``."""
    with np.errstate(all="ignore"):
        y = f32(alpha) * f32(x)
        if not isinstance(y, np.ndarray) or y.ndim == 0:
            y = y + f32(beta)
            return cast("np.ndarray", np.minimum(np.maximum(y, np.float32(0)), np.float32(1)))
        # The same float32 operations, in place on the one temporary (no more allocations).
        np.add(y, f32(beta), out=y)
        np.maximum(y, np.float32(0), out=y)
        return cast("np.ndarray", np.minimum(y, np.float32(1), out=y))


@kernel("silu")
def silu(ctx: OpContext, x: Any) -> np.ndarray:
    """``x * sigmoid(x)`` with a stable sigmoid (torch's ``silu`` when installed)."""
    v = f32(x)
    torch = torch_or_none()
    if torch is not None and v.size >= TORCH_MIN_SIZE:
        return cast("np.ndarray", torch.nn.functional.silu(tensor(torch, v)).numpy())
    with np.errstate(invalid="ignore"):
        return cast("np.ndarray", v * numpy_sigmoid(v))


@kernel("softplus")
def softplus(ctx: OpContext, x: Any) -> np.ndarray:
    """``log(1 + exp(x))`` in the stable form (never overflows for finite x)."""
    return stable_softplus(f32(x))


@kernel("softplus_parametric")
def softplus_parametric(ctx: OpContext, x: Any, alpha: Any, beta: Any) -> np.ndarray:
    """``alpha_c * softplus(beta_c * x)`` per channel (axis 1)."""
    v = f32(x)
    a, b = _channel(alpha, v.ndim), _channel(beta, v.ndim)
    with np.errstate(all="ignore"):
        return cast("np.ndarray", a * stable_softplus(b * v))


@kernel("softmax")
def softmax(ctx: OpContext, x: Any, axis: Any = -1) -> np.ndarray:
    """``exp(x - max) / sum(exp(x - max))`` along ``axis``; the shift prevents overflow."""
    v = f32(x)
    ax = axis_of(axis, v.ndim)
    with np.errstate(invalid="ignore", over="ignore"):
        e = v - _max_along(v, ax)
        if not isinstance(e, np.ndarray) or e.ndim == 0:
            e = np.exp(e)
            return cast("np.ndarray", e / np.sum(e, axis=ax, keepdims=True, dtype=np.float32))
        # The same float32 operations, in place on the one temporary: a fresh array per
        # step costs more than the step on attention-sized inputs.
        np.exp(e, out=e)
        return np.divide(e, np.sum(e, axis=ax, keepdims=True, dtype=np.float32), out=e)


def _max_along(v: np.ndarray, ax: int) -> np.ndarray:
    """``np.max(v, axis=ax, keepdims=True)``; through torch's ``amax`` (about 3x faster,
    the same values: a max is exact, and both propagate nan) for a large array torch can view."""
    torch = torch_or_none()
    if (
        torch is not None
        and v.size >= TORCH_MIN_SIZE
        and v.flags.c_contiguous
        and v.flags.writeable
        and all(stride >= 0 for stride in v.strides)
    ):
        return cast("np.ndarray", torch.amax(torch.from_numpy(v), dim=ax, keepdim=True).numpy())
    return cast("np.ndarray", np.max(v, axis=ax, keepdims=True))


@kernel("softsign")
def softsign(ctx: OpContext, x: Any) -> np.ndarray:
    """``x / (1 + |x|)``."""
    v = f32(x)
    with np.errstate(invalid="ignore", over="ignore"):
        return v / (np.float32(1) + np.abs(v))


@kernel("scaled_tanh")
def scaled_tanh(ctx: OpContext, x: Any, alpha: Any, beta: Any) -> np.ndarray:
    """``alpha * tanh(beta * x)``."""
    with np.errstate(all="ignore"):
        return cast("np.ndarray", f32(alpha) * np.tanh(f32(beta) * f32(x)))


@kernel("clamped_relu")
def clamped_relu(ctx: OpContext, x: Any, alpha: Any, beta: Any) -> np.ndarray:
    """``min(beta, x)`` if ``x >= 0`` else ``min(beta, alpha * x)``."""
    v = f32(x)
    with np.errstate(all="ignore"):
        return cast("np.ndarray", np.minimum(f32(beta), np.where(v >= 0, v, f32(alpha) * v)))


@kernel("linear_activation")
def linear_activation(ctx: OpContext, x: Any, alpha: Any, beta: Any) -> np.ndarray:
    """``alpha * x + beta`` (float32 multiply, then add)."""
    with np.errstate(all="ignore"):
        return f32(alpha) * f32(x) + f32(beta)


@kernel("prelu")
def prelu(ctx: OpContext, x: Any, alpha: Any) -> np.ndarray:
    """``x`` if ``x > 0`` else ``alpha_c * x``, alpha per channel (axis 1)."""
    v = f32(x)
    a = _channel(alpha, v.ndim)
    with np.errstate(all="ignore"):
        return np.where(v > 0, v, a * v)


@kernel("thresholded_relu")
def thresholded_relu(ctx: OpContext, x: Any, alpha: Any) -> np.ndarray:
    """``x`` if ``x >= alpha`` else 0."""
    v = f32(x)
    return np.where(v >= f32(alpha), v, np.float32(0))
