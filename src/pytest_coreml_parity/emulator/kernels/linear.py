"""MIL linear-algebra ops: ``linear``, ``matmul`` (iOS15, iOS17) and ``einsum`` (iOS15).

Float products accumulate in float32 (numpy's float32 matmul, i.e. BLAS sgemm),
and the runner rounds the result once to the declared dtype: an fp16 matmul
whose exact result exceeds 65504 is inf, as on device. Integer operands
accumulate in int64 and the runner narrows to the declared int32. The iOS17
variants allow operands of different dtypes (e.g. fp16 weights with an fp32
input); float values are all held in float32, so they compute the same way.

Under the ``fp16-sequential`` profile, an op whose declared output is fp16
accumulates in fp16 instead, as Apple's Core AI interpreter was measured to
(tests/coreai/test_accumulation.py): per output element, from acc = +0, for k
ascending, acc = fp16(acc + fp16(x[i, k] * y[k, j])); linear then adds its bias
as a separate fp16 add (:func:`sequential_fp16_matmul`).
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from ..dtypes import F16
from ..registry import FP16_SEQUENTIAL, OpContext, kernel


def _sequential(ctx: OpContext) -> bool:
    """Whether this op accumulates in fp16: the profile asks for it and the output is fp16."""
    return ctx.fp16_execution == FP16_SEQUENTIAL and ctx.output_dtypes[:1] == (F16,)


def sequential_fp16_matmul(x: np.ndarray, y: np.ndarray, *, use_torch: bool = True) -> np.ndarray:
    """``x @ y`` (numpy matmul semantics) accumulated in fp16, left to right over k.

    Operands are rounded to fp16; then per output element, from acc = +0, for k
    ascending: acc = fp16(acc + fp16(x[..., i, k] * y[..., k, j])). Each product and
    each partial sum is rounded (no fused multiply-add, no pairwise sum), so an inf
    partial sum persists. Vectorized over everything but k; torch's CPU half
    arithmetic (computed in float32, rounded per op, so bit-identical to numpy's
    float16) is ~30x faster than numpy's float16 loops, which serve without torch.
    Returns float32 holding fp16 values.
    """
    xx = np.asarray(x, dtype=np.float32)
    yy = np.asarray(y, dtype=np.float32)
    squeeze = []
    if xx.ndim == 1:
        xx, squeeze = xx[None, :], [-2]
    if yy.ndim == 1:
        yy, squeeze = yy[:, None], [*squeeze, -1]
    k = xx.shape[-1]
    if yy.shape[-2] != k:
        raise ValueError(f"matmul of shapes {np.shape(x)} and {np.shape(y)}: inner dims differ")
    batch = np.broadcast_shapes(xx.shape[:-2], yy.shape[:-2])
    shape = (*batch, xx.shape[-2], yy.shape[-1])
    torch = _torch() if use_torch else None
    if torch is not None:
        tx = torch.from_numpy(np.ascontiguousarray(xx)).half()
        ty = torch.from_numpy(np.ascontiguousarray(yy)).half()
        acc_t = torch.zeros(shape, dtype=torch.float16)
        for step in range(k):
            acc_t.add_(tx[..., :, step : step + 1] * ty[..., step : step + 1, :])
        out: np.ndarray = acc_t.float().numpy()
    else:
        x16, y16 = xx.astype(F16), yy.astype(F16)
        acc = np.zeros(shape, dtype=F16)
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            for step in range(k):
                acc += x16[..., :, step : step + 1] * y16[..., step : step + 1, :]
        out = acc.astype(np.float32)
    return out.squeeze(tuple(squeeze)) if squeeze else out


def _torch() -> Any:
    """torch, when installed (a dependency, but the emulator stays usable without it)."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return None
    return torch


def _operands(*arrays: np.ndarray) -> list[np.ndarray]:
    """All operands in int64 when every one is an integer, else in float32."""
    if all(a.dtype.kind in "iub" for a in arrays):
        return [np.asarray(a, dtype=np.int64) for a in arrays]
    return [np.asarray(a, dtype=np.float32) for a in arrays]


@kernel("linear")
def linear(ctx: OpContext, x: np.ndarray, weight: np.ndarray, bias: Any = None) -> Any:
    """``x @ weight.T + bias``; the bias is added to the float32 accumulator before rounding.

    Under ``fp16-sequential`` (fp16 output): the sequential fp16 dot, then the bias as
    a separate rounded fp16 add, as Core AI lowers linear (batch_matmul + add).
    """
    if weight.ndim != 2:
        raise NotImplementedError(f"linear weight of rank {weight.ndim} (MIL requires rank 2)")
    if _sequential(ctx):
        dot = sequential_fp16_matmul(x, np.asarray(weight).T)
        if bias is None:
            return dot
        b16 = np.asarray(bias, dtype=np.float32).astype(F16).astype(np.float32)
        return (dot + b16).astype(F16).astype(np.float32)
    if bias is None:
        xx, w = _operands(x, weight)
        return _rows_matmul(xx, w.T)
    xx, w, b = _operands(x, weight, np.asarray(bias))
    return _rows_matmul(xx, w.T) + b


def _rows_matmul(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``x @ w`` for a 2-D ``w``, with ``x``'s leading dims flattened into rows: one BLAS
    call instead of numpy's loop over the stacked dims (each output is the same dot
    product either way)."""
    if x.ndim <= 2 or x.size == 0:
        return cast("np.ndarray", np.matmul(x, w))
    rows = np.matmul(x.reshape(-1, x.shape[-1]), w)
    return cast("np.ndarray", rows.reshape(*x.shape[:-1], w.shape[-1]))


@kernel("matmul")
def matmul(
    ctx: OpContext,
    x: np.ndarray,
    y: np.ndarray,
    transpose_x: Any = False,
    transpose_y: Any = False,
) -> Any:
    """numpy ``matmul`` semantics: 1-D promotion and broadcasting of batch dims."""
    xx, yy = _operands(x, y)
    if bool(transpose_x):
        if xx.ndim < 2:
            raise NotImplementedError("matmul with transpose_x=True on a rank-1 x (MIL rejects it)")
        xx = np.swapaxes(xx, -1, -2)
    if bool(transpose_y) and yy.ndim >= 2:  # no effect on a rank-1 y, per the MIL spec
        yy = np.swapaxes(yy, -1, -2)
    if xx.ndim == 1 and yy.ndim > 2:
        # The spec says numpy semantics ([K] @ [B, K, N] -> [B, N]), but coremltools
        # declares [1, N] for it: refuse rather than pick one.
        raise NotImplementedError(
            f"matmul of a rank-1 x with a rank-{yy.ndim} y (coremltools declares an "
            "output shape that contradicts the spec)"
        )
    if _sequential(ctx):
        return sequential_fp16_matmul(xx, yy)
    return np.matmul(xx, yy)


def parse_einsum(equation: str) -> tuple[list[int], list[int], list[int]]:
    """Index vectors as coremltools numbers them: letters by first appearance."""
    eq = "".join(equation.split())
    if eq.count("->") != 1:
        raise NotImplementedError(f"einsum equation {equation!r} without a single '->'")
    lhs, out = eq.split("->")
    terms = [*lhs.split(","), out]
    if len(terms) != 3:
        raise NotImplementedError(f"einsum equation {equation!r} does not have two inputs")
    ids: dict[str, int] = {}
    vecs = [[ids.setdefault(c, len(ids)) for c in term] for term in terms]
    return vecs[0], vecs[1], vecs[2]


_RANK4 = ([0, 1, 2, 3], [0, 3, 2, 4], [0, 1, 2, 4])  # "nchw,nwhu->nchu"
_RANK3 = ([0, 1, 2], [2, 1, 3], [0, 1, 3])  # "chw,whr->chr"


@kernel("einsum")
def einsum(ctx: OpContext, values: tuple[np.ndarray, ...], equation: str) -> Any:
    """The two equations MIL defines, as a batched float32 matmul over dims -3 and -1.

    Dims ``n`` and ``h`` broadcast when one side has size 1; any other equation
    is rejected, as in coremltools' op definition.
    """
    if len(values) != 2:
        raise NotImplementedError(f"einsum with {len(values)} inputs (MIL requires 2)")
    x, y = _operands(*values)
    vecs = parse_einsum(equation)
    perm: tuple[int, ...]
    if vecs == _RANK4 and x.ndim == y.ndim == 4:
        perm = (0, 2, 1, 3)  # [n,c,h,w] -> [n,h,c,w] and [n,w,h,u] -> [n,h,w,u]
    elif vecs == _RANK3 and x.ndim == y.ndim == 3:
        perm = (1, 0, 2)  # [c,h,w] -> [h,c,w] and [w,h,r] -> [h,w,r]
    else:
        raise NotImplementedError(
            f"einsum equation {equation!r} on ranks {x.ndim}, {y.ndim}; MIL supports only "
            "'nchw,nwhu->nchu' and 'chw,whr->chr' up to renaming"
        )
    product = sequential_fp16_matmul if _sequential(ctx) else np.matmul
    out = product(np.transpose(x, perm), np.transpose(y, perm))
    return np.transpose(out, perm)
