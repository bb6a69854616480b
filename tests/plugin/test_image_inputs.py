"""Image inputs through the plugin: coremltools 9.0's list ``scale`` is caught as a
preprocessing mismatch, whichever way PyTorch gets the pixels."""

from __future__ import annotations

import pytest

from pytest_coreml_parity import messages

CONFTEST = """
import coremltools as ct
import pytest
import torch

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class Scale(torch.nn.Module):
    def forward(self, x):
        return x * 0.5


@pytest.fixture
def torch_model():
    return Scale().eval()


@pytest.fixture
def example_inputs():
    return (torch.rand(1, 3, 4, 3),)  # 3 pixels wide: the list scale converts


@pytest.fixture
def coreml_convert():
    def convert(torch_model, example_inputs, compute_precision):
        image = ct.ImageType(
            name="image", shape=(1, 3, 4, 3),
            scale=[1 / (255 * s) for s in STD], bias=[-m / s for m, s in zip(MEAN, STD)],
        )
        return ct.convert(
            torch.jit.trace(torch_model, example_inputs), inputs=[image],
            compute_precision=compute_precision, minimum_deployment_target=ct.target.iOS16,
        )
    return convert
"""

TESTS = """
import numpy as np
import pytest
import torch
from PIL import Image

from pytest_coreml_parity import assert_parity
from conftest import MEAN, STD

PIXELS = np.random.default_rng(0).integers(0, 256, (4, 3, 3), dtype=np.uint8)


def test_declared(coreml_model):
    assert_parity(coreml_model, Image.fromarray(PIXELS))


class TestUserPreprocess:
    @pytest.fixture
    def torch_preprocess(self):
        def normalize(pixels):
            mean = torch.tensor(MEAN).view(1, 3, 1, 1)
            std = torch.tensor(STD).view(1, 3, 1, 1)
            return (pixels.float() / 255 - mean) / std
        return normalize

    def test_user(self, coreml_model):
        assert_parity(coreml_model, PIXELS)
"""


def test_list_scale_is_a_preprocessing_mismatch(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_list_scale=TESTS)
    result = run("--coreml-precisions=fp32")
    result.assert_outcomes(failed=2)
    cause = messages.PREPROCESSING_LIST_SCALE.format(
        n=3, scale="[0.0171248, 0.017507, 0.0174292]", width=3
    )
    for side in (messages.PREPROCESSING_TORCH_DECLARED, messages.PREPROCESSING_TORCH_USER):
        head = messages.PREPROCESSING_MISMATCH.format(name="image", torch_side=side)
        result.stdout.fnmatch_lines([f"E * {head}"])
    out = result.stdout.str()
    # Count in the failure reports only: with CI set, pytest repeats messages in the summary.
    failures = out.split("short test summary info")[0]
    assert failures.count(f"cause: {cause}") == 2  # (no fnmatch: the scale's brackets are patterns)
    assert "does not match PyTorch at" not in out


def test_image_input_refuses_float_tensors(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        test_floats="""
        import pytest
        import torch
        from pytest_coreml_parity import InputMismatchError

        def test_floats(coreml_model):
            with pytest.raises(InputMismatchError, match="input 'image' is an image .*takes a uint8"):
                coreml_model(torch.rand(1, 3, 4, 3))
        """
    )
    run("--coreml-precisions=fp32").assert_outcomes(passed=1)


def test_a_shipped_image_package_is_tested_on_pixels(pytester: pytest.Pytester, run) -> None:
    """``package=`` with an ImageType input: pixels in, the user's preprocessing for torch."""
    pytester.makepyfile(
        build_package="""
        import warnings

        import coremltools as ct
        import torch

        class Scale(torch.nn.Module):
            def forward(self, image):
                return image * 0.5

        def build(path):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                traced = torch.jit.trace(Scale().eval(), torch.rand(1, 3, 4, 5))
                ct.convert(
                    traced, minimum_deployment_target=ct.target.iOS16,
                    inputs=[ct.ImageType(name="image", shape=(1, 3, 4, 5), scale=1 / 255)],
                ).save(path)
        """
    )
    pytester.makeconftest(
        """
        import pytest
        import torch
        from build_package import Scale, build

        def pytest_configure(config):
            build("Model.mlpackage")

        @pytest.fixture
        def torch_model():
            return Scale().eval()

        @pytest.fixture
        def example_inputs():
            return (torch.rand(1, 3, 4, 5),)

        @pytest.fixture
        def torch_preprocess():
            return lambda pixels: pixels.float() / 255
        """
    )
    pytester.makepyfile(
        test_pkg="""
        import numpy as np
        import pytest
        from pytest_coreml_parity import assert_parity

        @pytest.mark.coreml(package="Model.mlpackage")
        def test_shipped(coreml_model):
            pixels = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)
            assert_parity(coreml_model, pixels)
        """
    )
    run().assert_outcomes(passed=1)
