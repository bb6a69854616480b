"""Image inputs: turn the pixels Core ML is given into the tensor the program reads.

A model converted with ``ct.ImageType`` declares the input as ``imageType``
(colour space, width, height) in its description, while its ML Program reads a
float ``(1, C, H, W)`` tensor: coremltools' image-preprocessing pass already
inserted the ``scale`` multiply and the ``bias`` add as ops after the input. So
the emulator only does what Core ML does before the program runs: take the
image's 8-bit pixels (or, for ``GRAYSCALE_FLOAT16``, its half-float values), put
the channels first in the declared order (``BGR``: channel 0 is blue) and add
the batch dimension. Everything else runs as ordinary ops.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InputError

#: The colour spaces Core ML images have, and their channel counts.
CHANNELS = {"RGB": 3, "BGR": 3, "GRAYSCALE": 1, "GRAYSCALE_FLOAT16": 1}


@dataclass(frozen=True)
class ImageInput:
    """An input the model description declares as an image.

    ``sizes`` lists the allowed ``(height, width)`` pairs when the description
    enumerates them; ``size_range`` gives ``((h_lo, h_hi), (w_lo, w_hi))`` (an upper
    bound of -1 is unbounded) for a ranged image; else only ``(height, width)``.
    """

    name: str
    color_space: str
    height: int
    width: int
    sizes: tuple[tuple[int, int], ...] = ()
    size_range: tuple[tuple[int, int], tuple[int, int]] | None = None

    @property
    def channels(self) -> int:
        return CHANNELS[self.color_space]

    def allows(self, height: int, width: int) -> bool:
        if self.sizes:
            return (height, width) in self.sizes
        if self.size_range is not None:
            return all(
                lo <= got and (hi < 0 or got <= hi)
                for (lo, hi), got in zip(self.size_range, (height, width), strict=True)
            )
        return (height, width) == (self.height, self.width)

    def describe(self) -> str:
        if self.sizes:
            shown = ", ".join(f"{h}x{w}" for h, w in self.sizes)
        elif self.size_range is not None:
            (hl, hh), (wl, wh) = self.size_range
            shown = (
                f"height {hl}..{hh if hh >= 0 else 'any'}, width {wl}..{wh if wh >= 0 else 'any'}"
            )
        else:
            shown = f"{self.height}x{self.width}"
        return f"{self.color_space} image, height x width {shown}"


def read_images(description: Any, function_name: str = "main") -> dict[str, ImageInput]:
    """The image inputs of a model description (``spec.description``), by name.

    A multi-function model describes each function's inputs separately; the
    function ``function_name``'s are used when present.
    """
    inputs = list(description.input)
    for function in getattr(description, "functions", ()):
        if function.name == function_name:
            inputs = list(function.input)
    found: dict[str, ImageInput] = {}
    for feature in inputs:
        if feature.type.WhichOneof("Type") != "imageType":
            continue
        image = feature.type.imageType
        space = type(image).ColorSpace.Name(image.colorSpace)
        sizes: tuple[tuple[int, int], ...] = ()
        size_range = None
        flexible = image.WhichOneof("SizeFlexibility")
        if flexible == "enumeratedSizes":
            sizes = tuple((int(s.height), int(s.width)) for s in image.enumeratedSizes.sizes)
        elif flexible == "imageSizeRange":
            r = image.imageSizeRange
            size_range = (
                (int(r.heightRange.lowerBound), int(r.heightRange.upperBound)),
                (int(r.widthRange.lowerBound), int(r.widthRange.upperBound)),
            )
        found[feature.name] = ImageInput(
            feature.name, space, int(image.height), int(image.width), sizes, size_range
        )
    return found


def _is_pil(value: Any) -> bool:
    return all(hasattr(value, a) for a in ("mode", "size", "convert", "getbands"))


def pixels(value: Any, image: ImageInput) -> np.ndarray[Any, Any]:
    """The image ``value`` as an ``(H, W, C)`` array in its natural channel order (RGB).

    Takes a PIL image (converted to ``RGB``, ``L`` or, for ``GRAYSCALE_FLOAT16``,
    ``F``, as Core ML reads it) or an array: ``uint8`` ``(H, W, 3)`` (or
    ``(1, H, W, 3)``) for colour, ``uint8`` ``(H, W)`` or ``(H, W, 1)`` for
    grayscale, any float dtype for ``GRAYSCALE_FLOAT16``.
    """
    space = image.color_space
    if _is_pil(value):
        mode = {"RGB": "RGB", "BGR": "RGB", "GRAYSCALE": "L", "GRAYSCALE_FLOAT16": "F"}[space]
        arr = np.asarray(value.convert(mode))
    else:
        arr = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)
    given = arr.shape  # errors quote the shape passed, not the squeezed one
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 2:
        arr = arr[:, :, None]
    want = (
        "a float array of shape (H, W)"
        if space == "GRAYSCALE_FLOAT16"
        else f"a uint8 array of shape (H, W{', 3' if image.channels == 3 else ''}) or a PIL image"
    )
    dtype_ok = arr.dtype.kind == "f" if space == "GRAYSCALE_FLOAT16" else arr.dtype == np.uint8
    if not dtype_ok or arr.ndim != 3 or arr.shape[2] != image.channels:
        raise InputError(
            f"input {image.name!r} is an image ({image.describe()}): it takes {want}; "
            f"got {type(value).__name__} of dtype {arr.dtype} and shape {given}"
        )
    height, width = arr.shape[:2]
    if not image.allows(height, width):
        raise InputError(
            f"input {image.name!r} is an image of {height}x{width} pixels; the model "
            f"allows {image.describe()}"
        )
    return arr


def image_tensor(value: Any, image: ImageInput) -> np.ndarray[Any, Any]:
    """The ``(1, C, H, W)`` float32 tensor the program's input reads for ``value``.

    Channels come in the declared colour space's order (``BGR``: blue first). The
    declared ``scale`` and ``bias`` are not applied here: they are ops in the program.
    """
    arr = pixels(value, image)
    if image.color_space == "BGR":
        arr = arr[:, :, ::-1]
    return np.ascontiguousarray(arr.transpose(2, 0, 1)[None].astype(np.float32))


def bind_images(inputs: Mapping[str, Any], images: Mapping[str, ImageInput]) -> Mapping[str, Any]:
    """``inputs`` with each image input turned into its program tensor."""
    if not images or not isinstance(inputs, Mapping):
        return inputs
    return {
        name: image_tensor(value, images[name]) if name in images else value
        for name, value in inputs.items()
    }
