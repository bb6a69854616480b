"""Activation quantization: ``quantize`` and ``dequantize`` (iOS17 opset).

These are the runtime ops ``ct.optimize.coreml.linear_quantize_activations``
inserts around activations (W8A8), unlike the ``constexpr_*`` weight ops of
:mod:`.constexpr`, which Core ML folds at load::

    quantize:    q = clip(round(x / scale) + zero_point, low, high)
    dequantize:  y = scale * (q - zero_point)

``scale`` and ``zero_point`` are both scalars (per tensor, no ``axis``) or both
vectors of length ``input.shape[axis]`` (per axis); ``zero_point`` is optional
(0). ``low, high`` is the range of ``output_dtype``: int8 ``[-128, 127]``,
uint8 ``[0, 255]``.

Rounding is **half to even**, applied to ``x / scale`` *before* the zero point
is added, exactly as the op's docstring writes it and as coremltools' own
reference (``optimize._utils.quantize_by_scale_and_zp``: ``np.around``, then
``+ zero_point``) computes it; MIL's ``round`` op also rounds ``0.5`` to ``0``.
torch's ``quantize_per_tensor``, the reference of coremltools' op tests, rounds
``zero_point + x * (1 / scale)`` instead; that differs only on exact ties with
an odd zero point, and where the float32 reciprocal moves a quotient across a
tie. Core ML does not document the device's tie rule; this is the documented
formula, not a device measurement.

``x / scale`` is computed in float32. For fp16 operands the float32 quotient
is on the same side of every half-integer as the exact one, so the integer is
the one exact arithmetic gives: a quotient of two binary16 numbers is either a
half-integer exactly or at least ``min(2**-12, |x / scale| * 2**-11)`` away
from one, more than float32's rounding error ``|x / scale| * 2**-24`` below
4096 (from there on the result saturates whatever the rounding). coremltools'
numpy reference divides fp16 by fp16 *in fp16*, which can move a quotient
within half an fp16 ulp of a tie onto it; a device dividing in fp16 would do
the same, which we do not model.

Out-of-range values, ``±inf`` included, saturate to ``low``/``high``: that is
the ``clip`` of the formula (coremltools clips too). A float32 quotient can
only overflow to ``±inf`` for fp32 data and a tiny scale, and then saturates
like any other out-of-range value. A NaN input has no integer result in the
formula, so the kernel raises :class:`~..errors.UnspecifiedResultError`.

``dequantize`` subtracts in float32 (an exact integer of at most 9 bits) and
multiplies by the scale once, so the runner's single rounding to the declared
fp16/fp32 output gives the correctly rounded ``scale * (q - zero_point)``.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from ..errors import UnspecifiedResultError
from ..registry import OpContext, kernel
from ._common import f32

#: The integer types the ops quantize to / from, with their clip ranges.
_INT_TYPES: dict[str, tuple[np.dtype[Any], int, int]] = {
    "int8": (np.dtype(np.int8), -128, 127),
    "uint8": (np.dtype(np.uint8), 0, 255),
}


def _params(
    data_shape: tuple[int, ...], scale: Any, zero_point: Any, axis: Any
) -> tuple[np.ndarray, np.ndarray | None]:
    """``scale`` and ``zero_point`` as float32 arrays broadcastable against the data.

    Validated as coremltools' ``_check_scale_zp_shapes`` does: both scalars and no
    ``axis``, or both vectors of ``data_shape[axis]`` values.
    """
    s = f32(scale)
    zp = None if zero_point is None else np.asarray(zero_point)
    rank = len(data_shape)
    if s.ndim == 0:
        if axis is not None:
            raise ValueError("axis must not be given when scale is a scalar (per-tensor)")
        if zp is not None and zp.ndim != 0:
            raise ValueError(f"zero_point of shape {zp.shape} must be a scalar like scale")
        return s, None if zp is None else zp.astype(np.float32)
    if s.ndim != 1:
        raise ValueError(f"scale must be a scalar or a vector, got shape {s.shape}")
    if axis is None:
        raise ValueError(f"a vector scale (shape {s.shape}) needs an axis")
    ax = int(axis)
    if not -rank <= ax < rank:
        raise ValueError(f"axis {ax} is out of range for input of rank {rank}")
    ax %= rank
    if s.size != data_shape[ax]:
        raise ValueError(
            f"scale of shape {s.shape} does not match axis {ax} of input shape {data_shape}"
        )
    bshape = [1] * rank
    bshape[ax] = -1
    if zp is not None:
        if zp.ndim != 1 or zp.size != data_shape[ax]:
            raise ValueError(
                f"zero_point of shape {zp.shape} does not match axis {ax} of input shape "
                f"{data_shape} (scale is a vector)"
            )
        return s.reshape(bshape), zp.astype(np.float32).reshape(bshape)
    return s.reshape(bshape), None


def _int_type(name: str, dtype: np.dtype[Any], what: str) -> tuple[np.dtype[Any], int, int]:
    if name not in _INT_TYPES:
        raise ValueError(f"{what} must be int8 or uint8, got {name!r}")
    int_type = _INT_TYPES[name]
    if dtype != int_type[0]:
        raise ValueError(f"{what} is {name} but the program declares {dtype}")
    return int_type


@kernel("quantize")
def quantize(
    ctx: OpContext,
    input: Any,
    scale: Any,
    output_dtype: str,
    zero_point: Any = None,
    axis: Any = None,
) -> np.ndarray:
    """``clip(round_half_even(input / scale) + zero_point)`` to int8 or uint8."""
    target, low, high = _int_type(str(output_dtype), ctx.output_dtype, "output_dtype")
    if zero_point is not None and (zp_dtype := np.asarray(zero_point).dtype) != target:
        raise ValueError(f"zero_point has dtype {zp_dtype}, output_dtype is {output_dtype}")
    if (in_dtype := np.asarray(input).dtype).kind != "f":
        raise ValueError(f"quantize input must be fp16 or fp32, got {in_dtype}")
    x = f32(input)
    s, zp = _params(x.shape, scale, zero_point, axis)
    if not np.all(np.isfinite(s)) or np.any(s == 0):
        raise ValueError("quantize scale must be finite and nonzero")
    if np.isnan(x).any():
        raise UnspecifiedResultError(
            "quantize of NaN: the formula clip(round(x / scale) + zero_point) has no integer "
            "result for NaN and Core ML does not document one, so the emulator refuses"
        )
    q = np.rint(x / s)  # float32; rint rounds half to even; +-inf stays +-inf
    if zp is not None:
        q = q + zp
    return cast("np.ndarray", np.clip(q, low, high).astype(target))


@kernel("dequantize")
def dequantize(
    ctx: OpContext, input: Any, scale: Any, zero_point: Any = None, axis: Any = None
) -> np.ndarray:
    """``scale * (input - zero_point)`` from int8/uint8, in float32 (rounded by the runner)."""
    data = np.asarray(input)
    _int_type(data.dtype.name, data.dtype, "dequantize input")
    if zero_point is not None and (zp_dtype := np.asarray(zero_point).dtype) != data.dtype:
        raise ValueError(f"zero_point has dtype {zp_dtype}, input has {data.dtype}")
    s, zp = _params(data.shape, scale, zero_point, axis)
    values = data.astype(np.float32)
    if zp is not None:
        values = values - zp  # exact: integers of at most 9 bits
    return s * values
