"""The one place diagnosis gets its "parity holds" tolerance from.

The plugin's ``compare`` module owns the tolerance presets; we import them
when it is present. Without it (the emulator used on its own) we fall back to
the emulator test suite's documented presets: fp32 rtol 1e-4 / atol 1e-5, fp16
rtol 1e-2 / atol 1e-2 (about 20x one fp16 rounding, see docs/diagnosis.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np

_LOCAL = {"fp32": (1e-4, 1e-5), "fp16": (1e-2, 1e-2)}


def tolerance(precision: str, model: Any = None) -> tuple[float, float]:
    """(rtol, atol) for ``precision``: the plugin's presets (and ``model``'s overrides)."""
    try:
        from .. import compare

        rtol, atol, _origin = compare.tolerance_for(precision, model=model)
        return float(rtol), float(atol)
    except (ImportError, AttributeError, KeyError, TypeError, ValueError):
        return _LOCAL.get(precision, _LOCAL["fp16"])


def outputs_match(got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> bool:
    """Parity of one output: close where torch is finite, and the same nan/inf elsewhere."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return False
    finite = np.isfinite(want)
    if not np.array_equal(np.isnan(got), np.isnan(want)):
        return False
    if not np.array_equal(got[np.isinf(want)], want[np.isinf(want)]):
        return False
    g, w = got[finite], want[finite]
    if not np.all(np.isfinite(g)):
        return False
    return bool(np.all(np.abs(g - w) <= atol + rtol * np.abs(w)))
