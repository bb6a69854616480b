"""Rank-0 outputs: Core ML returns them as shape (1,); so do the emulator and coreml_model."""

from __future__ import annotations

import pytest

RANK0_CONFTEST = '''
import pytest
import torch


class Norms(torch.nn.Module):
    def forward(self, x):
        return torch.linalg.norm(x), x.max(), x * 2


@pytest.fixture
def torch_model():
    return Norms().eval()


@pytest.fixture
def example_inputs():
    return (torch.linspace(-1.0, 2.0, 12).reshape(3, 4),)
'''

RANK0_TESTS = '''
import numpy as np
import torch
from pytest_coreml_parity import assert_parity


def test_shapes(coreml_model, example_inputs):
    norm, top, doubled = coreml_model(*example_inputs)
    assert norm.shape == (1,) and top.shape == (1,)   # what MLModel.predict returns
    assert doubled.shape == (3, 4)
    np.testing.assert_allclose(top, [2.0])


def test_parity(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)

'''


def test_rank0_outputs_come_back_as_one_element_and_compare_with_torch_scalars(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(RANK0_CONFTEST)
    pytester.makepyfile(test_rank0=RANK0_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--coreml-cache-dir=none")
    result.assert_outcomes(passed=4)


def test_rank0_alignment_is_only_for_the_scalar_case() -> None:
    import numpy as np

    from pytest_coreml_parity.verdict import align_rank0, mismatch_mask

    assert align_rank0(np.array([3.0]), np.array(3.0)).shape == ()
    assert align_rank0(np.array([3.0]), np.array([3.0])).shape == (1,)
    assert align_rank0(np.array([3.0, 4.0]), np.array(3.0)).shape == (2,)
    assert mismatch_mask(np.array([1.0]), np.array(2.0), 1e-4, 1e-5).all()
    with pytest.raises(ValueError, match="shape mismatch"):
        mismatch_mask(np.array([1.0, 2.0]), np.array(2.0), 1e-4, 1e-5)
