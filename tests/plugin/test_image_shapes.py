"""Image inputs with flexible shapes: declared_shapes() and inputs_for_shapes() give every
declared size (as pixels for the image input), and shape errors quote the shape passed.
The shipped image-classifier example's recipe, at three sizes (real conversions)."""

from __future__ import annotations

from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "image_classifier"

TESTS = """
import numpy as np
import pytest
import torch
from pytest_coreml_parity import assert_parity
from pytest_coreml_parity.errors import InputMismatchError


@pytest.mark.coreml(precisions=["fp32"])
def test_every_declared_size(coreml_model):
    assert coreml_model.declared_shapes() == (
        ((1, 3, 32, 32),), ((1, 3, 48, 48),), ((1, 3, 64, 64),)
    )
    calls = coreml_model.inputs_for_shapes()
    assert [c[0].shape for c in calls] == [(32, 32, 3), (48, 48, 3), (64, 64, 3)]
    assert all(c[0].dtype == np.uint8 for c in calls)
    for inputs in calls:
        assert_parity(coreml_model, *inputs)


@pytest.mark.coreml(precisions=["fp32"])
def test_float_tensor_error_quotes_the_shape_passed(coreml_model):
    with pytest.raises(InputMismatchError, match=r"shape \\(1, 3, 32, 32\\)"):
        coreml_model(torch.rand(1, 3, 32, 32))
"""


def test_image_sizes_are_all_declared_and_fed_as_pixels(pytester: pytest.Pytester, run) -> None:
    conftest = (EXAMPLE / "conftest.py").read_text()
    three = conftest.replace("SIZES = ((32, 32), (48, 48))", "SIZES = ((32, 32), (48, 48), (64, 64))")
    assert three != conftest
    pytester.makeconftest(three)
    pytester.makepyfile(test_sizes=TESTS)
    result = run()
    result.assert_outcomes(passed=2)
