"""Kernel modules, one per section of the MIL op spec. Importing registers them.

The list is explicit (not discovered) so the import graph is visible to tools;
``tests/emulator/test_core.py`` checks that every module here is listed.
"""

from __future__ import annotations

from . import (
    activation,
    constexpr,
    control_flow,
    conv,
    elementwise,
    image_resize,
    linear,
    normalization,
    pool,
    quantization,
    recurrent,
    reduction,
    scatter_gather,
    state,
    tensor_ops,
    transformers,
)

__all__ = [
    "activation",
    "constexpr",
    "control_flow",
    "conv",
    "elementwise",
    "image_resize",
    "linear",
    "normalization",
    "pool",
    "quantization",
    "recurrent",
    "reduction",
    "scatter_gather",
    "state",
    "tensor_ops",
    "transformers",
]
