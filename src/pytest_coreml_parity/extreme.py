"""Value-level strategies: floats and tensors concentrated where float16 conversions break.

float16's largest finite value is 65504, so values past it overflow, and
values of 256 or more overflow once squared or multiplied together; below
6.1e-5 float16 goes subnormal and below 6e-8 it flushes to zero, which turns
small denominators into divisions by zero. :func:`extreme_floats` mixes all
of these with signs, and :func:`extreme_tensors` builds float32 tensors from
them, so one tensor can span a huge dynamic range.

The ``one_of`` branches are ordered simplest first (zero, small integers,
the named boundaries 256 and 65504, then ranges), and hypothesis shrinks
toward earlier branches, so counterexamples come out readable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from hypothesis import Phase, event, note, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from ._values import to_numpy
from .codebook import Segment, coded_floats, quiet_map

FP16_MAX = 65504.0
FP16_MIN_NORMAL = 6.103515625e-05
FP16_MIN_SUBNORMAL = 5.960464477539063e-08
FLOAT32_MAX = float(np.finfo(np.float32).max)
FLOAT32_TINY = float(np.finfo(np.float32).tiny)
OVERFLOW_BAND = (256.0, FP16_MAX)  # squares and products of these overflow float16

#: The realistic fp16 default leaves out nonzero magnitudes below this (1/64): their
#: squares and products go subnormal or flush to zero in float16 (opt in with
#: ``allow_underflow=True``), which would otherwise be the simplest failure of any division.
REALISTIC_MIN_MAGNITUDE = 2.0**-6

#: Label of inputs past float16's max: hypothesis ``event`` and the start of the ``note``.
INPUT_OVERFLOW = "input overflow"

#: Named values tried before ranges: readable, and each at an fp16 edge.
BOUNDARY_VALUES = (256.0, 300.0, 1000.0, 65504.0, 65520.0, 1e5, 1e6, 6.1035156e-05, 6e-08)


def _f32_inward(lo: float, hi: float) -> tuple[float, float]:
    """Round a range's ends inward to float32 values (hypothesis requires exact bounds)."""
    lo32, hi32 = np.float32(lo), np.float32(hi)
    if float(lo32) < lo:
        lo32 = np.nextafter(lo32, np.float32(np.inf))
    if float(hi32) > hi:
        hi32 = np.nextafter(hi32, np.float32(-np.inf))
    return float(lo32), float(hi32)


def _floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    lo, hi = _f32_inward(lo, hi)
    return st.floats(
        lo, hi, width=32, allow_nan=False, allow_infinity=False, allow_subnormal=lo < FLOAT32_TINY
    )


def extreme_floats(
    *,
    min_magnitude: float = 0.0,
    max_magnitude: float = 1e6,
    allow_zero: bool = True,
    allow_negative: bool = True,
    allow_subnormal: bool = True,
) -> st.SearchStrategy[float]:
    """float32-representable floats mixing fp16 danger zones; shrinks toward 0, 1, 256, 65504.

    ``max_magnitude`` may go up to float32's max (3.4e38); values are never nan or inf.
    ``min_magnitude`` drops everything smaller in magnitude (and zero, if it is > 0).
    """
    return _signed_magnitudes(
        min_magnitude,
        max_magnitude,
        allow_zero,
        allow_negative,
        allow_subnormal,
        BOUNDARY_VALUES,
        True,
    )


#: How often each kind of magnitude is drawn in an array (a share of the codebook's slots).
_WEIGHTS = {
    "zero": 3.0, "small": 2.0, "named": 2.0, "ordinary": 3.0, "band": 3.0, "past max": 1.0,
    "huge": 1.0, "near zero": 2.0, "fp16 subnormal": 1.0, "tiny": 0.5, "float32 subnormal": 0.5,
}  # fmt: skip


def _magnitude_segments(
    min_magnitude: float,
    max_magnitude: float,
    allow_zero: bool,
    allow_subnormal: bool,
    boundary_values: Sequence[float],
    near_fp16_max: bool,
) -> tuple[Segment, ...]:
    """The magnitudes to draw, simplest first: zero, small integers, named values, ranges.

    The one source for both the scalar strategies (a ``one_of`` in this order) and the
    array strategies (a :mod:`.codebook` table, weighted by ``_WEIGHTS``).
    """
    if not 0.0 <= min_magnitude <= max_magnitude <= FLOAT32_MAX:
        raise ValueError(
            f"need 0 <= min_magnitude <= max_magnitude <= {FLOAT32_MAX:g}, "
            f"got {min_magnitude!r}, {max_magnitude!r}"
        )

    def fits(lo: float, hi: float) -> tuple[float, float] | None:
        lo, hi = max(lo, min_magnitude), min(hi, max_magnitude)
        return (lo, hi) if lo <= hi else None

    segments: list[Segment] = []
    if allow_zero and min_magnitude == 0.0:
        segments.append(Segment(_WEIGHTS["zero"], points=(0.0,)))
    small = tuple(float(v) for v in range(1, 9) if min_magnitude <= v <= max_magnitude)
    if small:
        segments.append(Segment(_WEIGHTS["small"], points=small))
    named = tuple(
        v
        for v in boundary_values
        if min_magnitude <= v <= max_magnitude and (allow_subnormal or v >= FP16_MIN_NORMAL)
    )
    if named:
        segments.append(Segment(_WEIGHTS["named"], points=named))
    ranges = [
        ("ordinary", 1.0, 256.0),
        ("band", *OVERFLOW_BAND),  # products and squares overflow fp16
        ("past max", 6e4 if near_fp16_max else FP16_MAX, 1e6),  # at and past fp16 max
        ("huge", 1e6, max_magnitude),  # toward float32 max, when allowed
        ("near zero", 1e-3, 1.0),  # near-zero denominators
        ("fp16 subnormal", FP16_MIN_SUBNORMAL, FP16_MIN_NORMAL),
        ("tiny", FLOAT32_TINY, 1e-30),  # tiny float32, flushed to zero in fp16
    ]
    if allow_subnormal:
        ranges.append(("float32 subnormal", 1e-45, FLOAT32_TINY))
    for kind, lo, hi in ranges:
        if not allow_subnormal and lo < FP16_MIN_NORMAL:
            continue
        bounds = fits(lo, hi)
        if bounds is not None and bounds[0] < bounds[1]:
            lo32, hi32 = _f32_inward(*bounds)
            if lo32 < hi32:
                segments.append(Segment(_WEIGHTS[kind], lo=lo32, hi=hi32))
    if not segments:
        raise ValueError(f"no values between {min_magnitude!r} and {max_magnitude!r}")
    return tuple(segments)


def _scalar(segments: Sequence[Segment], allow_negative: bool) -> st.SearchStrategy[float]:
    """One value at a time: a ``one_of`` over the segments, simplest first."""
    branches: list[st.SearchStrategy[float]] = []
    for segment in segments:
        if len(segment.points) == 1:
            branches.append(st.just(segment.points[0]))
        elif segment.points:
            branches.append(st.sampled_from(segment.points))
        else:
            branches.append(_floats(segment.lo, segment.hi))
    magnitude = st.one_of(*branches)
    if not allow_negative:
        return magnitude
    # (False, x) shrinks first, so positive values are preferred.
    return st.tuples(st.booleans(), magnitude).map(lambda t: -t[1] if t[0] else t[1])


def _signed_magnitudes(
    min_magnitude: float,
    max_magnitude: float,
    allow_zero: bool,
    allow_negative: bool,
    allow_subnormal: bool,
    boundary_values: Sequence[float],
    near_fp16_max: bool,
) -> st.SearchStrategy[float]:
    segments = _magnitude_segments(
        min_magnitude, max_magnitude, allow_zero, allow_subnormal, boundary_values, near_fp16_max
    )
    return _scalar(segments, allow_negative)


def _shape(shape: int | Sequence[int]) -> tuple[int, ...]:
    return (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)


def extreme_arrays(
    shape: int | Sequence[int],
    *,
    min_magnitude: float = 0.0,
    max_magnitude: float = 1e6,
    allow_zero: bool = True,
    allow_negative: bool = True,
    allow_subnormal: bool = True,
) -> st.SearchStrategy[np.ndarray]:
    """float32 numpy arrays of :func:`extreme_floats`' values (same keywords), drawn whole.

    One hypothesis choice per array (:mod:`.codebook`), so fuzzing stays fast; each
    element still shrinks to the smallest magnitude that fails, positive first.
    """
    segments = _magnitude_segments(
        min_magnitude, max_magnitude, allow_zero, allow_subnormal, BOUNDARY_VALUES, True
    )
    return coded_floats(_shape(shape), segments, allow_negative=allow_negative)


def label_input_overflow(values: Any, name: str | None = None) -> None:
    """Label a draw holding finite values past 65504: ``event("input overflow")`` and a ``note``.

    A float16 input stores such values as inf, so the failure is in the input, not
    in the model. Outside a hypothesis test this does nothing.
    """
    array = to_numpy(values)
    if array.dtype.kind != "f":
        return
    count = int((np.isfinite(array) & (np.abs(array) > FP16_MAX)).sum())
    if not count:
        return
    where = f"input {name!r}" if name is not None else "input"
    try:
        event(INPUT_OVERFLOW)
        note(
            f"{INPUT_OVERFLOW}: {where} has {count} of {array.size} values past float16's max "
            f"{FP16_MAX:g}; a float16 input stores them as inf"
        )
    except InvalidArgument:  # not inside a hypothesis test
        pass


def _labelled_tensor(values: np.ndarray) -> Any:
    """The float32 tensor of ``values``, labelled when they overflow float16."""
    import torch

    label_input_overflow(values)
    return torch.from_numpy(values)


def extreme_tensors(
    shape: int | Sequence[int],
    *,
    min_magnitude: float = 0.0,
    max_magnitude: float = 1e6,
    allow_zero: bool = True,
    allow_negative: bool = True,
    allow_subnormal: bool = True,
) -> st.SearchStrategy[Any]:
    """float32 torch tensors of ``shape`` concentrated where float16 breaks.

    Mixes values near and past 65504, values of 256 or more (their squares and
    products overflow), fp16 subnormals and tiny float32 values, zeros and
    near-zero denominators, with mixed signs, so a single tensor can span a
    huge dynamic range. Shrinks toward zeros, small integers, 256 and 65504.
    A draw with values past 65504 is labelled "input overflow" (``event`` and
    ``note``): a float16-input model stores them as inf. For float16 inputs
    pass ``max_magnitude=FP16_MAX``, or use :func:`fp16_tensors` or ``model_inputs``.
    """
    arrays = extreme_arrays(
        shape,
        min_magnitude=min_magnitude,
        max_magnitude=max_magnitude,
        allow_zero=allow_zero,
        allow_negative=allow_negative,
        allow_subnormal=allow_subnormal,
    )
    return quiet_map(arrays, _labelled_tensor)


def _fp16_segments(
    allow_input_overflow: bool, allow_underflow: bool, allow_zero: bool
) -> tuple[Segment, ...]:
    """fp16_floats' magnitudes: finite in float16 unless ``allow_input_overflow``."""
    hi = 1e6 if allow_input_overflow else FP16_MAX
    # No named 65504 and no range hugging it: values at the boundary are legal but make
    # shrinking stop there instead of at the smallest value that overflows inside the model.
    named = [v for v in BOUNDARY_VALUES if v != FP16_MAX]
    nonzero = _magnitude_segments(
        0.0 if allow_underflow else REALISTIC_MIN_MAGNITUDE,
        hi,
        False,
        allow_underflow,
        named,
        False,
    )
    zero = (Segment(_WEIGHTS["zero"], points=(0.0,)),) if allow_zero else ()
    return zero + nonzero


def fp16_floats(
    *,
    allow_input_overflow: bool = False,
    allow_underflow: bool = False,
    allow_negative: bool = True,
) -> st.SearchStrategy[float]:
    """Floats for a float16 input: finite in float16 (|x| <= 65504) and realistic by default.

    Zero, small integers, 256/300/1000, ordinary values and the 256-65504 band whose
    squares and products overflow *inside* the model, so shrinking lands on the
    internal overflow (e.g. ``rb * rb`` with rb = 256) rather than on the input.
    Nonzero magnitudes below 1/64 are left out unless ``allow_underflow`` (their
    products flush to zero in float16). ``allow_input_overflow`` adds values past
    65504 (up to 1e6), which a float16 input stores as inf.
    """
    nonzero = _fp16_segments(allow_input_overflow, allow_underflow, allow_zero=False)
    return st.one_of(st.just(0.0), _scalar(nonzero, allow_negative))


def fp16_arrays(
    shape: int | Sequence[int],
    *,
    allow_input_overflow: bool = False,
    allow_underflow: bool = False,
    allow_negative: bool = True,
) -> st.SearchStrategy[np.ndarray]:
    """float32 numpy arrays of :func:`fp16_floats`' values, drawn whole (:mod:`.codebook`)."""
    segments = _fp16_segments(allow_input_overflow, allow_underflow, allow_zero=True)
    return coded_floats(_shape(shape), segments, allow_negative=allow_negative)


def fp16_tensors(
    shape: int | Sequence[int],
    *,
    allow_input_overflow: bool = False,
    allow_underflow: bool = False,
    allow_negative: bool = True,
) -> st.SearchStrategy[Any]:
    """float32 torch tensors of :func:`fp16_floats`: what ``model_inputs`` draws for an fp16 input.

    Draws with values past 65504 (only with ``allow_input_overflow``) are labelled
    "input overflow".
    """
    arrays = fp16_arrays(
        shape,
        allow_input_overflow=allow_input_overflow,
        allow_underflow=allow_underflow,
        allow_negative=allow_negative,
    )
    return quiet_map(arrays, _labelled_tensor)


#: Every phase but ``explain``: on Python < 3.12 that phase traces each line of torch,
#: coremltools and the emulator while re-running failures, which can take minutes.
FUZZ_PHASES: tuple[Phase, ...] = tuple(p for p in Phase if p is not Phase.explain)


def fuzz_settings(**changes: Any) -> settings:
    """Hypothesis settings for parity fuzzing: no deadline, no explain phase.

    ``@fuzz_settings(max_examples=500)`` above ``@given``. The deadline is off
    because the first example may include planning the model, and timing is
    not what a parity test checks.
    """
    return settings(**{"deadline": None, "phases": FUZZ_PHASES, **changes})


__all__ = [
    "BOUNDARY_VALUES",
    "FLOAT32_MAX",
    "FP16_MAX",
    "FP16_MIN_NORMAL",
    "FP16_MIN_SUBNORMAL",
    "FUZZ_PHASES",
    "INPUT_OVERFLOW",
    "OVERFLOW_BAND",
    "REALISTIC_MIN_MAGNITUDE",
    "extreme_arrays",
    "extreme_floats",
    "extreme_tensors",
    "fp16_arrays",
    "fp16_floats",
    "fp16_tensors",
    "fuzz_settings",
    "label_input_overflow",
]
