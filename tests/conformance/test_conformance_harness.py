"""The conformance harness really compares: a perturbed emulator must fail coremltools' tests.

Runs ``scripts/conformance.py`` in a subprocess over one real coremltools op test
(``iOS14/test_elementwise_binary.py -k add``, which runs at opset iOS15), once as
is and once with the emulator's outputs sign-flipped. If the macOS gates were
not lifted, both runs would "pass" without comparing anything.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pytest_coreml_parity.conformance.results import TestResult, categorize, op_key, read_jsonl

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "conformance.py"
SUBSET = ["iOS14/test_elementwise_binary.py", "-k", "add and smoke"]


def _run(tmp_path: Path, *extra: str) -> tuple[int, list[TestResult], str]:
    jsonl = tmp_path / "results.jsonl"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--precision", "all", "--nice", "0", "--jsonl", str(jsonl), *SUBSET, *extra],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    return proc.returncode, read_jsonl(jsonl), proc.stdout + proc.stderr


def test_unperturbed_passes_and_perturbed_fails(tmp_path: Path) -> None:
    code, results, output = _run(tmp_path / "plain")
    assert code == 0, output
    assert sorted(r.precision for r in results) == ["fp16", "fp32"], output
    assert [r.category for r in results] == ["pass", "pass"], output
    assert {r.op for r in results} == {"add"}

    code, results, output = _run(tmp_path / "perturbed", "--perturb", "sign")
    assert code == 1, output
    assert [r.category for r in results] == ["fail", "fail"], output
    assert all("Not equal to tolerance" in r.error for r in results), output


@pytest.mark.parametrize(
    ("outcome", "predictions", "unsupported", "emulator_error", "expected"),
    [
        ("passed", 1, False, False, "pass"),
        ("passed", 0, False, False, "no-compare"),
        ("passed", 0, False, True, "pass"),
        ("failed", 1, False, False, "fail"),
        ("failed", 0, False, True, "fail"),
        ("failed", 0, True, False, "unsupported"),
        ("failed", 0, False, False, "error"),
        ("skipped", 0, False, False, "skipped"),
    ],
)
def test_categorize(
    outcome: str, predictions: int, unsupported: bool, emulator_error: bool, expected: str
) -> None:
    assert (
        categorize(
            outcome=outcome,
            predictions=predictions,
            unsupported=unsupported,
            emulator_error=emulator_error,
        )
        == expected
    )


def test_op_key_drops_converter_casts() -> None:
    assert op_key(["cast", "add", "cast"], fallback="x") == "add"
    assert op_key(["cast"], fallback="x") == "cast"
    assert op_key(["less", "cond"], fallback="x") == "cond+less"
    assert op_key([], fallback="(TestFoo)") == "(TestFoo)"
