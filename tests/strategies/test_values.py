"""fp16-aware values: finite in float16 unless opted in, realistic, and labelled when they overflow."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, find, given, settings

from pytest_coreml_parity.strategies import (
    FP16_MAX,
    FUZZ_PHASES,
    INPUT_OVERFLOW,
    REALISTIC_MIN_MAGNITUDE,
    extreme_tensors,
    fp16_floats,
    fp16_tensors,
    label_input_overflow,
)

QUICK = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
FIND = settings(database=None, max_examples=2000, phases=FUZZ_PHASES)


@QUICK
@given(fp16_floats())
def test_fp16_floats_are_finite_in_float16_and_not_tiny(x: float) -> None:
    assert abs(x) <= FP16_MAX
    assert x == 0.0 or abs(x) >= REALISTIC_MIN_MAGNITUDE


@QUICK
@given(fp16_tensors((3, 4)))
def test_fp16_tensors_are_float32_tensors_in_range(t: torch.Tensor) -> None:
    assert t.dtype == torch.float32 and t.shape == (3, 4)
    assert torch.isfinite(t.half()).all()


@pytest.mark.parametrize(
    ("name", "predicate", "expected"),
    [
        ("square overflows", lambda x: abs(x) >= 256, 256.0),
        ("near the boundary", lambda x: abs(x) >= 6e4, 60000.0),
        ("fraction", lambda x: 0 < abs(x) < 1, 0.5),
    ],
)
def test_fp16_floats_shrink_below_the_boundary(name: str, predicate, expected: float) -> None:
    assert find(fp16_floats(), predicate, settings=FIND) == expected, name


def test_overflow_and_underflow_are_opt_in() -> None:
    assert (
        find(fp16_floats(allow_input_overflow=True), lambda x: abs(x) > FP16_MAX, settings=FIND)
        > FP16_MAX
    )
    assert (
        0
        < abs(find(fp16_floats(allow_underflow=True), lambda x: 0 < abs(x) < 1e-5, settings=FIND))
        < 1e-5
    )


def _notes_of_failure(strategy, check) -> str:
    @settings(max_examples=300, database=None, deadline=None, phases=FUZZ_PHASES)
    @given(strategy)
    def failing(value) -> None:
        check(value)

    with pytest.raises(AssertionError) as info:
        failing()
    return "\n".join(getattr(info.value, "__notes__", []))


def test_extreme_tensors_label_input_overflow() -> None:
    def check(t: torch.Tensor) -> None:
        assert t.abs().max() <= FP16_MAX

    notes = _notes_of_failure(extreme_tensors((2, 3)), check)
    assert f"{INPUT_OVERFLOW}: input has 1 of 6 values past float16's max 65504" in notes


def test_failures_without_overflow_are_not_labelled() -> None:
    def check(t: torch.Tensor) -> None:
        assert t.abs().max() < 256

    assert INPUT_OVERFLOW not in _notes_of_failure(fp16_tensors((2, 3)), check)


def test_labelling_ignores_infinities_and_works_outside_tests() -> None:
    label_input_overflow(np.array([1e6], dtype=np.float32))  # no hypothesis context: no-op

    def check(t: np.ndarray) -> None:
        label_input_overflow(np.array([-np.inf, 0.0], dtype=np.float32), "mask")
        raise AssertionError("always")

    assert INPUT_OVERFLOW not in _notes_of_failure(fp16_tensors(1), check)
