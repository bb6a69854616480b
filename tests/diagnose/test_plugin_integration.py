"""The diagnosis in a real failing test's output, and the report files, via pytester."""

from __future__ import annotations

import json
import re

import pytest

from pytest_coreml_parity import messages

from ..complex_div_source import COMPLEX_DIV_SOURCE

#: pytest prints each report section under a separator line with its title.
SECTION = f"*- {messages.DIAGNOSIS_SECTION} -*"


def section_count(output: str) -> int:
    """Diagnosis sections printed in the failure part of the output (not the short summary)."""
    failures = output.split("short test summary info")[0]
    return len(re.findall(rf"^-+ {re.escape(messages.DIAGNOSIS_SECTION)} -+$", failures, re.M))

TEST_FILE = '''
import pytest
import torch
from pytest_coreml_parity import assert_finite, assert_parity
''' + COMPLEX_DIV_SOURCE + '''

def bad_inputs():
    a = torch.randn(8, 4)
    a[3] = torch.tensor([300.0, 1.0, 300.0, 1.0])
    return a


def test_parity(coreml_model):
    assert_parity(coreml_model, bad_inputs())


def test_finite(coreml_model):
    assert_finite(coreml_model(bad_inputs()))


def test_healthy(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)
'''

BASE_ARGS = ("--coreml-precisions=fp16", "--coreml-backend=emulator", "-p", "no:cacheprovider")


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_complex=TEST_FILE)
    # Warnings are errors, as in strict user suites; the ignores are the third-party
    # ones this project's own pyproject.toml documents as harmless.
    pytester.makeini(
        "[pytest]\nfilterwarnings =\n    error\n    ignore::DeprecationWarning\n"
        "    ignore::FutureWarning\n    ignore:.*has not been tested with coremltools.*\n"
        "    ignore:Implicitly cleaning up <TemporaryDirectory:ResourceWarning\n"
    )
    return pytester


def test_failure_names_the_op_and_proposes_a_verified_fix(project: pytest.Pytester) -> None:
    report = project.path / "reports"
    result = project.runpytest_subprocess(
        *BASE_ARGS, "--coreml-search-fix", f"--coreml-report-dir={report}", "-k", "parity or healthy"
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        SECTION,
        "*first non-finite op: mul op_*_cast_fp16 (ComplexDiv.forward, test_complex.py:9: den = rb * rb + ib * ib)*fp16 max 65504*",
        "*mixed-precision fix: keep * of * ops in fp32*verified by re-conversion on failing inputs, example inputs*",
        "*op_selector=Fp32Selector(FP32_OPS, traced=traced_model)*",
        "*report: *.json*",
    ])
    # The healthy test says nothing. (Under CI=true pytest repeats whole failure messages in
    # the short test summary, so count in the failure sections only.)
    assert section_count(result.stdout.str()) == 1
    files = sorted(p.name for p in report.iterdir())
    assert any(f.endswith(".json") for f in files) and any(f.endswith(".png") for f in files)
    data = json.loads(next(report.glob("*_fp16.json")).read_text())  # not the .headroom.json
    assert data["localization"]["first_non_finite"]["op_type"] == "mul"
    assert data["fix"]["found"] is True and data["fix"]["conversions"] >= 1
    assert "test_parity" in data["node_id"]


def test_assert_finite_localizes_without_search(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess(*BASE_ARGS, "-k", "finite")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        SECTION,
        "*first non-finite op: mul op_*_cast_fp16*",
        f"*{messages.SEARCH_FIX_HINT}*",
    ])
    assert "mixed-precision fix" not in result.stdout.str()


def test_models_from_the_disk_cache_keep_their_torch_source(project: pytest.Pytester) -> None:
    """The saved package loses coremltools' torch scopes; the cache keeps them beside it."""
    args = ("--coreml-precisions=fp16", "--coreml-backend=emulator", "-p", "no:cacheprovider")
    cache = f"--coreml-cache-dir={project.path / 'cache'}"
    line = "*first non-finite op: mul op_*_cast_fp16 (ComplexDiv.forward, test_complex.py:9: den = rb * rb + ib * ib)*"
    first = project.runpytest_subprocess(*args, cache, "-k", "parity")
    first.assert_outcomes(failed=1)
    first.stdout.fnmatch_lines([line, "*1 converted, 0 from disk cache*"])
    second = project.runpytest_subprocess(*args, cache, "-k", "parity")
    second.assert_outcomes(failed=1)
    second.stdout.fnmatch_lines([line, "*0 converted, 1 from disk cache*"])


RECORDER = '''
import json
import pathlib


def pytest_runtest_logreport(report):
    # The diagnosis is a section of the failure's own text (longrepr), not a report section.
    longrepr = [section[0] for section in getattr(report.longrepr, "sections", [])]
    row = {"nodeid": report.nodeid, "when": report.when, "outcome": report.outcome,
           "sections": [title for title, _ in report.sections] + longrepr}
    with open(pathlib.Path(__file__).parent / "sections.jsonl", "a") as f:
        f.write(json.dumps(row) + "\\n")
'''

OTHER_FAILURE = '''
from test_complex import example_inputs, torch_model  # noqa: F401  (the fixtures)


def test_plain_assertion(coreml_model):
    assert coreml_model.precision == "fp32"  # fails at fp16, but is no ParityFailure
'''


def test_diagnosis_is_one_report_section_per_failed_parity_test(project: pytest.Pytester) -> None:
    """On the report object itself (in the failure's longrepr): once for each failed
    assertion, never for a pass or for a failure that is not a ParityFailure."""
    project.makeconftest(RECORDER)
    project.makepyfile(test_other=OTHER_FAILURE)
    result = project.runpytest_subprocess(*BASE_ARGS)
    result.assert_outcomes(passed=1, failed=3)
    rows = [json.loads(line) for line in (project.path / "sections.jsonl").read_text().splitlines()]
    diagnosed = {
        row["nodeid"].split("::")[-1]: row["sections"].count(messages.DIAGNOSIS_SECTION)
        for row in rows
        if row["when"] == "call"
    }
    assert diagnosed == {
        "test_parity[fp16]": 1,
        "test_finite[fp16]": 1,
        "test_healthy[fp16]": 0,
        "test_plain_assertion[fp16]": 0,
    }
    assert all(messages.DIAGNOSIS_SECTION not in row["sections"] for row in rows if row["when"] != "call")
    assert section_count(result.stdout.str()) == 2
