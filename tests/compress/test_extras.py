"""A precision whose compression needs an optional package names the extra that installs it."""

from __future__ import annotations

import pytest

from pytest_coreml_parity import messages

from .models import MODELS

NO_SKLEARN = MODELS + '''
import sys

import pytest
from pytest_coreml_parity import assert_parity

sys.modules["sklearn"] = None  # a project without scikit-learn (pytester restores sys.modules)


@pytest.fixture
def torch_model():
    return Healthy().eval()


@pytest.fixture
def example_inputs():
    return (torch.randn(8, 32, generator=torch.Generator().manual_seed(1)),)


@pytest.mark.coreml(precisions=["palettize4"])
def test_parity(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)
'''


def test_palettize4_without_scikit_learn_names_the_compress_extra(run, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_blocked=NO_SKLEARN)
    result = run("--coreml-cache-dir=none")
    result.assert_outcomes(failed=1)
    text = messages.PRECISION_NEEDS_EXTRA.format(
        precision="palettize4", distribution="scikit-learn", module="sklearn", extra="compress"
    )
    result.stdout.fnmatch_lines([f"*{text.replace('[', '[[]')}*"])  # [compress] is not a class
