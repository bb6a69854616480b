"""The gate table is the one list of gates: everything else derives from its rows.

A new gate is one row of ``gates.GATE_TABLE`` and its test: ``verdict.Gates``' field,
the ``Settings`` record's ``gates`` entry, the option, ini name, marker keyword, the
marker's signature, the help, the metrics row and the keyword ``assert_parity`` (or
``assert_generation``) accepts all derive from the row. ``test_a_new_gate_is_one_row``
adds a row before the plugin loads (as an edit of ``gates.py`` would) and follows it
through a real pytest run.
"""

from __future__ import annotations

import dataclasses
import inspect
import re

import numpy as np
import pytest

from pytest_coreml_parity import settings, verdict
from pytest_coreml_parity.compare import _METRIC_ROWS, assert_parity
from pytest_coreml_parity.decoders.generation import (
    DEFAULT_PRESET,
    GENERATION_PRESETS,
    assert_generation,
)
from pytest_coreml_parity.errors import SettingError
from pytest_coreml_parity.gates import (
    GATE_TABLE,
    GATES,
    GENERATION,
    PARITY,
    gate_number,
    names,
    tolerance_number,
)
from pytest_coreml_parity.plugin import _HELP

NAMES = [row.name for row in GATE_TABLE]


def test_everything_derives_from_the_table() -> None:
    parity = [row.name for row in GATE_TABLE if row.check == PARITY]
    assert [f.name for f in dataclasses.fields(verdict.Gates)] == ["rtol", "atol", *parity]
    assert list(verdict.GATES) == parity
    assert list(settings.GATES) == list(GATES) == NAMES
    assert "gates" in {f.name for f in dataclasses.fields(settings.Settings)}
    assert not set(NAMES) & {f.name for f in dataclasses.fields(settings.Settings)}  # one field
    assert set(NAMES) <= set(settings.MARKER_KEYWORDS)
    for row in GATE_TABLE:
        assert settings.OPTIONS[row.name][:2] == (row.flag, row.ini)
        assert _HELP[row.name] == (row.metavar, row.help)
        assert f"{row.name}=None" in settings.MARKER_SIGNATURE
    rows = {gate for _label, _attribute, gate in _METRIC_ROWS if gate is not None}
    assert rows == {row.name for row in GATE_TABLE if row.label is not None}
    # assert_parity and assert_generation take **gates, checked against the table
    assert inspect.signature(assert_parity).parameters["gates"].kind is inspect.Parameter.VAR_KEYWORD
    assert inspect.signature(assert_generation).parameters["gates"].kind is inspect.Parameter.VAR_KEYWORD
    assert set(GENERATION_PRESETS["fp16"]) == set(DEFAULT_PRESET) == set(names(GENERATION))


def test_a_keyword_that_is_no_gate_of_the_check_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"^assert_parity\(\) got an unexpected keyword argument 'min_snrr'; did you mean 'min_snr'"):
        assert_parity(None, min_snrr=30)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"'min_token_match' \(min_token_match is a gate of the generation check\)"):
        assert_parity(None, min_token_match=1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^assert_generation\(\) got an unexpected keyword argument 'min_snr' \(min_snr is a gate of the parity check\)"):
        assert_generation(None, [1, 2], min_snr=30)  # type: ignore[arg-type]


def test_rtol_and_atol_follow_one_rule_from_every_source() -> None:
    for value in (-1.0, float("nan"), float("inf"), True):
        assert tolerance_number(value, text=False) is None
        assert tolerance_number(value, text=True) is None
    assert tolerance_number("1e-2", text=True) == 1e-2
    assert tolerance_number("1e-2", text=False) is None  # an argument must be a number
    with pytest.raises(SettingError, match=r"^--coreml-rtol: rtol must be a non-negative number"):
        settings.parse_tolerance("nan", "--coreml-rtol", "rtol")
    with pytest.raises(SettingError, match=r"^@pytest.mark.coreml in t: rtol: rtol must be a non-negative number"):
        settings.parse_tolerance(True, "@pytest.mark.coreml in t: rtol", "rtol")  # a bool is no number
    with pytest.raises(SettingError, match=r"^assert_parity\(atol=\.\.\.\): atol must be a finite non-negative number"):
        verdict.check_tolerance(float("inf"), "assert_parity(atol=...)", "atol")


def test_the_one_rule_reads_the_fraction_flag() -> None:
    assert gate_number(0.5, "min_cosine", text=False) == 0.5
    assert gate_number(1.5, "min_cosine", text=False) is None  # a fraction
    assert gate_number(1.5, "min_snr", text=False) == 1.5
    assert gate_number("1.5", "min_snr", text=False) is None  # an argument must be a number
    assert gate_number("1.5", "min_snr", text=True) == 1.5  # command line, ini, marker: text
    assert gate_number(" OFF ", "min_snr", text=False) == "off"
    assert gate_number(True, "min_snr", text=True) is None


def test_both_sources_name_themselves_with_one_rule() -> None:
    with pytest.raises(SettingError, match=r"^--coreml-min-top1: min_top1 must be a number in \[0, 1\]"):
        settings.parse_gate("2", "--coreml-min-top1", "min_top1")
    with pytest.raises(SettingError, match=r"^assert_parity\(min_top1=\.\.\.\): min_top1 must be a number in \[0, 1\]"):
        verdict.check_gate(2, "assert_parity(min_top1=...)", "min_top1")


def test_a_new_row_reads_its_metric_and_fraction_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    """In process: a row added to the table gets its value from its metric and its range
    from its fraction flag: here a second cosine gate under another name."""
    from pytest_coreml_parity import gates

    row = gates.GateRow("min_cosine_strict", "cosine", True, None, "C", "a stricter cosine floor")
    monkeypatch.setattr(gates, "GATE_ROWS", {**gates.GATE_ROWS, row.name: row})
    monkeypatch.setattr(verdict, "GATE_ROWS", gates.GATE_ROWS)
    e = np.linspace(-1.0, 1.0, 64)
    a = e + 0.05 * np.cos(np.arange(64))
    pair = verdict._Pair(a, e)
    assert pair.value("min_cosine_strict") == pytest.approx(pair.value("min_cosine"))
    assert gate_number(1.5, "min_cosine_strict", text=False) is None  # its fraction flag


#: The row a new gate would be, added where an edit of gates.py adds it: before anything
#: derives from the table (``-p new_gate`` loads before the plugin's entry point).
NEW_GATE = """
from pytest_coreml_parity import gates

ROW = gates.GateRow(
    "min_snr_strict", "snr", False, "SNR strict (dB)", "DB", "a stricter SNR floor (dB)", unit="dB", row=6
)
gates.GATE_TABLE = (*gates.GATE_TABLE, ROW)
gates.GATE_ROWS[ROW.name] = ROW
gates.GATES = tuple(gates.GATE_ROWS)
"""

NEW_GATE_TESTS = """
import dataclasses

import pytest

from pytest_coreml_parity import assert_parity, settings, verdict


def test_derived(request):
    assert request.config.getoption("coreml_min_snr_strict") == "5"
    assert request.config.getini("coreml_min_snr_strict") == "7"
    assert "min_snr_strict=None" in settings.MARKER_SIGNATURE
    assert [f.name for f in dataclasses.fields(verdict.Gates)][-1] == "min_snr_strict"
    assert verdict.PRESETS["fp16"].min_snr_strict is None  # no preset: off


@pytest.mark.coreml(precisions=["fp16"])
def test_cli_beats_ini(coreml_model, example_inputs):
    assert coreml_model.gates["min_snr_strict"] == 5.0
    assert_parity(coreml_model, *example_inputs)


@pytest.mark.coreml(precisions=["fp16"], min_snr_strict=1000)
def test_marker_fails(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)


@pytest.mark.coreml(precisions=["fp16"], min_snr_strict=1000)
def test_argument_beats_marker(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs, min_snr_strict="off")


@pytest.mark.coreml(precisions=["fp16"], min_snr_strict=-1)
def test_bad_marker_value(coreml_model):
    pass
"""


def test_a_new_gate_is_one_row(pytester: pytest.Pytester) -> None:
    """One row, nothing else: the option, the ini key, the marker keyword, the verdict's
    field and metrics row, and ``assert_parity``'s keyword all follow, in a real run."""
    from tests.plugin.conftest import SCALE_CONFTEST

    pytester.makepyfile(new_gate=NEW_GATE)
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makeini("[pytest]\ncoreml_min_snr_strict = 7\n")
    pytester.makepyfile(test_new_gate=NEW_GATE_TESTS)
    result = pytester.runpytest_subprocess(
        "-p", "new_gate", "-p", "no:cacheprovider", "-n", "0", "--coreml-min-snr-strict=5", "-rf"
    )
    result.assert_outcomes(passed=3, failed=1, errors=1)
    text = result.stdout.str()
    assert re.search(r"SNR strict \(dB\) +[\d.]+ +>= 1000 +FAIL", text), text
    assert "min_snr_strict configured" in text  # the metrics table names the gate's source
    assert "@pytest.mark.coreml in test_new_gate.py::test_bad_marker_value: min_snr_strict: " in text
    assert "min_snr_strict must be a finite number >= 0" in text
