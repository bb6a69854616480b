"""Structured strategies: the input *patterns* that break float16 conversions in real models.

Magnitudes alone rarely find the failures users report. Structure does:

* :func:`attention_masks`: padding and causal masks, left or right padded, with fully
  masked rows, in boolean, 0/1 or additive form with the fills users write
  (``torch.finfo(torch.float32).min``, ``-1e9``, ``-inf``, ``finfo(float16).min``,
  ``-3e4``).
  A fully masked row through an additive mask gives softmax of all ``-inf`` in
  float16: nan (coremltools PR #2669).
* :func:`zero_rows`: rows that are all zeros, e.g. into RMSNorm (coremltools #2821).
* :func:`dominant_logits`: one logit at least 11 above the rest of its row, for
  log_softmax (coremltools #2728) and logcumsumexp (past 11.09, exp overflows
  float16; coremltools #2729).
* :func:`dynamic_range_rows`: a huge and a tiny value in the same row.
* :func:`near_zero_tensors`: near-zero denominators, whose squares and products
  flush to zero in float16.

Every strategy returns float32 torch tensors (bool for boolean masks), like
:func:`~.extreme.extreme_tensors`, or numpy arrays with ``as_numpy=True``.
Draws are made so that hypothesis shrinks toward readable counterexamples: no
padding but on one sequence, zeros elsewhere, the smallest gap or value that
still triggers, the first row and the first position.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .codebook import Segment, coded_floats, quiet_map
from .extreme import (
    FP16_MAX,
    FP16_MIN_NORMAL,
    FP16_MIN_SUBNORMAL,
    _f32_inward,
    _floats,
    fp16_arrays,
)
from .masks import FP16_SAFE_FILL

#: ``torch.finfo(torch.float32).min``: the most common additive-mask fill; -inf in float16.
FLOAT32_MIN = float(np.finfo(np.float32).min)
#: ``torch.finfo(torch.float16).min``.
FLOAT16_MIN = -FP16_MAX
#: The additive-mask fills users write (FP16_SAFE_FILL: -3e4, finite in fp16), most common first (hypothesis shrinks to the first);
#: every one is a mask fill to the headroom gate and the diagnosis (``masks.is_mask_fill``).
MASK_FILLS: tuple[float, ...] = (FLOAT32_MIN, -1e9, -math.inf, FLOAT16_MIN, FP16_SAFE_FILL)
#: exp(x) overflows float16 once x > log(65504) = 11.09; log_softmax breaks from a gap of 11.
DOMINANT_GAP = 11.0

MaskForm = Literal["bool", "binary", "additive"]
Padding = Literal["none", "right", "left", "any"]


def _shape(shape: int | Sequence[int]) -> tuple[int, ...]:
    return (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)


def _finish(array: np.ndarray, as_numpy: bool) -> Any:
    if as_numpy:
        return array
    import torch

    return torch.from_numpy(np.ascontiguousarray(array))


def _rows(shape: tuple[int, ...], what: str, min_width: int = 1) -> tuple[int, int]:
    """(number of rows, row width) of ``shape``, rows along the last axis."""
    if not shape or shape[-1] < min_width or any(s < 1 for s in shape):
        raise ValueError(
            f"{what}: need a shape whose last axis has at least {min_width}, got {shape}"
        )
    return int(np.prod(shape[:-1], dtype=np.int64)), shape[-1]


# ---------------------------------------------------------------------- masks


def _keep(shape: tuple[int, ...], pads: Sequence[int], side: str, causal: bool) -> np.ndarray:
    """Boolean keep-mask (True = attend) from per-sequence padding counts."""
    keys = shape[-1]
    queries = shape[-2] if len(shape) >= 2 else 1
    per_query = causal or len(shape) >= 3
    seq_shape = shape[:-2] if per_query else shape[:-1]
    j = np.arange(keys)
    pad = np.asarray(pads, dtype=np.int64).reshape((*seq_shape, 1))
    key_keep: np.ndarray = j >= pad if side == "left" else j < keys - pad  # (*seq, keys)
    if not per_query:
        return key_keep
    keep = np.broadcast_to(key_keep[..., None, :], (*seq_shape, queries, keys))
    if causal:
        offset = keys - queries  # queries are aligned with the last keys (as with a KV cache)
        i = np.arange(queries)[:, None]
        keep = keep & (j[None, :] <= i + offset)
    return np.array(keep)


def _fully_masked(keep: np.ndarray) -> np.ndarray:
    return np.asarray(~keep.any(axis=-1))


def attention_masks(
    shape: int | Sequence[int],
    *,
    padding: Padding = "any",
    causal: bool = False,
    fully_masked: bool | None = None,
    form: MaskForm = "bool",
    fill: float | None = None,
    as_numpy: bool = False,
) -> st.SearchStrategy[Any]:
    """Attention masks of ``shape``: padding and/or causal, boolean or additive.

    Keys are on the last axis. A 2-D non-causal mask ``(batch, keys)`` is one padding
    mask per row. Causal masks and masks of 3 or more dimensions have queries on the
    second-last axis (``(batch, heads, queries, keys)``); their padding is drawn once
    per sequence (each index of the axes before the queries) and shared by its queries.
    Causal queries are aligned with the last keys (``key <= query + keys - queries``).

    ``padding``: ``"right"`` masks the last keys, ``"left"`` the first (a left-padded
    batch, as LLM generation uses), ``"any"`` draws the side (shrinking to right),
    ``"none"`` no padding. ``fully_masked``: ``True`` guarantees at least one query row
    with every key masked, ``False`` forbids one, ``None`` allows both. A left-padded
    causal mask has fully masked rows as soon as one key is padded.

    ``form``: ``"bool"`` (True = attend, as ``scaled_dot_product_attention`` takes),
    ``"binary"`` (float32 1 = attend, 0 = masked, as Hugging Face's ``attention_mask``),
    ``"additive"`` (float32 0 = attend, ``fill`` = masked, added to the scores).
    ``fill`` defaults to drawing from :data:`MASK_FILLS`, shrinking to
    ``torch.finfo(torch.float32).min``.

    Shrinks toward no padding except on the first sequence, with the least padding
    that keeps the failure.
    """
    dims = _shape(shape)
    if not dims or any(s < 1 for s in dims):
        raise ValueError(f"attention_masks: need a non-empty shape of positive sizes, got {dims}")
    if causal and len(dims) < 2:
        raise ValueError(f"attention_masks: a causal mask needs (..., queries, keys), got {dims}")
    if padding not in ("none", "right", "left", "any"):
        raise ValueError(
            f"attention_masks: padding must be none, right, left or any, got {padding!r}"
        )
    if form not in ("bool", "binary", "additive"):
        raise ValueError(f"attention_masks: form must be bool, binary or additive, got {form!r}")
    if fill is not None and form != "additive":
        raise ValueError("attention_masks: fill applies to form='additive' only")
    keys = dims[-1]
    queries = dims[-2] if len(dims) >= 2 else 1
    per_query = causal or len(dims) >= 3
    n_seq = int(np.prod(dims[:-2] if per_query else dims[:-1], dtype=np.int64))
    offset = keys - queries if causal else 0
    if fully_masked is True and padding == "none" and not (causal and offset < 0):
        raise ValueError(
            "attention_masks: fully_masked=True needs padding (a causal mask alone has none)"
        )
    if fully_masked is False and causal and offset < 0:
        raise ValueError(
            "attention_masks: a causal mask with more queries than keys has fully masked rows"
        )
    sides = {"none": ["right"], "right": ["right"], "left": ["left"], "any": ["right", "left"]}[
        padding
    ]

    def max_pad(side: str) -> int:
        if padding == "none":
            return 0
        if fully_masked is False:
            # Left padding past the causal offset masks every key of the first query.
            return min(keys - 1, offset) if causal and side == "left" else keys - 1
        return keys

    @st.composite
    def draw_mask(draw: st.DrawFn) -> Any:
        # With fully_masked=True the forced sequence is drawn first, so every draw has the
        # same layout and shrinking ends on the first sequence, other pads at zero.
        forced = (
            draw(st.integers(0, n_seq - 1), label="fully masked sequence") if fully_masked else None
        )
        side = draw(st.sampled_from(sides), label="padding side")
        pads = draw(
            st.lists(st.integers(0, max_pad(side)), min_size=n_seq, max_size=n_seq),
            label="padded keys per sequence",
        )
        keep = _keep(dims, pads, side, causal)
        if forced is not None and not _fully_masked(keep).any():
            # The least padding that masks a whole row.
            pads[forced] = min(keys, offset + 1) if causal and side == "left" else keys
            keep = _keep(dims, pads, side, causal)
        if form == "bool":
            return _finish(keep, as_numpy)
        if form == "binary":
            return _finish(keep.astype(np.float32), as_numpy)
        value = fill if fill is not None else draw(st.sampled_from(MASK_FILLS), label="mask fill")
        additive = np.where(keep, np.float32(0.0), np.float32(value)).astype(np.float32)
        return _finish(additive, as_numpy)

    return draw_mask()


def padding_masks(
    shape: int | Sequence[int],
    *,
    side: Padding = "any",
    fully_masked: bool | None = None,
    form: MaskForm = "bool",
    fill: float | None = None,
    as_numpy: bool = False,
) -> st.SearchStrategy[Any]:
    """Padding masks ``(batch, keys)``: :func:`attention_masks` without causality."""
    return attention_masks(
        shape, padding=side, fully_masked=fully_masked, form=form, fill=fill, as_numpy=as_numpy
    )


def causal_masks(
    shape: int | Sequence[int],
    *,
    padding: Padding = "left",
    fully_masked: bool | None = None,
    form: MaskForm = "bool",
    fill: float | None = None,
    as_numpy: bool = False,
) -> st.SearchStrategy[Any]:
    """Causal masks ``(..., queries, keys)`` combined with padding (left by default, as in generation)."""
    return attention_masks(
        shape,
        padding=padding,
        causal=True,
        fully_masked=fully_masked,
        form=form,
        fill=fill,
        as_numpy=as_numpy,
    )


# ---------------------------------------------------------------------- values


ArraysOfShape = Callable[[tuple[int, ...]], st.SearchStrategy[np.ndarray]]


def _values(
    shape: tuple[int, ...], elements: st.SearchStrategy[float] | None, default: ArraysOfShape
) -> st.SearchStrategy[np.ndarray]:
    """float32 arrays of the user's ``elements``, one draw each, else the ``default``
    whole-array strategy (:mod:`.codebook`: one draw per array, much faster)."""
    if elements is not None:
        return hnp.arrays(np.float32, shape, elements=elements)
    return default(shape)


def _up_to(limit: float) -> ArraysOfShape:
    """Whole arrays in [-limit, limit]: zero, the integers up to ``limit``, then a range."""
    integers = tuple(float(v) for v in range(1, int(limit) + 1))
    segments = (
        Segment(3.0, points=(0.0,)),
        *((Segment(2.0, points=integers),) if integers else ()),
        Segment(4.0, lo=1e-3, hi=limit),
    )
    return lambda shape: coded_floats(shape, segments)


def zero_rows(
    shape: int | Sequence[int],
    *,
    min_rows: int = 1,
    elements: st.SearchStrategy[float] | None = None,
    as_numpy: bool = False,
) -> st.SearchStrategy[Any]:
    """float32 tensors with at least ``min_rows`` rows (along the last axis) all zero.

    The other rows draw from ``elements`` (default: finite float16 values, drawn whole
    as :func:`~.extreme.fp16_arrays`). An all-zero row makes ``x / sqrt(mean(x**2) + eps)``
    0/0 once ``eps`` flushes to zero or is dropped in float16 (RMSNorm,
    coremltools #2821), and ``x / x.norm()`` 0/0 everywhere. Shrinks toward the
    first row zeroed and zeros elsewhere.
    """
    dims = _shape(shape)
    n_rows, width = _rows(dims, "zero_rows")
    if not 1 <= min_rows <= n_rows:
        raise ValueError(
            f"zero_rows: min_rows must be in [1, {n_rows}] for shape {dims}, got {min_rows}"
        )
    base = _values((n_rows, width), elements, fp16_arrays)

    @st.composite
    def draw_rows(draw: st.DrawFn) -> Any:
        array = draw(base, label="values")
        zeroed = draw(
            st.lists(st.integers(0, n_rows - 1), min_size=min_rows, max_size=n_rows, unique=True),
            label="zero rows",
        )
        array[zeroed] = 0.0
        return _finish(array.reshape(dims), as_numpy)

    return draw_rows()


def dominant_logits(
    shape: int | Sequence[int],
    *,
    min_gap: float = DOMINANT_GAP,
    max_gap: float = 30.0,
    others: st.SearchStrategy[float] | None = None,
    as_numpy: bool = False,
) -> st.SearchStrategy[Any]:
    """float32 logits where each row (last axis) has one value at least ``min_gap`` above the rest.

    The rest draw from ``others`` (default: zero, the integers to 8 and values in
    [1e-3, 8], signed, drawn whole; shrinking to 0). A
    one-hot-like row of this kind breaks float16 log_softmax from a gap of 11
    (coremltools #2728); with the rest near 0 the dominant value passes 11.09, where
    ``exp`` overflows float16 (logcumsumexp, coremltools #2729; hand-written softmax).
    Shrinks toward ``[11, 0, 0, ...]``: the dominant logit first, the smallest gap.
    """
    dims = _shape(shape)
    n_rows, width = _rows(dims, "dominant_logits")
    if not 0.0 < min_gap <= max_gap:
        raise ValueError(
            f"dominant_logits: need 0 < min_gap <= max_gap, got {min_gap!r}, {max_gap!r}"
        )
    rest = _values((n_rows, width), others, _up_to(8.0))

    @st.composite
    def draw_logits(draw: st.DrawFn) -> Any:
        array = draw(rest, label="other logits")
        where = draw(
            st.lists(st.integers(0, width - 1), min_size=n_rows, max_size=n_rows), label="dominant"
        )
        gaps = draw(
            st.lists(st.floats(min_gap, max_gap), min_size=n_rows, max_size=n_rows), label="gaps"
        )
        for r, (k, gap) in enumerate(zip(where, gaps, strict=True)):
            row = np.delete(array[r], k)
            top = float(row.max()) if row.size else 0.0
            value = np.float32(top + gap)
            while float(value) - top < min_gap:  # float32 rounding must not eat the gap
                value = np.nextafter(value, np.float32(np.inf))
            array[r, k] = value
        return _finish(array.reshape(dims), as_numpy)

    return draw_logits()


def dynamic_range_rows(
    shape: int | Sequence[int],
    *,
    large: tuple[float, float] = (256.0, FP16_MAX),
    small: tuple[float, float] = (FP16_MIN_SUBNORMAL, 1e-3),
    others: st.SearchStrategy[float] | None = None,
    as_numpy: bool = False,
) -> st.SearchStrategy[Any]:
    """float32 tensors whose every row (last axis) holds a huge and a tiny magnitude.

    One value from ``large`` (default 256..65504, finite in float16, but its square
    overflows) and one from ``small`` (default float16 subnormals up to 1e-3, whose
    products flush to zero) at different positions, signs drawn; the rest from
    ``others`` (default: 0, ±1 and values in [1e-3, 1], drawn whole; shrinking to 0).
    Breaks float16 norms,
    variance and scale-then-divide code where float32 copes. Shrinks toward
    ``[256, small, 0, ...]`` in the first two positions.
    """
    dims = _shape(shape)
    n_rows, width = _rows(dims, "dynamic_range_rows", min_width=2)
    for name, (lo, hi) in (("large", large), ("small", small)):
        if not 0.0 < lo <= hi:
            raise ValueError(
                f"dynamic_range_rows: {name} must be (lo, hi) with 0 < lo <= hi, got {(lo, hi)}"
            )
    rest = _values((n_rows, width), others, _up_to(1.0))

    def magnitude(lo: float, hi: float) -> st.SearchStrategy[float]:
        signed = st.tuples(st.booleans(), _floats(lo, hi) if lo < hi else st.just(lo))
        return signed.map(lambda t: -t[1] if t[0] else t[1])

    @st.composite
    def draw_rows(draw: st.DrawFn) -> Any:
        array = draw(rest, label="other values")
        for r in range(n_rows):
            i = draw(st.integers(0, width - 1), label="large at")
            j = draw(st.integers(0, width - 2), label="small at")
            j = j if j < i else j + 1
            array[r, i] = draw(magnitude(*large), label="large")
            array[r, j] = draw(magnitude(*small), label="small")
        return _finish(array.reshape(dims), as_numpy)

    return draw_rows()


#: Readable near-zero values, each at a float16 edge: 1e-4 squares below float16's
#: smallest subnormal; the smallest normal and subnormal float16; 1e-8 flushes to zero.
NEAR_ZERO_VALUES = (1e-4, FP16_MIN_NORMAL, FP16_MIN_SUBNORMAL, 1e-8)


def near_zero_tensors(
    shape: int | Sequence[int],
    *,
    max_magnitude: float = 1e-3,
    allow_zero: bool = False,
    allow_negative: bool = True,
    as_numpy: bool = False,
) -> st.SearchStrategy[Any]:
    """float32 tensors of near-zero values: denominators that vanish in float16.

    Magnitudes from 1e-10 up to ``max_magnitude``: their squares and products are
    normal float32 numbers but subnormal or zero in float16, so ``a / (b * b)``,
    ``x / x.norm()`` or a variance turn into a division by zero at float16 while
    PyTorch stays finite. Named values first (1e-4, 6.1e-5, 6e-8, 1e-8), then ranges;
    exact zeros only with ``allow_zero``.
    """
    if not 1e-10 < max_magnitude <= 1.0:
        raise ValueError(
            f"near_zero_tensors: max_magnitude must be in (1e-10, 1], got {max_magnitude!r}"
        )
    segments: list[Segment] = []
    if allow_zero:
        segments.append(Segment(3.0, points=(0.0,)))
    named = tuple(v for v in NEAR_ZERO_VALUES if v <= max_magnitude)
    if named:
        segments.append(Segment(2.0, points=named))
    lo, hi = _f32_inward(1e-10, max_magnitude)
    segments.append(Segment(4.0, lo=lo, hi=hi))
    arrays = coded_floats(_shape(shape), segments, allow_negative=allow_negative)
    return quiet_map(arrays, lambda a: _finish(a, as_numpy))


__all__ = [
    "DOMINANT_GAP",
    "FLOAT16_MIN",
    "FLOAT32_MIN",
    "MASK_FILLS",
    "NEAR_ZERO_VALUES",
    "MaskForm",
    "Padding",
    "attention_masks",
    "causal_masks",
    "dominant_logits",
    "dynamic_range_rows",
    "near_zero_tensors",
    "padding_masks",
    "zero_rows",
]
