"""Public constants keep their meaning: a user's ``assert_allclose(..., *TOLERANCES["fp16"])``
on an int8-compressed MLP passed before the fp16 verdict gained its scale term, and passes
now (a real int8 conversion, run on the emulator)."""

from __future__ import annotations

import pytest

INT8_MLP = """
import numpy as np
import pytest
import torch
from pytest_coreml_parity import TOLERANCES
from pytest_coreml_parity.verdict import PRESETS


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 32)
        )

    def forward(self, x):
        return self.net(x)


@pytest.fixture
def torch_model():
    return MLP().eval()


@pytest.fixture
def example_inputs():
    torch.manual_seed(1)
    return (torch.randn(8, 64),)


def _sides(coreml_model, torch_model, example_inputs):
    with torch.no_grad():
        expected = torch_model(*example_inputs).numpy()
    return coreml_model(*example_inputs), expected


@pytest.mark.coreml(precisions=["int8"])
def test_users_own_allclose(coreml_model, torch_model, example_inputs):
    actual, expected = _sides(coreml_model, torch_model, example_inputs)
    np.testing.assert_allclose(actual, expected, *TOLERANCES["fp16"])  # as written before


@pytest.mark.coreml(precisions=["int8"])
def test_the_verdicts_element_wise_part_alone_is_stricter(coreml_model, torch_model, example_inputs):
    actual, expected = _sides(coreml_model, torch_model, example_inputs)
    with pytest.raises(AssertionError):  # why TOLERANCES could not silently become this
        np.testing.assert_allclose(actual, expected, *PRESETS["fp16"].tolerance)
"""


def test_tolerances_fp16_keeps_its_meaning_on_an_int8_mlp(pytester: pytest.Pytester, run) -> None:
    pytester.makepyfile(test_int8=INT8_MLP)
    result = run("-v")
    result.assert_outcomes(passed=2)
