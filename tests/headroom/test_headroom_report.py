"""Headroom on passing tests: the report, the JSON file, and the gate (real conversions)."""

from __future__ import annotations

import json

import pytest

from pytest_coreml_parity import messages
from pytest_coreml_parity.diagnose.headroom import SHOWN
from tests.plugin.conftest import SCALE_CONFTEST

from .conftest import copy_example

BIG_DENOMINATOR = '''
import torch
from pytest_coreml_parity import assert_parity


def test_big_b(coreml_model):
    a = torch.ones(8, 4)
    a[..., 2] = 200.0  # rb * rb = 40000; den = 40001 is stored as 40000 in fp16
    assert_parity(coreml_model, a)
'''

#: Scale (relu(x) * 2) fed 30000: its mul peaks at 60000, 1.09x below 65504.
PEAK_60000 = '''
import pytest
import torch
from pytest_coreml_parity import assert_parity


def test_near_cliff(coreml_model):
    assert_parity(coreml_model, torch.full((2, 3), 30000.0))
'''


def test_report_lists_the_complex_division_mul_near_the_fed_value(
    pytester: pytest.Pytester, run
) -> None:
    copy_example(pytester)
    pytester.makepyfile(test_big=BIG_DENOMINATOR)
    result = run("test_big.py", "--coreml-precisions=fp16", "--coreml-headroom-report")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        f"*{messages.HEADROOM_SECTION}*",
        "ComplexDiv [[]fp16[]]: 1 input(s) over 1 test(s); closest to 65504:",
        "*mul * (float16): peak 40000, margin 1.64x at *: den = rb * rb + ib * ib",
    ])


def test_no_headroom_section_unless_asked(pytester: pytest.Pytester, run) -> None:
    copy_example(pytester)
    pytester.makepyfile(test_big=BIG_DENOMINATOR)
    result = run("test_big.py", "--coreml-precisions=fp16")
    result.assert_outcomes(passed=1)
    assert messages.HEADROOM_SECTION not in result.stdout.str()


def test_gate_fails_at_margin_4_for_a_60000_peak_and_names_the_op(
    pytester: pytest.Pytester, run
) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(test_peak=PEAK_60000)
    result = run("test_peak.py", "--coreml-precisions=fp16", "--coreml-headroom=4")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*headroom below margin 4 at fp16: mul * peaks at 60000 (limit 65504/4 = 16376; "
        "margin 1.09x) on the 1 input(s) this test ran; torch: *return torch.relu(x) * 2.0*",
    ])


def test_gate_passes_at_margin_1(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(test_peak=PEAK_60000)
    run("test_peak.py", "--coreml-precisions=fp16", "--coreml-headroom=1").assert_outcomes(passed=1)


def test_gate_from_marker_and_warn_action_from_ini(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(
        test_peak=PEAK_60000.replace(
            "def test_near_cliff", "@pytest.mark.coreml(headroom=2)\ndef test_near_cliff"
        )
    )
    # The suite runs with warnings as errors; here the warning must stay a warning.
    pytester.makeini(
        "[pytest]\ncoreml_headroom_action = warn\n"
        "filterwarnings =\n    default::pytest_coreml_parity.headroom.HeadroomWarning\n"
    )
    result = run("test_peak.py", "--coreml-precisions=fp16")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*HeadroomWarning: headroom below margin 2 at fp16: mul *"])


def test_gate_skips_fp32_ops(pytester: pytest.Pytester, run) -> None:
    """At fp32 the ops are float32: 65504 is not their cliff, so the gate does not apply."""
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(test_peak=PEAK_60000)
    run("test_peak.py", "--coreml-precisions=fp32", "--coreml-headroom=4").assert_outcomes(passed=1)


def test_bad_margin_names_its_source(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(test_peak=PEAK_60000)
    result = run("test_peak.py", "--coreml-headroom=0.5")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        "*" + messages.BAD_MARGIN.format(where="--coreml-headroom", value="0.5") + "*"
    ])


def test_headroom_json_in_the_report_dir(pytester: pytest.Pytester, run) -> None:
    copy_example(pytester)
    pytester.makepyfile(test_big=BIG_DENOMINATOR)
    report = pytester.path / "reports"
    run("test_big.py", "--coreml-precisions=fp16", f"--coreml-report-dir={report}").assert_outcomes(
        passed=1
    )
    files = sorted(report.glob("*.headroom.json"))
    assert [f.name for f in files] == ["test_big.py_test_big_b_fp16.headroom.json"]
    data = json.loads(files[0].read_text())["headroom"]
    assert (data["model"], data["precision"], data["calls"]) == ("ComplexDiv", "fp16", 1)
    peaks = [op["peak"] for op in data["ops"]]
    assert peaks == sorted(peaks, reverse=True)
    mul = next(op for op in data["ops"] if op["op_type"] == "mul" and op["peak"] == 40000.0)
    assert "den = rb * rb + ib * ib" in mul["source"]
    assert SHOWN >= 1


def test_headroom_rides_to_the_xdist_controller(pytester: pytest.Pytester, shared_cache) -> None:
    """Workers measure; the controller merges two tests of one model and prints the summary."""
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(
        test_peak=PEAK_60000
        + "\n\ndef test_small(coreml_model):\n"
        + "    assert_parity(coreml_model, torch.full((2, 3), 5.0))\n"
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "1", f"--coreml-cache-dir={shared_cache}",
        "--coreml-precisions=fp16", "--coreml-headroom-report",
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([
        f"*{messages.HEADROOM_SECTION}*",
        "Scale [[]fp16[]]: 2 input(s) over 2 test(s); closest to 65504:",
        "*mul * (float16): peak 60000, margin 1.09x at *return torch.relu(x) * 2.0",
    ])
