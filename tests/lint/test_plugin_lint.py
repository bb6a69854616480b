"""The plugin: --coreml-lint warn / error / off, the session line, weight parity naming
fc.weight for a user's declined palettization (PR #2777), and per-profile verdicts."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from pytest_coreml_parity import messages
from pytest_coreml_parity.report.session import load_schema

from ..report.schema_check import errors

RECIPROCAL = """
import pytest, torch

class Recip(torch.nn.Module):
    def forward(self, x):
        return torch.reciprocal(x) * 0.0 + x

@pytest.fixture
def torch_model():
    return Recip().eval()

@pytest.fixture
def example_inputs():
    return (torch.rand(4, 8) + 1.0,)

def test_parity(coreml_model, example_inputs):
    from pytest_coreml_parity import assert_parity
    assert_parity(coreml_model, *example_inputs)
"""

#: A strict user suite: every warning is an error. Lint findings are not warnings.
INI = "[pytest]\nfilterwarnings =\n    error\n"


@pytest.fixture
def run(pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory):
    cache = tmp_path_factory.mktemp("lint-cache")

    def _run(*args: str) -> pytest.RunResult:
        return pytester.runpytest("-p", "no:cacheprovider", f"--coreml-cache-dir={cache}", "--coreml-precisions=fp16", *args)

    return _run


def _report(pytester: pytest.Pytester) -> dict[str, dict[str, Any]]:
    """The session JSON report's tests by id, checked against its schema."""
    document = json.loads((pytester.path / "r.json").read_text())
    assert errors(document, load_schema()) == []
    return {t["nodeid"]: t for t in document["tests"]}


def test_warn_reports_the_finding_and_a_session_line(pytester: pytest.Pytester, run) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(RECIPROCAL)
    result = run("-rA", "--coreml-report=r.json", "--coreml-summary=s.md")
    result.assert_outcomes(passed=1)
    (test,) = _report(pytester).values()
    (finding,) = test["lint"]  # the JSON report carries the finding, with its source
    assert finding["rule"] == "coreml-reciprocal-epsilon" and "torch.reciprocal(x)" in finding["torch_line"]
    assert finding["sources"] == ["https://github.com/apple/coremltools/issues/2773"]
    summary = (pytester.path / "s.md").read_text()
    assert "### Lint findings" in summary and "`coreml-reciprocal-epsilon`" in summary  # filterwarnings = error: a finding is no warning
    assert "warnings summary" not in result.stdout.str()
    result.stdout.fnmatch_lines([
        f"*{messages.LINT_SECTION}*",
        "*1 documented device hazard*",
        "*[[]coreml-reciprocal-epsilon[]]*",
        "*torch: *torch.reciprocal(x)*",
        "coreml-parity: lint: 1 finding(s) in 1 test(s): coreml-reciprocal-epsilon (1)",
        "  [[]coreml-reciprocal-epsilon[]] Recip.forward, *torch.reciprocal(x)* (1 test(s), first test_*.py::test_parity*)",
    ])


def test_without_ra_the_summary_still_names_each_finding_once(pytester: pytest.Pytester, run) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(RECIPROCAL.replace("def test_parity(", "@pytest.mark.parametrize('n', [1, 2])\ndef test_parity(n, "))
    result = run()
    result.assert_outcomes(passed=2)
    assert messages.LINT_SECTION not in result.stdout.str()  # sections of passing tests need -rP / -rA
    result.stdout.fnmatch_lines([
        "coreml-parity: lint: 2 finding(s) in 2 test(s): coreml-reciprocal-epsilon (2)",
        "  [[]coreml-reciprocal-epsilon[]] *torch.reciprocal(x)* (2 test(s), first *test_parity[[]*",
    ])


def test_error_fails_the_test_and_off_is_silent(pytester: pytest.Pytester, run) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(RECIPROCAL)
    failed = run("--coreml-lint=error", "--coreml-report=r.json")
    failed.assert_outcomes(failed=1)
    failed.stdout.fnmatch_lines(["*--coreml-lint=error: 1 lint finding(s)*", "*coreml-reciprocal-epsilon*"])
    assert _report_after(pytester, failed=True)
    quiet = run("--coreml-lint=off", "-rA", "--coreml-report=r.json")
    quiet.assert_outcomes(passed=1)
    assert "coreml-reciprocal-epsilon" not in quiet.stdout.str()
    assert [t["lint"] for t in _report(pytester).values()] == [[]]
    assert "coreml-parity: lint" not in quiet.stdout.str()


def _report_after(pytester: pytest.Pytester, *, failed: bool) -> bool:
    (test,) = _report(pytester).values()
    return test["outcome"] == ("failed" if failed else "passed") and [f["rule"] for f in test["lint"]] == [
        "coreml-reciprocal-epsilon"
    ]


def test_the_marker_keyword_wins(pytester: pytest.Pytester, run) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(RECIPROCAL.replace("def test_parity", "@pytest.mark.coreml(lint='error')\ndef test_parity"))
    run().assert_outcomes(failed=1)
    pytester.makepyfile(RECIPROCAL.replace("def test_parity", "@pytest.mark.coreml(lint='loud')\ndef test_parity"))
    run().stdout.fnmatch_lines(["*lint mode*loud*"])


DECLINED = """
import pytest, torch
import coremltools as ct
import coremltools.optimize.coreml as cto

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(32, 100)
        self.out = torch.nn.Linear(100, 32)

    def forward(self, x):
        return self.out(torch.relu(self.fc(x)))

@pytest.fixture
def torch_model():
    return Net().eval()

@pytest.fixture
def example_inputs():
    return (torch.randn(8, 32),)

@pytest.fixture
def coreml_convert():
    def convert(torch_model, example_inputs, compute_precision):
        traced = torch.jit.trace(torch_model, example_inputs)
        mlmodel = ct.convert(traced, inputs=[ct.TensorType(name="x", shape=(8, 32))],
                             compute_precision=compute_precision,
                             minimum_deployment_target=ct.target.iOS18)
        config = cto.OptimizationConfig(global_config=cto.OpPalettizerConfig(
            nbits=4, mode="kmeans", granularity="per_grouped_channel", group_size=16,
            enable_per_channel_scale=True))
        return cto.palettize_weights(mlmodel, config)
    return convert

def test_shipped(coreml_model, example_inputs):
    from pytest_coreml_parity import assert_parity
    assert_parity(coreml_model, *example_inputs)
"""


def test_a_declined_palettization_from_coreml_convert_names_fc_weight(pytester: pytest.Pytester, run) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(DECLINED)
    result = run("--coreml-report=r.json", "--junitxml=j.xml")
    result.assert_outcomes(failed=1)
    failure = ET.parse(pytester.path / "j.xml").getroot().find(".//failure")
    assert failure is not None and failure.text is not None  # the failure's text in JUnit names the weight
    assert messages.WEIGHTS_SECTION in failure.text and "fc.weight: plain const (not compressed)" in failure.text
    assert messages.PROFILES_SECTION in failure.text
    (test,) = _report(pytester).values()  # the weights and profile verdicts reach the JSON report
    worst = test["weights"][0]
    assert worst["torch_name"] == "fc.weight" and worst["declined"] and not worst["compressed"]
    assert test["diagnosis"]["hint_kind"] == "compression" and "fc.weight" in test["diagnosis"]["hint"]
    assert {p["profile"]: p["passed"] for p in test["profiles"]} == {
        "typed": False, "fp16-sequential": False, "float32": False,
    }  # fmt: skip
    result.stdout.fnmatch_lines([
        "hint: compression error: 1 of 4 weights differ from torch*worst fc.weight: plain const (not compressed)*",
        f"*{messages.WEIGHTS_SECTION}*",
        "*weight parity (a program holding compressed weights)*",
        "*fc.weight: plain const (not compressed)*coremltools PR #2777*",
        "*out.weight: constexpr_lut_to_dense (compressed)*",
        f"*{messages.PROFILES_SECTION}*",
        "*every profile fails, float32 included*",
    ])


def test_the_weight_report_on_a_passing_test(pytester: pytest.Pytester, run) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(RECIPROCAL.replace("Recip().eval()", "torch.nn.Sequential(torch.nn.Linear(8, 8)).eval()"))
    result = run("--coreml-weight-report", "-rA")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*weight parity (the program): 0 of 1 weights differ*", "*0.weight: plain const*"])


def test_the_console_command_lints_a_built_package(tmp_path: Path) -> None:
    import torch

    from pytest_coreml_parity.convert import ConversionOptions, convert_model
    from pytest_coreml_parity.lint.cli import main

    class Recip(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.reciprocal(x)

    package = tmp_path / "Recip.mlpackage"
    convert_model(Recip().eval(), (torch.rand(2, 4),), ConversionOptions(precision="fp16")).save(str(package))
    assert main([str(package), "--json"]) == 1
    assert main(["--rules"]) == 0
    assert main([str(tmp_path / "missing.mlpackage")]) == 2


def test_the_console_command_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    from pytest_coreml_parity.convert import ConversionOptions, convert_model
    from pytest_coreml_parity.lint.cli import main

    package = tmp_path / "Lin.mlpackage"
    convert_model(torch.nn.Linear(4, 4).eval(), (torch.rand(2, 4),), ConversionOptions(precision="fp16")).save(str(package))
    assert main([str(package), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {str(package): []}
