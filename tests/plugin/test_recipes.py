"""The recipes docs/usage.md gives ("Recipes"), run as a user would write them."""

from __future__ import annotations

import pytest

from .conftest import SCALE_CONFTEST

XFAIL_FP16 = '''
import pytest
import torch
from pytest_coreml_parity import assert_parity


class Overflow(torch.nn.Module):
    def forward(self, x):
        return (x * x) / (x * x + 1.0)


@pytest.fixture
def torch_model():
    return Overflow().eval()


@pytest.fixture
def example_inputs():
    return (torch.tensor([[1.0, 300.0, 2.0, 0.5]]),)


@pytest.fixture
def xfail_fp16(request, coreml_model):
    """The recipe: expect the fp16 id to fail, strictly, and only that id."""
    if coreml_model.precision == "fp16":
        request.applymarker(pytest.mark.xfail(reason="x*x overflows fp16", strict=True))


def test_parity(coreml_model, example_inputs, xfail_fp16):
    assert_parity(coreml_model, *example_inputs)
'''


def test_xfail_only_the_fp16_id(pytester: pytest.Pytester, run) -> None:
    pytester.makepyfile(test_xfail=XFAIL_FP16)
    result = run("-v", "-rxX")
    result.assert_outcomes(passed=1, xfailed=1)
    result.stdout.fnmatch_lines(["*test_parity[[]fp32[]] PASSED*", "*test_parity[[]fp16[]] XFAIL*"])


def test_xfail_recipe_is_strict_when_fp16_stops_failing(pytester: pytest.Pytester, run) -> None:
    # Same recipe on a model fp16 handles: the strict xfail turns into a failure (XPASS(strict)).
    pytester.makepyfile(test_xfail=XFAIL_FP16.replace("300.0", "3.0"))
    result = run("-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_parity[[]fp16[]] FAILED*", "*XPASS(strict)*"])


HALVE_CONFTEST = SCALE_CONFTEST.replace("torch.relu(x) * 2.0", "torch.relu(x) * 0.5")

GIVEN_IN_CLASS = '''
from hypothesis import HealthCheck, given, settings, strategies as st
from pytest_coreml_parity import assert_parity
from pytest_coreml_parity.strategies import model_inputs


class TestScale:
    {settings_line}
    @given(data=st.data())
    def test_fuzz(self, coreml_model, data):
        assert_parity(coreml_model, *data.draw(model_inputs(coreml_model)))
'''


def test_given_on_a_method_trips_differing_executors(pytester: pytest.Pytester, run) -> None:
    # Without the recipe: hypothesis sees one @given method run by two instances ([fp32], [fp16]).
    pytester.makeconftest(HALVE_CONFTEST)
    pytester.makepyfile(test_class=GIVEN_IN_CLASS.format(settings_line=""))
    result = run("-v", "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*differing_executors*"])


def test_given_on_a_method_with_the_recipe_passes(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(HALVE_CONFTEST)
    line = "@settings(max_examples=20, suppress_health_check=[HealthCheck.differing_executors])"
    pytester.makepyfile(test_class=GIVEN_IN_CLASS.format(settings_line=line))
    result = run("-v")
    result.assert_outcomes(passed=2)
