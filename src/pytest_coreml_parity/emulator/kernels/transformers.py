"""MIL ``scaled_dot_product_attention`` (iOS18).

The whole op runs in float32 and is rounded once at its output, as one fused
op: ``softmax(q @ k.T / sqrt(E) + mask) @ v``, the formula in coremltools' op
definition. A bool mask keeps the scores where it is True and puts -inf
elsewhere; a float mask is added. The softmax subtracts the row max, so large
scores do not overflow. A row whose scores are all -inf (fully masked) gives
nan, as the formula (and ``torch.softmax``) does; PyTorch's own
``scaled_dot_product_attention`` returns zeros there since torch 2.5.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from ..registry import OpContext, kernel
from ._common import f32


def softmax_last(scores: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, max-subtracted; all -inf rows give nan."""
    m = np.max(scores, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", over="ignore"):
        p = np.exp(scores - m)
        return cast("np.ndarray", p / np.sum(p, axis=-1, keepdims=True, dtype=np.float32))


@kernel("scaled_dot_product_attention")
def scaled_dot_product_attention(
    ctx: OpContext,
    query: np.ndarray,
    key: np.ndarray,
    value: np.ndarray,
    attn_mask: Any = None,
) -> Any:
    q, k, v = f32(query), f32(key), f32(value)
    if q.ndim < 3 or not q.ndim == k.ndim == v.ndim:
        raise NotImplementedError(
            f"query, key, value of ranks {q.ndim}, {k.ndim}, {v.ndim} (MIL requires one rank >= 3)"
        )
    scale = np.float32(1.0 / np.sqrt(q.shape[-1]))
    with np.errstate(over="ignore", invalid="ignore"):
        scores = np.matmul(q, np.swapaxes(k, -1, -2)) * scale
        if attn_mask is not None:
            mask = np.asarray(attn_mask)
            if mask.dtype == np.bool_:
                scores = np.where(mask, scores, np.float32(-np.inf))
            else:
                scores = scores + f32(mask)
    return np.matmul(softmax_last(scores), v)
