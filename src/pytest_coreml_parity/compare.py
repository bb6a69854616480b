"""``assert_parity`` / ``assert_finite``: run, judge (with :mod:`.verdict`), explain.

The assertions raise :class:`ParityFailure`, which carries the model and inputs;
diagnosis is not run here but by the plugin's report hook, once per failed test.

The failure report follows numpy's ``assert_allclose``, torch's ``assert_close``
and pytest-regressions' ``ndarrays_regression``: which output, precision and
backend; the tolerance; k/n mismatched; the worst absolute and relative errors
with their index and both values; nan/inf counts per side; a table of the
first mismatches; and for fp16 a hint naming the fix. See docs/tolerances.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from . import messages
from .verdict import ResolvedTolerance, mismatch_mask, resolve_tolerance

if TYPE_CHECKING:
    from .model import CoreMLModel

_TABLE_ROWS = 5
_SHOW_INPUT_ELEMENTS = 64


class ParityFailure(AssertionError):
    """What ``assert_parity`` and ``assert_finite`` raise: the message, plus what to diagnose.

    ``model`` is the :class:`~.model.CoreMLModel` (None when ``assert_finite`` could
    not tell which model made the outputs), ``inputs`` the prepared inputs of the
    failing call, ``output`` the failing output's label, and ``rtol``/``atol`` the
    tolerance the verdict used (None for ``assert_finite``). The plugin's report
    hook diagnoses from these, once per failed test.
    """

    def __init__(
        self,
        message: str,
        *,
        model: CoreMLModel | None = None,
        inputs: tuple[Any, ...] | None = None,
        output: str | None = None,
        rtol: float | None = None,
        atol: float | None = None,
    ) -> None:
        super().__init__(message)
        self.model = model
        self.inputs = inputs
        self.output = output
        self.rtol = rtol
        self.atol = atol

    def __reduce__(self) -> tuple[Any, ...]:  # picklable: the message survives, the model does not
        return (type(self), self.args)


def tolerance_for(
    precision: str, rtol: Any = None, atol: Any = None, *, model: CoreMLModel | None = None
) -> ResolvedTolerance:
    """(rtol, atol, origin): argument, then the model's configured settings, then preset.

    A malformed value raises :class:`~.errors.SettingError` naming its source.
    """
    return resolve_tolerance(
        precision,
        rtol,
        atol,
        configured_rtol=model.rtol if model is not None else None,
        configured_atol=model.atol if model is not None else None,
        argument_where=messages.ARGUMENT_TOLERANCE,
        configured_where=messages.CONFIGURED_TOLERANCE,
    )


@dataclass
class Comparison:
    """Element-wise comparison of one output."""

    actual: np.ndarray
    expected: np.ndarray
    mismatch: np.ndarray

    @property
    def n_mismatched(self) -> int:
        return int(self.mismatch.sum())


def _as_float(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float64) if a.dtype.kind in "fiub" else a


def compare_arrays(actual: Any, expected: Any, rtol: float, atol: float) -> Comparison:
    """The verdict's mismatch mask (:func:`.verdict.mismatch_mask`) with both arrays kept."""
    a = _as_float(np.asarray(actual))
    e = _as_float(np.asarray(expected))
    if a.shape != e.shape:
        raise AssertionError(f"shape mismatch: Core ML {a.shape}, PyTorch {e.shape}")
    return Comparison(actual=a, expected=e, mismatch=mismatch_mask(a, e, rtol, atol))


def _idx(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(flat, shape)) if shape else ()


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def nonfinite_summary(a: np.ndarray) -> str:
    """``nan 3 (first at (2, 0)), inf 1 (first at (0, 1))`` or ``none``."""
    a = np.asarray(a)
    if a.dtype.kind not in "fc":
        return "none"
    parts = []
    for label, mask in (("nan", np.isnan(a)), ("+inf", np.isposinf(a)), ("-inf", np.isneginf(a))):
        count = int(mask.sum())
        if count:
            first = _idx(int(np.flatnonzero(mask)[0]), a.shape)
            parts.append(f"{label} {count} (first at {first})")
    return ", ".join(parts) if parts else "none"


def describe_mismatch(comp: Comparison) -> list[str]:
    """Lines of the report body: counts, worst errors, non-finite counts, first rows."""
    a, e, mask = comp.actual, comp.expected, comp.mismatch
    n = mask.size
    k = comp.n_mismatched
    lines = [
        f"shape {a.shape}; mismatched elements: {k} / {n} ({100.0 * k / max(n, 1):.1f}%)",
    ]
    finite = np.isfinite(a) & np.isfinite(e)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        abs_err = np.where(finite, np.abs(a - e), -1.0)
        rel_err = np.where(finite & (e != 0), abs_err / np.abs(e), -1.0)
    if finite.any() and abs_err.max() > 0:
        for label, err in (("abs", abs_err), ("rel", rel_err)):
            i = int(np.argmax(err))
            if err.flat[i] < 0:
                continue
            lines.append(
                f"max {label} error (finite elements): {_fmt(err.flat[i])} at index "
                f"{_idx(i, a.shape)} (Core ML {_fmt(a.flat[i])}, PyTorch {_fmt(e.flat[i])})"
            )
    elif finite.any():
        lines.append("finite elements: all agree exactly")
    lines.append(f"non-finite in Core ML: {nonfinite_summary(a)}")
    lines.append(f"non-finite in PyTorch: {nonfinite_summary(e)}")
    bad = np.flatnonzero(mask)[:_TABLE_ROWS]
    if bad.size:
        lines.append("first mismatches:")
        lines.append(f"  {'index':<16} {'Core ML':>14} {'PyTorch':>14} {'difference':>14}")
        for flat in bad:
            av, ev = a.flat[flat], e.flat[flat]
            with np.errstate(invalid="ignore", over="ignore"):
                diff = av - ev
            lines.append(
                f"  {_idx(int(flat), a.shape)!s:<16} {_fmt(av):>14} {_fmt(ev):>14} {_fmt(diff):>14}"
            )
    return lines


def _input_lines(model: CoreMLModel, inputs: tuple[np.ndarray, ...]) -> list[str]:
    lines = ["inputs (reproduce with coreml_model(*inputs)):"]
    for name, x in zip(model.input_names, inputs, strict=False):
        if x.size <= _SHOW_INPUT_ELEMENTS:
            body = np.array2string(x, separator=", ", precision=9, threshold=_SHOW_INPUT_ELEMENTS)
            lines.append(f"  {name} = np.array({body}, dtype=np.{x.dtype})")
        else:
            with np.errstate(all="ignore"):
                lines.append(
                    f"  {name}: shape {x.shape} {x.dtype}, min {_fmt(np.nanmin(x))}, "
                    f"max {_fmt(np.nanmax(x))}, max |x| {_fmt(np.nanmax(np.abs(x)))}"
                )
    return lines


def _fail(lines: list[str], model: CoreMLModel | None, inputs: tuple[Any, ...] | None, **info: Any) -> NoReturn:
    __tracebackhide__ = True
    raise ParityFailure("\n".join(lines), model=model, inputs=inputs, **info)


def _flat(value: Any) -> list[Any]:
    if isinstance(value, (tuple, list)):
        out: list[Any] = []
        for v in value:
            out.extend(_flat(v))
        return out
    return [value]


def _describe_output(model: CoreMLModel, index: int, count: int) -> str:
    name = model.output_names[index] if index < len(model.output_names) else f"#{index}"
    return f"{index} ({name!r})" if count > 1 else repr(name)


def assert_parity(coreml_model: CoreMLModel, *inputs: Any, rtol: Any = None, atol: Any = None) -> Any:
    """Run PyTorch and Core ML on ``inputs``; fail on disagreement or Core ML nan/inf.

    Returns the Core ML outputs. Tolerances: the arguments, else the marker,
    command line or ini setting, else the preset for the precision.
    """
    __tracebackhide__ = True
    model = coreml_model
    r, a, origin = tolerance_for(model.precision, rtol, atol, model=model)  # a bad value fails first
    arrays = model.prepare(inputs)
    expected = _flat(model.reference(*arrays))
    result = model(*arrays)
    actual = _flat(result)
    backend = model.backend.name if model.backend is not None else "?"
    for i, (got, want) in enumerate(zip(actual, expected, strict=True)):
        comp = compare_arrays(got, want, r, a)
        if not comp.n_mismatched:
            continue
        label = _describe_output(model, i, len(actual))
        head = messages.PARITY_HEADER.format(output=label, precision=model.precision, backend=backend)
        lines = [
            head,
            f"model: {type(model.torch_model).__name__}, converted at {model.options.describe()}",
            f"tolerance: rtol={r:g}, atol={a:g} ({origin})",
            *describe_mismatch(comp),
        ]
        ref_finite = np.isfinite(comp.expected)
        # Blame the reference only when every mismatch sits where PyTorch is non-finite.
        ref_bad = not (comp.mismatch & ref_finite).any()
        ours_bad = bool((~np.isfinite(comp.actual) & ref_finite).any())
        if ref_bad:
            lines.insert(0, messages.REFERENCE_NONFINITE.format(output=label))
        elif ours_bad:
            lines.append(messages.COREML_NONFINITE + ".")
        lines.extend(_input_lines(model, arrays))
        if model.precision != "fp32" and not ref_bad:
            lines.append(messages.FP16_HINT)
        _fail(lines, model, arrays, output=label, rtol=r, atol=a)
    return result


def _find_model(outputs: Any) -> CoreMLModel | None:
    """The CoreMLModel whose most recent call returned ``outputs`` or one of its leaves (identity)."""
    from .model import live_models

    for model in live_models():
        last = model.last_outputs
        if last is None:
            continue
        if last is outputs or any(leaf is outputs for leaf in _flat(last)):
            return model
    return None


def assert_finite(outputs: Any) -> None:
    """Fail when any array, tensor or (nested) tuple element holds nan or inf."""
    __tracebackhide__ = True
    leaves = _flat(outputs)
    lines: list[str] = []
    for i, leaf in enumerate(leaves):
        array = leaf.detach().cpu().numpy() if hasattr(leaf, "detach") else np.asarray(leaf)
        if array.dtype.kind not in "fc" or np.isfinite(array).all():
            continue
        what = f"output {i}" if len(leaves) > 1 else "the output"
        lines.append(
            messages.FINITE_HEADER.format(what=what)
            + f": shape {array.shape}, {nonfinite_summary(array)}"
        )
    if not lines:
        return
    model = _find_model(outputs)
    if model is not None:
        backend = model.backend.name if model.backend is not None else "?"
        lines.insert(0, f"Core ML outputs at {model.precision} on the {backend} backend:")
        if model.last_inputs is not None:
            lines.extend(_input_lines(model, model.last_inputs))
        if model.precision != "fp32":
            lines.append(messages.FP16_HINT)
    _fail(lines, model, model.last_inputs if model is not None else None)
