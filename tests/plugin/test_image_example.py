"""The image-classifier example end to end: ImageType inputs, the user's own conversion
and torch preprocessing, and the preprocessing mismatch reported as such."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_coreml_parity import messages

IMAGE_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "image_classifier"
FILES = ("conftest.py", "test_classifier.py", "test_normalized.py")


def copy_image_example(pytester: pytest.Pytester) -> None:
    for name in FILES:
        pytester.path.joinpath(name).write_text((IMAGE_EXAMPLE / name).read_text())


def test_classifier_passes_at_both_precisions_and_the_std_case_xfails(
    pytester: pytest.Pytester, run
) -> None:
    copy_image_example(pytester)
    result = run("-v")
    result.assert_outcomes(passed=8, xfailed=2)
    result.stdout.fnmatch_lines(
        [
            "*test_parity[[]fp32[]] PASSED*",
            "*test_parity[[]fp16[]] PASSED*",
            "*test_each_image_size[[]fp16-48x48[]] PASSED*",
            "*test_fuzz[[]fp16[]] PASSED*",
            "*test_per_channel_std[[]fp16[]] XFAIL*",
        ]
    )


def test_per_channel_std_is_reported_as_a_preprocessing_mismatch(
    pytester: pytest.Pytester, run
) -> None:
    copy_image_example(pytester)
    result = run("--runxfail", "test_normalized.py", "-k", "fp32")
    result.assert_outcomes(failed=1)
    head = messages.PREPROCESSING_MISMATCH.format(
        name="image", torch_side=messages.PREPROCESSING_TORCH_USER
    )
    result.stdout.fnmatch_lines(
        [
            f"E * {head}",
            "E * ImageType: RGB, scale 0.0173521 (std 0.226 for every channel), bias *",
            "E * channel 0: *PyTorch scale 0.0171248, bias -2.1179 (std 0.229, mean 0.485)",
            "E * channel 2: *(std 0.225, mean 0.406)",
            f"E * likely cause: {messages.PREPROCESSING_ONE_SCALE}",
        ]
    )
    # Not model drift: no parity header, no diagnosis of the model.
    assert "does not match PyTorch" not in result.stdout.str()
    assert messages.DIAGNOSIS_SECTION not in result.stdout.str()


def test_drift_report_says_how_pytorch_got_the_image(pytester: pytest.Pytester, run) -> None:
    """Without torch_preprocess, PyTorch gets the ImageType's declared scale and bias."""
    copy_image_example(pytester)
    pytester.makepyfile(
        test_declared="""
        import pytest
        from test_classifier import photo

        from pytest_coreml_parity import assert_parity

        @pytest.fixture
        def torch_preprocess():
            return None

        @pytest.mark.coreml(precisions=["fp16"])
        def test_exact(coreml_model):
            assert_parity(coreml_model, photo(32, 32), rtol=0, atol=0, scale_atol=0)
        """
    )
    result = run("test_declared.py")
    result.assert_outcomes(failed=1)
    used = messages.PREPROCESSING_USED.format(torch_side=messages.PREPROCESSING_TORCH_DECLARED)
    result.stdout.fnmatch_lines(
        ["E * Core ML output * does not match PyTorch*", f"E * image: {used}"]
    )
    assert "preprocessing mismatch" not in result.stdout.str()
    # Diagnosis gives torch the same preprocessed pixels, so it runs.
    assert "diagnosis unavailable" not in result.stdout.str()
    result.stdout.fnmatch_lines(["first op departing from PyTorch*"])
