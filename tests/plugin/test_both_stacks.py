"""Both stacks in one suite: a setting that does not apply to a test's stack is a clear
skip naming it or an error, never silently ignored; the image example run on
coreml and coreai gives only passes, clear skips and real failures (real conversions,
Apple's Core AI interpreter)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pytest_coreml_parity import messages

from .conftest import SCALE_CONFTEST
from .test_coreai_target import _warm_up_coreai, needs_coreai  # noqa: F401 (autouse fixture)

IMAGE_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "image_classifier"
BOTH = "--coreml-targets=coreml,coreai"


@needs_coreai
def test_the_image_example_on_both_stacks(pytester: pytest.Pytester, run) -> None:
    for path in IMAGE_EXAMPLE.glob("*.py"):
        shutil.copy(path, pytester.path / path.name)
    result = run(BOTH, "-rs")
    # coreml: 8 passes and the documented xfail; coreai: every test uses coreml_convert
    result.assert_outcomes(passed=8, skipped=10, xfailed=2)
    skip = messages.NOT_APPLIED.format(what="the coreml_convert fixture", stacks="coreml", stack="coreai")
    result.stdout.fnmatch_lines([f"SKIPPED [[]2[]] test_classifier.py:*: {skip}"])


@needs_coreai
def test_marker_keywords_that_do_not_apply_skip_naming_them(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(
        test_kw="""
        import pytest
        from pytest_coreml_parity import assert_parity

        @pytest.mark.coreml(precisions=["fp16"], convert_kwargs={"outputs": None})
        def test_kwargs(coreml_model, example_inputs):
            assert_parity(coreml_model, *example_inputs)

        @pytest.mark.coreml(precisions=["fp16"])
        def test_plain(coreml_model, example_inputs):
            assert_parity(coreml_model, *example_inputs)
        """
    )
    result = run(BOTH, "-rs")
    result.assert_outcomes(passed=3, skipped=1)
    skip = messages.NOT_APPLIED.format(
        what="@pytest.mark.coreml(convert_kwargs=...)", stacks="coreml", stack="coreai"
    )
    result.stdout.fnmatch_lines([f"SKIPPED * {skip}"])


@needs_coreai
def test_core_ml_op_names_on_core_ai_are_an_error(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(
        test_ops="""
        import pytest
        from pytest_coreml_parity import assert_parity

        @pytest.mark.coreml(precisions=["fp16"], fp32_ops=["13", "var"])
        def test_pinned(coreml_model, example_inputs):
            assert_parity(coreml_model, *example_inputs)

        @pytest.mark.coreml(precisions=["fp16"], fp32_ops=["mul"])
        def test_aten(coreml_model, example_inputs):
            assert_parity(coreml_model, *example_inputs)
        """
    )
    result = run("--coreml-targets=coreai")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*fp32_ops [[]'13', 'var'[]] name no aten op of the Core AI program*"
         "Core ML op names * apply to the coreml stack only*"]
    )


def test_session_settings_a_stack_ignores_are_named_in_the_header(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile("def test_nothing():\n    pass\n")
    pytester.makeini("[pytest]\ncoreml_compute_units = CPU_ONLY\n")
    result = run(BOTH, "--coreml-target=iOS17")
    line = messages.NOT_APPLIED_SESSION.format(
        stack="coreai", settings="--coreml-target, ini coreml_compute_units"
    )
    result.stdout.fnmatch_lines([line])
    assert "coreml tests run without" not in result.stdout.str()


@needs_coreai
def test_mixed_needs_no_pin_matching_every_arithmetic_op(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(SCALE_CONFTEST)  # relu and mul only: no add, sub or div
    pytester.makepyfile(
        test_mixed="""
        import pytest
        from pytest_coreml_parity import assert_parity

        @pytest.mark.coreml(precisions=["mixed"], targets=["coreai"])
        def test_mixed(coreml_model, example_inputs):
            assert_parity(coreml_model, *example_inputs)
        """
    )
    run().assert_outcomes(passed=1)


def test_help_and_markers_say_which_stacks_a_setting_applies_to(pytester: pytest.Pytester) -> None:
    from pytest_coreml_parity.applies import stacks_of

    assert stacks_of("target") == ("coreml",) and stacks_of("lint") == ("coreml", "coreai")
    text = pytester.runpytest("--help").stdout.str()
    target = text[text.index("--coreml-target=") : text.index("--coreml-compute-units=")]
    lint = text[text.index("--coreml-lint=") : text.index("--coreml-lint=") + 200]
    assert "[coreml stack only]" in " ".join(target.split()), target
    assert "stack only" not in lint.split("--", 2)[1], lint
    markers = pytester.runpytest("--markers").stdout.str()
    assert "; coreml stack only: target, compute_units," in markers, markers
