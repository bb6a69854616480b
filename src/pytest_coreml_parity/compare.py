"""``assert_parity`` / ``assert_finite``: run, judge (with :mod:`.verdict`), explain.

The assertions raise :class:`ParityFailure`, which carries the model and inputs;
diagnosis is not run here but by the plugin's report hook, once per failed test.

The failure report follows numpy's ``assert_allclose``, torch's ``assert_close``
and pytest-regressions' ``ndarrays_regression``: which output, precision and
backend; the tolerance; k/n mismatched; the worst absolute and relative errors
with their index and both values; nan/inf counts per side; a table of the
first mismatches; the metrics table (one row per metric: value, gate, pass/FAIL,
computed by :func:`.verdict.judge`); and a hint. See docs/tolerances.md.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from . import messages
from ._values import flatten, to_numpy, widen_float16
from .errors import SettingError
from .gates import GATE_TABLE, PARITY
from .precisions import is_exact
from .verdict import (
    GATES,
    Judgement,
    ResolvedGates,
    as_pair,
    check_keywords,
    judge_pair,
    mismatch_mask,
    resolve_gates,
    worst_errors,
)

if TYPE_CHECKING:
    from .model import CoreMLModel
    from .sequence import Step

_TABLE_ROWS = 5
_SHOW_INPUT_ELEMENTS = 64


class ParityFailure(AssertionError):
    """What ``assert_parity`` and ``assert_finite`` raise: the message, plus what to diagnose.

    ``model`` is the :class:`~.model.CoreMLModel` (None when ``assert_finite`` could
    not tell which model made the outputs), ``inputs`` the prepared inputs of the
    failing call, ``output`` the failing output's label, ``rtol``/``atol`` the
    tolerance the verdict used and ``judgement`` its :class:`~.verdict.Judgement`
    (None for ``assert_finite``). The plugin's report hook diagnoses from these,
    once per failed test.

    ``message`` may be a callable returning the text: it is then rendered on the first
    ``str()``, ``repr()`` or pickling and kept (``args`` is empty until then). Under hypothesis every shrink
    step raises a failure whose text nobody reads; only the example hypothesis reports
    (and pytest prints) renders its table (about 1 ms each).
    """

    def __init__(
        self,
        message: str | Callable[[], str],
        *,
        model: CoreMLModel | None = None,
        inputs: tuple[Any, ...] | None = None,
        output: str | None = None,
        rtol: float | None = None,
        atol: float | None = None,
        judgement: Judgement | None = None,
    ) -> None:
        self._render: Callable[[], str] | None = None
        if callable(message):
            super().__init__()
            self._render = message
        else:
            super().__init__(message)
        self.judgement = judgement
        self.model = model
        self.inputs = inputs
        self.output = output
        self.rtol = rtol
        self.atol = atol

    def _rendered(self) -> None:
        """Render a lazy message into ``args`` (once)."""
        render = self._render
        if render is not None:
            self._render = None
            self.args = (render(),)

    def __str__(self) -> str:
        self._rendered()
        return super().__str__()

    def __repr__(self) -> str:
        self._rendered()
        return super().__repr__()

    def __reduce__(self) -> tuple[Any, ...]:  # picklable: the message survives, the model does not
        self._rendered()
        return (type(self), self.args)


class PreprocessingMismatch(ParityFailure):
    """An image input's program preprocessing is not PyTorch's (raised before any output
    is compared, and not diagnosed as model drift: see :mod:`.images`)."""


def gates_for(
    precision: str, arguments: dict[str, Any], *, model: CoreMLModel | None = None
) -> ResolvedGates:
    """Every gate: argument, then the model's configured settings, then the preset.

    A malformed value raises :class:`~.errors.SettingError` naming its source.
    """
    __tracebackhide__ = True
    configured: dict[str, Any] = {}
    if model is not None:
        configured = {"rtol": model.rtol, "atol": model.atol, **model.gates}
    try:
        return resolve_gates(
            precision,
            arguments,
            configured,
            argument_where=messages.ARGUMENT_TOLERANCE,
            configured_where=messages.CONFIGURED_TOLERANCE,
        )
    except SettingError as exc:
        bad = exc
    raise SettingError(str(bad))  # outside the except block: no verdict frames, one message


#: (label, Metrics attribute, gate) per row of the metrics table: the two ungated error
#: rows, then every gate of the gate table with a row of its own, in its row order.
_METRIC_ROWS: tuple[tuple[str, str, str | None], ...] = (
    ("max abs err", "max_abs", None),
    ("max rel err", "max_rel", None),
    *(
        (row.label, row.metric, row.name)
        for row in sorted(GATE_TABLE, key=lambda row: row.row)
        if row.label is not None and row.metric is not None
    ),
)


def describe_metrics(judgement: Judgement, origin: str) -> list[str]:
    """The metrics table: one row per metric with its gate and pass/FAIL (docs/tolerances.md)."""
    m, g = judgement.metrics, judgement.gates
    lines = [messages.METRICS_HEADER.format(gates=origin)]
    n = judgement.mismatch.size
    lines.append(
        messages.METRICS_ROW.format(
            metric="elements",
            value=f"{judgement.n_mismatched}/{n} off",
            gate=f"tol {_fmt(judgement.allowed)}",
            verdict=messages.GATE_FAILED if "elements" in judgement.failed else messages.GATE_PASSED,
        )
    )
    for label, attribute, gate in _METRIC_ROWS:
        value = getattr(m, attribute)
        if value is None:
            continue
        minimum = getattr(g, gate) if gate is not None else None
        if minimum is None:
            shown, verdict = messages.GATE_NOT_SET, ""
        else:
            shown = f">= {minimum:g}"
            verdict = (
                messages.GATE_FAILED if gate in judgement.failed
                else messages.GATE_PASSED if gate in judgement.judged
                else messages.GATE_NOT_JUDGED
            )  # fmt: skip
        lines.append(
            messages.METRICS_ROW.format(metric=label, value=_fmt(value), gate=shown, verdict=verdict).rstrip()
        )
    return lines


@dataclass
class Comparison:
    """Element-wise comparison of one output."""

    actual: np.ndarray
    expected: np.ndarray
    mismatch: np.ndarray

    @property
    def n_mismatched(self) -> int:
        return int(self.mismatch.sum())


def compare_arrays(actual: Any, expected: Any, rtol: float, atol: float) -> Comparison:
    """The verdict's mismatch mask (:func:`.verdict.mismatch_mask`) with both arrays kept."""
    a, e = as_pair(actual, expected)
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


def _fail(
    message: str | Callable[[], str], model: CoreMLModel | None, inputs: tuple[Any, ...] | None, **info: Any
) -> NoReturn:
    __tracebackhide__ = True
    raise ParityFailure(message, model=model, inputs=inputs, **info)


def _describe_output(model: CoreMLModel, index: int, count: int) -> str:
    keys = model.output_keys
    if index < len(keys):  # outputs by key (outputs.py): the key names it
        return repr(keys[index])
    name = model.output_names[index] if index < len(model.output_names) else f"#{index}"
    return f"{index} ({name!r})" if count > 1 else repr(name)


def _check_images(model: CoreMLModel, arrays: tuple[Any, ...]) -> list[str]:
    """Fail on a preprocessing mismatch of any image input (images.py); else return the
    lines saying how PyTorch got each image, for the model-drift report."""
    __tracebackhide__ = True
    images = model.images
    if not images:
        return []
    from .images import preprocessing_mismatch

    preps = model.preprocessing()
    used = []
    for i, (tensor, side) in model.torch_images(arrays).items():
        name = model.input_names[i]
        used.append(f"{name}: " + messages.PREPROCESSING_USED.format(torch_side=side))
        lines = preprocessing_mismatch(arrays[i], preps[name], tensor, side)
        if lines is not None:
            # No inputs on the failure: the plugin then runs no diagnosis of the model.
            raise PreprocessingMismatch("\n".join([*lines, *_input_lines(model, arrays)]), model=model)
    return used


def assert_parity(
    coreml_model: CoreMLModel,
    *inputs: Any,
    rtol: Any = None,
    atol: Any = None,
    **gates: Any,
) -> Any:
    """Run PyTorch and Core ML on ``inputs``; fail on disagreement or Core ML nan/inf.

    Returns the Core ML outputs. ``gates``: any parity gate of ``gates.GATE_TABLE``
    (``scale_atol``, ``min_snr``, ``min_psnr``, ``min_cosine``, ``min_top1``, ``min_top5``);
    another keyword is a ``TypeError``. Each gate (docs/tolerances.md): the argument,
    else the marker, command line or ini setting, else the precision's preset;
    ``"off"`` turns a preset's gate off.
    """
    __tracebackhide__ = True
    check_keywords(gates, "assert_parity", PARITY)
    model = coreml_model
    given = {"rtol": rtol, "atol": atol, **gates}
    resolved = gates_for(model.precision, given, model=model)  # a bad value fails first
    verdict = resolved.gates
    r, a = verdict.rtol, verdict.atol
    arrays = model.prepare(inputs)
    image_lines = _check_images(model, arrays)  # a preprocessing mismatch fails first
    expected = flatten(model.reference_prepared(arrays))
    guided = _guided(model)
    result = model.run_prepared(arrays, peaks=guided)
    actual = flatten(result)
    backend = model.backend.name if model.backend is not None else "?"
    stateful = model.torch_state_model is not None
    judged: list[Judgement] = []
    if stateful:  # one step of the test's sequence: recorded before any verdict fails
        step, judged = _judged_step(len(model.steps) + 1, actual, expected, verdict)
        model.steps.append(step)
    worst = 0.0
    log = model.verdicts  # the CI outputs' record of this test (verdict_log.py), if wanted
    if log is not None:
        log.start_call()
    for i, (got, want) in enumerate(zip(actual, expected, strict=True)):
        g, e = as_pair(widen_float16(got), want)
        if g.shape != e.shape:  # e.g. a flexible-shape program that lost a dim
            raise AssertionError(
                messages.OUTPUT_SHAPE_MISMATCH.format(
                    label=_describe_output(model, i, len(actual)),
                    inputs=", ".join(str(tuple(a.shape)) for a in arrays),
                    got=g.shape,
                    want=e.shape,
                )
            )
        judgement = judged[i] if judged else judge_pair(g, e, verdict)
        comp = Comparison(actual=g, expected=e, mismatch=judgement.mismatch)
        if log is not None:
            name = model.output_names[i] if i < len(model.output_names) else f"#{i}"
            log.add(name, judgement, arrays, actual, expected)
        if guided:
            worst = max(worst, _error_ratio(comp, judgement))
        if judgement.passed:
            continue
        if guided:
            _observe(model, worst)
        label = _describe_output(model, i, len(actual))
        steps = list(model.steps)  # as they are now: a later call appends to them
        render = partial(
            _parity_message, model, resolved, judgement, comp, label, backend, steps, image_lines, arrays
        )
        _fail(render, model, arrays, output=label, rtol=r, atol=a, judgement=judgement)
    if guided:
        _observe(model, worst)
    return result


def _parity_message(
    model: CoreMLModel,
    resolved: ResolvedGates,
    judgement: Judgement,
    comp: Comparison,
    label: str,
    backend: str,
    steps: list[Step],
    image_lines: list[str],
    arrays: tuple[Any, ...],
) -> str:
    """The text of ``assert_parity``'s failure of output ``label`` (rendered when read:
    :class:`ParityFailure`)."""
    gates = resolved.gates
    r, a = gates.rtol, gates.atol
    stateful = model.torch_state_model is not None
    origin, gates_origin = _origins(model.precision, resolved)
    head = model.stack.parity_header.format(output=label, precision=model.precision, backend=backend)
    converted = model.stack.describe_conversion(model)
    model_line = f"model: {type(model.torch_model).__name__}, converted at {converted}"
    if model.settings.package is not None:  # package=: built elsewhere, not converted here
        model_line = messages.PACKAGE_MODEL_LINE.format(
            model=type(model.torch_model).__name__, package=model.package_path,
            precision=model.precision, why=model.precision_origin,
        )  # fmt: skip
    lines = [
        head,
        model_line,
        f"tolerance: rtol={r:g}, atol={a:g} ({origin})",
        messages.ELEMENT_RULE.format(
            scale_atol=gates.scale_atol, rms=judgement.scale, allowed=judgement.allowed
        ),
        *describe_mismatch(comp),
        *describe_metrics(judgement, gates_origin),
    ]
    if model.keys_note is not None:
        lines.insert(2, model.keys_note)
    if stateful:
        buffers = ", ".join(repr(name) for name, _shape in model.state_buffers) or "states"
        lines.insert(2, messages.STATE_LINE.format(buffers=buffers, step=len(steps)))
    frozen = model.frozen_buffers
    for name, shape in reversed(frozen):
        lines.insert(0, messages.FROZEN_STATE.format(name=name, shape=shape))
    ref_finite = np.isfinite(comp.expected)
    # Blame the reference only when every mismatch sits where PyTorch is non-finite.
    ref_bad = judgement.failed == ("elements",) and not (comp.mismatch & ref_finite).any()
    ours_bad = bool((~np.isfinite(comp.actual) & ref_finite).any())
    if ref_bad:
        lines.insert(0, messages.REFERENCE_NONFINITE.format(output=label))
    elif ours_bad:
        lines.append(model.stack.nonfinite + ".")
    lines.extend(image_lines)
    lines.extend(_input_lines(model, arrays))
    if not ref_bad and not stateful:  # a stateful step is not diagnosed (plugin.py)
        lines.append(messages.PARITY_HINT)  # what happened: the diagnosis section says
    if stateful and not frozen and is_exact(model.precision):
        lines.append(messages.STATE_FP32_HINT)
    if stateful:
        lines.extend(describe_drift(steps))
    return "\n".join(lines)


def _origins(precision: str, resolved: ResolvedGates) -> tuple[str, str]:
    """Where the tolerance and the other gates came from, for a failure's report."""
    elementwise = {k: v for k, v in resolved.origins.items() if k in ("rtol", "atol")}
    origin = f"{precision} preset" if not elementwise else ", ".join(
        f"{k} {v}" for k, v in elementwise.items()
    )
    others = {k: v for k, v in resolved.origins.items() if k in GATES}
    gates_origin = f"{precision} preset" + "".join(f", {k} {v}" for k, v in others.items())
    return origin, gates_origin


def _judged_step(
    step: int, actual: list[Any], expected: list[Any], gates: Any
) -> tuple[Step, list[Judgement]]:
    """The :class:`~.model.Step` of one ``assert_parity`` call (worst errors over every
    output, the worst error / allowed ratio, whether every output passed) and the
    judgements, which the caller reuses; none when a shape differs."""
    from .sequence import Step

    worst_abs = worst_rel = ratio = 0.0
    passed = True
    judgements: list[Judgement] = []
    for got, want in zip(actual, expected, strict=True):
        g, e = as_pair(widen_float16(got), want)
        if g.shape != e.shape:
            return Step(step, float("nan"), float("nan"), None, False), []
        judgement = judge_pair(g, e, gates)
        judgements.append(judgement)
        passed = passed and judgement.passed
        ratio = max(ratio, _error_ratio(Comparison(g, e, judgement.mismatch), judgement))
        max_abs, max_rel = worst_errors(g, e)
        worst_abs, worst_rel = max(worst_abs, max_abs), max(worst_rel, max_rel)
    return Step(step, worst_abs, worst_rel, ratio, passed), judgements


_DRIFT_ROWS = 24


def describe_drift(steps: list[Step]) -> list[str]:
    """The drift table: per step, the worst abs/rel error and error/allowed, with the first
    step beyond tolerance named (long rollouts keep the first, failing and last rows)."""
    first = next((s.step for s in steps if s.passed is False), None)
    lines = [
        messages.DRIFT_HEADER.format(first=first if first is not None else "none"),
        messages.DRIFT_COLUMNS.format(
            step="step", max_abs="max abs err", max_rel="max rel err", ratio="err/allowed",
            verdict="verdict",
        ),
    ]  # fmt: skip
    shown = set(range(8)) | set(range(len(steps) - (_DRIFT_ROWS - 9), len(steps)))
    for i, s in enumerate(steps):
        if s.step == first:  # the failing step with the steps leading to it
            shown |= set(range(i - 3, i + 2))
    skipped = False
    for i, s in enumerate(steps):
        if i not in shown:
            if not skipped:
                lines.append("  ...")
            skipped = True
            continue
        skipped = False
        if s.passed is None:
            verdict, ratio = messages.DRIFT_NOT_JUDGED, "-"
        else:
            verdict = messages.GATE_PASSED if s.passed else messages.GATE_FAILED
            ratio = "non-finite" if (s.ratio or 0.0) >= _SCORE_CAP else _fmt(s.ratio or 0.0)
        lines.append(
            messages.DRIFT_COLUMNS.format(
                step=s.step, max_abs=_fmt(s.max_abs), max_rel=_fmt(s.max_rel), ratio=ratio,
                verdict=verdict,
            ).rstrip()
        )  # fmt: skip
    return lines


def assert_rollout(
    coreml_model: CoreMLModel, steps_inputs: Sequence[Any], **gates: Any
) -> list[Any]:
    """Run ``steps_inputs`` as one sequence of a stateful model, judging every step as
    ``assert_parity`` does (``gates``: its keyword arguments); fail after the last step
    when any step was beyond tolerance, with the drift table of every step and the
    first failing step's report. Returns each step's Core ML outputs."""
    __tracebackhide__ = True
    if isinstance(steps_inputs, (str, bytes)) or not isinstance(steps_inputs, Sequence):
        raise TypeError(messages.ROLLOUT_BAD_STEPS.format(got=type(steps_inputs).__name__))
    outputs: list[Any] = []
    first: ParityFailure | None = None
    first_step = 0
    for feed in steps_inputs:
        feed = tuple(feed) if isinstance(feed, (tuple, list)) else (feed,)
        try:
            outputs.append(assert_parity(coreml_model, *feed, **gates))
        except ParityFailure as failure:
            outputs.append(coreml_model.last_outputs)
            if first is None:
                first, first_step = failure, len(coreml_model.steps)
    if first is None:
        return outputs
    report = str(first)
    table = describe_drift(coreml_model.steps)
    cut = report.find(table[0].split("(")[0])
    body = report[:cut].rstrip() if cut >= 0 else report
    lines = [
        messages.ROLLOUT_FAILED.format(n=len(coreml_model.steps), step=first_step), body, *table
    ]
    raise ParityFailure(
        "\n".join(lines), model=first.model, inputs=first.inputs, output=first.output,
        rtol=first.rtol, atol=first.atol, judgement=first.judgement,
    )  # fmt: skip


#: hypothesis.target() labels; ``--hypothesis-show-statistics`` prints their highest scores.
TARGET_ERROR = "coreml-parity: error / tolerance"
TARGET_PEAK = "coreml-parity: fp16 peak |value| / 65504"
_SCORE_CAP = 1e300  # target() takes finite observations only


def _guided(model: CoreMLModel) -> bool:
    """Guide hypothesis only inside a ``@given`` test, on the emulator, when enabled."""
    if not model.guide or model.backend is None or not model.backend.records:
        return False
    if "hypothesis" not in sys.modules:  # no @given test ran: do not import it (1-2 s)
        return False
    try:
        from hypothesis.control import currently_in_test_context
    except ImportError:  # hypothesis older than currently_in_test_context: see _observe
        return True
    return currently_in_test_context()


def _error_ratio(comp: Comparison, judgement: Judgement) -> float:
    """max |a - e| / (allowed + rtol |e|) over finite pairs: above 1 fails (the verdict's rule,
    with the judgement's ``allowed``, scale term included);
    Core ML nan/inf where PyTorch is finite scores the cap."""
    fast = judgement.worst_ratio()  # all finite: the same number without the masking
    if fast is not None:
        return min(fast, _SCORE_CAP)
    rtol, atol = judgement.gates.rtol, judgement.allowed
    a, e = comp.actual, comp.expected
    finite_e = np.isfinite(e)
    finite = finite_e & np.isfinite(a)
    if (finite_e & ~finite).any():
        return _SCORE_CAP
    if not finite.any():
        return 0.0
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        ratio = np.abs(a[finite] - e[finite]) / (atol + rtol * np.abs(e[finite]))
    worst = float(np.nan_to_num(ratio, nan=0.0, posinf=_SCORE_CAP).max())
    return min(worst, _SCORE_CAP)


def _observe(model: CoreMLModel, error_ratio: float) -> None:
    """Feed hypothesis the error and the fp16 peak, so the search climbs toward overflow."""
    from hypothesis import target
    from hypothesis.errors import InvalidArgument

    try:
        target(min(error_ratio, _SCORE_CAP), label=TARGET_ERROR)
        if model.last_peak is not None:
            target(min(model.last_peak, _SCORE_CAP), label=TARGET_PEAK)
    except InvalidArgument:  # outside a test, or this label already observed in this example
        pass


def _find_model(outputs: Any) -> CoreMLModel | None:
    """The CoreMLModel whose most recent call returned ``outputs`` or one of its leaves (identity)."""
    from .model import live_models

    for model in live_models():
        last = model.last_outputs
        if last is None:
            continue
        if last is outputs or any(leaf is outputs for leaf in flatten(last)):
            return model
    return None


def assert_finite(outputs: Any) -> None:
    """Fail when any array, tensor or (nested) tuple element holds nan or inf."""
    __tracebackhide__ = True
    leaves = flatten(outputs)
    lines: list[str] = []
    for i, leaf in enumerate(leaves):
        array = to_numpy(leaf)
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
        lines.insert(0, f"{model.stack.title} outputs at {model.precision} on the {backend} backend:")
        if model.last_inputs is not None:
            lines.extend(_input_lines(model, model.last_inputs))
        lines.append(messages.PARITY_HINT)
    _fail("\n".join(lines), model, model.last_inputs if model is not None else None)
