"""Marker and option typos: the close match is suggested, and a bad marker fails its
own test at setup while the rest of the session runs (real conversions)."""

from __future__ import annotations

import pytest

from pytest_coreml_parity import messages
from pytest_coreml_parity.plugin import SETUP_FAILURE_ID
from pytest_coreml_parity.settings import ALL_PRECISIONS, MARKER_KEYWORDS

from .conftest import SCALE_CONFTEST


def _known(values: tuple[str, ...]) -> str:
    return ", ".join(values)


def test_a_bad_marker_fails_its_own_test_and_the_session_runs(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(
        test_typos="""
        import pytest
        from pytest_coreml_parity import assert_parity

        @pytest.mark.coreml(precision=["fp16"])
        def test_precision_typo(coreml_model, example_inputs):
            assert_parity(coreml_model, *example_inputs)

        @pytest.mark.coreml(precisons=["fp16"])
        def test_keyword_typo(coreml_model, example_inputs):
            assert_parity(coreml_model, *example_inputs)

        @pytest.mark.coreml(precisions=["fp61"])
        def test_value_typo(coreml_model, example_inputs):
            assert_parity(coreml_model, *example_inputs)

        @pytest.mark.coreml(precision="fp16")
        def test_precision_without_package(coreml_model, example_inputs):
            assert_parity(coreml_model, *example_inputs)

        def test_fine(coreml_model, example_inputs):
            assert_parity(coreml_model, *example_inputs)
        """
    )
    result = run("-rE")
    result.assert_outcomes(passed=2, errors=4)  # test_fine[fp32], test_fine[fp16]
    where = "@pytest.mark.coreml in test_typos.py::test_precision_typo: precision"
    result.stdout.fnmatch_lines([f"ERROR test_typos.py::test_precision_typo[[]{SETUP_FAILURE_ID}[]]*"])
    expected = messages.PRECISION_NOT_A_NAME.format(where=where, value=["fp16"])
    assert expected in result.stdout.lines
    keyword = messages.MARKER_UNKNOWN_KEYWORD.format(
        where="test_typos.py::test_keyword_typo", value="precisons", known=_known(MARKER_KEYWORDS)
    )
    result.stdout.fnmatch_lines([f"*{keyword}; did you mean 'precisions'*"])
    value = messages.UNKNOWN_PRECISION.format(
        where="@pytest.mark.coreml in test_typos.py::test_value_typo: precisions",
        value="fp61",
        known=_known(ALL_PRECISIONS),
    )
    result.stdout.fnmatch_lines([f"*{value}; did you mean 'fp16'?"])
    result.stdout.fnmatch_lines(["*test_precision_without_package*did you mean precisions=*"])
    # each message is printed once (the short summary truncates), without plugin source
    # Count in the reports, not the short summary: with CI set, pytest repeats messages there.
    assert result.stdout.str().split("short test summary info")[0].count("did you mean 'precisions'") == 1
    assert "def _coreml_parity_bind" not in result.stdout.str()


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        (["--coreml-precisions=fp32,fp61"], "", "*--coreml-precisions: unknown precision 'fp61'*; did you mean 'fp16'?"),
        (["--coreml-targets=coreml,corai"], "", "*--coreml-targets: unknown target 'corai'*; did you mean 'coreai'?"),
        ([], "coreml_backend = emulater", "*tox.ini [[]coreml_backend[]]: unknown backend 'emulater'*; did you mean 'emulator'?"),
        (["--coreml-target=ios17"], "", "*--coreml-target: unknown deployment target 'ios17'*; did you mean 'iOS17'?"),
    ],
    ids=["cli-precision", "cli-target-stack", "ini-backend", "cli-target-case"],
)
def test_unknown_option_values_suggest_the_close_match(
    pytester: pytest.Pytester, run, args: list[str], ini: str, message: str
) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile("def test_x(coreml_model):\n    pass\n")
    if ini:
        pytester.makeini(f"[pytest]\n{ini}\n")
    result = run(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
