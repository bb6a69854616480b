"""numpy >= 2.4 with coremltools <= 9.0: warned in the header, explained in ConversionError."""

from __future__ import annotations

from importlib import metadata

import pytest
import torch

from pytest_coreml_parity import messages
from pytest_coreml_parity.convert import (
    ConversionOptions,
    convert_model,
    explain_numpy_error,
    numpy_coremltools_warning,
)
from pytest_coreml_parity.errors import ConversionError

#: What numpy 2.4 raises for int(np.array([1])) (coremltools 9.0's torch frontend ``_cast``).
REAL_ERROR = "only 0-dimensional arrays can be converted to Python scalars"


@pytest.mark.parametrize(
    ("numpy_version", "coremltools_version", "warns"),
    [
        ("2.4.0", "9.0", True),
        ("2.4.0rc1", "9.0", True),
        ("2.5.1", "8.3.0", True),
        ("2.4.1", "9.0b1", True),
        ("2.3.5", "9.0", False),
        ("1.26.4", "9.0", False),
        ("2.4.0", "9.1", False),
        ("2.4.0", "10.0", False),
        ("not installed", "9.0", False),
        ("2.4.0", "not installed", False),
    ],
)
def test_header_warning_is_a_function_of_the_two_versions(
    numpy_version: str, coremltools_version: str, warns: bool
) -> None:
    warning = numpy_coremltools_warning(numpy_version, coremltools_version)
    if warns:
        assert warning == messages.NUMPY_TOO_NEW_HEADER.format(
            numpy=numpy_version, coremltools=coremltools_version
        )
        assert 'pip install "numpy<2.4"' in warning
    else:
        assert warning is None


def test_the_real_type_error_is_explained() -> None:
    explanation = explain_numpy_error(TypeError(REAL_ERROR))
    assert explanation == messages.NUMPY_TOO_NEW_EXPLANATION.format(numpy=metadata.version("numpy"))
    assert REAL_ERROR == messages.NUMPY_SCALAR_ERROR
    assert explain_numpy_error(TypeError("unsupported operand")) is None
    assert explain_numpy_error(ValueError(REAL_ERROR)) is None


def test_conversion_error_summary_carries_the_explanation(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_coreml_parity._coremltools import import_coremltools

    ct = import_coremltools()

    def convert(*args: object, **kwargs: object) -> None:
        raise TypeError(REAL_ERROR)

    monkeypatch.setattr(ct, "convert", convert)
    with pytest.raises(ConversionError) as info:
        convert_model(torch.nn.ReLU(), (torch.ones(2, 3),), ConversionOptions())
    summary = info.value.summary
    assert summary.startswith("coremltools could not convert ReLU at fp32")
    assert f"TypeError: {REAL_ERROR}" in summary
    assert messages.NUMPY_TOO_NEW_EXPLANATION.format(numpy=metadata.version("numpy")) in summary


def test_the_header_does_not_warn_in_this_environment(pytester: pytest.Pytester) -> None:
    assert numpy_coremltools_warning(metadata.version("numpy"), metadata.version("coremltools")) is None
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["coreml-parity: backend *, coremltools *, torch *"])
    result.stdout.no_fnmatch_line("*WARNING numpy*")
