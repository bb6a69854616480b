"""MIL elementwise ops: binary arithmetic, comparisons, logic, unary math, cast, select.

Float values arrive held in float32 (see :mod:`..dtypes`). Binary ``+ - * /`` and
``sqrt`` are computed in float32 and rounded once by the runner to the declared
dtype: for fp16 operands that is the correctly rounded fp16 result, because
float32 carries more than twice binary16's precision (so no double-rounding error),
and a float32 intermediate cannot overflow for fp16 operands. Never compute these in
float64 here: the runner would then round twice (float64 -> held float32 -> fp16).

IEEE special values propagate as in IEEE arithmetic (``1/0 = inf``, ``0/0 = nan``);
numpy's warnings for them are silenced. Integer ops keep integer semantics; integer
division or modulo by zero raises, because what Core ML returns there is unknown.
"""

from __future__ import annotations

import functools
import math
import typing
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import UnspecifiedResultError
from ..registry import OpContext, kernel
from ._common import f32

# --------------------------------------------------------------------------- helpers

_F32 = np.dtype(np.float32)

_INT_RANGES: dict[np.dtype[Any], tuple[int, int]] = {
    np.dtype(t): (int(np.iinfo(t).min), int(np.iinfo(t).max))
    for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64)
}


def _is_float(*arrays: Any) -> bool:
    return any(np.asarray(a).dtype.kind == "f" for a in arrays)


def _float_pair(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    return f32(x), f32(y)


def _int_pair(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(x), np.asarray(y)


def _check_nonzero_divisor(y: np.ndarray, op: str) -> None:
    if np.any(y == 0):
        raise UnspecifiedResultError(
            f"integer {op} by zero: Core ML's result is unspecified, so the emulator refuses"
        )


# --------------------------------------------------------------------------- binary arithmetic


def _binary(op: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable[..., np.ndarray]:
    """A kernel computing ``op`` in float32 for floats and natively for ints."""

    def fn(ctx: OpContext, x: Any, y: Any) -> np.ndarray:
        if getattr(x, "dtype", None) == _F32 and getattr(y, "dtype", None) == _F32:
            return op(x, y)  # the hot path; the runner has silenced IEEE warnings
        if _is_float(x, y):
            a, b = _float_pair(x, y)
        else:
            a, b = _int_pair(x, y)
        with np.errstate(all="ignore"):
            return np.asarray(op(a, b))

    return fn


kernel("add")(_binary(np.add))
kernel("sub")(_binary(np.subtract))
kernel("mul")(_binary(np.multiply))
kernel("maximum")(_binary(np.maximum))
kernel("minimum")(_binary(np.minimum))


@kernel("real_div")
def real_div(ctx: OpContext, x: Any, y: Any) -> np.ndarray:
    """``x / y``; float32 IEEE division (x/0 = +-inf, 0/0 = nan)."""
    if _is_float(x, y) or ctx.output_dtype.kind == "f":
        a, b = _float_pair(x, y)
        with np.errstate(all="ignore"):
            return typing.cast("np.ndarray", np.divide(a, b))
    return _int_real_div(x, y)


def _int_real_div(x: Any, y: Any) -> np.ndarray:
    """int32 ``real_div``: the quotient as an integer, where that integer is unambiguous.

    coremltools' own test pins ``int32(x / y)`` for non-negative quotients, where
    truncation and flooring agree. For a negative inexact quotient they differ and
    nothing documents which Core ML does, so that case is refused, as is x / 0.
    """
    a, b = _int_pair(x, y)
    _check_nonzero_divisor(b, "real_div")
    floor = np.floor_divide(a, b)
    inexact_negative = ((a < 0) != (b < 0)) & (np.remainder(a, b) != 0)
    if inexact_negative.any():
        raise UnspecifiedResultError(
            "real_div on int32 operands with a negative, inexact quotient: whether Core ML "
            "truncates or floors it is not documented"
        )
    return typing.cast("np.ndarray", floor)


@kernel("floor_div")
def floor_div(ctx: OpContext, x: Any, y: Any) -> np.ndarray:
    """``floor(x / y)`` rounded toward -inf (Python/numpy ``//`` semantics)."""
    if _is_float(x, y):
        a, b = _float_pair(x, y)
        with np.errstate(all="ignore"):
            return typing.cast("np.ndarray", np.floor_divide(a, b))
    a, b = _int_pair(x, y)
    _check_nonzero_divisor(b, "floor_div")
    return typing.cast("np.ndarray", np.floor_divide(a, b))


@kernel("mod")
def mod(ctx: OpContext, x: Any, y: Any) -> np.ndarray:
    """``x % y`` with the sign of the divisor (Python/numpy ``%``, torch.remainder)."""
    if _is_float(x, y):
        a, b = _float_pair(x, y)
        with np.errstate(all="ignore"):
            return typing.cast("np.ndarray", np.remainder(a, b))
    a, b = _int_pair(x, y)
    _check_nonzero_divisor(b, "mod")
    return typing.cast("np.ndarray", np.remainder(a, b))


@kernel("pow")
def pow_(ctx: OpContext, x: Any, y: Any) -> np.ndarray:
    """``x ** y``; float32 ``powf`` semantics (negative base, fractional exponent: nan)."""
    if _is_float(x, y):
        a, b = _float_pair(x, y)
        with np.errstate(all="ignore"):
            return typing.cast("np.ndarray", np.power(a, b))
    a, b = _int_pair(x, y)
    if np.any(b < 0):
        raise UnspecifiedResultError("int32 pow with a negative exponent: the spec does not define the result")
    with np.errstate(all="ignore"):
        return typing.cast("np.ndarray", np.power(a, b))


# --------------------------------------------------------------------------- comparisons, logic


def _compare(op: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable[..., np.ndarray]:
    def fn(ctx: OpContext, x: Any, y: Any) -> np.ndarray:
        a, b = _float_pair(x, y) if _is_float(x, y) else _int_pair(x, y)
        return np.asarray(op(a, b), dtype=np.bool_)

    return fn


kernel("equal")(_compare(np.equal))
kernel("not_equal")(_compare(np.not_equal))
kernel("less")(_compare(np.less))
kernel("less_equal")(_compare(np.less_equal))
kernel("greater")(_compare(np.greater))
kernel("greater_equal")(_compare(np.greater_equal))


def _logical(op: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable[..., np.ndarray]:
    def fn(ctx: OpContext, x: Any, y: Any) -> np.ndarray:
        return np.asarray(op(np.asarray(x, dtype=np.bool_), np.asarray(y, dtype=np.bool_)))

    return fn


kernel("logical_and")(_logical(np.logical_and))
kernel("logical_or")(_logical(np.logical_or))
kernel("logical_xor")(_logical(np.logical_xor))


@kernel("logical_not")
def logical_not(ctx: OpContext, x: Any) -> np.ndarray:
    return np.logical_not(np.asarray(x, dtype=np.bool_))


# --------------------------------------------------------------------------- select


@kernel("select")
def select(ctx: OpContext, cond: Any, a: Any = None, b: Any = None) -> np.ndarray:
    """``where(cond, a, b)`` with broadcasting; the one-input (nonzero) form is rejected."""
    if a is None or b is None:
        raise NotImplementedError("select without both a and b is not supported")
    return np.where(np.asarray(cond, dtype=np.bool_), a, b)


# --------------------------------------------------------------------------- unary math


def _unary_float(op: Callable[[np.ndarray], np.ndarray]) -> Callable[..., np.ndarray]:
    """A float-only unary kernel computed in float32."""

    def fn(ctx: OpContext, x: Any) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.asarray(op(f32(x)))

    return fn


def _unary_with_int(op: Callable[[np.ndarray], np.ndarray]) -> Callable[..., np.ndarray]:
    """A unary kernel that keeps int32 inputs in integer arithmetic."""

    def fn(ctx: OpContext, x: Any) -> np.ndarray:
        arr = np.asarray(x)
        with np.errstate(all="ignore"):
            return np.asarray(op(f32(arr) if arr.dtype.kind == "f" else arr))

    return fn


@functools.cache
def _special(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """scipy's vectorised ``erf``/``erfc`` when installed, else :mod:`math` per element.

    Imported on first use: scipy is optional and slow to import.
    """
    try:
        import scipy.special
    except ImportError:  # pragma: no cover - scipy is present in the test environment
        return np.vectorize(getattr(math, name), otypes=[np.float64])
    fn: Callable[[np.ndarray], np.ndarray] = getattr(scipy.special, name)
    return fn


def erf64(x: np.ndarray) -> np.ndarray:
    """erf evaluated in float64."""
    return np.asarray(_special("erf")(np.asarray(x, dtype=np.float64)))


def erfc64(x: np.ndarray) -> np.ndarray:
    """erfc evaluated in float64 (no cancellation for large positive x)."""
    return np.asarray(_special("erfc")(np.asarray(x, dtype=np.float64)))


def _round_half_even(x: np.ndarray) -> np.ndarray:
    return np.round(x)


def _sign(x: np.ndarray) -> np.ndarray:
    # numpy's sign gives nan for nan and 0 for +-0, like torch.sign.
    return typing.cast("np.ndarray", np.sign(x))


_FLOAT_UNARY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "acos": np.arccos,
    "asin": np.arcsin,
    "atan": np.arctan,
    "atanh": np.arctanh,
    "ceil": np.ceil,
    "cos": np.cos,
    "cosh": np.cosh,
    "exp": np.exp,
    "floor": np.floor,
    "round": _round_half_even,
    "sin": np.sin,
    "sinh": np.sinh,
    "sqrt": np.sqrt,
    "tan": np.tan,
    "tanh": np.tanh,
}
for _name, _op in _FLOAT_UNARY.items():
    kernel(_name)(_unary_float(_op))

_WITH_INT_UNARY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "abs": np.abs,
    "sign": _sign,
    "square": np.square,
}
for _name, _op in _WITH_INT_UNARY.items():
    kernel(_name)(_unary_with_int(_op))


@kernel("erf")
def erf(ctx: OpContext, x: Any) -> np.ndarray:
    """erf, evaluated in float64 (no float32 erf in numpy) and rounded once by the runner."""
    return np.asarray(erf64(f32(x))).astype(np.float32)


@kernel("exp2")
def exp2(ctx: OpContext, x: Any) -> np.ndarray:
    """``2 ** x``. int32 inputs give exact powers of two for exponents 0..30; others raise."""
    arr = np.asarray(x)
    if arr.dtype.kind == "f":
        with np.errstate(all="ignore"):
            return np.exp2(f32(arr))
    if np.any((arr < 0) | (arr > 30)):
        raise UnspecifiedResultError("int32 exp2 of an exponent outside 0..30: the result does not fit int32")
    return typing.cast("np.ndarray", np.left_shift(np.ones_like(arr), arr))


@kernel("inverse")
def inverse(ctx: OpContext, x: Any, epsilon: Any = 1e-4) -> np.ndarray:
    """``1 / (x + epsilon)`` (MIL default epsilon 1e-4); float32 add then divide."""
    with np.errstate(all="ignore"):
        return np.float32(1.0) / (f32(x) + f32(epsilon))


@kernel("log")
def log(ctx: OpContext, x: Any, epsilon: Any = 1e-45) -> np.ndarray:
    """``log(x + epsilon)`` (MIL default epsilon 1e-45, a float32 subnormal)."""
    with np.errstate(all="ignore"):
        return typing.cast("np.ndarray", np.log(f32(x) + f32(epsilon)))


@kernel("rsqrt")
def rsqrt(ctx: OpContext, x: Any, epsilon: Any = 1e-12) -> np.ndarray:
    """``1 / sqrt(x + epsilon)`` (MIL default epsilon 1e-12)."""
    with np.errstate(all="ignore"):
        return typing.cast("np.ndarray", np.float32(1.0) / np.sqrt(f32(x) + f32(epsilon)))


@kernel("clip")
def clip(ctx: OpContext, x: Any, alpha: Any, beta: Any) -> np.ndarray:
    """``min(max(x, alpha), beta)``; nan stays nan (numpy/torch.clamp propagation)."""
    return typing.cast("np.ndarray", np.minimum(np.maximum(f32(x), f32(alpha)), f32(beta)))


@kernel("threshold")
def threshold(ctx: OpContext, x: Any, alpha: Any) -> np.ndarray:
    """``max(x, alpha)``; int32 inputs stay integer."""
    arr = np.asarray(x)
    if arr.dtype.kind == "f":
        return np.maximum(f32(arr), f32(alpha))
    return typing.cast("np.ndarray", np.maximum(arr, np.asarray(alpha).astype(arr.dtype)))


# --------------------------------------------------------------------------- cast

_CAST_TARGETS: dict[str, np.dtype[Any]] = {
    "fp16": np.dtype(np.float16),
    "fp32": np.dtype(np.float32),
    "int8": np.dtype(np.int8),
    "uint8": np.dtype(np.uint8),
    "int16": np.dtype(np.int16),
    "uint16": np.dtype(np.uint16),
    "int32": np.dtype(np.int32),
    "bool": np.dtype(np.bool_),
}


def float_to_int(x: np.ndarray, target: np.dtype[Any]) -> np.ndarray:
    """Truncate toward zero, saturate out-of-range values, map nan to 0.

    This is the ARM ``FCVTZS``/``FCVTZU`` conversion Apple silicon uses for C
    float-to-int casts; numpy's own ``astype`` leaves these cases undefined
    (x86 gives INT_MIN). It is an assumption about Core ML, documented as such.
    """
    lo, hi = _INT_RANGES[target]
    with np.errstate(invalid="ignore"):
        t = np.trunc(x.astype(np.float64))
        t = np.where(np.isnan(t), 0.0, np.clip(t, lo, hi))
    return t.astype(target)


@kernel("cast")
def cast(ctx: OpContext, x: Any, dtype: str) -> np.ndarray:
    """Cast ``x`` to ``dtype``; see :func:`float_to_int` for float-to-int semantics.

    To fp16 the runner rounds (overflow to inf); to bool, nonzero (and nan) is True;
    from bool, True is 1. int-to-narrower-int wraps (two's complement), like C.
    """
    if dtype not in _CAST_TARGETS:
        raise NotImplementedError(f"cast to {dtype!r} is not supported")
    target = _CAST_TARGETS[dtype]
    arr = np.asarray(x)
    if target.kind == "b":
        return typing.cast("np.ndarray", arr != 0)
    if target.kind == "f":
        return arr.astype(np.float32)
    if arr.dtype.kind == "f":
        return float_to_int(arr, target)
    return arr.astype(target)
