"""Image inputs: the emulator feeds the program the pixels, and the preprocessing check.

Real conversions with ``ct.ImageType`` (direct ``ct.convert``), the real emulator.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from pytest_coreml_parity import messages
from pytest_coreml_parity._coremltools import import_coremltools
from pytest_coreml_parity.emulator import Emulator, InputError
from pytest_coreml_parity.images import (
    preprocessing_mismatch,
    read_preprocessing,
    torch_input,
)

ct = import_coremltools()

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class Identity(torch.nn.Module):
    """Returns its input times one, so the output is the preprocessed tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 1.0


def convert(
    shape: Any,
    *,
    scale: Any = 1 / 255,
    bias: Any = None,
    layout: Any = None,
    precision: Any = None,
    target: Any = None,
) -> Any:
    example = shape.default if isinstance(shape, ct.EnumeratedShapes) else shape
    traced = torch.jit.trace(Identity().eval(), torch.rand(*example))
    kwargs: dict[str, Any] = {"scale": scale}
    if bias is not None:
        kwargs["bias"] = bias
    if layout is not None:
        kwargs["color_layout"] = layout
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ct.convert(
            traced,
            inputs=[ct.ImageType(name="image", shape=shape, **kwargs)],
            minimum_deployment_target=target or ct.target.iOS16,
            compute_precision=precision or ct.precision.FLOAT32,
        )


def rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def only_output(outputs: dict[str, Any]) -> np.ndarray:
    (value,) = outputs.values()
    return np.asarray(value, dtype=np.float32)


def test_rgb_pixels_are_scaled_and_biased_per_channel() -> None:
    bias = [-m / s for m, s in zip(MEAN, STD, strict=True)]
    model = convert((1, 3, 4, 5), scale=1 / (255 * 0.226), bias=bias)
    pixels = rgb(4, 5)
    got = only_output(Emulator(model).run({"image": pixels}))
    want = pixels.transpose(2, 0, 1)[None] / (255 * 0.226) + np.reshape(bias, (1, 3, 1, 1))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_bgr_puts_blue_first_and_pil_images_are_accepted() -> None:
    model = convert((1, 3, 4, 5), scale=1.0, layout=ct.colorlayout.BGR)
    pixels = rgb(4, 5, seed=1)
    emulator = Emulator(model)
    got = only_output(emulator.run({"image": Image.fromarray(pixels)}))
    np.testing.assert_array_equal(got[0], pixels[:, :, ::-1].transpose(2, 0, 1))
    assert emulator.images["image"].color_space == "BGR"


def test_grayscale_takes_two_dimensional_pixels() -> None:
    model = convert((1, 1, 4, 5), scale=2.0, bias=0.5, layout=ct.colorlayout.GRAYSCALE)
    pixels = rgb(4, 5)[:, :, 0]
    got = only_output(Emulator(model).run({"image": pixels}))
    np.testing.assert_allclose(got[0, 0], pixels * 2.0 + 0.5)


def test_grayscale_float16_takes_half_float_values() -> None:
    model = convert(
        (1, 1, 4, 5),
        scale=1.0,
        layout=ct.colorlayout.GRAYSCALE_FLOAT16,
        precision=ct.precision.FLOAT16,
    )
    values = np.linspace(-2, 2, 20, dtype=np.float32).reshape(4, 5)
    got = only_output(Emulator(model).run({"image": values}))
    np.testing.assert_array_equal(got[0, 0], values.astype(np.float16).astype(np.float32))


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (np.zeros((4, 5, 3), np.float32), "takes a uint8 array"),
        (np.zeros((1, 3, 4, 5), np.uint8), "takes a uint8 array"),
        (np.zeros((6, 5, 3), np.uint8), "image of 6x5 pixels; the model allows RGB image"),
    ],
)
def test_wrong_pixels_are_refused_naming_the_input(value: np.ndarray, match: str) -> None:
    model = convert((1, 3, 4, 5))
    with pytest.raises(InputError, match=match) as info:
        Emulator(model).run({"image": value})
    assert "'image'" in str(info.value)


def test_enumerated_image_sizes_run_at_each_size() -> None:
    shapes = ct.EnumeratedShapes(shapes=[(1, 3, 4, 4), (1, 3, 8, 6)], default=(1, 3, 4, 4))
    model = convert(shapes)
    emulator = Emulator(model)
    for h, w in [(4, 4), (8, 6)]:
        got = only_output(emulator.run({"image": rgb(h, w)}))
        assert got.shape == (1, 3, h, w)
    with pytest.raises(InputError, match="4x4, 8x6"):
        emulator.run({"image": rgb(5, 5)})


def test_declared_preprocessing_matches_itself() -> None:
    model = convert((1, 3, 4, 5), bias=[-0.5, -0.25, 0.0])
    emulator = Emulator(model)
    prep = read_preprocessing(emulator.ops, emulator.images["image"])
    pixels = rgb(4, 5)
    tensor, side = torch_input(pixels, prep, None)
    assert side == messages.PREPROCESSING_TORCH_DECLARED
    assert preprocessing_mismatch(pixels, prep, tensor, side) is None
    np.testing.assert_allclose(only_output(emulator.run({"image": pixels})), tensor, atol=1e-6)


def normalize(pixels: torch.Tensor) -> torch.Tensor:
    """torchvision-style ToTensor + Normalize(MEAN, STD), per channel."""
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (pixels.float() / 255 - mean) / std


def test_one_scale_for_a_per_channel_std_is_a_preprocessing_mismatch() -> None:
    bias = [-m / s for m, s in zip(MEAN, STD, strict=True)]
    model = convert((1, 3, 8, 8), scale=1 / (255 * 0.226), bias=bias)
    emulator = Emulator(model)
    prep = read_preprocessing(emulator.ops, emulator.images["image"])
    pixels = rgb(8, 8)
    tensor, side = torch_input(pixels, prep, normalize)
    lines = preprocessing_mismatch(pixels, prep, tensor, side)
    assert lines is not None
    text = "\n".join(lines)
    assert messages.PREPROCESSING_MISMATCH.format(name="image", torch_side=side) in text
    assert messages.PREPROCESSING_ONE_SCALE in text
    assert "std 0.229" in text and "std 0.224" in text  # the user's per-channel std, recovered


def test_coremltools_list_scale_multiplies_the_width_and_is_reported() -> None:
    """coremltools 9.0 broadcasts a list ``scale`` along the last axis (width).

    With a 3-pixel-wide image it converts and silently scales columns, not channels;
    at any other width conversion fails.
    """
    scale = [1 / (s * 255) for s in STD]
    bias = [-m / s for m, s in zip(MEAN, STD, strict=True)]
    model = convert((1, 3, 4, 3), scale=scale, bias=bias)
    emulator = Emulator(model)
    prep = read_preprocessing(emulator.ops, emulator.images["image"])
    assert prep.scale.shape == (3,)  # one value per column, not per channel
    pixels = np.full((4, 3, 3), 200, np.uint8)
    out = only_output(emulator.run({"image": pixels}))
    # Red channel, columns 0..2: scaled by 1/0.229, 1/0.224, 1/0.225 (the width axis).
    np.testing.assert_allclose(out[0, 0, 0], [200 * s + bias[0] for s in scale], rtol=1e-5)
    tensor, side = torch_input(pixels, prep, normalize)
    lines = preprocessing_mismatch(pixels, prep, tensor, side)
    assert lines is not None
    text = "\n".join(lines)
    assert "preprocessing mismatch" in text
    assert (
        messages.PREPROCESSING_LIST_SCALE.format(
            n=3, scale="[0.0171248, 0.017507, 0.0174292]", width=3
        )
        in text
    )
    # The declared (per-channel) meaning is also not what the program does.
    declared, side = torch_input(pixels, prep, None)
    assert preprocessing_mismatch(pixels, prep, declared, side) is not None


def test_list_scale_fails_to_convert_at_other_widths() -> None:
    with pytest.raises(ValueError, match="Incompatible dim"):
        convert((1, 3, 4, 5), scale=[1.0, 2.0, 3.0])


def test_a_model_mul_after_the_input_is_not_read_as_the_scale() -> None:
    """GRAYSCALE_FLOAT16 with scale 1 has no preprocessing ops: the model's ``x * 1.0``
    (the first op after the input) is the model's, not the ImageType's."""
    model = convert(
        (1, 1, 4, 5), scale=1.0, layout=ct.colorlayout.GRAYSCALE_FLOAT16,
        precision=ct.precision.FLOAT16,
    )  # fmt: skip
    emulator = Emulator(model)
    prep = read_preprocessing(emulator.ops, emulator.images["image"])
    assert float(prep.scale) == 1.0 and float(prep.bias) == 0.0 and prep.output == "image"


def test_grayscale_uint8_program_input_takes_the_pixels() -> None:
    """``grayscale_use_uint8=True`` (iOS17+): the program's input itself is uint8."""
    traced = torch.jit.trace(Identity().eval(), torch.rand(1, 1, 4, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ct.convert(
            traced,
            inputs=[
                ct.ImageType(
                    name="image",
                    shape=(1, 1, 4, 5),
                    grayscale_use_uint8=True,
                    color_layout=ct.colorlayout.GRAYSCALE,
                )
            ],
            minimum_deployment_target=ct.target.iOS17,
            compute_precision=ct.precision.FLOAT32,
        )
    emulator = Emulator(model)
    assert emulator.inputs[0].dtype == np.uint8
    pixels = rgb(4, 5)[:, :, 0]
    np.testing.assert_array_equal(only_output(emulator.run({"image": pixels}))[0, 0], pixels)
