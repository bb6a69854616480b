"""Guided fuzzing: hypothesis.target() inside @given on the emulator, silent elsewhere."""

from __future__ import annotations

import pytest

from pytest_coreml_parity.compare import TARGET_ERROR, TARGET_PEAK
from tests.plugin.conftest import SCALE_CONFTEST

FUZZ = '''
import torch
from hypothesis import given, settings, strategies as st
from pytest_coreml_parity import assert_parity


@settings(max_examples=15, database=None)
@given(v=st.floats(1.0, 100.0))
def test_fuzz(coreml_model, v):
    assert_parity(coreml_model, torch.full((2, 3), v))
    print("PEAK", coreml_model.last_peak)


def test_plain(coreml_model):
    assert_parity(coreml_model, torch.full((2, 3), 3.0))
    assert coreml_model.last_peak is None  # no recording outside @given
'''


def test_target_observations_inside_given(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(test_fuzz=FUZZ)
    result = run("--coreml-precisions=fp16", "--hypothesis-show-statistics", "-s")
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    assert "Highest target scores" in out
    assert TARGET_ERROR in out and TARGET_PEAK in out
    # relu(x) * 2 of at most 100: the highest peak score is at most 200 / 65504.
    peaks = [float(line.split()[1]) for line in out.splitlines() if line.startswith("PEAK ")]
    assert peaks and all(0 < p <= 200 / 65504 for p in peaks)


def test_guide_off_makes_no_observations(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(test_fuzz=FUZZ)
    result = run(
        "--coreml-precisions=fp16", "--hypothesis-show-statistics", "-s", "--coreml-guide=false"
    )
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    assert "Highest target scores" not in out
    assert "PEAK None" in out
