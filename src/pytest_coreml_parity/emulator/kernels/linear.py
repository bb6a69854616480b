"""MIL linear-algebra ops: ``linear``, ``matmul`` (iOS15, iOS17) and ``einsum`` (iOS15).

Float products accumulate in float32 (numpy's float32 matmul, i.e. BLAS sgemm),
and the runner rounds the result once to the declared dtype: an fp16 matmul
whose exact result exceeds 65504 is inf, as on device. Integer operands
accumulate in int64 and the runner narrows to the declared int32. The iOS17
variants allow operands of different dtypes (e.g. fp16 weights with an fp32
input); float values are all held in float32, so they compute the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..registry import OpContext, kernel


def _operands(*arrays: np.ndarray) -> list[np.ndarray]:
    """All operands in int64 when every one is an integer, else in float32."""
    if all(a.dtype.kind in "iub" for a in arrays):
        return [np.asarray(a, dtype=np.int64) for a in arrays]
    return [np.asarray(a, dtype=np.float32) for a in arrays]


@kernel("linear")
def linear(ctx: OpContext, x: np.ndarray, weight: np.ndarray, bias: Any = None) -> Any:
    """``x @ weight.T + bias``; the bias is added to the float32 accumulator before rounding."""
    if weight.ndim != 2:
        raise NotImplementedError(f"linear weight of rank {weight.ndim} (MIL requires rank 2)")
    if bias is None:
        xx, w = _operands(x, weight)
        return np.matmul(xx, w.T)
    xx, w, b = _operands(x, weight, np.asarray(bias))
    return np.matmul(xx, w.T) + b


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
    out = np.matmul(np.transpose(x, perm), np.transpose(y, perm))
    return np.transpose(out, perm)
