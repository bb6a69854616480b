"""Kernels for MIL's conv section: ``conv`` and ``conv_transpose`` (1-D, 2-D, 3-D).

Both run torch's float32 CPU convolution (``torch.nn.functional.conv{n}d`` and
``conv_transpose{n}d``) on the zero-padded input: one vectorized kernel for
every group count, depthwise included, where a numpy im2col pays a window copy
and per-group matmuls. Padding, ``same`` splits, cropping and ``output_shape``
stay MIL's own rules, computed here. Without torch, the numpy twins below run:
``conv`` as an im2col (a strided window view, copied once into a
``[groups, pixels, taps]`` matrix, times the weights in one batched BLAS matmul),
``conv_transpose`` as its adjoint (one matmul to kernel taps, then a scatter-add
over the taps). Either way the sum accumulates in float32 and the runner rounds
the output to the declared dtype, as Core ML's typed storage does.

The padding helpers here are shared with :mod:`.pool`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import EllipsisType
from typing import Any, cast

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..registry import OpContext, kernel
from ._common import f32
from ._torch import tensor, torch_or_none

PAD_TYPES = ("valid", "same", "same_lower", "custom")


def int_list(value: Any, n: int, default: int) -> list[int]:
    """A MIL int-vector parameter (absent meaning ``default`` everywhere)."""
    if value is None:
        return [default] * n
    out = [int(v) for v in np.asarray(value).reshape(-1).tolist()]
    if len(out) != n:
        raise ValueError(f"expected {n} values, got {out}")
    return out


def spatial_pads(
    pad_type: str,
    in_shape: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    pad: Any,
) -> list[tuple[int, int]]:
    """``(before, after)`` padding per spatial dim, as MIL's ``pad_type`` defines it.

    ``same`` puts the odd extra element after (like TensorFlow and torch
    ``padding="same"``), ``same_lower`` before; coremltools' tests against the
    Core ML runtime pin both conventions.
    """
    n = len(in_shape)
    pad_type = pad_type.lower()
    if pad_type == "valid":
        return [(0, 0)] * n
    if pad_type == "custom":
        p = int_list(pad, 2 * n, 0)
        if any(v < 0 for v in p):
            raise NotImplementedError(f"negative custom pad {p}")
        return [(p[2 * i], p[2 * i + 1]) for i in range(n)]
    if pad_type in ("same", "same_lower"):
        pads = []
        for size, k, s, d in zip(in_shape, kernel, strides, dilations, strict=True):
            eff = (k - 1) * d + 1
            total = max(0, s * math.ceil(size / s) - size + eff - s)
            small, big = total // 2, total - total // 2
            pads.append((small, big) if pad_type == "same" else (big, small))
        return pads
    raise NotImplementedError(f"pad_type {pad_type!r} (expected one of {PAD_TYPES})")


def pad_spatial(x: np.ndarray, pads: Sequence[tuple[int, int]], value: float = 0.0) -> np.ndarray:
    """``x`` padded on its trailing spatial axes (no copy when nothing to pad)."""
    if not any(b or a for b, a in pads):
        return x
    widths = [(0, 0)] * (x.ndim - len(pads)) + [tuple(p) for p in pads]
    return np.pad(x, widths, mode="constant", constant_values=value)


def windows(
    x: np.ndarray, kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int]
) -> np.ndarray:
    """A view ``[..., *out, *kernel]`` of every (strided, dilated) window of ``x``."""
    n = len(kernel)
    axes = tuple(range(x.ndim - n, x.ndim))
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    # numpy's stub types ``axis`` as one int; a tuple of axes is documented and works.
    view = sliding_window_view(x, eff, axis=axes)  # type: ignore[call-overload]
    index: tuple[EllipsisType | slice, ...] = (
        Ellipsis,
        *(slice(None, None, s) for s in strides),
        *(slice(None, None, d) for d in dilations),
    )
    return cast("np.ndarray", view[index])


def _check_rank(x: np.ndarray, op: str) -> int:
    n = x.ndim - 2
    if not 1 <= n <= 3:
        raise NotImplementedError(f"{op} on a rank-{x.ndim} input (supports 1 to 3 spatial dims)")
    return n


@kernel("conv")
def conv(
    ctx: OpContext,
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    strides: Any = None,
    pad_type: str = "valid",
    pad: Any = None,
    dilations: Any = None,
    groups: Any = 1,
) -> np.ndarray:
    """Grouped, strided, dilated convolution (torch's, or an im2col without torch)."""
    x, weight = f32(x), f32(weight)
    n = _check_rank(x, "conv")
    c_in = x.shape[1]
    c_out, cpg = weight.shape[:2]
    ksize = list(weight.shape[2:])
    g = int(groups)
    if weight.ndim != x.ndim or c_in % g or c_in // g != cpg or c_out % g:
        raise ValueError(f"weight {weight.shape} does not fit input {x.shape} with groups={g}")
    s = int_list(strides, n, 1)
    d = int_list(dilations, n, 1)
    pads = spatial_pads(pad_type, x.shape[2:], ksize, s, d, pad)
    torch = torch_or_none()
    if torch is not None and x.size and weight.size:
        return torch_conv(torch, x, weight, bias, s, d, pads, g)
    return numpy_conv(x, weight, bias, s, d, pads, g)


def torch_conv(
    torch: Any,
    x: np.ndarray,
    weight: np.ndarray,
    bias: Any,
    strides: list[int],
    dilations: list[int],
    pads: Sequence[tuple[int, int]],
    groups: int,
) -> np.ndarray:
    """``conv`` through torch's float32 convolution, the bias in its float32 accumulation
    (no rounding point inside an op: the runner rounds the output once)."""
    functional = torch.nn.functional
    n = x.ndim - 2
    tx = tensor(torch, x)
    if all(before == after for before, after in pads):
        padding: list[int] = [before for before, _ in pads]
    else:  # torch pads symmetrically only: pad first (F.pad lists the last axis first)
        tx = functional.pad(tx, [p for pair in reversed(pads) for p in pair])
        padding = [0] * n
    fn = (functional.conv1d, functional.conv2d, functional.conv3d)[n - 1]
    tb = None if bias is None else tensor(torch, f32(bias).reshape(-1))
    # Tensors from numpy never require grad: autograd records nothing, no no_grad needed.
    out = fn(tx, tensor(torch, weight), tb, strides, padding, dilations, groups)
    return cast("np.ndarray", out.numpy())


def numpy_conv(
    x: np.ndarray,
    weight: np.ndarray,
    bias: Any,
    s: list[int],
    d: list[int],
    pads: Sequence[tuple[int, int]],
    g: int,
) -> np.ndarray:
    """``conv`` as im2col plus one batched float32 matmul (the path without torch)."""
    n = x.ndim - 2
    batch = x.shape[0]
    c_out, cpg = weight.shape[:2]
    ksize = list(weight.shape[2:])
    win = windows(pad_spatial(x, pads), ksize, s, d)  # [N, C_in, *out, *K]
    out_sp = win.shape[2 : 2 + n]
    taps = int(np.prod(ksize))
    pixels = int(np.prod(out_sp))
    opg = c_out // g
    win = win.reshape(batch, g, cpg, *out_sp, *ksize)  # splits C_in only: still a view
    w = weight.reshape(g, opg, cpg, *ksize)
    if cpg == 1:
        # Depthwise: a float32 multiply-add per kernel tap beats tiny per-group matmuls.
        out = np.zeros((batch, g, opg, *out_sp), dtype=np.float32)
        spatial = (None,) * n
        for tap in np.ndindex(*ksize):
            wt = w[(slice(None), slice(None), 0, *tap)][(None, ..., *spatial)]
            out += wt * win[(slice(None), slice(None), slice(0, 1), ..., *tap)]
    else:
        # [N, G, cpg, *out, *K] -> [N, G, cpg*K, P]: the one im2col copy, then
        # [G, opg, cpg*K] @ [N, G, cpg*K, P] in float32 BLAS, already in NC(HW) order.
        order = (0, 1, 2, *range(3 + n, 3 + 2 * n), *range(3, 3 + n))
        cols = win.transpose(order).reshape(batch, g, cpg * taps, pixels)
        out = np.matmul(w.reshape(g, opg, cpg * taps), cols)
    out = out.reshape(batch, c_out, *out_sp)
    if bias is not None:
        out = out + f32(bias).reshape((c_out,) + (1,) * n)
    return out


@kernel("conv_transpose")
def conv_transpose(
    ctx: OpContext,
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    pad: Any = None,
    output_shape: Any = None,
    pad_type: str = "valid",
    strides: Any = None,
    dilations: Any = None,
    groups: Any = 1,
) -> np.ndarray:
    """Transposed convolution: matmul to kernel taps, scatter-add, then crop.

    The full (unpadded) result has ``(D_in - 1) * stride + (K - 1) * dilation + 1``
    elements per spatial dim. ``pad`` (or the ``same`` split) crops it from the
    front and back; an ``output_shape`` longer than what remains is zero-filled
    at the end (torch's ``output_padding``), before the bias is added.
    """
    x, weight = f32(x), f32(weight)
    n = _check_rank(x, "conv_transpose")
    c_in = x.shape[1]
    in_sp = x.shape[2:]
    g = int(groups)
    ksize = list(weight.shape[2:])
    if weight.ndim != x.ndim or weight.shape[0] != c_in or c_in % g:
        raise ValueError(f"weight {weight.shape} does not fit input {x.shape} with groups={g}")
    c_out = weight.shape[1] * g
    s = int_list(strides, n, 1)
    d = int_list(dilations, n, 1)
    full = [
        (i - 1) * st + (k - 1) * dl + 1 for i, st, k, dl in zip(in_sp, s, ksize, d, strict=True)
    ]

    torch = torch_or_none()
    if torch is not None and x.size and weight.size:
        fn = getattr(torch.nn.functional, f"conv_transpose{n}d")
        result = fn(tensor(torch, x), tensor(torch, weight), None, s, 0, 0, g, d).numpy()
    else:
        result = numpy_conv_transpose_full(x, weight, s, d, g)

    if output_shape is not None:
        want = [int(v) for v in np.asarray(output_shape).reshape(-1)][2:]
        if len(want) != n:
            raise ValueError(f"output_shape {output_shape} does not have rank {n + 2}")
    else:
        want = None
    pt = pad_type.lower()
    if pt in ("same", "same_lower"):
        target = want or [i * st for i, st in zip(in_sp, s, strict=True)]
        crops = []
        for f, t in zip(full, target, strict=True):
            total = max(0, f - t)
            small, big = total // 2, total - total // 2
            crops.append((small, big) if pt == "same" else (big, small))
    elif pt == "valid":
        crops = [(0, 0)] * n
    elif pt == "custom":
        p = int_list(pad, 2 * n, 0)
        crops = [(p[2 * i], p[2 * i + 1]) for i in range(n)]
    else:
        raise NotImplementedError(f"pad_type {pad_type!r} (expected one of {PAD_TYPES})")
    if want is None:
        want = [f - b - a for f, (b, a) in zip(full, crops, strict=True)]
    index: list[slice] = []
    extra: list[tuple[int, int]] = []
    for f, (b, _), t in zip(full, crops, want, strict=True):
        stop = min(f, b + t)
        index.append(slice(b, stop))
        extra.append((0, t - max(0, stop - b)))
    out = pad_spatial(result[(slice(None), slice(None), *index)], extra)
    if bias is not None:
        out = out + f32(bias).reshape((c_out,) + (1,) * n)
    return out


def numpy_conv_transpose_full(
    x: np.ndarray, weight: np.ndarray, s: list[int], d: list[int], g: int
) -> np.ndarray:
    """The full (uncropped, bias-free) transposed convolution, without torch:
    one matmul from input pixels to kernel taps, then a scatter-add over the taps."""
    n = x.ndim - 2
    batch, c_in = x.shape[:2]
    in_sp = x.shape[2:]
    ksize = list(weight.shape[2:])
    opg = weight.shape[1]
    c_out, ipg = opg * g, c_in // g
    full = [
        (i - 1) * st + (k - 1) * dl + 1 for i, st, k, dl in zip(in_sp, s, ksize, d, strict=True)
    ]
    taps = int(np.prod(ksize))
    pixels = int(np.prod(in_sp))
    # [N, G, ipg, P] -> [G, N*P, ipg] @ [G, ipg, opg*K] -> [G, N, *in, opg, *K]
    xs = x.reshape(batch, g, ipg, pixels).transpose(1, 0, 3, 2)
    w = weight.reshape(g, 1, ipg, opg * taps)
    contrib = np.matmul(xs, w).reshape(g, batch, *in_sp, opg, *ksize)
    # -> [N, G, opg, *K, *in] so each tap is a contiguous-ish block to scatter.
    order = (1, 0, 2 + n, *range(3 + n, 3 + 2 * n), *range(2, 2 + n))
    contrib = contrib.transpose(order).reshape(batch, c_out, *ksize, *in_sp)
    result = np.zeros((batch, c_out, *full), dtype=np.float32)
    for tap in np.ndindex(*ksize):
        dst = tuple(
            slice(t * dl, t * dl + (i - 1) * st + 1, st)
            for t, dl, i, st in zip(tap, d, in_sp, s, strict=True)
        )
        result[(slice(None), slice(None), *dst)] += contrib[(slice(None), slice(None), *tap)]
    return result
