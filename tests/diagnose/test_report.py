"""The JSON report and the error-profile plot, from a real localization and search."""

from __future__ import annotations

import json

from pytest_coreml_parity.report import REPORT_VERSION, report_stem, write_report


def test_report_files(tmp_path, localized, fixed):
    written = write_report(tmp_path / "r", localized("complex_div"), fixed("complex_div"), node_id="t.py::test_x[fp16]")
    assert [p.name for p in written] == ["t.py_test_x_fp16.json", "t.py_test_x_fp16.png"]
    data = json.loads(written[0].read_text())
    assert data["version"] == REPORT_VERSION and data["plot"] == "t.py_test_x_fp16.png"
    bad = data["localization"]["first_non_finite"]
    assert bad["op_type"] == "mul" and bad["rel_error"] == "inf"
    assert data["fix"]["found"] and data["fix"]["kept_ops"]
    assert len(data["localization"]["profile"]) == len(localized("complex_div").profile)
    assert written[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_stem_is_file_safe():
    assert report_stem("tests/a b.py::test[x/y]") == "tests_a_b.py_test_x_y"
    assert report_stem(None) == "diagnosis"
