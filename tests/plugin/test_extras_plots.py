"""The per-op error plot needs matplotlib (the ``[plots]`` extra): without it the JSON report
is still written and the diagnosis section says what is missing and which extra installs it
(a real failing run of the shipped example)."""

from __future__ import annotations

import json

import pytest

from pytest_coreml_parity import messages

from .conftest import copy_example

NO_MATPLOTLIB = """
import sys

sys.modules["matplotlib"] = None  # a project without matplotlib (pytester restores sys.modules)
"""


def test_a_report_without_matplotlib_names_the_plots_extra(pytester: pytest.Pytester, run) -> None:
    copy_example(pytester)
    conftest = pytester.path / "conftest.py"
    conftest.write_text(conftest.read_text() + NO_MATPLOTLIB)
    result = run("--coreml-report-dir=reports", "-k", "test_large_denominators and fp16")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["report: *.json", messages.PLOT_NEEDS_MATPLOTLIB.replace("[", "[[]")])
    (report,) = (p for p in (pytester.path / "reports").glob("*fp16*.json") if "headroom" not in p.name)
    data = json.loads(report.read_text())
    assert data["plot"] is None and data["plot_note"] == messages.PLOT_NOTE
    assert not list((pytester.path / "reports").glob("*.png"))
