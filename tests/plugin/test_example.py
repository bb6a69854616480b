"""The shipped example end to end: ids, outcomes, the failure message, the fuzz counterexample."""

from __future__ import annotations

import re

import pytest

from pytest_coreml_parity import messages
from pytest_coreml_parity.verdict import PRESETS

from .conftest import copy_example


def test_complex_division_passes_at_fp32_and_overflows_at_fp16(pytester: pytest.Pytester, run) -> None:
    copy_example(pytester)
    result = run("-v")
    result.assert_outcomes(passed=6, failed=2)
    result.stdout.fnmatch_lines(
        [
            "coreml-parity: backend emulator (auto), coremltools *, torch *, precisions fp32, fp16",
            "*test_parity[[]fp32[]] PASSED*",
            "*test_parity[[]fp16[]] PASSED*",
            "*test_large_denominators[[]fp32[]] PASSED*",
            "*test_large_denominators[[]fp16[]] FAILED*",
            "*test_fuzz[[]fp32[]] PASSED*",
            "*test_fuzz[[]fp16[]] FAILED*",
        ]
    )
    rtol, atol = PRESETS["fp16"].tolerance
    header = messages.PARITY_HEADER.format(output="'var_24'", precision="fp16", backend="emulator")
    result.stdout.fnmatch_lines(
        [
            f"E * {header}",
            f"E * tolerance: rtol={rtol:g}, atol={atol:g} (fp16 preset)",
            "E * mismatched elements: 15 / 16 (93.8%)",
            "E * max abs error (finite elements): * at index (*) (Core ML *, PyTorch *)",
            "E * max rel error (finite elements): * at index (*) (Core ML *, PyTorch *)",
            "E * non-finite in Core ML: nan 15 (first at (0, 0))",
            "E * non-finite in PyTorch: none",
            f"E * {messages.COREML_NONFINITE}.",
            "E * inputs (reproduce with coreml_model(*inputs)):",
            f"E * {messages.PARITY_HINT}",
        ]
    )
    # The diagnosis section says what happened: an overflow, with the FLOAT32 fix.
    result.stdout.fnmatch_lines(
        ["hint: float16 overflow: mul op_* computes *, past float16's max 65504*compute_precision=ct.precision.FLOAT32*"]
    )
    # Hypothesis prints the shrunk counterexample, and the model's readable repr. The
    # inputs come from model_inputs, so they are finite in fp16: the overflow is inside.
    result.stdout.fnmatch_lines(
        ["*coreml_model=CoreMLModel(ComplexDiv, fp16, emulator),*", "*Draw 1 (inputs): (tensor(*"]
    )
    draw = result.stdout.str().split("Draw 1 (inputs):")[1].split(")")[0]
    assert "inf" not in draw and "nan" not in draw, draw
    values = [float(v) for v in re.findall(r"-?\d+\.?\d*(?:e[+-]?\d+)?", draw)]
    assert values and max(abs(v) for v in values) <= 65504, draw
    result.stdout.fnmatch_lines(["coreml-parity: backend emulator; * failed to convert"])


def test_hypothesis_failure_is_diagnosed_once_on_the_shrunk_example(
    pytester: pytest.Pytester, run
) -> None:
    """Diagnosis runs once, in the report hook, on the failure hypothesis reports (the
    shrunk example), not on every failing example while shrinking."""
    copy_example(pytester)
    pytester.makepyfile(
        test_plain_given="""
        from hypothesis import given
        import pytest_coreml_parity.diagnose as diagnose
        from pytest_coreml_parity import assert_parity
        from pytest_coreml_parity.strategies import extreme_tensors

        CALLS, DIAGNOSED = [], []
        real_diagnose_failure = diagnose.diagnose_failure

        def counting_diagnose_failure(*args, **kwargs):  # a spy: the real diagnosis runs
            DIAGNOSED.append(1)
            return real_diagnose_failure(*args, **kwargs)

        diagnose.diagnose_failure = counting_diagnose_failure

        @given(a=extreme_tensors((8, 4)))
        def test_fuzz_plain(coreml_model, a):
            CALLS.append(1)
            assert_parity(coreml_model, a)

        def test_many_failures_one_diagnosis():
            assert len(CALLS) >= 2  # at least the failing example and its final replay
            assert len(DIAGNOSED) == 1
        """
    )
    result = run("--coreml-precisions=fp16", "test_plain_given.py")
    result.assert_outcomes(passed=1, failed=1)
    failures = result.stdout.str().split("short test summary info")[0]
    section = re.compile(rf"^-+ {re.escape(messages.DIAGNOSIS_SECTION)} -+$", re.M)
    assert len(section.findall(failures)) == 1  # the shrunk example, diagnosed
    result.stdout.fnmatch_lines(["*Failing test case: test_fuzz_plain(*"])
