"""Tolerance presets, element-wise comparison, and the assertion messages.

The failure report follows numpy's ``assert_allclose``, torch's ``assert_close``
and pytest-regressions' ``ndarrays_regression``: which output, precision and
backend; the tolerance; k/n mismatched; the worst absolute and relative errors
with their index and both values; nan/inf counts per side; a table of the
first mismatches; and for fp16 a hint naming the fix. See docs/tolerances.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import messages

if TYPE_CHECKING:
    from .model import CoreMLModel

#: (rtol, atol) per precision; reasoning in docs/tolerances.md.
TOLERANCES: dict[str, tuple[float, float]] = {
    "fp32": (1e-4, 1e-5),
    "fp16": (1e-2, 1e-2),
}
_TABLE_ROWS = 5
_SHOW_INPUT_ELEMENTS = 64


def tolerance_for(
    precision: str, rtol: Any = None, atol: Any = None, *, model: CoreMLModel | None = None
) -> tuple[float, float, str]:
    """(rtol, atol, where they came from): argument, then the model's settings, then preset."""
    preset_rtol, preset_atol = TOLERANCES.get(precision, TOLERANCES["fp16"])
    sources = []

    def pick(arg: Any, configured: Any, preset: float, name: str) -> float:
        for value, source in ((arg, "argument"), (configured, "configured")):
            if value is None:
                continue
            if isinstance(value, dict):
                if precision in value and value[precision] is not None:
                    sources.append(f"{name} {source}")
                    return float(value[precision])
                continue
            sources.append(f"{name} {source}")
            return float(value)
        return preset

    r = pick(rtol, model.rtol if model is not None else None, preset_rtol, "rtol")
    a = pick(atol, model.atol if model is not None else None, preset_atol, "atol")
    origin = f"{precision} preset" if not sources else ", ".join(sources)
    return r, a, origin


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
    """Mismatch mask: |a-e| > atol + rtol*|e|, or non-finite values that differ.

    nan matches nan and an infinity matches the same infinity (``equal_nan``),
    so identical non-finite outputs on both sides are not a mismatch.
    """
    a = _as_float(np.asarray(actual))
    e = _as_float(np.asarray(expected))
    if a.shape != e.shape:
        raise AssertionError(f"shape mismatch: Core ML {a.shape}, PyTorch {e.shape}")
    both_finite = np.isfinite(a) & np.isfinite(e)
    with np.errstate(invalid="ignore", over="ignore"):
        close = np.abs(a - e) <= atol + rtol * np.abs(e)
    same_nonfinite = (np.isnan(a) & np.isnan(e)) | (np.isinf(a) & np.isinf(e) & (np.sign(a) == np.sign(e)))
    mismatch = np.where(both_finite, ~close, ~same_nonfinite)
    return Comparison(actual=a, expected=e, mismatch=mismatch)


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


def _exploring_with_hypothesis() -> bool:
    """True while hypothesis generates or shrinks examples, False on its final replay.

    Diagnosis costs recorded runs; during shrinking a test fails hundreds of times,
    and only the final, shrunk failure is reported, so only that one is diagnosed.
    """
    try:
        from hypothesis.control import current_build_context
        from hypothesis.errors import InvalidArgument
    except ImportError:  # pragma: no cover - hypothesis is a dependency
        return False
    try:
        return not current_build_context().is_final
    except InvalidArgument:  # not inside a @given test
        return False


def _diagnosis(model: CoreMLModel | None, inputs: tuple[Any, ...] | None) -> str | None:
    if model is None or inputs is None or _exploring_with_hypothesis():
        return None
    try:
        from .diagnose import failure_section
    except ModuleNotFoundError as exc:
        if exc.name == f"{__package__}.diagnose":
            return None
        raise
    return failure_section(model, inputs)


def _fail(lines: list[str], model: CoreMLModel | None, inputs: tuple[Any, ...] | None) -> None:
    __tracebackhide__ = True
    section = _diagnosis(model, inputs)
    if section:
        lines = [*lines, "", section]
    raise AssertionError("\n".join(lines))


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
    arrays = model.prepare(inputs)
    expected = _flat(model.reference(*arrays))
    result = model(*arrays)
    actual = _flat(result)
    r, a, origin = tolerance_for(model.precision, rtol, atol, model=model)
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
        _fail(lines, model, arrays)
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
