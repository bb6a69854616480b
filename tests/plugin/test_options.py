"""Precedence (marker -> command line -> ini -> default) and usage errors naming the source."""

from __future__ import annotations

import pytest

from pytest_coreml_parity import messages
from pytest_coreml_parity.settings import ALL_PRECISIONS, MARKER_KEYWORDS

from .conftest import SCALE_CONFTEST

IDS_TEST = """
def test_ids(coreml_model):
    pass
"""


def _known(values: tuple[str, ...]) -> str:
    return ", ".join(values)


def test_default_ids_are_fp32_and_fp16(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(IDS_TEST)
    result = run("--collect-only", "-q")
    result.stdout.fnmatch_lines(["*test_ids[[]fp32[]]", "*test_ids[[]fp16[]]"])


def test_command_line_chooses_precisions(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(IDS_TEST)
    result = run("--coreml-precisions=fp16", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*precisions fp16*", "*test_ids[[]fp16[]] PASSED*"])


def test_ini_chooses_precisions_and_command_line_wins(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(IDS_TEST)
    pytester.makeini("[pytest]\ncoreml_precisions = fp16\n")
    run("-v").stdout.fnmatch_lines(["*test_ids[[]fp16[]] PASSED*"])
    result = run("-v", "--coreml-precisions=fp32")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_ids[[]fp32[]] PASSED*"])


def test_marker_wins_over_command_line(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.coreml(precisions=["fp16"])
        def test_marked(coreml_model):
            assert coreml_model.precision == "fp16"

        def test_plain(coreml_model):
            assert coreml_model.precision == "fp32"
        """
    )
    result = run("-v", "--coreml-precisions=fp32")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_marked[[]fp16[]] PASSED*", "*test_plain[[]fp32[]] PASSED*"])


def test_zero_tolerance_from_marker_is_honoured(pytester: pytest.Pytester, run) -> None:
    """atol=0 must not fall back to the preset (values compared with `is None`, not `or`)."""
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(
        """
        import pytest, torch
        from pytest_coreml_parity import assert_parity

        @pytest.mark.coreml(precisions=["fp16"], rtol=0, atol=0, scale_atol=0)
        def test_exact(coreml_model):
            assert_parity(coreml_model, torch.full((2, 3), 0.1))
        """
    )
    result = run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["E * tolerance: rtol=0, atol=0 (rtol configured, atol configured)"])


def test_argument_tolerance_wins(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(
        """
        import pytest, torch
        from pytest_coreml_parity import assert_parity

        @pytest.mark.coreml(precisions=["fp16"], rtol=0, atol=0)
        def test_loose(coreml_model):
            assert_parity(coreml_model, torch.full((2, 3), 0.1), rtol=1e-2, atol=1e-3)
        """
    )
    run().assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        (
            ["--coreml-precisions=fp32,fp8"],
            "",
            messages.UNKNOWN_PRECISION.format(
                where="--coreml-precisions", value="fp8", known=_known(ALL_PRECISIONS)
            ),
        ),
        (
            ["--coreml-rtol=-1"],
            "",
            messages.BAD_NUMBER.format(where="--coreml-rtol", what="rtol", value="-1"),
        ),
        ([], "coreml_backend = gpu", "*tox.ini [[]coreml_backend[]]: unknown backend 'gpu' (known: auto, coreml, emulator)"),
        ([], "coreml_export = maybe", "*tox.ini [[]coreml_export[]]: expected true or false, got 'maybe'"),
        (["--coreml-target=iOS9"], "", "--coreml-target: unknown deployment target 'iOS9'*"),
    ],
    ids=["cli-precision", "cli-rtol", "ini-backend", "ini-flag", "cli-target"],
)
def test_bad_values_are_usage_errors_naming_their_source(
    pytester: pytest.Pytester, run, args: list[str], ini: str, message: str
) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(IDS_TEST)
    if ini:
        pytester.makeini(f"[pytest]\n{ini}\n")
    result = run(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}"])


def test_unknown_marker_keyword_fails_its_test_at_setup(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(
        test_typo="""
        import pytest

        @pytest.mark.coreml(tolerence=1e-3)
        def test_y(coreml_model):
            pass
        """
    )
    result = run()
    result.assert_outcomes(errors=1)
    expected = messages.MARKER_UNKNOWN_KEYWORD.format(
        where="test_typo.py::test_y", value="tolerence", known=_known(MARKER_KEYWORDS)
    )
    result.stdout.fnmatch_lines([f"*{expected}*"])


def test_bad_marker_value_names_the_keyword(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(
        test_bad="""
        import pytest

        @pytest.mark.coreml(precisions="fp8")
        def test_y(coreml_model):
            pass
        """
    )
    result = run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*@pytest.mark.coreml in test_bad.py::test_y: precisions: unknown precision 'fp8'*"]
    )


def test_marker_is_registered_with_its_signature(pytester: pytest.Pytester, run) -> None:
    result = run("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.coreml(precisions=None, rtol=None, atol=None, *search_fix=None, targets=None*)*"])
