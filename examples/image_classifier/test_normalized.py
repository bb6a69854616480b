"""ImageNet normalization, (pixels/255 - mean) / std per channel, shipped as one scale.

ImageType has a single ``scale`` (coremltools #244, #1160), so this team approximated
the three stds with their average. The plugin compares the program's preprocessed
tensor with ``torch_preprocess``'s and reports a *preprocessing mismatch* with the
per-channel std it recovered, before (and instead of) comparing the outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import coremltools as ct
import pytest
import torch
from conftest import MEAN, SIZES, STD, image_type
from test_classifier import photo

from pytest_coreml_parity import PreprocessingMismatch, assert_parity

ONE_STD = sum(STD) / 3


@pytest.fixture
def coreml_convert() -> Callable[..., Any]:
    def convert(torch_model: torch.nn.Module, example_inputs: Any, compute_precision: Any) -> Any:
        traced = torch.jit.trace(torch_model, example_inputs)
        bias = [-m / s for m, s in zip(MEAN, STD, strict=True)]
        return ct.convert(
            traced,
            inputs=[image_type(1 / (255 * ONE_STD), bias)],
            compute_precision=compute_precision,
            minimum_deployment_target=ct.target.iOS16,
        )

    return convert


@pytest.fixture
def torch_preprocess() -> Callable[[torch.Tensor], torch.Tensor]:
    def preprocess(pixels: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(MEAN).view(1, 3, 1, 1)
        std = torch.tensor(STD).view(1, 3, 1, 1)
        return (pixels.float() / 255 - mean) / std

    return preprocess


@pytest.mark.xfail(
    strict=True,
    raises=PreprocessingMismatch,
    reason="ImageType takes one scale: it cannot express a per-channel std",
)
def test_per_channel_std(coreml_model):
    assert_parity(coreml_model, photo(*SIZES[0]))
