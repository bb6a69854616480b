"""The hints as a user reads them: the assertion stays neutral, the diagnosis section says
what happened (pytester, real conversions)."""

from __future__ import annotations

import re

import pytest

from pytest_coreml_parity import messages

from ..complex_div_source import COMPLEX_DIV_SOURCE

COMPLEX = '''
import pytest
import torch
from pytest_coreml_parity import assert_parity
''' + COMPLEX_DIV_SOURCE + '''

@pytest.mark.coreml(precisions=["fp16"])
def test_overflow(coreml_model):
    a = torch.randn(8, 4)
    a[3] = torch.tensor([300.0, 1.0, 300.0, 1.0])
    assert_parity(coreml_model, a)
'''

RMSNORM = '''
import pytest
import torch
from pytest_coreml_parity import assert_parity


class Normed(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = torch.nn.RMSNorm(8, eps=1e-6)

    def forward(self, x):
        return self.norm(x) * 2.0


@pytest.fixture
def torch_model():
    return Normed().eval()


@pytest.fixture
def example_inputs():
    torch.manual_seed(0)
    return (torch.randn(4, 8),)


@pytest.mark.coreml(precisions=["fp32"])
def test_zero_row(coreml_model):
    x = torch.randn(4, 8)
    x[2] = 0.0
    assert_parity(coreml_model, x)
'''


def section_of(block: str) -> str:
    """The diagnosis section of a failure block (below its separator line)."""
    parts = re.split(rf"^-+ {re.escape(messages.DIAGNOSIS_SECTION)} -+$", block, maxsplit=1, flags=re.M)
    assert len(parts) == 2, "no diagnosis section"
    return parts[1]


def failure_of(output: str, test: str) -> str:
    """The failure block of ``test`` (its traceback and report sections)."""
    failures = output.split("short test summary info")[0]
    blocks = re.split(r"^_{3,} (\S+) _{3,}$", failures, flags=re.M)
    named = dict(zip(blocks[1::2], blocks[2::2], strict=True))
    return next(body for name, body in named.items() if name.startswith(test))


_OUTPUT: list[str] = []


@pytest.fixture
def output(pytester: pytest.Pytester) -> str:
    """Both failing tests run once per session (4 conversions); later tests reuse the output."""
    if not _OUTPUT:
        pytester.makepyfile(test_complex=COMPLEX, test_rmsnorm=RMSNORM)
        result = pytester.runpytest_subprocess("--coreml-backend=emulator", "-p", "no:cacheprovider")
        result.assert_outcomes(failed=2)
        _OUTPUT.append(result.stdout.str())
    return _OUTPUT[0]


def test_fp16_overflow_assertion_is_neutral_and_the_section_advises_float32(output: str) -> None:
    block = failure_of(output, "test_overflow")
    assert f"E       {messages.COREML_NONFINITE}." in block
    assert f"E       {messages.PARITY_HINT}" in block
    assert "E       hint: float16 overflow" not in block  # the assertion does not guess
    section = section_of(block)
    hint = next(line for line in section.splitlines() if line.startswith("hint: float16 overflow"))
    assert re.match(r"hint: float16 overflow: mul op_\d+_cast_fp16 computes 90000 ", hint)
    assert "compute_precision=ct.precision.FLOAT32" in hint


def test_fp32_rmsnorm_gets_a_converter_hint_with_op_and_line_and_no_float32(output: str) -> None:
    block = failure_of(output, "test_zero_row")
    assert f"E       {messages.PARITY_HINT}" in block
    section = section_of(block)
    assert "first op departing from PyTorch" in section and "torch rms_norm" in section
    assert "called from test_rmsnorm.py:" in section and "return self.norm(x) * 2.0" in section
    assert "hint: converter mismatch: the fp32 conversion already departs from PyTorch at torch rms_norm" in section
    assert "FLOAT32" not in block
