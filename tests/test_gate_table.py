"""The gate table is the one list of gates: every place that still spells a gate agrees with it.

A new gate is one row of ``gates.GATE_TABLE`` (plus a field in ``verdict.Gates`` and
``settings.Settings`` and a keyword of ``assert_parity``, which this test names when
missing) and its test; its option, ini name, marker keyword, help and metrics row
derive from the row.
"""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest

from pytest_coreml_parity import settings, verdict
from pytest_coreml_parity.compare import _METRIC_ROWS, assert_parity
from pytest_coreml_parity.errors import SettingError
from pytest_coreml_parity.gates import GATE_TABLE, GATES, gate_number
from pytest_coreml_parity.plugin import _HELP

NAMES = [row.name for row in GATE_TABLE]


def test_every_gate_spelling_agrees_with_the_table() -> None:
    assert [f.name for f in dataclasses.fields(verdict.Gates)][2:] == NAMES
    assert list(verdict.GATES) == list(settings.GATES) == list(GATES) == NAMES
    settings_fields = {f.name for f in dataclasses.fields(settings.Settings)}
    assert set(NAMES) <= settings_fields
    assert set(NAMES) <= set(settings.MARKER_KEYWORDS)
    assert set(NAMES) <= set(inspect.signature(assert_parity).parameters)
    for row in GATE_TABLE:
        assert settings.OPTIONS[row.name][:2] == (row.flag, row.ini)
        assert _HELP[row.name] == (row.metavar, row.help)
    rows = {gate for _label, _attribute, gate in _METRIC_ROWS if gate is not None}
    assert rows == {row.name for row in GATE_TABLE if row.label is not None}


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


def test_a_new_gate_is_one_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """A row added to the table gets its value from its metric and its range from its
    fraction flag, with no other edit: here a second cosine gate under another name."""
    from pytest_coreml_parity import gates

    row = gates.GateRow("min_cosine_strict", "cosine", True, None, "C", "a stricter cosine floor")
    monkeypatch.setattr(gates, "GATE_ROWS", {**gates.GATE_ROWS, row.name: row})
    monkeypatch.setattr(verdict, "GATE_ROWS", gates.GATE_ROWS)
    e = np.linspace(-1.0, 1.0, 64)
    a = e + 0.05 * np.cos(np.arange(64))
    pair = verdict._Pair(a, e)
    assert pair.value("min_cosine_strict") == pytest.approx(pair.value("min_cosine"))
    assert gate_number(1.5, "min_cosine_strict", text=False) is None  # its fraction flag
