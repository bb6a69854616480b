"""The shapes a bound model declares, and inputs at each of them.

``coreml_model.declared_shapes()`` and ``coreml_model.inputs_for_shapes()`` read this:
multi-array inputs from their ``AllowedShapes`` (shapes.py), image inputs from their
declared sizes (every enumerated size, or a range's bounds and an interior size), as the
``(1, C, H, W)`` tensor torch sees; the inputs for an image are pixels (``uint8``
``(H, W, C)``, or ``(H, W)`` grayscale), which is what an image input takes.
"""

from __future__ import annotations

from typing import Any

from .emulator.image_inputs import ImageInput
from .shapes import AllowedShapes, Shape, combined


def image_allowed(image: ImageInput, name: str) -> AllowedShapes:
    """An image input's sizes as the ``(1, C, H, W)`` shapes of the tensor torch sees."""
    channels = image.channels
    default = (1, channels, image.height, image.width)
    if image.sizes:
        return AllowedShapes(name, default, enumerated=tuple((1, channels, h, w) for h, w in image.sizes))
    if image.size_range is not None:
        (hl, hh), (wl, wh) = image.size_range
        ranges = ((1, 1), (channels, channels), (hl, hh if hh >= 0 else None), (wl, wh if wh >= 0 else None))
        return AllowedShapes(name, default, ranges=ranges)
    return AllowedShapes(name, default)


def declared_shapes(model: Any) -> tuple[tuple[Shape, ...], ...]:
    """One tuple per call (a shape per input): every declared shape and image size."""
    allowed = []
    for name, example in zip(model.input_names, model.example_inputs, strict=False):
        image = model.images.get(name)
        if image is not None:
            allowed.append(image_allowed(image, name))
        else:
            allowed.append(model.allowed_shapes.get(name) or AllowedShapes(name, tuple(example.shape)))
    return combined(allowed)


def _pixels(image: ImageInput, shape: Shape, rng: Any) -> Any:
    import numpy as np

    height, width = shape[-2], shape[-1]
    if image.color_space == "GRAYSCALE_FLOAT16":
        return rng.random((height, width)).astype(np.float16)
    size = (height, width, 3) if image.channels == 3 else (height, width)
    return rng.integers(0, 256, size=size, dtype=np.uint8)


def inputs_for_shapes(model: Any, seed: int = 0) -> list[tuple[Any, ...]]:
    """Inputs at every declared shape: pixels for an image input; else the example where
    its shape matches, seeded ``torch.randn`` (floats) or ``randint`` over the example's
    range (integers) of that shape."""
    import numpy as np
    import torch

    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    calls = []
    for shapes in declared_shapes(model):
        call = []
        for name, shape, example in zip(model.input_names, shapes, model.example_inputs, strict=True):
            image = model.images.get(name)
            if image is not None:
                call.append(_pixels(image, shape, rng))
            elif tuple(example.shape) == shape:
                call.append(example)
            elif example.is_floating_point():
                call.append(torch.randn(shape, generator=generator).to(example.dtype))
            else:
                low, high = int(example.min()), int(example.max()) + 1
                call.append(torch.randint(low, high, shape, generator=generator, dtype=example.dtype))
        calls.append(tuple(call))
    return calls
