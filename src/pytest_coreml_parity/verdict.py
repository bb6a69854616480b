"""The one verdict: tolerance presets, tolerance resolution, and the mismatch rule.

A leaf module (numpy and :mod:`.errors` only). ``assert_parity`` judges with it,
the mixed-precision fix search verifies with it, and the emulator's tests take
their presets from it, so "parity holds" means the same thing everywhere.

The rule, element-wise: where both sides are finite, a mismatch is
``|actual - expected| > atol + rtol * |expected|``. Non-finite values must match
exactly (nan with nan, an infinity with the same infinity), so nan/inf on the
Core ML side where PyTorch is finite is always a mismatch, whatever the tolerance.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from .errors import SettingError
from .messages import BAD_TOLERANCE, UNKNOWN_PRESET


class Tolerance(NamedTuple):
    """One precision's preset: ``rtol, atol = TOLERANCES["fp16"]``."""

    rtol: float
    atol: float


class ResolvedTolerance(NamedTuple):
    """The tolerance a verdict uses and where it came from (``origin``, for messages)."""

    rtol: float
    atol: float
    origin: str


#: The presets, per precision; reasoning in docs/tolerances.md.
TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(rtol=1e-4, atol=1e-5),
    "fp16": Tolerance(rtol=1e-2, atol=1e-2),
}

#: A tolerance as given: a number for every precision, or a number per precision.
ToleranceValue = float | Mapping[str, float] | None


def _known() -> str:
    return ", ".join(TOLERANCES)


def preset(precision: str) -> Tolerance:
    """The preset for ``precision``; :class:`SettingError` for a precision without one."""
    try:
        return TOLERANCES[precision]
    except KeyError:
        raise SettingError(UNKNOWN_PRESET.format(precision=precision, known=_known())) from None


def _number(value: Any, where: str, what: str, shown: Any) -> float:
    bad = SettingError(BAD_TOLERANCE.format(where=where, what=what, known=_known(), value=shown))
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise bad
    number = float(value)
    if not math.isfinite(number) or number < 0.0:
        raise bad
    return number


def check_tolerance(value: Any, where: str, what: str) -> ToleranceValue:
    """``value`` validated: None, a finite number >= 0, or a dict of them keyed by precision.

    Strings, booleans, negative or non-finite numbers and unknown precision keys
    raise :class:`SettingError` naming ``where`` and the value (never a fallback).
    """
    if value is None:
        return None
    if isinstance(value, Mapping):
        checked: dict[str, float] = {}
        for key, number in value.items():
            if key not in TOLERANCES:
                raise SettingError(
                    BAD_TOLERANCE.format(where=where, what=what, known=_known(), value=dict(value))
                )
            checked[key] = _number(number, where, what, dict(value))
        return checked
    return _number(value, where, what, value)


def resolve_tolerance(
    precision: str,
    rtol: Any = None,
    atol: Any = None,
    *,
    configured_rtol: Any = None,
    configured_atol: Any = None,
    argument_where: str = "argument {what}",
    configured_where: str = "configured {what}",
) -> ResolvedTolerance:
    """(rtol, atol, origin): the argument, else the configured value, else the preset.

    Each of rtol and atol resolves on its own. A per-precision dict that does not
    name ``precision`` falls through to the next source. ``origin`` reads
    ``fp16 preset`` or ``rtol argument, atol configured``. The ``*_where``
    templates (``{what}`` is ``rtol`` or ``atol``) name the source in errors.
    """
    base = preset(precision)
    sources: list[str] = []

    def pick(arg: Any, configured: Any, fallback: float, what: str) -> float:
        candidates = (
            (arg, "argument", argument_where),
            (configured, "configured", configured_where),
        )
        for raw, label, where in candidates:
            value = check_tolerance(raw, where.format(what=what), what)
            if isinstance(value, Mapping):
                if precision not in value:
                    continue
                value = value[precision]
            if value is None:
                continue
            sources.append(f"{what} {label}")
            return float(value)
        return fallback

    r = pick(rtol, configured_rtol, base.rtol, "rtol")
    a = pick(atol, configured_atol, base.atol, "atol")
    origin = f"{precision} preset" if not sources else ", ".join(sources)
    return ResolvedTolerance(r, a, origin)


def _as_float(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return a.astype(np.float64) if a.dtype.kind in "fiub" else a


def mismatch_mask(actual: Any, expected: Any, rtol: float, atol: float) -> npt.NDArray[np.bool_]:
    """Element-wise mismatches of two same-shape arrays under the rule above.

    Raises :class:`ValueError` when the shapes differ.
    """
    a = _as_float(np.asarray(actual))
    e = _as_float(np.asarray(expected))
    if a.shape != e.shape:
        raise ValueError(f"shape mismatch: Core ML {a.shape}, PyTorch {e.shape}")
    both_finite = np.isfinite(a) & np.isfinite(e)
    with np.errstate(invalid="ignore", over="ignore"):
        close = np.abs(a - e) <= atol + rtol * np.abs(e)
    same_nonfinite = (np.isnan(a) & np.isnan(e)) | (
        np.isinf(a) & np.isinf(e) & (np.sign(a) == np.sign(e))
    )
    mask: npt.NDArray[np.bool_] = np.where(both_finite, ~close, ~same_nonfinite)
    return mask


def outputs_match(actual: Any, expected: Any, rtol: float, atol: float) -> bool:
    """Parity of one output: same shape and no element mismatched."""
    if np.shape(actual) != np.shape(expected):
        return False
    return not bool(mismatch_mask(actual, expected, rtol, atol).any())


__all__ = [
    "TOLERANCES",
    "ResolvedTolerance",
    "Tolerance",
    "ToleranceValue",
    "check_tolerance",
    "mismatch_mask",
    "outputs_match",
    "preset",
    "resolve_tolerance",
]
