"""A parametrized ``torch_model`` (or ``example_inputs``) works whether or not the test
names it, and under ``@given`` without hypothesis' function-scoped-fixture health check."""

from __future__ import annotations

import pytest

SOURCE = """
import pytest
import torch
from hypothesis import given, settings, strategies as st
from pytest_coreml_parity import assert_parity


class Scaled(torch.nn.Module):
    def __init__(self, seed):
        super().__init__()
        torch.manual_seed(seed)
        self.linear = torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.linear(x) * 2.0


@pytest.fixture(params=[1, 2], ids=["seed1", "seed2"])
def torch_model(request):
    return Scaled(request.param).eval()


@pytest.fixture(params=[2, 5], ids=["rows2", "rows5"])
def example_inputs(request):
    return (torch.randn(request.param, 4, generator=torch.Generator().manual_seed(0)),)


def test_unnamed(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)
    assert coreml_model.torch_model.linear.in_features == 4


def test_named(coreml_model, torch_model, example_inputs):
    assert coreml_model.torch_model is torch_model
    assert_parity(coreml_model, torch.ones_like(example_inputs[0]))


@settings(max_examples=3, deadline=None)
@given(scale=st.floats(-2.0, 2.0))
def test_given(coreml_model, scale):
    assert_parity(coreml_model, torch.full_like(coreml_model.example_inputs[0], scale))
"""


def test_a_parametrized_torch_model_need_not_be_named_even_under_given(run, pytester: pytest.Pytester) -> None:  # type: ignore[no-untyped-def]
    pytester.makepyfile(test_params=SOURCE)
    result = run("--coreml-precisions=fp32", "-v")
    # 2 models x 2 inputs for each test (ids from the fixtures' params), one precision
    result.assert_outcomes(passed=12)
    result.stdout.fnmatch_lines(
        [
            "*test_unnamed[[]seed1-rows2-fp32[]] PASSED*",
            "*test_named[[]seed2-rows5-fp32[]] PASSED*",
            "*test_given[[]seed2-rows5-fp32[]] PASSED*",
        ]
    )
    assert "FailedHealthCheck" not in result.stdout.str()
