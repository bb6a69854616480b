"""Whole arrays from one hypothesis choice: bytes read through a sorted table of values.

Why: hypothesis spends 30-120 µs of bookkeeping on every value it draws, so an
(8, 4) input drawn element by element costs several times more than running
torch and the emulator on it. One ``bytes`` choice per array costs about as
much as one element.

Each element is two big-endian bytes. The low bit is the sign; the other 15
bits index a table of magnitudes laid out simplest first, as the segments are
given (zero, small integers, named boundaries such as 256, then ranges, each
sorted ascending); every segment owns a share of the slots, which is how often
it is drawn. Hypothesis shrinks a bytes choice toward zero one byte at a time,
so each element shrinks to the simplest segment that still fails and, within
it, the smallest magnitude, positive first: ``[0, 1, 0, 256]``, not
``[0.0031, 2.97, 1e-9, 256.0021]``. Values in ranges have three significant
digits for the same reason.

Arrays larger than :data:`MAX_DRAWN_ELEMENTS` repeat the drawn elements, which
keeps every draw well inside hypothesis' 8 KiB per-example budget.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
from hypothesis import strategies as st

#: Elements drawn per array (two bytes each); larger arrays repeat them.
MAX_DRAWN_ELEMENTS = 512
#: Slots in a magnitude table: 15 of an element's 16 bits (the 16th is the sign).
TABLE_SLOTS = 1 << 15


@dataclass(frozen=True)
class Segment:
    """Magnitudes drawn with a given weight: named ``points``, or a range ``lo..hi``."""

    weight: float
    points: tuple[float, ...] = ()
    lo: float = 0.0
    hi: float = 0.0

    def values(self, slots: int) -> npt.NDArray[np.float64]:
        """``slots`` magnitudes: the points repeated, or the range on a geometric grid."""
        if self.points:
            return np.resize(np.asarray(self.points, dtype=np.float64), slots)
        if self.lo == self.hi or slots == 1:
            return np.full(slots, self.lo)
        lo = self.lo if self.lo > 0 else math.nextafter(0.0, 1.0)
        grid = np.geomspace(lo, self.hi, slots)
        return np.clip(_round_significant(grid, 3), self.lo, self.hi)


def _round_significant(values: npt.NDArray[np.float64], digits: int) -> npt.NDArray[np.float64]:
    exponent = np.floor(np.log10(np.abs(values)))
    scale = 10.0 ** (digits - 1 - exponent)
    with np.errstate(over="ignore", invalid="ignore"):
        rounded = np.round(values * scale) / scale
    return np.where(np.isfinite(rounded) & (rounded > 0), rounded, values)


@lru_cache(maxsize=64)
def magnitude_table(segments: tuple[Segment, ...]) -> npt.NDArray[np.float32]:
    """The float32 table of :data:`TABLE_SLOTS` magnitudes: the segments in order, each
    sorted, each given its weight's share of the slots."""
    if not segments:
        raise ValueError("magnitude_table: no segments")
    weights = np.asarray([s.weight for s in segments], dtype=np.float64)
    if (weights <= 0).any():
        raise ValueError(f"magnitude_table: weights must be positive, got {weights.tolist()}")
    share = weights / weights.sum() * TABLE_SLOTS
    slots = np.maximum(np.floor(share).astype(np.int64), 1)
    # Largest remainders take the slots rounding left over (or give back any excess).
    order = np.argsort(-(share - np.floor(share)))
    i = 0
    while slots.sum() != TABLE_SLOTS:
        j = order[i % len(order)]
        step = 1 if slots.sum() < TABLE_SLOTS else -1
        if slots[j] + step >= 1:
            slots[j] += step
        i += 1
    parts = [np.sort(s.values(int(n))) for s, n in zip(segments, slots, strict=True)]
    table = np.concatenate(parts).astype(np.float32)
    table.setflags(write=False)
    return table


def decode_floats(
    raw: bytes, table: npt.NDArray[np.float32], shape: tuple[int, ...], allow_negative: bool
) -> npt.NDArray[np.float32]:
    """The float32 array of ``shape`` that ``raw`` (two bytes an element) encodes."""
    codes = np.frombuffer(raw, dtype=">u2")
    values = table[codes >> 1]
    if allow_negative:
        values = np.where(codes & 1, -values, values)
    return _fill(values.astype(np.float32, copy=False), shape)


def _fill(values: npt.NDArray[Any], shape: tuple[int, ...]) -> npt.NDArray[Any]:
    size = math.prod(shape)
    if values.size != size:
        values = np.resize(values, size)
    return np.ascontiguousarray(values.reshape(shape))


def _drawn(shape: tuple[int, ...]) -> int:
    return min(math.prod(shape), MAX_DRAWN_ELEMENTS)


def coded_floats(
    shape: Sequence[int], segments: Sequence[Segment], *, allow_negative: bool = True
) -> st.SearchStrategy[npt.NDArray[np.float32]]:
    """float32 arrays of ``shape`` whose magnitudes come from ``segments``, in one draw."""
    dims = tuple(int(d) for d in shape)
    table = magnitude_table(tuple(segments))
    return _decoded(2 * _drawn(dims), lambda raw: decode_floats(raw, table, dims, allow_negative))


@st.composite
def _decoded(draw: st.DrawFn, size: int, decode: Callable[[bytes], Any]) -> Any:
    """``decode`` of ``size`` drawn bytes. A composite, not ``.map``: hypothesis would print
    a falsifying array as the call ``decode(b'...')`` when that is shorter than its values."""
    return decode(draw(st.binary(min_size=size, max_size=size)))


@st.composite
def quiet_map(
    draw: st.DrawFn, strategy: st.SearchStrategy[Any], convert: Callable[[Any], Any]
) -> Any:
    """``strategy.map(convert)`` without hypothesis recording the call, which would print a
    falsifying tensor as ``convert(array(...))`` whenever that is shorter than the tensor."""
    return convert(draw(strategy))


def _code_width(span: int) -> int:
    """Bytes an integer code needs so that every one of ``span`` values is reachable."""
    for width in (2, 4, 8):
        if span <= 1 << (8 * width - 1):
            return width
    raise ValueError(f"coded_integers: a range of {span} values is too wide")


def decode_integers(
    raw: bytes, low: int, high: int, shape: tuple[int, ...]
) -> npt.NDArray[np.int64]:
    """The int64 array of ``shape`` in ``[low, high]`` that ``raw`` encodes, shrinking toward 0.

    Codes scale onto the range (``code * span >> bits``), so a smaller code is a value
    nearer to 0; with ``low < 0 < high`` the low bit picks the side, positive first.
    """
    width = _code_width(high - low + 1)
    codes = np.frombuffer(raw, dtype=f">u{width}").astype(np.uint64)
    bits = 8 * width - 1
    magnitude, negative = codes >> np.uint64(1), (codes & np.uint64(1)).astype(bool)

    def scaled(span: int) -> npt.NDArray[np.int64]:
        # (code * span) >> bits without overflowing 64 bits: Python ints for wide codes.
        if bits + span.bit_length() <= 63:
            return ((magnitude.astype(np.int64) * span) >> bits).astype(np.int64)
        return np.asarray([(int(m) * span) >> bits for m in magnitude], dtype=np.int64)

    if low >= 0:
        values = low + scaled(high - low + 1)
    elif high <= 0:
        values = high - scaled(high - low + 1)
    else:
        values = np.where(negative, -scaled(-low + 1), scaled(high + 1))
    return _fill(np.clip(values, low, high), shape)


def coded_integers(
    shape: Sequence[int], low: int, high: int
) -> st.SearchStrategy[npt.NDArray[np.int64]]:
    """int64 arrays of ``shape`` uniform in ``[low, high]`` (inclusive), in one draw."""
    if low > high:
        raise ValueError(f"coded_integers: need low <= high, got {low}, {high}")
    dims = tuple(int(d) for d in shape)
    n = _code_width(high - low + 1) * _drawn(dims)
    return _decoded(n, lambda raw: decode_integers(raw, low, high, dims))


__all__ = [
    "MAX_DRAWN_ELEMENTS",
    "TABLE_SLOTS",
    "Segment",
    "coded_floats",
    "coded_integers",
    "decode_floats",
    "decode_integers",
    "magnitude_table",
    "quiet_map",
]
