"""Kernels for MIL's image-resizing section, plus the block rearrangements.

Resizing is separable: for each resized axis we compute, in float32, the source
coordinate of every output index with the op's sampling rule, then gather the
two neighbours and blend (linear) or gather one (nearest). Width is blended
before height, the order torch uses. ``resample``/``affine`` sample arbitrary
points like torch's ``grid_sample``. ``crop_resize`` samples boxes like
TensorFlow's ``crop_and_resize``.

``pixel_shuffle``/``pixel_unshuffle`` use torch's channel order (C, r, r);
``depth_to_space``/``space_to_depth`` use TensorFlow's (r, r, C), as
coremltools' runtime tests pin; ``space_to_batch``/``batch_to_space`` follow
TensorFlow's batch order (block offset major, batch minor).
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from ..registry import OpContext, kernel
from ._common import f32

SAMPLING_MODES = (
    "STRICT_ALIGN_CORNERS",
    "ALIGN_CORNERS",
    "DEFAULT",
    "OFFSET_CORNERS",
    "UNALIGN_CORNERS",
)


def grid(mode: str, size_in: int, size_out: int) -> np.ndarray:
    """Source coordinates (float32, clamped to ``[0, size_in - 1]``) for one axis."""
    i = np.arange(size_out, dtype=np.float32)
    n_in, n_out = np.float32(size_in), np.float32(size_out)
    if mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS"):
        if size_out == 1:
            g = np.full(1, (n_in - 1) / 2 if mode == "ALIGN_CORNERS" else 0, dtype=np.float32)
        else:
            g = i * ((n_in - 1) / (n_out - 1))
    elif mode == "DEFAULT":
        g = i * (n_in / n_out)
    elif mode == "OFFSET_CORNERS":
        delta = np.float32(max(1, size_in - 1)) / n_out
        g = np.float32(0.5) * delta + i * delta
    elif mode == "UNALIGN_CORNERS":
        g = (i + np.float32(0.5)) * (n_in / n_out) - np.float32(0.5)
    else:
        raise NotImplementedError(f"sampling_mode {mode!r} (expected one of {SAMPLING_MODES})")
    return np.clip(g, 0, n_in - 1).astype(np.float32)


def linear_axis(x: np.ndarray, axis: int, coords: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``x`` along ``axis`` at in-range ``coords``."""
    n = x.shape[axis]
    lo = np.floor(coords).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    frac = (coords - lo).astype(np.float32)
    shape = [1] * x.ndim
    shape[axis] = len(coords)
    frac = frac.reshape(shape)
    a, b = np.take(x, lo, axis=axis), np.take(x, hi, axis=axis)
    return cast("np.ndarray", a * (np.float32(1) - frac) + b * frac)


def nearest_axis(x: np.ndarray, axis: int, index: np.ndarray) -> np.ndarray:
    n = x.shape[axis]
    return np.take(x, np.clip(index, 0, n - 1), axis=axis)


def _rank3(x: np.ndarray, op: str) -> None:
    if x.ndim < 3:
        raise ValueError(f"{op} needs an input of rank >= 3, got shape {x.shape}")


def _scaled_size(size: int, scale: Any) -> int:
    return int(np.floor(np.float32(size) * np.float32(scale)))


@kernel("upsample_nearest_neighbor")
def upsample_nearest_neighbor(
    ctx: OpContext, x: np.ndarray, scale_factor_height: Any = 1, scale_factor_width: Any = 1
) -> np.ndarray:
    """Output size ``floor(in * scale)``; source index ``floor(out_index * in / out)``.

    The scale is recomputed from the sizes, like ``upsample_bilinear``: coremltools'
    runtime test maps width 3 at scale 1.12 to the identity, which ``/ 1.12`` would not.
    """
    _rank3(x, "upsample_nearest_neighbor")
    out = x
    for axis, scale in ((-1, scale_factor_width), (-2, scale_factor_height)):
        n_in = x.shape[axis]
        n_out = _scaled_size(n_in, scale)
        ratio = np.float32(n_in) / np.float32(n_out)
        src = np.floor(np.arange(n_out, dtype=np.float32) * ratio).astype(np.int64)
        out = nearest_axis(out, axis, src)
    return out


@kernel("resize_nearest_neighbor")
def resize_nearest_neighbor(
    ctx: OpContext, x: np.ndarray, target_size_height: Any, target_size_width: Any
) -> np.ndarray:
    """Source index ``floor((out_index + 0.5) * in / out)`` (half-pixel centres)."""
    _rank3(x, "resize_nearest_neighbor")
    out = x
    for axis, n_out in ((-1, int(target_size_width)), (-2, int(target_size_height))):
        out = nearest_axis(out, axis, _half_pixel_nearest(x.shape[axis], n_out))
    return out


def _half_pixel_nearest(n_in: int, n_out: int) -> np.ndarray:
    i = np.arange(n_out, dtype=np.float32)
    return cast("np.ndarray", np.floor((i + np.float32(0.5)) * (np.float32(n_in) / np.float32(n_out))).astype(np.int64))


@kernel("upsample_bilinear")
def upsample_bilinear(
    ctx: OpContext,
    x: np.ndarray,
    scale_factor_height: Any = 1,
    scale_factor_width: Any = 1,
    align_corners: Any = True,
    half_pixel_centers: Any = None,
) -> np.ndarray:
    """Bilinear with the scale recomputed from the output size (MIL spec).

    ``align_corners`` samples ``i * (in - 1) / (out - 1)``; otherwise half-pixel
    centres ``(i + 0.5) * in / out - 0.5`` (the iOS16 default), or, with
    ``half_pixel_centers`` false, ``i * in / out``.
    """
    _rank3(x, "upsample_bilinear")
    align = bool(align_corners)
    half = (not align) if half_pixel_centers is None else bool(half_pixel_centers)
    if align and half:
        raise NotImplementedError("upsample_bilinear with align_corners and half_pixel_centers")
    mode = "STRICT_ALIGN_CORNERS" if align else ("UNALIGN_CORNERS" if half else "DEFAULT")
    out = f32(x)
    for axis, scale in ((-1, scale_factor_width), (-2, scale_factor_height)):
        n_out = _scaled_size(x.shape[axis], scale)
        out = linear_axis(out, axis, grid(mode, x.shape[axis], n_out))
    return out


@kernel("resize_bilinear")
def resize_bilinear(
    ctx: OpContext,
    x: np.ndarray,
    target_size_height: Any = 1,
    target_size_width: Any = 1,
    sampling_mode: str = "DEFAULT",
) -> np.ndarray:
    """Bilinear to a target size with one of MIL's five sampling grids."""
    _rank3(x, "resize_bilinear")
    out = f32(x)
    for axis, n_out in ((-1, int(target_size_width)), (-2, int(target_size_height))):
        out = linear_axis(out, axis, grid(sampling_mode, x.shape[axis], n_out))
    return out


@kernel("resize")
def resize(
    ctx: OpContext,
    x: np.ndarray,
    shape: Any,
    resized_dims: Any,
    interpolation_mode: str = "LINEAR",
    sampling_mode: str = "DEFAULT",
) -> np.ndarray:
    """iOS17 ``resize``: the last ``resized_dims`` axes to sizes from ``shape`` (0 keeps).

    Nearest uses half-pixel centres, which is what coremltools' runtime test
    (``[a, b] -> [a, b, b]``) pins for ``DEFAULT``; other sampling modes with
    nearest are rejected rather than guessed.
    """
    target = [int(v) for v in np.asarray(shape).reshape(-1)]
    k = int(resized_dims)
    if k > len(target) or len(target) > x.ndim:
        raise ValueError(f"resize: shape {target} / resized_dims {k} do not fit rank {x.ndim}")
    if interpolation_mode == "NEAREST_NEIGHBOR" and sampling_mode != "DEFAULT":
        raise NotImplementedError(f"resize NEAREST_NEIGHBOR with sampling_mode {sampling_mode!r}")
    if interpolation_mode not in ("LINEAR", "NEAREST_NEIGHBOR"):
        raise NotImplementedError(f"resize interpolation_mode {interpolation_mode!r}")
    out = x if interpolation_mode == "NEAREST_NEIGHBOR" else f32(x)
    for j in range(k):
        axis = x.ndim - k + j
        n_out = target[len(target) - k + j] or x.shape[axis]
        if interpolation_mode == "LINEAR":
            out = linear_axis(out, axis, grid(sampling_mode, x.shape[axis], n_out))
        else:
            out = nearest_axis(out, axis, _half_pixel_nearest(x.shape[axis], n_out))
    return out


@kernel("crop")
def crop(ctx: OpContext, x: np.ndarray, crop_height: Any, crop_width: Any) -> np.ndarray:
    """Remove ``crop_height`` rows top/bottom and ``crop_width`` columns left/right."""
    _rank3(x, "crop")
    t, b = (int(v) for v in np.asarray(crop_height).reshape(-1))
    left, right = (int(v) for v in np.asarray(crop_width).reshape(-1))
    h, w = x.shape[-2:]
    return x[..., t : h - b, left : w - right]


# --- point sampling: resample, affine, crop_resize -------------------------------


def _unnormalize(c: np.ndarray, size: int, mode: str, align: bool) -> np.ndarray:
    n = np.float32(size)
    if mode == "unnormalized":
        return c
    if mode == "normalized_minus_one_to_one":
        if align:
            return (c + 1) / 2 * (n - 1)
        return ((c + 1) * n - 1) / 2
    if mode == "normalized_zero_to_one":
        return c * (n - 1) if align else c * n - np.float32(0.5)
    raise NotImplementedError(f"coordinates_mode {mode!r}")


def _reflect(c: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Reflect ``c`` into ``[lo, hi]`` (torch ``reflect_coordinates``)."""
    span = hi - lo
    if span <= 0:
        return np.zeros_like(c)
    d = np.abs(c - lo)
    flips = np.floor(d / span)
    extra = d - flips * span
    return np.where(flips % 2 == 0, lo + extra, hi - extra).astype(np.float32)


def _pad_coord(c: np.ndarray, size: int, padding_mode: str) -> np.ndarray:
    if padding_mode == "constant":
        return c
    if padding_mode == "border":
        return np.clip(c, 0, size - 1)
    if padding_mode == "reflection":
        return np.clip(_reflect(c, 0.0, size - 1.0), 0, size - 1)
    if padding_mode == "symmetric":
        return np.clip(_reflect(c, -0.5, size - 0.5), 0, size - 1)
    raise NotImplementedError(f"padding_mode {padding_mode!r}")


def _sample(
    x: np.ndarray, px: np.ndarray, py: np.ndarray, sampling_mode: str, pad_value: float
) -> np.ndarray:
    """Sample ``x [B, C, H, W]`` at pixel coords ``px, py [B, H2, W2]``.

    Taps outside the image read ``pad_value`` (torch ``grid_sample`` zeros
    padding, generalised), so a point half outside blends with the pad.
    """
    b_count, _, h, w = x.shape
    batch = np.arange(b_count).reshape(-1, 1, 1)

    def tap(iy: np.ndarray, ix: np.ndarray) -> np.ndarray:
        inside = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
        vals = x[batch, :, np.clip(iy, 0, h - 1), np.clip(ix, 0, w - 1)]  # [B, H2, W2, C]
        vals = np.where(inside[..., None], vals, np.float32(pad_value))
        return np.moveaxis(vals, -1, 1)

    if sampling_mode == "nearest":
        return tap(np.rint(py).astype(np.int64), np.rint(px).astype(np.int64))
    if sampling_mode != "bilinear":
        raise NotImplementedError(f"sampling_mode {sampling_mode!r}")
    x0, y0 = np.floor(px), np.floor(py)
    fx, fy = (px - x0).astype(np.float32), (py - y0).astype(np.float32)
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    fx, fy = fx[:, None], fy[:, None]
    top = tap(y0, x0) * (1 - fx) + tap(y0, x0 + 1) * fx
    bottom = tap(y0 + 1, x0) * (1 - fx) + tap(y0 + 1, x0 + 1) * fx
    return cast("np.ndarray", top * (1 - fy) + bottom * fy)


@kernel("resample")
def resample(
    ctx: OpContext,
    x: np.ndarray,
    coordinates: np.ndarray,
    sampling_mode: str,
    padding_mode: str,
    padding_value: Any,
    coordinates_mode: str,
    align_corners: Any,
) -> np.ndarray:
    """torch ``grid_sample``: ``coordinates[b, h, w] = (x, y)`` per output pixel."""
    x = f32(x)
    c = f32(coordinates)
    h, w = x.shape[-2:]
    align = bool(align_corners)
    px = _pad_coord(_unnormalize(c[..., 0], w, coordinates_mode, align), w, padding_mode)
    py = _pad_coord(_unnormalize(c[..., 1], h, coordinates_mode, align), h, padding_mode)
    return _sample(x, px, py, sampling_mode, float(padding_value))


@kernel("affine")
def affine(
    ctx: OpContext,
    x: np.ndarray,
    transform_matrix: np.ndarray,
    output_height: Any,
    output_width: Any,
    sampling_mode: str,
    padding_mode: str,
    padding_value: Any,
    coordinates_mode: str,
    align_corners: Any,
) -> np.ndarray:
    """torch ``affine_grid`` + ``grid_sample``: ``[a0, a1, a2, b0, b1, b2]`` per batch."""
    x = f32(x)
    m = f32(transform_matrix).reshape(-1, 6)
    if m.shape[0] not in (1, x.shape[0]):
        raise ValueError(f"transform_matrix has {m.shape[0]} rows for batch {x.shape[0]}")
    if coordinates_mode != "normalized_minus_one_to_one":
        raise NotImplementedError(f"affine coordinates_mode {coordinates_mode!r}")
    ho, wo = int(output_height), int(output_width)
    align = bool(align_corners)

    def base(n: int) -> np.ndarray:
        i = np.arange(n, dtype=np.float32)
        if align:
            return (i * 2 / max(n - 1, 1) - 1).astype(np.float32)
        return ((2 * i + 1) / n - 1).astype(np.float32)

    gy, gx = np.meshgrid(base(ho), base(wo), indexing="ij")
    m = np.broadcast_to(m, (x.shape[0], 6))[:, :, None, None]
    cx = m[:, 0] * gx + m[:, 1] * gy + m[:, 2]
    cy = m[:, 3] * gx + m[:, 4] * gy + m[:, 5]
    h, w = x.shape[-2:]
    px = _pad_coord(_unnormalize(cx, w, coordinates_mode, align), w, padding_mode)
    py = _pad_coord(_unnormalize(cy, h, coordinates_mode, align), h, padding_mode)
    return _sample(x, px, py, sampling_mode, float(padding_value))


def _box_corners(boxes: np.ndarray, mode: str) -> tuple[np.ndarray, ...]:
    """``(h_start, w_start, h_end, w_end)`` from any box_coordinate_mode."""
    a, b, c, d = (boxes[:, i] for i in range(4))
    if mode == "CORNERS_HEIGHT_FIRST":
        return a, b, c, d
    if mode == "CORNERS_WIDTH_FIRST":
        return b, a, d, c
    if mode == "CENTER_SIZE_HEIGHT_FIRST":
        return a - c / 2, b - d / 2, a + c / 2, b + d / 2
    if mode == "CENTER_SIZE_WIDTH_FIRST":
        return b - d / 2, a - c / 2, b + d / 2, a + c / 2
    raise NotImplementedError(f"box_coordinate_mode {mode!r}")


def _box_grid(start: np.ndarray, end: np.ndarray, n: int, mode: str) -> np.ndarray:
    """Sample points ``[N, n]`` across each box (align-corners modes only)."""
    if mode not in ("ALIGN_CORNERS", "STRICT_ALIGN_CORNERS"):
        raise NotImplementedError(f"crop_resize sampling_mode {mode!r} (only ALIGN_CORNERS modes)")
    if n == 1:
        pos = (start + end) / 2 if mode == "ALIGN_CORNERS" else start
        return pos[:, None].astype(np.float32)
    step = (end - start) / np.float32(n - 1)
    grid = start[:, None] + np.arange(n, dtype=np.float32)[None, :] * step[:, None]
    return cast("np.ndarray", grid.astype(np.float32))


def _crop_resize(
    x: np.ndarray,
    boxes: np.ndarray,
    indices: np.ndarray,
    th: int,
    tw: int,
    normalized: bool,
    spatial_scale: float,
    box_mode: str,
    sampling_mode: str,
    pad_value: float,
) -> np.ndarray:
    """``[N, C, th, tw]``: TF crop_and_resize; a point outside the image is ``pad_value``."""
    h, w = x.shape[-2:]
    hs, ws, he, we = (f32(v) for v in _box_corners(f32(boxes), box_mode))
    sh = np.float32(spatial_scale) * (np.float32(h - 1) if normalized else np.float32(1))
    sw = np.float32(spatial_scale) * (np.float32(w - 1) if normalized else np.float32(1))
    ys = _box_grid(hs * sh, he * sh, th, sampling_mode)  # [N, th]
    xs = _box_grid(ws * sw, we * sw, tw, sampling_mode)  # [N, tw]
    py = np.broadcast_to(ys[:, :, None], (len(boxes), th, tw))
    px = np.broadcast_to(xs[:, None, :], (len(boxes), th, tw))
    inside = (py >= 0) & (py <= h - 1) & (px >= 0) & (px <= w - 1)
    out = _sample(x[indices], np.clip(px, 0, w - 1), np.clip(py, 0, h - 1), "bilinear", pad_value)
    return np.where(inside[:, None], out, np.float32(pad_value))


@kernel("crop_resize")
def crop_resize(
    ctx: OpContext,
    x: np.ndarray,
    roi: np.ndarray | None = None,
    boxes: np.ndarray | None = None,
    box_indices: np.ndarray | None = None,
    target_height: Any = 1,
    target_width: Any = 1,
    normalized_coordinates: Any = False,
    spatial_scale: Any = 1.0,
    box_coordinate_mode: str = "CORNERS_HEIGHT_FIRST",
    sampling_mode: str = "DEFAULT",
    pad_value: Any = 0.0,
) -> np.ndarray:
    """Both signatures: iOS15/16 ``roi [N,1,4|5,1,1]`` and iOS17 ``boxes``/``box_indices``."""
    x = f32(x)
    args = (
        int(target_height),
        int(target_width),
        bool(normalized_coordinates),
        float(spatial_scale),
        box_coordinate_mode,
        sampling_mode,
        float(pad_value),
    )
    if boxes is not None:
        n = boxes.shape[0]
        idx = np.arange(n) if box_indices is None else np.asarray(box_indices).astype(np.int64)
        return _crop_resize(x, f32(boxes).reshape(n, 4), idx, *args)
    if roi is None:
        raise ValueError("crop_resize needs roi or boxes")
    r = f32(roi).reshape(roi.shape[0], -1)
    n, b = r.shape[0], x.shape[0]
    if r.shape[1] == 5:
        idx = r[:, 0].astype(np.int64)
        return _crop_resize(x, r[:, 1:], idx, *args)[:, None]
    # Four coordinates: every box on every image -> [N, B, C, th, tw].
    rep = np.repeat(r, b, axis=0)
    idx = np.tile(np.arange(b), n)
    out = _crop_resize(x, rep, idx, *args)
    return out.reshape(n, b, *out.shape[1:])


# --- block rearrangements -----------------------------------------------------


def _nchw(x: np.ndarray, op: str) -> tuple[int, int, int, int]:
    if x.ndim != 4:
        raise ValueError(f"{op} needs a rank-4 input, got shape {x.shape}")
    n, c, h, w = x.shape
    return n, c, h, w


@kernel("pixel_shuffle")
def pixel_shuffle(ctx: OpContext, x: np.ndarray, upscale_factor: Any) -> np.ndarray:
    """torch order: ``out[n, c, h*r+i, w*r+j] = x[n, c*r*r + i*r + j, h, w]``."""
    n, c, h, w = _nchw(x, "pixel_shuffle")
    r = int(upscale_factor)
    y = x.reshape(n, c // (r * r), r, r, h, w).transpose(0, 1, 4, 2, 5, 3)
    return y.reshape(n, c // (r * r), h * r, w * r)


@kernel("pixel_unshuffle")
def pixel_unshuffle(ctx: OpContext, x: np.ndarray, downscale_factor: Any) -> np.ndarray:
    """Inverse of :func:`pixel_shuffle`."""
    n, c, h, w = _nchw(x, "pixel_unshuffle")
    r = int(downscale_factor)
    y = x.reshape(n, c, h // r, r, w // r, r).transpose(0, 1, 3, 5, 2, 4)
    return y.reshape(n, c * r * r, h // r, w // r)


@kernel("depth_to_space")
def depth_to_space(ctx: OpContext, x: np.ndarray, block_size: Any) -> np.ndarray:
    """TF order: ``out[n, c, h*r+i, w*r+j] = x[n, (i*r + j)*C_out + c, h, w]``."""
    n, c, h, w = _nchw(x, "depth_to_space")
    r = int(block_size)
    y = x.reshape(n, r, r, c // (r * r), h, w).transpose(0, 3, 4, 1, 5, 2)
    return y.reshape(n, c // (r * r), h * r, w * r)


@kernel("space_to_depth")
def space_to_depth(ctx: OpContext, x: np.ndarray, block_size: Any) -> np.ndarray:
    """Inverse of :func:`depth_to_space` (TF order)."""
    n, c, h, w = _nchw(x, "space_to_depth")
    r = int(block_size)
    y = x.reshape(n, c, h // r, r, w // r, r).transpose(0, 3, 5, 1, 2, 4)
    return y.reshape(n, c * r * r, h // r, w // r)


@kernel("space_to_batch")
def space_to_batch(ctx: OpContext, x: np.ndarray, block_shape: Any, paddings: Any) -> np.ndarray:
    """Zero-pad H, W, then move each ``block_shape`` offset into the batch (offset major)."""
    n, c, _, _ = _nchw(x, "space_to_batch")
    bh, bw = (int(v) for v in np.asarray(block_shape).reshape(-1))
    p = np.asarray(paddings).reshape(2, 2).astype(int)
    xp = np.pad(x, ((0, 0), (0, 0), tuple(p[0]), tuple(p[1])))
    h, w = xp.shape[-2:]
    y = xp.reshape(n, c, h // bh, bh, w // bw, bw).transpose(3, 5, 0, 1, 2, 4)
    return y.reshape(bh * bw * n, c, h // bh, w // bw)


@kernel("batch_to_space")
def batch_to_space(ctx: OpContext, x: np.ndarray, block_shape: Any, crops: Any) -> np.ndarray:
    """Inverse of :func:`space_to_batch`, then crop."""
    b, c, h, w = _nchw(x, "batch_to_space")
    bh, bw = (int(v) for v in np.asarray(block_shape).reshape(-1))
    n = b // (bh * bw)
    y = x.reshape(bh, bw, n, c, h, w).transpose(2, 3, 4, 0, 5, 1).reshape(n, c, h * bh, w * bw)
    cr = np.asarray(crops).reshape(2, 2).astype(int)
    return y[:, :, cr[0, 0] : h * bh - cr[0, 1], cr[1, 0] : w * bw - cr[1, 1]]
