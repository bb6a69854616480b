"""The fp32 preset against the known fp32 converter bugs, through the plugin (pytester,
real conversions, the real emulator): they still fail under the scale-aware fp32 preset
(docs/tolerances.md, "The fp32 preset"). The healthy side, real zoo models passing fp32,
is tests/zoo/test_fp32_healthy.py."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_coreml_parity import messages

#: coremltools #2821: rms_norm lowered as x / max|x| first, so eps is inflated by max|x|^2.
#: An LLM-width norm (4096, eps 1e-5) with one large feature (a "massive activation") is
#: about 2% off at fp32 (benchmarks/fp32_evidence.py: SNR 37 dB); an all-zero row is 0/0.
RMSNORM = """
import pytest
import torch
from pytest_coreml_parity import assert_parity


class LlamaNorm(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = torch.nn.RMSNorm(4096, eps=1e-5)
        self.head = torch.nn.Linear(4096, 64)

    def forward(self, x):
        return self.head(self.norm(x))


@pytest.fixture
def torch_model():
    torch.manual_seed(0)
    return LlamaNorm().eval()


@pytest.fixture
def example_inputs():
    torch.manual_seed(0)
    x = torch.randn(2, 4096)
    x[:, 7] = 100.0
    return (x,)


@pytest.mark.coreml(precisions=["fp32"])
def test_outlier(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)


@pytest.mark.coreml(precisions=["fp32"])
def test_zero_row(coreml_model, example_inputs):
    x = example_inputs[0].clone()
    x[:, 7] = 1.0
    x[1] = 0.0
    assert_parity(coreml_model, x)
"""

#: coremltools #2771: triu lowered as x - band_part(x), so -inf - -inf is nan. Captured by
#: torch.export the mask is computed in the program and every output is nan; by
#: torch.jit.trace it folds to a constant and the program is right.
CAUSAL = """
import math

import pytest
import torch
from pytest_coreml_parity import assert_parity


class CausalAttention(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = torch.nn.Linear(16, 48)

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(16)
        mask = torch.triu(torch.full_like(scores, float("-inf")), 1)
        return torch.softmax(scores + mask, dim=-1) @ v


@pytest.fixture
def torch_model():
    torch.manual_seed(0)
    return CausalAttention().eval()


@pytest.fixture
def example_inputs():
    torch.manual_seed(0)
    return (torch.randn(1, 8, 16),)


@pytest.mark.coreml(precisions=["fp32"], export=True)
def test_exported(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)


@pytest.mark.coreml(precisions=["fp32"])
def test_traced(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)
"""


def test_rmsnorm_eps_inflation_and_zero_row_still_fail_fp32(pytester: pytest.Pytester, run: Callable[..., pytest.RunResult]) -> None:
    pytester.makepyfile(test_rmsnorm=RMSNORM)
    result = run("-v")
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    assert "metrics (fp32 preset):" in out
    result.stdout.fnmatch_lines(["E *   elements * " + messages.GATE_FAILED])
    result.stdout.fnmatch_lines(["E *   SNR (dB) *>= * " + messages.GATE_FAILED])  # the outlier: ~37 dB
    result.stdout.fnmatch_lines(["E *non-finite in Core ML: *nan*"])  # the zero row: 0/0


def test_triu_inf_mask_fails_fp32_when_exported_and_passes_when_folded(pytester: pytest.Pytester, run: Callable[..., pytest.RunResult]) -> None:
    pytester.makepyfile(test_causal=CAUSAL)
    result = run("-v")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*test_exported*FAILED*", "*test_traced*PASSED*"])
    result.stdout.fnmatch_lines(["E *non-finite in Core ML: *nan*"])
