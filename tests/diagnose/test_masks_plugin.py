"""Attention masks understood as masks (real conversions, pytester): every fill a user
writes passes the headroom gate on a healthy model; fully masked rows under a -inf fill
fail naming the rows and advising a finite fill; a ``triu(-inf)`` mask under
torch.export (coremltools #2771) names the ``inf - inf``; a converter mismatch on fully
masked rows (torch's sdpa gives 0) says so."""

from __future__ import annotations

import re

import pytest

from pytest_coreml_parity import messages

from .test_hints_plugin import failure_of, section_of

MODELS = '''
import pytest
import torch
import torch.nn.functional as F
from pytest_coreml_parity import assert_parity

FILLS = {
    "inf": float("-inf"),
    "f32min": torch.finfo(torch.float32).min,
    "f16min": torch.finfo(torch.float16).min,
    "1e9": -1e9,
    "3e4": -3e4,
}


class Attention(torch.nn.Module):
    """Causal self-attention with an additive mask (masked_fill on zeros), left padding."""

    def __init__(self, fill, pad=0):
        super().__init__()
        torch.manual_seed(0)
        self.proj = torch.nn.Linear(16, 48)
        self.fill, self.pad = fill, pad

    def forward(self, x):
        q, k, v = self.proj(x).chunk(3, -1)
        i = torch.arange(x.shape[1])
        keep = (i[None, :] <= i[:, None]) & (i[None, :] >= self.pad)
        mask = torch.zeros(x.shape[1], x.shape[1]).masked_fill(~keep, self.fill)
        return torch.softmax(q @ k.transpose(-1, -2) / 4 + mask, -1) @ v


class Triu(torch.nn.Module):
    """The mask as transformers-era code writes it: triu(full(-inf), 1)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.proj = torch.nn.Linear(16, 48)

    def forward(self, x):
        q, k, v = self.proj(x).chunk(3, -1)
        n = x.shape[1]
        mask = torch.triu(torch.full((n, n), float("-inf")), diagonal=1)
        return torch.softmax(q @ k.transpose(-1, -2) / 4 + mask, -1) @ v


class Sdpa(torch.nn.Module):
    """sdpa with a bool mask whose first rows see no key (left padding)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.proj = torch.nn.Linear(16, 48)

    def forward(self, x):
        q, k, v = self.proj(x).chunk(3, -1)
        i = torch.arange(x.shape[1])
        keep = (i[None, :] <= i[:, None]) & (i[None, :] >= 2)
        return F.scaled_dot_product_attention(q[None], k[None], v[None], attn_mask=keep)[0]


@pytest.fixture
def example_inputs():
    return (torch.randn(1, 6, 16, generator=torch.Generator().manual_seed(1)),)
'''

HEALTHY = MODELS + '''

@pytest.fixture(params=sorted(FILLS))
def torch_model(request):
    return Attention(FILLS[request.param]).eval()


def test_healthy(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)
'''

BROKEN = MODELS + '''

@pytest.fixture
def torch_model():
    return Attention(torch.finfo(torch.float32).min, pad=2).eval()


@pytest.mark.coreml(precisions=["fp16"])
def test_padded(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)
'''

TRIU = MODELS + '''

@pytest.fixture
def torch_model():
    return Triu().eval()


@pytest.mark.coreml(precisions=["fp32"], export=True)
def test_triu(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)
'''

SDPA = MODELS + '''

@pytest.fixture
def torch_model():
    return Sdpa().eval()


@pytest.mark.coreml(precisions=["fp32"])
def test_sdpa(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)
'''


_OUTPUT: dict[str, str] = {}


@pytest.fixture
def output(pytester: pytest.Pytester) -> str:
    """Every case runs in one subprocess (11 small conversions); later tests reuse the output."""
    if not _OUTPUT:
        pytester.makepyfile(test_healthy=HEALTHY, test_broken=BROKEN, test_triu=TRIU, test_sdpa=SDPA)
        result = pytester.runpytest_subprocess(
            "--coreml-backend=emulator", "-p", "no:cacheprovider", "--coreml-headroom=4", "-v"
        )
        result.assert_outcomes(passed=10, failed=3)
        _OUTPUT["text"] = result.stdout.str()
    return _OUTPUT["text"]


def test_every_mask_fill_passes_the_headroom_gate_on_a_healthy_model(output: str) -> None:
    # Without the mask rule -3e4 peaks above 65504 / 4, and -inf counts as an overflow.
    for fill in ("1e9", "3e4", "f16min", "f32min", "inf"):
        for precision in ("fp32", "fp16"):
            assert re.search(rf"test_healthy\[{fill}-{precision}\] PASSED", output), (fill, precision)


def test_fully_masked_rows_under_a_float32_min_fill_name_the_rows_and_a_finite_fill(output: str) -> None:
    section = section_of(failure_of(output, "test_padded"))
    hint = next(line for line in section.splitlines() if line.startswith("hint: fully masked rows"))
    assert "fill torch.finfo(torch.float32).min is -inf in fp16" in hint
    assert re.search(r"2 of 6 rows of softmax \S+ are fully masked \(every key masked\): \(0, 0\), \(0, 1\)", hint)
    assert "its output is nan/inf in 2 row(s): the fully masked ones" in hint
    assert "such as -3e4" in hint and "scores.clamp(min=-3e4)" in hint
    assert "FLOAT32 also avoids it" in hint  # not the only advice, and not first
    assert hint.index("-3e4") < hint.index("FLOAT32")
    assert "hint: float16 overflow" not in section


def test_a_triu_minus_inf_mask_under_export_names_inf_minus_inf(output: str) -> None:
    block = failure_of(output, "test_triu")
    section = section_of(block)
    hint = next(line for line in section.splitlines() if line.startswith("hint: the attention mask itself"))
    # traced under torch.export, coremltools folds x - band_part(x) into an all-NaN constant
    assert re.match(
        r"hint: the attention mask itself is NaN \(inf - inf\): add \S+ reads a mask constant "
        r"that coremltools already folded to NaN",
        hint,
    )
    assert re.search(r"softmax \S+ has no fully masked row, but its output is nan/inf in every row: \(0, 0\)", hint)
    assert "coremltools #2771" in hint and "masked_fill(~causal, -3e4)" in hint
    assert "FLOAT32" not in hint  # no compute precision fixes it
    assert re.search(r"first non-finite op: add \S+ .*y \(const\) all nan", section)


def test_a_converter_mismatch_on_fully_masked_rows_says_so(output: str) -> None:
    section = section_of(failure_of(output, "test_sdpa"))
    hint = next(line for line in section.splitlines() if line.startswith("hint: converter mismatch"))
    assert "The fully masked rows explain it: 2 of 6 rows of softmax" in hint
    assert "(0, 0, 0), (0, 0, 1)" in hint
    assert "returns 0, while Core ML's softmax gives uniform attention" in hint
    assert messages.FP32_ADVICE.format(which="sensitive") not in hint
