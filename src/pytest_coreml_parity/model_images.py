"""A bound model's image inputs: which inputs the program declares as images
(``ct.ImageType``), the test's ``torch_preprocess``, and what each side gets.

Cheap to import (numpy and the emulator load inside the methods); the pixel and
preprocessing rules themselves live in :mod:`.images` and :mod:`.emulator.image_inputs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import messages


class ImageInputs:
    """The image inputs of one bound model (empty for a model without any)."""

    def __init__(self, declared: dict[str, Any] | None = None, preprocess: Any = None) -> None:
        #: Inputs the program declares as images, by name: they take uint8 pixels or PIL
        #: images (see :mod:`.images`).
        self.declared: dict[str, Any] = declared or {}
        #: The test's ``torch_preprocess(pixels) -> tensor`` fixture, if any: how PyTorch
        #: gets an image input (else the ImageType's declared scale and bias).
        self.preprocess: Any = preprocess

    def warmup(self, example_inputs: tuple[Any, ...], input_names: Sequence[str]) -> tuple[Any, ...]:
        """The example inputs, with a mid-grey image (of the example's size) for each
        image input: its example is the float tensor the model was traced with."""
        if not self.declared:
            return example_inputs
        import numpy as np

        out = list(example_inputs)
        for i, name in enumerate(input_names[: len(out)]):
            image = self.declared.get(name)
            if image is not None:
                h, w = tuple(out[i].shape)[-2:]
                dtype = np.float32 if image.color_space == "GRAYSCALE_FLOAT16" else np.uint8
                out[i] = np.full((h, w, image.channels), 128, dtype)
        return tuple(out)

    def preprocessing(self, mlmodel: Any, profile: str) -> dict[str, Any]:
        """Per image input, the scale and bias its program applies (:class:`.images.Preprocessing`)."""
        if not self.declared or mlmodel is None:
            return {}
        from .headroom import emulator_for
        from .images import read_preprocessing

        ops = emulator_for(mlmodel, profile).ops
        return {name: read_preprocessing(ops, image) for name, image in self.declared.items()}

    def torch_images(
        self, arrays: tuple[Any, ...], input_names: Sequence[str], mlmodel: Any, profile: str
    ) -> dict[int, tuple[Any, str]]:
        """Per image input (by position), the tensor PyTorch gets for its pixels in
        ``arrays`` and which preprocessing made it (``torch_preprocess`` or the declared one)."""
        if not self.declared:
            return {}
        from .images import torch_input

        preps = self.preprocessing(mlmodel, profile)
        return {
            i: torch_input(arrays[i], preps[name], self.preprocess)
            for i, name in enumerate(input_names)
            if name in preps and i < len(arrays)
        }

    def as_pil(self, feed: dict[str, Any]) -> None:
        """Turn each image input of ``feed`` into a PIL image (Core ML's ``predict`` takes those)."""
        import numpy as np

        try:
            from PIL import Image
        except ImportError as missing:  # the [images] extra
            raise ImportError(messages.IMAGES_NEED_PILLOW.format(backend="coreml")) from missing

        for name in self.declared:
            pixels = np.asarray(feed[name])
            feed[name] = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)


__all__ = ["ImageInputs"]
