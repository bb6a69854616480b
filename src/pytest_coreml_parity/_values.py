"""The small value helpers every layer needs, written once.

A leaf module: no package imports, and numpy only inside the function that needs
it, so the cheap-to-import modules (settings, the plugin) may use it too.
"""

from __future__ import annotations

import sys
from importlib import metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


def flatten(value: Any) -> list[Any]:
    """The leaves of a nested tuple/list/dict structure (a model's outputs), in order
    (a dict's values in its order: outputs by key, see outputs.py)."""
    if not isinstance(value, (tuple, list, dict)):
        return [value]
    out: list[Any] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, (tuple, list)):
            stack.extend(reversed(item))
        else:
            out.append(item)
    return out


def to_numpy(value: Any) -> npt.NDArray[Any]:
    """A torch tensor (detached, on the CPU) or anything array-like, as a numpy array."""
    import numpy as np

    if hasattr(value, "detach"):
        array: np.ndarray[Any, Any] = value.detach().cpu().numpy()
        return array
    return np.asarray(value)


#: From this many elements on, :func:`widen_float16` goes through torch.
FAST_WIDEN_MIN_SIZE = 4096


def widen_float16(value: Any) -> Any:
    """A large float16 array as a new float64 array (values exact) through torch, when
    torch is loaded; anything else as it is.

    numpy's float16 cast is a scalar loop, several times slower than torch's vectorized
    one; below :data:`FAST_WIDEN_MIN_SIZE` elements numpy's call costs less.
    """
    import numpy as np

    torch = sys.modules.get("torch")
    if (
        torch is None
        or not isinstance(value, np.ndarray)
        or value.dtype != np.float16
        or value.size < FAST_WIDEN_MIN_SIZE
        or not value.flags.c_contiguous
        or not value.flags.writeable
    ):
        return value
    widened: npt.NDArray[Any] = torch.from_numpy(value).to(torch.float64).numpy()
    return widened


def package_version(dist: str, missing: str = "absent") -> str:
    """The installed version of ``dist``, or ``missing``."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return missing


__all__ = ["flatten", "package_version", "to_numpy", "widen_float16"]
