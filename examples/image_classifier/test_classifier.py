"""The image classifier as shipped: an RGB ImageType input, tested on real pixels.

* ``test_parity`` and ``test_each_image_size`` pass at fp32 and fp16: the program's
  own scale/bias preprocessing gives the tensor ``torch_preprocess`` gives PyTorch.
* ``test_fuzz`` draws random pixels at both image sizes with ``model_inputs``.
* ``test_normalized.py`` shows a preprocessing the ImageType cannot express.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SIZES
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from pytest_coreml_parity import assert_parity
from pytest_coreml_parity.strategies import model_inputs


def photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random 'photo': uint8 RGB pixels, shape (H, W, 3)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, width)[None, :, None] * rng.uniform(0, 255, (1, 1, 3))
    noise = rng.normal(0, 20, (height, width, 3))
    return np.clip(ramp + noise + 60, 0, 255).astype(np.uint8)


def test_parity(coreml_model):
    assert_parity(coreml_model, photo(*SIZES[0]))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_each_image_size(coreml_model, size):
    assert_parity(coreml_model, Image.fromarray(photo(*size, seed=1)))


@given(data=st.data())
@settings(max_examples=10, deadline=None)
def test_fuzz(coreml_model, data):
    """``model_inputs`` draws uint8 pixels at every size the ImageType allows."""
    (image,) = data.draw(model_inputs(coreml_model, vary_shapes=True), label="image")
    assert image.dtype == np.uint8 and image.shape[-1] == 3
    assert_parity(coreml_model, image)
