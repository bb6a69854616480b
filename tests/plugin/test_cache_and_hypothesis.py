"""Convert once: per session, from disk across sessions, across xdist workers; @given without friction."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import SCALE_CONFTEST

Run = Callable[..., pytest.RunResult]

TWO_TESTS = """
def test_a(coreml_model):
    pass

def test_b(coreml_model):
    pass
"""


def test_session_then_disk_cache(pytester: pytest.Pytester, run: Run, tmp_path: Path) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(TWO_TESTS)
    cache = f"--coreml-cache-dir={tmp_path / 'cache'}"
    first = run(cache)
    first.assert_outcomes(passed=4)
    first.stdout.fnmatch_lines(
        ["coreml-parity: backend emulator; 2 converted, 0 from disk cache, 2 reused in session, 0 failed*"]
    )
    second = run(cache)
    second.assert_outcomes(passed=4)
    second.stdout.fnmatch_lines(
        ["coreml-parity: backend emulator; 0 converted, 2 from disk cache, 2 reused in session, 0 failed*"]
    )


def test_changed_weights_miss_the_cache(pytester: pytest.Pytester, run: Run, tmp_path: Path) -> None:
    pytester.makeconftest(SCALE_CONFTEST.replace("return Scale().eval()", "return torch.nn.Linear(3, 3).eval()"))
    pytester.makepyfile(
        "import torch\n\ndef test_a(coreml_model):\n    pass\n"
    )
    cache = f"--coreml-cache-dir={tmp_path / 'cache'}"
    run(cache, "--coreml-precisions=fp32", "-p", "no:randomly").stdout.fnmatch_lines(["*; 1 converted, *"])
    # torch.nn.Linear initialises randomly: new weights, new key.
    run(cache, "--coreml-precisions=fp32").stdout.fnmatch_lines(["*; 1 converted, 0 from disk cache*"])


def test_disk_cache_works_without_the_cacheprovider_and_can_be_disabled(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(TWO_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider", "--coreml-precisions=fp32")
    result.assert_outcomes(passed=2)
    assert (pytester.path / ".coreml-parity-cache").is_dir()
    result = pytester.runpytest("-p", "no:cacheprovider", "--coreml-cache-dir=none", "--coreml-precisions=fp32")
    result.stdout.fnmatch_lines(["*; 1 converted, 0 from disk cache, 1 reused*"])


def test_given_with_coreml_model_needs_no_health_check_suppression(pytester: pytest.Pytester, run: Run, tmp_path: Path) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(
        """
        from hypothesis import given, settings
        from pytest_coreml_parity import assert_parity
        from pytest_coreml_parity.strategies import extreme_tensors, model_inputs
        from hypothesis import strategies as st

        @settings(max_examples=25, deadline=None)
        @given(x=extreme_tensors((2, 3), max_magnitude=100.0))
        def test_fuzz(coreml_model, x):
            assert_parity(coreml_model, x)

        @settings(max_examples=10, deadline=None)
        @given(data=st.data())
        def test_fuzz_all_inputs(coreml_model, data):
            inputs = data.draw(model_inputs(coreml_model, max_magnitude=100.0), label="inputs")
            assert_parity(coreml_model, *inputs)
        """
    )
    result = run(f"--coreml-cache-dir={tmp_path / 'cache'}")
    result.assert_outcomes(passed=4)
    result.stdout.no_fnmatch_line("*function-scoped fixture*")
    # 2 precisions convert once each, whatever the number of examples.
    result.stdout.fnmatch_lines(["*; 2 converted, 0 from disk cache, 2 reused in session*"])


def test_fuzz_finds_fp16_overflow_with_a_readable_counterexample(pytester: pytest.Pytester, run: Run) -> None:
    pytester.makeconftest(SCALE_CONFTEST.replace("torch.relu(x) * 2.0", "x * x"))
    pytester.makepyfile(
        """
        from hypothesis import given
        from pytest_coreml_parity import assert_parity
        from pytest_coreml_parity.strategies import extreme_tensors, fuzz_settings

        @fuzz_settings(max_examples=100, database=None)
        @given(x=extreme_tensors((2, 3)))
        def test_fuzz(coreml_model, x):
            assert_parity(coreml_model, x)
        """
    )
    result = run()
    result.assert_outcomes(passed=1, failed=1)
    # 256 is the smallest magnitude whose square overflows fp16; shrinking lands on it, in
    # one element (whichever the shrinker kept), zeros elsewhere.
    result.stdout.fnmatch_lines(["*Failing test case: test_fuzz(*", "*x=tensor([[][[]*"])
    shown = result.stdout.str().split("x=tensor(", 1)[1].split(")", 1)[0]
    values = sorted(float(v) for v in re.findall(r"-?\d+\.?\d*", shown))
    assert values == [0.0] * 5 + [256.0], shown


def test_xdist_converts_once_and_reports_on_the_controller(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(test_one=TWO_TESTS, test_two=TWO_TESTS)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "2", f"--coreml-cache-dir={tmp_path / 'cache'}"
    )
    result.assert_outcomes(passed=8)
    # Two workers, two precisions: each model converts once; the other worker reads the disk.
    result.stdout.fnmatch_lines(["coreml-parity: backend emulator; 2 converted, * failed to convert"])
    line = next(ln for ln in result.stdout.lines if ln.startswith("coreml-parity: backend emulator;"))
    counts = [int(part.split()[0]) for part in line.split(";")[1].split(",")]
    assert sum(counts) == 8, line
