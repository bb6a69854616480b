"""Hypothesis strategies concentrated where float16 conversions break.

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
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

if TYPE_CHECKING:
    from .model import CoreMLModel

FP16_MAX = 65504.0
FP16_MIN_NORMAL = 6.103515625e-05
FP16_MIN_SUBNORMAL = 5.960464477539063e-08
FLOAT32_MAX = float(np.finfo(np.float32).max)
FLOAT32_TINY = float(np.finfo(np.float32).tiny)
OVERFLOW_BAND = (256.0, FP16_MAX)  # squares and products of these overflow float16

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
    if not 0.0 <= min_magnitude <= max_magnitude <= FLOAT32_MAX:
        raise ValueError(
            f"need 0 <= min_magnitude <= max_magnitude <= {FLOAT32_MAX:g}, "
            f"got {min_magnitude!r}, {max_magnitude!r}"
        )

    def fits(lo: float, hi: float) -> tuple[float, float] | None:
        lo, hi = max(lo, min_magnitude), min(hi, max_magnitude)
        return (lo, hi) if lo <= hi else None

    branches: list[st.SearchStrategy[float]] = []
    if allow_zero and min_magnitude == 0.0:
        branches.append(st.just(0.0))
    small = [float(v) for v in range(1, 9) if min_magnitude <= v <= max_magnitude]
    if small:
        branches.append(st.sampled_from(small))
    named = [
        v
        for v in BOUNDARY_VALUES
        if min_magnitude <= v <= max_magnitude and (allow_subnormal or v >= FP16_MIN_NORMAL)
    ]
    if named:
        branches.append(st.sampled_from(named))
    ranges = [
        (1.0, 256.0),  # ordinary values
        OVERFLOW_BAND,  # products and squares overflow fp16
        (6e4, 1e6),  # at and past fp16 max
        (1e6, max_magnitude),  # toward float32 max, when allowed
        (1e-3, 1.0),  # near-zero denominators
        (FP16_MIN_SUBNORMAL, FP16_MIN_NORMAL),  # fp16 subnormals
        (FLOAT32_TINY, 1e-30),  # tiny float32, flushed to zero in fp16
    ]
    if allow_subnormal:
        ranges.append((1e-45, FLOAT32_TINY))  # float32 subnormals
    for lo, hi in ranges:
        if not allow_subnormal and lo < FP16_MIN_NORMAL:
            continue
        bounds = fits(lo, hi)
        if bounds is not None and bounds[0] < bounds[1]:
            branches.append(_floats(*bounds))
    if not branches:
        raise ValueError(f"no values between {min_magnitude!r} and {max_magnitude!r}")
    magnitude = st.one_of(*branches)
    if not allow_negative:
        return magnitude
    # (False, x) shrinks first, so positive values are preferred.
    return st.tuples(st.booleans(), magnitude).map(lambda t: -t[1] if t[0] else t[1])


def _shape(shape: int | Sequence[int]) -> tuple[int, ...]:
    return (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)


def extreme_arrays(shape: int | Sequence[int], **kwargs: Any) -> st.SearchStrategy[np.ndarray]:
    """float32 numpy arrays of :func:`extreme_floats` (same keywords)."""
    return hnp.arrays(np.float32, _shape(shape), elements=extreme_floats(**kwargs))


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
    """
    import torch

    return extreme_arrays(
        shape,
        min_magnitude=min_magnitude,
        max_magnitude=max_magnitude,
        allow_zero=allow_zero,
        allow_negative=allow_negative,
        allow_subnormal=allow_subnormal,
    ).map(torch.from_numpy)


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


def _input_strategy(example: Any, kwargs: dict[str, Any]) -> st.SearchStrategy[Any]:
    import torch

    if example.dtype.is_floating_point:
        return extreme_tensors(tuple(example.shape), **kwargs).map(lambda t: t.to(example.dtype))
    if example.dtype == torch.bool:
        strategy = hnp.arrays(np.bool_, tuple(example.shape))
    else:
        lo = int(example.min()) if example.numel() else 0
        hi = int(example.max()) if example.numel() else 0
        # Stay within what the example shows (e.g. valid indices), widened a little for values.
        elements = st.integers(min(lo, 0), max(hi, 0))
        strategy = hnp.arrays(np.int64, tuple(example.shape), elements=elements)
    return strategy.map(lambda a: torch.from_numpy(a).to(example.dtype))


def model_inputs(model: CoreMLModel | Sequence[Any], **kwargs: Any) -> st.SearchStrategy[tuple[Any, ...]]:
    """A tuple of inputs for every input of ``model`` (a ``coreml_model`` or example inputs).

    Float inputs use :func:`extreme_tensors` (keywords pass through); integer
    inputs draw from the range the example input spans (so indices stay valid);
    bool inputs draw freely. Use it with ``st.data()``, since fixtures are not
    available when ``@given`` is applied::

        @given(data=st.data())
        def test_fuzz(coreml_model, data):
            inputs = data.draw(model_inputs(coreml_model), label="inputs")
            assert_parity(coreml_model, *inputs)
    """
    examples = cast("Sequence[Any]", getattr(model, "example_inputs", model))
    if isinstance(examples, tuple) and not examples and hasattr(model, "example_inputs"):
        raise ValueError("model_inputs: the coreml_model is not bound yet; call it inside the test")
    return st.tuples(*(_input_strategy(x, kwargs) for x in examples))


__all__ = [
    "BOUNDARY_VALUES",
    "FP16_MAX",
    "FUZZ_PHASES",
    "extreme_arrays",
    "extreme_floats",
    "extreme_tensors",
    "fuzz_settings",
    "model_inputs",
]
