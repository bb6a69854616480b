"""Fixtures for the image-classifier example: a small CNN shipped with an ImageType input.

The team's own conversion (``coreml_convert``) declares the input as an RGB image with
``scale=1/255`` and a per-channel ``bias`` (minus the mean), at two enumerated image
sizes; ``torch_preprocess`` is the team's own torch preprocessing of the same pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import coremltools as ct
import pytest
import torch

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
#: The image sizes the app sends (height, width); 32x32 is the default.
SIZES = ((32, 32), (48, 48))


class TinyClassifier(torch.nn.Module):
    """conv-BN-ReLU twice, global average pool, linear: ten class scores."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1),
            torch.nn.BatchNorm2d(8),
            torch.nn.ReLU(),
            torch.nn.Conv2d(8, 16, 3, stride=2, padding=1),
            torch.nn.BatchNorm2d(16),
            torch.nn.ReLU(),
        )
        self.head = torch.nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


def calibrated_classifier() -> TinyClassifier:
    """Seeded weights, BatchNorm statistics calibrated on a few random batches."""
    torch.manual_seed(0)
    model = TinyClassifier()
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.rand(8, 3, 32, 32) - 0.45)
    return model.eval()


@pytest.fixture(scope="session")
def torch_model() -> torch.nn.Module:
    return calibrated_classifier()


@pytest.fixture
def example_inputs() -> tuple[torch.Tensor, ...]:
    # What the model was traced with: the preprocessed tensor, at the default size.
    return (torch.rand(1, 3, *SIZES[0]) - 0.45,)


def image_type(scale: float, bias: list[float]) -> Any:
    shapes = ct.EnumeratedShapes(shapes=[(1, 3, h, w) for h, w in SIZES], default=(1, 3, *SIZES[0]))
    return ct.ImageType(
        name="image", shape=shapes, scale=scale, bias=bias, color_layout=ct.colorlayout.RGB
    )


@pytest.fixture
def coreml_convert() -> Callable[..., Any]:
    """Our shipping recipe: the plugin calls it once per precision."""

    def convert(torch_model: torch.nn.Module, example_inputs: Any, compute_precision: Any) -> Any:
        traced = torch.jit.trace(torch_model, example_inputs)
        return ct.convert(
            traced,
            inputs=[image_type(1 / 255, [-m for m in MEAN])],
            compute_precision=compute_precision,
            minimum_deployment_target=ct.target.iOS16,
        )

    return convert


@pytest.fixture
def torch_preprocess() -> Callable[[torch.Tensor], torch.Tensor]:
    """Our torch preprocessing: uint8 pixels (1, 3, H, W) in RGB -> pixels/255 - mean."""

    def preprocess(pixels: torch.Tensor) -> torch.Tensor:
        return pixels.float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)

    return preprocess
