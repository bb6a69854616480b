"""model_inputs / input_specs read each input's dtype, shape, role and valid range from the program.

Every model here is really converted; the specs are read from what coremltools made.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from pytest_coreml_parity.cache import ConversionCache
from pytest_coreml_parity.masks import FP16_SAFE_FILL
from pytest_coreml_parity.model import CoreMLModel, ModelSettings, Runtime
from pytest_coreml_parity.strategies import (
    FP16_MAX,
    FUZZ_PHASES,
    INDEX_FALLBACK_BOUND,
    INPUT_OVERFLOW,
    attention_masks,
    input_specs,
    model_inputs,
)

FIND = settings(database=None, phases=FUZZ_PHASES)
QUICK = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
VOCAB = 37


class Encoder(torch.nn.Module):
    """Token ids through an embedding, a float input, and a padding mask."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(VOCAB, 4)

    def forward(
        self, ids: torch.Tensor, x: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        return self.emb(ids).sum(-1) * x * attention_mask


class Counts(torch.nn.Module):
    """An integer input that indexes nothing: its range is not in the program."""

    def forward(self, n: torch.Tensor) -> torch.Tensor:
        return n.float() * 0.5


def bound(
    model: torch.nn.Module, examples: tuple[torch.Tensor, ...], precision: str
) -> CoreMLModel:
    slot = CoreMLModel(
        ModelSettings(precision=precision),
        Runtime(ConversionCache(None), "emulator"),
    )
    slot.bind(model.eval(), examples)
    return slot


ENCODER_EXAMPLES = (torch.tensor([[1, 2, 3, 4, 5]]), torch.ones(1, 5), torch.ones(1, 5))


@pytest.fixture(scope="module")
def encoder16() -> CoreMLModel:
    return bound(Encoder(), ENCODER_EXAMPLES, "fp16")


@pytest.fixture(scope="module")
def encoder32() -> CoreMLModel:
    return bound(Encoder(), ENCODER_EXAMPLES, "fp32")


def test_input_specs_read_dtype_role_and_embedding_size(encoder16: CoreMLModel) -> None:
    ids, x, mask = input_specs(encoder16)
    assert (ids.name, ids.dtype, ids.role, ids.index_bound, ids.shape) == (
        "ids",
        "int32",
        "integer",
        VOCAB,
        (1, 5),
    )
    assert (x.name, x.dtype, x.role, x.float16) == ("x", "float16", "float", True)
    assert (mask.name, mask.role) == ("attention_mask", "mask")


def test_fp32_inputs_are_not_float16(encoder32: CoreMLModel) -> None:
    assert [s.float16 for s in input_specs(encoder32)] == [False, False, False]


def test_fp16_inputs_stay_finite_in_float16_indices_in_the_table_masks_are_masks(
    encoder16: CoreMLModel,
) -> None:
    @QUICK
    @given(model_inputs(encoder16))
    def check(inputs: tuple[Any, ...]) -> None:
        ids, x, mask = inputs
        assert ids.dtype == torch.int64 and ids.shape == (1, 5)
        assert ((ids >= 0) & (ids < VOCAB)).all()
        assert x.dtype == torch.float32 and torch.isfinite(x).all()
        assert x.abs().max() <= FP16_MAX
        keep = mask.numpy()
        assert set(np.unique(keep).tolist()) <= {0.0, 1.0}
        d = np.diff(keep, axis=-1)
        assert (d >= 0).all() or (d <= 0).all()  # padded on one side

    check()


def test_fp16_default_reaches_the_overflow_band_but_not_the_input_boundary(
    encoder16: CoreMLModel,
) -> None:
    strategy = model_inputs(encoder16)
    s = settings(database=None, max_examples=500, phases=FUZZ_PHASES)
    # A value whose square overflows shrinks to 256, not to the input boundary 65504.
    found = find(strategy, lambda i: bool((i[1].abs() >= 256).any()), settings=s)
    assert float(found[1].abs().max()) == 256.0
    with pytest.raises(NoSuchExample):
        find(strategy, lambda i: bool((i[1].abs() > FP16_MAX).any()), settings=s)


def test_input_overflow_is_opt_in_and_labelled(encoder16: CoreMLModel) -> None:
    found = find(
        model_inputs(encoder16, allow_input_overflow=True),
        lambda i: bool((i[1].abs() > FP16_MAX).any()),
        settings=settings(database=None, max_examples=500, phases=FUZZ_PHASES),
    )
    assert float(found[1].abs().max()) > FP16_MAX

    @settings(max_examples=200, database=None, deadline=None, phases=FUZZ_PHASES)
    @given(model_inputs(encoder16, allow_input_overflow=True))
    def fails_on_overflow(inputs: tuple[Any, ...]) -> None:
        assert inputs[1].abs().max() <= FP16_MAX

    with pytest.raises(AssertionError) as info:
        fails_on_overflow()
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert f"{INPUT_OVERFLOW}: input 'x' has 1 of 5 values past float16's max 65504" in notes


def test_fp32_inputs_keep_the_extreme_defaults(encoder32: CoreMLModel) -> None:
    find(
        model_inputs(encoder32),
        lambda i: bool((i[1].abs() > FP16_MAX).any()),
        settings=settings(database=None, max_examples=500, phases=FUZZ_PHASES),
    )


def test_extreme_keywords_still_apply(encoder16: CoreMLModel) -> None:
    @QUICK
    @given(model_inputs(encoder16, max_magnitude=100.0))
    def check(inputs: tuple[Any, ...]) -> None:
        assert inputs[1].abs().max() <= 100.0

    check()


def test_additive_masks_in_a_float16_input_stay_representable(encoder16: CoreMLModel) -> None:
    @QUICK
    @given(model_inputs(encoder16, mask_form="additive"))
    def check(inputs: tuple[Any, ...]) -> None:
        mask = inputs[2].numpy()
        assert set(np.unique(mask).tolist()) <= {0.0, -FP16_MAX, -np.inf, FP16_SAFE_FILL}

    check()


def test_overrides_replace_one_input(encoder16: CoreMLModel) -> None:
    strategy = model_inputs(
        encoder16,
        overrides={"attention_mask": attention_masks((1, 5), form="binary", fully_masked=True)},
    )
    inputs = find(strategy, lambda i: True, settings=FIND)
    assert not inputs[2].any()
    with pytest.raises(ValueError, match="unknown inputs"):
        model_inputs(encoder16, overrides={"nope": st.just(0)})


def test_integer_inputs_without_a_gather_fall_back_to_2_15() -> None:
    model = bound(Counts(), (torch.tensor([1, 2, 3]),), "fp16")
    (spec,) = input_specs(model)
    assert spec.role == "integer" and spec.index_bound is None

    @QUICK
    @given(model_inputs(model))
    def check(inputs: tuple[Any, ...]) -> None:
        assert ((inputs[0] >= 0) & (inputs[0] < INDEX_FALLBACK_BOUND)).all()

    check()
    find(
        model_inputs(model),
        lambda i: bool((i[0] > 1000).any()),
        settings=settings(database=None, phases=FUZZ_PHASES),
    )


def test_an_unbound_model_is_refused() -> None:
    slot = CoreMLModel(ModelSettings(precision="fp16"), None)
    with pytest.raises(ValueError, match="not bound"):
        model_inputs(slot)


@pytest.fixture(scope="module")
def flexible() -> Any:
    """An MLModel with an EnumeratedShapes float input and a RangeDim embedding input."""
    import coremltools as ct

    class Flexible(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(50, 2)

        def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
            return x.sum(-1) + self.emb(ids).sum(-1)

    traced = torch.jit.trace(
        Flexible().eval(), (torch.ones(1, 3, 4), torch.zeros(1, 3, dtype=torch.int32))
    )
    with contextlib.redirect_stderr(io.StringIO()):
        return ct.convert(
            traced,
            inputs=[
                ct.TensorType(
                    name="x",
                    shape=ct.EnumeratedShapes(shapes=[[1, 3, 4], [1, 5, 4]], default=[1, 3, 4]),
                ),
                ct.TensorType(name="ids", shape=(1, ct.RangeDim(1, 8, default=3)), dtype=np.int32),
            ],
            minimum_deployment_target=ct.target.iOS16,
        )


def test_flexible_shapes_are_read(flexible: Any) -> None:
    x, ids = input_specs(flexible)
    assert x.enumerated_shapes == ((1, 3, 4), (1, 5, 4)) and x.shape == (1, 3, 4) and x.float16
    assert ids.shape_ranges == ((1, 1), (1, 8)) and ids.index_bound == 50


def test_vary_shapes_draws_allowed_shapes_and_shrinks_to_the_default(flexible: Any) -> None:
    strategy = model_inputs(flexible, vary_shapes=True)

    @QUICK
    @given(strategy)
    def check(inputs: tuple[Any, ...]) -> None:
        x, ids = inputs
        assert tuple(x.shape) in {(1, 3, 4), (1, 5, 4)}
        assert ids.shape[0] == 1 and 1 <= ids.shape[1] <= 8
        assert ((ids >= 0) & (ids < 50)).all()

    check()
    find(strategy, lambda i: tuple(i[0].shape) == (1, 5, 4), settings=FIND)
    smallest = find(strategy, lambda i: True, settings=FIND)
    assert tuple(smallest[0].shape) == (1, 3, 4) and tuple(smallest[1].shape) == (1, 3)
    assert find(model_inputs(flexible), lambda i: True, settings=FIND)[1].shape == (1, 3)


def test_a_core_ai_program_is_read_from_its_declared_inputs() -> None:
    """The Core AI target has no MLModel: its program declares name, shape and dtype."""
    from types import SimpleNamespace

    tensor = SimpleNamespace
    model = SimpleNamespace(
        mlmodel=None,
        program=SimpleNamespace(
            inputs=[
                tensor(name="ids", shape=(1, 4), dtype="int32"),
                tensor(name="x", shape=(1, 4), dtype="float16"),
                tensor(name="attention_mask", shape=(1, 4), dtype="int32"),
            ]
        ),
        example_inputs=(
            torch.tensor([[0, 5, 2, 1]]),
            torch.ones(1, 4),
            torch.ones(1, 4, dtype=torch.int64),
        ),
    )
    ids, x, mask = input_specs(model)
    assert (ids.role, ids.ops_read, x.float16, mask.role) == ("integer", False, True, "mask")

    @QUICK
    @given(model_inputs(model))
    def check(inputs: tuple[Any, ...]) -> None:
        ids, x, mask = inputs
        assert ((ids >= 0) & (ids <= 5)).all()  # no ops to search: the example's range
        assert x.abs().max() <= FP16_MAX
        assert mask.dtype == torch.int64 and set(mask.unique().tolist()) <= {0, 1}

    check()
