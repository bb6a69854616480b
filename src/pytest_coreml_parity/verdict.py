"""The one verdict: presets, metrics, gate resolution, and the mismatch rule.

A leaf module (numpy and :mod:`.errors` only). ``assert_parity`` judges with it,
the mixed-precision fix search verifies with it, and the plugin's tests take
their presets from it, so "parity holds" means the same thing everywhere.

One output passes when both hold (docs/tolerances.md has the numbers):

* element-wise, where both sides are finite,
  ``|actual - expected| <= atol + rtol * |expected| + scale_atol * rms(expected)``;
  the last term judges an output at its own scale, so a result that is 100% wrong
  at magnitude 0.005 fails while deep-network fp16 noise passes. Non-finite values
  must match exactly (nan with nan, an infinity with the same infinity): nan/inf
  on the Core ML side where PyTorch is finite always fails, whatever the gates;
* every aggregate gate that is set (``min_snr``, ``min_psnr``, ``min_cosine``,
  ``min_top1``, ``min_top5``), judged on the elements finite on both sides of an
  output whose reference carries signal (rms above ``atol``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, make_dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import numpy as np
import numpy.typing as npt

from .errors import SettingError
from .gates import (
    GATE_ROWS,
    GATE_TABLE,
    OFF,
    PARITY,
    TOLERANCE_NAMES,
    gate_number,
    tolerance_number,
)
from .gates import names as gate_names
from .messages import BAD_GATE, BAD_TOLERANCE, UNKNOWN_PRESET
from .precisions import TABLE, is_exact


class Tolerance(NamedTuple):
    """An (rtol, atol) pair: ``rtol, atol = TOLERANCES["fp16"]``, or a preset's element-wise part."""

    rtol: float
    atol: float


def _gates_class() -> type:
    """``Gates``, a frozen dataclass whose fields are rtol, atol and every parity gate of
    ``gates.GATE_TABLE`` in table order (``scale_atol`` defaults to 0.0, the others to None:
    off), so a new gate is a new field without an edit here."""

    def tolerance(self: Any) -> Tolerance:
        return Tolerance(self.rtol, self.atol)

    fields: list[Any] = [("rtol", float), ("atol", float)]
    fields += [
        (name, float if name == _SCALE else float | None, field(default=0.0 if name == _SCALE else None))
        for name in gate_names(PARITY)
    ]
    return make_dataclass(
        "Gates",
        fields,
        frozen=True,
        namespace={
            "tolerance": property(tolerance),
            "__doc__": "A precision's verdict: the element-wise tolerance plus aggregate gates "
            "(None: off), one field per parity row of gates.GATE_TABLE.\n\n"
            "One preset is one of these; ``Gates(rtol, atol)`` alone is numpy's allclose rule.",
            "__module__": __name__,
        },
    )


#: The element rule's scale term (the one gate judged element-wise; off means 0.0).
_SCALE = "scale_atol"

if TYPE_CHECKING:

    class Gates:
        """A precision's verdict (see :func:`_gates_class`): rtol, atol, then a field per
        parity gate of the table (``scale_atol`` a float, the others float or None: off)."""

        __dataclass_fields__: ClassVar[dict[str, Any]]
        rtol: float
        atol: float
        scale_atol: float  # the element rule's term (the rule names it)

        def __init__(self, rtol: float, atol: float, **gates: float | None) -> None: ...
        def __getattr__(self, name: str) -> float | None: ...
        @property
        def tolerance(self) -> Tolerance: ...

else:
    Gates = _gates_class()

#: The gates ``assert_parity`` judges besides rtol/atol, in table order (gates.GATE_TABLE;
#: Gates' fields after rtol and atol).
GATES: tuple[str, ...] = gate_names(PARITY)

#: The presets: one entry per precision, read from precisions.TABLE (reasoning and
#: evidence in docs/tolerances.md; a precision judged as its base has none).
PRESETS: dict[str, Gates] = {p.name: Gates(**p.preset) for p in TABLE if p.preset is not None}


#: ``allclose`` has no scale term: a preset that has one stands alone with this atol, the
#: fp16 value ``TOLERANCES`` held before the verdict gained its scale term (kept so that
#: ``assert_allclose(a, e, *TOLERANCES["fp16"])`` means what it meant; docs/tolerances.md).
STANDALONE_ATOL = 1e-2


class _ToleranceView(Mapping[str, Tolerance]):
    """``TOLERANCES[precision]``: an (rtol, atol) pair for numpy's or torch's allclose on
    outputs of order one, read from :data:`PRESETS` (never a second table): the preset's own
    pair for an exact precision (fp32: ``(1e-4, 1e-5)``, stricter than its scale-aware
    verdict) or a verdict that is element-wise only, else the preset's rtol with atol raised
    to :data:`STANDALONE_ATOL`. The verdict itself is :func:`preset`."""

    def __getitem__(self, precision: str) -> Tolerance:
        gates = PRESETS[precision]
        if gates.scale_atol == 0.0 or is_exact(precision):
            return gates.tolerance
        return Tolerance(gates.rtol, max(gates.atol, STANDALONE_ATOL))

    def __iter__(self) -> Iterator[str]:
        return iter(PRESETS)

    def __len__(self) -> int:
        return len(PRESETS)


TOLERANCES: Mapping[str, Tolerance] = _ToleranceView()

#: The bar for one emulator kernel against torch, a few ops deep (the emulator's own test
#: suite; docs/emulator.md "Test tolerances"). fp32 is the fp32 preset's rtol and atol;
#: fp16 allows rtol 1e-2 and atol 1e-2 x max(1, max|reference|), about 20x one op's fp16
#: rounding. The presets' rms allowances (fp32 1e-3, fp16 0.2) are sized for whole networks
#: and would be looser than a single op needs. Judged with :func:`mismatch_mask`, like
#: everything else.
KERNEL_TOLERANCES: Mapping[str, Tolerance] = {
    "fp32": PRESETS["fp32"].tolerance,
    "fp16": Tolerance(rtol=1e-2, atol=1e-2),
}

#: A tolerance as given: a number for every precision, or a number per precision.
ToleranceValue = float | Mapping[str, float] | None
#: A gate as given: a number, "off", or either per precision.
GateValue = float | str | Mapping[str, float | str] | None


class ResolvedTolerance(NamedTuple):
    """The tolerance a verdict uses and where it came from (``origin``, for messages)."""

    rtol: float
    atol: float
    origin: str


class ResolvedGates(NamedTuple):
    """The gates a verdict uses; ``origins`` names the source of every non-preset value."""

    gates: Gates
    origins: Mapping[str, str]

    @property
    def origin(self) -> str:
        """``fp16 preset`` or ``rtol argument, min_snr configured``."""
        if not self.origins:
            return "preset"
        return ", ".join(f"{name} {label}" for name, label in self.origins.items())


def _known() -> str:
    return ", ".join(PRESETS)


def preset(precision: str) -> Gates:
    """The preset for ``precision``; :class:`SettingError` for a precision without one."""
    try:
        return PRESETS[precision]
    except KeyError:
        raise SettingError(UNKNOWN_PRESET.format(precision=precision, known=_known())) from None


def _number(value: Any, where: str, what: str, shown: Any) -> float:
    number = tolerance_number(value, text=False)  # the one rule (gates.py)
    if number is None:
        raise SettingError(BAD_TOLERANCE.format(where=where, what=what, known=_known(), value=shown))
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
            if key not in PRESETS:
                raise SettingError(
                    BAD_TOLERANCE.format(where=where, what=what, known=_known(), value=dict(value))
                )
            checked[key] = _number(number, where, what, dict(value))
        return checked
    return _number(value, where, what, value)


def gate_range(what: str) -> str:
    """What ``what`` accepts, for messages."""
    row = GATE_ROWS.get(what)
    return row.allowed(unit=True) if row is not None else "a finite number >= 0"


def _gate_number(value: Any, where: str, what: str, shown: Any) -> float | str:
    number = gate_number(value, what, text=False)  # the one rule (gates.py)
    if number is None:
        raise _bad_gate(where, what, shown)
    return number


def _bad_gate(where: str, what: str, shown: Any) -> SettingError:
    # Made only on failure: formatting the message costs more than checking a value.
    return SettingError(
        BAD_GATE.format(where=where, what=what, allowed=gate_range(what), known=_known(), value=shown)
    )


def check_gate(value: Any, where: str, what: str) -> GateValue:
    """A gate value validated: None, ``"off"``, a number in range, or a dict of them by precision."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        checked: dict[str, float | str] = {}
        for key, number in value.items():
            if key not in PRESETS:
                raise SettingError(
                    BAD_GATE.format(
                        where=where, what=what, allowed=gate_range(what), known=_known(), value=dict(value)
                    )
                )
            checked[key] = _gate_number(number, where, what, dict(value))
        return checked
    return _gate_number(value, where, what, value)


def resolve_gates(
    precision: str,
    arguments: Mapping[str, Any] | None = None,
    configured: Mapping[str, Any] | None = None,
    *,
    argument_where: str = "argument {what}",
    configured_where: str = "configured {what}",
) -> ResolvedGates:
    """Every parity gate (rtol and atol included): the argument, else the configured value,
    else the preset (see :func:`resolve_values`)."""
    base = preset(precision)
    changes, origins = resolve_values(
        precision, (*TOLERANCE_NAMES, *GATES), arguments, configured,
        argument_where=argument_where, configured_where=configured_where,
    )  # fmt: skip
    if _SCALE in changes and changes[_SCALE] is None:  # scale_atol's "off" is no allowance
        changes[_SCALE] = 0.0
    return ResolvedGates(replace(base, **changes) if changes else base, origins)


def resolve_values(
    precision: str,
    names: Sequence[str],
    arguments: Mapping[str, Any] | None = None,
    configured: Mapping[str, Any] | None = None,
    *,
    argument_where: str = "argument {what}",
    configured_where: str = "configured {what}",
) -> tuple[dict[str, float | None], dict[str, str]]:
    """(value, source label) of each of ``names`` an argument or the configured settings
    give: the argument, else the configured value; a name neither gives is left out (the
    caller's preset holds). Each gate resolves on its own; a per-precision dict that does
    not name ``precision`` falls through to the next source; ``"off"`` is None (rtol/atol
    cannot be off). The ``*_where`` templates (``{what}`` is the gate's name, ``{flag}`` its
    command-line spelling) name the source in :class:`SettingError`.
    """
    changes: dict[str, float | None] = {}
    origins: dict[str, str] = {}
    for name in names:
        sources = ((arguments or {}).get(name), "argument", argument_where), (
            (configured or {}).get(name),
            "configured",
            configured_where,
        )
        for raw, label, where in sources:
            if raw is None:  # not given here (checked below, it would be None): skip formatting
                continue
            checker = check_tolerance if name in TOLERANCE_NAMES else check_gate
            value = checker(raw, where.format(what=name, flag=name.replace("_", "-")), name)
            if isinstance(value, Mapping):
                if precision not in value:
                    continue
                value = value[precision]
            if value is None:
                continue
            changes[name] = None if value == OFF else float(value)
            origins[name] = label
            break
    return changes, origins


def check_keywords(gates: Mapping[str, Any], function: str, check: str) -> None:
    """``TypeError`` for a keyword of ``function`` (``assert_parity``) that is not one of
    ``check``'s gates (gates.GATE_TABLE), as Python says it for a missing parameter, with
    the close match or the check the gate belongs to."""
    __tracebackhide__ = True  # the caller's line and the message, not this function
    from ._suggest import did_you_mean

    known = gate_names(check)
    for name in gates:
        if name not in known:
            row = GATE_ROWS.get(name)
            note = (
                f" ({name} is a gate of the {row.check} check)" if row is not None
                else did_you_mean(name, (*TOLERANCE_NAMES, *known))
            )  # fmt: skip
            raise TypeError(f"{function}() got an unexpected keyword argument {name!r}{note}")


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
    """(rtol, atol, origin) by :func:`resolve_gates`; ``origin`` reads ``fp16 preset``
    or ``rtol argument, atol configured``."""
    resolved = resolve_gates(
        precision,
        {"rtol": rtol, "atol": atol},
        {"rtol": configured_rtol, "atol": configured_atol},
        argument_where=argument_where,
        configured_where=configured_where,
    )
    origin = f"{precision} preset" if not resolved.origins else resolved.origin
    return ResolvedTolerance(resolved.gates.rtol, resolved.gates.atol, origin)


# ------------------------------------------------------------------ metrics


def worst_errors(actual: Any, expected: Any) -> tuple[float, float]:
    """The worst ``|a - e|`` and ``|a - e| / |e|`` over the elements finite on both sides
    (relative: where ``e != 0``); 0.0 where there are none. One stateful step's errors
    (``assert_parity`` and a bare call alike) come from here."""
    a = np.asarray(actual, dtype=np.float64).reshape(-1)
    e = np.asarray(expected, dtype=np.float64).reshape(-1)
    finite = np.isfinite(a) & np.isfinite(e)
    if not finite.any():
        return 0.0, 0.0
    with np.errstate(all="ignore"):
        err = np.abs(a[finite] - e[finite])
    reference = e[finite]
    nonzero = reference != 0
    worst_rel = float((err[nonzero] / np.abs(reference[nonzero])).max()) if nonzero.any() else 0.0
    return float(err.max()), worst_rel


def _as_float(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return a.astype(np.float64) if a.dtype.kind in "fiub" else a


def as_pair(actual: Any, expected: Any) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Both sides as float64 arrays (ints and bools too), Core ML's rank-0 ``(1,)`` aligned.

    The shapes may still differ; every caller decides what a shape mismatch means.
    """
    e = _as_float(np.asarray(expected))
    return align_rank0(_as_float(np.asarray(actual)), e), e


def align_rank0(actual: npt.NDArray[Any], expected: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """``actual`` as a scalar when torch returned one and Core ML its ``(1,)`` form.

    Core ML's ``predict`` (and so the emulator) returns a rank-0 output with shape
    ``(1,)``; that exact case is the same value, any other shape difference is not.
    """
    if expected.ndim == 0 and actual.shape == (1,):
        return actual.reshape(())
    return actual


def _index(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(flat, shape)) if shape else ()


@dataclass(frozen=True)
class Metrics:
    """What users judge one output by, over the elements finite on both sides.

    PSNR's peak is max |reference|, and MSE averages over all those elements (not
    per first dimension as coremltools' ``compute_snr_and_psnr`` does). ``top1``/
    ``top5`` are None unless the output is a score vector (last dim >= 2): rows are
    all indices but the last, ``top1`` is the fraction of rows whose argmax agrees
    (a tie in the reference counts as agreement), ``top5`` the fraction whose
    reference argmax is in Core ML's top min(5, last dim).
    """

    size: int
    finite: int
    max_abs: float
    max_abs_index: tuple[int, ...]
    max_rel: float
    max_rel_index: tuple[int, ...]
    rms: float
    peak: float
    cosine: float
    psnr: float
    snr: float
    top1: float | None
    top5: float | None

    def value(self, gate: str) -> float | None:
        """The metric a gate (``min_snr``...) judges."""
        row = GATE_ROWS.get(gate)
        if row is None or row.metric is None:
            return None
        value: float | None = getattr(self, row.metric)  # a field of this record, by the table
        return value


def _db(signal: float, noise: float) -> float:
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def _topk(a: npt.NDArray[np.float64], e: npt.NDArray[np.float64], finite: bool) -> tuple[float | None, float | None]:
    if a.ndim == 0 or a.shape[-1] < 2:
        return None, None
    n = a.shape[-1]
    if not finite:  # non-finite scores never win
        a = np.where(np.isfinite(a), a, -np.inf)
        e = np.where(np.isfinite(e), e, -np.inf)
    rows_a, rows_e = a.reshape(-1, n), e.reshape(-1, n)
    want = rows_e.argmax(axis=1)
    picked = np.take_along_axis(rows_e, rows_a.argmax(axis=1)[:, None], axis=1)[:, 0]
    top1 = float(np.mean(picked == rows_e.max(axis=1)))
    k = min(5, n)
    if k == n:
        return top1, 1.0
    best = np.argpartition(rows_a, n - k, axis=1)[:, n - k :]
    top5 = float(np.mean((best == want[:, None]).any(axis=1)))
    return top1, top5


def _sum_of_products(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> float:
    # Not np.dot: BLAS threads stall when the CPU is oversubscribed (a shared CI runner).
    return float(np.add.reduce(np.multiply(x, y), axis=None))


#: (n, a, e, |a - e|, |e|) over the elements finite on both sides (the others zeroed).
_Finite = tuple[int, npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any]]


class _Pair:
    """One output's two sides in float64 and what every metric and the rule share.

    Each part is computed only when asked: a passing verdict needs the rule and the
    metrics of the gates that are set, not the whole table (a failure's).
    """

    def __init__(self, actual: Any, expected: Any, *, converted: bool = False) -> None:
        a, e = (actual, expected) if converted else as_pair(actual, expected)
        if a.shape != e.shape:
            raise ValueError(f"shape mismatch: Core ML {a.shape}, PyTorch {e.shape}")
        self.a, self.e = a, e
        floats = a.dtype.kind == "f" and e.dtype.kind == "f"
        if not floats:  # complex, or a dtype isfinite rejects: checked before any arithmetic
            fin_e, fin_a = np.isfinite(e), np.isfinite(a)
            fin_e_all = bool(fin_e.all())
            self.all_finite = fin_e_all and bool(fin_a.all())
        with np.errstate(invalid="ignore", over="ignore"):
            self.err = np.abs(a - e)
            self.abs_e = np.abs(e)
            self._err_power = _sum_of_products(self.err, self.err)
        if floats:
            # A nan or inf on either side makes some |a - e|, and so this sum, nan or inf:
            # a finite sum means every element is finite (else check: it may have overflowed).
            fin_e_all = self.all_finite = math.isfinite(self._err_power)
            if not self.all_finite:
                fin_e_all = bool(np.isfinite(e).all())
                self.all_finite = fin_e_all and bool(np.isfinite(a).all())
        self._finite: _Finite | None = (a.size, a, e, self.err, self.abs_e) if self.all_finite else None
        self._topk: tuple[float | None, float | None] | None = None
        self._metrics: Metrics | None = None
        ref = e if fin_e_all else e[np.isfinite(e)]
        self._ref_power = _sum_of_products(ref, ref)  # also the metrics' when all is finite
        self.scale = math.sqrt(self._ref_power / ref.size) if ref.size else 0.0

    def mask(self, rtol: float, atol: float, scale_atol: float) -> npt.NDArray[np.bool_]:
        allowed = atol + scale_atol * self.scale if scale_atol else atol
        with np.errstate(invalid="ignore", over="ignore"):
            beyond: npt.NDArray[np.bool_] = np.greater(self.err, allowed + rtol * self.abs_e)
        if self.all_finite:
            return beyond
        a, e = self.a, self.e
        same = (np.isnan(a) & np.isnan(e)) | (np.isinf(a) & np.isinf(e) & (np.sign(a) == np.sign(e)))
        mask: npt.NDArray[np.bool_] = np.where(np.isfinite(a) & np.isfinite(e), beyond, ~same)
        return mask

    def finite(self) -> _Finite:
        """The elements finite on both sides (see :data:`_Finite`)."""
        if self._finite is None:
            a, e, err, abs_e = self.a, self.e, self.err, self.abs_e
            both = np.isfinite(a) & np.isfinite(e)
            n = int(both.sum())
            if n:
                a, e = np.where(both, a, 0.0), np.where(both, e, 0.0)
                err, abs_e = np.where(both, err, 0.0), np.where(both, abs_e, 0.0)
            self._finite = (n, a, e, err, abs_e)
        return self._finite

    # The aggregates below divide by n: read them only when ``finite()[0] > 0``.

    def mse(self) -> float:
        n, _a, _e, err, _abs_e = self.finite()
        return (self._err_power if self.all_finite else _sum_of_products(err, err)) / n

    def power(self) -> float:
        n, _a, e, _err, _abs_e = self.finite()
        return (self._ref_power if self.all_finite else _sum_of_products(e, e)) / n

    def peak(self) -> float:
        return float(self.finite()[4].max())

    def cosine(self) -> float:
        n, a, e, _err, _abs_e = self.finite()
        norms = math.sqrt(_sum_of_products(a, a) * self.power() * n)
        return _sum_of_products(a, e) / norms if norms > 0 else (1.0 if self.mse() == 0 else 0.0)

    def topk(self) -> tuple[float | None, float | None]:
        if self._topk is None:
            self._topk = _topk(self.a, self.e, self.all_finite)
        return self._topk

    def signal(self, atol: float) -> bool:
        """Whether the reference carries signal (rms above ``atol``): else no aggregate gate applies."""
        return self.finite()[0] > 0 and math.sqrt(self.power()) > atol

    def value(self, gate: str) -> float | None:
        """:meth:`Metrics.value` of this pair, computing only that metric."""
        row = GATE_ROWS.get(gate)
        compute = _PAIR_METRICS.get(row.metric) if row is not None and row.metric is not None else None
        return compute(self) if compute is not None else None

    def metrics(self) -> Metrics:
        """The whole table (computed once)."""
        if self._metrics is None:
            self._metrics = self._all_metrics()
        return self._metrics

    def _all_metrics(self) -> Metrics:
        n, _a, _e, err, abs_e = self.finite()
        top1, top5 = self.topk()
        if n == 0:
            nan = math.nan
            return Metrics(self.a.size, 0, nan, (), nan, (), nan, nan, nan, nan, nan, top1, top5)
        i_abs = int(np.argmax(err))
        rel = np.divide(err, abs_e, out=np.zeros_like(err), where=abs_e > 0)
        if not abs_e.all():  # a difference where the reference is 0: infinitely relative
            rel[(abs_e == 0) & (err > 0)] = np.inf
        i_rel = int(np.argmax(rel))
        mse, power, peak = self.mse(), self.power(), self.peak()
        return Metrics(
            size=self.a.size,
            finite=n,
            max_abs=float(err.flat[i_abs]),
            max_abs_index=_index(i_abs, self.a.shape),
            max_rel=float(rel.flat[i_rel]),
            max_rel_index=_index(i_rel, self.a.shape),
            rms=math.sqrt(power),
            peak=peak,
            cosine=self.cosine(),
            psnr=_db(peak * peak, mse),
            snr=_db(power, mse),
            top1=top1,
            top5=top5,
        )


def _psnr(pair: _Pair) -> float:
    peak = pair.peak()
    return _db(peak * peak, pair.mse())


#: Metric name (gates.GateRow.metric) -> its value on one pair, computing only that metric.
_PAIR_METRICS: dict[str, Callable[[_Pair], float | None]] = {
    "snr": lambda pair: _db(pair.power(), pair.mse()),
    "psnr": _psnr,
    "cosine": lambda pair: pair.cosine(),
    "top1": lambda pair: pair.topk()[0],
    "top5": lambda pair: pair.topk()[1],
}


def metrics(actual: Any, expected: Any) -> Metrics:
    """The :class:`Metrics` of one output; :class:`ValueError` when the shapes differ."""
    return _Pair(actual, expected).metrics()


# ------------------------------------------------------------------ the rule


def mismatch_mask(
    actual: Any, expected: Any, rtol: float, atol: float, scale_atol: float = 0.0
) -> npt.NDArray[np.bool_]:
    """Element-wise mismatches of two same-shape arrays under the rule above.

    Raises :class:`ValueError` when the shapes differ.
    """
    return _Pair(actual, expected).mask(rtol, atol, scale_atol)


@dataclass(frozen=True)
class Judgement:
    """The verdict on one output: mismatched elements, metrics, and the gates that failed.

    ``failed`` names ``elements`` (some element beyond the element-wise tolerance)
    and each aggregate gate below its minimum; ``judged`` the aggregate gates that
    were set and applied (not when the reference carries no signal); ``scale`` is
    the rms of the reference's finite elements and ``allowed`` the element-wise
    allowance besides ``rtol * |expected|`` (``atol + scale_atol * scale``).
    """

    gates: Gates
    mismatch: npt.NDArray[np.bool_]
    scale: float
    allowed: float
    failed: tuple[str, ...]
    judged: tuple[str, ...] = ()
    _pair: _Pair = field(kw_only=True, repr=False, compare=False)

    @property
    def passed(self) -> bool:
        return not self.failed

    @property
    def n_mismatched(self) -> int:
        return int(self.mismatch.sum())

    @property
    def metrics(self) -> Metrics:
        """Every metric of the output, computed on first use (a passing call reads none)."""
        return self._pair.metrics()

    def worst_ratio(self) -> float | None:
        """The rule as one number, max |actual - expected| / (allowed + rtol |expected|),
        when every element is finite on both sides and so is that maximum; else None."""
        pair = self._pair
        if not pair.all_finite or not pair.err.size:
            return None
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            worst = float((pair.err / (self.allowed + self.gates.rtol * pair.abs_e)).max())
        return worst if math.isfinite(worst) else None


def judge(actual: Any, expected: Any, gates: Gates) -> Judgement:
    """The verdict on one output under ``gates``; :class:`ValueError` when the shapes differ."""
    return _judge(_Pair(actual, expected), gates)


def judge_pair(actual: npt.NDArray[Any], expected: npt.NDArray[Any], gates: Gates) -> Judgement:
    """:func:`judge` of two arrays :func:`as_pair` returned, used as they are (not copied
    again): for a caller that holds them already and leaves them unchanged."""
    return _judge(_Pair(actual, expected, converted=True), gates)


#: The aggregate gates (a parity row with a metric), judged after the element rule.
_JUDGED: tuple[str, ...] = tuple(name for name in GATES if GATE_ROWS[name].metric is not None)


def _judge(pair: _Pair, gates: Gates) -> Judgement:
    mask = pair.mask(gates.rtol, gates.atol, gates.scale_atol)
    allowed = gates.atol + gates.scale_atol * pair.scale
    failed: list[str] = ["elements"] if mask.any() else []
    judged: list[str] = []
    for name in _JUDGED:
        minimum = getattr(gates, name)
        if minimum is None or not pair.signal(gates.atol):
            continue
        value = pair.value(name)
        if value is None:
            continue
        judged.append(name)
        if not value >= minimum:  # nan fails
            failed.append(name)
    return Judgement(gates, mask, pair.scale, allowed, tuple(failed), tuple(judged), _pair=pair)


def outputs_match(actual: Any, expected: Any, rtol: float, atol: float, **gates: Any) -> bool:
    """Parity of one output: same shape and :func:`judge` passes ``Gates(rtol, atol, **gates)``.

    Pass a preset's gates to verify as ``assert_parity`` does:
    ``outputs_match(a, e, **asdict(preset("fp16")))``.
    """
    try:
        return judge(actual, expected, Gates(rtol, atol, **gates)).passed
    except ValueError:  # shapes differ
        return False


__all__ = [
    "GATES",
    "GATE_TABLE",
    "OFF",
    "PRESETS",
    "TOLERANCES",
    "GateValue",
    "Gates",
    "Judgement",
    "Metrics",
    "ResolvedGates",
    "ResolvedTolerance",
    "Tolerance",
    "ToleranceValue",
    "align_rank0",
    "as_pair",
    "check_gate",
    "check_keywords",
    "check_tolerance",
    "judge",
    "judge_pair",
    "metrics",
    "mismatch_mask",
    "outputs_match",
    "preset",
    "resolve_gates",
    "resolve_tolerance",
    "resolve_values",
    "worst_errors",
]
