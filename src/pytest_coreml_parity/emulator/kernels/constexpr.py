"""Compressed-weight decompression (``constexpr_*``, iOS16 and iOS18 opsets).

Each op is a pure function of constants, evaluated when the plan runs; iOS18
ops may be chained (a LUT that is itself quantized, a pruned palettized
weight), which works because their outputs are ordinary values in the run.

Input encodings, as coremltools' milproto loader hands them over:

* iOS16 ``constexpr_lut_to_dense`` indices and ``constexpr_sparse_to_dense``
  masks are *packed* ``uint8`` bytes (LSB first) plus a ``shape`` input.
* iOS18 sub-byte tensors (``int4``, ``uint1``..``uint6``) arrive *unpacked*,
  one element per array entry, in ``int8``/``uint8`` arrays of the declared
  shape. Their value range is checked rather than trusted.

Dequantization is computed in float32, ``scale * (data - offset)``, and the
runner rounds the result once to the declared dtype. For integer data and
offsets the difference is an exact small integer, so this equals computing in
the declared dtype.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from ..registry import OpContext, kernel
from ._common import axis_of, f32

_FLOAT_KINDS = "f"


def _values(x: Any) -> np.ndarray:
    """Data or offset as float32 (integers are exact in float32 at these widths)."""
    return np.asarray(x).astype(np.float32)


def _unpack_bits(packed: Any, nbits: int, count: int) -> np.ndarray:
    """``count`` unsigned ``nbits``-wide fields packed LSB-first into bytes."""
    data = np.asarray(packed)
    if data.dtype not in (np.uint8, np.int8):
        raise TypeError(f"packed data must be uint8 bytes, got {data.dtype}")
    bits = np.unpackbits(data.view(np.uint8).reshape(-1), bitorder="little")
    if bits.size < nbits * count:
        raise ValueError(f"{data.size} packed bytes hold fewer than {count} {nbits}-bit values")
    fields = bits[: nbits * count].reshape(count, nbits).astype(np.uint32)
    return cast("np.ndarray", (fields << np.arange(nbits, dtype=np.uint32)).sum(axis=1).astype(np.uint32))


def _shape_of(shape: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in np.asarray(shape).reshape(-1))


def _check_range(values: np.ndarray, low: int, high: int, what: str) -> None:
    if values.size and (values.min() < low or values.max() > high):
        raise ValueError(f"{what} has values outside [{low}, {high}]")


# ------------------------------------------------------------------ iOS16 ops


@kernel("constexpr_affine_dequantize")
def constexpr_affine_dequantize(
    ctx: OpContext, quantized_data: Any, zero_point: Any, scale: Any, axis: Any
) -> np.ndarray:
    """``scale * (quantized_data - zero_point)``, scale/zero_point scalar or per ``axis``."""
    data = _values(quantized_data)
    ax = axis_of(axis, data.ndim)
    bshape = [1] * data.ndim
    bshape[ax] = -1

    def per_axis(p: Any, name: str) -> np.ndarray:
        arr = _values(p)
        if arr.ndim == 0:
            return arr
        if arr.ndim != 1 or arr.size != data.shape[ax]:
            raise ValueError(
                f"{name} of shape {arr.shape} does not match axis {ax} of {data.shape}"
            )
        return arr.reshape(bshape)

    return cast("np.ndarray", per_axis(scale, "scale") * (data - per_axis(zero_point, "zero_point")))


@kernel("constexpr_cast")
def constexpr_cast(ctx: OpContext, source_val: Any, output_dtype: str) -> np.ndarray:
    if str(output_dtype) != "fp32":
        raise NotImplementedError(f"constexpr_cast to {output_dtype!r}; the spec allows only fp32")
    return f32(source_val)


# --------------------------------------------------------------- lut_to_dense


def _lut_iOS16(indices: Any, lut: Any, shape: Any) -> np.ndarray:
    table = np.asarray(lut).reshape(-1)
    nbits = int(np.log2(table.size))
    if table.size not in (2, 4, 16, 64, 256):
        raise ValueError(f"lut has {table.size} entries; the spec allows 2, 4, 16, 64 or 256")
    out_shape = _shape_of(shape)
    keys = _unpack_bits(indices, nbits, int(np.prod(out_shape)))
    return cast("np.ndarray", table[keys].reshape(out_shape))


def _lut_iOS18(indices: Any, lut: Any, vector_axis: Any) -> np.ndarray:
    """Per-block (grouped) and vector palettization: lut is ``[*blocks, 2**nbits, V]``."""
    idx = np.asarray(indices)
    table = np.asarray(lut)
    rank = idx.ndim
    if table.ndim != rank + 2:
        raise ValueError(f"lut of rank {table.ndim} does not fit indices of rank {rank}")
    palettes, vsize = table.shape[-2], table.shape[-1]
    _check_range(idx, 0, palettes - 1, "indices")
    blocks = []
    for dim, groups in zip(idx.shape, table.shape[:rank], strict=True):
        if groups == 0 or dim % groups:
            raise ValueError(f"indices shape {idx.shape} is not divisible by lut groups")
        blocks.append(dim // groups)
    # The lut index of every element: its group along each axis, then its key.
    group_index = tuple(
        (np.arange(dim) // blk).reshape([-1 if a == k else 1 for a in range(rank)])
        for k, (dim, blk) in enumerate(zip(idx.shape, blocks, strict=True))
    )
    vectors = table[(*group_index, idx.astype(np.intp))]  # shape idx.shape + (V,)
    if vsize == 1:
        return cast("np.ndarray", vectors[..., 0])
    if vector_axis is None:
        raise ValueError("vector palettization (VECTOR_SIZE > 1) needs vector_axis")
    ax = axis_of(vector_axis, rank)
    # Each index expands into V consecutive elements along vector_axis.
    moved = np.moveaxis(vectors, ax, -2)  # (..., n_ax, V)
    merged = moved.reshape(*moved.shape[:-2], moved.shape[-2] * vsize)
    return np.moveaxis(merged, -1, ax)


@kernel("constexpr_lut_to_dense")
def constexpr_lut_to_dense(
    ctx: OpContext,
    indices: Any,
    lut: Any,
    shape: Any = None,
    vector_axis: Any = None,
) -> np.ndarray:
    """iOS16 form has ``shape`` and packed indices; iOS18 form has unpacked indices."""
    if shape is not None:
        return _lut_iOS16(indices, lut, shape)
    return _lut_iOS18(indices, lut, vector_axis)


# ------------------------------------------------------------ sparse_to_dense


def _scatter_nonzero(nonzero_data: Any, mask: np.ndarray) -> np.ndarray:
    data = np.asarray(nonzero_data)
    if data.ndim != 1:
        raise ValueError(f"nonzero_data must be rank 1, got shape {data.shape}")
    selected = mask != 0
    if int(selected.sum()) != data.size:
        raise ValueError(
            f"mask has {int(selected.sum())} set bits but nonzero_data has {data.size} values"
        )
    dtype = np.float32 if data.dtype.kind == _FLOAT_KINDS else data.dtype
    out = np.zeros(mask.shape, dtype)
    out[selected] = data
    return out


@kernel("constexpr_sparse_to_dense")
def constexpr_sparse_to_dense(
    ctx: OpContext, nonzero_data: Any, mask: Any, shape: Any = None
) -> np.ndarray:
    """iOS16: packed uint8 bit mask plus ``shape``; iOS18: unpacked uint1 mask."""
    if shape is not None:
        out_shape = _shape_of(shape)
        bits = _unpack_bits(mask, 1, int(np.prod(out_shape))).reshape(out_shape)
        return _scatter_nonzero(nonzero_data, bits)
    bits = np.asarray(mask)
    _check_range(bits, 0, 1, "mask")
    return _scatter_nonzero(nonzero_data, bits)


# --------------------------------------------------------- blockwise (iOS18)


def _repeat_blocks(param: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    """Expand a per-block parameter to ``shape`` (block size = dim / param dim)."""
    if param.ndim != len(shape):
        raise ValueError(f"{name} of rank {param.ndim} does not match data of rank {len(shape)}")
    for axis, (dim, groups) in enumerate(zip(shape, param.shape, strict=True)):
        if groups == 0 or dim % groups:
            raise ValueError(f"{name} shape {param.shape} does not divide data shape {shape}")
        if groups != dim:
            param = np.repeat(param, dim // groups, axis=axis)
    return param


def _shift_scale(data: np.ndarray, scale: Any, offset: Any) -> np.ndarray:
    values = _values(data)
    if offset is not None:
        values = values - _repeat_blocks(_values(offset), values.shape, "offset")
    return cast("np.ndarray", _repeat_blocks(f32(scale), values.shape, "scale") * values)


@kernel("constexpr_blockwise_shift_scale")
def constexpr_blockwise_shift_scale(
    ctx: OpContext, data: Any, scale: Any, offset: Any = None
) -> np.ndarray:
    return _shift_scale(np.asarray(data), scale, offset)


@kernel("constexpr_sparse_blockwise_shift_scale")
def constexpr_sparse_blockwise_shift_scale(
    ctx: OpContext, data_mask: Any, nonzero_data: Any, scale: Any, offset: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Dequantize only the nonzero values, each with the scale of its dense position."""
    mask = np.asarray(data_mask)
    _check_range(mask, 0, 1, "data_mask")
    selected = mask != 0
    dense = _scatter_nonzero(_values(nonzero_data), mask)
    scales = _repeat_blocks(f32(scale), mask.shape, "scale")[selected]
    values = dense[selected]
    if offset is not None:
        values = values - _repeat_blocks(_values(offset), mask.shape, "offset")[selected]
    return mask, scales * values


@kernel("constexpr_lut_to_sparse")
def constexpr_lut_to_sparse(
    ctx: OpContext,
    indices_mask: Any,
    indices_nonzero_data: Any,
    lut: Any,
    vector_axis: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Depalettize only the nonzero entries; vector luts widen the mask along vector_axis."""
    mask = np.asarray(indices_mask)
    _check_range(mask, 0, 1, "indices_mask")
    keys = _scatter_nonzero(indices_nonzero_data, mask)
    dense = _lut_iOS18(keys, lut, vector_axis)
    table = np.asarray(lut)
    out_mask = mask
    if table.shape[-1] > 1:
        out_mask = np.repeat(mask, table.shape[-1], axis=axis_of(vector_axis, mask.ndim))
    return out_mask.astype(np.uint8), dense[out_mask != 0].reshape(-1)
