"""torch's float32 CPU kernels as fast paths for numpy kernels.

torch is a dependency of the package, and its CPU kernels are vectorized where
numpy has none (convolution) or needs several passes (sigmoid). A kernel that
uses one still computes in float32 and returns a float32 array: the runner
rounds it to the declared dtype as for any kernel, so the rounding points do not
move. Each fast path has a numpy twin for when torch is missing, and the tests
check the two agree.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

#: Elementwise fast paths take torch from this many elements on; below, numpy's
#: lower call overhead wins. (Convolution always takes torch.)
TORCH_MIN_SIZE = 2048


@functools.cache
def torch_or_none() -> Any:
    """The torch module, or None when it is not installed."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency, but stay usable
        return None
    return torch


def tensor(torch: Any, value: Any) -> Any:
    """``value`` as a float32 CPU tensor sharing memory with it when it can.

    ``torch.from_numpy`` needs a writable array with no negative stride; any other
    (a constant read straight from a buffer, a reversed view) is copied first.
    """
    arr = np.require(value, dtype=np.float32, requirements=["C", "W"])
    if any(stride < 0 for stride in arr.strides):
        # numpy calls a reversed view "C-contiguous" when the reversed axis has size 1;
        # torch refuses any negative stride.
        arr = arr.copy()
    return torch.from_numpy(arr)
