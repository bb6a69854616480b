"""Whole-array strategies (codebook.py): the table's layout, decoding, ranges, shrinking, printing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from pytest_coreml_parity.codebook import (
    MAX_DRAWN_ELEMENTS,
    TABLE_SLOTS,
    Segment,
    coded_floats,
    coded_integers,
    decode_floats,
    decode_integers,
    magnitude_table,
)
from pytest_coreml_parity.strategies import (
    FP16_MAX,
    FUZZ_PHASES,
    extreme_arrays,
    extreme_tensors,
    fp16_arrays,
    model_inputs,
)

QUICK = settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
FIND = settings(database=None, max_examples=2000)
SEGMENTS = (
    Segment(3.0, points=(0.0,)),
    Segment(1.0, points=(2.0, 1.0)),
    Segment(4.0, lo=10.0, hi=1000.0),
)


def test_table_lays_segments_out_simplest_first_with_their_weights() -> None:
    table = magnitude_table(SEGMENTS)
    assert table.shape == (TABLE_SLOTS,) and table.dtype == np.float32
    assert not table.flags.writeable
    zeros, points, grid = np.split(table, [3 * TABLE_SLOTS // 8, TABLE_SLOTS // 2])
    assert (zeros == 0).all()
    assert set(points.tolist()) == {1.0, 2.0} and (np.diff(points) >= 0).all()
    assert grid.min() == 10.0 and grid.max() == 1000.0 and (np.diff(grid) >= 0).all()
    # Range values are round: three significant digits.
    assert np.allclose(grid, [float(f"{v:.3g}") for v in grid.tolist()], rtol=1e-6)


def test_table_rejects_bad_segments() -> None:
    with pytest.raises(ValueError, match="no segments"):
        magnitude_table(())
    with pytest.raises(ValueError, match="weights must be positive"):
        magnitude_table((Segment(0.0, points=(1.0,)),))


def test_decoding_floats_reads_sign_from_the_low_bit_and_repeats_past_the_drawn_elements() -> None:
    table = magnitude_table(SEGMENTS)
    last = (TABLE_SLOTS - 1) << 1
    raw = np.array([0, 1, last, last | 1], dtype=">u2").tobytes()
    assert decode_floats(raw, table, (2, 2), True).tolist() == [[0.0, -0.0], [1000.0, -1000.0]]
    assert decode_floats(raw, table, (4,), False).tolist() == [0.0, 0.0, 1000.0, 1000.0]
    tiled = decode_floats(raw, table, (3, 3), True)
    assert tiled.shape == (3, 3) and tiled.flatten().tolist()[4:8] == [0.0, -0.0, 1000.0, -1000.0]


@QUICK
@given(st.data())
def test_large_arrays_draw_at_most_the_cap(data: st.DataObject) -> None:
    array = data.draw(coded_floats((1, 3, 64, 64), SEGMENTS))
    assert array.shape == (1, 3, 64, 64) and array.dtype == np.float32
    flat = array.reshape(-1)
    assert (flat[MAX_DRAWN_ELEMENTS:] == flat[: flat.size - MAX_DRAWN_ELEMENTS]).all()


@pytest.mark.parametrize(
    ("low", "high"), [(0, 9), (-10, 300), (-7, -3), (5, 5), (0, 2**40), (-(2**20), 2**33)]
)
def test_integers_stay_in_range_and_reach_both_ends(low: int, high: int) -> None:
    seen: set[int] = set()

    @QUICK
    @given(coded_integers((7,), low, high))
    def check(a: np.ndarray) -> None:
        assert a.dtype == np.int64 and a.shape == (7,)
        assert ((a >= low) & (a <= high)).all()
        seen.update(a.tolist())

    check()
    assert len(seen) > 1 or low == high
    span = high - low + 1
    width = 2 if span <= 2**15 else (4 if span <= 2**31 else 8)

    def decoded(code: int) -> set[int]:
        raw = np.full(7, code, dtype=np.uint64).astype(f">u{width}").tobytes()
        return set(decode_integers(raw, low, high, (7,)).tolist())

    top = 2 ** (8 * width) - 1  # the largest magnitude; odd: the negative side when there is one
    assert decoded(top) == {high if low >= 0 else low}
    assert decoded(top - 1) == {low if high <= 0 else high}
    assert decoded(0) == {low if low >= 0 else (high if high <= 0 else 0)}  # shrinks toward 0


def test_integer_ranges_are_validated() -> None:
    with pytest.raises(ValueError, match="low <= high"):
        coded_integers((2,), 3, 1)
    with pytest.raises(ValueError, match="too wide"):
        coded_integers((2,), 0, 2**64)


@pytest.mark.parametrize(
    ("strategy", "predicate", "shrunk"),
    [
        (extreme_arrays((2, 3)), lambda a: (np.abs(a) >= 256).any(), 256.0),
        (extreme_arrays((2, 3)), lambda a: (np.abs(a) > FP16_MAX).any(), 65520.0),
        (fp16_arrays((2, 3)), lambda a: (np.abs(a) > 6e4).any(), 60100.0),
        (fp16_arrays((2, 3)), lambda a: (a < 0).any(), -1.0),
        (coded_integers((5,), -10, 300), lambda a: (a > 100).any(), 101),
        (coded_integers((5,), -10, 300), lambda a: (a < -3).any(), -4),
    ],
)
def test_each_element_shrinks_to_the_simplest_value_that_fails(strategy, predicate, shrunk) -> None:
    found = np.asarray(find(strategy, predicate, settings=FIND)).reshape(-1)
    assert sorted(found.tolist(), key=abs)[:-1] == [0] * (found.size - 1), found  # one element left
    assert found[np.abs(found).argmax()] == shrunk, found


def test_fp16_arrays_stay_finite_in_float16_unless_overflow_is_allowed() -> None:
    @QUICK
    @given(fp16_arrays((4, 4)), fp16_arrays((4, 4), allow_input_overflow=True))
    def check(finite: np.ndarray, wide: np.ndarray) -> None:
        assert np.isfinite(finite.astype(np.float16)).all()
        assert ((finite == 0) | (np.abs(finite) >= 2**-6)).all()
        assert np.abs(wide).max() <= 1e6

    check()
    assert (
        np.abs(
            find(
                fp16_arrays((4,), allow_input_overflow=True),
                lambda a: (np.abs(a) > FP16_MAX).any(),
                settings=FIND,
            )
        )
        > FP16_MAX
    ).any()


def test_a_falsifying_tensor_prints_as_its_values() -> None:
    @settings(max_examples=300, database=None, deadline=None, phases=FUZZ_PHASES)
    @given(
        t=extreme_tensors((2, 3)), inputs=model_inputs((torch.zeros(2, 2), torch.tensor([0, 3])))
    )
    def failing(t: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> None:
        assert t.abs().max() < 256

    with pytest.raises(AssertionError) as info:
        failing()
    # (The CI profile adds a @reproduce_failure blob, bytes by design: not the example.)
    notes = "\n".join(
        n for n in getattr(info.value, "__notes__", []) if "reproduce_failure" not in n
    )
    assert "t=tensor([[" in notes and "256." in notes, notes
    assert "decode" not in notes and "_labelled_tensor" not in notes and "b'" not in notes, notes
