"""Image inputs on both sides, and the preprocessing judged apart from the model.

An ``ImageType`` input is preprocessed by the program itself: coremltools
inserts ``x * scale + bias`` as the first ops after the input (the emulator
feeds those ops the pixels, see :mod:`.emulator.image_inputs`). PyTorch gets the
same pixels through the user's ``torch_preprocess``, else through the declared
scale and bias read back from those ops, per channel.

Before the outputs are compared, the program's post-preprocessing tensor is
compared with the tensor PyTorch gets. If they differ, that is a *preprocessing
mismatch*, reported with per-channel statistics and the likely cause (one scale
for a per-channel std, or coremltools 9.0's list ``scale`` multiplied along the
width), not as model drift.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import messages
from ._values import to_numpy
from .emulator import ImageInput, OpInfo
from .emulator.image_inputs import image_tensor, pixels

#: Preprocessing runs in float32 on both sides: beyond this it is a real difference.
PREPROCESSING_RTOL = 1e-3
PREPROCESSING_ATOL = 1e-3

TorchPreprocess = Callable[[Any], Any]


@dataclass(frozen=True)
class Preprocessing:
    """The scale and bias the program applies to image input ``image``, as it holds them.

    ``scale`` and ``bias`` are the constants of the ``mul`` and ``add`` coremltools
    inserted (1 and 0 when absent), in their program shapes; ``output`` names the
    variable holding the post-preprocessing tensor.
    """

    image: ImageInput
    scale: np.ndarray[Any, Any]
    bias: np.ndarray[Any, Any]
    output: str

    def program(self, tensor: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """What the program computes from the input tensor: ``tensor * scale + bias``."""
        scaled = np.asarray(tensor * self.scale.astype(np.float32), dtype=np.float32)
        return np.asarray(scaled + self.bias.astype(np.float32), dtype=np.float32)

    def declared(self, tensor: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """The declared meaning: one scale (or one per channel) and a bias per channel."""
        scale, bias = self.per_channel(self.scale), self.per_channel(self.bias)
        return np.asarray(tensor * scale + bias, dtype=np.float32)

    def per_channel(self, value: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        flat = value.astype(np.float32).reshape(-1)
        if flat.size == self.image.channels and flat.size > 1:
            return flat.reshape(1, -1, 1, 1)
        return flat[:1].reshape(()) if flat.size else np.zeros((), np.float32)

    @property
    def list_scale(self) -> bool:
        """Whether the scale is a vector along the last axis (coremltools 9.0's list scale)."""
        return self.scale.ndim == 1 and self.scale.size > 1


def read_preprocessing(ops: Sequence[OpInfo], image: ImageInput) -> Preprocessing:
    """The ``mul``-then-``add`` by constants that follow ``image``'s input in ``ops``.

    Only the ops coremltools' image-preprocessing pass inserts count (it names their
    outputs ``<input>__scaled__`` and ``<input>__biased__``; a scale of 1 or a bias of
    0 has none), so a model whose own first op is a ``mul`` is not misread.
    """
    scale = np.ones((), np.float32)
    bias = np.zeros((), np.float32)
    current = image.name
    for op_type, suffix in (("mul", "__scaled__"), ("add", "__biased__")):
        op = next(
            (
                o
                for o in ops
                if o.op_type == op_type
                and _reads(o, current)
                and o.outputs[0].endswith(f"{image.name}{suffix}")
            ),
            None,
        )
        if op is None:
            continue
        other = next((k for k in ("x", "y") if k in op.constants), None)
        if other is None:
            continue
        value = np.asarray(op.constants[other], dtype=np.float32)
        if op_type == "mul":
            scale = value
        else:
            bias = value
        current = op.outputs[0]
    return Preprocessing(image=image, scale=scale, bias=bias, output=current)


def _reads(op: OpInfo, name: str) -> bool:
    return any(names == (name,) for names in op.inputs.values())


def torch_pixels(value: Any, image: ImageInput) -> Any:
    """The pixels as a torch ``uint8`` (float for ``GRAYSCALE_FLOAT16``) tensor ``(1, C, H, W)``,
    channels in natural (RGB) order: what ``torch_preprocess`` receives."""
    import torch

    arr = pixels(value, image)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)[None]))


def torch_input(
    value: Any, prep: Preprocessing, torch_preprocess: TorchPreprocess | None
) -> tuple[np.ndarray[Any, Any], str]:
    """The tensor PyTorch gets for image ``value``, and which preprocessing made it."""
    if torch_preprocess is None:
        return prep.declared(image_tensor(value, prep.image)), messages.PREPROCESSING_TORCH_DECLARED
    out = torch_preprocess(torch_pixels(value, prep.image))
    array = to_numpy(out)
    return np.asarray(array, dtype=np.float32), messages.PREPROCESSING_TORCH_USER


def preprocessing_mismatch(
    value: Any, prep: Preprocessing, torch_tensor: np.ndarray[Any, Any], torch_side: str
) -> list[str] | None:
    """The report lines when the program's preprocessed tensor is not ``torch_tensor``."""
    raw = image_tensor(value, prep.image)
    ours = prep.program(raw)
    if ours.shape == torch_tensor.shape and np.allclose(
        ours, torch_tensor, rtol=PREPROCESSING_RTOL, atol=PREPROCESSING_ATOL
    ):
        return None
    lines = [messages.PREPROCESSING_MISMATCH.format(name=prep.image.name, torch_side=torch_side)]
    implied = (
        f" (std {1 / (255 * float(prep.scale.reshape(-1)[0])):.4g} for every channel)"
        if prep.scale.size == 1 and float(prep.scale.reshape(-1)[0]) != 0
        else ""
    )
    lines.append(
        f"  ImageType: {prep.image.color_space}, scale {_show(prep.scale)}{implied}, "
        f"bias {_show(prep.bias)}"
    )
    if ours.shape != torch_tensor.shape:
        lines.append(f"  shapes differ: Core ML {ours.shape}, PyTorch {torch_tensor.shape}")
        return lines
    lines.append(
        "  per channel (Core ML program | PyTorch): mean, std, max |diff|; "
        "PyTorch's fit as pixel*scale+bias (std = 1/(255*scale), mean = -bias*std)"
    )
    for c in range(ours.shape[1]):
        a, b = ours[:, c], torch_tensor[:, c]
        slope, icpt = _fit(raw[:, c], b)
        fit = (
            f"scale {slope:.6g}, bias {icpt:.6g} (std {1 / (255 * slope):.4g}, mean "
            f"{-icpt / (255 * slope):.4g})"
            if slope
            else "not affine in the pixels"
        )
        lines.append(
            f"  channel {c}: {a.mean():.6g}, {a.std():.6g} | {b.mean():.6g}, {b.std():.6g}; "
            f"max |diff| {np.abs(a - b).max():.6g}; PyTorch {fit}"
        )
    if prep.list_scale:
        lines.append(
            "  cause: "
            + messages.PREPROCESSING_LIST_SCALE.format(
                n=prep.scale.size, scale=_show(prep.scale), width=raw.shape[-1]
            )
        )
    elif prep.scale.size == 1:
        lines.append("  likely cause: " + messages.PREPROCESSING_ONE_SCALE)
    return lines


def _fit(x: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> tuple[float, float]:
    """Least-squares ``y = slope * x + intercept`` (slope 0 when ``x`` is constant)."""
    xf, yf = x.astype(np.float64).ravel(), y.astype(np.float64).ravel()
    var = xf.var()
    if var == 0:
        return 0.0, float(yf.mean())
    slope = float(((xf - xf.mean()) * (yf - yf.mean())).mean() / var)
    return slope, float(yf.mean() - slope * xf.mean())


def _show(value: np.ndarray[Any, Any]) -> str:
    flat = value.reshape(-1)
    if flat.size == 1:
        return f"{float(flat[0]):.6g}"
    return "[" + ", ".join(f"{float(v):.6g}" for v in flat) + "]"
