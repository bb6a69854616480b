"""Errors without noise: an input error shows the test's line and the message once,
without the plugin's source; the fixed-shape error's declarations are paste-ready
(each is pasted into a test and run, on real conversions)."""

from __future__ import annotations

import re

import pytest

from .conftest import SCALE_CONFTEST

BATCH_TEST = """
import pytest
import torch
import coremltools as ct
import numpy as np
from pytest_coreml_parity import assert_parity

{marker}
def test_batch8(coreml_model):
    assert_parity(coreml_model, torch.linspace(-1.0, 1.0, 24).reshape(8, 3))

{marker}
def test_count(coreml_model, example_inputs):
    coreml_model(*example_inputs, *example_inputs)
"""


def test_input_errors_hide_plugin_frames_and_the_hint_is_paste_ready(
    pytester: pytest.Pytester, run
) -> None:
    pytester.makeconftest(SCALE_CONFTEST)  # example input (2, 3)
    pytester.makepyfile(test_batch=BATCH_TEST.format(marker='@pytest.mark.coreml(precisions=["fp32"])'))
    result = run()
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    assert "def prepare" not in out and "raise InputMismatchError" not in out  # no plugin source
    assert "_coreml_parity" not in out.split("short test summary")[0].replace("pytest_coreml_parity.errors", "")
    assert out.split("short test summary info")[0].count("converted models have fixed input shapes") == 1  # the message, once
    assert out.split("short test summary info")[0].count("pass one tensor or array per example input") == 1
    result.stdout.fnmatch_lines(
        ["*has shape (8, 3), but Scale was converted with example input shape (2, 3)*"
         "To call it with shape (8, 3) too, declare the shapes*"]
    )
    markers = re.findall(r"^E\s+(@pytest\.mark\.coreml\(convert_kwargs=.*\))$", out, re.MULTILINE)
    assert len(markers) == 2, out  # enumerated, then ranged
    assert "EnumeratedShapes(shapes=[(2, 3), (8, 3)])" in markers[0]
    assert "RangeDim(lower_bound=2, upper_bound=8)" in markers[1]
    for i, marker in enumerate(markers):  # pasted as the hint says: batch 8 now passes
        pytester.makepyfile(**{f"test_fixed{i}": BATCH_TEST.format(marker=marker)})
        fixed = run(f"test_fixed{i}.py", "-k", "batch8")
        fixed.assert_outcomes(passed=2, deselected=2)  # fp32 and fp16


def test_a_bad_gate_argument_shows_only_the_test_line(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(
        test_gate="""
        import pytest
        from pytest_coreml_parity import assert_parity

        @pytest.mark.coreml(precisions=["fp32"])
        def test_gate(coreml_model, example_inputs):
            assert_parity(coreml_model, *example_inputs, min_snr=-3)
        """
    )
    result = run()
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "verdict.py" not in out and "compare.py" not in out, out
    assert out.split("short test summary info")[0].count("min_snr must be a finite number >= 0") == 1


def test_an_unknown_gate_keyword_shows_only_the_test_line(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(
        test_gate="""
        import pytest
        from pytest_coreml_parity import assert_parity

        @pytest.mark.coreml(precisions=["fp32"])
        def test_gate(coreml_model, example_inputs):
            assert_parity(coreml_model, *example_inputs, min_snrr=30)
        """
    )
    result = run()
    result.assert_outcomes(failed=1)
    out = result.stdout.str().split("short test summary info")[0]
    assert "verdict.py" not in out and "def check_keywords" not in out, out
    assert out.count("unexpected keyword argument 'min_snrr'; did you mean 'min_snr'") == 1, out
