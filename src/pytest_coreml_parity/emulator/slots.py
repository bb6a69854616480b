"""The run-time value a state input is bound to; shared by the engines and the state kernels."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


class StateSlot:
    """The value of one state input during one run: what ``read_state`` reads and
    ``coreml_update_state`` writes (always replacing ``value``, never mutating it).

    ``value`` is held like any value (fp16 as exactly representable float32);
    ``initial`` is the value the run started from.
    """

    __slots__ = ("dtype", "initial", "name", "value")

    def __init__(self, name: str, dtype: np.dtype[np.generic], value: npt.NDArray[np.generic]) -> None:
        self.name = name
        self.dtype = dtype
        self.initial = value
        self.value = value

    def __repr__(self) -> str:
        return f"StateSlot({self.name!r}, {self.dtype}, shape={self.value.shape})"
