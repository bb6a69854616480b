"""extreme_tensors and model_inputs: coverage of fp16 danger zones, and readable shrinking.

The last two tests fuzz real conversions through the plugin (pytester): the complex
division with ``model_inputs`` and a masked attention block with ``attention_masks``.
Structured strategies are tested one by one in tests/strategies/.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from pytest_coreml_parity import messages
from pytest_coreml_parity.strategies import (
    FP16_MAX,
    INPUT_OVERFLOW,
    extreme_floats,
    extreme_tensors,
    model_inputs,
)

from .conftest import EXAMPLE_DIR

QUICK = settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


@QUICK
@given(extreme_tensors((3, 4)))
def test_tensors_are_finite_float32(t: torch.Tensor) -> None:
    assert t.dtype == torch.float32 and t.shape == (3, 4)
    assert torch.isfinite(t).all()
    assert t.abs().max() <= 1e6


@pytest.mark.parametrize(
    ("name", "predicate", "expected"),
    [
        ("product overflows", lambda x: abs(x) >= 256, 256.0),
        ("past fp16 max", lambda x: abs(x) > FP16_MAX, 65520.0),
        ("nonzero", lambda x: x != 0, 1.0),
    ],
)
def test_shrinks_to_named_boundaries(name: str, predicate, expected: float) -> None:
    # derandomize: shrink quality is heuristic, and a random start can end at 65505
    # (the (6e4, 1e6) range) instead of switching to the named value; seeded, it is stable.
    found = find(
        extreme_floats(),
        predicate,
        settings=settings(database=None, max_examples=2000, derandomize=True),
    )
    assert found == expected, name


def test_reaches_every_danger_zone() -> None:
    seen: set[str] = set()

    @settings(max_examples=300, database=None, deadline=None)
    @given(extreme_floats(max_magnitude=3.4e38))
    def collect(x: float) -> None:
        m = abs(x)
        if m > FP16_MAX:
            seen.add("overflow")
        if 256 <= m <= FP16_MAX:
            seen.add("band")
        if 0 < m < 6.1e-5:
            seen.add("fp16-subnormal-or-tiny")
        if m > 1e30:
            seen.add("huge")
        if x < 0:
            seen.add("negative")
        if x == 0:
            seen.add("zero")

    collect()
    assert seen == {"overflow", "band", "fp16-subnormal-or-tiny", "huge", "negative", "zero"}


def test_bounds_are_respected_and_validated() -> None:
    x = find(extreme_floats(min_magnitude=10.0, max_magnitude=20.0), lambda v: True)
    assert 10.0 <= abs(x) <= 20.0
    with pytest.raises(ValueError, match="min_magnitude"):
        extreme_floats(min_magnitude=5.0, max_magnitude=1.0)


@QUICK
@given(st.data())
def test_model_inputs_match_example_inputs(data: st.DataObject) -> None:
    examples = (torch.zeros(2, 3), torch.tensor([0, 4, 2]))
    floats, ints = data.draw(model_inputs(examples))
    assert floats.shape == (2, 3) and floats.dtype == torch.float32
    assert ints.dtype == torch.int64 and ints.shape == (3,)
    assert ((ints >= 0) & (ints <= 4)).all()
    assert np.isfinite(floats.numpy()).all()


# ------------------------------------------------------------------ end to end, real conversions

COMPLEX_DIV_FUZZ = """
from hypothesis import given
from hypothesis import strategies as st
from pytest_coreml_parity import assert_parity
from pytest_coreml_parity.strategies import fuzz_settings, model_inputs

@fuzz_settings(max_examples=100, database=None)
@given(data=st.data())
def test_fuzz(coreml_model, data):
    inputs = data.draw(model_inputs(coreml_model), label="inputs")
    assert_parity(coreml_model, *inputs)
"""


def _draw_numbers(output: str, label: str) -> list[float]:
    """Every number printed in a falsifying example's ``Draw n (label): ...`` block."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if f"({label}):" in line)
    block = [lines[start].split(f"({label}):", 1)[1]]
    for line in lines[start + 1 :]:
        if "])" in block[-1] and block[-1].rstrip().endswith(",)"):
            break
        block.append(line)
    text = " ".join(block)
    assert "inf" not in text and "nan" not in text, text
    return [float(v) for v in re.findall(r"-?\d+\.?\d*(?:e[-+]?\d+)?", text.replace("E ", " "))]


def test_complex_division_fuzz_fails_at_fp16_with_finite_inputs_on_the_mul(
    pytester: pytest.Pytester, run
) -> None:
    pytester.path.joinpath("conftest.py").write_text((EXAMPLE_DIR / "conftest.py").read_text())
    pytester.makepyfile(test_fuzz=COMPLEX_DIV_FUZZ)
    result = run()
    result.assert_outcomes(passed=1, failed=1)  # fp32 passes, fp16 fails
    out = result.stdout.str()
    # The falsifying input is finite in float16: the overflow happens inside the model ...
    numbers = _draw_numbers(out, "inputs")
    assert numbers and max(abs(v) for v in numbers) <= FP16_MAX, numbers
    assert max(abs(v) for v in numbers) < FP16_MAX  # not shrunk to the boundary: 256² overflows
    assert INPUT_OVERFLOW not in out
    # ... and the diagnosis (in the failure or its report section) names the mul and its line:
    # the denominator (derandomized, as in CI), or on some random seeds a numerator product
    # such as ia * ib = 9460 * 7 (the shrinker moves one element at a time; docs/strategies.md).
    mul_line = re.search(
        r"first non-finite op: mul \S+ \(ComplexDiv.forward, conftest.py:(\d+): (.*?)\): inputs", out
    )
    assert mul_line is not None, out
    assert mul_line.group(2) in (
        "den = rb * rb + ib * ib",
        "return torch.stack([(ra * rb + ia * ib) / den, (ia * rb - ra * ib) / den], -1)",
    ), mul_line.group(2)


MASKED_ATTENTION_CONFTEST = """
import pytest
import torch


class MaskedAttention(torch.nn.Module):
    def forward(self, x, attention_mask):
        scores = x @ x.transpose(-1, -2) / 2.0
        keep = attention_mask[:, None, :] > 0.5
        additive = torch.where(keep, 0.0, torch.finfo(torch.float32).min)
        return torch.softmax(scores + additive, dim=-1) @ x


@pytest.fixture
def torch_model():
    return MaskedAttention().eval()


@pytest.fixture
def example_inputs():
    return (torch.linspace(-1.0, 1.0, 40).reshape(2, 5, 4), torch.ones(2, 5))
"""

MASKED_ATTENTION_FUZZ = """
from pathlib import Path

from hypothesis import given
from pytest_coreml_parity import assert_parity
from pytest_coreml_parity.strategies import attention_masks, extreme_tensors, fuzz_settings

SEEN = {"examples": 0}


@fuzz_settings(database=None)  # hypothesis' default budget: 100 examples
@given(x=extreme_tensors((2, 5, 4), max_magnitude=4.0), mask=attention_masks((2, 5), form="binary"))
def test_masked_attention(coreml_model, x, mask):
    if coreml_model.precision == "fp16":
        SEEN["examples"] += 1
    try:
        assert_parity(coreml_model, x, mask)
    except AssertionError:
        fully_masked = bool((mask == 0).all(dim=-1).any())
        with Path("failures.txt").open("a") as log:
            log.write(f"{SEEN['examples']} {int(fully_masked)}\\n")
        raise
"""


def test_masked_attention_fuzz_finds_the_fully_masked_row_nan_at_fp16(
    pytester: pytest.Pytester, run
) -> None:
    pytester.makeconftest(MASKED_ATTENTION_CONFTEST)
    pytester.makepyfile(test_attention=MASKED_ATTENTION_FUZZ)
    result = run()
    result.assert_outcomes(passed=1, failed=1)  # fp32 passes, fp16 fails
    result.stdout.fnmatch_lines([f"*{messages.COREML_NONFINITE}*"])
    failures = [line.split() for line in (pytester.path / "failures.txt").read_text().splitlines()]
    first_failure = int(failures[0][0])
    assert first_failure <= 100  # found within the generation budget, not by luck of shrinking
    # Every failing example, the shrunk one included, has a fully masked row: that is the nan.
    assert all(flag == "1" for _, flag in failures), failures
    # The counterexample shows it: one sequence entirely padded.
    result.stdout.fnmatch_lines(["*mask=tensor([[][[]*", "*[[]0., 0., 0., 0., 0.[]]*"])
