"""Structured strategies: each one's guarantees (dtype, shape, structure) and its shrinking."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from pytest_coreml_parity.strategies import (
    FLOAT16_MIN,
    FLOAT32_MIN,
    FP16_MAX,
    FUZZ_PHASES,
    MASK_FILLS,
    attention_masks,
    causal_masks,
    dominant_logits,
    dynamic_range_rows,
    near_zero_tensors,
    padding_masks,
    zero_rows,
)

FIND = settings(database=None, phases=FUZZ_PHASES)
QUICK = settings(
    max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
SHRINK = settings(database=None, max_examples=300, deadline=None, phases=FUZZ_PHASES)


# ------------------------------------------------------------------ masks


@QUICK
@given(attention_masks((3, 7), padding="left"))
def test_left_padding_is_on_the_left(mask: torch.Tensor) -> None:
    assert mask.dtype == torch.bool and mask.shape == (3, 7)
    keep = mask.numpy().astype(int)
    assert (np.diff(keep, axis=-1) >= 0).all(), keep  # False ... False True ... True


@QUICK
@given(attention_masks((3, 7), padding="right", form="binary"))
def test_right_padding_is_on_the_right(mask: torch.Tensor) -> None:
    assert mask.dtype == torch.float32
    keep = mask.numpy()
    assert set(np.unique(keep)) <= {0.0, 1.0}
    assert (np.diff(keep, axis=-1) <= 0).all(), keep


@QUICK
@given(
    st.sampled_from(["left", "right", "any"]),
    st.booleans(),
    st.sampled_from([(2, 6), (1, 4, 4), (2, 1, 3, 5)]),
    st.data(),
)
def test_fully_masked_true_always_has_a_fully_masked_row(
    side: str, causal: bool, shape: tuple[int, ...], data: st.DataObject
) -> None:
    if causal and len(shape) < 2:
        return
    mask = data.draw(attention_masks(shape, padding=side, causal=causal, fully_masked=True))  # type: ignore[arg-type]
    assert (~mask.numpy().any(axis=-1)).any()


@QUICK
@given(
    st.sampled_from(["left", "right", "any"]),
    st.booleans(),
    st.sampled_from([(2, 6), (1, 4, 4), (2, 1, 3, 5)]),
    st.data(),
)
def test_fully_masked_false_never_has_one(
    side: str, causal: bool, shape: tuple[int, ...], data: st.DataObject
) -> None:
    mask = data.draw(attention_masks(shape, padding=side, causal=causal, fully_masked=False))  # type: ignore[arg-type]
    assert mask.numpy().any(axis=-1).all()


@QUICK
@given(causal_masks((2, 1, 3, 5), padding="any"))
def test_causal_masks_never_look_ahead(mask: torch.Tensor) -> None:
    keep = mask.numpy()
    i, j = np.indices((3, 5))
    assert not keep[..., j > i + 2].any()  # 5 keys, 3 queries: query i sees keys <= i + 2
    # padding is per sequence: every query of a sequence masks the same keys (where causal allows)
    assert keep.shape == (2, 1, 3, 5)


def test_a_padding_mask_can_be_fully_masked_or_not() -> None:
    find(attention_masks((2, 4)), lambda m: (~m.numpy().any(-1)).any(), settings=SHRINK)
    find(attention_masks((2, 4)), lambda m: m.numpy().all(), settings=SHRINK)


@pytest.mark.parametrize("fill", MASK_FILLS)
def test_additive_masks_reach_every_fill(fill: float) -> None:
    mask = find(
        attention_masks((2, 5), form="additive"),
        lambda m: bool((m.numpy() == np.float32(fill)).any()),
        settings=SHRINK,
    )
    values = set(np.unique(mask.numpy()).tolist())
    assert mask.dtype == torch.float32
    assert values <= {0.0, float(np.float32(fill))}


def test_additive_fill_shrinks_to_float32_min() -> None:
    mask = find(
        attention_masks((2, 5), form="additive"),
        lambda m: bool((m.numpy() != 0).any()),
        settings=SHRINK,
    )
    assert float(mask.numpy().min()) == FLOAT32_MIN == float(torch.finfo(torch.float32).min)
    assert float(torch.finfo(torch.float16).min) == FLOAT16_MIN
    assert -math.inf in MASK_FILLS and -1e9 in MASK_FILLS


def test_every_fill_is_a_mask_fill_to_the_headroom_gate_and_the_diagnosis() -> None:
    from pytest_coreml_parity.masks import FP16_SAFE_FILL, is_mask_fill

    assert set(MASK_FILLS) == {FLOAT32_MIN, -1e9, -math.inf, FLOAT16_MIN, FP16_SAFE_FILL}
    for fill in MASK_FILLS:
        mask = find(
            attention_masks((2, 5), form="additive", fill=fill, fully_masked=True, as_numpy=True),
            lambda m: True,
            settings=FIND,
        )
        assert is_mask_fill(mask), fill
        with np.errstate(over="ignore"):
            stored = mask.astype(np.float16)  # as fp16 stores it (finfo.min: -inf)
        assert is_mask_fill(stored), fill
    assert not is_mask_fill(np.array([0.0, -5000.0], np.float32))  # a large score is not a fill
    assert not is_mask_fill(np.zeros(3, np.float32))


def test_additive_mask_with_an_explicit_fill() -> None:
    mask = find(
        attention_masks((2, 5), form="additive", fill=-1e9, fully_masked=True, as_numpy=True),
        lambda m: True,
        settings=FIND,
    )
    assert isinstance(mask, np.ndarray) and mask.dtype == np.float32
    assert set(np.unique(mask).tolist()) <= {0.0, float(np.float32(-1e9))}


def test_fully_masked_shrinks_to_one_padded_sequence() -> None:
    mask = find(
        padding_masks((3, 6), side="left", fully_masked=True), lambda m: True, settings=SHRINK
    )
    keep = mask.numpy()
    assert (~keep.any(-1)).sum() == 1  # one fully masked row
    assert keep.sum() == 2 * 6  # the other rows are not padded at all


def test_left_padded_causal_mask_shrinks_to_a_single_padded_key() -> None:
    mask = find(
        causal_masks((4, 4), padding="left", fully_masked=True), lambda m: True, settings=SHRINK
    )
    keep = mask.numpy()
    expected = np.tril(np.ones((4, 4), dtype=bool))
    expected[:, 0] = False  # one left-padded key: query 0 sees nothing
    np.testing.assert_array_equal(keep, expected)


def test_mask_arguments_are_validated() -> None:
    with pytest.raises(ValueError, match="causal"):
        attention_masks(5, causal=True)
    with pytest.raises(ValueError, match="fully_masked=True needs padding"):
        attention_masks((2, 5), padding="none", fully_masked=True)
    with pytest.raises(ValueError, match="fill applies"):
        attention_masks((2, 5), fill=-1e9)
    with pytest.raises(ValueError, match="padding must be"):
        attention_masks((2, 5), padding="middle")  # type: ignore[arg-type]


# ------------------------------------------------------------------ values


@QUICK
@given(zero_rows((4, 6), min_rows=2))
def test_zero_rows_have_zero_rows_and_finite_fp16_values(t: torch.Tensor) -> None:
    a = t.numpy()
    assert t.dtype == torch.float32 and t.shape == (4, 6)
    assert (~a.any(axis=-1)).sum() >= 2
    assert np.isfinite(a).all() and np.abs(a).max() <= FP16_MAX


def test_zero_rows_can_leave_other_rows_nonzero() -> None:
    t = find(zero_rows((3, 2)), lambda t: bool(t.numpy().any(-1).sum() == 2), settings=SHRINK)
    assert (~t.numpy().any(-1)).sum() == 1


@QUICK
@given(dominant_logits((3, 5)))
def test_dominant_logits_have_a_gap_of_at_least_11(t: torch.Tensor) -> None:
    a = np.sort(t.numpy(), axis=-1)
    assert t.dtype == torch.float32
    assert (a[:, -1] - a[:, -2] >= 11.0).all(), a


def test_dominant_logits_shrink_to_one_hot_11() -> None:
    t = find(dominant_logits((2, 4)), lambda t: True, settings=SHRINK)
    np.testing.assert_array_equal(t.numpy(), [[11, 0, 0, 0], [11, 0, 0, 0]])


def test_dominant_logits_reach_past_exp_overflow() -> None:
    # exp(x) overflows float16 once x > 11.09: logcumsumexp (coremltools #2729).
    find(dominant_logits((1, 4)), lambda t: bool(t.numpy().max() > 11.09), settings=SHRINK)


@QUICK
@given(dynamic_range_rows((3, 5)))
def test_dynamic_range_rows_hold_a_huge_and_a_tiny_value(t: torch.Tensor) -> None:
    a = np.abs(t.numpy())
    assert t.dtype == torch.float32 and np.isfinite(a).all()
    assert ((a >= 256) & (a <= FP16_MAX)).any(axis=-1).all()
    assert ((a > 0) & (a <= 1e-3)).any(axis=-1).all()


def test_dynamic_range_rows_shrink_to_the_first_two_positions() -> None:
    t = find(dynamic_range_rows((1, 4)), lambda t: True, settings=SHRINK)
    a = t.numpy()[0]
    assert a[0] == 256.0 and 0 < a[1] <= 1e-3 and (a[2:] == 0).all()


@QUICK
@given(near_zero_tensors((4, 3)))
def test_near_zero_values_are_tiny_and_nonzero(t: torch.Tensor) -> None:
    a = np.abs(t.numpy())
    assert t.dtype == torch.float32
    assert ((a > 0) & (a <= 1e-3)).all()


def test_near_zero_squares_flush_to_zero_in_float16_but_not_in_float32() -> None:
    t = find(
        near_zero_tensors(3),
        lambda t: bool(((t.numpy().astype(np.float16) ** 2) == 0).any()),
        settings=SHRINK,
    )
    assert ((t.numpy() ** 2) > 0).all()


def test_value_strategies_validate() -> None:
    with pytest.raises(ValueError, match="min_rows"):
        zero_rows((2, 3), min_rows=3)
    with pytest.raises(ValueError, match="min_gap"):
        dominant_logits((2, 3), min_gap=5.0, max_gap=1.0)
    with pytest.raises(ValueError, match="at least 2"):
        dynamic_range_rows((2, 1))
    with pytest.raises(ValueError, match="max_magnitude"):
        near_zero_tensors(3, max_magnitude=2.0)
