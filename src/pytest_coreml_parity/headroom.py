"""Per-op headroom to the fp16 cliff, read from the emulator's :class:`~.emulator.Recording`.

Sits below :mod:`.model` and :mod:`.compare` (imports only numpy and the emulator),
so the assertion can guide hypothesis and the model can accumulate what each call
saw; naming torch source lines and formatting sit above, in ``diagnose/headroom.py``.

Definitions (docs/usage.md, "Headroom"):

* **peak** of an op: the largest finite ``|value|`` its float outputs stored in the
  typed run (the run the test judged; no second run);
* **overflowed**: elements an fp16-typed op stored as nan/inf although every float
  value it read was finite (the op itself went past 65504); its margin is then 0;
* **margin**: ``65504 / peak`` (the gate fails below the margin the user sets);
* **underflow** of an fp16-typed op: among its nonzero finite stored elements, the
  fraction below fp16's smallest normal ``2**-14``, stored as subnormals with fewer
  than 11 significant bits. Values flushed all the way to 0 are not counted: one
  typed run cannot tell them from true zeros (the recording holds declared dtypes).

* **masked** elements: in an op that carries an attention mask, the elements at or
  below -5000 (``-inf`` included); they are neither peaks nor overflows (the rule is
  :mod:`.masks`'s), so a ``-inf``, ``finfo.min``, ``-1e9`` or ``-3e4`` mask passes the gate.

Targeting reads the same recording: the largest finite ``|value|`` of any
fp16-typed op output, over 65504.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .emulator import Emulator, OpInfo, Recording, planned
from .emulator.dtypes import F16_MAX, finite_peak, fp16_peak
from .masks import mask_ops, masked

FP16_MAX = F16_MAX
#: fp16's smallest normal; below it fp16 keeps fewer than 11 significant bits.
FP16_TINY = 2.0**-14


class HeadroomWarning(UserWarning):
    """``--coreml-headroom-action=warn``: an op peaked above 65504 / margin."""


def emulator_for(mlmodel: Any, fp16_execution: str = "typed") -> Emulator:
    """The planned :class:`Emulator` of ``mlmodel`` under ``fp16_execution``: the
    emulator's own cache (:func:`~.emulator.planned`), so the runner and the headroom
    recording share one plan."""
    return planned(mlmodel, "main", fp16_execution)


def fp16_peak_ratio(recording: Recording) -> float | None:
    """Largest finite |value| of any fp16-typed op output over 65504; None without fp16 ops.

    :meth:`~.emulator.Emulator.run_fp16_peak` gives the same peak without a recording.
    """
    values = recording.values
    arrays = []
    for op in recording.ops:
        for name in op.outputs:
            value = values.get(name)
            if isinstance(value, np.ndarray) and value.dtype == np.float16:
                arrays.append(value)
    best = fp16_peak(arrays)
    return None if best is None else best / FP16_MAX


@dataclass
class OpHeadroom:
    """What one op stored over every recorded call of a test (see the module docstring)."""

    name: str
    op_type: str
    dtype: str
    peak: float = 0.0
    overflowed: int = 0
    nonzero: int = 0
    underflow: int = 0
    #: Masked elements of a mask op (:mod:`.masks`), not counted as peaks or overflows.
    masked: int = 0

    @property
    def margin(self) -> float:
        """65504 / peak: 0 once the op overflowed, inf for an op that only held zeros."""
        if self.overflowed:
            return 0.0
        return FP16_MAX / self.peak if self.peak > 0 else float("inf")

    @property
    def underflow_fraction(self) -> float:
        return self.underflow / self.nonzero if self.nonzero else 0.0


@dataclass
class HeadroomLog:
    """Per-op headroom accumulated over a test's calls to one model at one precision."""

    calls: int = 0
    ops: dict[str, OpHeadroom] = field(default_factory=dict)

    def add(self, recording: Recording) -> None:
        """Fold in one typed run's recording."""
        self.calls += 1
        values = recording.values
        masks = mask_ops(recording.ops, values)
        for op in recording.ops:
            for name in op.outputs:
                value = values.get(name)
                if not (isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.size):
                    continue
                entry = self.ops.get(op.name)
                if entry is None:
                    entry = self.ops[op.name] = OpHeadroom(op.name, op.op_type, str(value.dtype))
                if op.name in masks:  # a mask's fill is not a peak (masks.py)
                    hidden = masked(value)
                    entry.masked += int(np.count_nonzero(hidden))
                    value = value[~hidden]
                    if not value.size:
                        continue
                peak = finite_peak(value)
                entry.peak = max(entry.peak, peak)
                if value.dtype != np.float16:
                    continue
                magnitude = np.abs(value)
                if not np.isfinite(magnitude.max()) and _inputs_finite(recording, op):
                    entry.overflowed += int(np.count_nonzero(~np.isfinite(magnitude)))
                nonzero = magnitude[(magnitude > 0) & np.isfinite(magnitude)]
                entry.nonzero += int(nonzero.size)
                entry.underflow += int(np.count_nonzero(nonzero < FP16_TINY))


def _inputs_finite(recording: Recording, op: OpInfo) -> bool:
    """Whether every float value ``op`` read was finite (so nan/inf out means it overflowed)."""
    for values in recording.op_inputs(op).values():
        for value in values:
            if isinstance(value, np.ndarray) and value.dtype.kind == "f" and not np.isfinite(value).all():
                return False
    return True


__all__ = [
    "FP16_MAX",
    "FP16_TINY",
    "HeadroomLog",
    "HeadroomWarning",
    "OpHeadroom",
    "emulator_for",
    "fp16_peak_ratio",
]
