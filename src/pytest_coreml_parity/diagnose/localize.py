"""Name the op that broke: compare a recorded fp16 run with a recorded fp32 run.

Two findings, in program order of the fp16 program:

* the first op whose output turned non-finite while none of the values it
  computed from were (const inputs are shown; an fp32 const that became inf when
  stored as fp16 is the culprit then);
* the first op whose relative error against the same op in the fp32 run is
  beyond tolerance: the op that introduced the error.

Relative error of an op is normwise: ``max|a - b| / max|b|`` over the elements
where the fp32 value ``b`` is finite, and infinite when ``a`` is nan/inf where
``b`` is finite. The per-op list of these errors is the error profile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, TypeGuard

import numpy as np

from ..emulator import Emulator, Recording
from ..masks import MaskedRows, mask_fill, mask_ops, masked_sinks
from ..precisions import is_exact
from .departure import Departure
from .names import fp32_name, var_correspondence
from .source import CodeLine, describe

FP16_MAX = 65504.0
#: fp16's smallest normal number: below it values lose precision, then flush to 0.
FP16_MIN_NORMAL = 2.0**-14


@dataclass(frozen=True)
class TensorRange:
    """What a tensor held: its largest finite magnitude and its nan/inf count."""

    name: str
    max_abs: float | None
    non_finite: int
    size: int
    const: bool = False
    nan: int = 0

    def text(self) -> str:
        label = f"{self.name} (const)" if self.const else self.name
        if self.size == 0:
            return f"{label} empty"
        if self.non_finite == self.size:
            return f"{label} all {self.non_finite_text()}"
        body = f"{label} max |x| = {_num(self.max_abs)}"
        if self.non_finite:
            body += f", {self.non_finite_text()} in {self.non_finite} of {self.size}"
        return body

    def non_finite_text(self) -> str:
        if self.nan == 0:
            return "inf"
        return "nan" if self.nan == self.non_finite else "nan/inf"


@dataclass(frozen=True)
class OpFinding:
    """One op worth naming, with everything needed to act on it."""

    reason: str
    index: int
    op_type: str
    name: str
    fp32_name: str | None
    source: str | None
    inputs: tuple[TensorRange, ...]
    output: TensorRange
    fp32_output: TensorRange | None
    rel_error: float | None
    #: Elements whose fp32 value is below fp16's smallest normal and that fp16 got
    #: wrong beyond tolerance (underflow: flushed to 0 or left with few bits).
    underflowed: int = 0

    def text(self) -> str:
        where = f" ({self.source})" if self.source else " (torch source unknown)"
        ins = "; ".join(r.text() for r in self.inputs) or "no tensor inputs"
        out = self.output
        if out.non_finite:
            out_text = f"output {out.non_finite_text()} in {out.non_finite} of {out.size} elements"
            if out.max_abs is not None and out.non_finite < out.size:
                out_text += f" (finite max |x| = {_num(out.max_abs)})"
            if self.fp32_output is not None and self.fp32_output.non_finite < out.non_finite:
                out_text += f" (fp16 max {FP16_MAX:.0f})"
        else:
            out_text = f"output max |x| = {_num(out.max_abs)}"
        line = f"{self.op_type} {self.name}{where}: inputs {ins}; {out_text}"
        if self.fp32_output is not None:
            line += f"; fp32 run: {self.fp32_output.text()}"
        if self.rel_error is not None:
            line += f"; rel. error vs fp32 {_num(self.rel_error)}"
        if self.underflowed:
            line += (
                f"; {self.underflowed} elements below fp16's smallest normal "
                f"({FP16_MIN_NORMAL:.3g}) underflowed"
            )
        return line


@dataclass(frozen=True)
class InputFinding:
    """A model input that is fp16-typed and overflowed on the way in (fp16 I/O)."""

    name: str
    given: TensorRange
    stored: TensorRange

    def text(self) -> str:
        return (
            f"input {self.name!r} overflows fp16 on the way in: given max |x| = "
            f"{self.given.max_abs or 0.0:.6g} > {FP16_MAX:.0f}, stored as inf in {self.stored.non_finite} "
            f"of {self.stored.size} elements (the model's inputs are fp16); convert with fp32 "
            "inputs (ct.TensorType(..., dtype=np.float32); the plugin's input_dtypes='fp32')"
        )


@dataclass(frozen=True)
class ProfilePoint:
    """One op of the error profile; ``rel_error`` is None when there is nothing to compare."""

    index: int
    op_type: str
    name: str
    rel_error: float | None
    non_finite: bool


@dataclass(frozen=True)
class Localization:
    """The diagnosis of one run: findings, the per-op profile, and the tolerance used."""

    precision: str
    tolerance: float
    n_ops: int
    first_non_finite: OpFinding | None
    first_error: OpFinding | None
    profile: tuple[ProfilePoint, ...]
    input_overflow: tuple[InputFinding, ...] = ()
    #: The first op whose value departs from torch's own intermediate value (any precision).
    departure: Departure | None = None
    #: How many torch intermediate values were matched to ops and compared.
    compared: int = 0
    #: The same, for the fp32 conversion, when it fails too (a converter mismatch).
    fp32_departure: Departure | None = None
    #: The first op beyond tolerance vs fp32 because values underflowed fp16.
    first_underflow: OpFinding | None = None
    #: Whether the fp32 conversion passes the failed assertion on these inputs (None: not
    #: checked). False means a converter mismatch: float32 cannot fix it.
    fp32_passes: bool | None = None
    #: The first sink (softmax, sdpa's mask) with fully masked rows in the run (masks.py).
    masked_rows: MaskedRows | None = None
    #: The first non-finite op is part of an attention mask (masks.py's mask ops).
    mask_non_finite: bool = False
    #: The first mask op whose output holds NaN while nothing it read did (``inf - inf``).
    mask_nan: OpFinding | None = None
    #: The mask's fill in the fp32 program (the value the user wrote), if any.
    mask_fill: float | None = None

    @property
    def healthy(self) -> bool:
        return (
            self.first_non_finite is None
            and self.first_error is None
            and not self.input_overflow
            and self.departure is None
            and self.fp32_departure is None
        )

    def text(self) -> str:
        if self.healthy:
            if is_exact(self.precision):
                return f"no op's value departs from PyTorch ({_values(self.compared)} compared)"
            return f"no op's {self.precision} output departs from fp32 beyond rel. error {self.tolerance:g}"
        lines = [finding.text() for finding in self.input_overflow]
        if self.first_non_finite is not None:
            lines.append("first non-finite op: " + self.first_non_finite.text())
        if self.mask_nan is not None and self.mask_nan != self.first_non_finite:
            lines.append("first op turning the attention mask into NaN: " + self.mask_nan.text())
        if self.masked_rows is not None:
            lines.append("attention mask: " + self.masked_rows.text())
        err = self.first_error
        if err is not None:
            if self.first_non_finite is not None and err.name == self.first_non_finite.name:
                lines.append(f"first op beyond rel. error {self.tolerance:g} vs fp32: the same op")
            else:
                lines.append(f"first op beyond rel. error {self.tolerance:g} vs fp32: " + err.text())
        under = self.first_underflow
        if under is not None and (err is None or under.name != err.name):
            lines.append("first op that underflowed: " + under.text())
        if self.departure is not None:
            lines.append(
                f"first op departing from PyTorch ({_values(self.compared)} compared): "
                + self.departure.text()
            )
        dep32 = self.fp32_departure
        if dep32 is not None and dep32 != self.departure:
            same = self.departure is not None and dep32.torch_name == self.departure.torch_name
            body = dep32.brief() if same else dep32.text()
            lines.append("the fp32 conversion departs from PyTorch too, at " + body)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["healthy"] = self.healthy
        safe: dict[str, Any] = json_safe(data)
        return safe


def feed_for(emulator: Emulator, inputs: tuple[np.ndarray, ...]) -> dict[str, np.ndarray]:
    """Positional inputs as the named feed the program declares."""
    if len(inputs) != len(emulator.inputs):
        raise ValueError(f"{len(inputs)} inputs given; the model takes {len(emulator.inputs)}")
    return {spec.name: np.asarray(x) for spec, x in zip(emulator.inputs, inputs, strict=True)}


def localize_recordings(
    emulator: Emulator,
    rec16: Recording,
    rec32: Recording,
    *,
    precision: str = "fp16",
    tolerance: float,
    scopes: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] | None = None,
    lines: Mapping[str, CodeLine] | None = None,
    root_class: str | None = None,
) -> Localization:
    """Localize from two recordings (the model under test, and its fp32 conversion).

    Pass the same recording twice for a model at fp32: only the first non-finite op
    is sought then (there is nothing to compare it with but torch).
    """
    scopes = dict(scopes or {})
    itself = rec32 is rec16
    lines = dict(lines or {})
    consts = _consts_by_op(emulator)
    fp32_ops = {op.name: op for op in rec32.ops}
    vars32 = var_correspondence(rec16.ops, rec32.ops)
    profile: list[ProfilePoint] = []
    first_bad: OpFinding | None = None
    first_err: OpFinding | None = None
    first_under: OpFinding | None = None
    first_mask_nan: OpFinding | None = None
    masks = mask_ops(rec16.ops, rec16.values)
    for index, op in enumerate(rec16.ops):
        outs = [v for v in rec16.op_outputs(op) if _is_float(v)]
        if not outs:
            continue
        twin = fp32_ops.get(fp32_name(op.name))
        counterpart = twin.name if twin is not None and twin.op_type == op.op_type and not itself else None
        ref = rec32.values.get(vars32[op.outputs[0]]) if counterpart else None
        rel = _rel_error(outs[0], ref) if ref is not None else None
        non_finite = any(not np.all(np.isfinite(v)) for v in outs)
        profile.append(ProfilePoint(index, op.op_type, op.name, rel, non_finite))
        beyond = rel is not None and rel > tolerance
        under = _underflowed(outs[0], ref, tolerance) if beyond and ref is not None else 0
        needs_bad = (
            first_bad is None
            and non_finite
            and _inputs_finite(rec16, op)
            and _new_non_finite(outs[0], ref)
        )
        needs_err = first_err is None and beyond
        needs_under = first_under is None and under > 0
        needs_nan = (
            first_mask_nan is None
            and op.name in masks
            and bool(np.isnan(outs[0]).any())
            and not _reads_nan(rec16, op, constants=False)
        )
        if needs_bad or needs_err or needs_under or needs_nan:
            finding_args = dict(
                index=index,
                op_type=op.op_type,
                name=op.name,
                fp32_name=counterpart,
                source=describe(op.name, scopes, lines, root_class),
                inputs=_input_ranges(rec16, op, consts.get(op.name, {})),
                output=_range("output", outs[0]),
                fp32_output=_range("output", ref) if ref is not None else None,
                rel_error=rel,
                underflowed=under,
            )
            if needs_bad:
                first_bad = OpFinding(reason="first non-finite", **finding_args)  # type: ignore[arg-type]
            if needs_err:
                first_err = OpFinding(reason="first error jump", **finding_args)  # type: ignore[arg-type]
            if needs_under:
                first_under = OpFinding(reason="first underflow", **finding_args)  # type: ignore[arg-type]
            if needs_nan:
                first_mask_nan = OpFinding(reason="mask turned NaN", **finding_args)  # type: ignore[arg-type]
    # A sink without fully masked rows is named only when the mask itself turned NaN.
    sinks = [rows for rows in masked_sinks(rec16, masks) if rows.rows or first_mask_nan is not None]
    broken = [rows for rows in sinks if rows.non_finite]
    return Localization(
        precision=precision,
        tolerance=tolerance,
        n_ops=len(rec16.ops),
        first_non_finite=first_bad,
        first_error=first_err,
        profile=tuple(profile),
        input_overflow=() if itself else _input_overflow(emulator, rec16, rec32),
        first_underflow=first_under,
        masked_rows=broken[0] if broken else sinks[0] if sinks else None,
        mask_non_finite=first_bad is not None and first_bad.name in masks,
        mask_nan=first_mask_nan,
        mask_fill=mask_fill(rec32.ops) if masks else None,
    )


def _reads_nan(rec: Recording, op: Any, *, constants: bool = True) -> bool:
    """Whether any float value ``op`` read holds NaN (``constants``: its constants too)."""
    read = [v for values in rec.op_inputs(op).values() for v in values]
    if constants:
        read += [np.asarray(v) for v in op.constants.values() if not isinstance(v, str)]
    return any(_is_float(v) and bool(np.isnan(v).any()) for v in read)


def _new_non_finite(value: np.ndarray, ref: np.ndarray | None) -> bool:
    """Whether ``value`` is non-finite where the fp32 run is finite. An op whose nan the
    fp32 run shares (0/0 on an all-zero row) did not break at fp16: keep looking."""
    if ref is None or ref.shape != value.shape:
        return True
    return bool((~np.isfinite(value) & np.isfinite(ref)).any())


def _input_overflow(emulator: Emulator, rec16: Recording, rec32: Recording) -> tuple[InputFinding, ...]:
    """fp16-typed inputs whose given (fp32 run) values were finite but are stored as inf."""
    found = []
    for spec in emulator.inputs:
        if spec.dtype != np.float16:
            continue
        stored, given = rec16.values.get(spec.name), rec32.values.get(spec.name)
        if not (_is_float(stored) and _is_float(given)) or stored.shape != given.shape:
            continue
        overflowed = ~np.isfinite(stored) & np.isfinite(given)
        if overflowed.any():
            found.append(InputFinding(spec.name, _range(spec.name, given), _range(spec.name, stored)))
    return tuple(found)


def _consts_by_op(emulator: Emulator) -> dict[str, dict[str, Any]]:
    return {op.name: dict(op.constants) for op in emulator.ops}


def _is_float(value: Any) -> TypeGuard[np.ndarray]:
    return isinstance(value, np.ndarray) and value.dtype.kind == "f"


def _inputs_finite(rec: Recording, op: Any) -> bool:
    for values in rec.op_inputs(op).values():
        for v in values:
            if _is_float(v) and not np.all(np.isfinite(v)):
                return False
    return True


def _input_ranges(rec: Recording, op: Any, consts: dict[str, Any]) -> tuple[TensorRange, ...]:
    ranges = []
    for key, values in rec.op_inputs(op).items():
        for i, v in enumerate(values):
            label = key if len(values) == 1 else f"{key}[{i}]"
            if _is_float(v):
                ranges.append(_range(label, v))
            elif v is None and key in consts and _is_float(np.asarray(consts[key])):
                shown = _range(label, np.asarray(consts[key]), const=True)
                if shown.non_finite or (shown.max_abs or 0.0) > FP16_MAX:
                    ranges.append(shown)  # only consts that matter for overflow
    return tuple(ranges)


def _range(name: str, value: Any, const: bool = False) -> TensorRange:
    arr = np.asarray(value, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    max_abs = float(np.max(np.abs(finite))) if finite.size else None
    nan = int(np.count_nonzero(np.isnan(arr)))
    return TensorRange(name, max_abs, int(arr.size - finite.size), int(arr.size), const, nan)


def _underflowed(got: np.ndarray, ref: Any, tolerance: float) -> int:
    """Elements below fp16's smallest normal in fp32 that fp16 got wrong beyond ``tolerance``."""
    ref = np.asarray(ref)
    if ref.dtype.kind != "f" or ref.shape != got.shape:
        return 0
    a = got.astype(np.float64)
    b = ref.astype(np.float64)
    tiny = np.isfinite(b) & (b != 0.0) & (np.abs(b) < FP16_MIN_NORMAL)
    with np.errstate(invalid="ignore", over="ignore"):
        wrong = ~(np.abs(a - b) <= tolerance * np.abs(b))
    return int(np.count_nonzero(tiny & wrong))


def _rel_error(got: np.ndarray, ref: Any) -> float | None:
    ref = np.asarray(ref)
    if ref.dtype.kind != "f" or ref.shape != got.shape:
        return None
    a = got.astype(np.float64)
    b = ref.astype(np.float64)
    finite = np.isfinite(b)
    if not finite.any():
        return None
    if not np.all(np.isfinite(a[finite])):
        return float("inf")
    scale = float(np.max(np.abs(b[finite])))
    diff = float(np.max(np.abs(a[finite] - b[finite])))
    if scale == 0.0:
        return 0.0 if diff == 0.0 else float("inf")
    return diff / scale


def _values(n: int) -> str:
    return f"{n} torch value" + ("" if n == 1 else "s")


def _num(x: float | None) -> str:
    if x is None:
        return "n/a"
    if x == float("inf"):
        return "inf"
    return f"{x:.4g}"


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as strings, so ``json.dumps(allow_nan=False)`` works."""
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
