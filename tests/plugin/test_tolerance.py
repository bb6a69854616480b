"""One tolerance resolution (argument -> configured -> preset) with no silent fallback:
a malformed value from any source is an error naming that source."""

from __future__ import annotations

import math

import pytest

from pytest_coreml_parity import messages
from pytest_coreml_parity.errors import SettingError
from pytest_coreml_parity.settings import PRECISIONS
from pytest_coreml_parity.verdict import PRESETS, check_tolerance, resolve_tolerance

from .conftest import SCALE_CONFTEST

KNOWN = ", ".join(PRESETS)


def _fnmatch_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "[]*?" else c for c in text)


def _bad(where: str, what: str, value: object) -> str:
    return messages.BAD_TOLERANCE.format(where=where, what=what, known=KNOWN, value=value)


# ------------------------------------------------------------------ resolution (unit)


def test_preset_when_nothing_is_given() -> None:
    assert resolve_tolerance("fp16") == (*PRESETS["fp16"].tolerance, "fp16 preset")
    assert resolve_tolerance("fp32") == (*PRESETS["fp32"].tolerance, "fp32 preset")


def test_argument_beats_configured_beats_preset_each_on_its_own() -> None:
    resolved = resolve_tolerance("fp16", 0.5, None, configured_rtol=0.1, configured_atol=0.0)
    assert resolved == (0.5, 0.0, "rtol argument, atol configured")
    per_precision = resolve_tolerance("fp16", configured_rtol={"fp32": 1e-6}, configured_atol={"fp16": 0.3})
    assert per_precision == (PRESETS["fp16"].rtol, 0.3, "atol configured")


@pytest.mark.parametrize(
    "value", ["1e-3", -1.0, math.nan, math.inf, True, {"fp8": 1e-3}, {"fp16": "x"}, {"fp16": -1}, [1e-3]]
)
def test_malformed_argument_is_an_error_naming_it(value: object) -> None:
    where = messages.ARGUMENT_TOLERANCE.format(what="rtol")
    shown = dict(value) if isinstance(value, dict) else value
    with pytest.raises(SettingError) as info:
        resolve_tolerance("fp16", value, argument_where=messages.ARGUMENT_TOLERANCE)
    assert str(info.value) == _bad(where, "rtol", shown)


def test_malformed_configured_value_is_an_error_not_the_preset() -> None:
    with pytest.raises(SettingError, match="the configured atol"):
        resolve_tolerance(
            "fp16", configured_atol="loose", configured_where=messages.CONFIGURED_TOLERANCE
        )


def test_check_tolerance_accepts_what_settings_produce() -> None:
    assert check_tolerance(0, "x", "atol") == 0.0
    assert check_tolerance({p: 1e-3 for p in PRECISIONS}, "x", "atol") == {p: 1e-3 for p in PRECISIONS}
    assert check_tolerance(None, "x", "atol") is None


def test_unknown_precision_has_no_preset() -> None:
    with pytest.raises(SettingError, match="no tolerance preset for precision 'fp8'"):
        resolve_tolerance("fp8")


# ------------------------------------------------------------------ each source (pytester)


def test_malformed_argument_fails_the_test_naming_the_argument(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(
        test_arg="""
        import torch
        from pytest_coreml_parity import assert_parity

        def test_string(coreml_model):
            assert_parity(coreml_model, torch.ones(2, 3), rtol="loose")

        def test_unknown_key(coreml_model):
            assert_parity(coreml_model, torch.ones(2, 3), atol={"fp8": 1e-3})
        """
    )
    result = run("--coreml-precisions=fp16")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*SettingError: " + _fnmatch_escape(_bad("assert_parity(rtol=...)", "rtol", "loose")),
            "*SettingError: " + _fnmatch_escape(_bad("assert_parity(atol=...)", "atol", {"fp8": 1e-3})),
        ],
        consecutive=False,
    )


@pytest.mark.parametrize(
    ("keyword", "value", "message"),
    [
        ("rtol", '"loose"', messages.BAD_NUMBER.format(where="{where}: rtol", what="rtol", value="loose")),
        ("atol", 'float("nan")', messages.BAD_NUMBER.format(where="{where}: atol", what="atol", value=math.nan)),
        (
            "atol",
            '{"fp8": 1e-3}',
            messages.UNKNOWN_PRECISION.format(where="{where}: atol", value="fp8", known=", ".join(PRECISIONS)),
        ),
    ],
    ids=["string", "nan", "unknown-precision"],
)
def test_malformed_marker_value_is_a_collection_error_naming_the_marker(
    pytester: pytest.Pytester, run, keyword: str, value: str, message: str
) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(
        test_marked=f"""
        import pytest

        @pytest.mark.coreml({keyword}={value})
        def test_y(coreml_model):
            pass
        """
    )
    result = run()
    result.assert_outcomes(errors=1)
    where = "@pytest.mark.coreml in test_marked.py::test_y"
    result.stdout.fnmatch_lines([f"*{_fnmatch_escape(message.replace('{where}', where))}*"])


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        (["--coreml-atol=nan"], "", messages.BAD_NUMBER.format(where="--coreml-atol", what="atol", value="nan")),
        (
            ["--coreml-rtol=fp16=loose"],
            "",
            messages.BAD_NUMBER.format(where="--coreml-rtol", what="rtol", value="loose"),
        ),
        ([], "coreml_atol = -0.5", messages.BAD_NUMBER.format(where="tox.ini [coreml_atol]", what="atol", value="-0.5")),
        (
            [],
            "coreml_rtol = fp8=1e-3",
            messages.UNKNOWN_PRECISION.format(where="tox.ini [coreml_rtol]", value="fp8", known=", ".join(PRECISIONS)),
        ),
    ],
    ids=["cli-nan", "cli-per-precision", "ini-negative", "ini-unknown-precision"],
)
def test_malformed_cli_or_ini_value_is_a_usage_error_naming_it(
    pytester: pytest.Pytester, run, args: list[str], ini: str, message: str
) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile("def test_ids(coreml_model):\n    pass\n")
    if ini:
        pytester.makeini(f"[pytest]\n{ini}\n")
    result = run(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{_fnmatch_escape(message)}"])
