"""Small helpers shared by kernel modules."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

#: A float32 array: what every float value is held as while a program runs.
F32Array = npt.NDArray[np.float32]


def f32(x: Any) -> F32Array:
    """``x`` as a float32 array (no copy when it already is one)."""
    return np.asarray(x, dtype=np.float32)


def axis_of(axis: Any, rank: int) -> int:
    """A possibly negative MIL axis as a non-negative one."""
    a = int(axis)
    return a + rank if a < 0 else a


def axes_of(axes: Any, rank: int) -> tuple[int, ...]:
    """MIL ``axes`` (None meaning all) as a sorted tuple of non-negative axes."""
    if axes is None:
        return tuple(range(rank))
    return tuple(sorted(axis_of(a, rank) for a in np.atleast_1d(np.asarray(axes))))
